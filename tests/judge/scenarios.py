"""Hand-built runs for the judge tests: a tiny test-side SP and the standard flows.

The judge must never see the simulator, and neither do these tests: the SP
behaviour below is written here from spec/formats.md §4, and the message
texts are literal copies of the variants the simulator's phrasing uses
(dialbot/sim/phrasing.py), so that the judge is tested on the same wording
without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dialbot.carrier import CarrierProfile
from dialbot.judge.model import (
    Action,
    ActionKind,
    Event,
    ListedItem,
    RunRecord,
    ServiceInfo,
)

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 24, 1, 0, 0, tzinfo=TZ)

XHXH = ServiceInfo(
    sp_code="901001",
    sp_name="星河科技",
    sp_hotline="4008001001",
    service_code="XHXH",
    service_name="星河笑话",
    access_number="1065800101",
    billing="monthly",
    price_fen=500,
    subscribe_cmd="DG",
    cancel_cmd="TD",
    use_cmd="XH",
)
XHXZ = ServiceInfo(
    sp_code="901001",
    sp_name="星河科技",
    sp_hotline="4008001001",
    service_code="XHXZ",
    service_name="星河星座",
    access_number="1065800102",
    billing="per_use",
    price_fen=100,
    subscribe_cmd="XZ",
)
HNYY = ServiceInfo(
    sp_code="901009",
    sp_name="海纳传媒",
    sp_hotline="4008001009",
    service_code="HNYY",
    service_name="海纳音乐",
    access_number="1065800902",
    billing="monthly",
    price_fen=600,
    subscribe_cmd="YY",
    cancel_cmd="TDYY",
    use_cmd="TYY",
)
CATALOGUE = (XHXH, XHXZ, HNYY)

# Chinese money as the simulator writes it, for the prices used here.
CN_MONEY = {
    500: "五元",
    100: "一元",
    10: "一角",
    150: "一元五角",
    1000: "十元",
    200: "二元",
    600: "六元",
}


def plain(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}".rstrip("0").rstrip(".")


def two(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def price_text(style: int, fen: int, billing: str) -> str:
    """The four price notations of the simulator's SPs (literal templates)."""
    n = style % 4
    if billing == "monthly":
        return [
            f"资费{plain(fen)}元/月",
            f"信息费{two(fen)}元/月",
            f"每月{plain(fen)}元",
            f"{CN_MONEY[fen]}每月",
        ][n]
    return [
        f"{plain(fen)}元/条",
        f"信息费{plain(fen)}元/次",
        f"{plain(fen)}元/次",
        f"{CN_MONEY[fen]}每条",
    ][n]


BRACKETS = (("【", "】"), ("[", "]"), ("【", "】"), ("", "："))
HOTLINES = ("客服电话", "咨询请拨", "客服：", "客服热线")
TOKENS = ("Y", "是", "otp", "Y", "是", "Y")


@dataclass(frozen=True)
class Knobs:
    """How the test SP behaves; defaults = honest (mirrors spec/formats.md §4)."""

    confirm_prompt: bool = True
    charges_without_confirm: bool = False
    prompt_price_fen: int | None = None
    prompt_omits: tuple[str, ...] = ()
    charged_fen: int | None = None  # None: the tariff
    double_charge: bool = False
    cancel_works: bool = True
    charge_after_cancel: bool = False
    messages_after_cancel: int = 0
    responds: bool = True
    delivers_content: bool = True
    notices: bool = True
    style: int = 0
    mo_fee_fen: int = 0
    latency_s: float = 0.2


