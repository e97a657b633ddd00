"""Names as written by someone else: normalised for containment tests.

The catalogue says `某某` and `掌上笑话`; the carrier bills `北京某某信息技术有限
公司` and `掌上笑话(包月)`; an SP's prompt writes `某某 Co., Ltd.`. These
helpers reduce each to a comparable core: NFKC, case-folded, without
whitespace, punctuation, billing tags, service suffixes, company suffixes,
industry words and a leading region. They never shorten a name below two
characters, and containment of a core means something only when it is long
enough (`long_enough`).

Each is cached: the judge compares every listed item and notice with the
whole catalogue, so the same few thousand names are reduced again and again
within a night (they are pure functions of one string).
"""

from __future__ import annotations

import functools
import re
import unicodedata

_CACHED = 1 << 16  # names: a catalogue's and what carriers and SPs wrote in a night

BILLING_TAG = re.compile(
    r"[(\[【]\s*(?:包月|包年|包季|按次|按条|点播|月租|月付|包月版|试用|体验|免费)\s*[)\]】]"
)


@functools.lru_cache(maxsize=_CACHED)
def flat(text: str) -> str:
    """NFKC, case-folded, without whitespace, punctuation and symbols: for containment tests."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


_SERVICE_SUFFIX = re.compile(r"(?:业务|服务|包月版|包月|月包|套餐|版)$")
_COMPANY_SUFFIX = re.compile(
    r"(?:股份有限公司|有限责任公司|有限公司|公司|集团|工作室|colimited|coltd|ltd|limited|inc"
    r"|corporation|corp|company|co)$"
)
_INDUSTRY = re.compile(
    r"(?:信息技术|网络技术|网络科技|信息科技|科技|信息|技术|网络|文化传媒|传媒|文化|通信|通讯|电子商务"
    r"|软件|数码|数字|互动|传播|咨询|发展|服务|technology|technologies|tech|network|networks"
    r"|media|information|info|digital)$"
)
_REGION = re.compile(
    r"^(?:北京市?|上海市?|天津市?|重庆市?|深圳市?|广州市?|杭州市?|南京市?|成都市?|武汉市?|西安市?"
    r"|厦门市?|苏州市?|长沙市?|郑州市?|济南市?|青岛市?|沈阳市?|大连市?|福州市?|合肥市?|昆明市?"
    r"|[\u4e00-\u9fff]{2,3}省(?:[\u4e00-\u9fff]{2,3}市)?)"
)


@functools.lru_cache(maxsize=_CACHED)
def service_key(name: str) -> str:
    """A service name without billing tags and suffixes (`掌上笑话(包月)` -> `掌上笑话`)."""
    key = flat(BILLING_TAG.sub("", unicodedata.normalize("NFKC", name)))
    while True:
        shorter = _SERVICE_SUFFIX.sub("", key)
        if shorter == key or len(shorter) < 2:
            return key
        key = shorter


@functools.lru_cache(maxsize=_CACHED)
def sp_core(name: str) -> str:
    """An SP name without region, industry words and company suffix (`北京某某信息技术有限公司`
    -> `某某`); never shorter than two characters."""
    core = flat(name)
    while True:
        shorter = _INDUSTRY.sub("", _COMPANY_SUFFIX.sub("", core))
        if shorter == core or len(shorter) < 2:
            break
        core = shorter
    without_region = _REGION.sub("", core)
    return without_region if len(without_region) >= 2 else core


def long_enough(key: str) -> bool:
    """Two CJK characters, or three of anything else, before containment means anything."""
    return len(key) >= 3 or (len(key) == 2 and all(ord(c) > 0x2E80 for c in key))
