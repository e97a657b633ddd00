"""The MMS test world: one SP, an honest monthly and per-use MMS service and one service per
MMS behaviour (and SMS behaviours that apply), with the findings each must produce."""

from __future__ import annotations

from typing import Any

# service code -> (behaviour, billing, findings it must produce)
MMS: dict[str, tuple[dict[str, Any], str, set[str]]] = {
    "M0": ({}, "monthly", set()),
    "M1": ({}, "per_use", set()),
    "M2": ({"mms_empty": True}, "monthly", {"CONTENT_NOT_DELIVERED"}),
    "M3": ({"mms_after_cancel": 2}, "monthly", {"MESSAGE_AFTER_CANCEL"}),
    "M4": ({"delivers_content": False}, "monthly", {"CONTENT_NOT_DELIVERED"}),
    "M5": ({"charge_factor": 2.0}, "monthly", {"OVERCHARGE"}),
    "M6": ({"mms_empty": True}, "per_use", {"CONTENT_NOT_DELIVERED"}),
}  # fmt: skip


def mms_world(slots: dict[int, dict[str, Any]], data_fee: int = 1) -> dict[str, Any]:
    services = []
    for index, (code, (behaviour, billing, _)) in enumerate(MMS.items()):
        service: dict[str, Any] = {
            "code": code,
            "name": f"彩信杂志{index}号",
            "channel": "mms",
            "access": f"10658001{index:02d}",
            "billing": billing,
            "price_fen": 300 + 100 * index,
            "subscribe": "DG",
            "behaviour": {"latency_ms": [5, 20], **behaviour},
        }
        if billing == "monthly":
            service.update({"cancel": "TD", "use": "KAN"})
        services.append(service)
    return {
        "seed": 11,
        "order_notices": True,
        "carrier": {"data_fee_fen_per_kb": data_fee},
        "bank": {"name": "mms1", "modems": len(slots), "balance_fen": 100000, "slots": slots},
        "sps": [
            {"code": "903001", "name": "彩信天地", "hotline": "4008009001", "services": services}
        ],
    }
