"""Which steps a flow runs for a service: keywords expand, missing ones skip their expect."""

from __future__ import annotations

from dialbot.flows.loader import parse_flow, standard_flows
from dialbot.flows.model import Cancel, Expect, Send
from dialbot.flows.steps import effective_steps, expand
from dialbot.judge.model import ServiceInfo

PER_USE = ServiceInfo("901", "星河", "XZ", "星河星座", "1065800102", "per_use", 100, "XZ")
MONTHLY = ServiceInfo(
    "901",
    "星河",
    "XH",
    "星河笑话",
    "1065800101",
    "monthly",
    500,
    "DG",
    cancel_cmd="TD",
    use_cmd="XH",
)


def test_expand_placeholders() -> None:
    assert expand("{subscribe}", MONTHLY) == "DG"
    assert expand("{use} {cancel}", MONTHLY) == "XH TD"
    assert expand("{use}", PER_USE) is None
    assert expand("HELP", None) == "HELP"


def test_send_without_keyword_is_skipped_with_its_expect() -> None:
    flow = parse_flow(
        "name: t\nsteps:\n"
        "  - send: {text: '{subscribe}', purpose: order}\n"
        "  - expect: {kind: prompt, capture: p}\n"
        "  - send: {text: '{use}', purpose: use}\n"
        "  - expect: {kind: content}\n"
        "  - observe: 5s\n"
        "  - cancel: {within: 10s}\n",
        "t.yaml",
    )
    steps = effective_steps(flow, PER_USE)
    assert [type(s) for s in steps] == [Send, Expect, type(flow.steps[4])]
    assert len(effective_steps(flow, MONTHLY)) == 6
    assert any(isinstance(s, Cancel) for s in effective_steps(flow, MONTHLY))


def test_standard_flows_cover_both_billing_types() -> None:
    flows = standard_flows()
    assert {"decline", "monthly", "per_use", "hygiene"} <= set(flows)
    assert all(flows["monthly"].unavoidable_wait_s() > 0 for _ in [0])
