"""The judge: a run's evidence in, findings out (spec/violations.md).

Pure functions over plain records (`dialbot.judge.model`): no database, no
modem, and never the simulator — the judge sees only what a real probe sees.
A run that failed for infrastructure reasons is never judged against an SP.
"""

from __future__ import annotations

from dialbot.judge.charges import attribute
from dialbot.judge.model import (
    Action,
    ActionKind,
    Event,
    Finding,
    ListedItem,
    RunRecord,
    ServiceInfo,
)
from dialbot.judge.rules import RULES, SEVERITY, Case
from dialbot.judge.rules_mms import judge_mms
from dialbot.judge.rules_wap import judge_wap
from dialbot.judge.timeline import build, intruders

__all__ = [
    "Action",
    "ActionKind",
    "Event",
    "Finding",
    "ListedItem",
    "RunRecord",
    "SEVERITY",
    "ServiceInfo",
    "judge",
]


def judge(run: RunRecord) -> list[Finding]:
    """Every violation the run's evidence proves, in the order they were observed."""
    if run.infra_failed:
        return []
    if run.flow == "wap":
        return judge_wap(run)
    if run.flow == "mms":
        return judge_mms(run)
    tl = build(run)
    found = intruders(tl)
    expected = 0
    if run.service is not None and tl.confirms:
        expected = 1 if run.service.billing == "monthly" else len(tl.confirms)
    price = run.service.price_fen if run.service else 0
    case = Case(tl, found, attribute(tl, found, expected * price), expected)
    findings = [f for rule in RULES.values() for f in rule(case)]
    return sorted(findings, key=lambda f: (f.observed_at, f.code))
