"""Alerts: tell people at once when subscribers could be harmed.

Three events raise an alert: a critical finding, a SIM found subscribed to
something nobody ordered (``UNSOLICITED_SUBSCRIPTION``), and a modem out of
service. Each event is stored once under a deduplication key (a unique
column), then delivered per channel — webhook (JSON POST) and/or e-mail
(SMTP) — until every configured channel has accepted it, with exponential
backoff while a receiver is down. A channel that accepted is never sent to
again, so a webhook that is up is not repeated while the mail server is
down. The key travels with the alert (``Idempotency-Key`` header, ``key``
field, ``X-Dialbot-Alert`` mail header): should the process die between a
receiver accepting and the database recording it, the receiver can drop
the repeat.

A modem's alert is keyed ``modem:NAME:open`` while it is out of service;
when it comes back the key is closed, so its next failure alerts again.

Configuration, ``[alerts]`` in dialbot.toml (see :func:`parse_alerts`)::

    [alerts]
    webhook_url = "https://chat.example.org/hooks/dialbot"
    smtp_host = "mail.example.org"
    smtp_port = 25
    smtp_from = "dialbot@example.org"
    smtp_to = ["qa-oncall@example.org"]
    smtp_starttls = false
    smtp_user = "dialbot"          # password from DIALBOT_SMTP_PASSWORD
    retry_initial_s = 30
    retry_max_s = 3600
    timeout_s = 10
"""

from __future__ import annotations

import json
import logging
import math
import os
import smtplib
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_session
from dialbot.db.models import Finding
from dialbot.db.outage import survives_outage
from dialbot.db.types import utcnow
from dialbot.errors import ConfigError
from dialbot.mask import mask_msisdn
from dialbot.scheduling.models import AlertEvent

log = logging.getLogger("dialbot.scheduling.alerts")
UNSOLICITED = "UNSOLICITED_SUBSCRIPTION"
KEYS = (
    "webhook_url", "smtp_host", "smtp_port", "smtp_from", "smtp_to", "smtp_starttls",
    "smtp_user", "retry_initial_s", "retry_max_s", "timeout_s",
)  # fmt: skip
PASSWORD_ENV = "DIALBOT_SMTP_PASSWORD"


@dataclass(frozen=True)
class AlertSettings:
    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "dialbot@localhost"
    smtp_to: tuple[str, ...] = ()
    smtp_starttls: bool = False
    smtp_user: str | None = None
    retry_initial_s: float = 30.0
    retry_max_s: float = 3600.0
    timeout_s: float = 10.0

    @property
    def channels(self) -> tuple[str, ...]:
        found = []
        if self.webhook_url:
            found.append("webhook")
        if self.smtp_host and self.smtp_to:
            found.append("email")
        return tuple(found)


