"""The service catalogue CSV (spec/formats.md §1): parse, validate, import.

A person edits this file in a spreadsheet, and its keywords and numbers end
up being sent by modems. So every row is validated before anything is
stored: a bad row names file, line, column and reason, and a file with any
bad row imports nothing. Characters a modem would treat as control input
(CR, LF, Ctrl-Z, ESC, any other control or invisible format character) are
rejected in every field. Prices are parsed with Decimal into integer fen.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from dialbot.csvsafe import unneutralise
from dialbot.db.catalogue import ImportResult, apply_entries
from dialbot.db.engine import write_session
from dialbot.db.models import BILLING_TYPES, CHANNELS
from dialbot.errors import CatalogError

REQUIRED = (
    "sp_code",
    "sp_name",
    "service_code",
    "service_name",
    "access_number",
    "billing",
    "price",
    "subscribe_cmd",
)
OPTIONAL = ("sp_hotline", "cancel_cmd", "use_cmd", "region", "channel", "url")
KNOWN = REQUIRED + OPTIONAL
MAX_REPORTED = 20

_CODE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_ACCESS = re.compile(r"[0-9]{3,20}")
_HOTLINE = re.compile(r"[0-9](?:[0-9-]{0,30}[0-9])?")
_PRICE = re.compile(r"[0-9]{1,7}(?:\.[0-9]+)?")
# An absolute http:// URL of printable ASCII without quotes: it ends up in a quoted AT parameter.
_URL = re.compile(r"http://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][\x21-\x7e]*)?")
# Columns a channel may leave empty (spec/channels.md §1: a WAP order is a link, not a keyword).
_EMPTY_ALLOWED = {"wap": frozenset({"access_number"})}
_CONTROL_NAMES = {"\r": "CR", "\n": "LF", "\x1a": "Ctrl-Z", "\x1b": "ESC", "\t": "TAB", "\0": "NUL"}
_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_LIMITS = {"sp_name": 200, "service_name": 200, "region": 64}
_KEYWORD_MAX = 70  # one SMS in UCS-2
_DTMF = re.compile(r"[0-9*#A-D]{1,32}")


@dataclass(frozen=True)
class CatalogEntry:
    """One validated catalogue row; ``present`` lists the optional columns the file has."""

    line: int
    sp_code: str
    sp_name: str
    sp_hotline: str | None
    service_code: str
    service_name: str
    access_number: str
    billing: str
    price_fen: int
    subscribe_cmd: str
    cancel_cmd: str | None
    use_cmd: str | None
    region: str | None
    channel: str = "sms"  # spec/channels.md §1: sms | wap | mms | ivr
    url: str | None = None  # wap: the entry page
    present: frozenset[str] = frozenset(OPTIONAL)


@dataclass
class ParsedCatalog:
    file: str
    entries: list[CatalogEntry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class CatalogErrors(CatalogError):
    """Every problem found in one catalogue file (the first one is ``where``/``reason``)."""

    def __init__(self, problems: list[CatalogError]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.file, first.where, first.reason)

    def __str__(self) -> str:
        lines = [str(p) for p in self.problems[:MAX_REPORTED]]
        if len(self.problems) > MAX_REPORTED:
            lines.append(f"… and {len(self.problems) - MAX_REPORTED} more problems")
        return "\n".join(lines)


def parse_price(text: str) -> int:
    """Yuan as written (``5``, ``5.00``, ``0.1``) to integer fen; ValueError says why."""
    if not _PRICE.fullmatch(text):
        raise ValueError(f"{text!r} is not a price in yuan like 5.00 or 0.1")
    try:
        fen = Decimal(text) * 100
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"{text!r} is not a number") from exc
    if fen != fen.to_integral_value():
        raise ValueError(f"{text!r} has more than two decimals (the smallest unit is 1 fen)")
    return int(fen)


def control_character(text: str) -> str | None:
    """Describe the first character a modem could treat as control input, if any."""
    for ch in text:
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            name = _CONTROL_NAMES.get(ch) or unicodedata.name(ch, "control character")
            return f"U+{ord(ch):04X} ({name})"
    return None


def read_catalog(path: Path) -> ParsedCatalog:
    """Read and validate a catalogue file; raises CatalogErrors listing every problem."""
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogError(file, "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CatalogError(file, f"line {line}", "not valid UTF-8 (save it as UTF-8)") from exc
    return parse_catalog_text(text, file)


def parse_catalog_text(text: str, file: str) -> ParsedCatalog:
    """Validate catalogue CSV text (BOM already removed or not)."""
    text = text.removeprefix("\ufeff")
    parsed = ParsedCatalog(file)
    problems: list[CatalogError] = []
    reader = csv.reader(_lines(text))
    try:
        header_row = next(reader, None)
        columns = _header(header_row, file, parsed.warnings)
        previous_end = reader.line_num
        for row in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                where = f"line {line}"
                reason = f"has {len(row)} fields, the header has {len(columns)}"
                problems.append(CatalogError(file, where, reason))
                continue
            cells = [unneutralise(cell) for cell in row]  # our own exports add a '
            entry = _entry(dict(zip(columns, cells, strict=True)), line, file, problems)
            if entry is not None:
                parsed.entries.append(entry)
    except csv.Error as exc:
        problems.append(CatalogError(file, f"line {reader.line_num}", f"malformed CSV: {exc}"))
    problems.extend(_cross_row_problems(parsed.entries, file))
    if problems:
        raise CatalogErrors(problems)
    return parsed


def _lines(text: str) -> Iterator[str]:
    """Split on LF only, so line numbers match what an editor shows (CRLF files
    work; a stray CR does not count as a line break)."""
    parts = text.split("\n")
    for part in parts[:-1]:
        yield part + "\n"
    if parts[-1]:
        yield parts[-1]


def _header(row: list[str] | None, file: str, warnings: list[str]) -> list[str]:
    if not row or not any(cell.strip() for cell in row):
        raise CatalogError(file, "line 1", "empty: a header row naming the columns is required")
    columns = [cell.strip().lower() for cell in row]
    problems = []
    for i, name in enumerate(columns):
        if name in columns[:i]:
            problems.append(CatalogError(file, f"line 1, column {name}", "appears twice"))
        elif name not in KNOWN:
            warnings.append(f"{file}: line 1, column {name or '(empty)'}: unknown column ignored")
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        reason = "required column missing (a header row is required)"
        if not any(name in KNOWN for name in columns):
            reason = "no header row: the first line must name the columns"
        problems += [CatalogError(file, f"line 1, column {m}", reason) for m in missing]
    if problems:
        raise CatalogErrors(problems)
    return columns


def _entry(
    raw: dict[str, str], line: int, file: str, problems: list[CatalogError]
) -> CatalogEntry | None:
    """Validate one row; append its problems and return None when it has any."""
    before = len(problems)
    values: dict[str, str | None] = {}
    channel = (raw.get("channel") or "").strip().lower() or "sms"
    may_be_empty = _EMPTY_ALLOWED.get(channel, frozenset())
    for name in KNOWN:
        if name not in raw:
            values[name] = None
            continue
        try:
            if name in may_be_empty and not raw[name].strip():
                values[name] = None
                continue
            values[name] = _field(name, raw[name])
        except ValueError as exc:
            problems.append(CatalogError(file, f"line {line}, column {name}", str(exc)))
    if channel == "wap" and not values.get("url") and before == len(problems):
        reason = "required for wap services (the entry page)"
        problems.append(CatalogError(file, f"line {line}, column url", reason))
    elif channel != "wap" and values.get("url"):
        problems.append(
            CatalogError(file, f"line {line}, column url", "only wap services have a url")
        )
    price_fen = 0
    if values.get("price") is not None:
        try:
            price_fen = parse_price(values["price"] or "")
        except ValueError as exc:
            problems.append(CatalogError(file, f"line {line}, column price", str(exc)))
    if before == len(problems):
        for column, reason in _channel_problems(channel, values):
            problems.append(CatalogError(file, f"line {line}, column {column}", reason))
    if len(problems) != before:
        return None
    return CatalogEntry(
        line=line,
        sp_code=values["sp_code"] or "",
        sp_name=values["sp_name"] or "",
        sp_hotline=values["sp_hotline"],
        service_code=values["service_code"] or "",
        service_name=values["service_name"] or "",
        access_number=values["access_number"] or "",
        billing=values["billing"] or "",
        price_fen=price_fen,
        subscribe_cmd=values["subscribe_cmd"] or "",
        cancel_cmd=values["cancel_cmd"],
        use_cmd=values["use_cmd"],
        region=values["region"],
        channel=values["channel"] or "sms",
        url=values["url"],
        present=frozenset(name for name in OPTIONAL if name in raw),
    )


def _channel_problems(channel: str, values: dict[str, str | None]) -> list[tuple[str, str]]:
    """What a row's channel demands of its other columns (spec/channels.md §1, §6)."""
    billing = values.get("billing")
    subscribe = values.get("subscribe_cmd")
    if channel != "ivr":
        out = []
        if billing == "per_minute":
            out.append(("billing", "per_minute is for ivr services (channel ivr) only"))
        if not subscribe:
            out.append(("subscribe_cmd", "required value is empty"))
        # a WAP service is cancelled through the carrier's list when the SP has no keyword
        if billing == "monthly" and channel != "wap" and not values.get("cancel_cmd"):
            reason = "required for monthly services (the keyword that cancels it)"
            out.append(("cancel_cmd", reason))
        return out
    if billing not in ("per_minute", "monthly"):
        return [("billing", "an ivr service is billed per_minute or monthly (ordered by key)")]
    out = []
    if billing == "per_minute" and (subscribe or values.get("cancel_cmd")):
        out.append(("subscribe_cmd", "must be empty for a per_minute ivr line"))
    if billing == "monthly" and not (subscribe and _DTMF.fullmatch(subscribe)):
        out.append(("subscribe_cmd", "an ivr subscription is ordered by DTMF keys (0-9 * # A-D)"))
    use = values.get("use_cmd")
    if use and not _DTMF.fullmatch(use):
        out.append(("use_cmd", f"{use!r} must be DTMF keys (0-9 * # A-D) for an ivr line"))
    return out


