"""Cleanup fails closed against lists phrased as a carrier bills, not as the simulator writes.

A scripted 10086 behind a real pty modem answers `0000` with list texts the
simulator never produces (the SP's registered company name, a billing tag on
the service name, half-width or no brackets, page markers), ignores `00000`
as today's 10086 does, and cancels by item number. An obligation may only be
discharged by a complete list on which nothing may be its service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from fakemodem import FakeModem
from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.obligations import create_obligation, get_obligation
from dialbot.db.types import utcnow
from dialbot.fleet import Fleet, FleetSettings, load_inventories
from dialbot.flows.cleanup import Cleaner, CleanupFailed, CleanupSettings
from dialbot.judge.model import ServiceInfo
from dialbot.modem import IncomingMessage

FAST = FleetSettings(command_timeout=0.5, backoff_initial=0.1, backoff_max=0.5, check_interval=60)
SIM = "13800000001"
JOKES = ServiceInfo("900001", "某某", "ZSXH", "掌上笑话", "10661234", "monthly", 500, "DG")
WEATHER = ServiceInfo("900002", "星河科技", "XHTQ", "天气早知道", "10662222", "monthly", 300, "TQ")
CATALOGUE = {s.key: s for s in (JOKES, WEATHER)}
# how the carrier bills them (names the simulator never uses)
JOKES_BILLED = "掌上笑话(包月)（北京某某信息技术有限公司），5元/月"
WEATHER_BILLED = "天气早知道（星河科技有限公司），3元/月"
PAPER_BILLED = "手机报（上海某某传媒有限公司），5元/月"  # same company core, another name


@dataclass
class Carrier:
    """A stubborn 10086: lists as billed, no working cancel-all, cancels by item number."""

    fake: FakeModem
    items: list[str]
    page_of: int = 0  # >0: every list is page 1 of this many, and shows only the first item
    cancels_by_number: bool = True
    sent: list[str] = field(default_factory=list)

    def listing(self) -> str:
        if not self.items:
            return "您好，您当前暂无订购任何增值业务。"
        shown = self.items[:1] if self.page_of else self.items
        body = "\n".join(f"{n}. {item}" for n, item in enumerate(shown, start=1))
        page = f"({1}/{self.page_of})" if self.page_of else ""
        return f"{page}您好！您订购的业务如下：\n{body}"

    def on_submit(self, destination: str, text: str) -> None:
        self.sent.append(text)
        if destination != "10086":
            return  # the SP ignores its cancel keyword
        if text in ("0000", "00000"):
            reply = self.listing()
        else:
            numbers = sorted({int(n) for n in text.replace("，", ",").split(",")}, reverse=True)
            if self.cancels_by_number:
                for n in numbers:
                    del self.items[n - 1]
            reply = "您好，已为您办理退订。"
        self.fake.deliver("10086", reply, reference=len(self.sent) % 250)


@pytest.fixture
def fake() -> Iterator[FakeModem]:
    peer = FakeModem(cnum=SIM)
    yield peer
    peer.close()


@pytest.fixture
def fleet(tmp_path: Path, fake: FakeModem) -> Iterator[Fleet]:
    (tmp_path / "bj.toml").write_text(
        f'[bank]\nname = "bj-01"\n\n[[modem]]\nslot = 1\nport = "{fake.port}"\n',
        encoding="utf-8",
    )
    with Fleet(load_inventories(tmp_path), CarrierProfile(), FAST) as fleet_:
        fleet_.open(timeout=5)
        fleet_.refresh(timeout=5)
        yield fleet_


def cleaner_for(
    fleet: Fleet, db: sessionmaker[Session], keep: bool = False
) -> Callable[[], tuple[Cleaner, list[IncomingMessage]]]:
    def make() -> tuple[Cleaner, list[IncomingMessage]]:
        foreign: list[IncomingMessage] = []
        lease = fleet.lease(bank="bj-01", slot=1)
        settings = CleanupSettings(ack_window_s=0.3, carrier_timeout_s=5)
        cleaner = Cleaner(
            db, lease, SIM, fleet.carrier, CATALOGUE, foreign.append, settings, keep=keep
        )
        return cleaner, foreign

    return make


def owe(db: sessionmaker[Session], service: ServiceInfo, kept: bool = False) -> int:
    return create_obligation(
        db,
        sim=SIM,
        sp_code=service.sp_code,
        service_code=service.service_code,
        access_number=service.access_number,
        cancel_cmd=None,
        keep_until=utcnow() + timedelta(hours=1) if kept else None,
    ).id


def test_service_billed_under_the_company_name_is_cancelled_not_discharged(
    fleet: Fleet, fake: FakeModem, session_factory: sessionmaker[Session]
) -> None:
    """An exact-name match would read `掌上笑话(包月)（北京某某…）` as not our service and
    discharge at once; it is ours, so it is cancelled by item number first."""
    carrier = Carrier(fake, [WEATHER_BILLED, JOKES_BILLED])
    fake.on_submit = carrier.on_submit
    ob = owe(session_factory, JOKES)
    cleaner, _ = cleaner_for(fleet, session_factory)()
    with cleaner.lease:
        report = cleaner.run(clear_all=False)
    assert report.discharged == {ob: "cancel_all"}
    assert get_obligation(session_factory, ob).method == "cancel_all"
    assert carrier.sent == ["0000", "00000", "0000", "1，2", "0000"]
    assert carrier.items == []


def test_a_list_that_positively_shows_other_services_discharges(
    fleet: Fleet, fake: FakeModem, session_factory: sessionmaker[Session]
) -> None:
    carrier = Carrier(fake, [WEATHER_BILLED])
    fake.on_submit = carrier.on_submit
    ob = owe(session_factory, JOKES)
    cleaner, _ = cleaner_for(fleet, session_factory)()
    with cleaner.lease:
        report = cleaner.run(clear_all=False)
    assert report.discharged == {ob: "not_subscribed"}
    assert carrier.sent == ["0000"]


def test_an_ambiguous_item_counts_as_still_subscribed(
    fleet: Fleet, fake: FakeModem, session_factory: sessionmaker[Session]
) -> None:
    """`手机报（上海某某传媒有限公司）` may be how 某某's service is billed: it is cancelled."""
    carrier = Carrier(fake, [PAPER_BILLED])
    fake.on_submit = carrier.on_submit
    ob = owe(session_factory, JOKES)
    cleaner, _ = cleaner_for(fleet, session_factory)()
    with cleaner.lease:
        report = cleaner.run(clear_all=False)
    assert report.discharged == {ob: "cancel_all"}
    assert "1" in carrier.sent and carrier.items == []


