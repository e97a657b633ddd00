"""The data side of a virtual modem: bearer and HTTP commands of two real families.

SIMCom (SIM800): `+SAPBR` opens bearer 1, `+HTTPPARA` sets URL/proxy/UA,
`+HTTPACTION` answers OK at once and `+HTTPACTION: <m>,<status>,<len>` later,
`+HTTPHEAD`/`+HTTPREAD[=<start>,<len>]` give headers and body in chunks,
module errors are statuses 601 (network), 603 (DNS), 604 (stack busy).

Quectel (EC20, QHTTP): `+QICSGP`/`+QIACT` bring up context 1, `+QHTTPURL`
and `+QHTTPGET=<t>,<len>`/`+QHTTPPOST` take bytes after `CONNECT`,
`+QHTTPGET: <err>[,<status>,<len>]` comes later, `+QHTTPREAD` sends
`CONNECT`, the data, `OK` and `+QHTTPREAD: 0`. Errors are 7xx (709 network
deactivated, 703 busy, 714 DNS, 716 socket connect).

Neither family has a proxy parameter on Quectel: on cmwap the client gives
the proxy's URL and writes the whole request itself (requestheader=1).
The device only frames; whether anything answers is the network's business
(`NetworkPort.http`), so the bearer, proxy and addressing rules of a real
cmwap bearer (spec/channels.md §3) come out of the gateway, not from here.
Faults: `http_error` fails every request with that module error;
`bearer_drop_after` drops the bearer after that many requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from dialbot.sim.atparse import AtError, Command, Reply
from dialbot.sim.contracts import HttpRequest, HttpResult, NetworkPort, Scheduler
from dialbot.sim.dialects import Dialect
from dialbot.sim.world import Faults, SimCard

SIMCOM_ERRORS = {"network": 601, "dns": 603, "socket": 601, "busy": 604}
QUECTEL_ERRORS = {"network": 709, "dns": 714, "socket": 716, "busy": 703}
QUECTEL_OF_SIMCOM = {601: 710, 602: 701, 603: 714, 604: 703}
REASON = {200: "OK", 302: "Found", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}
MAX_INPUT = 64 * 1024  # bytes accepted after CONNECT / DOWNLOAD
MAX_REDIRECTS = 5


class RawReply(Reply):
    """A reply carrying raw bytes between its info lines and its final result."""

    def __init__(self, lines: list[str], payload: bytes, final: str | None = "OK") -> None:
        super().__init__(lines, final)
        self.payload = payload


@dataclass
class RawWait:
    """The device is taking `length` bytes of data (after CONNECT or DOWNLOAD)."""

    length: int
    done: Callable[[bytes], None]
    gen: int


@dataclass
class HttpState:
    """Bearer and HTTP session of one module (both families share it)."""

    apn: str = ""
    bearer_open: bool = False
    requests: int = 0
    session: bool = False  # SIMCom HTTPINIT done
    params: dict[str, str] = field(default_factory=dict)
    data: bytes = b""  # SIMCom HTTPDATA / Quectel request bytes
    busy: bool = False
    result: HttpResult | None = None
    config: dict[str, str] = field(default_factory=dict)  # Quectel QHTTPCFG
    url: str = ""  # Quectel QHTTPURL
    raw_gen: int = 0


def render_head(result: HttpResult) -> bytes:
    status = f"HTTP/1.1 {result.status} {REASON.get(result.status, 'Status')}\r\n"
    lines = "".join(f"{k}: {v}\r\n" for k, v in result.headers)
    return (status + lines + f"Content-Length: {len(result.body)}\r\n\r\n").encode("latin-1")


def parse_request(data: bytes) -> tuple[str, str, tuple[tuple[str, str], ...], bytes] | None:
    """A request written by the client: method, target, headers, body (None if malformed)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            return None
        headers.append((name.strip(), value.strip()))
    return parts[0].upper(), parts[1], tuple(headers), body


