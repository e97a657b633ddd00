"""How real modem makes differ on the wire, as data for the virtual device.

Every fact here comes from a capture or a public test fake, not from
imagination: /work/shared/corpus/README.md ("Real modem dialects") and the
gammu transcripts, python-gsmmodem's test/fakemodems.py (Huawei K3715/E1752,
Wavecom Multiband 900E, Qualcomm M6280, ZTE K3565-Z) and public SIM800
transcripts. The device (`dialbot.sim.device`) reads only this table, so a
new make is a new entry, not new code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What every virtual modem implements (27.007 / 27.005 / V.250 names without "AT").
STANDARD = frozenset(
    "+CGMI +CGMM +CGMR +CGSN +GMI +GMM +GMR +GSN +GCAP +CIMI +CCID +CNUM +CSQ +CREG +CGREG "
    "+COPS +CPIN +CFUN +CMEE +CSCS +CPMS +CSCA +CMGF +CSMP +CSDH +CNMI +CMGS +CMGR +CMGL "
    "+CMGD +CUSD +CLIP +CRC +CVHU +CLCC +CHUP +VTS +CPAS +CEER +CLAC +COLP +CMMS".split()
)

_HUAWEI_EXTRA = frozenset("^CURC ^USSDMODE ^CVOICE ^DTMF ^SYSINFO ^ICCID ^HWVER".split())

# The +CLAC list of a Huawei E1752 (python-gsmmodem fake), shortened to the
# commands a client acts on plus a representative tail.
_HUAWEI_CLAC = (
    "&C &D &F &V E I L M Q V X Z T P D A H O S0 S3 S4 S5 +FCLASS +ICF +IFC +IPR +GMI +GMM +GMR "
    "+GCAP +GSN +CLAC +CCLK +CSSN +CREG +CGREG +CFUN +CSCS +CRC +CMEE +CGDCONT +CGATT +CSMS "
    "+CMGF +CSCA +CSMP +CSDH +CVHU +CSQ +CPAS +CPIN +CPMS +CNMI +CMGL +CMGR +CMGS +CMGW +CMGD "
    "+CHUP +COPS +CUSD +CIMI +CGMI +CGMM +CGMR +CGSN +CNUM +CLCC +CLIP +COLP $QCSIMSTAT "
    "^SYSINFO ^SYSCFG ^HS ^DTMF ^HWVER ^SPN ^CPIN ^BOOT ^CURC ^CARDMODE ^CVOICE ^USSDMODE ^ICCID"
).split()

# The +CLAC list of a ZTE K3565-Z (python-gsmmodem fake), shortened likewise.
_ZTE_CLAC = (
    "&C &D &E &F &S &V &W E I L M Q V X Z T P D A H O S0 S3 S4 S5 +FCLASS +ICF +IFC +IPR +GMI "
    "+GMM +GMR +GCAP +GSN +CREG +CGREG +CFUN +CSCS +CRC +CMEE +CGDCONT +CMGF +CSCA +CSMP +CSDH "
    "+CVHU +CSQ +ZRSSI +CPAS +CPIN +CPMS +CNMI +CMGL +CMGR +CMGS +CMGD +CHUP +COPS +CUSD +CIMI "
    "+CGMI +CGMM +CGMR +CGSN +CNUM +CLCC +CLAC +CLIP +COLP $QCSIMSTAT $QCPINSTAT $BREW"
).split()

# 27.007 +CLAC: one command per line, no prefix.
_GENERIC_CLAC = tuple(sorted(STANDARD | {"E", "Z", "H", "A", "D", "I", "V", "Q"}))

# SIMCom SIM800 bearer and HTTP application (SIM800 Series AT Command Manual §9, §15).
_SIMCOM_HTTP = frozenset(
    "+SAPBR +HTTPINIT +HTTPTERM +HTTPPARA +HTTPDATA +HTTPACTION +HTTPHEAD +HTTPREAD "
    "+HTTPSTATUS".split()
)
# Quectel EC20/UC15: context and HTTP(S) application (Quectel HTTP(S) AT Commands Manual).
_QUECTEL_HTTP = frozenset(
    "+QICSGP +QIACT +QIDEACT +QHTTPCFG +QHTTPURL +QHTTPGET +QHTTPPOST +QHTTPREAD".split()
)

_CPMS_GENERIC = '("ME","MT","SM","SR"),("ME","MT","SM","SR"),("ME","MT","SM","SR")'


@dataclass(frozen=True)
class Dialect:
    """One make of modem: identity, command set, error style, call progress, noise."""

    name: str
    manufacturer: str  # +CGMI line, verbatim (Wavecom's leading space included)
    model: str
    revision: str | None  # None: +CGMR answers ERROR
    clac: tuple[str, ...] | None  # None: +CLAC answers ERROR
    clac_style: str = "lines"  # "lines" | "lines_cr" (Huawei E1752: extra CR) | "oneline"
    extra: frozenset[str] = frozenset()  # vendor commands on top of STANDARD
    missing: frozenset[str] = frozenset()  # standard commands this make rejects
    unknown_reply: str = "ERROR"  # Huawei: "COMMAND NOT SUPPORT"
    calls: str = "clcc"  # "clcc" (poll +CLCC) | "huawei" | "wavecom" | "zte"
    cpin_final_ok: bool = True  # Wavecom answers +CPIN? without OK
    cpms_support: str = _CPMS_GENERIC  # the +CPMS=? reply after "+CPMS: "
    default_memory: str = "SM"
    cnmi_max_ds: int = 2  # SIM800 rejects <ds>=2
    noise: bool = False  # Huawei ^RSSI/^MODE/^BOOT until AT^CURC=0
    ussd_mode_default: int = 0  # Huawei E1752: 1, and AT+CUSD fails until AT^USSDMODE=0
    boot_lines: tuple[str, ...] = ()
    csca_busy_once: bool = False  # Qualcomm/ZTE: first AT+CSCA? gives +CME ERROR: 14
    csmp_clears_smsc: bool = False  # Qualcomm/ZTE
    cfun_set_busy: int = 0  # Wavecom: +CME ERROR: 515 this many times after AT+CFUN=1
    zpas: str | None = None  # reply line to AT+ZPAS?
    ccid_style: str = "+CCID: {iccid}"
    cvhu_error: bool = False
    http: str | None = None  # data stack: "simcom" (+SAPBR/+HTTP*), "quectel" (+QIACT/+QHTTP*)
    tags: tuple[str, ...] = field(default=())

    def supports(self, command: str) -> bool:
        """Whether this make knows the command (name such as "+CGMI" or "^CURC")."""
        return (command in STANDARD or command in self.extra) and command not in self.missing


GENERIC = Dialect(
    name="generic",
    manufacturer="GENERIC",
    model="GSM MODEM",
    revision="1.0.0",
    clac=_GENERIC_CLAC,
    boot_lines=("+CPIN: READY",),
)

# Huawei E1752/E1550 family: CLAC as lines with an extra CR, COMMAND NOT SUPPORT,
# USSD only after AT^USSDMODE=0, ^ORIG/^CONF/^CONN/^CEND, periodic ^RSSI/^MODE/^BOOT.
HUAWEI = Dialect(
    name="huawei",
    manufacturer="huawei",
    model="E1752",
    revision="11.126.13.00.00",
    clac=tuple(_HUAWEI_CLAC),
    clac_style="lines_cr",
    extra=_HUAWEI_EXTRA,
    unknown_reply="COMMAND NOT SUPPORT",
    calls="huawei",
    default_memory="SM",
    noise=True,
    ussd_mode_default=1,
    boot_lines=("^BOOT:20952817,0,0,0,72",),
    ccid_style="^ICCID: {iccid}",
)

# Huawei K3715: the same family with +CLAC on one line and no ^USSDMODE.
HUAWEI_K3715 = Dialect(
    name="huawei_k3715",
    manufacturer="huawei",
    model="K3715",
    revision="11.104.05.00.00",
    clac=tuple(c for c in _HUAWEI_CLAC if c != "^USSDMODE"),
    clac_style="oneline",
    extra=_HUAWEI_EXTRA - {"^USSDMODE"},
    unknown_reply="COMMAND NOT SUPPORT",
    calls="huawei",
    noise=True,
    boot_lines=("^BOOT:20952817,0,0,0,72",),
    ccid_style="^ICCID: {iccid}",
)

# SIMCom SIM800: no +CLAC, rejects AT+CNMI=2,1,0,2, +DDET for DTMF detection,
# boot banner RDY / Call Ready / SMS Ready, call state only through +CLCC.
SIMCOM = Dialect(
    name="simcom",
    manufacturer="SIMCOM_Ltd",
    model="SIMCOM_SIM800",
    revision="Revision:1308B05SIM800M32",
    clac=None,
    extra=frozenset({"+DDET", "+CSPN"}) | _SIMCOM_HTTP,
    missing=frozenset({"+CLAC"}),
    http="simcom",
    cpms_support='("SM","ME","SM_P","ME_P","MT"),("SM","ME","SM_P","ME_P","MT"),'
    '("SM","ME","SM_P","ME_P","MT")',
    cnmi_max_ds=1,
    boot_lines=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
    ccid_style="{iccid}",
)

# Wavecom Multiband 900E/1800: leading-space identity, no +CGMR/+CLAC, +WIND,
# +CPIN? without OK, 515 after +CFUN=1, OK only when the callee answers.
WAVECOM = Dialect(
    name="wavecom",
    manufacturer=" WAVECOM MODEM",
    model=" MULTIBAND  900E  1800 ",
    revision=None,
    clac=None,
    extra=frozenset({"+WIND"}),
    missing=frozenset({"+CLAC", "+CGMR", "+GMR", "+CVHU"}),
    calls="wavecom",
    cpin_final_ok=False,
    cpms_support='(("SM","BM","SR"),("SM"))',
    cfun_set_busy=2,
    cvhu_error=True,
)

# ZTE K3565-Z (Qualcomm inside): +CLAC as lines, +ZPAS, SIM busy on the first
# +CSCA?, +CSMP clears the SMSC, CONNECT / HANGUP: n call progress.
ZTE = Dialect(
    name="zte",
    manufacturer="ZTE INCORPORATED",
    model="K3565-Z",
    revision="BD_P673A2V1.0.0B09",
    clac=tuple(_ZTE_CLAC),
    extra=frozenset({"+ZPAS"}),
    calls="zte",
    zpas='+BEARTYPE: "UMTS","CS_PS"',
    csca_busy_once=True,
    csmp_clears_smsc=True,
)

# Quectel EC20 (LTE module sold into the same banks): +CLAC as lines, +QCCID,
# the QHTTP family over a PDP context, "RDY" then SIM status at boot.
QUECTEL = Dialect(
    name="quectel",
    manufacturer="Quectel",
    model="EC20F",
    revision="EC20CEFAGR06A09M4G",
    clac=tuple(sorted(STANDARD | _QUECTEL_HTTP | {"+QCCID", "E", "Z", "H", "A", "D", "I"})),
    extra=_QUECTEL_HTTP | {"+QCCID"},
    cpms_support='("SM","ME","MT"),("SM","ME","MT"),("SM","ME","MT")',
    boot_lines=("RDY", "+CPIN: READY"),
    ccid_style="+QCCID: {iccid}",
    http="quectel",
)

DIALECTS: dict[str, Dialect] = {
    d.name: d for d in (GENERIC, HUAWEI, HUAWEI_K3715, SIMCOM, WAVECOM, ZTE, QUECTEL)
}


def dialect_names() -> list[str]:
    """Names a world file may use for `dialect`."""
    return sorted(DIALECTS)


def get_dialect(name: str) -> Dialect:
    """The dialect called `name`; KeyError names the valid ones."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise KeyError(f"unknown dialect {name!r} (known: {', '.join(dialect_names())})") from None
