"""Alerts against a local HTTP receiver and a local SMTP server (aiosmtpd).

Each event is stored once; delivery retries with backoff while a receiver
is down and, once it is up, reaches it exactly once.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import engine_of, open_database
from dialbot.errors import ConfigError
from dialbot.scheduling.alerts import (
    AlertSender,
    AlertSettings,
    modem_alerts,
    parse_alerts,
    raise_alert,
)
from dialbot.scheduling.models import AlertEvent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A webhook endpoint that can be taken down and brought back on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str] = []
        self.server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                outer.keys.append(self.headers["Idempotency-Key"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    factory = open_database(f"sqlite:///{tmp_path / 'alerts.db'}")
    yield factory
    engine_of(factory).dispose()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_receivers_down_then_up_each_gets_the_alert_exactly_once(
    db: sessionmaker[Session],
) -> None:
    web, smtp_port = Receiver(free_port()), free_port()
    mailbox = Mailbox()
    settings = AlertSettings(
        webhook_url=f"http://127.0.0.1:{web.port}/hook", smtp_host="127.0.0.1",
        smtp_port=smtp_port, smtp_to=("qa@example.org",), retry_initial_s=30, timeout_s=2,
    )  # fmt: skip
    clock = Clock()
    sender = AlertSender(db, settings, clock)
    assert raise_alert(db, "finding:7", "critical_finding", "OVERCHARGE by SP 9001", {"x": 1})
    assert not raise_alert(db, "finding:7", "critical_finding", "again", {})  # deduplicated

    assert sender.deliver_due() == 0  # both receivers down
    with db() as session:
        row = session.scalars(select(AlertEvent)).one()
        assert row.attempts == 1 and row.delivered == [] and row.last_error
        assert row.next_attempt_at == clock.now + timedelta(seconds=30)

    web.up()
    try:
        clock.now += timedelta(seconds=10)
        assert sender.deliver_due() == 0  # not due yet: backoff respected
        assert web.bodies == []
        clock.now += timedelta(seconds=25)
        assert sender.deliver_due() == 0  # webhook now delivered, mail still down
        assert len(web.bodies) == 1
        with db() as session:
            row = session.scalars(select(AlertEvent)).one()
            assert row.delivered == ["webhook"] and row.attempts == 2
            assert row.next_attempt_at == clock.now + timedelta(seconds=60)  # doubled

        controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
        controller.start()
        try:
            clock.now += timedelta(seconds=61)
            assert sender.deliver_due() == 1
            clock.now += timedelta(hours=1)
            assert sender.deliver_due() == 0  # nothing left to send
        finally:
            controller.stop()
    finally:
        web.down()
    assert len(web.bodies) == 1, "webhook repeated"
    assert web.keys == ["finding:7"]
    assert web.bodies[0]["kind"] == "critical_finding" and web.bodies[0]["x"] == 1
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert mail.rcpt_tos == ["qa@example.org"]
    assert b"X-Dialbot-Alert: finding:7" in mail.content


def test_modem_outage_alerts_once_per_outage(db: sessionmaker[Session]) -> None:
    assert modem_alerts(db, [("bank1/3", "quarantined")]) == 1
    assert modem_alerts(db, [("bank1/3", "quarantined")]) == 0  # same outage
    assert modem_alerts(db, []) == 0  # back in service: outage closed
    assert modem_alerts(db, [("bank1/3", "no_sim")]) == 1  # a new outage
    with db() as session:
        keys = sorted(session.scalars(select(AlertEvent.dedup_key)))
    assert keys[0].startswith("modem:bank1/3:closed:") and keys[1] == "modem:bank1/3:open"


def test_alert_settings_validation() -> None:
    ok = parse_alerts(
        {"webhook_url": "https://h/x", "smtp_host": "m", "smtp_to": ["a@b"]}, "d.toml"
    )
    assert ok.channels == ("webhook", "email")
    assert parse_alerts(None, "d.toml").channels == ()
    for table, key in [
        ({"webhook_url": "ftp://x"}, "alerts.webhook_url"),
        ({"smtp_host": "m"}, "alerts.smtp_to"),
        ({"smtp_port": 70000}, "alerts.smtp_port"),
        ({"retry_initial_s": 0}, "alerts.retry_initial_s"),
        ({"colour": 1}, "alerts.colour"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_alerts(table, "d.toml")
        assert (err.value.file, err.value.where) == ("d.toml", key)
