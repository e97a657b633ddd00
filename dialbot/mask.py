"""Masking of subscriber numbers in everything dialbot publishes.

Test SIMs are real subscriptions on a real network; their numbers must not
end up in published rankings, exports or alerts. The usual Chinese masking
keeps the first three and the last four digits: ``138****0001``.
"""

from __future__ import annotations

_COUNTRY_PREFIXES = ("+86", "0086", "86")


def mask_msisdn(msisdn: str | None) -> str:
    """Mask a subscriber number for publication.

    A Chinese country prefix (+86, 0086, 86) before an 11-digit number is dropped first, so the same SIM is
    masked the same way however it was recorded. Numbers too short to keep
    seven digits visible keep only their last two; nothing is returned in full.
    """
    if not msisdn:
        return ""
    number = msisdn.strip()
    for prefix in _COUNTRY_PREFIXES:
        if number.startswith(prefix) and len(number) - len(prefix) == 11:
            number = number[len(prefix) :]
            break
    if len(number) >= 11:
        return f"{number[:3]}****{number[-4:]}"
    if len(number) > 2:
        return "*" * (len(number) - 2) + number[-2:]
    return "*" * len(number)