@dataclass
class Builder:
    """Collects events with times; ids are given in time order when the record is built."""

    service: ServiceInfo
    knobs: Knobs
    flow: str
    start_fen: int = 10000
    now: datetime = T0
    raw: list[dict] = field(default_factory=list)
    actions: list[tuple[ActionKind, int | None, float | None, datetime]] = field(
        default_factory=list
    )
    ledger: list[tuple[datetime, int]] = field(default_factory=list)
    subscribed: bool = False
    catalogue: tuple[ServiceInfo, ...] = CATALOGUE
    legit: frozenset[tuple[str, str]] = frozenset()
    infra_failed: bool = False

    # --- primitives -------------------------------------------------------------------
    def wait(self, s: float) -> None:
        self.now += timedelta(seconds=s)

    def _add(self, at: datetime, **kw: object) -> int:
        self.raw.append({"at": at, **kw})
        return len(self.raw) - 1

    def sms_in(self, text: str, peer: str | None = None, delay: float | None = None) -> int:
        delay = self.knobs.latency_s if delay is None else delay
        at = self.now + timedelta(seconds=delay)
        return self._add(at, kind="sms_in", peer=peer or self.service.access_number, text=text)

    def sms_out(self, text: str, peer: str | None = None) -> int:
        if peer is None or not peer.startswith("10086"):
            self.charge(self.knobs.mo_fee_fen, 0.05)
        return self._add(
            self.now, kind="sms_out", peer=peer or self.service.access_number, text=text
        )

    def act(self, kind: ActionKind, ref: int | None, window: float | None) -> None:
        self.actions.append((kind, ref, window, self.now))

    def charge(self, fen: int, delay: float = 0.0) -> None:
        if fen:
            self.ledger.append((self.now + timedelta(seconds=delay), fen))

    def balance(self) -> None:
        self.wait(1)
        self.sms_out("CXYE", "10086")
        self._add(self.now + timedelta(seconds=0.5), kind="balance", peer="10086", text="")
        self.wait(1)

    def listing(self) -> None:
        self.wait(1)
        self.sms_out("0000", "10086")
        items = (
            (ListedItem(self.service.service_name, self.service.sp_name),)
            if self.subscribed
            else ()
        )
        self._add(
            self.now + timedelta(seconds=0.5), kind="subscriptions", peer="10086", items=items
        )
        self.wait(1)

    # --- SP side ----------------------------------------------------------------------
    @property
    def head(self) -> str:
        left, right = BRACKETS[self.knobs.style % 4]
        return f"{left}{self.service.sp_name}{right}"

    def token(self) -> str:
        kind = TOKENS[self.knobs.style % 6]
        if kind == "otp":
            return "4821" if self.service.billing == "per_use" else "Y"
        return kind

    def prompt_text(self) -> str:
        k, s = self.knobs, self.service
        omits = k.prompt_omits
        left, right = BRACKETS[k.style % 4]
        head = f"{left}{s.sp_name}{right}" if "sp_name" not in omits else ""
        verb = "订购" if s.billing == "monthly" else "点播"
        what = f"{verb}{s.service_name}业务"
        if "sp_name" not in omits and left == "":
            what += f"（由{s.sp_name}提供）"
        parts = [f"{head}您正在", what]
        if "price" not in omits:
            stated = k.prompt_price_fen if k.prompt_price_fen is not None else s.price_fen
            parts.append(f"，{price_text(k.style, stated, s.billing)}")
        tok = self.token()
        if tok == "是":
            parts.append('。请在24小时内回复"是"确认订购，回复其他内容或不回复，则不订购')
        elif tok.isdigit():
            parts.append(f"。本次密码{tok}，输入密码确认点播")
        else:
            parts.append(f"。回复{tok}确认{verb}，不回复则不{verb}")
        if "hotline" not in omits and s.sp_hotline:
            parts.append(f"。{HOTLINES[(k.style // 2) % 4]}{s.sp_hotline}")
        return "".join(parts) + "。"

    def welcome_text(self) -> str:
        s = self.service
        text = f"{self.head}您已成功订购{s.service_name}，{price_text(self.knobs.style, s.price_fen, s.billing)}。"
        text += f"发送{s.use_cmd}获取内容，" if s.use_cmd else ""
        text += f"发送{s.cancel_cmd}退订。" if s.cancel_cmd else ""
        return text + f"客服电话{s.sp_hotline}"

    def content_text(self, n: int = 0) -> str:
        lines = (
            "小明问爸爸：为什么月亮跟着我走？爸爸说：因为它也想回家。",
            "健康提示：饭后散步十分钟，有助消化。",
        )
        return f"{self.head}{self.service.service_name}第{n + 1}期：{lines[n % 2]}"

    def activate(self, already_charged: bool) -> None:
        s, k = self.service, self.knobs
        amount = k.charged_fen if k.charged_fen is not None else s.price_fen
        if not already_charged:
            self.charge(amount, 0.01)
        if k.double_charge:
            self.charge(amount, 0.02)
        if s.billing == "monthly":
            self.subscribed = True
            self.sms_in(self.welcome_text())
        elif k.delivers_content:
            self.sms_in(self.content_text())
        if k.notices:
            if s.billing == "monthly":
                notice = f"订购提醒：您已成功订购由{s.sp_name}提供的{s.service_name}，{plain(amount)}元/月（由中国移动代收费），如有疑问请拨打10086。"
            else:
                notice = f"点播提醒：您已点播由{s.sp_name}提供的{s.service_name}，{plain(amount)}元/次（由中国移动代收费），如有疑问请拨打10086。"
            self.sms_in(notice, peer="10086901", delay=0.5)

    # --- flow steps (the standard flows of dialbot/flows/standard) ---------------------
    def order(self) -> bool:
        """Send the order; True when a prompt came."""
        ref = self.sms_out(self.service.subscribe_cmd)
        self.act(ActionKind.ORDER, ref, 60.0)
        k = self.knobs
        if not k.responds:
            self.wait(60)
            return False
        if not k.confirm_prompt:
            self.activate(already_charged=False)
            self.wait(60)
            return False
        self.charged_early = k.charges_without_confirm
        if k.charges_without_confirm:
            self.charge(k.charged_fen or self.service.price_fen, 0.01)
        self.sms_in(self.prompt_text())
        self.wait(k.latency_s + 1)  # the runner waits for the prompt
        return True

    def confirm(self, window: float | None) -> None:
        ref = self.sms_out(self.token())
        self.act(ActionKind.CONFIRM, ref, window)
        if self.knobs.responds:
            self.activate(already_charged=getattr(self, "charged_early", False))
        self.wait(self.knobs.latency_s + 1)

    def use(self) -> None:
        ref = self.sms_out(self.service.use_cmd)
        self.act(ActionKind.USE, ref, 60.0)
        if not self.knobs.responds:
            self.wait(60)
            return
        if not self.subscribed:
            self.sms_in(
                f"{self.head}您尚未订购{self.service.service_name}，发送{self.service.subscribe_cmd}即可订购。"
            )
        elif self.knobs.delivers_content:
            self.sms_in(self.content_text(1))
        self.wait(self.knobs.latency_s + 1)

    def cancel(self) -> None:
        ref = self.sms_out(self.service.cancel_cmd)
        self.act(ActionKind.CANCEL, ref, 60.0)
        k = self.knobs
        if not k.responds:
            self.wait(60)
            return
        if not self.subscribed:
            self.sms_in(
                f"{self.head}您尚未订购{self.service.service_name}，发送{self.service.subscribe_cmd}即可订购。"
            )
            self.wait(1)
            return
        if k.cancel_works:
            self.subscribed = False
        self.sms_in(f"{self.head}您已成功退订{self.service.service_name}业务，感谢您的使用。")
        if k.charge_after_cancel:
            self.charge(k.charged_fen or self.service.price_fen, 0.3)
        for i in range(k.messages_after_cancel):
            self.sms_in(self.content_text(100 + i), delay=k.latency_s + (i + 1) * 0.5)
        self.wait(1)

    # --- the record -------------------------------------------------------------------
    def record(self) -> RunRecord:
        order = sorted(range(len(self.raw)), key=lambda i: self.raw[i]["at"])
        new_id = {old: n + 100 for n, old in enumerate(order)}
        events = []
        for old in order:
            r = dict(self.raw[old])
            if r["kind"] == "balance":
                spent = sum(f for t, f in self.ledger if t <= r["at"])
                r["balance_fen"] = self.start_fen - spent
                r["text"] = (
                    f"尊敬的客户，您的账户余额为{two(self.start_fen - spent)}元。【中国移动】"
                )
            events.append(Event(id=new_id[old], **r))
        actions = tuple(
            Action(kind, at=at, event_id=None if ref is None else new_id[ref], window_s=w)
            for kind, ref, w, at in self.actions
        )
        return RunRecord(
            run_id=1,
            flow=self.flow,  # type: ignore[arg-type]
            events=tuple(events),
            observed_until=self.now + timedelta(seconds=1),
            service=self.service,
            actions=actions,
            carrier=CarrierProfile(mo_sms_fee_fen=self.knobs.mo_fee_fen),
            catalogue=self.catalogue,
            legit=self.legit,
            infra_failed=self.infra_failed,
        )