def _field(name: str, value: str) -> str | None:
    """One cell, checked: returns the cleaned value (None for an empty optional)."""
    bad = control_character(value)
    if bad:
        raise ValueError(f"contains control character {bad}")
    value = value.strip()
    if not value:
        if name in REQUIRED and name != "subscribe_cmd":  # empty for ivr lines (checked later)
            raise ValueError("required value is empty")
        return None
    if name in ("sp_code", "service_code") and not _CODE.fullmatch(value):
        raise ValueError(f"{value!r} must be 1-32 letters, digits, '_', '.' or '-'")
    if name == "access_number" and not _ACCESS.fullmatch(value):
        raise ValueError(f"{value!r} must be 3-20 digits (0-9) and nothing else")
    if name == "sp_hotline" and not _HOTLINE.fullmatch(value):
        raise ValueError(f"{value!r} must be a phone number: digits, optionally with '-'")
    if name == "channel":
        value = value.lower()
        if value not in CHANNELS:
            raise ValueError(f"{value!r} must be one of: {', '.join(CHANNELS)}")
    if name == "url" and (
        not _URL.fullmatch(value) or len(value) > 512 or any(c in value for c in "\"'\\")
    ):
        raise ValueError(f"{value!r} must be an absolute http:// URL of ASCII without quotes")
    if name == "billing":
        value = value.lower()
        if value not in BILLING_TYPES:
            raise ValueError(f"{value!r} must be one of: {', '.join(BILLING_TYPES)}")
    if name.endswith("_cmd") and len(value) > _KEYWORD_MAX:
        raise ValueError(f"longer than {_KEYWORD_MAX} characters")
    limit = _LIMITS.get(name)
    if limit and len(value) > limit:
        raise ValueError(f"longer than {limit} characters")
    return value


