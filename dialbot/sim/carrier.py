"""The virtual carrier: accounts, the billing ledger, and the service number.

The carrier is the only party that moves money: SPs ask it to charge, so
every fen that leaves a SIM is one ledger entry (time, amount, reason, SP,
service) - the ground truth the judge's findings are checked against.

Its service number answers exactly the texts of spec/formats.md §3 (balance
`CXYE`, subscription list `0000`, cancel-all `00000`) and, when the profile
names a `detail_query` (e.g. `CXXD`), the itemized bill; it also understands
the real network's cancel-by-item-number (reply with the item numbers of the
last list, within 2 hours). Anything else gets a help text naming the
commands. USSD answers the balance for `*125#` and for the profile's USSD
code when the profile asks the balance by USSD.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dialbot.carrier import CarrierProfile
from dialbot.sim.contracts import Scheduler
from dialbot.sim.phrasing import order_notice
from dialbot.sim.world import Service, Sp

BRAND = "中国移动"
NOTICE_SUFFIX = "901"  # order notices come from e.g. 10086901, as on the real network
ITEM_CANCEL_WINDOW_S = 2 * 3600.0
DETAIL_LINES = 20  # the itemized bill shows the SIM's last charges
DEFAULT_USSD_BALANCE = "*125#"
_ITEMS = re.compile(r"^\d{1,3}(?:[，,、]\d{1,3})*$")

# `send(msisdn, sender, text, delay_s)`: a mobile-terminated message, via the network.
Send = Callable[[str, str, str, float], None]


@dataclass(frozen=True)
class LedgerEntry:
    at: str  # ISO time in the carrier's zone
    amount_fen: int
    reason: str
    sp_code: str
    service_code: str


@dataclass
class Subscription:
    sp: Sp
    service: Service
    since: str
    how: str  # "confirmed", "unconfirmed" (no prompt), "unsolicited" (silent)


@dataclass
class Account:
    """One SIM as the carrier sees it."""

    msisdn: str
    slot: int | None
    balance_fen: int
    ledger: list[LedgerEntry] = field(default_factory=list)
    subscriptions: dict[tuple[str, str], Subscription] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    listed: list[tuple[str, str]] = field(default_factory=list)
    listed_at: float | None = None

    def subscribed_to_sp(self, sp_code: str) -> bool:
        return any(key[0] == sp_code for key in self.subscriptions)


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


class Carrier:
    """Billing and the service number; `on_cancel` tells the SP side a subscription ended."""

    def __init__(
        self,
        profile: CarrierProfile,
        clock: Scheduler,
        send: Send,
        on_cancel: Callable[[Account, Sp, Service], None],
        order_notices: bool = True,
    ) -> None:
        self.profile = profile
        self.clock = clock
        self.send = send
        self.on_cancel = on_cancel
        self.order_notices = order_notices
        # (sp_code, service_code) -> (SP name, service name), for the itemized bill.
        self.names: dict[tuple[str, str], tuple[str, str]] = {}

    # --- money and subscriptions --------------------------------------------------

    def charge(self, account: Account, amount_fen: int, reason: str, sp: str, service: str) -> None:
        """Take money from a SIM and write the ledger entry that proves it."""
        if amount_fen <= 0:
            return
        account.balance_fen -= amount_fen
        account.ledger.append(
            LedgerEntry(self.clock.now().isoformat(), amount_fen, reason, sp, service)
        )

    def subscribe(self, account: Account, sp: Sp, service: Service, how: str) -> None:
        account.subscriptions[(sp.code, service.code)] = Subscription(
            sp, service, self.clock.now().isoformat(), how
        )

    def unsubscribe(self, account: Account, sp: Sp, service: Service) -> bool:
        return account.subscriptions.pop((sp.code, service.code), None) is not None

    def notify_order(self, account: Account, sp: Sp, service: Service, charged_fen: int) -> None:
        """The carrier's own 订购提醒 after an order went through its billing."""
        if not self.order_notices:
            return
        sender = self.profile.service_number + NOTICE_SUFFIX
        self.send(account.msisdn, sender, order_notice(sp, service, charged_fen, BRAND), 0.5)

    # --- the service number ---------------------------------------------------------

    def handle_sms(self, account: Account, text: str) -> None:
        """A message to the service number: answer it exactly as spec §3 shows."""
        command = text.strip().upper()
        profile = self.profile
        if command == profile.balance_query.upper() and not profile.balance_by_ussd:
            reply = self.balance_text(account)
        elif command == profile.subscriptions_query.upper():
            reply = self.list_text(account)
        elif command == profile.cancel_all.upper():
            reply = self.cancel_all(account)
        elif profile.detail_query and command == profile.detail_query.upper():
            reply = self.detail_text(account)
        elif _ITEMS.match(command) and self._list_fresh(account):
            reply = self.cancel_items(account, command)
        else:
            reply = self.help_text()
        self.send(account.msisdn, profile.service_number, reply, 0.0)

    def ussd(self, account: Account, request: str) -> str | None:
        """USSD: the balance for *125# (and the profile's USSD code); None otherwise."""
        codes = {DEFAULT_USSD_BALANCE}
        if self.profile.balance_by_ussd:
            codes.add(self.profile.ussd_code)
        if request.strip() in codes:
            return self.balance_text(account)
        return None

    def balance_text(self, account: Account) -> str:
        return f"尊敬的客户，您的账户余额为{yuan(account.balance_fen)}元。【{BRAND}】"

    def detail_text(self, account: Account) -> str:
        """The itemized bill (详单): the last charges, one line each with time, SP,
        service and amount, as the profile's `detail_item` reads them."""
        entries = account.ledger[-DETAIL_LINES:]
        if not entries:
            return f"尊敬的客户，您近期没有增值业务消费明细。【{BRAND}】"
        lines = []
        for i, e in enumerate(entries, start=1):
            sp_name, service_name = self.names.get((e.sp_code, e.service_code), (e.sp_code, ""))
            if e.reason == "mo_sms_fee":
                service_name = "短信费"
            at = datetime.fromisoformat(e.at).strftime("%Y-%m-%d %H:%M:%S")
            lines.append(
                f"{i}、{at}，{sp_name}，{service_name or e.service_code}，{yuan(e.amount_fen)}元"
            )
        return f"尊敬的客户，您近期的增值业务消费明细：{'；'.join(lines)}。【{BRAND}】"

    def list_text(self, account: Account) -> str:
        subs = list(account.subscriptions.values())
        account.listed = [(s.sp.code, s.service.code) for s in subs]
        account.listed_at = self.clock.elapsed()
        if not subs:
            return f"尊敬的客户，您目前没有订购任何增值业务。【{BRAND}】"
        items = "；".join(
            f"{i}、{s.service.name}（{s.sp.name}），{yuan(s.service.price_fen)}元/月"
            for i, s in enumerate(subs, start=1)
        )
        return f"尊敬的客户，您已订购以下业务：{items}。回复序号可退订。【{BRAND}】"

    def cancel_all(self, account: Account) -> str:
        for sub in list(account.subscriptions.values()):
            self.unsubscribe(account, sub.sp, sub.service)
            self.on_cancel(account, sub.sp, sub.service)
        return f"尊敬的客户，您已成功退订全部增值业务。【{BRAND}】"

    def cancel_items(self, account: Account, command: str) -> str:
        numbers = [int(n) for n in re.split(r"[，,、]", command)]
        done = []
        for n in numbers:
            if not 1 <= n <= len(account.listed):
                return f"尊敬的客户，序号{n}不存在，请发送{self.profile.subscriptions_query}重新查询。【{BRAND}】"
            sub = account.subscriptions.get(account.listed[n - 1])
            if sub is not None:
                self.unsubscribe(account, sub.sp, sub.service)
                self.on_cancel(account, sub.sp, sub.service)
                done.append(f"{sub.service.name}（{sub.sp.name}）")
        if not done:
            return f"尊敬的客户，您选择的业务已退订。【{BRAND}】"
        return f"尊敬的客户，您已成功退订{'、'.join(done)}。【{BRAND}】"

    def help_text(self) -> str:
        p = self.profile
        balance = (
            f"查询余额请拨{p.ussd_code}"
            if p.balance_by_ussd
            else f"查询余额请发送{p.balance_query}"
        )
        return (
            f"尊敬的客户，您发送的指令无法识别。{balance}，查询已订购业务请发送"
            f"{p.subscriptions_query}，退订全部业务请发送{p.cancel_all}。【{BRAND}】"
        )

    def _list_fresh(self, account: Account) -> bool:
        at = account.listed_at
        return at is not None and self.clock.elapsed() - at <= ITEM_CANCEL_WINDOW_S