def monthly(knobs: Knobs = Knobs(), service: ServiceInfo = XHXH, **kw: object) -> Builder:
    """dialbot/flows/standard/monthly.yaml, step by step."""
    b = Builder(service, knobs, "monthly", **kw)  # type: ignore[arg-type]
    b.balance()
    if b.order():
        b.confirm(None)  # the welcome is optional in the flow
    else:
        b.act(ActionKind.WITHHOLD, None, None)
    b.wait(20)
    b.balance()
    b.use()
    b.cancel()
    b.wait(60)
    b.listing()
    b.balance()
    return b


def per_use(knobs: Knobs = Knobs(), service: ServiceInfo = XHXZ, **kw: object) -> Builder:
    """dialbot/flows/standard/per_use.yaml."""
    b = Builder(service, knobs, "per_use", **kw)  # type: ignore[arg-type]
    b.balance()
    if b.order():
        b.confirm(60.0)
    else:
        b.act(ActionKind.WITHHOLD, None, None)
    b.wait(60)
    b.listing()
    b.balance()
    return b


def decline(knobs: Knobs = Knobs(), service: ServiceInfo = XHXH, **kw: object) -> Builder:
    """dialbot/flows/standard/decline.yaml."""
    b = Builder(service, knobs, "decline", **kw)  # type: ignore[arg-type]
    b.balance()
    b.order()
    b.act(ActionKind.WITHHOLD, None, None)
    b.wait(90)
    b.listing()
    b.balance()
    return b


def codes(run: RunRecord) -> set[str]:
    from dialbot.judge import judge

    return {f.code for f in judge(run)}


__all__ = ["Knobs", "monthly", "per_use", "decline", "codes", "replace"]
