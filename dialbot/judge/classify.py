"""Reading what SPs and the carrier send: message classes, prices, confirmation tokens.

SP messages are free text. Honest SPs follow the regulated content but each
words it its own way (formats.md §3): `资费5元/月`, `信息费5.00元/月`,
`每月5元`, `五元每月`, `一元五角`, full-width digits and punctuation, `Y`, `是`
or a one-time password. Every pattern here errs on the side of *not*
recognising: a message that cannot be classified becomes CONTENT or OTHER and
is kept as evidence, and the rules are written so that an unrecognised honest
message can never by itself become a finding.

Money is parsed with `Decimal` and ints only: never floats.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum

from dialbot.carrier import CarrierProfile
from dialbot.judge.model import ListedItem, ServiceInfo
from dialbot.judge.names import flat, long_enough, sp_core


class MsgClass(Enum):
    """What a message is, as far as the judge is concerned."""

    PROMPT = "prompt"  # secondary confirmation (二次确认): reply Y / 是 / a password
    WELCOME = "welcome"  # 成功订购: the service is now active
    CONTENT = "content"  # anything else an SP sends: the service's content, or promotion
    CANCEL_ACK = "cancel_ack"  # 成功退订 / 已退订 / 取消成功
    NEGATIVE = "negative"  # an SP's refusal or error: 未订购, 指令有误, 订购失败 ...
    ALREADY = "already"  # 已订购…无需重复订购: active since before this order
    BALANCE = "balance"  # carrier: balance reply
    SUBSCRIPTION_LIST = "subscription_list"  # carrier: answer to 0000
    CANCEL_ALL_ACK = "cancel_all_ack"  # carrier: 已成功退订全部 / 已成功退订X
    ORDER_NOTICE = "order_notice"  # carrier: 订购提醒 / 点播提醒 / 扣费提醒
    CARRIER_OTHER = "carrier_other"


CARRIER_CLASSES = frozenset(
    {
        MsgClass.BALANCE,
        MsgClass.SUBSCRIPTION_LIST,
        MsgClass.CANCEL_ALL_ACK,
        MsgClass.ORDER_NOTICE,
        MsgClass.CARRIER_OTHER,
    }
)

# --- normalisation -----------------------------------------------------------------------

_QUOTES = str.maketrans({c: '"' for c in "“”„‟「」『』〝〞＂'‘’‚‛《》〈〉"})


def normalize(text: str) -> str:
    """NFKC (full-width digits, letters and punctuation to ASCII) and one kind of quote."""
    return unicodedata.normalize("NFKC", text).translate(_QUOTES)


def _compact(text: str) -> str:
    """Normalised, without whitespace: for substring tests of names."""
    return re.sub(r"\s+", "", normalize(text))


# --- money ------------------------------------------------------------------------------

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "壹": 1,
    "幺": 1,
    "二": 2,
    "贰": 2,
    "两": 2,
    "三": 3,
    "叁": 3,
    "四": 4,
    "肆": 4,
    "五": 5,
    "伍": 5,
    "六": 6,
    "陆": 6,
    "七": 7,
    "柒": 7,
    "八": 8,
    "捌": 8,
    "九": 9,
    "玖": 9,
}
_CN_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN = "零〇一壹幺二贰两三叁四肆五伍六陆七柒八捌九玖十拾百佰千仟"
_CN1 = "零〇一壹二贰两三叁四肆五伍六陆七柒八捌九玖"  # one digit, no units

_NUM = rf"(?:\d+(?:\.\d+)?|[{_CN}]+(?:点[{_CN1}]+)?)"
_INT1 = rf"(?:\d|[{_CN1}])"
_MONEY = re.compile(
    rf"(?:[¥]|RMB|人民币)\s*(?P<sym>\d+(?:\.\d+)?)(?:\s*元)?"
    rf"|(?P<y>{_NUM})\s*(?P<yu>元|块|圆)"
    rf"(?:\s*(?P<j>{_INT1})\s*(?:角|毛))?(?:\s*(?P<f>{_INT1})\s*分(?!钟|之))?"
    rf"(?:(?<=块)(?P<tail>{_INT1})(?![\d角毛分元.个次条月天周年期份]))?"
    rf"|(?<![\d{_CN}.])(?P<j2>\d+|[{_CN1}])\s*(?:角|毛)(?!星|形)(?:\s*(?P<f2>{_INT1})\s*分(?!钟|之))?"
    rf"|(?<![\d.])(?P<f3>\d+)\s*分(?!钟|之|享|析|类|别|期|数|成|配|为|开|布)"
)
# A fee the carrier charges, not the SP's price: not what a prompt's price means.
_CARRIER_FEE_BEFORE = re.compile(r"(通信费|通讯费|流量费|短信费|话费|基本费|不含)[^,，。;；]{0,4}$")
_PERIOD_AFTER = re.compile(r"^\s*(/|每|一|包)?\s*(月|条|次|天|周|期)")
_PERIOD_BEFORE = re.compile(
    r"(每月|每条|每次|包月|月费|信息费|资费|费用|收费|价格|仅需|只需)\s*[:]?\s*$"
)


def cn_int(text: str) -> int:
    """A Chinese numeral (0..9999, units 十百千, financial forms too) as an int."""
    total = 0
    current = 0
    for ch in text:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            total += (current or 1) * _CN_UNITS[ch]
            current = 0
        else:
            raise ValueError(f"not a Chinese numeral: {text!r}")
    if len(text) > 1 and all(ch in _CN_DIGITS for ch in text):
        return int("".join(str(_CN_DIGITS[ch]) for ch in text))  # 一五 -> 15 (digit by digit)
    return total + current


def _number(text: str) -> Decimal:
    """Arabic or Chinese number (with 点 as decimal point) as a Decimal."""
    if text[0].isdigit():
        return Decimal(text)
    whole, _, frac = text.partition("点")
    value = Decimal(cn_int(whole)) if whole else Decimal(0)
    if frac:
        value += Decimal("0." + "".join(str(_CN_DIGITS[ch]) for ch in frac))
    return value


def _digit(text: str | None) -> int:
    if not text:
        return 0
    return int(text) if text.isdigit() else _CN_DIGITS[text]


@dataclass(frozen=True)
class PriceMention:
    """A money amount found in a text, where it is, and whether it reads like a tariff."""

    fen: int
    start: int
    end: int
    periodic: bool  # 元/月, 每条, 信息费… next to it
    carrier_fee: bool  # 通信费0.1元/条: the carrier's, not the SP's


def _match_fen(m: re.Match[str]) -> int | None:
    try:
        if m.group("sym") is not None:
            value = Decimal(m.group("sym")) * 100
        elif m.group("y") is not None:
            value = _number(m.group("y")) * 100 + _digit(m.group("j")) * 10 + _digit(m.group("f"))
            value += _digit(m.group("tail")) * 10
        elif m.group("j2") is not None:
            value = Decimal(_digit(m.group("j2")) * 10 + _digit(m.group("f2")))
        else:
            value = Decimal(m.group("f3"))
    except (InvalidOperation, ValueError, KeyError):
        return None
    if value != value.to_integral_value():
        return None  # fractions of a fen: not a price anyone charges
    return int(value)


def money_mentions(text: str) -> list[PriceMention]:
    """Every money amount in `text` (normalised), in order."""
    norm = normalize(text)
    out: list[PriceMention] = []
    for m in _MONEY.finditer(norm):
        fen = _match_fen(m)
        if fen is None:
            continue
        before = norm[max(0, m.start() - 8) : m.start()]
        after = norm[m.end() : m.end() + 4]
        periodic = bool(_PERIOD_AFTER.match(after) or _PERIOD_BEFORE.search(before))
        carrier_fee = bool(_CARRIER_FEE_BEFORE.search(before))
        out.append(PriceMention(fen, m.start(), m.end(), periodic, carrier_fee))
    return out


def parse_money(text: str) -> int | None:
    """The first money amount in `text`, in fen (``五元`` -> 500, ``0.1元`` -> 10)."""
    mentions = money_mentions(text)
    return mentions[0].fen if mentions else None


def stated_price(text: str) -> int | None:
    """The SP's price as a prompt states it, in fen; None when it states none.

    The carrier's own fees (`通信费0.1元/条`) are skipped; a mention that reads
    like a tariff (`/月`, `每条`, `信息费`) wins over a bare amount.
    """
    mentions = [m for m in money_mentions(text) if not m.carrier_fee]
    for m in mentions:
        if m.periodic:
            return m.fen
    return mentions[0].fen if mentions else None


# --- confirmation tokens --------------------------------------------------------------------

_Q = r'\s*"?\s*'
_TOKEN = r"[A-Za-z0-9]{1,8}|是|确认|同意|好"
_CONFIRM_VERB = r"(?:即可|进行|以|来|方可)?\s*(?:确认|同意|订购|点播|开通|定制|订制|完成)"
_PASSWORD = re.compile(r"(?:密码|验证码|确认码|口令|校验码)\s*(?:为|是|:)?\s*(?P<tok>\d{3,8})")
_PASSWORD_USE = re.compile(
    r"(?:输入|回复|发送|回)\s*(?:上述|此|该|本次)?(?:密码|验证码|确认码|口令|校验码)"
)
_DIGIT_WORD = r"(?:数字|字母|短信)?"
_REPLY_TOKEN = (
    re.compile(rf"(?:回复|回|请回|输入){_DIGIT_WORD}{_Q}(?P<tok>{_TOKEN}){_Q}{_CONFIRM_VERB}"),
    re.compile(
        rf"发送{_DIGIT_WORD}{_Q}(?P<tok>{_TOKEN}){_Q}(?:即可|进行|以)?\s*"
        rf"(?:确认|同意|完成(?:订购|点播|定制|订制|开通)?)"
    ),
    re.compile(
        rf"(?:(?:确认|同意)(?:订购|点播|开通|定制)?|(?:如需|若需|如要|若要|需要)(?:订购|点播|开通|定制))"
        rf"[^,。;!?退取]{{0,6}}?"
        rf"(?:请|请您)?(?:回复|回)\s*(?::)?{_Q}(?P<tok>{_TOKEN}){_Q}(?=[,。;!?)\s]|$)"
    ),
    # 如确认定制，请在24小时内回复数字1。 (a clause may come between)
    re.compile(
        rf"(?:如|若)(?:需|要)?(?:确认|同意)(?:订购|点播|开通|定制|订制)?[^。;!?退取]{{0,16}}?"
        rf"(?:回复|回){_DIGIT_WORD}\s*(?::)?{_Q}(?P<tok>{_TOKEN}){_Q}(?=[,。;!?)\s]|$)"
    ),
    # English: Reply YES to confirm / reply "Y" to subscribe
    re.compile(
        rf"(?i:reply|send|text)\s*{_Q}(?P<tok>[A-Za-z0-9]{{1,8}}){_Q}\s*(?i:to\s*(?:confirm|subscribe|order|agree|accept))"
    ),
)


def confirm_token(text: str) -> str | None:
    """The token a prompt asks to be sent back (``Y``, ``是``, ``1234``), or None.

    A one-time password (`本次密码1234，输入密码确认点播`) wins over a reply
    keyword, because it is what the SP actually checks.
    """
    norm = normalize(text)
    pw = _PASSWORD.search(norm)
    if pw and (_PASSWORD_USE.search(norm) or re.search(r"确认|点播|订购", norm)):
        return pw.group("tok")
    for pattern in _REPLY_TOKEN:
        m = pattern.search(norm)
        if m:
            return m.group("tok")
    return None


def reply_for(text: str, carrier: CarrierProfile) -> str:
    """What to send back to a prompt: its own token, else the carrier profile's default."""
    return confirm_token(text) or carrier.confirm_reply


