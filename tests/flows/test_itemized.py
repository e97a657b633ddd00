"""Itemized charges on the virtual bank: the bill tells a duplicate from an overcharge.

Two per-use services, each billing 2.00元 for a 1.00元 tariff: one charges the
tariff twice (two lines), the other charges twice the tariff (one line). The
carrier sends no order notices, so the balance alone shows the same drop for
both: without a detail query both can only be an OVERCHARGE; where the carrier
answers `CXXD`, the standard flow reads the bill and the judge tells them apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowrig import by_service, serve


def world(detail: bool) -> dict[str, Any]:
    def service(i: int, behaviour: dict[str, Any]) -> dict[str, Any]:
        return {
            "code": f"P{i}",
            "name": f"点播{'甲乙'[i]}",
            "access": f"10658021{i:02d}",
            "billing": "per_use",
            "price_fen": 100,
            "subscribe": f"DB{i}",
            "behaviour": {"latency_ms": [5, 40], **behaviour},
        }

    return {
        "seed": 3,
        "order_notices": False,
        "carrier": {"detail_query": "CXXD"} if detail else {},
        "bank": {"name": "bill-bank", "modems": 2, "balance_fen": 10000},
        "sps": [
            {
                "code": "903001",
                "name": "明细科技",
                "hotline": "4008003001",
                "services": [
                    service(0, {"double_charge": True}),
                    service(1, {"charge_factor": 2.0}),
                ],
            }
        ],
    }


def test_the_bill_tells_a_duplicate_from_an_overcharge(tmp_path: Path) -> None:
    with serve(tmp_path / "bill", world(detail=True)) as rig:
        found = by_service(rig.sweep())
    assert found == {("903001", "P0"): {"DUPLICATE_CHARGE"}, ("903001", "P1"): {"OVERCHARGE"}}


def test_without_a_bill_the_balance_cannot(tmp_path: Path) -> None:
    with serve(tmp_path / "balance", world(detail=False)) as rig:
        found = by_service(rig.sweep())
    assert found == {("903001", "P0"): {"OVERCHARGE"}, ("903001", "P1"): {"OVERCHARGE"}}
