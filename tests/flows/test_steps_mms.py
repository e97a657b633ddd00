"""`fetch_mms` below the flow: what each kind of notification gives as evidence, with the
modem's HTTP stack faked (the layer under test is the step, not the driver)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dialbot.carrier import CarrierProfile
from dialbot.flows.intake import Received
from dialbot.flows.steps_mms import MmsSteps
from dialbot.judge.classify import MsgClass
from dialbot.modem.http import HttpModuleError, HttpResponse
from dialbot.modem.inbox import IncomingMessage, WapPushInfo
from dialbot.modem.mms import MmsNotification, MmsPart, encode_notification, encode_retrieve
from dialbot.modem.wsp import MMS_CONTENT_TYPE

TZ = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 11, 29, 1, 0, tzinfo=TZ)
URL = "http://mmsc.monternet.com/mms/abc"


@dataclass
class FakeRecorder:
    events: list[dict[str, Any]] = field(default_factory=list)

    def mms(self, location: str, status: str, text: str, at: datetime, data: dict) -> Any:
        self.events.append({"url": location, "status": status, "text": text, **data})
        return SimpleNamespace(id=len(self.events))


@dataclass
class FakeModem:
    response: HttpResponse | Exception
    asked: list[str] = field(default_factory=list)

    def http(self, method: str, url: str, carrier: CarrierProfile) -> HttpResponse:
        self.asked.append(url)
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


def received(body: bytes, error: str | None = None) -> Received:
    push = WapPushInfo(MMS_CONTENT_TYPE, (), body_hex=body.hex(), error=error)
    message = IncomingMessage(
        "1065800101", "[WAP PUSH]", AT, AT, "tty", 2, True, ("00",), wap_push=push
    )
    return Received(message, SimpleNamespace(id=41), MsgClass.CONTENT, False)  # type: ignore[arg-type]


def steps(modem: FakeModem) -> tuple[MmsSteps, FakeRecorder]:
    recorder = FakeRecorder()
    runner = SimpleNamespace(
        recorder=recorder, lease=SimpleNamespace(modem=modem), env=SimpleNamespace(carrier=None)
    )
    return MmsSteps(runner), recorder  # type: ignore[arg-type]


def notification(location: str = URL) -> bytes:
    return encode_notification(MmsNotification("T1", "1.0", "personal", 99, location, expiry_s=60))


def test_content_is_fetched_and_recorded_with_its_hash() -> None:
    body = encode_retrieve(
        "T1", "1065800101", "杂志", [MmsPart("text/plain", "第1期".encode())], AT
    )
    modem = FakeModem(HttpResponse("GET", URL, 200, (), body))
    mms, recorder = steps(modem)
    mms.fetch_one(received(notification()))
    (event,) = recorder.events
    assert modem.asked == [URL] and event["delivered"] is True and event["text"] == "第1期"
    assert event["sha256"] == hashlib.sha256(body).hexdigest() and event["push_event"] == 41
    assert event["notification"]["content_location"] == URL and event["payload_size"] == 7


def test_empty_and_refused_content_is_not_delivered() -> None:
    empty = encode_retrieve("T1", "1065800101", "杂志", [], AT)
    for response in (
        HttpResponse("GET", URL, 200, (), empty),
        HttpResponse("GET", URL, 404, (), b"message not found"),
    ):
        mms, recorder = steps(FakeModem(response))
        mms.fetch_one(received(notification()))
        assert recorder.events[0]["delivered"] is False


@pytest.mark.parametrize(
    ("body", "error", "why"),
    [
        (notification()[:-3], None, "notification: X-Mms-Content-Location"),
        (b"", "parts missing", "push: parts missing"),
        (notification('http://mmsc.example/"><x'), None, "content location: URL has unsafe"),
    ],
)
def test_bad_notifications_are_recorded_and_never_fetched(
    body: bytes, error: str | None, why: str
) -> None:
    modem = FakeModem(HttpResponse("GET", URL, 200, (), b"x"))
    mms, recorder = steps(modem)
    mms.fetch_one(received(body, error))
    (event,) = recorder.events
    assert modem.asked == [] and event["delivered"] is False and event["error"].startswith(why)


def test_a_dropped_bearer_is_not_recorded_as_content_but_raised() -> None:
    mms, recorder = steps(FakeModem(HttpModuleError("bearer dropped", 601)))
    with pytest.raises(HttpModuleError):
        mms.fetch_one(received(notification()))
    assert recorder.events == []
