"""Deterministic SIM and modem identities for the virtual bank.

Derived from the bank name and slot, so a restarted bank keeps its numbers
and evidence recorded against a SIM stays attributable; valid-looking so a
driver that checks lengths or Luhn digits accepts them.
"""

from __future__ import annotations

import hashlib

# Type-allocation codes that make each dialect's IMEI look like its maker's.
_TAC = {
    "generic": "35328504",
    "huawei": "86106100",
    "huawei_k3715": "35787600",
    "simcom": "86221003",
    "wavecom": "35171700",
    "zte": "86324601",
    "quectel": "86145003",
}


def luhn_digit(digits: str) -> str:
    """The Luhn check digit for a digit string (IMEI, ICCID)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 0:  # every second digit, starting next to the check digit, is doubled
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return str((10 - total % 10) % 10)


def identity(bank: str, slot: int, dialect: str) -> dict[str, str]:
    """Deterministic, valid-looking SIM and modem identities for one slot.

    Derived from the bank name and slot, so a restarted bank keeps its numbers
    and evidence recorded against a SIM stays attributable.
    """
    seed = int(hashlib.sha256(bank.encode("utf-8")).hexdigest(), 16)
    block = seed % 10000
    serial = (seed // 10000 % 1_000_000 + slot) % 1_000_000
    msisdn = f"138{block:04d}{slot % 10000:04d}"
    imsi = f"46000{block:04d}{serial:06d}"
    iccid_body = f"898600{block:04d}{serial:06d}{slot % 1000:03d}"
    tac = _TAC.get(dialect, _TAC["generic"])
    imei_body = f"{tac}{serial:06d}"
    return {
        "msisdn": msisdn,
        "imsi": imsi,
        "iccid": iccid_body + luhn_digit(iccid_body),
        "imei": imei_body + luhn_digit(imei_body),
    }
