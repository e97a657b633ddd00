"""A world of IVR lines: one honest pair and one line per voice behaviour of channels.md §6.

The billing minute is shortened in both the world and the carrier profile
(6 s), never by time_scale; the standard ivr flow holds 0.8 and 1.05 billing
minutes, so `bill_from_dial` shows on the short call (answer after 2 s).
"""

from __future__ import annotations

from typing import Any

MINUTE = 6
LINES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "HONEST": ({}, set()),
    "HONEST_NOKEY": ({"answer_after_s": 1.0}, set()),
    "EXTRA": ({"bill_extra_minutes": 1}, {"CALL_OVERBILLED"}),
    "FROMDIAL": ({"bill_from_dial": True, "answer_after_s": 2.0}, {"CALL_OVERBILLED"}),
    "HOLDS": ({"holds_after_hangup_s": 8}, {"CALL_NOT_RELEASED"}),
    "KEYSUB": ({"subscribe_on_key": "2", "subscribe_on_key_fen": 800}, {"UNCONFIRMED_SUBSCRIPTION"}),
}  # fmt: skip


def ivr_world(dialect: str) -> dict[str, Any]:
    services = []
    for index, (code, (behaviour, _)) in enumerate(LINES.items()):
        service: dict[str, Any] = {
            "code": code,
            "name": f"声讯{index}号",
            "channel": "ivr",
            "access": f"12590{index:04d}",
            "billing": "per_minute",
            "price_fen": 100,
            "behaviour": {"answer_after_s": 0.5, **behaviour},
        }
        if code != "HONEST_NOKEY":
            service["use"] = "2"
        services.append(service)
    return {
        "seed": 5,
        "carrier": {"billing_minute_s": MINUTE, "call_fee_fen_per_min": 10},
        "bank": {"name": f"ivr-{dialect}", "modems": 6, "balance_fen": 100000, "dialect": dialect},
        "sps": [
            {"code": "901020", "name": "掌上乐园", "hotline": "4008001020", "services": services}
        ],
    }
