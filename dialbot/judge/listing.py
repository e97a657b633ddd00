"""The carrier's subscription list: read as billed, matched tolerantly, trusted only when whole.

Carriers list a subscription the way it is billed, not the way the catalogue
writes it: the SP's registered company name (`北京某某信息技术有限公司` where
the catalogue says `某某`), a suffix on the service name (`掌上笑话(包月)`,
`掌上笑话业务`), full-width characters, an access number or a price beside
it, half-width brackets, no brackets at all. So a list is cut into items by
their numbers (`1、` `1.` `(1)` `①`) or separators, each item keeps its raw
text, and matching works on normalised text by containment, with company
suffixes, industry words and billing tags taken off.

Matching has three answers (`Relation`), because the two users need different
things: the judge may only act on a *positive* match (a finding must rest on
what the list shows), whereas cleanup must treat anything it cannot rule out
as still subscribed (fail closed: an obligation is discharged only when every
item of a complete list is positively some other service).

A list is `complete` only when nothing in the text says otherwise: item
numbers run 1..n without a gap, a stated total (`共3项`) agrees, no page marker
(`(1/2)`) or truncation (`…`, `未完`) is left open, and a reply that says it is
a list has at least one item. A multipart reply with a missing part is
incomplete too; that is known from the message, not the text (see
`dialbot.fleet.services`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum

from dialbot.carrier import CarrierProfile
from dialbot.judge.classify import money_mentions, normalize, stated_price
from dialbot.judge.model import ListedItem, ServiceInfo
from dialbot.judge.names import BILLING_TAG, flat, long_enough, service_key, sp_core

# --- reading a list ------------------------------------------------------------------------

_D = "0-9０-９"
_MARKER = re.compile(
    rf"(?:^|(?<=[\s:：;；,，。、]))"
    rf"(?:[(（](?P<a>[{_D}]{{1,2}})[)）]|(?P<b>[{_D}]{{1,2}})(?:[、)）]|[.．](?![{_D}]))|(?P<c>[①-⑳]))"
)
_BRAND_TAIL = re.compile(r"[【\[][^】\]]{1,20}[】\]]\s*$")
_FOOTER = re.compile(r"。|回复序号|回复编号|如需退订|退订请(?:回复|发送)|(?<=[,，])\s*回复")
_PAGE = re.compile(r"[(（\[【]\s*(?P<k>[0-9０-９]{1,2})\s*/\s*(?P<n>[0-9０-９]{1,2})\s*[)）\]】]")
_TOTAL = re.compile(r"共\s*(?P<n>[0-9０-９]{1,2})\s*(?:项|个|条|笔|款)")
_TRUNCATED = re.compile(r"(?:…|\.\.\.|未完|待续|[(（]续[)）])\s*$")
_OPEN_ENDED = re.compile(r"未完|待续|[(（]续[)）]|其余\d*(?:项|个)|更多业务请")


@dataclass(frozen=True)
class CarrierList:
    """One subscription list: its items, and whether it can be trusted to be the whole list."""

    items: tuple[ListedItem, ...]
    complete: bool
    why_incomplete: str = ""

    def incomplete(self, why: str) -> CarrierList:
        return replace(self, complete=False, why_incomplete=self.why_incomplete or why)


def _int(text: str) -> int:
    return int(unicodedata.normalize("NFKC", text))


def _number(m: re.Match[str]) -> int:
    if m.group("c"):
        return ord(m.group("c")) - ord("①") + 1
    return _int(m.group("a") or m.group("b"))


def _body(text: str, carrier: CarrierProfile) -> str:
    """The text after the list's header (`您已订购以下业务：`), without a trailing brand."""
    text = _BRAND_TAIL.sub("", text.strip())
    header = re.search(carrier.subscriptions_reply, text)
    if header is None:
        return text
    rest = text[header.end() :]
    colon = re.match(r"[^:：\n]{0,8}[:：\n]", rest)
    return rest[colon.end() :] if colon else rest


def _segments(body: str) -> tuple[list[tuple[int | None, str]], list[int]]:
    """(number, text) of each item; the numbers as found, in order."""
    markers = list(_MARKER.finditer(body))
    if markers:
        out: list[tuple[int | None, str]] = []
        for i, m in enumerate(markers):
            end = markers[i + 1].start() if i + 1 < len(markers) else len(body)
            out.append((_number(m), body[m.end() : end]))
        return out, [n for n, _ in out if n is not None]
    parts = re.split(r"[;；\n]", body)
    if len(parts) == 1:
        parts = re.split(r"、", body)
    return [(None, p) for p in parts], []


