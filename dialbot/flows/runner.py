"""The runner: one flow, on one leased modem, for one service — recorded, judged, cleaned.

A run moves planned → running → judging → done (models.TRANSITIONS). What
it does is the flow's steps, nothing more; what it proves is the evidence
log: every message out and in (raw PDU and decoded text), every balance
reading and subscription list, every modem fault, appended as it happens.

Three rules make a run fair to SPs and safe for SIMs:

- the cleanup obligation is stored (committed) before the first message to
  the SP is sent, and discharged (`dialbot.flows.cleanup`) before the SIM
  does anything else;
- a modem fault ends the run as `infra_failed`: it is never judged, so it
  never counts against the SP, and the caller retries it on another modem;
- the judge sees exactly the stored events plus what the probe itself did
  (its actions, with the flow's time-scaled windows).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.catalogue import ServiceView
from dialbot.db.evidence import EventRow
from dialbot.db.findings import NewFinding, record_findings
from dialbot.db.models import RunState
from dialbot.db.obligations import pending_for_sim
from dialbot.db.outage import DatabaseUnavailable
from dialbot.db.owner import HEARTBEAT_S
from dialbot.db.runs import create_run, heartbeat, transition
from dialbot.errors import DialbotError, ModemError
from dialbot.fleet import Lease
from dialbot.flows.cleanup import (
    Cleaner,
    CleanupFailed,
    CleanupSettings,
    Seen,
    kept_now,
    leaks,
)
from dialbot.flows.history import past_orders
from dialbot.flows.model import CancelAll, Flow, Subscriptions
from dialbot.flows.record import Recorder, now, to_judge_event
from dialbot.flows.steps import StepRunner, effective_steps
from dialbot.judge import judge
from dialbot.judge.model import Finding, ListedItem, RunRecord, ServiceInfo
from dialbot.modem import IncomingMessage

log = logging.getLogger(__name__)

# Flows whose own cleanup spares a subscription kept for a follow-up (dialbot.flows.cleanup).
KEEPERS = ("hygiene", "keep")

# (sim msisdn, message) for everything that is not the business of the run under way.
ForeignSink = Callable[[str, IncomingMessage], None]


def service_info(view: ServiceView) -> ServiceInfo:
    """The judge's catalogue entry from the stored one."""
    return ServiceInfo(
        sp_code=view.sp_code,
        sp_name=view.sp_name,
        service_code=view.service_code,
        service_name=view.service_name,
        access_number=view.access_number,
        billing=view.billing,  # type: ignore[arg-type]
        price_fen=view.price_fen,
        subscribe_cmd=view.subscribe_cmd,
        sp_hotline=view.sp_hotline or "",
        cancel_cmd=view.cancel_cmd or "",
        use_cmd=view.use_cmd or "",
        channel=view.channel,
        url=view.url or "",
    )


@dataclass(frozen=True)
class SimRef:
    """The SIM in the leased modem: its database id and number."""

    id: int | None
    msisdn: str


@dataclass(frozen=True)
class ProbeEnv:
    """What every run needs besides its flow, modem and service."""

    db: sessionmaker[Session]
    carrier: CarrierProfile
    time_scale: float
    catalogue: tuple[ServiceInfo, ...]
    foreign: ForeignSink
    on_event: Callable[[EventRow], None] | None = None
    # (what, seconds): the run starts waiting up to that long (a live display counts it down)
    on_wait: Callable[[str, float], None] | None = None
    follow_days: float = 0.0  # the month after: follow each order this many days (0: not)
    follow_day_s: float | None = None  # how long such a day lasts (None: 86400 s time-scaled)

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def follow_horizon(self, start: datetime) -> datetime | None:
        """Until when an order placed at `start` is followed (days scaled like every window)."""
        if self.follow_days <= 0:
            return None
        return start + timedelta(seconds=self.follow_days * self.day_s)

    @property
    def day_s(self) -> float:
        """Seconds a day of the month after lasts (a test's simulated calendar is faster)."""
        return self.follow_day_s if self.follow_day_s is not None else self.scaled(86400.0)

    @property
    def carrier_timeout_s(self) -> float:
        """How long the carrier may take to answer a query (never below a few seconds)."""
        return max(5.0, self.scaled(60.0))

    def cleanup_settings(self) -> CleanupSettings:
        return CleanupSettings(self.scaled(60.0), self.carrier_timeout_s)

    def catalogue_map(self) -> Mapping[tuple[str, str], ServiceInfo]:
        """The catalogue by (SP, service) code: made once, every run's cleanup asks for it."""
        return self._by_key

    @functools.cached_property
    def _by_key(self) -> Mapping[tuple[str, str], ServiceInfo]:
        return MappingProxyType({s.key: s for s in self.catalogue})


@dataclass
class RunOutcome:
    """How a run ended, for the caller (sweep, `dialbot probe`)."""

    run_id: int
    flow: str
    service: ServiceInfo | None
    sim: str
    modem: str
    state: RunState
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    cleanup_error: str | None = None
    listing: tuple[ListedItem, ...] | None = None
    cancel_acked_at: datetime | None = None
    last_balance_event: EventRow | None = None
    retry_of: int | None = None

    @property
    def completed(self) -> bool:
        return self.state is RunState.DONE


