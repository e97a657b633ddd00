"""Itemized charges (详单): each charge with its time, SP, service and amount.

A balance reading says how much left a SIM, never how many charges made it:
a tariff billed twice and a tariff billed at twice its price drop the
balance alike. Where the carrier answers a detail query (the profile's
`detail_query`, e.g. `CXXD`), its reply lists one line per charge, and the
judge reads them here: two lines for one order are a duplicate charge, one
line above the tariff is an overcharge. Balance deltas stay the fallback
where the carrier offers no detail (or the probe did not ask).

Lines are read from the carrier's replies (`sms_in` from the service
number matching `detail_reply`); a charge listed by two replies (two
queries) is one charge: the most lines seen of one (time, SP, service,
amount) in any single reply is how many charges they were.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from dialbot.carrier import CarrierProfile
from dialbot.judge.model import ListedItem, ServiceInfo
from dialbot.judge.timeline import Timeline, item_matches

CARRIER_ZONE = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Line:
    """One charge of the itemized bill, and the reply it was read from."""

    at: datetime
    sp: str
    service: str
    amount_fen: int
    event_id: int

    def of(self, service: ServiceInfo) -> bool:
        return item_matches(ListedItem(self.service, self.sp), service)


def parse_detail(text: str, carrier: CarrierProfile, event_id: int = 0) -> list[Line] | None:
    """The charge lines of a detail reply; [] when it lists none; None if it is no detail."""
    if not carrier.detail_reply or not re.search(carrier.detail_reply, text):
        return None
    out: list[Line] = []
    for m in re.finditer(carrier.detail_item, text):
        g = m.groupdict()
        try:
            at = datetime.strptime(g["at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CARRIER_ZONE)
            fen = Decimal(g["yuan"]) * 100
        except (KeyError, TypeError, ValueError, InvalidOperation):
            continue
        if fen != fen.to_integral_value():
            continue
        out.append(Line(at, g["sp"].strip(), g["service"].strip(), int(fen), event_id))
    return out


def lines(tl: Timeline) -> list[Line] | None:
    """Every charge the run's detail replies list (deduplicated across replies), in time
    order; None when the run holds no detail reply (fall back to balance readings)."""
    best: Counter[tuple[datetime, str, str, int]] = Counter()
    first: dict[tuple[datetime, str, str, int], Line] = {}
    seen = False
    for m in tl.msgs:
        if not m.carrier:
            continue
        found = parse_detail(m.event.text, tl.run.carrier, m.event.id)
        if found is None:
            continue
        seen = True
        counts = Counter((x.at, x.sp, x.service, x.amount_fen) for x in found)
        for key, n in counts.items():
            best[key] = max(best[key], n)
            first.setdefault(key, next(x for x in found if (x.at, x.sp, x.service,
                                                             x.amount_fen) == key))  # fmt: skip
    if not seen:
        return None
    out = [first[key] for key, n in best.items() for _ in range(n)]
    return sorted(out, key=lambda x: x.at)


@dataclass(frozen=True)
class Split:
    """Money charged for one service beyond its confirmed orders, told apart by lines."""

    over_fen: int  # lines above the tariff: the part above it
    duplicate_fen: int  # lines beyond one per order: the tariff they charged again
    evidence: list[int]


def split(
    items: list[Line], service: ServiceInfo, since: datetime, until: datetime | None, orders: int
) -> Split | None:
    """Overcharge and duplicate of `service` from its lines in [since, until] (to the
    second: the bill keeps no fractions); None when the bill shows none of its lines."""
    start = since.replace(microsecond=0)
    mine = [x for x in items if x.of(service) and x.at >= start and (until is None or
                                                                   x.at <= until)]  # fmt: skip
    if not mine:
        return None
    price = service.price_fen
    over = sum(max(0, x.amount_fen - price) for x in mine)
    duplicate = sum(min(x.amount_fen, price) for x in mine[max(orders, 0) :])
    return Split(over, duplicate, sorted({x.event_id for x in mine}))


def bursts(items: list[Line], window: timedelta) -> list[list[Line]]:
    """Lines grouped into billing runs: a line within `window` of the previous is the
    same run (a duplicate is billed with the charge it repeats)."""
    out: list[list[Line]] = []
    for x in items:
        if out and x.at - out[-1][-1].at <= window:
            out[-1].append(x)
        else:
            out.append([x])
    return out
