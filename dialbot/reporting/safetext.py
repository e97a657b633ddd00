"""Untrusted text (anything an SP sent) made safe to publish, as text and never as markup.

Three things happen, in this order, to every SP message quoted in a page:

1. mobile numbers (11-digit MSISDNs, with or without +86) are masked — the
   SP's words are otherwise verbatim, but a subscriber's number is never
   published;
2. very long text is cut at a visible mark that says how long the original was;
3. the rest is HTML-escaped, and control or invisible formatting characters
   (ESC, NUL, bidi overrides, zero-width spaces…) are shown as visible
   escapes like ``\\x1b`` so a reader sees that they were there.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

from dialbot.mask import mask_msisdn

MAX_CHARS = 500

# 11-digit mainland mobile numbers, optionally with a +86/86/0086 prefix, not inside a longer number.
MSISDN_RE = re.compile(r"(?<![0-9])(?:(?:\+|00)?86)?(1[3-9][0-9]{9})(?![0-9])")

_INVISIBLE = {0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0xFEFF}
_INVISIBLE.update(range(0x202A, 0x202F))
_INVISIBLE.update(range(0x2066, 0x206A))


def mask_numbers(text: str) -> str:
    """Replace every MSISDN in free text by its masked form."""
    return MSISDN_RE.sub(lambda m: mask_msisdn(m.group(1)), text)


def _is_control(char: str) -> bool:
    code = ord(char)
    if char == "\n":
        return False
    return code < 0x20 or 0x7F <= code <= 0x9F or code in _INVISIBLE


def _visible_escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _escape_visible(text: str) -> Markup:
    parts: list[str] = []
    for char in text:
        if _is_control(char):
            parts.append(f'<span class="ctl">{_visible_escape(char)}</span>')
        else:
            parts.append(str(escape(char)))
    return Markup("".join(parts))


def untrusted(text: str | None, limit: int = MAX_CHARS) -> Markup:
    """SP text as safe HTML: masked, truncated visibly past ``limit``, escaped, controls shown."""
    if not text:
        return Markup("")
    masked = mask_numbers(text)
    if len(masked) <= limit:
        return _escape_visible(masked)
    cut = _escape_visible(masked[:limit])
    note = Markup(
        '<span class="cut">…［已截断，原文共 {n} 字 / truncated, {n} characters in full］</span>'
    ).format(n=len(masked))
    return cut + note


def plain(text: str | None) -> str:
    """Untrusted text for CSV/JSON/console: masked, controls written as visible escapes."""
    if not text:
        return ""
    return "".join(_visible_escape(c) if _is_control(c) else c for c in mask_numbers(text))