def _clean(segment: str) -> str:
    cut = _FOOTER.search(segment)
    if cut:
        segment = segment[: cut.start()]
    return segment.strip(" \t\r\n,，;；、")


def parse_list(text: str, carrier: CarrierProfile) -> CarrierList | None:
    """A carrier reply read as a subscription list; None when the reply is not a list."""
    norm = normalize(text)
    if re.search(carrier.subscriptions_none, text) or re.search(carrier.subscriptions_none, norm):
        return CarrierList((), complete=not _TRUNCATED.search(norm.strip()))
    if not any(re.search(carrier.subscriptions_reply, t) for t in (text, norm)):
        return None
    body = _body(text, carrier)
    segments, numbers = _segments(body)
    items = []
    for number, segment in segments:
        raw = _clean(segment)
        if re.search(r"\w", raw):
            items.append(read_item(raw, number, carrier))
    result = CarrierList(tuple(items), complete=True)
    return _completeness(result, norm, numbers)


def _completeness(result: CarrierList, norm: str, numbers: list[int]) -> CarrierList:
    if not result.items:
        result = result.incomplete("the reply says it is a list but no item could be read")
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        result = result.incomplete(f"item numbers {numbers} do not run 1..{len(numbers)}")
    total = _TOTAL.search(norm)
    if total and _int(total.group("n")) != len(result.items):
        result = result.incomplete(f"says {total.group(0)}, {len(result.items)} read")
    for page in _PAGE.finditer(norm):
        if _int(page.group("k")) < _int(page.group("n")):
            result = result.incomplete(f"page {page.group(0)} of a longer list")
    tail = _BRAND_TAIL.sub("", norm.strip()).strip()
    if _TRUNCATED.search(tail) or _OPEN_ENDED.search(norm):
        result = result.incomplete("the list is cut off")
    return result


# --- one item --------------------------------------------------------------------------------

_LABELLED_SP = re.compile(
    r"(?:提供商|服务商|提供方|企业名称|企业|公司|SP|sp)\s*[:：]\s*(?P<sp>[^,，;；:：()]+)"
)
_LABELLED_SERVICE = re.compile(
    r"(?:业务名称|服务名称|产品名称|业务)\s*[:：]\s*(?P<s>[^,，;；:：()]+)"
)
_BY_SP = re.compile(r"由\s*(?P<sp>[^,，;；()]{2,40}?)\s*提供")
_COMPANY_TOKEN = re.compile(
    r"(?P<sp>[^\s,，;；:：()\-—|/]{2,40}?(?:有限责任公司|有限公司|公司|集团)|[A-Za-z][\w .&]*?(?:Co\.?,?\s*Ltd\.?|Ltd\.?|Inc\.?|Limited))"
)
# SP access numbers (106…, 125…); not mobile numbers, not the carrier's own service number
_ACCESS = re.compile(r"(?<!\d)(1[02]\d{3,18})(?!\d)")


def read_item(raw: str, number: int | None, carrier: CarrierProfile) -> ListedItem:
    """Service and SP labels of one item, as well as can be told (matching uses `raw`)."""
    norm = normalize(raw)
    sp = _item_sp(norm)
    labelled = _LABELLED_SERVICE.search(norm)
    configured = _configured(raw, carrier)
    if configured is not None:
        service, sp = configured
    elif labelled:
        service = labelled.group("s")
    else:
        head = BILLING_TAG.sub("", norm)
        if sp and sp in head:
            head = head[: head.index(sp)]
        money = money_mentions(head)
        if money:
            head = head[: money[0].start]
        service = re.split(r"[()\[,，;；:：|/]|\s[-—]\s|-|—", head, maxsplit=1)[0]
    service = service.strip(" 【】「」\"'")
    if not service:
        legacy = re.search(carrier.subscriptions_item, raw)
        if legacy:
            groups = legacy.groupdict()
            service = (groups.get("service") or "").strip()
            sp = sp or (groups.get("sp") or "").strip()
    numbers = _ACCESS.findall(norm)
    access = ",".join(n for n in numbers if not n.startswith(carrier.service_number or "-"))
    return ListedItem(
        service, sp, number=number, raw=raw, price_fen=stated_price(raw), access=access
    )


def _configured(raw: str, carrier: CarrierProfile) -> tuple[str, str] | None:
    """The names by the profile's own `subscriptions_item`, when an operator set one (the
    default is only a fallback: it knows one wording)."""
    if carrier.subscriptions_item == CarrierProfile.subscriptions_item:
        return None
    m = re.search(carrier.subscriptions_item, raw)
    if m is None:
        return None
    groups = m.groupdict()
    service = re.sub(r"^\d+[、.]", "", (groups.get("service") or "").strip()).strip()
    return (service, (groups.get("sp") or "").strip()) if service else None