def parse_alerts(table: Any, file: str) -> AlertSettings:
    """Validate an ``[alerts]`` table (for dialbot.config to call)."""
    if table is None:
        return AlertSettings()
    if not isinstance(table, dict):
        raise ConfigError(file, "alerts", "must be a table")
    for key in table:
        if key not in KEYS:
            raise ConfigError(file, f"alerts.{key}", "unknown key")

    def text(key: str) -> str | None:
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(file, f"alerts.{key}", "must be a non-empty string")
        return value

    def number(key: str, default: float) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(file, f"alerts.{key}", "must be a number greater than 0")
        if not math.isfinite(value):
            raise ConfigError(file, f"alerts.{key}", "must be finite")
        return float(value)

    url = text("webhook_url")
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(file, "alerts.webhook_url", "must be an http:// or https:// URL")
    recipients = table.get("smtp_to", [])
    if isinstance(recipients, str):
        recipients = [recipients]
    if not isinstance(recipients, list) or not all(
        isinstance(r, str) and "@" in r for r in recipients
    ):
        raise ConfigError(file, "alerts.smtp_to", "must be a list of e-mail addresses")
    port = table.get("smtp_port", 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(file, "alerts.smtp_port", "must be a port number (1-65535)")
    starttls = table.get("smtp_starttls", False)
    if not isinstance(starttls, bool):
        raise ConfigError(file, "alerts.smtp_starttls", "must be true or false")
    host = text("smtp_host")
    if host and not recipients:
        raise ConfigError(file, "alerts.smtp_to", "is required when smtp_host is set")
    return AlertSettings(
        webhook_url=url,
        smtp_host=host,
        smtp_port=port,
        smtp_from=text("smtp_from") or "dialbot@localhost",
        smtp_to=tuple(recipients),
        smtp_starttls=starttls,
        smtp_user=text("smtp_user"),
        retry_initial_s=number("retry_initial_s", 30.0),
        retry_max_s=number("retry_max_s", 3600.0),
        timeout_s=number("timeout_s", 10.0),
    )


def read_alert_settings(config_file: Path | None) -> AlertSettings:
    """``[alerts]`` straight from dialbot.toml, until dialbot.config carries it."""
    if config_file is None or not config_file.is_file():
        return AlertSettings()
    try:
        data = tomllib.loads(config_file.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(config_file), "", f"cannot read: {exc}") from exc
    return parse_alerts(data.get("alerts"), str(config_file))


@survives_outage
def raise_alert(
    db: sessionmaker[Session], key: str, kind: str, subject: str, payload: dict[str, Any]
) -> bool:
    """Store an alert unless its key was raised before; True when it is new."""
    with db() as session:
        if session.scalar(select(AlertEvent.id).where(AlertEvent.dedup_key == key)) is not None:
            return False
    try:
        with write_session(db) as session:
            session.add(
                AlertEvent(dedup_key=key, kind=kind, subject=subject[:200], payload=payload,
                           delivered=[], attempts=0)
            )  # fmt: skip
    except IntegrityError:
        return False
    log.warning("alert raised", extra={"alert_key": key, "kind": kind, "subject": subject})
    return True


@survives_outage
def scan_findings(db: sessionmaker[Session], since: datetime) -> int:
    """Raise an alert for every critical finding observed since ``since``; returns new ones."""
    with db() as session:
        rows = list(
            session.scalars(
                select(Finding).where(Finding.severity == "critical", Finding.observed_at >= since)
            )
        )
    new = 0
    for f in rows:
        kind = "unsolicited_subscription" if f.code == UNSOLICITED else "critical_finding"
        subject = f"{f.code} by SP {f.sp_code}" + (
            f" service {f.service_code}" if f.service_code else ""
        )
        payload = {
            "finding_id": f.id, "run_id": f.run_id, "code": f.code, "severity": f.severity,
            "sp_code": f.sp_code, "service_code": f.service_code, "amount_fen": f.amount_fen,
            "observed_at": f.observed_at.isoformat(), "sim": mask_msisdn(f.sim),
        }  # fmt: skip
        new += raise_alert(db, f"finding:{f.id}", kind, subject, payload)
    return new


@survives_outage
def modem_alerts(db: sessionmaker[Session], out_of_service: list[tuple[str, str]]) -> int:
    """Alert once per outage of each modem; close the outage when it is back."""
    down = dict(out_of_service)
    new = 0
    for name, state in down.items():
        new += raise_alert(
            db, f"modem:{name}:open", "modem_out_of_service", f"modem {name} is {state}",
            {"modem": name, "state": state},
        )  # fmt: skip
    with write_session(db) as session:
        for row in session.scalars(
            select(AlertEvent).where(AlertEvent.dedup_key.like("modem:%:open"))
        ):
            name = row.dedup_key[len("modem:") : -len(":open")]
            if name not in down:
                row.dedup_key = f"modem:{name}:closed:{row.id}"
    return new


Sender = Callable[[AlertEvent], None]


class AlertSender:
    """Delivers stored alerts to every configured channel, with backoff."""

    def __init__(
        self,
        db: sessionmaker[Session],
        settings: AlertSettings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.senders: dict[str, Sender] = {"webhook": self._webhook, "email": self._email}

    def deliver_due(self) -> int:
        """Try every alert whose next attempt is due; returns how many are now delivered."""
        channels = self.settings.channels
        if not channels:
            return 0
        now = self.clock()
        with self.db() as session:
            due = list(
                session.scalars(
                    select(AlertEvent)
                    .where(
                        AlertEvent.delivered_at.is_(None),
                        or_(
                            AlertEvent.next_attempt_at.is_(None), AlertEvent.next_attempt_at <= now
                        ),
                    )
                    .order_by(AlertEvent.id)
                )
            )
        return sum(self._deliver(event, channels, now) for event in due)

    def _deliver(self, event: AlertEvent, channels: tuple[str, ...], now: datetime) -> bool:
        done = list(event.delivered or [])
        errors = []
        for channel in channels:
            if channel in done:
                continue
            try:
                self.senders[channel](event)
                done.append(channel)
            except (OSError, smtplib.SMTPException, urllib.error.URLError) as exc:
                errors.append(f"{channel}: {exc}")
        attempts = event.attempts + 1
        complete = all(c in done for c in channels)
        values: dict[str, Any] = {"delivered": done, "attempts": attempts}
        if complete:
            values.update(delivered_at=now, next_attempt_at=None, last_error=None)
        else:
            delay = min(
                self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** (attempts - 1)
            )
            values.update(
                next_attempt_at=now + timedelta(seconds=delay), last_error="; ".join(errors)
            )
            log.warning("alert delivery failed", extra={"alert_key": event.dedup_key,
                        "errors": errors, "retry_in_s": delay})  # fmt: skip
        with write_session(self.db) as session:
            session.execute(update(AlertEvent).where(AlertEvent.id == event.id).values(**values))
        return complete

    def _body(self, event: AlertEvent) -> dict[str, Any]:
        return {
            "key": event.dedup_key, "kind": event.kind, "subject": event.subject,
            "raised_at": event.created_at.isoformat(), **event.payload,
        }  # fmt: skip

    def _webhook(self, event: AlertEvent) -> None:
        assert self.settings.webhook_url
        request = urllib.request.Request(
            self.settings.webhook_url,
            data=json.dumps(self._body(event), ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8",
                     "Idempotency-Key": event.dedup_key},
            method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"webhook answered HTTP {response.status}")

    def _email(self, event: AlertEvent) -> None:
        s = self.settings
        assert s.smtp_host
        message = EmailMessage()
        message["Subject"] = f"[dialbot] {event.subject}"
        message["From"] = s.smtp_from
        message["To"] = ", ".join(s.smtp_to)
        message["X-Dialbot-Alert"] = event.dedup_key
        message.set_content(json.dumps(self._body(event), ensure_ascii=False, indent=2))
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.timeout_s) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, os.environ.get(PASSWORD_ENV, ""))
            smtp.send_message(message)