# --- classes ---------------------------------------------------------------------------------

_CANCEL_ACK = re.compile(
    r"成功退订|退订成功|已退订|已经退订|已为您退订|退订已生效|取消成功|成功取消|已取消(?!本次)"
    r"|已(?:经)?为您取消|业务已(?:关闭|终止)|已关闭|退订(?:申请)?已(?:经)?(?:受理|办理|完成)"
    r"|(?i:unsubscribed|cancell?ed\s*successfully|successfully\s*cancell?ed|unsubscription\s*successful)"
)
_NEGATIVE = re.compile(
    r"(?:订购|点播|开通|确认|请求|操作|指令|业务)[^,。;]{0,4}(?:失败|未成功|不成功|无效|有误|错误|超时|已过期|已失效)"
    r"|未能?(?:成功)?(?:订购|点播|开通|定制)|尚未订购|您未订购|没有订购|未确认|超时未|不存在"
    r"|(?:指令|命令|内容)(?:有误|错误|无效|无法识别|不正确|不能识别)|无效(?:的)?指令|无法识别|已取消本次|不再为您"
    r"|(?i:invalid\s*(?:command|keyword|request)|not\s*subscribed|(?:subscription|order)\s*failed)"
)
_ALREADY = re.compile(
    r"无需重复|不用重复|不必重复|重复订购|重复订制|重复定制|已经订购过|已(?:经)?是.{0,10}(?:用户|会员)"
    r"|(?i:already\s*subscribed)"
)
_WELCOME = re.compile(
    r"成功订购|订购成功|已订购|成功开通|开通成功|已开通|已成功开通|欢迎(?:使用|订购|加入|您)"
    r"|点播成功|成功点播|已点播|定制成功|订制成功|成功定制|已生效|感谢(?:您)?(?:的)?(?:订购|订制|定制|开通)"
    r"|(?i:subscription\s*successful|successfully\s*subscribed|welcome\s*to)"
)
_CONFIRM_REQUEST = re.compile(r"(?:回复|回|输入|发送).{0,12}(?:确认|同意)|二次确认")
_ORDER_NOTICE = re.compile(
    r"(?:订购|点播|扣费|计费|消费)提醒|由.{1,30}?提供的|已.{0,4}(?:扣费|扣除|收取)"
)
_CANCEL_ALL_ACK = re.compile(r"已(?:成功|经|为您)?(?:退订|取消)|退订成功|取消成功")


