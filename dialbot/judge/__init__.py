"""The judge: a run's evidence in, findings out (spec/violations.md).

Pure functions over plain records (`dialbot.judge.model`): no database, no
modem, and never the simulator — the judge sees only what a real probe sees.
A run that failed for infrastructure reasons is never judged against an SP;
a run cut short (`RunRecord.cut`) only by the rules that need nothing but
what was seen (`SEEN_RULES`; for WAP runs `rules_wap.WAP_SEEN_RULES`).
"""

from __future__ import annotations

from dialbot.judge.case import SEVERITY, Case
from dialbot.judge.charges import attribute
from dialbot.judge.model import (
    Action,
    ActionKind,
    Event,
    Finding,
    FollowedOrder,
    ListedItem,
    RunRecord,
    ServiceInfo,
)
from dialbot.judge.rules import RULES, SEEN_RULES
from dialbot.judge.rules_call import judge_calls
from dialbot.judge.rules_followup import judge_followup
from dialbot.judge.rules_mms import judge_mms
from dialbot.judge.rules_wap import WAP_SEEN_RULES, judge_wap
from dialbot.judge.timeline import build, intruders

__all__ = [
    "Action",
    "ActionKind",
    "Event",
    "Finding",
    "FollowedOrder",
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
    if run.flow == "follow":
        return judge_followup(run)
    if run.flow == "wap":
        found_wap = judge_wap(run)
        return [f for f in found_wap if not run.cut or f.code in WAP_SEEN_RULES]
    if run.flow == "ivr":  # voice calls: judged on their measured durations and balances
        # (a cut run too: each call is judged only between two balance readings it has)
        return sorted(judge_calls(run), key=lambda f: (f.observed_at, f.code))
    if run.flow == "mms":  # the SMS rules with the MMS content rule (cut: SEEN_RULES only)
        return [f for f in judge_mms(run) if not run.cut or f.code in SEEN_RULES]
    tl = build(run)
    found = intruders(tl)
    expected = 0
    if run.service is not None and tl.confirms:
        expected = 1 if run.service.billing == "monthly" else len(tl.confirms)
    price = run.service.price_fen if run.service else 0
    case = Case(tl, found, attribute(tl, found, expected * price), expected)
    rules = [rule for code, rule in RULES.items() if not run.cut or code in SEEN_RULES]
    findings = [f for rule in rules for f in rule(case)]
    return sorted(findings, key=lambda f: (f.observed_at, f.code))
