"""How the virtual SPs and the carrier word their messages.

Real SPs follow the regulated content of a prompt (what, price, how to
confirm, hotline) but each words it its own way, so the robot's parser must
be tolerant. Each SP gets one `Style` (chosen by its position in the world,
so a demo world of a dozen SPs shows every notation): price notation
(`资费5元/月`, `信息费5.00元/月`, `每月5元`, `五元每月`, `1元/条`,
`0.1元/次`), confirmation token (`Y`, `是`, or a one-time password for
per-use), how the SP name and hotline are written.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialbot.sim.world import Service, Sp

_DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """0..9999 in Chinese numerals (``15`` -> ``十五``, ``205`` -> ``二百零五``)."""
    if n == 0:
        return "零"
    if n < 0 or n > 9999:
        return str(n)
    units = ((1000, "千"), (100, "百"), (10, "十"), (1, ""))
    out = ""
    gap = False
    for size, unit in units:
        digit = n // size % 10
        if digit == 0:
            gap = bool(out)
            continue
        if gap:
            out += "零"
            gap = False
        if not (size == 10 and digit == 1 and not out):
            out += _DIGITS[digit]
        out += unit
    return out


def chinese_money(fen: int) -> str:
    """Fen in Chinese numerals: ``500`` -> ``五元``, ``150`` -> ``一元五角``, ``10`` -> ``一角``."""
    yuan, rest = divmod(fen, 100)
    jiao, fen_left = divmod(rest, 10)
    out = f"{chinese_number(yuan)}元" if yuan else ""
    if jiao:
        out += f"{_DIGITS[jiao]}角"
    if fen_left:
        out += f"{_DIGITS[fen_left]}分"
    return out or "零元"


def plain_yuan(fen: int) -> str:
    """Shortest yuan notation: ``500`` -> ``5``, ``10`` -> ``0.1``, ``150`` -> ``1.5``."""
    text = f"{fen // 100}.{fen % 100:02d}".rstrip("0").rstrip(".")
    return text


def two_place_yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


@dataclass(frozen=True)
class Style:
    """One SP's house style."""

    notation: int  # index into the price notations
    token: str  # "Y", "是" or "otp" (per-use only; monthly falls back to "Y")
    bracket: tuple[str, str]
    hotline_label: str
    sign_off: bool  # whether the name is repeated at the end


_TOKENS = ("Y", "是", "otp", "Y", "是", "Y")
_BRACKETS = (("【", "】"), ("[", "]"), ("【", "】"), ("", "："))
_HOTLINES = ("客服电话", "咨询请拨", "客服：", "客服热线")


