"""The month after: a SIM that ordered is followed on later nights.

Money in this business moves over days: monthly renewals, free trials that
turn paid, the carrier's reminders before a charge, charges that land a day
or three late. So every order placed while `[probe] follow_days` is set
records a horizon on its cleanup obligation (`follow_until`), and on each
later night `follow_night` looks at the SIM once: its balance, its
subscription list and, where the carrier offers one, its itemized bill
(everything that arrived in between — the carrier's reminders, the SPs'
messages — was recorded by the watch as it came). The judge then attributes
what happened since the last look to the order that caused it
(`dialbot.judge.rules_followup`). A follow-up is a run of its own (`follow`,
no service: like the watch it adds findings, it is not a probe).

A `keep` probe (dialbot/flows/month/keep.yaml) leaves its monthly
subscription on purpose until `keep_until`, so that a renewal can be seen.
The invariant "no SIM left subscribed beyond its horizon" holds because:

- the follow-up's own cleanup (after it looked) cancels every kept
  subscription whose `keep_until` has passed, and every obligation that is
  not kept, like any cleanup (dialbot.flows.cleanup, ``keep=True``);
- only a follow-up, a hygiene check, the keep probe's own cleanup and the
  scheduler's recovery pass (a SIM that owes is not planned that night)
  spare a kept subscription; any other use of the SIM (a probe of an SP,
  the last-resort cleaning) cancels it at once, which ends the keeping
  early: the follow-up then watches for charges after that cancellation;
- a kept obligation is still pending, so every check that fails closed on
  pending obligations (a SIM to clean before use, `legit` services for the
  judge) treats it as it treats any live order.

A follow-up that meets a modem fault is not judged (infra_failed) and its
orders stay to follow: the next night judges what this one could not. A
defect ends the follow-up (aborted) the same way, never the night or the
modem's worker.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dialbot.carrier import CarrierProfile
from dialbot.db.evidence import EventRow, events_of_sim
from dialbot.db.findings import record_findings
from dialbot.db.models import RunState
from dialbot.db.obligations import Obligation, followed_of_sim, get_obligation, mark_followed
from dialbot.db.outage import DatabaseUnavailable
from dialbot.db.runs import create_run, get_run, transition
from dialbot.errors import ModemError
from dialbot.fleet import CarrierServices, Lease
from dialbot.flows.history import past_order
from dialbot.flows.intake import Intake
from dialbot.flows.record import Recorder, now, to_judge_event
from dialbot.flows.runner import ProbeEnv, SimRef, clean_sim, modem_label, to_new_finding
from dialbot.judge import judge
from dialbot.judge.itemized import parse_detail
from dialbot.judge.model import Finding, FollowedOrder, RunRecord

log = logging.getLogger(__name__)

FOLLOW = "follow"
KINDS = ("sms_in", "sms_out", "balance", "subscriptions")
_TRIAL = re.compile(r"免费体验|免费试用|首月免费|体验期|试用期")
# The carrier's order notice (订购提醒, which says 免费体验) may come after the order's run
# ended: it still tells the order was a trial up to this long (unscaled seconds) after.
NOTICE_GRACE_S = 120.0


@dataclass
class FollowOutcome:
    """One follow-up night of one SIM."""

    run_id: int
    sim: str
    state: RunState
    orders: int
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    cleanup_error: str | None = None


def follow_night(env: ProbeEnv, lease: Lease, sim: SimRef) -> FollowOutcome | None:
    """Look at a SIM whose orders are followed, clean what is due, judge; None: nothing
    to follow on this SIM."""
    orders = followed_of_sim(env.db, sim.msisdn)
    if not orders:
        return None
    info = create_run(env.db, FOLLOW, sim_id=sim.id)
    transition(env.db, info.id, RunState.RUNNING, modem=modem_label(lease), sim_id=sim.id)
    outcome = FollowOutcome(info.id, sim.msisdn, RunState.RUNNING, len(orders))
    recorder = Recorder(env.db, sim.msisdn, info.id, env.on_event)
    try:
        at = look(env, lease, sim, recorder)
    except ModemError as exc:
        recorder.fault(exc, "following the month after")
        outcome.state, outcome.error = RunState.INFRA_FAILED, str(exc).splitlines()[0]
        transition(env.db, info.id, RunState.INFRA_FAILED, error=outcome.error)
        return outcome
    except Exception as exc:  # a defect ends this follow-up, never the night or the worker
        log.exception("run %s: following the month after failed", info.id)
        return _aborted(env, recorder, outcome, f"unexpected error while following: {exc!r}")
    outcome.cleanup_error = _clean(env, lease, sim)
    try:
        transition(env.db, info.id, RunState.JUDGING)
        record = follow_record(env, info.id, sim.msisdn, orders, at)
        outcome.findings = judge(record)
        record_findings(env.db, info.id, [to_new_finding(f, sim.msisdn) for f in outcome.findings])
    except DatabaseUnavailable:  # past the outage limit: the orders stay to follow
        raise
    except Exception as exc:  # orders stay to follow: the next night judges them
        log.exception("run %s: judging the month after failed", info.id)
        outcome.findings = []
        return _aborted(env, recorder, outcome, f"judging failed: {exc!r}")
    mark_followed(env.db, [ob.id for ob in orders], at)
    outcome.state = RunState.DONE
    transition(env.db, info.id, RunState.DONE)
    return outcome


def _aborted(env: ProbeEnv, recorder: Recorder, outcome: FollowOutcome, why: str) -> FollowOutcome:
    """End a follow-up without judging it; its orders stay to follow."""
    outcome.state, outcome.error = RunState.ABORTED, why.splitlines()[0]
    recorder.note(outcome.error)
    transition(env.db, outcome.run_id, RunState.ABORTED, error=outcome.error)
    return outcome


def look(env: ProbeEnv, lease: Lease, sim: SimRef, recorder: Recorder) -> datetime:
    """Balance, subscription list and itemized bill (when the carrier has one), recorded;
    returns when the look ended (what it saw is judged up to then)."""
    carrier = env.carrier
    intake = Intake(lease, recorder, carrier, None, lambda m: env.foreign(sim.msisdn, m))
    services = CarrierServices(lease, carrier, env.carrier_timeout_s)
    intake.drain()
    at = now()
    reading = services.balance()
    if reading.via == "sms":
        recorder.sms_out(carrier.service_number, carrier.balance_query, at, "other")
    recorder.balance(reading, "follow")
    at = now()
    listing = services.subscriptions()
    recorder.sms_out(carrier.service_number, carrier.subscriptions_query, at, "other")
    recorder.subscriptions(listing, "follow")
    if carrier.detail_query:
        _detail(env, lease, intake, recorder)
    intake.drain()
    return now()


def _detail(env: ProbeEnv, lease: Lease, intake: Intake, recorder: Recorder) -> None:
    """Ask the carrier for the itemized bill and wait for it (its lines are judged)."""
    carrier = env.carrier
    at = now()
    lease.send_sms(carrier.service_number, carrier.detail_query)
    recorder.sms_out(carrier.service_number, carrier.detail_query, at, "other")
    got = intake.wait_for(
        lambda r: r.carrier and parse_detail(r.message.text, carrier) is not None,
        env.carrier_timeout_s,
        since=at,
    )
    if got is None:
        recorder.note(f"no itemized bill within {env.carrier_timeout_s:g}s")


def _clean(env: ProbeEnv, lease: Lease, sim: SimRef) -> str | None:
    """Cancel what is due (kept past its horizon, or not kept at all); spare the rest."""
    return clean_sim(env, lease, sim, True, f"SIM {sim.msisdn}: after the follow-up")


def follow_record(
    env: ProbeEnv, run_id: int, sim: str, orders: list[Obligation], until: datetime
) -> RunRecord:
    """What the judge needs: the SIM's events since the first followed order, and each
    order with where this night starts, whether it was a trial, and its cancellation."""
    rows = events_of_sim(env.db, sim, KINDS, min(ob.created_at for ob in orders))
    rows = [r for r in rows if r.at <= until]
    catalogue = env.catalogue_map()
    notice_grace = timedelta(seconds=env.scaled(NOTICE_GRACE_S))
    followed = []
    for ob in orders:
        service = catalogue.get((ob.sp_code, ob.service_code))
        if service is None:
            continue  # no longer catalogued: nothing to measure it against
        fresh = get_obligation(env.db, ob.id)
        ended = fresh if fresh.discharged_at is not None and fresh.discharged_at <= until else ob
        past = past_order(ended, rows, env.carrier)
        start = _order_end(env, ob)
        followed.append(
            FollowedOrder(
                service=service,
                ordered_at=ob.created_at,
                since=ob.followed_at or start,
                trial=_trial(rows, ob.created_at, start + notice_grace, env.carrier),
                cancel_acked_at=past.cancel_acked_at,
                evidence=tuple(_order_events(rows, ob)) + past.evidence,
            )
        )
    return RunRecord(
        run_id=run_id,
        flow="follow",
        events=tuple(to_judge_event(r) for r in rows),
        observed_until=until,
        carrier=env.carrier,
        catalogue=env.catalogue,
        followed=tuple(followed),
    )


def _order_end(env: ProbeEnv, ob: Obligation) -> datetime:
    """When the order's own run ended (what it saw it judged itself)."""
    if ob.run_id is None:
        return ob.created_at
    run = get_run(env.db, ob.run_id)
    return run.ended_at or ob.created_at


def _trial(rows: list[EventRow], start: datetime, end: datetime, carrier: CarrierProfile) -> bool:
    """Whether the order was a free trial: its welcome or the carrier's notice said so."""
    del carrier  # the wording is the SP's and the carrier's alike
    return any(
        r.kind == "sms_in" and start <= r.at <= end and _TRIAL.search(r.text or "") for r in rows
    )


def _order_events(rows: list[EventRow], ob: Obligation) -> list[int]:
    """The order itself: the first message the order's run sent to the SP."""
    sent = [r.id for r in rows if r.run_id == ob.run_id and r.kind == "sms_out"
            and (r.peer or "").startswith(ob.access_number)]  # fmt: skip
    return sent[:1]
