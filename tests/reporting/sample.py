"""Report data built in memory: hostile SP text, masked and unmasked numbers, several periods."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dialbot.mask import mask_msisdn
from dialbot.reporting.model import EvidenceItem, FindingItem, ReportData, ServiceLine, SpDetail
from dialbot.reporting.period import parse_period
from dialbot.reporting.scoring import FindingCount, SpTally, rank_period

TZ = ZoneInfo("Asia/Shanghai")
SIM = "13800138000"
# An unmasked 11-digit mainland mobile number, not part of a longer digit run.
MSISDN_RE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
HOSTILE = (
    '您已订购<script>alert("x")</script><img src=x onerror=alert(1)>'
    "\x1b[31m红色\x1b[0m\u202e反转\x00 请回复Y确认，客服电话13912345678，或+8613700137000"
)
LONG = "超长内容" * 750  # 3000 characters
SP_NAMES = {"901001": "星河科技", "901002": "云端信息", "901003": "掌上乐园", "901004": "快乐时光"}


def _tallies(shift: int) -> list[SpTally]:
    f = FindingCount
    return [
        SpTally("901001", "星河科技", 18 + shift, 2, (f("NO_RESPONSE", "quality", 1),)),
        SpTally("901002", "云端信息", 12, 1, (f("PROMPT_INCOMPLETE", "minor", 1 + shift % 2),)),
        SpTally("901003", "掌上乐园", 10, 1, (f("OVERCHARGE", "critical", 1),)),
        SpTally("901004", "快乐时光", 2, 1, ()),
    ]


def _details() -> dict[str, SpDetail]:
    at = datetime(2026, 11, 24, 1, 13, 7, tzinfo=TZ)
    evidence = (
        EvidenceItem(412, at, "sms_out", "1065800103", "DG", mask_msisdn(SIM)),
        EvidenceItem(
            413, at + timedelta(seconds=3), "sms_in", "1065800103", HOSTILE, mask_msisdn(SIM)
        ),
        EvidenceItem(
            414, at + timedelta(seconds=9), "sms_in", "13912345678", LONG, mask_msisdn(SIM)
        ),
    )
    finding = FindingItem(17, "ZSLY", "OVERCHARGE", "critical", 500, at, mask_msisdn(SIM), evidence)
    return {
        "901003": SpDetail((ServiceLine("ZSLY", "掌上乐园<b>会员</b>", 10, 1),), (finding,)),
        "901001": SpDetail((ServiceLine("XHXH", "星河笑话", 18, 1),), ()),
    }


def build_report(period: str = "2026-11") -> ReportData:
    """Four SPs over twelve months, one with a hostile, over-long evidence excerpt."""
    current = parse_period(period)
    history = tuple(
        (p, rank_period(p.label, _tallies(i))) for i, p in enumerate(current.history(12))
    )
    return ReportData(
        period=current,
        generated_at=datetime(2026, 12, 1, 9, 0, tzinfo=TZ),
        ranking=history[-1][1],
        history=history,
        details=_details(),
    )


def unmasked_numbers(text: str) -> list[str]:
    return MSISDN_RE.findall(text)


def all_text_files(folder: Path) -> dict[Path, str]:
    return {
        p: p.read_text(encoding="utf-8")
        for p in folder.rglob("*")
        if p.suffix in {".html", ".css", ".csv", ".json"}
    }