def _step_beat(env: ProbeEnv, run_id: int) -> Callable[[], None]:
    """Stamp the run alive after a step, at most once per `HEARTBEAT_S`: the process's
    `RunBeat` beats it on that clock anyway, and a write per step is a transaction per
    step for every modem of the bank."""
    last = time.monotonic()

    def beat() -> None:
        nonlocal last
        if time.monotonic() - last >= HEARTBEAT_S:
            last = time.monotonic()
            heartbeat(env.db, run_id)

    return beat


def modem_label(lease: Lease) -> str:
    return f"{lease.slot.bank.name}:{lease.slot.entry.slot}"


def run_flow(
    env: ProbeEnv,
    flow: Flow,
    lease: Lease,
    sim: SimRef,
    service: ServiceView | None,
    retry_of: int | None = None,
) -> RunOutcome:
    """Execute one flow end to end; never raises for a modem fault (see RunOutcome.state)."""
    info = create_run(
        env.db,
        flow.name,
        service_id=service.service_id if service else None,
        sim_id=sim.id,
        retry_of=retry_of,
        running_on=modem_label(lease),
    )
    label = modem_label(lease)
    svc = service_info(service) if service else None
    outcome = RunOutcome(info.id, flow.name, svc, sim.msisdn, label, RunState.RUNNING)
    outcome.retry_of = retry_of
    recorder = Recorder(env.db, sim.msisdn, info.id, env.on_event)
    steps = StepRunner(env, lease, recorder, svc, sim.msisdn, info.id, flow.kind)
    try:
        _precleaned(env, lease, sim, keep=service is None)
    except (CleanupFailed, ModemError) as exc:
        # the SIM cannot be used: an infrastructure failure, not the SP's
        return _infra_failed(env, recorder, outcome, exc, "cleaning the SIM first", cleanup=True)
    except Exception as exc:  # a defect: the SIM's state is unknown, so it must stop
        log.exception("run %s: cleaning the SIM first failed", outcome.run_id)
        _end(env, recorder, outcome, RunState.ABORTED, f"unexpected error: {exc!r}")
        outcome.cleanup_error = outcome.error
        return outcome
    try:
        steps.run_all(effective_steps(flow, svc), _step_beat(env, info.id))
        if flow.kind == "hygiene" and _unexplained(env, sim, steps):
            # investigate what nobody ordered: clean it with the carrier's cancel-all
            steps.run(CancelAll(within=60.0))
            steps.run(Subscriptions(label="after_cleanup"))
        steps.finish()
    except ModemError as exc:
        _infra_failed(env, recorder, outcome, exc, steps.doing)
        outcome.cleanup_error = _cleanup(env, lease, sim, steps, outcome, flow.kind in KEEPERS)
        return outcome
    except DialbotError as exc:
        _cut(env, recorder, outcome, f"run aborted: {exc}")
        outcome.cleanup_error = _cleanup(env, lease, sim, steps, outcome, flow.kind in KEEPERS)
        return outcome
    except Exception as exc:  # a defect ends this run, never the sweep, night or worker
        log.exception("run %s: unexpected error while %s", outcome.run_id, steps.doing)
        _cut(env, recorder, outcome, f"unexpected error while {steps.doing}: {exc!r}")
        outcome.cleanup_error = _cleanup(env, lease, sim, steps, outcome, flow.kind in KEEPERS)
        return outcome
    outcome.listing = steps.listing
    outcome.cancel_acked_at = steps.cancel_acked_at
    outcome.last_balance_event = steps.last_balance
    try:
        _judge_and_store(env, flow, steps, sim, svc, outcome)
    except DatabaseUnavailable:  # past the outage limit: the process stops, the run is recovered
        raise
    except Exception as exc:  # a judge defect must not take the modem's worker down
        log.exception("run %s: judging failed", outcome.run_id)
        _end(env, recorder, outcome, RunState.ABORTED, f"judging failed: {exc!r}")
    outcome.cleanup_error = _cleanup(env, lease, sim, steps, outcome, flow.kind in KEEPERS)
    return outcome


def _unexplained(env: ProbeEnv, sim: SimRef, steps: StepRunner) -> bool:
    """Whether the hygiene list may show anything but subscriptions kept for a follow-up
    (fail closed: an incomplete list with anything on it does)."""
    if not steps.listing:
        return False
    seen = Seen(steps.listing, steps.listing_complete)
    return leaks(seen, kept_now(env.db, sim.msisdn), env.catalogue_map())


def _end(
    env: ProbeEnv, recorder: Recorder, outcome: RunOutcome, state: RunState, why: str
) -> RunOutcome:
    """End a run without judging it (aborted or infra_failed), saying why in its evidence."""
    outcome.state = state
    outcome.error = why.splitlines()[0]
    recorder.note(outcome.error)
    transition(env.db, outcome.run_id, state, error=outcome.error)
    return outcome


