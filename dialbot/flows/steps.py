"""What each step of the flow language does on a leased modem (see flows/model.py).

Every window is the flow's number of seconds × `[probe] time_scale`. What
the probe itself does is kept as judge `Action`s (with the window the flow
gave the SP to answer), because the judge measures the SP against them: an
order, a confirmation, a deliberate non-confirmation, a use request, a
cancellation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dialbot.db.evidence import EventRow
from dialbot.db.obligations import create_obligation
from dialbot.errors import CallNotPlaced
from dialbot.fleet import CarrierServices, Lease
from dialbot.flows.intake import Intake, Received, from_access, national
from dialbot.flows.model import (
    Balance,
    Call,
    Cancel,
    CancelAll,
    Detail,
    Expect,
    Explore,
    FetchMms,
    Flow,
    Observe,
    Open,
    Order,
    Reply,
    Send,
    Step,
    Subscriptions,
    Use,
)
from dialbot.flows.record import Recorder, now
from dialbot.flows.steps_mms import MmsSteps
from dialbot.flows.steps_wap import WapSteps
from dialbot.judge.classify import MsgClass, reply_for
from dialbot.judge.itemized import parse_detail
from dialbot.judge.model import Action, ActionKind, ListedItem, ServiceInfo
from dialbot.modem.voice import CallRecord

if TYPE_CHECKING:
    from dialbot.flows.runner import ProbeEnv

KINDS: dict[str, frozenset[MsgClass] | None] = {
    "prompt": frozenset({MsgClass.PROMPT}),
    "welcome": frozenset({MsgClass.WELCOME}),
    "content": frozenset({MsgClass.CONTENT, MsgClass.WELCOME}),
    "cancel_ack": frozenset({MsgClass.CANCEL_ACK, MsgClass.CANCEL_ALL_ACK}),
    "any": None,
}
# A kept subscription is followed this many days past its horizon (charges after cancel).
FOLLOW_AFTER_KEEP_DAYS = 3.0

PURPOSES = {
    "order": ActionKind.ORDER,
    "confirm": ActionKind.CONFIRM,
    "use": ActionKind.USE,
    "cancel": ActionKind.CANCEL,
}


class StepRunner:
    """Executes steps for one run and remembers what the judge and the cleanup need."""

    def __init__(
        self,
        env: ProbeEnv,
        lease: Lease,
        recorder: Recorder,
        service: ServiceInfo | None,
        sim: str,
        run_id: int,
        flow_kind: str,
    ) -> None:
        self.env = env
        self.lease = lease
        self.recorder = recorder
        self.service = service
        self.sim = sim
        self.run_id = run_id
        self.flow_kind = flow_kind
        self.access = service.access_number if service else ""
        self.intake = Intake(
            lease, recorder, env.carrier, self.access, lambda m: env.foreign(sim, m)
        )
        self.carrier_services = CarrierServices(lease, env.carrier, env.carrier_timeout_s)
        self.actions: list[Action] = []
        self.captures: dict[str, Received] = {}
        self.obligation_id: int | None = None
        self.keyword_sent_for: frozenset[int] = frozenset()
        self.listing: tuple[ListedItem, ...] | None = None
        self.listing_is_last = False
        self.listing_complete = True  # the last list read was whole
        self.last_balance: EventRow | None = None
        self.cancel_acked_at: datetime | None = None
        self.last_send_at: datetime | None = None
        self.observed_until: datetime | None = None
        self.doing = "starting"
        self._next: Step | None = None
        self._wap: WapSteps | None = None
        self._mms: MmsSteps | None = None

    # -- driving ----------------------------------------------------------------------

    def run_all(self, steps: list[Step], tick: Callable[[], None] | None = None) -> None:
        for index, step in enumerate(steps):
            self.run(step, steps[index + 1] if index + 1 < len(steps) else None)
            if tick is not None:
                tick()

    def run(self, step: Step, next_step: Step | None = None) -> None:
        self._next = next_step
        self.doing = f"{type(step).__name__.lower()} (line {step.line})"
        if isinstance(step, Send):
            self.send(step)
        elif isinstance(step, Expect):
            self.expect(step)
        elif isinstance(step, Reply):
            self.reply(step)
        elif isinstance(step, Balance):
            self.balance(step)
        elif isinstance(step, Subscriptions):
            self.subscriptions(step)
        elif isinstance(step, Detail):
            self.detail(step)
        elif isinstance(step, Observe):
            self._waiting("whatever comes (observing)", self.env.scaled(step.seconds))
            self.intake.observe(self.env.scaled(step.seconds))
        elif isinstance(step, Cancel):
            self.cancel(step)
        elif isinstance(step, CancelAll):
            self.cancel_all(step)
        elif isinstance(step, Open | Explore | Order | Use):
            if self._wap is None:
                self._wap = WapSteps(self)
            self._wap.run(step)
        elif isinstance(step, Call):
            self.call(step)
        elif isinstance(step, FetchMms):
            if self._mms is None:
                self._mms = MmsSteps(self)
            self._mms.fetch(step)

    def finish(self) -> None:
        """Record whatever is still waiting; the run stops observing here."""
        self.doing = "finishing"
        self.lease.modem.sweep()  # a message whose indication was lost is not left stranded
        self.intake.drain()
        self.observed_until = now()

    # -- helpers ------------------------------------------------------------------------

    def _waiting(self, what: str, seconds: float) -> None:
        """Tell the display (if any) what the run now waits for, and for how long at most."""
        if self.env.on_wait is not None:
            self.env.on_wait(what, seconds)

    def _window(self) -> float | None:
        nxt = self._next
        return self.env.scaled(nxt.within) if isinstance(nxt, Expect | FetchMms) else None

    def _ensure_obligation(self) -> None:
        """Before anything goes to the SP, the promise to clean up is stored."""
        if self.obligation_id is not None or self.service is None:
            return
        horizon = self.env.follow_horizon(now())
        ob = create_obligation(
            self.env.db,
            sim=self.sim,
            sp_code=self.service.sp_code,
            service_code=self.service.service_code,
            access_number=self.service.access_number,
            cancel_cmd=self.service.cancel_cmd or None,
            run_id=self.run_id,
            follow_until=self._follow_until(horizon),
            # a keep probe leaves its monthly subscription on for the follow-up's horizon
            keep_until=horizon if self.flow_kind == "keep" else None,
        )
        self.obligation_id = ob.id

    def _follow_until(self, horizon: datetime | None) -> datetime | None:
        """A kept subscription is followed a few days beyond its cancellation at the horizon,
        for charges after it."""
        if horizon is None or self.flow_kind != "keep":
            return horizon
        return horizon + timedelta(seconds=FOLLOW_AFTER_KEEP_DAYS * self.env.day_s)

    def _send(self, to: str, text: str, purpose: str) -> EventRow:
        """Send, then record (the time is taken before sending: replies come after it)."""
        if to != self.env.carrier.service_number:
            self._ensure_obligation()
            self.listing_is_last = False
        at = now()
        self.lease.send_sms(to, text)
        self.last_send_at = at
        return self.recorder.sms_out(to, text, at, purpose)

    def _act(self, kind: ActionKind, row: EventRow | None, window: float | None) -> None:
        at = row.at if row is not None else now()
        self.actions.append(Action(kind, at, row.id if row else None, window))

    # -- steps --------------------------------------------------------------------------

    def send(self, step: Send) -> None:
        text = expand(step.text, self.service)
        if text is None:
            return
        carrier = self.env.carrier
        to = carrier.service_number if step.to == "carrier" or not self.access else self.access
        row = self._send(to, text, step.purpose)
        kind = PURPOSES.get(step.purpose)
        if kind is ActionKind.CANCEL and to == carrier.service_number:
            kind = ActionKind.CANCEL_ALL
        if kind is not None:
            self._act(kind, row, self._window())

    def expect(self, step: Expect) -> None:
        classes = KINDS[step.kind]

        def match(r: Received) -> bool:
            if step.sender == "sp" and (r.carrier or not from_access(r.message, self.access)):
                return False
            if step.sender == "carrier" and not r.carrier:
                return False
            return classes is None or r.cls in classes

        self._waiting(f"{step.kind} from the {step.sender}", self.env.scaled(step.within))
        got = self.intake.wait_for(match, self.env.scaled(step.within), since=self.last_send_at)
        if got is not None and step.capture:
            self.captures[step.capture] = got
        if got is None and not step.optional:
            self.recorder.note(
                f"expected {step.kind} from {step.sender} within "
                f"{self.env.scaled(step.within):g}s: nothing came",
                line=step.line,
            )
        if self.flow_kind == "decline" and step.kind == "prompt":
            self._act(ActionKind.WITHHOLD, None, None)

    def reply(self, step: Reply) -> None:
        captured = self.captures.get(step.to)
        if captured is None:
            self.recorder.note(f"reply to {step.to} skipped: nothing was captured", line=step.line)
            return
        token = reply_for(captured.message.text, self.env.carrier)
        text = step.text or token
        row = self._send(national(captured.message.sender), text, "confirm")
        confirming = text.strip().upper() == token.strip().upper()
        self._act(ActionKind.CONFIRM if confirming else ActionKind.WITHHOLD, row, self._window())

    def balance(self, step: Balance) -> None:
        self.intake.drain()
        carrier = self.env.carrier
        at = now()
        reading = self.carrier_services.balance()
        if reading.via == "sms":
            self.recorder.sms_out(carrier.service_number, carrier.balance_query, at, "other")
        self.last_balance = self.recorder.balance(reading, step.label)

    def subscriptions(self, step: Subscriptions) -> None:
        self.intake.drain()
        carrier = self.env.carrier
        at = now()
        result = self.carrier_services.subscriptions()
        self.recorder.sms_out(carrier.service_number, carrier.subscriptions_query, at, "other")
        self.recorder.subscriptions(result, step.label)
        self.listing = result.items
        self.listing_complete = result.complete
        # only a whole list may spare cleanup from asking again (fail closed)
        self.listing_is_last = result.complete

    def detail(self, step: Detail) -> None:
        """The itemized bill, where the carrier offers one: the judge reads each charge's
        line (dialbot.judge.itemized); its absence is noted, never judged."""
        carrier = self.env.carrier
        if not carrier.detail_query:
            return
        self.intake.drain()
        row = self._send(carrier.service_number, carrier.detail_query, "other")
        got = self.intake.wait_for(
            lambda r: r.carrier and parse_detail(r.message.text, carrier) is not None,
            self.env.carrier_timeout_s,
            since=row.at,
        )
        if got is None:
            self.recorder.note(
                f"no itemized bill within {self.env.carrier_timeout_s:g}s", label=step.label
            )

    def cancel(self, step: Cancel) -> None:
        if self.service is None or not self.service.cancel_cmd:
            return
        row = self._send(self.access, self.service.cancel_cmd, "cancel")
        window = self.env.scaled(step.within)
        self._act(ActionKind.CANCEL, row, window)
        if self.obligation_id is not None:
            self.keyword_sent_for = self.keyword_sent_for | {self.obligation_id}
        self._waiting("the cancellation's acknowledgement from the sp", window)
        got = self.intake.wait_for(
            lambda r: (
                (not r.carrier)
                and from_access(r.message, self.access)
                and r.cls in (MsgClass.CANCEL_ACK, MsgClass.NEGATIVE)
            ),
            window,
            since=row.at,
        )
        if got is not None and got.cls is MsgClass.CANCEL_ACK:
            self.cancel_acked_at = got.at

    def cancel_all(self, step: CancelAll) -> None:
        carrier = self.env.carrier
        row = self._send(carrier.service_number, carrier.cancel_all, "cancel")
        self._act(ActionKind.CANCEL_ALL, row, self.env.scaled(step.within))
        self.intake.wait_for(lambda r: r.carrier, self.env.carrier_timeout_s, since=row.at)

    def call(self, step: Call) -> None:
        """Dial, key, hold across the planned minutes, hang up, confirm the release.

        A key may subscribe: the cleanup promise is stored before dialling. A
        call that cannot be placed or drops before the hold is over raises
        CallNotPlaced (an infrastructure failure); what was seen is kept.
        """
        if not self.access:
            return
        keys = expand(step.keys, self.service) or ""
        self._ensure_obligation()
        self.listing_is_last = False
        minute = self.env.carrier.billing_minute_s
        voice = self.lease.modem.voice
        try:
            placed = voice.dial(self.access, answer_timeout=step.answer_within)
        except CallNotPlaced as exc:
            self._keep_call(exc.record, step.label)
            raise
        try:
            if keys:
                placed.dtmf(keys)
            if not placed.hold(step.hold * minute - placed.elapsed_since_answer()):
                raise CallNotPlaced("dropped", "the call dropped before the planned hold")
            placed.hang_up()
            released = placed.confirm_released(step.release_within)
        except BaseException:
            placed.close()
            self._keep_call(placed.record, step.label)
            raise
        self._keep_call(placed.record, step.label)
        if not released:
            # the network holds the line: wait (bounded) so the SIM is free and billed in full
            longest = max(120.0, 3 * minute)
            if placed.confirm_released(longest):
                self.recorder.note(f"call released {placed.record.released_t:.1f}s after dialling")
            else:
                self.recorder.note(f"call still up {longest:g}s after the hang-up")

    def _keep_call(self, record: object, label: str) -> None:
        if isinstance(record, CallRecord):
            self.recorder.call(record.evidence(), label)


def effective_steps(flow: Flow, service: ServiceInfo | None) -> list[Step]:
    """The flow's steps for this service: a send whose keyword the service lacks is
    skipped together with the expect right after it."""
    out: list[Step] = []
    skip_expect = False
    for step in flow.steps:
        if skip_expect and isinstance(step, Expect):
            skip_expect = False
            continue
        skip_expect = False
        if isinstance(step, Send) and expand(step.text, service) is None:
            skip_expect = True
            continue
        if isinstance(step, Cancel) and (service is None or not service.cancel_cmd):
            continue
        out.append(step)
    return out


def expand(text: str, service: ServiceInfo | None) -> str | None:
    """`{subscribe}`, `{use}`, `{cancel}` → the service's keywords; None when one is missing."""
    values = {
        "subscribe": service.subscribe_cmd if service else "",
        "use": service.use_cmd if service else "",
        "cancel": service.cancel_cmd if service else "",
    }
    for name, value in values.items():
        token = "{" + name + "}"
        if token in text:
            if not value:
                return None
            text = text.replace(token, value)
    return text