class HttpCommands:
    """+SAPBR/+HTTP* (SIMCom) and +QI*/+QHTTP* (Quectel); expects what `Device` defines."""

    card: SimCard
    msisdn: str
    dialect: Dialect
    network: NetworkPort
    scheduler: Scheduler
    faults: Faults
    http: HttpState
    raw_wait: RawWait | None

    def _urc(self, lines: list[str], prefix: str = "") -> None:
        raise NotImplementedError

    def _respond(
        self, info: list[str], final: str | None, tail: bytes = b"", payload: bytes = b""
    ) -> None:
        raise NotImplementedError

    def _registered(self) -> bool:
        raise NotImplementedError

    def init_http(self) -> None:
        self.http = HttpState()
        self.raw_wait = None

    # ---- shared -------------------------------------------------------------------------

    def _ip(self) -> str:
        return f"10.12.{self.card.slot // 256}.{self.card.slot % 256}"

    def _take_raw(self, length: int, timeout_s: float, done: Callable[[bytes], None]) -> None:
        """Take exactly `length` bytes next; after `timeout_s` without them, give up."""
        if not 0 < length <= MAX_INPUT:
            raise AtError("CME", 50)
        self.http.raw_gen += 1
        gen = self.http.raw_gen
        self.raw_wait = RawWait(length, done, gen)

        def expire() -> None:
            if self.raw_wait is not None and self.raw_wait.gen == gen:
                self.raw_wait = None
                self._respond([], "ERROR")

        self.scheduler.call_later(max(timeout_s, 0.1), expire)

    def _perform(self, request: HttpRequest, follow: bool) -> HttpResult:
        """One request through the network (and the module's own redirects when asked)."""
        self.http.requests += 1
        drop = self.faults.bearer_drop_after
        if drop is not None and self.http.requests > drop:
            self._bearer_lost()
            return HttpResult(error="network")
        if self.faults.http_error is not None:
            return HttpResult(error=f"module:{self.faults.http_error}")
        result = self.network.http(self.msisdn, request)
        hops = 0
        while follow and result.status in (301, 302, 303, 307) and hops < MAX_REDIRECTS:
            location = dict((k.lower(), v) for k, v in result.headers).get("location", "")
            if not location.startswith("http://"):
                break
            hops += 1
            request = HttpRequest(request.apn, request.via, "GET", location, request.headers)
            result = self.network.http(self.msisdn, request)
        return result

    def _bearer_lost(self) -> None:
        if not self.http.bearer_open:
            return
        self.http.bearer_open = False
        if self.dialect.http == "simcom":
            self._urc(["+SAPBR 1: DEACT"])
        else:
            self._urc(['+QIURC: "pdpdeact",1'])

    def _error_code(self, result: HttpResult) -> int | None:
        if result.error is None:
            return None
        table = SIMCOM_ERRORS if self.dialect.http == "simcom" else QUECTEL_ERRORS
        if result.error.startswith("module:"):
            code = int(result.error.split(":", 1)[1])
            return code if self.dialect.http == "simcom" else QUECTEL_OF_SIMCOM.get(code, 701)
        return table.get(result.error, table["network"])

    def _later(self, fn: Callable[[], None]) -> None:
        self.scheduler.call_later(0.0, fn)

    # ---- SIMCom: bearer --------------------------------------------------------------

    def _at_sapbr(self, cmd: Command) -> list[str]:
        if cmd.form == "test":
            return ["+SAPBR: (0-4),(1-3),,"]
        cmd_type, cid = cmd.int_arg(0), cmd.int_arg(1, 1)
        if cid != 1:
            raise AtError()
        args = cmd.args
        if cmd_type == 3:
            if len(args) >= 4 and args[2].upper() == "APN":
                self.http.apn = args[3]
            return []
        if cmd_type == 4:
            return ["+SAPBR: CONTYPE: GPRS", f"APN: {self.http.apn}", "PHONENUM: ", "USER: "]
        if cmd_type == 2:
            if self.http.bearer_open:
                return [f'+SAPBR: 1,1,"{self._ip()}"']
            return ['+SAPBR: 1,3,"0.0.0.0"']
        if cmd_type == 1:
            if self.http.bearer_open or not self._registered():
                raise AtError()
            self.http.bearer_open = True
            return []
        if cmd_type == 0:
            if not self.http.bearer_open:
                raise AtError()
            self.http.bearer_open = False
            return []
        raise AtError()

    # ---- SIMCom: HTTP ----------------------------------------------------------------

    def _at_httpinit(self, cmd: Command) -> list[str]:
        if self.http.session:
            raise AtError()
        self.http.session = True
        self.http.params = {"CID": "1", "UA": "SIMCOM_MODULE", "REDIR": "0", "PROPORT": "80"}
        self.http.result = None
        return []

    def _at_httpterm(self, cmd: Command) -> list[str]:
        if not self.http.session:
            raise AtError()
        self.http.session = False
        self.http.result = None
        return []

    def _at_httppara(self, cmd: Command) -> list[str]:
        if cmd.form == "test":
            return ['+HTTPPARA: "CID","URL","UA","PROIP","PROPORT","REDIR","CONTENT","USERDATA"']
        args = cmd.args
        if not self.http.session or len(args) != 2:
            raise AtError()
        name = args[0].upper()
        if name not in ("CID", "URL", "UA", "PROIP", "PROPORT", "REDIR", "CONTENT", "USERDATA"):
            raise AtError()
        self.http.params[name] = args[1]
        return []

    def _at_httpdata(self, cmd: Command) -> Reply:
        if not self.http.session:
            raise AtError()
        size, timeout_ms = cmd.int_arg(0), cmd.int_arg(1, 10000)

        def done(data: bytes) -> None:
            self.http.data = data
            self._respond([], "OK")

        self._take_raw(size, timeout_ms / 1000.0, done)
        return Reply([], "DOWNLOAD")

    def _simcom_request(self, method: str) -> HttpRequest:
        p = self.http.params
        url = p.get("URL", "")
        if url and "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        via = f"{p['PROIP']}:{p.get('PROPORT', '80')}" if p.get("PROIP") else parts.netloc
        if via and ":" not in via:
            via += ":80"
        headers = [("User-Agent", p.get("UA", "SIMCOM_MODULE"))]
        for line in p.get("USERDATA", "").split("\\r\\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers.append((name.strip(), value.strip()))
        if method == "POST" and p.get("CONTENT"):
            headers.append(("Content-Type", p["CONTENT"]))
        body = self.http.data if method == "POST" else b""
        return HttpRequest(self.http.apn, via, method, url, tuple(headers), body)

    def _at_httpaction(self, cmd: Command) -> list[str]:
        if cmd.form == "test":
            return ["+HTTPACTION: (0-2)"]
        method = cmd.int_arg(0)
        if not self.http.session or method not in (0, 1, 2) or not self.http.params.get("URL"):
            raise AtError()
        if self.http.busy:
            self._later(lambda: self._urc([f"+HTTPACTION: {method},604,0"]))
            return []
        self.http.busy = True
        self.http.result = None

        def finish() -> None:
            self.http.busy = False
            if not self.http.bearer_open:
                self._urc([f"+HTTPACTION: {method},601,0"])
                return
            name = ("GET", "POST", "HEAD")[method]
            result = self._perform(self._simcom_request(name), self.http.params["REDIR"] == "1")
            code = self._error_code(result)
            if code is not None:
                self._urc([f"+HTTPACTION: {method},{code},0"])
                return
            self.http.result = result
            size = 0 if method == 2 else len(result.body)
            self._urc([f"+HTTPACTION: {method},{result.status},{size}"])

        self._later(finish)
        return []

    def _at_httphead(self, cmd: Command) -> RawReply:
        result = self.http.result
        if not self.http.session or result is None:
            raise AtError()
        head = render_head(result)
        return RawReply([f"+HTTPHEAD: {len(head)}"], head)

    def _at_httpread(self, cmd: Command) -> RawReply:
        result = self.http.result
        if not self.http.session or result is None:
            raise AtError()
        body = result.body
        if cmd.form == "set":
            start, length = cmd.int_arg(0), cmd.int_arg(1)
            if start < 0 or length <= 0:
                raise AtError()
            body = body[start : start + length]
        if not body:
            return RawReply([], b"")
        return RawReply([f"+HTTPREAD: {len(body)}"], body)

    def _at_httpstatus(self, cmd: Command) -> list[str]:
        state = 1 if self.http.busy else 0
        size = len(self.http.result.body) if self.http.result else 0
        return [f"+HTTPSTATUS: GET,{state},{size},{size}"]

    # ---- Quectel: context ------------------------------------------------------------

    def _at_qicsgp(self, cmd: Command) -> list[str]:
        if cmd.form == "test":
            return ['+QICSGP: (1-16),(1-3),"APN","USERNAME","PASSWORD",(0-3)']
        args = cmd.args
        if cmd.int_arg(0) != 1:
            raise AtError("CME", 50)
        if len(args) == 1:
            return [f'+QICSGP: 1,"{self.http.apn}","","",1']
        if len(args) >= 3:
            self.http.apn = args[2]
        return []

    def _at_qiact(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return [f'+QIACT: 1,1,1,"{self._ip()}"'] if self.http.bearer_open else []
        if cmd.form == "test":
            return ["+QIACT: (1-16)"]
        if cmd.int_arg(0) != 1 or self.http.bearer_open or not self._registered():
            raise AtError()
        self.http.bearer_open = True
        return []

    def _at_qideact(self, cmd: Command) -> list[str]:
        if cmd.int_arg(0, 1) != 1:
            raise AtError()
        self.http.bearer_open = False
        return []

    # ---- Quectel: HTTP ----------------------------------------------------------------

    def _at_qhttpcfg(self, cmd: Command) -> list[str]:
        args = cmd.args
        if cmd.form != "set" or not args:
            raise AtError("CME", 50)
        name = args[0].lower()
        if name not in ("contextid", "requestheader", "responseheader", "sslctxid", "contenttype"):
            raise AtError("CME", 50)
        if len(args) == 1:
            return [f'+QHTTPCFG: "{name}",{self.http.config.get(name, "0")}']
        self.http.config[name] = args[1]
        return []

    def _at_qhttpurl(self, cmd: Command) -> Reply:
        length, timeout_s = cmd.int_arg(0), cmd.int_arg(1, 60)

        def done(data: bytes) -> None:
            url = data.decode("latin-1")
            if not url.lower().startswith("http://"):
                self._respond([], "+CME ERROR: 711")
                return
            self.http.url = url
            self._respond([], "OK")

        self._take_raw(length, float(timeout_s), done)
        return Reply([], "CONNECT")

    def _at_qhttpget(self, cmd: Command) -> list[str] | Reply:
        if not self.http.url:
            raise AtError("CME", 712)
        args = cmd.args
        if len(args) >= 2 and args[1] != "":
            if self.http.config.get("requestheader") != "1":
                raise AtError("CME", 50)
            length, input_s = cmd.int_arg(1), cmd.int_arg(2, 60)
            self._take_raw(length, float(input_s), lambda data: self._quectel_send("GET", data))
            return Reply([], "CONNECT")
        self._later(lambda: self._quectel_finish("GET", self._quectel_request("GET", None)))
        return []

    def _at_qhttppost(self, cmd: Command) -> Reply:
        if not self.http.url:
            raise AtError("CME", 712)
        length, input_s = cmd.int_arg(0), cmd.int_arg(1, 60)
        self._take_raw(length, float(input_s), lambda data: self._quectel_send("POST", data))
        return Reply([], "CONNECT")

    def _quectel_send(self, method: str, data: bytes) -> None:
        """The bytes after CONNECT: a whole request (requestheader=1) or a POST body."""
        self._respond([], "OK")
        request = self._quectel_request(method, data)
        self._later(lambda: self._quectel_finish(method, request))

    def _quectel_request(self, method: str, data: bytes | None) -> HttpRequest | None:
        parts = urlsplit(self.http.url)
        via = parts.netloc if ":" in parts.netloc else parts.netloc + ":80"
        if data is not None and self.http.config.get("requestheader") == "1":
            parsed = parse_request(data)
            if parsed is None:
                return None
            verb, target, headers, body = parsed
            if not target.startswith("http://"):
                target = f"http://{parts.netloc}{target}"
            return HttpRequest(self.http.apn, via, verb, target, headers, body)
        headers = (("User-Agent", "QUECTEL_MODULE"),)
        return HttpRequest(self.http.apn, via, method, self.http.url, headers, data or b"")

    def _quectel_finish(self, method: str, request: HttpRequest | None) -> None:
        urc = "+QHTTPGET: " if method == "GET" else "+QHTTPPOST: "
        if request is None:
            self._urc([urc + "701"])
            return
        if not self.http.bearer_open:
            self._urc([urc + "709"])
            return
        result = self._perform(request, follow=False)
        code = self._error_code(result)
        if code is not None:
            self.http.result = None
            self._urc([f"{urc}{code}"])
            return
        self.http.result = result
        self._urc([f"{urc}0,{result.status},{len(result.body)}"])

    def _at_qhttpread(self, cmd: Command) -> RawReply:
        result = self.http.result
        if result is None:
            raise AtError("CME", 705)
        data = result.body
        if self.http.config.get("responseheader") == "1":
            data = render_head(result) + data
        self._later(lambda: self._urc(["+QHTTPREAD: 0"]))
        return RawReply(["CONNECT"], data)