def _cross_row_problems(entries: list[CatalogEntry], file: str) -> list[CatalogError]:
    """Duplicate services, and an SP described differently on two lines."""
    problems: list[CatalogError] = []
    seen: dict[tuple[str, str], int] = {}
    sps: dict[str, CatalogEntry] = {}
    for e in entries:
        key = (e.sp_code, e.service_code)
        if key in seen:
            reason = f"duplicate of line {seen[key]} (sp_code {e.sp_code}, service_code {e.service_code})"
            problems.append(CatalogError(file, f"line {e.line}, column service_code", reason))
        else:
            seen[key] = e.line
        first = sps.setdefault(e.sp_code, e)
        if e.sp_name != first.sp_name:
            reason = f"{e.sp_name!r} differs from {first.sp_name!r} on line {first.line} for SP {e.sp_code}"
            problems.append(CatalogError(file, f"line {e.line}, column sp_name", reason))
        if e.sp_hotline and first.sp_hotline and e.sp_hotline != first.sp_hotline:
            reason = f"{e.sp_hotline!r} differs from {first.sp_hotline!r} on line {first.line} for SP {e.sp_code}"
            problems.append(CatalogError(file, f"line {e.line}, column sp_hotline", reason))
        elif e.sp_hotline and not first.sp_hotline:
            sps[e.sp_code] = e
    return problems


def import_catalog(session_factory: sessionmaker[Session], path: Path) -> ImportResult:
    """Validate the whole file, then apply it in one transaction (all or nothing)."""
    parsed = read_catalog(path)
    with write_session(session_factory) as session:
        result = apply_entries(session, parsed.entries, source=path.name)
    result.warnings.extend(parsed.warnings)
    return result