def _cut(env: ProbeEnv, recorder: Recorder, outcome: RunOutcome, why: str) -> None:
    """End a run that stopped half-way (aborted), then judge it on what it saw, as a run
    a dead process left would be (only the rules that need nothing but what was seen)."""
    from dialbot.flows.recovery import Recovery  # recovery builds on this module

    _end(env, recorder, outcome, RunState.ABORTED, why)
    try:
        judged = Recovery(env.db, env.carrier, env.catalogue).judge_cut(outcome.run_id)
    except Exception:  # left unjudged: the next recovery of the SIM tries again
        log.exception("run %s: judging the cut run failed", outcome.run_id)
        return
    if judged is not None:
        outcome.findings = judged.findings


def _infra_failed(
    env: ProbeEnv,
    recorder: Recorder,
    outcome: RunOutcome,
    exc: Exception,
    doing: str,
    cleanup: bool = False,
) -> RunOutcome:
    if isinstance(exc, ModemError):
        recorder.fault(exc, doing)
    outcome.state = RunState.INFRA_FAILED
    outcome.error = str(exc).splitlines()[0]
    if cleanup:
        outcome.cleanup_error = outcome.error
    transition(env.db, outcome.run_id, RunState.INFRA_FAILED, error=outcome.error)
    return outcome


def _precleaned(env: ProbeEnv, lease: Lease, sim: SimRef, keep: bool) -> None:
    """A SIM with pending obligations is cleaned before the run may use it; a probe of an
    SP ends any subscription kept for a follow-up (`keep`: only a hygiene check spares it)."""
    if pending_for_sim(env.db, sim.msisdn):
        cleaner = Cleaner(
            env.db,
            lease,
            sim.msisdn,
            env.carrier,
            env.catalogue_map(),
            lambda m: env.foreign(sim.msisdn, m),
            env.cleanup_settings(),
            keep=keep,
        )
        cleaner.run(clear_all=False)


def _judge_and_store(
    env: ProbeEnv,
    flow: Flow,
    steps: StepRunner,
    sim: SimRef,
    service: ServiceInfo | None,
    outcome: RunOutcome,
) -> None:
    transition(env.db, outcome.run_id, RunState.JUDGING)
    legit = frozenset(
        (ob.sp_code, ob.service_code)
        for ob in pending_for_sim(env.db, sim.msisdn)
        if ob.run_id != outcome.run_id
    )
    record = RunRecord(
        run_id=outcome.run_id,
        flow=flow.kind if flow.kind not in ("custom", "keep") else "monthly",  # type: ignore[arg-type]
        events=tuple(to_judge_event(row) for row in steps.recorder.rows),
        observed_until=steps.observed_until or now(),
        service=service,
        actions=tuple(steps.actions),
        carrier=env.carrier,
        catalogue=env.catalogue,
        legit=legit,
        # what the SP sent before this order is judged by the SIM's earlier orders with it
        history=past_orders(env.db, sim.msisdn, env.carrier, [service.sp_code] if service else []),
    )
    findings = judge(record)
    record_findings(env.db, outcome.run_id, [to_new_finding(f, sim.msisdn) for f in findings],
                    then=RunState.DONE)  # fmt: skip
    outcome.findings = findings
    outcome.state = RunState.DONE


def to_new_finding(finding: Finding, sim: str | None) -> NewFinding:
    return NewFinding(
        code=finding.code,
        severity=finding.severity,
        sp_code=finding.sp_code,
        service_code=finding.service_code or None,
        amount_fen=finding.amount_fen,
        observed_at=finding.observed_at,
        evidence=finding.evidence,
        sim=sim,
        detail=finding.detail,
    )


def _cleanup(
    env: ProbeEnv, lease: Lease, sim: SimRef, steps: StepRunner, outcome: RunOutcome, keep: bool
) -> str | None:
    """Leave the SIM unsubscribed (but for what a follow-up keeps, with `keep`); returns why
    that failed (the SIM must then be benched)."""
    fresh = steps.listing if steps.listing_is_last else None
    return clean_sim(env, lease, sim, keep, f"run {outcome.run_id}", fresh,
                     steps.keyword_sent_for)  # fmt: skip


def clean_sim(
    env: ProbeEnv,
    lease: Lease,
    sim: SimRef,
    keep: bool,
    who: str,
    known: tuple[ListedItem, ...] | None = None,
    tried_keyword: frozenset[int] = frozenset(),
) -> str | None:
    """The cleanup every run ends with (a probe's, a follow-up's): discharge the SIM's
    obligations, sparing kept ones before their horizon with `keep`; returns why it
    failed (the SIM must then be benched). A defect fails closed like a modem fault."""
    cleaner = Cleaner(
        env.db,
        lease,
        sim.msisdn,
        env.carrier,
        env.catalogue_map(),
        lambda m: env.foreign(sim.msisdn, m),
        env.cleanup_settings(),
        keep=keep,
    )
    try:
        cleaner.run(known=known, tried_keyword=tried_keyword)
    except (CleanupFailed, ModemError) as exc:
        return str(exc).splitlines()[0]
    except Exception as exc:  # a defect: the SIM may still be subscribed (fail closed)
        log.exception("%s: cleanup failed", who)
        return f"unexpected error: {exc!r}"
    return None
