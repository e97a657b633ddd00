"""What a modem says about its SIM and network: health and identity.

Answers are parsed by looking for the line that carries them, never by
position, because makes differ in prefixes and extra lines. A command a
modem refuses gives an unknown value; a command it does not answer in time
propagates (the modem is faulty, not the field unknown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gsmmodem.exceptions import CmeError, CommandError

from dialbot.modem.patched import SIM_ABSENT_CODES, FleetGsmModem

_CREG = re.compile(r"^\+CREG:\s*(\d+)(?:,\s*(\d+))?")
_CSQ = re.compile(r"^\+CSQ:\s*(\d+)")
_ICCID = re.compile(r"([0-9A-Fa-f]{18,22})")
_IMSI = re.compile(r"^(\d{6,16})$")
_PREFIX = re.compile(r"^\+?\^?[A-Z]+:\s*")


@dataclass(frozen=True)
class Health:
    """SIM status (READY, ABSENT, SIM PIN…), registration status and signal (0–31 or None)."""

    sim: str
    registration: int | None
    signal: int | None

    @property
    def sim_ready(self) -> bool:
        return self.sim == "READY"

    @property
    def registered(self) -> bool:
        """1 home network, 5 roaming."""
        return self.registration in (1, 5)


@dataclass(frozen=True)
class Identity:
    imsi: str | None
    iccid: str | None
    imei: str | None
    msisdn: str | None
    manufacturer: str | None
    model: str | None


def _answer(gsm: FleetGsmModem, command: str) -> list[str] | None:
    """The answer lines without the final OK, or None when the modem refuses the command."""
    try:
        lines = gsm.write(command) or []
    except CommandError:
        return None
    return [line for line in lines if line != "OK"]


def _first_value(gsm: FleetGsmModem, command: str) -> str | None:
    lines = _answer(gsm, command)
    if not lines:
        return None
    return _PREFIX.sub("", lines[0]).strip().strip('"') or None


def read_sim_status(gsm: FleetGsmModem) -> str:
    """READY, ABSENT, or what +CPIN says is needed (SIM PIN, SIM PUK…)."""
    try:
        lines = gsm.write("AT+CPIN?") or []
    except CmeError as exc:
        if exc.code in SIM_ABSENT_CODES:
            return "ABSENT"
        return f"ERROR {exc.code}"
    except CommandError:
        return "ERROR"
    for line in lines:
        if line.startswith("+CPIN:"):
            return line.split(":", 1)[1].strip()
    return "UNKNOWN"


def read_health(gsm: FleetGsmModem) -> Health:
    """+CPIN?, +CREG? and +CSQ in one pass."""
    sim = read_sim_status(gsm)
    registration: int | None = None
    for line in gsm.write("AT+CREG?", parseError=False) or []:
        match = _CREG.match(line)
        if match:
            registration = int(match.group(2) if match.group(2) is not None else match.group(1))
    signal: int | None = None
    for line in _answer(gsm, "AT+CSQ") or []:
        match = _CSQ.match(line)
        if match and int(match.group(1)) != 99:
            signal = int(match.group(1))
    return Health(sim, registration, signal)


def read_iccid(gsm: FleetGsmModem) -> str | None:
    """Makes disagree on the command: +CCID, ^ICCID? (Huawei), +ICCID, +QCCID."""
    for command in ("AT+CCID", "AT^ICCID?", "AT+ICCID", "AT+QCCID"):
        for line in _answer(gsm, command) or []:
            match = _ICCID.search(line)
            if match:
                return match.group(1).upper().rstrip("F")
    return None


def read_identity(gsm: FleetGsmModem, msisdn_fallback: str | None = None) -> Identity:
    """IMSI, ICCID, IMEI, MSISDN (+CNUM, else the inventory's), make and model."""
    imsi = _first_value(gsm, "AT+CIMI")
    if imsi is not None and not _IMSI.match(imsi):
        imsi = None
    return Identity(
        imsi=imsi,
        iccid=read_iccid(gsm),
        imei=_first_value(gsm, "AT+CGSN"),
        msisdn=gsm.ownNumber or msisdn_fallback,
        manufacturer=_first_value(gsm, "AT+CGMI"),
        model=_first_value(gsm, "AT+CGMM"),
    )