def is_carrier(peer: str, carrier: CarrierProfile) -> bool:
    """Carrier replies and notices come from numbers that begin with the service number."""
    return bool(carrier.service_number) and peer.startswith(carrier.service_number)


def classify(text: str, peer: str, carrier: CarrierProfile) -> MsgClass:
    """The class of one received message (an `sms_in` from `peer`)."""
    if is_carrier(peer, carrier):
        return _classify_carrier(text, carrier)
    return classify_sp(text)


def classify_sp(text: str) -> MsgClass:
    """The class of a message from an SP (or from anyone who is not the carrier)."""
    norm = _compact(text)
    if confirm_token(norm) is not None:
        return MsgClass.PROMPT
    if _CONFIRM_REQUEST.search(norm) and not (_CANCEL_ACK.search(norm) or _NEGATIVE.search(norm)):
        return MsgClass.PROMPT
    if _CANCEL_ACK.search(norm):
        return MsgClass.CANCEL_ACK
    if _NEGATIVE.search(norm):
        return MsgClass.NEGATIVE
    if _ALREADY.search(norm):
        return MsgClass.ALREADY
    if _WELCOME.search(norm):
        return MsgClass.WELCOME
    return MsgClass.CONTENT


def _classify_carrier(text: str, carrier: CarrierProfile) -> MsgClass:
    norm = normalize(text)
    if parse_balance(text, carrier) is not None:
        return MsgClass.BALANCE
    if _is_list(text, carrier):
        return MsgClass.SUBSCRIPTION_LIST
    if _ORDER_NOTICE.search(norm):
        return MsgClass.ORDER_NOTICE
    if _CANCEL_ALL_ACK.search(norm):
        return MsgClass.CANCEL_ALL_ACK
    return MsgClass.CARRIER_OTHER


