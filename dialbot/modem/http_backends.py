"""The two HTTP command families real modems speak (spec/channels.md §3).

`SimcomHttp` (SIM800/SIM900): bearer by +SAPBR, request by +HTTPPARA and
+HTTPACTION (OK first, `+HTTPACTION: <m>,<status>,<len>` later), headers by
+HTTPHEAD, body by +HTTPREAD=<start>,<len> in chunks; the proxy is a
parameter (PROIP/PROPORT), redirects stay off (REDIR 0).

`QuectelHttp` (EC20/UC15 QHTTP): context by +QICSGP/+QIACT; on cmwap there
is no proxy parameter, so the URL given is the proxy's own and the whole
request (absolute URI, Host header) is written after
`AT+QHTTPGET=<t>,<len>` / `AT+QHTTPPOST=<len>,<t>,<t>` → CONNECT; the answer
is read by +QHTTPREAD with the response header block first.

Only code builds command lines here; the URL and body travel either inside
a quoted parameter after `check_url`, or as counted raw bytes after a prompt.
"""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

from dialbot.errors import ModemError
from dialbot.modem.exchange import Exchange, RawRule
from dialbot.modem.http import HttpFamily, HttpModuleError, RawResult, check_token
from dialbot.modem.link import AtLink

_HTTPACTION = re.compile(r"^\+HTTPACTION:\s*(\d+),(\d+),(\d+)")
_QHTTP = re.compile(r"^\+QHTTP(?:GET|POST):\s*(\d+)(?:,(\d+))?(?:,(\d+))?")
COMMAND_S = 5.0


def _expect_ok(exchange: Exchange, what: str) -> Exchange:
    if not exchange.ok:
        raise HttpModuleError(f"{what}: {exchange.final}", trace=exchange.lines)
    return exchange


class SimcomHttp(HttpFamily):
    """SIMCom bearer and HTTP application."""

    name = "simcom"

    def _cmd(self, command: str, timeout: float = COMMAND_S) -> Exchange:
        return _expect_ok(self.link.run(command, timeout), command)

    def _attach(self) -> None:
        """Bearer up, and one HTTP session whose fixed parameters are set once."""
        status = self.link.run("AT+SAPBR=2,1", COMMAND_S)
        if not any(line.startswith("+SAPBR: 1,1,") for line in status.lines):
            apn = check_token(self.profile.apn, "APN")
            self._cmd('AT+SAPBR=3,1,"CONTYPE","GPRS"')
            self._cmd(f'AT+SAPBR=3,1,"APN","{apn}"')
            self._cmd("AT+SAPBR=1,1", self.limits.bearer_timeout_s)
        self.link.run("AT+HTTPTERM", COMMAND_S)  # a session left open by a failed request
        self._cmd("AT+HTTPINIT")
        host, port = self.proxy
        for command in (
            'AT+HTTPPARA="CID",1',
            f'AT+HTTPPARA="PROIP","{check_token(host, "proxy")}"',
            f'AT+HTTPPARA="PROPORT",{int(port)}',
            'AT+HTTPPARA="REDIR",0',
            f'AT+HTTPPARA="UA","{check_token(self.user_agent, "user agent")}"',
        ):
            self._cmd(command)

    def _detach(self) -> None:
        try:
            self.link.run("AT+HTTPTERM", COMMAND_S)
            self.link.run("AT+SAPBR=0,1", COMMAND_S)
        except ModemError:
            pass

    def _request(
        self, method: str, url: str, body: bytes, content_type: str, deadline: float
    ) -> RawResult:
        self._cmd(f'AT+HTTPPARA="URL","{url}"')
        if method == "POST":
            self._cmd(f'AT+HTTPPARA="CONTENT","{content_type}"')
            prompt = self.link.run(f"AT+HTTPDATA={len(body)},10000", COMMAND_S, ("DOWNLOAD",))
            _expect_ok(prompt, "AT+HTTPDATA")
            _expect_ok(self.link.send_data(body, COMMAND_S), "HTTPDATA body")
        self.link.forget_urcs()
        action = 1 if method == "POST" else 0
        self._cmd(f"AT+HTTPACTION={action}")
        urc = self.link.wait_urc("+HTTPACTION:", self._left(deadline))
        match = _HTTPACTION.match(urc)
        if match is None:
            raise HttpModuleError(f"unreadable {urc!r}")
        status, size = int(match.group(2)), int(match.group(3))
        if status >= 600:
            raise HttpModuleError(f"SIMCom HTTP stack error {status}", code=status)
        head = self._read("AT+HTTPHEAD", r"^\+HTTPHEAD:\s*(\d+)")
        body_out = bytearray()
        limit = min(size, self.limits.max_body)
        while len(body_out) < limit:
            self._left(deadline)
            want = min(self.limits.chunk, limit - len(body_out))
            chunk = self._read(f"AT+HTTPREAD={len(body_out)},{want}", r"^\+HTTPREAD:\s*(\d+)")
            if not chunk:
                break
            body_out += chunk
        return RawResult(status, head, bytes(body_out), size, truncated=size > len(body_out))

    def _read(self, command: str, header: str) -> bytes:
        rule = RawRule(re.compile(header), lambda m: int(m.group(1)))
        exchange = _expect_ok(self.link.run(command, COMMAND_S, raw=rule), command)
        return exchange.payload


