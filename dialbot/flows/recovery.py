"""What a dead process left: its open runs taken over, aborted, and judged on what they saw.

A process may die in the middle of a probe or with its watch open (kill -9,
a power cut, a lost host). Its runs stay `running`, and their evidence —
an SP's spam, a charge before any confirmation — is in the log, committed
as it happened. Nothing of it may be lost, and nothing of a live process
may be touched:

- only runs whose owner is gone (``dialbot.db.owner.owner_alive``) are taken
  over: moved to ``aborted`` (never counted as a probe of the SP), under a
  row lock that re-checks the owner, so two recovering processes agree;
- every such run — and any run a dead process left ``aborted`` before run
  owners existed, or a lost distributed worker left ``infra_failed`` — is
  then judged once (``judged_at``) on its stored evidence as a *cut* run:
  only the rules that need nothing but what was seen apply (``SEEN_RULES``:
  spam, charges or subscriptions before a confirmation, messages after an
  acknowledged cancel); no rule that needs a whole watched window does.
  Its findings are stored with it and count like any other finding.

A watch run is judged on the messages it recorded as ``judged`` (a late
reply to a probe was recorded as such and stays unjudged), against the SIM's
history read from the database, exactly as the live watch would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.engine import write_session
from dialbot.db.evidence import EventRow, events_for_run
from dialbot.db.findings import LOST, record_cut_findings
from dialbot.db.models import TERMINAL_STATES, CleanupObligation, Run, RunState, Service, Sim
from dialbot.db.obligations import pending_for_sim
from dialbot.db.outage import heartbeat_cutoff, survives_outage
from dialbot.db.owner import STALE_AFTER, owner_alive, this_process
from dialbot.db.types import utcnow
from dialbot.flows.history import past_orders
from dialbot.flows.intake import national
from dialbot.flows.record import MESSAGE_KINDS, to_judge_event
from dialbot.flows.runner import to_new_finding
from dialbot.flows.steps import PURPOSES
from dialbot.judge import judge
from dialbot.judge.classify import is_carrier
from dialbot.judge.model import Action, ActionKind, Finding, RunRecord, ServiceInfo
from dialbot.judge.timeline import find_by_sender

log = logging.getLogger(__name__)

# The error of a run taken over from a dead owner (rows written before run owners say just this).
DEAD = "the process ended before the run"
OPEN_STATES = tuple(s.value for s in RunState if s not in TERMINAL_STATES)
FLOW_KINDS = ("decline", "monthly", "per_use", "hygiene", "watch", "wap", "ivr", "mms")


@dataclass(frozen=True)
class CutJudged:
    """A run cut short by a dead process, judged on what it saw."""

    run_id: int
    flow: str
    sim: str | None
    findings: list[Finding]


@survives_outage
def abort_dead(db: sessionmaker[Session], sim_id: int | None) -> list[int]:
    """Abort the open runs of this SIM (None: runs of no SIM) whose owner is gone.

    A live process's runs — this process's own included — are never touched.
    """
    with db() as session:
        candidates = list(
            session.scalars(
                select(Run.id).where(
                    Run.sim_id.is_(None) if sim_id is None else Run.sim_id == sim_id,
                    Run.state.in_(OPEN_STATES),
                )  # fmt: skip
            )
        )
    return [run_id for run_id in candidates if _abort_if_dead(db, run_id)]


@survives_outage
def _abort_if_dead(db: sessionmaker[Session], run_id: int) -> bool:
    now = utcnow()
    # A heartbeat missed while the database was away does not make a remote owner dead.
    outage_grace = heartbeat_cutoff(db, STALE_AFTER, now) < now - STALE_AFTER
    with write_session(db) as session:
        run = session.execute(select(Run).where(Run.id == run_id).with_for_update()).scalar_one()
        if run.state not in OPEN_STATES:
            return False
        alive = owner_alive(run.owner_host, run.owner_pid, run.owner_started_at,
                            run.heartbeat_at or run.started_at or run.created_at,
                            now=now)  # fmt: skip
        if not alive and outage_grace and run.owner_host != this_process().host:
            alive = True
        if alive:
            return False
        who = f" ({run.owner_host} pid {run.owner_pid} is gone)" if run.owner_host else ""
        run.move_to(RunState.ABORTED, at=utcnow(), error=DEAD + who)
        log.warning("run of a dead process aborted", extra={"run_id": run.id, "flow": run.flow})
        return True


@survives_outage
def unjudged_cut(db: sessionmaker[Session], sim_id: int | None) -> list[int]:
    """Runs of this SIM a dead process left, not judged yet (oldest first)."""
    with db() as session:
        return list(
            session.scalars(
                select(Run.id)
                .where(
                    Run.sim_id.is_(None) if sim_id is None else Run.sim_id == sim_id,
                    Run.judged_at.is_(None),
                    or_(
                        (Run.state == RunState.ABORTED.value) & Run.error.startswith(DEAD),
                        (Run.state == RunState.INFRA_FAILED.value) & Run.error.startswith(LOST),
                    ),
                )
                .order_by(Run.id)
            )
        )


class Recovery:
    """Takes over and judges what dead processes left, SIM by SIM."""

    def __init__(
        self, db: sessionmaker[Session], carrier: CarrierProfile, catalogue: tuple[ServiceInfo, ...]
    ) -> None:
        self.db = db
        self.carrier = carrier
        self.catalogue = catalogue

    def recover(self, sim_id: int | None) -> list[CutJudged]:
        """Abort this SIM's runs of dead owners, then judge every cut run of it not judged yet.

        A run that cannot be judged (a defect) is logged and left for the next
        recovery; the others are still judged.
        """
        abort_dead(self.db, sim_id)
        judged = []
        for run_id in unjudged_cut(self.db, sim_id):
            try:
                result = self.judge_cut(run_id)
            except Exception:
                log.exception("judging a cut run failed", extra={"run_id": run_id})
                continue
            if result is not None:
                judged.append(result)
        return judged

    @survives_outage
    def judge_cut(self, run_id: int, rows: list[EventRow] | None = None) -> CutJudged | None:
        """Judge one aborted run on its stored evidence (``rows``: already at hand) and store
        its findings; None when another process judged it first."""
        with self.db() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise LookupError(f"no run {run_id}")
            msisdn = session.scalar(select(Sim.msisdn).where(Sim.id == run.sim_id))
            service = _service_of(session, run)
            flow = run.flow
            has_order = (
                session.scalar(
                    select(CleanupObligation.id).where(CleanupObligation.run_id == run_id).limit(1)
                )
                is not None
            )
        rows = rows if rows is not None else events_for_run(self.db, run_id)
        if msisdn is None:
            msisdn = next((r.sim for r in rows if r.sim), None)
        record = self._record(run_id, flow, rows, msisdn, service, has_order)
        findings = judge(record) if record.events else []
        stored = record_cut_findings(self.db, run_id, [to_new_finding(f, msisdn) for f in findings])
        if stored is None:
            return None
        if findings:
            log.warning("cut run judged", extra={"run_id": run_id,
                                                 "codes": sorted({f.code for f in findings})})  # fmt: skip
        return CutJudged(run_id, flow, msisdn, findings)

    def _record(
        self,
        run_id: int,
        flow: str,
        rows: list[EventRow],
        msisdn: str | None,
        service: ServiceInfo | None,
        has_order: bool,
    ) -> RunRecord:
        if flow == "watch":
            rows = [
                r for r in rows if r.kind in MESSAGE_KINDS and _data(r).get("watch") != "late_reply"
            ]
        actions = tuple(self._actions(rows, service))
        # an ivr run's "order" is its call (a key press may subscribe): the call evidence
        ordered = any(a.kind is ActionKind.ORDER for a in actions) or any(
            r.kind == "call" for r in rows
        )
        if service is not None and has_order and not ordered:
            service = None  # the order may be out unrecorded: judge only what came unasked
        # what the SIM may hear from: its pending orders (the run's own only when its order
        # is unrecorded: then what that SP sends is no evidence either way)
        legit = frozenset(
            (ob.sp_code, ob.service_code)
            for ob in (pending_for_sim(self.db, msisdn) if msisdn else [])
            if not (ordered and ob.run_id == run_id)
        )
        sps = self._senders(rows) | ({service.sp_code} if service else set())
        history = past_orders(self.db, msisdn, self.carrier, sorted(sps)) if msisdn else ()
        # a cut follow-up saw what a hygiene check sees (its orders stay to follow)
        kind: Any = "hygiene" if flow == "follow" else flow if flow in FLOW_KINDS else "monthly"
        return RunRecord(
            run_id=run_id,
            flow=kind,
            events=tuple(to_judge_event(r) for r in rows),
            observed_until=max((r.at for r in rows), default=utcnow()),
            service=service if kind != "watch" else None,
            actions=actions if service is not None else (),
            carrier=self.carrier,
            catalogue=self.catalogue,
            legit=legit,
            history=history,
            cut=True,
        )

    def _actions(self, rows: Iterable[EventRow], service: ServiceInfo | None) -> Iterable[Action]:
        """The probe's actions, from the purposes its messages were recorded with, and for a
        WAP run from the clicks that led to its pages (no windows: a cut run is never judged
        on what did not come)."""
        for row in rows:
            if row.kind == "http":
                wap = _wap_action(row, service)
                if wap is not None:
                    yield Action(wap, row.at, row.id, None)
                continue
            if row.kind != "sms_out":
                continue
            kind = PURPOSES.get(str(_data(row).get("purpose", "")))
            if kind is ActionKind.CANCEL and row.peer == self.carrier.service_number:
                kind = ActionKind.CANCEL_ALL
            if kind is not None:
                yield Action(kind, row.at, row.id, None)

    def _senders(self, rows: Iterable[EventRow]) -> set[str]:
        peers = (national(r.peer or "") for r in rows if r.kind in MESSAGE_KINDS)
        return {
            s.sp_code
            for peer in peers
            if not is_carrier(peer, self.carrier)
            and (s := find_by_sender(peer, self.catalogue)) is not None
        }


def _wap_action(row: EventRow, service: ServiceInfo | None) -> ActionKind | None:
    """The click a WAP page was the first answer to (`flows.browse`: `led_by` of hop 0):
    the carrier page's confirm/cancel, the order link, the use link; None for the rest."""
    led = _data(row).get("led_by")
    if not isinstance(led, dict) or led.get("hop") != 0:
        return None
    how, text = led.get("how"), str(led.get("text", "")).strip()
    if how == "confirm":
        return ActionKind.CONFIRM
    if how == "decline":
        return ActionKind.WITHHOLD
    if how != "link" or service is None or not text:
        return None
    if text == service.subscribe_cmd.strip():
        return ActionKind.ORDER
    if service.use_cmd and text == service.use_cmd.strip():
        return ActionKind.USE
    return None


def _data(row: EventRow) -> dict[str, Any]:
    return row.data if isinstance(row.data, dict) else {}


def _service_of(session: Session, run: Run) -> ServiceInfo | None:
    """The catalogue entry the run was probing, as pinned when it was planned."""
    if run.service_id is None:
        return None
    service = session.get(Service, run.service_id)
    if service is None:
        return None
    version = run.service_version
    source: Any = version if version is not None else service
    return ServiceInfo(
        sp_code=service.sp.code,
        sp_name=version.sp_name if version is not None else service.sp.name,
        service_code=service.code,
        service_name=source.name,
        access_number=source.access_number,
        billing=source.billing,
        price_fen=source.price_fen,
        subscribe_cmd=source.subscribe_cmd,
        sp_hotline=(version.sp_hotline if version is not None else service.sp.hotline) or "",
        cancel_cmd=source.cancel_cmd or "",
        use_cmd=source.use_cmd or "",
    )
