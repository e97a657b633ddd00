"""The virtual SPs: how each service really behaves (spec/formats.md §4).

One `SpAgent` per SP. It reacts to messages the network routes to it
(order, confirmation, use, cancel) and to the nightly tick (spam, silent
subscriptions), and applies every `Behaviour` knob as documented:

- monthly: order -> prompt -> confirm -> charge + welcome (成功订购) ->
  use keyword -> content -> cancel keyword -> ack (成功退订);
- per-use: order -> prompt -> confirm -> charge + content (the use keyword,
  when declared, orders one more use the same way);
- a monthly subscription then renews on the simulated calendar (free first
  when the service has `trial_days`): see `dialbot.sim.renewals`.

An `mms` service is ordered the same way; its content is an MMS (a
notification pushed by the MMSC, `dialbot.sim.mmsc`), and a monthly one
sends its first issue right after the welcome.

State changes and charges happen when a message is received; replies reach
the handset after the service's latency (ordered per sender). Any other
text to an access number answers a pending prompt: the stated token
confirms it, anything else declines it (the regulated "回复其他内容…则不订购").
With no pending prompt the SP answers a help text listing its keywords.
Everything time-based runs on the network's Scheduler.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dialbot.sim.carrier import Account, Carrier, Send
from dialbot.sim.contracts import Scheduler
from dialbot.sim.phrasing import Phrasing
from dialbot.sim.renewals import Renewals
from dialbot.sim.world import Service, Sp

if TYPE_CHECKING:
    from dialbot.sim.mmsc import Mmsc

CONFIRM_WINDOW_S = 24 * 3600.0
AFTER_CANCEL_SPACING_S = 0.5
MMS_AFTER_WELCOME_S = 0.5


@dataclass
class Pending:
    """An order waiting for its confirmation."""

    token: str
    at: float
    charged: bool


def charged_amount(service: Service) -> int:
    """What the SP really bills for one order: price x charge_factor, rounded half up."""
    return int(service.price_fen * service.behaviour.charge_factor + 0.5)


class SpAgent:
    """One SP with its services."""

    def __init__(
        self,
        sp: Sp,
        index: int,
        carrier: Carrier,
        send: Send,
        clock: Scheduler,
        rng: random.Random,
        accounts: Callable[[], list[Account]],
        renewals: Renewals | None = None,
    ) -> None:
        self.sp = sp
        self.words = Phrasing(sp, index)
        self.carrier = carrier
        self.send = send
        self.clock = clock
        self.rng = rng
        self.accounts = accounts
        self.renewals = renewals
        self.pending: dict[tuple[str, str], Pending] = {}
        self.sent_content: dict[tuple[str, str], int] = {}
        self.mmsc: Mmsc | None = None  # set by the network: delivers `mms` services' content

    # --- routing entry points ---------------------------------------------------------

    def keyword(self, account: Account, service: Service, kind: str) -> None:
        """A keyword of `service` arrived: kind is subscribe, use or cancel."""
        if not self._responds(service):
            return
        if kind == "subscribe" or (kind == "use" and service.billing == "per_use"):
            self.order(account, service)
        elif kind == "use":
            self.use(account, service)
        else:
            self.cancel(account, service)

    def other_text(self, account: Account, access: str, text: str) -> None:
        """Not a keyword: a confirmation, a refusal, or a mistake (help)."""
        pending = self._latest_pending(account, access)
        if pending is None:
            services = [s for s in self.sp.services if s.access == access]
            if services and self._responds(services[0]):
                self.reply(account, services[0], self.words.help(services))
            return
        service, entry = pending
        del self.pending[(account.msisdn, service.code)]
        if not self._responds(service):
            return
        if _matches(text, entry.token):
            self.activate(account, service, "confirmed", already_charged=entry.charged)
        # anything else declines the order silently, as regulated prompts promise

    # --- the flows ----------------------------------------------------------------------

    def order(self, account: Account, service: Service) -> None:
        b = service.behaviour
        if service.billing == "monthly" and (self.sp.code, service.code) in account.subscriptions:
            self.reply(account, service, self.words.already_subscribed(service))
            return
        if not b.confirm_prompt:
            self.activate(account, service, "unconfirmed", already_charged=False)
            return
        token = self._token(service)
        charged = False
        if b.charges_without_confirm:
            self.bill(account, service, charged_amount(service), "unconfirmed_charge")
            charged = True
        self.pending[(account.msisdn, service.code)] = Pending(token, self.clock.elapsed(), charged)
        stated = b.prompt_price_fen if b.prompt_price_fen is not None else service.price_fen
        self.reply(account, service, self.words.prompt(service, stated, token, b.prompt_omits))

    def activate(self, account: Account, service: Service, how: str, already_charged: bool) -> None:
        """The order goes through: charge (maybe twice), subscribe, welcome or content."""
        b = service.behaviour
        amount = charged_amount(service)
        reason = "subscribe" if service.billing == "monthly" else "per_use"
        free = service.billing == "monthly" and service.trial_days > 0
        if not already_charged and not free:
            self.bill(account, service, amount, reason)
        if b.double_charge and not free:
            self.bill(account, service, amount, "duplicate")
        if service.billing == "monthly":
            self.subscribe(account, service, how)
            self.reply(account, service, self.words.welcome(service))
            if self._mms(service) and b.delivers_content:  # the first issue comes with the order
                self.deliver(account, service, MMS_AFTER_WELCOME_S)
        elif b.delivers_content:
            self.deliver(account, service)
        self.carrier.notify_order(account, self.sp, service, amount)

    def use(self, account: Account, service: Service) -> None:
        if (self.sp.code, service.code) not in account.subscriptions:
            self.reply(account, service, self.words.not_subscribed(service))
        elif service.behaviour.delivers_content:
            self.deliver(account, service)

    def deliver(self, account: Account, service: Service, extra_delay_s: float = 0.0) -> None:
        """Content: an SMS, or for an `mms` service a notification of a message at the MMSC."""
        if self._mms(service) and self.mmsc is not None:
            delay = self._latency(service) + extra_delay_s
            self.mmsc.notify(account, self.sp, service, delay)
        else:
            self.reply(account, service, self._content(account, service))

    def _mms(self, service: Service) -> bool:
        return service.channel == "mms" and self.mmsc is not None

    def cancel(self, account: Account, service: Service) -> None:
        if (self.sp.code, service.code) not in account.subscriptions:
            self.reply(account, service, self.words.not_subscribed(service))
            return
        if service.behaviour.cancel_works:
            self.carrier.unsubscribe(account, self.sp, service)
        self.reply(account, service, self.words.cancel_ack(service))
        self.after_cancel(account, self.sp, service)

    def after_cancel(self, account: Account, sp: Sp, service: Service) -> None:
        """What a dishonest SP keeps doing once a cancellation was acknowledged."""
        b = service.behaviour
        if b.charge_after_cancel:
            amount = charged_amount(service)

            def late_charge() -> None:
                self.bill(account, service, amount, "after_cancel")

            self.clock.call_later(b.charge_after_cancel_delay_ms / 1000.0, late_charge)
        for i in range(b.messages_after_cancel):
            delay = self._latency(service) + (i + 1) * AFTER_CANCEL_SPACING_S
            self.send(account.msisdn, service.access, self.words.after_cancel(service, i), delay)
        if self._mms(service) and self.mmsc is not None and b.mms_after_cancel:
            base = self._latency(service) + b.messages_after_cancel * AFTER_CANCEL_SPACING_S
            self.mmsc.after_cancel(account, sp, service, base)

    # --- nights -----------------------------------------------------------------------

    def night(self, night_s: float) -> None:
        """Plan this night's spam and silent subscriptions at random moments in it."""
        for service in self.sp.services:
            b = service.behaviour
            for account in self.accounts():
                for n in range(b.spam_per_night):
                    self.clock.call_later(
                        self.rng.uniform(0, night_s), self._spam_once(account, service, n)
                    )
                clean = (self.sp.code, service.code) not in account.subscriptions
                if b.unsolicited_subscribe > 0 and clean:
                    if self.rng.random() < b.unsolicited_subscribe:
                        self.clock.call_later(
                            self.rng.uniform(0, night_s), self._silent_once(account, service)
                        )

    def _spam_once(self, account: Account, service: Service, n: int) -> Callable[[], None]:
        def spam() -> None:
            if not account.subscribed_to_sp(self.sp.code):
                self.send(account.msisdn, service.access, self.words.spam(service, n), 0.0)

        return spam

    def _silent_once(self, account: Account, service: Service) -> Callable[[], None]:
        def silent() -> None:
            if (self.sp.code, service.code) in account.subscriptions:
                return
            self.bill(account, service, charged_amount(service), "unsolicited")
            if service.billing == "monthly":
                self.subscribe(account, service, "unsolicited")

        return silent

    # --- helpers --------------------------------------------------------------------------

    def subscribe(self, account: Account, service: Service, how: str) -> None:
        """The carrier records the subscription; its renewals (or trial end) are planned."""
        self.carrier.subscribe(account, self.sp, service, how)
        if self.renewals is not None:
            self.renewals.start(self.renew, account, self.sp, service)

    def renew(self, account: Account, service: Service, reason: str) -> None:
        """One month of a subscription: billed like the order (charge factor, duplicates)."""
        amount = charged_amount(service)
        self.bill(account, service, amount, reason)
        if service.behaviour.double_charge:
            self.bill(account, service, amount, "duplicate")

    def bill(self, account: Account, service: Service, amount: int, reason: str) -> None:
        self.carrier.charge(account, amount, reason, self.sp.code, service.code)

    def reply(self, account: Account, service: Service, text: str) -> None:
        self.send(account.msisdn, service.access, text, self._latency(service))

    def _content(self, account: Account, service: Service) -> str:
        key = (account.msisdn, service.code)
        n = self.sent_content.get(key, 0)
        self.sent_content[key] = n + 1
        return self.words.content(service, n)

    def _latency(self, service: Service) -> float:
        low, high = service.behaviour.latency_ms
        return self.rng.randint(low, high) / 1000.0

    def _responds(self, service: Service) -> bool:
        rate = service.behaviour.responds
        return rate >= 1.0 or self.rng.random() < rate

    def _token(self, service: Service) -> str:
        kind = self.words.token_kind(service)
        return f"{self.rng.randint(0, 9999):04d}" if kind == "otp" else kind

    def pending_at(self, account: Account, access: str) -> float | None:
        """When the SIM's live prompt at this access number was sent, if it has one."""
        found = self._latest_pending(account, access)
        return found[1].at if found else None

    def _latest_pending(self, account: Account, access: str) -> tuple[Service, Pending] | None:
        now = self.clock.elapsed()
        best: tuple[Service, Pending] | None = None
        for service in self.sp.services:
            entry = self.pending.get((account.msisdn, service.code))
            if entry is None or service.access != access:
                continue
            if now - entry.at > CONFIRM_WINDOW_S:
                del self.pending[(account.msisdn, service.code)]
                continue
            if best is None or entry.at >= best[1].at:
                best = (service, entry)
        return best


def _matches(text: str, token: str) -> bool:
    return text.strip().upper() == token.upper()