# --- carrier replies ------------------------------------------------------------------------


def parse_balance(text: str, carrier: CarrierProfile) -> int | None:
    """The balance a carrier reply states, in fen (via the profile's regex), or None.

    Where the amount goes on in 角/分 (`12元3角4分`) or is written in Chinese
    numerals, the whole amount is read, never just its yuan.
    """
    for candidate in (text, normalize(text)):
        m = re.search(carrier.balance_reply, candidate)
        if m is None:
            continue
        group = "yuan" if "yuan" in m.groupdict() else 1
        raw = m.group(group)
        try:
            value = Decimal(raw) * 100
        except (InvalidOperation, TypeError):
            return None
        if value != value.to_integral_value():
            return None
        start = m.start(group)
        whole = money_mentions(candidate[start + (1 if raw.startswith("-") else 0) :])
        if whole and whole[0].start == 0:
            fen = whole[0].fen
            return -fen if raw.startswith("-") else fen
        return int(value)
    return None


def _says_list(text: str, carrier: CarrierProfile) -> bool:
    """The reply is the subscription list (the profile's `subscriptions_reply`): what tells it
    from an order notice, whose `…（由中国移动代收费）` the item regex would also match."""
    return any(re.search(carrier.subscriptions_reply, t) for t in (text, normalize(text)))