def test_an_incomplete_list_discharges_nothing(
    fleet: Fleet, fake: FakeModem, session_factory: sessionmaker[Session]
) -> None:
    """Page 1 of 2 shows only another service; what page 2 would show is unknown."""
    carrier = Carrier(fake, [WEATHER_BILLED, JOKES_BILLED], page_of=2, cancels_by_number=False)
    fake.on_submit = carrier.on_submit
    ob = owe(session_factory, JOKES)
    cleaner, _ = cleaner_for(fleet, session_factory)()
    with cleaner.lease, pytest.raises(CleanupFailed, match="incomplete"):
        cleaner.run(clear_all=False)
    row = get_obligation(session_factory, ob)
    assert row.pending and row.attempts == 1
    assert row.last_error is not None and "(1/2)" in row.last_error


# --- the month after: a subscription kept on purpose (docs/month-after.md) ----------------


def test_kept_subscription_billed_as_the_company_is_spared_by_a_keeping_cleanup(
    fleet: Fleet, fake: FakeModem, session_factory: sessionmaker[Session]
) -> None:
    """Billed under the company name, it is still positively the kept service: no leak."""
    carrier = Carrier(fake, [JOKES_BILLED])
    fake.on_submit = carrier.on_submit
    ob = owe(session_factory, JOKES, kept=True)
    cleaner, _ = cleaner_for(fleet, session_factory, keep=True)()
    with cleaner.lease:
        report = cleaner.run()
    assert report.discharged == {} and not report.cancel_all_sent
    assert carrier.sent == ["0000"] and carrier.items == [JOKES_BILLED]
    assert get_obligation(session_factory, ob).pending


def test_an_item_that_may_not_be_the_kept_one_is_cancelled_and_the_kept_one_with_it(
    fleet: Fleet, fake: FakeModem, session_factory: sessionmaker[Session]
) -> None:
    """`手机报（上海某某传媒…）` is not positively the kept service: a possible leak, so the
    cancel-all (by item number) goes out, and it spares nothing kept."""
    carrier = Carrier(fake, [JOKES_BILLED, PAPER_BILLED])
    fake.on_submit = carrier.on_submit
    ob = owe(session_factory, JOKES, kept=True)
    cleaner, _ = cleaner_for(fleet, session_factory, keep=True)()
    with cleaner.lease:
        report = cleaner.run()
    assert report.cancel_all_sent and report.discharged == {ob: "cancel_all"}
    assert carrier.items == []


def test_a_kept_subscription_gone_from_a_whole_list_ends_its_keeping(
    fleet: Fleet, fake: FakeModem, session_factory: sessionmaker[Session]
) -> None:
    carrier = Carrier(fake, [WEATHER_BILLED])
    fake.on_submit = carrier.on_submit
    ob = owe(session_factory, JOKES, kept=True)
    cleaner, _ = cleaner_for(fleet, session_factory, keep=True)()
    with cleaner.lease:
        report = cleaner.run(clear_all=False)
    assert report.discharged == {ob: "not_subscribed"}
    assert carrier.sent == ["0000"]


def test_an_incomplete_list_spares_no_leak_behind_a_kept_subscription(
    fleet: Fleet, fake: FakeModem, session_factory: sessionmaker[Session]
) -> None:
    """Page 1 of 2 shows only the kept service; page 2 may hold a leak: cancel-all, and
    since the list never comes back whole, the SIM fails closed (the keeping is not ended)."""
    carrier = Carrier(fake, [JOKES_BILLED, WEATHER_BILLED], page_of=2, cancels_by_number=False)
    fake.on_submit = carrier.on_submit
    ob = owe(session_factory, JOKES, kept=True)
    cleaner, _ = cleaner_for(fleet, session_factory, keep=True)()
    with cleaner.lease, pytest.raises(CleanupFailed, match="incomplete"):
        cleaner.run()
    assert "00000" in carrier.sent
    assert get_obligation(session_factory, ob).pending
