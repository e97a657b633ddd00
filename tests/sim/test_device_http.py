"""Bearer and HTTP commands of virtual modems, byte for byte, over the real virtual network."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialbot.sim.device import Device
from dialbot.sim.network import Network
from dialbot.sim.worldfile import load_world

from .support import ManualScheduler, write_world
from .test_wap import ENTRY, wap_world

PROXY_URL = "http://10.0.0.172:80/"


class HttpRig:
    """One device of the given dialect on a network with the WAP world."""

    def __init__(self, tmp_path: Path, dialect: str, faults: dict | None = None) -> None:
        data = wap_world()
        data["bank"]["slots"] = {1: {"dialect": dialect, "faults": faults or {}}}
        self.clock = ManualScheduler()
        self.net = Network(load_world(write_world(tmp_path, data)), self.clock)
        self.out = bytearray()
        self.dev = Device(self.net.world.sims[0], self.net, self.clock, self.out.extend, seed=1)
        self.dev.power_on()
        self.at("ATE0")

    def at(self, line: str, raw: bytes = b"\r") -> bytes:
        self.out.clear()
        self.dev.feed(line.encode() + raw)
        self.clock.advance(0)
        return bytes(self.out)

    def send(self, data: bytes) -> bytes:
        self.out.clear()
        self.dev.feed(data)
        self.clock.advance(0)
        return bytes(self.out)

    def lines(self, line: str) -> list[str]:
        return [x for x in self.at(line).decode().split("\r\n") if x]

    def ledger(self) -> list[str]:
        truth = self.net.ground_truth()["sims"][self.dev.msisdn]
        return [e["reason"] for e in truth["ledger"]]


def simcom_open(rig: HttpRig, url: str = ENTRY, proxy: bool = True) -> None:
    for line in (
        'AT+SAPBR=3,1,"CONTYPE","GPRS"',
        'AT+SAPBR=3,1,"APN","cmwap"',
        "AT+SAPBR=1,1",
        "AT+HTTPINIT",
        'AT+HTTPPARA="CID",1',
        f'AT+HTTPPARA="URL","{url}"',
        'AT+HTTPPARA="REDIR",0',
    ):
        assert rig.lines(line) == ["OK"], line
    if proxy:
        assert rig.lines('AT+HTTPPARA="PROIP","10.0.0.172"') == ["OK"]
        assert rig.lines('AT+HTTPPARA="PROPORT",80') == ["OK"]


def test_simcom_get_ok_first_then_urc_then_chunked_read(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, "simcom")
    assert rig.lines("AT+SAPBR=2,1") == ['+SAPBR: 1,3,"0.0.0.0"', "OK"]
    simcom_open(rig)
    assert rig.lines("AT+SAPBR=2,1")[0].startswith("+SAPBR: 1,1,")
    reply = rig.at("AT+HTTPACTION=0")
    assert reply.startswith(b"\r\nOK\r\n")  # OK first, the URC after it
    urc = reply.decode().split("\r\n")[3]
    method, status, size = (int(x) for x in urc.removeprefix("+HTTPACTION: ").split(","))
    assert (method, status) == (0, 200) and size > 100
    body = bytearray()
    while len(body) < size:
        chunk = rig.at(f"AT+HTTPREAD={len(body)},100")
        head, _, rest = chunk.partition(b"\r\n")[2].partition(b"\r\n")
        n = int(head.decode().removeprefix("+HTTPREAD: "))
        assert rest[n:] == b"\r\nOK\r\n"
        body += rest[:n]
    assert "资费：5.00元/月".encode() in body
    head = rig.at("AT+HTTPHEAD")
    assert b"HTTP/1.1 200 OK" in head and b"Content-Type: application/xhtml+xml" in head
    assert rig.lines("AT+HTTPTERM") == ["OK"]
    assert rig.lines("AT+SAPBR=0,1") == ["OK"]


def test_simcom_redirect_is_reported_not_followed(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, "simcom")
    simcom_open(rig, ENTRY + "/order")
    assert b"+HTTPACTION: 0,302,0" in rig.at("AT+HTTPACTION=0")
    assert b"Location: http://wap.monternet.example/confirm?o=" in rig.at("AT+HTTPHEAD")
    assert rig.ledger() == []


def test_simcom_without_proxy_on_cmwap_is_a_dns_error(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, "simcom")
    simcom_open(rig, proxy=False)
    assert b"+HTTPACTION: 0,603,0" in rig.at("AT+HTTPACTION=0")


def test_simcom_post_takes_data_after_download(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, "simcom")
    simcom_open(rig)
    assert rig.lines("AT+HTTPDATA=5,1000") == ["DOWNLOAD"]
    assert rig.send(b"a=1&b") == b"\r\nOK\r\n"
    assert b"+HTTPACTION: 1,200," in rig.at("AT+HTTPACTION=1")


@pytest.mark.parametrize("code", [601, 602, 603, 604])
def test_simcom_module_error(tmp_path: Path, code: int) -> None:
    rig = HttpRig(tmp_path, "simcom", {"http_error": code})
    simcom_open(rig)
    assert f"+HTTPACTION: 0,{code},0".encode() in rig.at("AT+HTTPACTION=0")


def test_simcom_bearer_drops(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, "simcom", {"bearer_drop_after": 1})
    simcom_open(rig)
    assert b"+HTTPACTION: 0,200," in rig.at("AT+HTTPACTION=0")
    reply = rig.at("AT+HTTPACTION=0")
    assert b"+SAPBR 1: DEACT" in reply and b"+HTTPACTION: 0,601,0" in reply
    assert rig.lines("AT+SAPBR=2,1")[0] == '+SAPBR: 1,3,"0.0.0.0"'


def quectel_open(rig: HttpRig) -> None:
    for line in (
        'AT+QICSGP=1,1,"cmwap","","",1',
        "AT+QIACT=1",
        'AT+QHTTPCFG="contextid",1',
        'AT+QHTTPCFG="responseheader",1',
        'AT+QHTTPCFG="requestheader",1',
    ):
        assert rig.lines(line) == ["OK"], line
    assert rig.lines("AT+QIACT?")[0].startswith("+QIACT: 1,1,1,")


def quectel_url(rig: HttpRig, url: str) -> None:
    assert rig.lines(f"AT+QHTTPURL={len(url)},80") == ["CONNECT"]
    assert rig.send(url.encode()) == b"\r\nOK\r\n"


def test_quectel_get_through_the_proxy_with_a_whole_request(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, "quectel")
    quectel_open(rig)
    quectel_url(rig, PROXY_URL)
    request = f"GET {ENTRY} HTTP/1.1\r\nHost: wap.zsly.example\r\nUser-Agent: t\r\n\r\n".encode()
    assert rig.lines(f"AT+QHTTPGET=80,{len(request)}") == ["CONNECT"]
    reply = rig.send(request).decode()
    assert reply.startswith("\r\nOK\r\n") and "+QHTTPGET: 0,200," in reply
    data = rig.at("AT+QHTTPREAD=80")
    assert data.startswith(b"\r\nCONNECT\r\nHTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n")
    assert "资费：5.00元/月".encode() in data


def test_quectel_get_straight_to_the_sp_fails_on_cmwap(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, "quectel")
    quectel_open(rig)
    quectel_url(rig, ENTRY)
    assert b"+QHTTPGET: 714" in rig.at("AT+QHTTPGET=80")


def test_quectel_bearer_drop_and_module_error(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, "quectel", {"bearer_drop_after": 0})
    quectel_open(rig)
    quectel_url(rig, PROXY_URL)
    request = f"GET {ENTRY} HTTP/1.1\r\nHost: wap.zsly.example\r\n\r\n".encode()
    rig.at(f"AT+QHTTPGET=80,{len(request)}")
    reply = rig.send(request)
    assert b'+QIURC: "pdpdeact",1' in reply and b"+QHTTPGET: 709" in reply
    other = HttpRig(tmp_path, "quectel", {"http_error": 604})
    quectel_open(other)
    quectel_url(other, PROXY_URL)
    other.at(f"AT+QHTTPGET=80,{len(request)}")
    assert b"+QHTTPGET: 703" in other.send(request)


@pytest.mark.parametrize("dialect", ["generic", "huawei", "wavecom", "zte"])
def test_other_makes_answer_error(tmp_path: Path, dialect: str) -> None:
    rig = HttpRig(tmp_path, dialect)
    for line in ("AT+SAPBR=2,1", "AT+HTTPINIT", "AT+QIACT=1", "AT+QHTTPURL=10,80"):
        assert rig.lines(line)[-1] in ("ERROR", "COMMAND NOT SUPPORT"), (dialect, line)