class QuectelHttp(HttpFamily):
    """Quectel context and QHTTP application, the whole request written by the client."""

    name = "quectel"

    def _cmd(self, command: str, timeout: float = COMMAND_S) -> Exchange:
        return _expect_ok(self.link.run(command, timeout), command)

    def _attach(self) -> None:
        state = self.link.run("AT+QIACT?", COMMAND_S)
        if not any(line.startswith("+QIACT: 1,1") for line in state.lines):
            apn = check_token(self.profile.apn, "APN")
            self._cmd(f'AT+QICSGP=1,1,"{apn}","","",1')
            self._cmd("AT+QIACT=1", self.limits.bearer_timeout_s)
        for name in ("contextid", "responseheader", "requestheader"):
            self._cmd(f'AT+QHTTPCFG="{name}",1')

    def _detach(self) -> None:
        try:
            self.link.run("AT+QIDEACT=1", COMMAND_S)
        except ModemError:
            pass

    def _prompted(self, command: str, data: bytes) -> None:
        _expect_ok(self.link.run(command, COMMAND_S, ("CONNECT",)), command)
        _expect_ok(self.link.send_data(data, COMMAND_S), command + " data")

    def _request(
        self, method: str, url: str, body: bytes, content_type: str, deadline: float
    ) -> RawResult:
        host, port = self.proxy
        proxy_url = f"http://{check_token(host, 'proxy')}:{int(port)}/".encode("ascii")
        wait_s = max(1, math.ceil(self._left(deadline)))
        self._prompted(f"AT+QHTTPURL={len(proxy_url)},{min(wait_s, 60)}", proxy_url)
        request = self._request_bytes(method, url, body, content_type)
        self.link.forget_urcs()
        if method == "POST":
            self._prompted(f"AT+QHTTPPOST={len(request)},60,{wait_s}", request)
            urc = self.link.wait_urc("+QHTTPPOST:", self._left(deadline))
        else:
            self._prompted(f"AT+QHTTPGET={wait_s},{len(request)}", request)
            urc = self.link.wait_urc("+QHTTPGET:", self._left(deadline))
        match = _QHTTP.match(urc)
        if match is None:
            raise HttpModuleError(f"unreadable {urc!r}")
        err = int(match.group(1))
        if err != 0:
            raise HttpModuleError(f"Quectel HTTP error {err}", code=err)
        status, size = int(match.group(2) or 0), int(match.group(3) or 0)
        if size > self.limits.max_body:
            return RawResult(status, b"", b"", size, truncated=True)
        rule = RawRule(re.compile(r"^CONNECT$"), lambda m: size, head_first=True)
        answer = _expect_ok(
            self.link.run(f"AT+QHTTPREAD={wait_s}", COMMAND_S, raw=rule), "QHTTPREAD"
        )
        return RawResult(status, answer.head, answer.payload, size)

    def _request_bytes(self, method: str, url: str, body: bytes, content_type: str) -> bytes:
        parts = urlsplit(url)
        lines = [
            f"{method} {url} HTTP/1.1",
            f"Host: {parts.netloc}",
            f"User-Agent: {check_token(self.user_agent, 'user agent')}",
            "Accept: */*",
            "Connection: close",
        ]
        if method == "POST":
            lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


BACKENDS: dict[str, type[HttpFamily]] = {"simcom": SimcomHttp, "quectel": QuectelHttp}


def detect(link: AtLink) -> str:
    """Which family a modem speaks, asked by command: `simcom`, `quectel` or `none`."""
    try:
        if link.run("AT+SAPBR=2,1", COMMAND_S).ok:
            return "simcom"
        if link.run("AT+QIACT?", COMMAND_S).ok:
            return "quectel"
    except ModemError:
        return "none"
    return "none"
