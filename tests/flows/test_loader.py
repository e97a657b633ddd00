from pathlib import Path

import pytest

from dialbot.errors import FlowError
from dialbot.flows.loader import load_flows, parse_flow, standard_flows
from dialbot.flows.model import Expect, Observe, Reply, Send

GOOD = """\
name: my-flow
kind: custom
billing: monthly
steps:
  - send: {text: "{subscribe}", purpose: order}
  - expect:
      kind: prompt
      within: 2m
      capture: p
  - reply: {to: p}
  - wait: 500ms
"""


def test_parses_steps_with_lines_and_durations() -> None:
    flow = parse_flow(GOOD, "probes/x.yaml")
    assert flow.billing == ("monthly",)
    send, expect, reply, wait = flow.steps
    assert isinstance(send, Send) and send.purpose == "order" and send.line == 5
    assert isinstance(expect, Expect) and expect.within == 120.0 and expect.line == 7
    assert isinstance(reply, Reply) and reply.to == "p"
    assert isinstance(wait, Observe) and wait.seconds == 0.5


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (GOOD.replace("within: 2m", "within: soon"), 7, "not a duration"),
        (GOOD.replace("kind: prompt", "kind: promt"), 7, "is not one of"),
        (GOOD.replace("reply: {to: p}", "reply: {to: q}"), 10, "no earlier capture"),
        (GOOD.replace("wait: 500ms", "dance: 1"), 11, "unknown step"),
        (GOOD.replace('"{subscribe}"', '"{subscrbe}"'), 5, "unknown placeholder"),
        (GOOD.replace('"{subscribe}"', '"DG\\r\\nATD10086;"'), 5, "control characters"),
        (GOOD.replace("purpose: order", "purpose: order, colour: red"), 5, "unknown option"),
    ],
)
def test_bad_flow_names_file_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(FlowError) as err:
        parse_flow(text, "probes/x.yaml")
    message = str(err.value)
    assert message.startswith(f"probes/x.yaml: line {line}:"), message
    assert reason in message


def test_bad_yaml_names_line() -> None:
    with pytest.raises(FlowError, match=r"x.yaml: line \d+: not valid YAML"):
        parse_flow("name: a\nsteps: [\n", "x.yaml")


def test_standard_flows_cover_both_billing_types() -> None:
    flows = standard_flows()
    assert {"decline", "monthly", "per_use", "hygiene"} <= set(flows)
    assert "monthly" in flows["monthly"].billing and "per_use" in flows["per_use"].billing
    # the decline flow must never confirm
    assert not any(isinstance(s, Reply) for s in flows["decline"].steps)


def test_probes_folder_overrides_and_rejects_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD, encoding="utf-8")
    flows = load_flows(tmp_path)
    assert "my-flow" in flows and "monthly" in flows
    (tmp_path / "b.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(FlowError, match="already used"):
        load_flows(tmp_path)


def test_probes_readme_example_is_a_valid_flow() -> None:
    import re

    readme = Path(__file__).resolve().parents[2] / "probes" / "README.md"
    block = re.search(r"```yaml\n(.*?)```", readme.read_text("utf-8"), re.S)
    assert block is not None
    flow = parse_flow(block.group(1), str(readme))
    assert flow.kind == "monthly" and any(isinstance(s, Reply) for s in flow.steps)
