"""The `call` step of the flow language, which flows fit ivr lines, and their planned length."""

from __future__ import annotations

import pytest

from dialbot.errors import FlowError
from dialbot.flows.loader import parse_flow, standard_flows
from dialbot.flows.model import Call, default_flows
from dialbot.scheduling.inputs import flow_seconds

IVR = """
name: calls
kind: ivr
billing: [per_minute]
steps:
  - balance: {label: before}
  - call: {keys: "12#", hold: 0.5, answer_within: 30s, release_within: 2s, label: a}
  - call: {}
"""


def test_call_steps_parse() -> None:
    flow = parse_flow(IVR, "calls.yaml")
    first, second = (s for s in flow.steps if isinstance(s, Call))
    assert (first.keys, first.hold, first.answer_within, first.release_within) == (
        "12#",
        0.5,
        30.0,
        2.0,
    )
    assert (second.keys, second.hold) == ("{use}", 1.05)
    assert flow.call_minutes() == pytest.approx(1.55)


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        ('{keys: "1;ATH"}', "DTMF"),
        ('{keys: "{subscribe}"}', "DTMF"),
        ("{hold: 0}", "billing minutes"),
        ("{hold: 61}", "billing minutes"),
        ("{hold: yes}", "billing minutes"),
        ("{ring: 3}", "unknown option"),
    ],
)
def test_bad_call_steps(step: str, reason: str) -> None:
    text = IVR.replace("  - call: {}", f"  - call: {step}")
    with pytest.raises(FlowError, match=reason):
        parse_flow(text, "calls.yaml")


def test_only_ivr_flows_call() -> None:
    with pytest.raises(FlowError, match="ivr"):
        parse_flow(IVR.replace("kind: ivr", "kind: custom"), "x.yaml")
    sms = "name: x\nkind: ivr\nbilling: [per_minute]\nsteps:\n  - balance: {}\n"
    with pytest.raises(FlowError, match="ivr"):
        parse_flow(sms, "x.yaml")


def test_which_flows_fit() -> None:
    flows = standard_flows()
    assert flows["ivr"].fits("ivr", "per_minute")
    assert not flows["ivr"].fits("sms", "per_use")
    assert not flows["per_use"].fits("ivr", "per_minute")
    assert not flows["monthly"].fits("ivr", "monthly")
    assert default_flows("ivr", "per_minute") == ("ivr",)
    assert default_flows("sms", "monthly") == ("decline", "monthly")


def test_planned_length_counts_calls_in_real_minutes() -> None:
    flow = standard_flows()["ivr"]
    # time_scale shortens the waits, never the calls: 0.8 + 1.05 minutes of 60 s at least
    assert flow_seconds(flow, time_scale=0.001) >= (0.8 + 1.05) * 60