def _item_sp(norm: str) -> str:
    for pattern in (_LABELLED_SP, _BY_SP):
        m = pattern.search(norm)
        if m:
            return m.group("sp").strip()
    groups = [g.strip() for g in re.findall(r"\(([^()]*)\)", BILLING_TAG.sub("", norm))]
    groups = [g for g in groups if g and not re.search(r"\d", g)]
    if groups:
        return groups[-1]
    m = _COMPANY_TOKEN.search(norm)
    return m.group("sp").strip() if m else ""


# --- matching ----------------------------------------------------------------------------------


class Relation(Enum):
    """How a listed item relates to a catalogued service."""

    MATCH = "match"  # positively this service
    UNSURE = "unsure"  # cannot be ruled out: cleanup treats it as still subscribed
    OTHER = "other"  # positively some other service


def _text_of(item: ListedItem) -> str:
    return flat(item.raw or f"{item.service}{item.sp}")


@dataclass(frozen=True)
class Comparison:
    """What one item has in common with one service."""

    name: bool  # one service name contains the other
    exact: bool  # same name once tags and suffixes are off
    sp: str  # "same" | "differs" | "unknown"
    access: str  # "same" | "differs" | "unknown"
    price: str  # "same" | "differs" | "unknown"


def compare(item: ListedItem, service: ServiceInfo) -> Comparison:
    text = _text_of(item)
    key = service_key(service.service_name)
    listed = service_key(item.service) if item.service else ""
    name = bool(
        (long_enough(key) and key in text)
        or (listed and long_enough(listed) and listed in key)
        or (key and key == listed)
    )
    core = sp_core(service.sp_name)
    item_core = sp_core(item.sp) if item.sp else ""
    if (long_enough(core) and core in text) or (
        item_core and long_enough(item_core) and item_core in flat(service.sp_name)
    ):
        sp = "same"
    else:
        sp = "differs" if item.sp else "unknown"
    numbers = [n for n in item.access.split(",") if n]
    if not numbers or not service.access_number:
        access = "unknown"
    else:
        same = any(n.startswith(service.access_number) for n in numbers)
        access = "same" if same else "differs"
    if item.price_fen is None:
        price = "unknown"
    else:
        price = "same" if item.price_fen == service.price_fen else "differs"
    return Comparison(name, bool(key) and key == listed, sp, access, price)


def _positive(c: Comparison) -> bool:
    return c.access == "same" or (c.name and c.sp != "differs")


def relation(
    item: ListedItem, service: ServiceInfo, catalogue: tuple[ServiceInfo, ...] = ()
) -> Relation:
    """Whether `item` is `service` (see `Relation`); `catalogue` may name what else it is."""
    c = compare(item, service)
    if _positive(c):
        return Relation.MATCH
    if c.name:
        return Relation.UNSURE  # the same name billed by another company: not ruled out
    if any(s.key != service.key and _positive(compare(item, s)) for s in _named(item, catalogue)):
        return Relation.OTHER
    if c.price == "same" or c.sp == "same":
        return Relation.UNSURE
    if c.sp == "differs" or c.access == "differs":
        return Relation.OTHER
    return Relation.UNSURE


def _named(item: ListedItem, catalogue: tuple[ServiceInfo, ...]) -> Iterator[ServiceInfo]:
    """The services `compare` can find positive for `item` (same name or access number), by
    the cheap half of its tests: the judge asks this of the whole catalogue per item."""
    text = _text_of(item)
    listed = service_key(item.service) if item.service else ""
    numbers = [n for n in item.access.split(",") if n]
    for s in catalogue:
        key = service_key(s.service_name)
        if (
            (key in text and long_enough(key))
            or (listed and listed in key and long_enough(listed))
            or (key and key == listed)
            or (s.access_number and any(n.startswith(s.access_number) for n in numbers))
        ):
            yield s


def best_match(item: ListedItem, catalogue: tuple[ServiceInfo, ...]) -> ServiceInfo | None:
    """The catalogued service the item positively is; the closest when several are (on a tie,
    the first in catalogue order)."""
    scored = []
    for s in _named(item, catalogue):
        c = compare(item, s)
        if _positive(c):
            rank = (c.access == "same", c.exact, c.sp == "same", len(service_key(s.service_name)))
            scored.append((rank, s))
    if not scored:
        return None
    return max(scored, key=lambda pair: pair[0])[1]
