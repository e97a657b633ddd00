"""Nothing from data reaches a modem as control input.

Numbers and texts come from catalogues, flows and SP messages; a CR, Ctrl-Z
or ESC inside them would end an AT command early or inject another one, so
they are checked before anything is written and rejected with a clear error.
"""

from __future__ import annotations

import re
import unicodedata

from dialbot.errors import UnsafeInputError

_NUMBER = re.compile(r"\+?[0-9]{1,20}")
_USSD = re.compile(r"[0-9*#+]{1,40}")


def check_number(number: str) -> str:
    """Return number if it is digits with an optional leading +, else raise."""
    if not isinstance(number, str) or not _NUMBER.fullmatch(number):
        raise UnsafeInputError(f"not a phone number (digits, optional leading +): {number!r}")
    return number


def check_text(text: str) -> str:
    """Return text if it holds no control character (CR, LF, Ctrl-Z, ESC, …), else raise."""
    if not isinstance(text, str):
        raise UnsafeInputError(f"message text must be a string, not {type(text).__name__}")
    for pos, char in enumerate(text):
        if unicodedata.category(char) == "Cc":
            raise UnsafeInputError(
                f"message text contains control character U+{ord(char):04X} at {pos}: {text!r}"
            )
    return text


def check_ussd(code: str) -> str:
    """Return a USSD string if it is made only of digits, * , # and +, else raise."""
    if not isinstance(code, str) or not _USSD.fullmatch(code):
        raise UnsafeInputError(f"not a USSD code (digits, * and #): {code!r}")
    return code
