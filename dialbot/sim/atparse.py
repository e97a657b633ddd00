"""Splitting an AT command line into commands (V.250 §5.2), and result codes.

Kept apart from the device so the grammar is tested on its own: a line such
as ``AT+CMGF=1;+CSCS="GSM"`` or ``ATE0V1`` holds several commands, and ``D``
swallows the rest of the line (the dial string may end in ``;``).
"""

from __future__ import annotations

from dataclasses import dataclass

CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    14: "SIM busy",
    30: "no network service",
    50: "Incorrect parameters",
    100: "unknown",
    515: "Please wait, init or command processing in progress.",
}
CMS_TEXT = {
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    500: "unknown error",
}


class AtError(Exception):
    """A command failed; rendered per +CMEE as ERROR, a code, or verbose text."""

    def __init__(self, kind: str = "", code: int = 0) -> None:
        super().__init__(f"{kind} {code}")
        self.kind = kind  # "CME", "CMS" or "" (plain ERROR)
        self.code = code

    def render(self, cmee: int) -> str:
        """The final result line for this error under the current +CMEE setting."""
        if not self.kind or cmee == 0:
            return "ERROR"
        if cmee == 2:
            table = CME_TEXT if self.kind == "CME" else CMS_TEXT
            return f"+{self.kind} ERROR: {table.get(self.code, self.code)}"
        return f"+{self.kind} ERROR: {self.code}"


class Reply:
    """Info lines plus the final result; final None = none yet (prompt, Wavecom quirks)."""

    def __init__(self, lines: list[str], final: str | None = "OK") -> None:
        self.lines = lines
        self.final = final


class UnknownCommand(Exception):
    """The make does not know this command (ERROR, or Huawei's COMMAND NOT SUPPORT)."""


@dataclass(frozen=True)
class Command:
    """One command of a line: name ("+CMGS", "E", "D", "&F"), form and arguments."""

    name: str
    form: str  # "exec" | "read" (?) | "test" (=?) | "set" (=...)
    raw: str  # everything after the name (and after "=" for set)

    @property
    def args(self) -> list[str]:
        """Comma-separated arguments with quotes removed; commas inside quotes kept."""
        return [unquote(a) for a in split_args(self.raw)] if self.form == "set" else []

    def int_arg(self, index: int, default: int | None = None) -> int:
        """Argument `index` as an integer; a missing or bad one is a plain ERROR."""
        args = self.args
        if index < len(args) and args[index] != "":
            try:
                return int(args[index])
            except ValueError:
                raise AtError() from None
        if default is None:
            raise AtError()
        return default


def split_args(raw: str) -> list[str]:
    """Split on commas outside double quotes."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in raw:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    out.append("".join(current).strip())
    return out


def unquote(value: str) -> str:
    """Strip one pair of surrounding double quotes."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def parse_line(line: str) -> list[Command] | None:
    """The commands of one line (after "AT"); None when the line is not an AT line."""
    text = line.strip()
    if len(text) < 2 or text[:2].upper() != "AT":
        return None
    body = text[2:]
    commands: list[Command] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch in " ;":
            i += 1
            continue
        if ch in "+^$%*#":
            end = _extended_end(body, i)
            commands.append(_extended(body[i:end]))
            i = end
        elif ch.upper() == "D":
            commands.append(Command("D", "set", body[i + 1 :].strip()))
            break
        else:
            name, i = _basic_name(body, i)
            value_start = i
            while i < len(body) and (body[i].isdigit() or body[i] in "=?"):
                i += 1
            rest = body[value_start:i]
            form = "read" if rest.endswith("?") and "=" not in rest else "set" if rest else "exec"
            commands.append(Command(name, form, rest.lstrip("=")))
    return commands


def _basic_name(body: str, i: int) -> tuple[str, int]:
    if body[i] == "&" and i + 1 < len(body):
        return "&" + body[i + 1].upper(), i + 2
    if body[i].upper() == "S":  # S-registers: S0=0, S7?
        j = i + 1
        while j < len(body) and body[j].isdigit():
            j += 1
        return body[i:j].upper(), j
    return body[i].upper(), i + 1


def _extended_end(body: str, start: int) -> int:
    quoted = False
    for j in range(start, len(body)):
        if body[j] == '"':
            quoted = not quoted
        elif body[j] == ";" and not quoted:
            return j
    return len(body)


def _extended(text: str) -> Command:
    j = 1
    while j < len(text) and (text[j].isalnum() or text[j] in "_"):
        j += 1
    name, rest = text[:j].upper(), text[j:]
    if rest == "?":
        return Command(name, "read", "")
    if rest == "=?":
        return Command(name, "test", "")
    if rest.startswith("="):
        return Command(name, "set", rest[1:])
    return Command(name, "exec", rest)
