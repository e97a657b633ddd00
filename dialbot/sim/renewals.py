"""The month after an order: renewals, free trials and the carrier's reminders.

A monthly subscription renews at every month boundary of the simulated
calendar (`dialbot.sim.clock.Calendar`, scaled by the world's
`calendar.time_scale`); a service with `trial_days` is free until its trial
ends, then converts to paid and renews monthly from there. Before each
renewal or conversion an honest carrier sends a reminder from 10086901
(`calendar.reminder_days` ahead, at once when the order came later than
that); the charge itself lands `late_charge_s` simulated seconds after the
boundary (charges that reach the bill a day or three late).

The dishonest knobs: `renews_without_reminder` (no 扣费提醒 before a
renewal), `trial_converts_silently` (no 计费提醒 before the trial turns paid).

A renewal follows the subscription it was planned for: once that
subscription is cancelled, nothing more happens (charges after a
cancellation are the SP's `charge_after_cancel` behaviour, not a renewal).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from dialbot.sim.carrier import NOTICE_SUFFIX, Account, Carrier, Subscription
from dialbot.sim.clock import Calendar
from dialbot.sim.contracts import Scheduler
from dialbot.sim.phrasing import renewal_reminder, trial_reminder
from dialbot.sim.world import Service, Sp

REMINDER_MIN_DELAY_S = 0.5  # a reminder already due goes out just after the order's replies
RENEWAL = "renewal"
CONVERSION = "trial_conversion"

# `renew(account, service, reason)`: the SP bills one month (its charge factor, duplicates).
Renew = Callable[[Account, Service, str], None]


class Renewals:
    """Plans each monthly subscription's next renewal (or trial end) on the network clock."""

    def __init__(self, carrier: Carrier, calendar: Calendar, clock: Scheduler) -> None:
        self.carrier = carrier
        self.calendar = calendar
        self.clock = clock

    def start(self, renew: Renew, account: Account, sp: Sp, service: Service) -> None:
        """A monthly subscription began now: plan its trial end or its first renewal."""
        sub = account.subscriptions.get((sp.code, service.code))
        if sub is None or service.billing != "monthly":
            return
        today = self.calendar.date_at(self.clock.elapsed())
        if service.trial_days:
            self._plan(renew, account, sub, today + timedelta(days=service.trial_days), CONVERSION)
        else:
            self._plan(renew, account, sub, Calendar.next_month(today), RENEWAL)

    def _plan(
        self, renew: Renew, account: Account, sub: Subscription, due: datetime, kind: str
    ) -> None:
        """Schedule the reminder (unless the SP skips it) and the charge of one renewal."""
        b = sub.service.behaviour
        silent = b.trial_converts_silently if kind == CONVERSION else b.renews_without_reminder
        now = self.clock.elapsed()
        if not silent:
            lead = timedelta(days=self.calendar.settings.reminder_days)
            remind_at = self.calendar.elapsed_at(due - lead)
            delay = max(remind_at - now, REMINDER_MIN_DELAY_S)
            self.clock.call_later(delay, self._reminder(account, sub, kind))
        charge_at = self.calendar.elapsed_at(due + timedelta(seconds=b.late_charge_s))

        def charge() -> None:
            if not _still(account, sub):
                return
            renew(account, sub.service, kind)
            self._plan(renew, account, sub, Calendar.next_month(due), RENEWAL)

        self.clock.call_later(max(charge_at - now, 0.0), charge)

    def _reminder(self, account: Account, sub: Subscription, kind: str) -> Callable[[], None]:
        def remind() -> None:
            if not _still(account, sub):
                return
            words = trial_reminder if kind == CONVERSION else renewal_reminder
            text = words(sub.sp, sub.service, sub.service.price_fen)
            sender = self.carrier.profile.service_number + NOTICE_SUFFIX
            self.carrier.send(account.msisdn, sender, text, 0.0)

        return remind


def _still(account: Account, sub: Subscription) -> bool:
    """Whether this very subscription is still active (not cancelled, not re-ordered)."""
    return account.subscriptions.get((sub.sp.code, sub.service.code)) is sub
