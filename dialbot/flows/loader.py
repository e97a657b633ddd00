"""Load and validate `probes/*.yaml` (and the package's standard flows).

Errors name the file, the line and the reason, and a file with any error
yields no flow at all: a half-understood flow would probe the wrong thing.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dialbot.errors import FlowError
from dialbot.flows.model import (
    BILLINGS,
    KINDS,
    PARTIES,
    PURPOSES,
    Balance,
    Call,
    Cancel,
    CancelAll,
    Detail,
    Expect,
    Explore,
    FetchMms,
    Flow,
    Observe,
    Open,
    Order,
    Reply,
    Send,
    Step,
    Subscriptions,
    Use,
)

LINE = "__line__"
FLOW_KINDS = ("decline", "monthly", "per_use", "hygiene", "keep", "custom", "wap", "ivr", "mms")
PLACEHOLDERS = {"subscribe", "use", "cancel"}
FLOW_NAME_MAX = 64  # the length of runs.flow (dialbot.db.models.Run)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that remembers the line of every mapping (1-based)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping[LINE] = node.start_mark.line + 1
        return mapping


def _line(data: Any, default: int) -> int:
    return int(data.get(LINE, default)) if isinstance(data, dict) else default


def parse_duration(value: Any, file: str, line: int, field: str) -> float:
    """Seconds from `90`, `90s`, `2m`, `500ms`; must be positive."""
    if isinstance(value, bool):
        raise FlowError(file, f"line {line}", f"{field}: not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise FlowError(file, f"line {line}", f"{field}: not a duration: {value!r}")
    if seconds <= 0:
        raise FlowError(file, f"line {line}", f"{field}: must be positive")
    return seconds


class _StepReader:
    """Turns one step mapping into a Step, checking keys and values."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, line: int, reason: str) -> FlowError:
        return FlowError(self.file, f"line {line}", reason)

    def args(self, name: str, value: Any, line: int, allowed: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(line, f"{name}: expected a mapping of options, got {value!r}")
        args = {k: v for k, v in value.items() if k != LINE}
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise self.fail(line, f"{name}: unknown option {unknown[0]!r}")
        return args

    def choice(self, line: int, field: str, value: Any, options: tuple[str, ...]) -> str:
        if value not in options:
            raise self.fail(line, f"{field}: {value!r} is not one of {', '.join(options)}")
        return str(value)

    def text(self, line: int, field: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(line, f"{field}: must be a non-empty string")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise self.fail(line, f"{field}: control characters are not allowed")
        for name in re.findall(r"{(\w*)}", value):
            if name not in PLACEHOLDERS:
                raise self.fail(line, f"{field}: unknown placeholder {{{name}}}")
        return value

    def read(self, raw: Any, line: int) -> Step:
        if not isinstance(raw, dict) or len([k for k in raw if k != LINE]) != 1:
            raise self.fail(line, "a step is a mapping with exactly one step name")
        line = _line(raw, line)
        name = next(k for k in raw if k != LINE)
        value = raw[name]
        method = getattr(self, f"step_{name}", None)
        if method is None:
            raise self.fail(line, f"unknown step {name!r}")
        step: Step = method(value, _line(value, line))
        return step

    def step_send(self, value: Any, line: int) -> Send:
        a = self.args("send", value, line, {"text", "to", "purpose"})
        if "text" not in a:
            raise self.fail(line, "send: 'text' is required")
        return Send(
            text=self.text(line, "send.text", a["text"]),
            to=self.choice(line, "send.to", a.get("to", "sp"), PARTIES[:2]),  # type: ignore[arg-type]
            purpose=self.choice(line, "send.purpose", a.get("purpose", "other"), PURPOSES),  # type: ignore[arg-type]
            line=line,
        )

    def step_expect(self, value: Any, line: int) -> Expect:
        a = self.args("expect", value, line, {"kind", "from", "within", "capture", "optional"})
        capture = a.get("capture")
        if capture is not None and not (isinstance(capture, str) and capture.isidentifier()):
            raise self.fail(line, "expect.capture: must be a name")
        optional = a.get("optional", False)
        if not isinstance(optional, bool):
            raise self.fail(line, "expect.optional: must be true or false")
        return Expect(
            kind=self.choice(line, "expect.kind", a.get("kind", "any"), KINDS),  # type: ignore[arg-type]
            sender=self.choice(line, "expect.from", a.get("from", "sp"), PARTIES),  # type: ignore[arg-type]
            within=parse_duration(a.get("within", 60), self.file, line, "expect.within"),
            capture=capture,
            optional=optional,
            line=line,
        )

    def step_reply(self, value: Any, line: int) -> Reply:
        a = self.args("reply", value, line, {"to", "text"})
        to = a.get("to")
        if not isinstance(to, str) or not to.isidentifier():
            raise self.fail(line, "reply.to: must name a capture")
        text = a.get("text")
        return Reply(
            to=to, text=None if text is None else self.text(line, "reply.text", text), line=line
        )

    def step_balance(self, value: Any, line: int) -> Balance:
        a = self.args("balance", value, line, {"label"})
        return Balance(label=str(a.get("label", "")), line=line)

    def step_subscriptions(self, value: Any, line: int) -> Subscriptions:
        a = self.args("subscriptions", value, line, {"label"})
        return Subscriptions(label=str(a.get("label", "")), line=line)

    def step_detail(self, value: Any, line: int) -> Detail:
        a = self.args("detail", value, line, {"label"})
        return Detail(label=str(a.get("label", "")), line=line)

    def step_observe(self, value: Any, line: int) -> Observe:
        return Observe(seconds=parse_duration(value, self.file, line, "observe"), line=line)

    def step_wait(self, value: Any, line: int) -> Observe:
        return Observe(seconds=parse_duration(value, self.file, line, "wait"), line=line)

    def step_cancel(self, value: Any, line: int) -> Cancel:
        a = self.args("cancel", value, line, {"within"})
        within = parse_duration(a.get("within", 60), self.file, line, "cancel.within")
        return Cancel(within=within, line=line)

    def step_open(self, value: Any, line: int) -> Open:
        self.args("open", value, line, set())
        return Open(line=line)

    def step_explore(self, value: Any, line: int) -> Explore:
        a = self.args("explore", value, line, {"limit"})
        limit = a.get("limit", 6)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 20:
            raise self.fail(line, "explore.limit: an integer 0..20")
        return Explore(limit=limit, line=line)

    def step_order(self, value: Any, line: int) -> Order:
        a = self.args("order", value, line, {"confirm"})
        confirm = a.get("confirm", True)
        if not isinstance(confirm, bool):
            raise self.fail(line, "order.confirm: must be true or false")
        return Order(confirm=confirm, line=line)

    def step_use(self, value: Any, line: int) -> Use:
        self.args("use", value, line, set())
        return Use(line=line)

    def step_call(self, value: Any, line: int) -> Call:
        a = self.args(
            "call", value, line, {"keys", "hold", "answer_within", "release_within", "label"}
        )
        keys = a.get("keys", "{use}")
        if keys == "" or keys is None:
            keys = ""
        else:
            keys = self.text(line, "call.keys", str(keys))
            if keys != "{use}" and not re.fullmatch(r"[0-9*#A-D]{1,32}", keys):
                raise self.fail(line, "call.keys: DTMF keys (0-9 * # A-D) or {use}")
        hold = a.get("hold", 1.05)
        if isinstance(hold, bool) or not isinstance(hold, int | float) or not 0 < hold <= 60:
            raise self.fail(line, "call.hold: billing minutes, a number in (0, 60]")
        return Call(
            keys=keys,
            hold=float(hold),
            answer_within=parse_duration(
                a.get("answer_within", 60), self.file, line, "call.answer_within"
            ),
            release_within=parse_duration(
                a.get("release_within", 10), self.file, line, "call.release_within"
            ),
            label=str(a.get("label", "")),
            line=line,
        )

    def step_fetch_mms(self, value: Any, line: int) -> FetchMms:
        a = self.args("fetch_mms", value, line, {"within"})
        within = parse_duration(a.get("within", 60), self.file, line, "fetch_mms.within")
        return FetchMms(within=within, line=line)

    def step_cancel_all(self, value: Any, line: int) -> CancelAll:
        a = self.args("cancel_all", value, line, {"within"})
        within = parse_duration(a.get("within", 60), self.file, line, "cancel_all.within")
        return CancelAll(within=within, line=line)


def parse_flow(text: str, file: str) -> Flow:
    """Parse one flow document; raise FlowError naming file, line and reason."""
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise FlowError(file, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise FlowError(file, "line 1", "a flow file is a mapping with name, kind, billing, steps")
    unknown = sorted(set(data) - {LINE, "name", "kind", "billing", "description", "steps"})
    if unknown:
        raise FlowError(file, "line 1", f"unknown key {unknown[0]!r}")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise FlowError(file, "line 1", "name: required, lowercase letters, digits, - and _")
    if len(name) > FLOW_NAME_MAX:  # every run stores it; PostgreSQL would refuse a longer one
        raise FlowError(file, "line 1", f"name: at most {FLOW_NAME_MAX} characters")
    kind = data.get("kind", "custom")
    if kind not in FLOW_KINDS:
        raise FlowError(file, "line 1", f"kind: {kind!r} is not one of {', '.join(FLOW_KINDS)}")
    billing = data.get("billing", list(BILLINGS))
    if isinstance(billing, str):
        billing = [billing]
    if not isinstance(billing, list) or not billing or any(b not in BILLINGS for b in billing):
        raise FlowError(file, "line 1", f"billing: a list of {', '.join(BILLINGS)}")
    steps_raw = data.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise FlowError(file, "line 1", "steps: required, a non-empty list")
    if (kind == "ivr") != any("call" in r for r in steps_raw if isinstance(r, dict)):
        raise FlowError(file, "line 1", "kind: ivr flows, and only they, have call steps")
    reader = _StepReader(file)
    steps: list[Step] = []
    captures: set[str] = set()
    for raw in steps_raw:
        step = reader.read(raw, _line(raw, 1))
        if isinstance(step, Reply) and step.to not in captures:
            raise FlowError(file, f"line {step.line}", f"reply.to: no earlier capture {step.to!r}")
        if isinstance(step, Expect) and step.capture:
            captures.add(step.capture)
        steps.append(step)
    return Flow(
        name=name,
        kind=str(kind),
        billing=tuple(billing),
        steps=tuple(steps),
        description=str(data.get("description", "")),
        source=file,
    )


def load_flow(path: Path) -> Flow:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(str(path), "", f"cannot read: {exc}") from exc
    return parse_flow(text, str(path))


def standard_flows() -> dict[str, Flow]:
    """The flows shipped in the package (dialbot/flows/standard/*.yaml)."""
    out: dict[str, Flow] = {}
    folder = resources.files("dialbot.flows") / "standard"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            flow = parse_flow(
                entry.read_text(encoding="utf-8"), f"dialbot/flows/standard/{entry.name}"
            )
            out[flow.name] = flow
    return out


def keep_flow() -> Flow:
    """The `keep` flow (dialbot/flows/month/keep.yaml): order a monthly service and keep it
    for the follow-up's horizon. Not standard (a sweep never runs it): a schedule that
    lists it adds it (`scheduled_flows`)."""
    entry = resources.files("dialbot.flows") / "month" / "keep.yaml"
    return parse_flow(entry.read_text(encoding="utf-8"), "dialbot/flows/month/keep.yaml")


def load_flows(folder: Path | None) -> dict[str, Flow]:
    """Standard flows, overridden or extended by `probes/*.yaml` (same name wins)."""
    flows = standard_flows()
    if folder is not None and folder.is_dir():
        names: dict[str, str] = {}
        for path in sorted(folder.glob("*.yaml")):
            flow = load_flow(path)
            if flow.name in names:
                raise FlowError(
                    str(path), "line 1", f"name {flow.name!r} already used by {names[flow.name]}"
                )
            names[flow.name] = str(path)
            flows[flow.name] = flow
    return flows


def scheduled_flows(folder: Path | None) -> dict[str, Flow]:
    """The flows a schedule may name: `load_flows` plus the `keep` flow (a schedule lists
    it to follow monthly services through a renewal; `probes/keep.yaml` overrides it).
    The planner only plans the flows a schedule names, so having it here plans nothing."""
    flows = load_flows(folder)
    if "keep" not in flows:
        flows["keep"] = keep_flow()
    return flows
