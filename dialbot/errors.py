"""One exception tree for the whole package.

Every error a user can cause or meet carries enough context to act on it:
configuration and input errors name the file, the line or key, and the reason.
"""

from __future__ import annotations

from typing import Any


class DialbotError(Exception):
    """Base of every error dialbot raises on purpose.

    Picklable whatever a subclass's constructor takes (rebuilt from its message and
    attributes, not by calling it again): an error raised in a fleet process reaches
    the command's process as itself (dialbot.flows.parts)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(cls: type[DialbotError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class InputError(DialbotError):
    """Bad input from a file a person edits: names the file, where, and why."""

    def __init__(self, file: str, where: str, reason: str) -> None:
        self.file = file
        self.where = where
        self.reason = reason
        loc = f"{file}: {where}" if where else file
        super().__init__(f"{loc}: {reason}")


class ConfigError(InputError):
    """dialbot.toml, hardware/*.toml or schedules/*.toml is wrong."""


class WorldError(InputError):
    """A simulator world file is wrong."""


class CatalogError(InputError):
    """A catalogue CSV row is wrong."""


class FlowError(InputError):
    """A probe flow definition is wrong."""


class UnsafeInputError(DialbotError):
    """Data would reach a modem as control input (CR, LF, Ctrl-Z, ESC...)."""


class ModemError(DialbotError):
    """A modem failed; carries the last AT exchanges when known."""

    def __init__(self, message: str, trace: list[str] | None = None) -> None:
        self.trace = list(trace or [])
        super().__init__(message)

    def __str__(self) -> str:
        base = super().__str__()
        if not self.trace:
            return base
        return base + "\n  last AT exchanges:\n    " + "\n    ".join(self.trace)


class AtTimeout(ModemError):
    """The modem did not answer a command within its deadline."""


class ModemBusy(AtTimeout):
    """Another operation (e.g. a long multipart send) held the modem longer than one
    could wait for it: the modem is working, not dead."""


class CmsError(ModemError):
    """The modem answered +CMS ERROR (message service failure)."""

    def __init__(self, code: int, message: str = "", trace: list[str] | None = None) -> None:
        self.code = code
        super().__init__(message or f"+CMS ERROR: {code}", trace)


class CmeError(ModemError):
    """The modem answered +CME ERROR (equipment failure, e.g. no SIM)."""

    def __init__(self, code: int | str, message: str = "", trace: list[str] | None = None) -> None:
        self.code = code
        super().__init__(message or f"+CME ERROR: {code}", trace)


class CallNotPlaced(ModemError):
    """A voice call could not be placed or was lost (no network, BUSY, NO CARRIER, no answer).

    An infrastructure outcome (retry elsewhere), never a finding about the
    line called; `record` is the call evidence gathered so far, when any.
    """

    def __init__(self, cause: str, message: str = "", record: object = None) -> None:
        self.cause = cause
        self.record = record
        super().__init__(message or f"call not placed: {cause}")