def style_for(index: int) -> Style:
    """The style of the index-th SP of the world (deterministic, varied)."""
    return Style(
        notation=index % 4,
        token=_TOKENS[index % len(_TOKENS)],
        bracket=_BRACKETS[index % len(_BRACKETS)],
        hotline_label=_HOTLINES[(index // 2) % len(_HOTLINES)],
        sign_off=index % 3 == 1,
    )


def price_text(style: Style, fen: int, billing: str) -> str:
    """The price in this SP's notation."""
    n = style.notation
    if billing == "monthly":
        return (
            f"资费{plain_yuan(fen)}元/月",
            f"信息费{two_place_yuan(fen)}元/月",
            f"每月{plain_yuan(fen)}元",
            f"{chinese_money(fen)}每月",
        )[n]
    return (
        f"{plain_yuan(fen)}元/条",
        f"信息费{plain_yuan(fen)}元/次",
        f"{plain_yuan(fen)}元/次",
        f"{chinese_money(fen)}每条",
    )[n]


class Phrasing:
    """All message texts of one SP, in its style."""

    def __init__(self, sp: Sp, index: int) -> None:
        self.sp = sp
        self.style = style_for(index)

    def token_kind(self, service: Service) -> str:
        """Y, 是 or otp: what this SP asks the subscriber to send back."""
        if self.style.token == "otp" and service.billing != "per_use":
            return "Y"
        return self.style.token

    def _head(self, with_name: bool = True) -> str:
        left, right = self.style.bracket
        return f"{left}{self.sp.name}{right}" if with_name else ""

    def _hotline(self) -> str:
        if not self.sp.hotline:
            return ""
        return f"{self.style.hotline_label}{self.sp.hotline}"

    def price(self, service: Service, fen: int) -> str:
        return price_text(self.style, fen, service.billing)

    def prompt(
        self, service: Service, price_fen: int, token: str, omits: tuple[str, ...] = ()
    ) -> str:
        """The secondary-confirmation prompt (二次确认)."""
        parts = [f"{self._head('sp_name' not in omits)}您正在"]
        verb = "订购" if service.billing == "monthly" else "点播"
        what = f"{verb}{service.name}业务"
        if "sp_name" not in omits and self.style.bracket[0] == "":
            what += f"（由{self.sp.name}提供）"
        parts.append(what)
        if "price" not in omits:
            parts.append(f"，{self.price(service, price_fen)}")
        if token == "是":
            parts.append('。请在24小时内回复"是"确认订购，回复其他内容或不回复，则不订购')
        elif token.isdigit():
            parts.append(f"。本次密码{token}，输入密码确认点播")
        else:
            parts.append(f"。回复{token}确认{verb}，不回复则不{verb}")
        if "hotline" not in omits and self.sp.hotline:
            parts.append(f"。{self._hotline()}")
        parts.append("。")
        return "".join(parts)

    def welcome(self, service: Service) -> str:
        text = (
            f"{self._head()}您已成功订购{service.name}，{self.price(service, service.price_fen)}。"
        )
        if service.use:
            text += f"发送{service.use}获取内容，"
        if service.cancel:
            text += f"发送{service.cancel}退订。"
        if self.sp.hotline:
            text += self._hotline()
        return text + (f"【{self.sp.name}】" if self.style.sign_off else "")

    def content(self, service: Service, n: int) -> str:
        line = _CONTENT[n % len(_CONTENT)]
        return f"{self._head()}{service.name}第{n + 1}期：{line}"

    def cancel_ack(self, service: Service) -> str:
        return f"{self._head()}您已成功退订{service.name}业务，感谢您的使用。"

    def already_subscribed(self, service: Service) -> str:
        return f"{self._head()}您已订购{service.name}，无需重复订购。"

    def not_subscribed(self, service: Service) -> str:
        return f"{self._head()}您尚未订购{service.name}，发送{service.subscribe}即可订购。"

    def declined(self, service: Service) -> str:
        return f"{self._head()}您未确认，{service.name}未订购。"

    def spam(self, service: Service, n: int) -> str:
        return (
            f"{self._head()}限时优惠！{service.name}{_PROMO[n % len(_PROMO)]}，"
            f"回复{service.subscribe}立即体验。"
        )

    def after_cancel(self, service: Service, n: int) -> str:
        return self.content(service, 100 + n)

    def help(self, services: list[Service]) -> str:
        keys = "；".join(f"{s.name}回复{s.subscribe}" for s in services)
        tail = f"。{self._hotline()}" if self.sp.hotline else ""
        return f"{self._head()}指令有误。{keys}{tail}"


def order_notice(sp: Sp, service: Service, charged_fen: int, carrier: str = "中国移动") -> str:
    """The carrier's own notice after an order (订购提醒 / 点播提醒)."""
    if service.billing == "monthly" and service.trial_days:
        return (
            f"订购提醒：您已成功订购由{sp.name}提供的{service.name}，免费体验{service.trial_days}天，"
            f"到期后{plain_yuan(charged_fen)}元/月（由{carrier}代收费），如有疑问请拨打10086。"
        )
    if service.billing == "monthly":
        return (
            f"订购提醒：您已成功订购由{sp.name}提供的{service.name}，"
            f"{plain_yuan(charged_fen)}元/月（由{carrier}代收费），如有疑问请拨打10086。"
        )
    return (
        f"点播提醒：您已点播由{sp.name}提供的{service.name}，"
        f"{plain_yuan(charged_fen)}元/次（由{carrier}代收费），如有疑问请拨打10086。"
    )


def renewal_reminder(sp: Sp, service: Service, price_fen: int, carrier: str = "中国移动") -> str:
    """The carrier's reminder before a monthly service renews (扣费提醒, from 10086901)."""
    return (
        f"扣费提醒：您订购的由{sp.name}提供的{service.name}业务，将于下月1日续订，"
        f"{plain_yuan(price_fen)}元/月（由{carrier}代收费）。如需退订请拨打10086。"
    )


def trial_reminder(sp: Sp, service: Service, price_fen: int, carrier: str = "中国移动") -> str:
    """The carrier's reminder before a free trial turns paid (计费提醒, from 10086901)."""
    return (
        f"计费提醒：您订购的由{sp.name}提供的{service.name}业务，免费体验期即将结束，"
        f"到期后按{plain_yuan(price_fen)}元/月收费（由{carrier}代收费）。如不需要请及时退订。"
    )


_CONTENT = (
    "小明问爸爸：为什么月亮跟着我走？爸爸说：因为它也想回家。",
    "今日宜读书，忌熬夜。晴转多云，气温12至20度。",
    "健康提示：饭后散步十分钟，有助消化。",
    "今日要闻：城市地铁新线路开通试运营。",
    "每日一句：千里之行，始于足下。",
    "小贴士：出门记得带伞，傍晚有阵雨。",
)
_PROMO = ("首月免费", "限时五折", "新用户专享好礼", "今晚更新精彩内容")
