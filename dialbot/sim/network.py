"""The virtual network: routes what handsets send, delivers what they receive.

`Network` implements `NetworkPort` for the AT side. A message to the
carrier's service number goes to the carrier; to an SP access number, to the
SP service with that keyword (a non-keyword text answers the SIM's pending
prompt at that number, or gets the SP's help text); to another SIM of the
bank, to that SIM; anything else is recorded and dropped. Deliveries are
scheduled on the Scheduler after the sender's latency and never overtake an
earlier message from the same sender to the same SIM. A message, WAP PUSH
or MMS notification for a SIM whose handset is not attached (off the
network: the virtual modems detach as they lose registration) waits in the
SMSC (`dialbot.sim.smsc`) until it attaches again, for `sms_validity_s`.

All randomness comes from one `random.Random(world.seed)`, so a run is
reproducible. `ground_truth()` is the only way anything learns what really
happened; it is for the bank's shutdown dump and for tests, never the robot.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from dialbot.sim.carrier import Account, Carrier
from dialbot.sim.clock import Calendar
from dialbot.sim.contracts import CallResult, Handset, HttpRequest, HttpResult, Scheduler
from dialbot.sim.ivr import IvrPlatform
from dialbot.sim.mmsc import Mmsc
from dialbot.sim.renewals import Renewals
from dialbot.sim.smsc import Smsc
from dialbot.sim.sps import SpAgent
from dialbot.sim.wap import WapGateway
from dialbot.sim.world import Service, Sp, World

KEYWORD_KINDS = ("subscribe", "use", "cancel")


def normalize_number(number: str) -> str:
    """Strip what a modem may add in front of a national number (+86, 86, spaces)."""
    digits = number.strip().replace(" ", "").lstrip("+")
    if digits.startswith("86") and len(digits) == 13 and digits[2] == "1":
        return digits[2:]
    return digits


class Network:
    """The carrier and the SPs of one world, on one thread driven by `scheduler`."""

    def __init__(self, world: World, scheduler: Scheduler) -> None:
        self.world = world
        self.clock = scheduler
        self.rng = random.Random(world.seed)
        self.handsets: dict[str, Handset] = {}
        self.accounts: dict[str, Account] = {
            card.msisdn: Account(card.msisdn, card.slot, card.balance_fen) for card in world.sims
        }
        self.smsc = Smsc(scheduler, world.sms_validity_s, self.handsets, self._record)
        self._last_due: dict[tuple[str, str], float] = {}
        self.closed = False
        self.carrier = Carrier(
            world.carrier,
            scheduler,
            self.send,
            self._after_cancel,
            order_notices=bool(world.extra.get("order_notices", True)),
        )
        # Renewals only in a world with a calendar: without one, a subscription lasts as it
        # always did (a probe's few minutes never span a month boundary by accident).
        self.renewals: Renewals | None = None
        if world.calendar is not None:
            calendar = Calendar(world.calendar, scheduler.now(), scheduler.elapsed())
            self.renewals = Renewals(self.carrier, calendar, scheduler)
        self.carrier.names = {
            (sp.code, s.code): (sp.name, s.name) for sp in world.sps for s in sp.services
        }
        self.ivr = IvrPlatform(self.carrier, scheduler)
        self.agents: dict[str, SpAgent] = {}
        self.routes: dict[tuple[str, str], tuple[SpAgent, Service, str]] = {}
        self.by_access: dict[str, list[SpAgent]] = {}
        for index, sp in enumerate(world.sps):
            self._add_sp(index, sp)
        self.wap = WapGateway(world, self.carrier, self._account)
        self.mmsc = Mmsc(world.carrier, scheduler, self.rng, self._mms_notification)
        self.wap.hosts[self.mmsc.host] = self.mmsc.handle
        for agent in self.agents.values():
            agent.mmsc = self.mmsc
        if any(
            s.behaviour.spam_per_night
            or s.behaviour.unsolicited_subscribe
            or s.behaviour.wap_push_per_night
            for sp in world.sps
            for s in sp.services
        ):
            self.clock.call_later(0.0, self._night)

    def _add_sp(self, index: int, sp: Sp) -> None:
        agent = SpAgent(
            sp, index, self.carrier, self.send, self.clock, self.rng, self._account_list,
            self.renewals,
        )  # fmt: skip
        self.agents[sp.code] = agent
        for service in sp.services:
            if service.channel == "ivr":
                self.ivr.add(sp, service)
                continue
            if not service.access:
                continue  # a WAP service without an SMS side
            owners = self.by_access.setdefault(service.access, [])
            if agent not in owners:
                owners.append(agent)
            for kind in KEYWORD_KINDS:
                word = getattr(service, kind)
                if word:
                    self.routes[(service.access, word.upper())] = (agent, service, kind)

    # --- NetworkPort ----------------------------------------------------------------

    def attach(self, handset: Handset) -> None:
        """Register a handset; what the SMSC held while it was away is delivered now."""
        msisdn = normalize_number(handset.msisdn)
        self.handsets[msisdn] = handset
        self._account(msisdn)
        self.smsc.alert(msisdn)

    def detach(self, msisdn: str) -> None:
        """The handset left the network (modem stopped, network lost): store its messages."""
        self.handsets.pop(normalize_number(msisdn), None)

    def submit_sms(self, msisdn: str, destination: str, text: str) -> None:
        """A mobile-originated message: record it, charge the MO fee, route it."""
        account = self._account(normalize_number(msisdn))
        to = normalize_number(destination)
        self._record(account, "mo", "sms", to, text)
        if to == self.world.carrier.service_number:
            self.carrier.handle_sms(account, text)
        elif to in self.by_access:
            self._to_sp(account, to, text)
        elif to in self.accounts:
            self.send(to, account.msisdn, text, 0.0)

    def ussd(self, msisdn: str, request: str) -> str | None:
        account = self._account(normalize_number(msisdn))
        self._record(account, "mo", "ussd", "", request)
        reply = self.carrier.ussd(account, request)
        if reply is not None:
            self._record(account, "mt", "ussd", "", reply)
        return reply

    def dial(self, msisdn: str, number: str) -> CallResult:
        """10086 and IVR lines answer; another SIM of the bank answers; the rest rings out."""
        account = self._account(normalize_number(msisdn))
        to = normalize_number(number)
        if self.ivr.serves(to):
            result = self.ivr.dial(account, to)
        elif to == self.world.carrier.service_number:
            result = CallResult(answered=True, answer_after_s=1.0, duration_s=5.0)
        elif to in self.handsets:
            result = CallResult(answered=True, answer_after_s=2.0, duration_s=3.0)
        else:
            result = CallResult(answered=False)
        self._record(account, "mo", "call", to, "answered" if result.answered else "no answer")
        return result

    def http(self, msisdn: str, request: HttpRequest) -> HttpResult:
        """A request over the data bearer: only the carrier's WAP gateway answers."""
        account = self._account(normalize_number(msisdn))
        result = self.wap.request(account.msisdn, request)
        outcome = result.error or str(result.status)
        self._record(account, "mo", "http", request.url, f"{request.method} {outcome}")
        return result

    # --- delivery -----------------------------------------------------------------------

    def send(self, msisdn: str, sender: str, text: str, delay_s: float) -> None:
        """Deliver text to msisdn after delay_s, never before an earlier one from sender."""
        key = (msisdn, sender)
        due = max(self.clock.elapsed() + max(delay_s, 0.0), self._last_due.get(key, 0.0))
        self._last_due[key] = due
        delay = max(due - self.clock.elapsed(), 0.0)

        def deliver() -> None:
            if not self.closed:
                self.smsc.deliver(self._account(msisdn), "sms", sender, text)

        self.clock.call_later(delay, deliver)

    def _mms_notification(self, account: Account, sender: str, payload: bytes, url: str) -> None:
        """The MMSC's notification (a WSP push) goes out through the SMSC like any push."""
        if not self.closed:
            self.smsc.deliver(account, "mms", sender, url, payload=payload)

    # --- routing ------------------------------------------------------------------------

    def _to_sp(self, account: Account, access: str, text: str) -> None:
        owners = self.by_access[access]
        fee = self.world.carrier.mo_sms_fee_fen
        route = self.routes.get((access, text.strip().upper()))
        if fee:
            sp_code = route[0].sp.code if route else owners[0].sp.code
            service_code = route[1].code if route else ""
            self.carrier.charge(account, fee, "mo_sms_fee", sp_code, service_code)
        if route is not None:
            agent, service, kind = route
            agent.keyword(account, service, kind)
            return
        waiting = [(a.pending_at(account, access), a) for a in owners]
        live = [(at, a) for at, a in waiting if at is not None]
        agent = max(live, key=lambda item: item[0])[1] if live else owners[0]
        agent.other_text(account, access, text)

    def _after_cancel(self, account: Account, sp: Sp, service: Service) -> None:
        self.agents[sp.code].after_cancel(account, sp, service)

    def _night(self) -> None:
        if self.closed:
            return
        for agent in self.agents.values():
            agent.night(self.world.night_s)
        self._push_night(self.world.night_s)
        self.clock.call_later(self.world.night_s, self._night)

    def _push_night(self, night_s: float) -> None:
        """Unsolicited SI pushes of this night, to SIMs not subscribed to the SP."""
        for sp in self.world.sps:
            for service in sp.services:
                count = service.behaviour.wap_push_per_night
                if not count or not service.url:
                    continue
                for account in list(self.accounts.values()):
                    for n in range(count):
                        at = self.rng.uniform(0, night_s)
                        self.clock.call_later(at, self._push_once(account, sp, service, n))

    def _push_once(self, account: Account, sp: Sp, service: Service, n: int) -> Callable[[], None]:
        def push() -> None:
            if self.closed or account.subscribed_to_sp(sp.code):
                return
            sender = service.access or f"10657{sp.code}"
            text = f"{service.name}：免费体验第{n + 1}期，点击进入"
            self.smsc.deliver(account, "wap_push", sender, text, href=service.url or "")

        return push

    # --- bookkeeping --------------------------------------------------------------------

    def _account(self, msisdn: str) -> Account:
        """The SIM's account; a SIM the world did not declare starts with nothing."""
        account = self.accounts.get(msisdn)
        if account is None:
            account = self.accounts[msisdn] = Account(msisdn, None, 0)
        return account

    def _account_list(self) -> list[Account]:
        return list(self.accounts.values())

    def _record(self, account: Account, direction: str, kind: str, peer: str, text: str) -> None:
        account.messages.append(
            {
                "at": self.clock.now().isoformat(),
                "dir": direction,
                "kind": kind,
                "peer": peer,
                "text": text,
            }
        )

    def close(self) -> None:
        """Stop nightly behaviour and deliveries (safe to call twice)."""
        self.closed = True
        self.mmsc.closed = True
        self.smsc.closed = True

    def balance_fen(self, msisdn: str) -> int:
        """For tests and the bank's own display: a SIM's true balance."""
        return self._account(normalize_number(msisdn)).balance_fen

    def ground_truth(self) -> dict[str, Any]:
        """Everything that really happened, JSON-able, keyed by SIM msisdn."""
        sims: dict[str, Any] = {}
        for msisdn, acc in self.accounts.items():
            sims[msisdn] = {
                "slot": acc.slot,
                "balance_fen": acc.balance_fen,
                "ledger": [
                    {
                        "at": e.at,
                        "amount_fen": e.amount_fen,
                        "reason": e.reason,
                        "sp_code": e.sp_code,
                        "service_code": e.service_code,
                    }
                    for e in acc.ledger
                ],
                "subscriptions": [
                    {
                        "sp_code": sub.sp.code,
                        "service_code": sub.service.code,
                        "since": sub.since,
                        "how": sub.how,
                    }
                    for sub in acc.subscriptions.values()
                ],
                "messages": list(acc.messages),
                "undelivered": self.smsc.undelivered(msisdn),
                "expired": self.smsc.dropped(msisdn),
            }
        return {
            "bank": self.world.bank_name,
            "world": self.world.source,
            "at": self.clock.now().isoformat(),
            "sims": sims,
        }