def _is_list(text: str, carrier: CarrierProfile) -> bool:
    return bool(re.search(carrier.subscriptions_none, text) or _says_list(text, carrier))


def parse_subscriptions(text: str, carrier: CarrierProfile) -> tuple[ListedItem, ...] | None:
    """The items of a carrier subscription list; () when it says none; None if not a list.

    The reading itself (items by number or separator, names as billed) lives in
    `dialbot.judge.listing`, which builds on this module's normalisation.
    """
    from dialbot.judge.listing import parse_list  # noqa: PLC0415  (listing imports this module)

    parsed = parse_list(text, carrier)
    return None if parsed is None else parsed.items


@dataclass(frozen=True)
class Notice:
    """A carrier order/charge notice: which service it names and the amount it states."""

    sp_name: str
    service_name: str
    amount_fen: int | None


_NOTICE_NAMES = (
    re.compile(r"由(?P<sp>[^,，。由]{1,30}?)提供的(?P<service>[^,，。;；(（]{1,30})"),
    # 您已订购北京某某信息技术有限公司的掌上笑话业务
    re.compile(
        r"(?:订购|点播|订制|定制|开通)了?(?P<sp>[^,，。;；的]{2,40}?(?:公司|集团|工作室))的"
        r"[\"“]?(?P<service>[^,，。;；(（\"”]{1,30})"
    ),
    # 您点播了“掌上笑话”（北京某某信息技术有限公司）
    re.compile(
        r"(?:订购|点播|订制|定制|开通)了?[\"“](?P<service>[^\"”]{1,30})[\"”]\s*[(（](?P<sp>[^)）]{2,40})[)）]"
    ),
)


def parse_notice(text: str) -> Notice | None:
    """`订购提醒：您已成功订购由{SP}提供的{业务}，10元/月…` -> who, what, how much."""
    m = next((m for p in _NOTICE_NAMES if (m := p.search(text))), None)
    if m is None:
        return None
    service = re.sub(r"业务$", "", m.group("service").strip())
    return Notice(m.group("sp").strip(), service, parse_money(text[m.end() :]))


# --- what a prompt names -----------------------------------------------------------------------

_SP_SUFFIX = re.compile(r"(股份)?有限(责任)?公司$|集团$|公司$")


def names(text: str, name: str, besides: str = "") -> bool:
    """Whether `text` names `name` (whitespace, width and a company suffix ignored; an SP's
    registered name also by its core, `北京某某信息技术有限公司` by `某某`).

    `besides` is another name whose occurrences do not count (the service name,
    when it contains the SP's brand: `星河笑话` does not name `星河科技`).
    """
    if not name.strip():
        return False
    hay = _compact(text)
    needle = _compact(name)
    if needle in hay:
        return True
    short = _SP_SUFFIX.sub("", needle)
    if len(short) >= 2 and short in hay:
        return True
    rest = flat(text)
    if besides.strip():
        rest = rest.replace(flat(besides), "")
    core = sp_core(name)
    return long_enough(core) and core != flat(name) and core in rest


def names_hotline(text: str, hotline: str) -> bool:
    """Whether the hotline's digits appear in the text (separators ignored).

    With no catalogued hotline there is nothing the prompt could be held to:
    it passes (the catalogue, not a guess, is what an SP is judged against).
    """
    digits = re.sub(r"\D", "", normalize(hotline))
    if not digits:
        return True
    return digits in re.sub(r"[\s\-()]", "", normalize(text))


@dataclass(frozen=True)
class PromptCheck:
    """What a confirmation prompt states, against the catalogue."""

    price_fen: int | None
    names_sp: bool
    names_service: bool
    names_hotline: bool

    def omissions(self) -> list[str]:
        """The regulated items the prompt leaves out (`price`, `sp_name`, ...)."""
        out = []
        if self.price_fen is None:
            out.append("price")
        if not self.names_sp:
            out.append("sp_name")
        if not self.names_service:
            out.append("service_name")
        if not self.names_hotline:
            out.append("hotline")
        return out


def check_prompt(text: str, service: ServiceInfo) -> PromptCheck:
    """Read a prompt for the four things regulation says it must state."""
    return PromptCheck(
        price_fen=stated_price(text),
        names_sp=names(text, service.sp_name, besides=service.service_name),
        names_service=names(text, service.service_name),
        names_hotline=names_hotline(text, service.sp_hotline),
    )
