"""Writing what a probe sees into the evidence log, and reading it back for the judge.

Every event is appended the moment it happens (not at the end of a run), so
a process killed mid-probe leaves its evidence behind, chained. The same
`EventRow`s, turned into the judge's `Event`s, are what the run is judged
on: the judge never sees anything the log does not hold.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from gsmmodem.pdu import encodeSmsSubmitPdu
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.evidence import EventRow, append_event
from dialbot.errors import ModemError
from dialbot.fleet.services import Balance, Evidence, SubscriptionList
from dialbot.judge.model import Event, ListedItem
from dialbot.modem import IncomingMessage
from dialbot.modem.inbox import DEFAULT_TZ

EventSink = Callable[[EventRow], None]


def now() -> datetime:
    """Aware wall-clock time in the carrier's zone (what messages are stamped with)."""
    return datetime.now(DEFAULT_TZ)


def submit_pdus(number: str, text: str) -> str:
    """The SMS-SUBMIT PDU(s) of an outgoing message as hex, one per line.

    The driver does not hand back what it wrote, so the PDU is re-encoded the
    same way (python-gsmmodem-new's encoder); only the message reference may
    differ from the bytes on the wire.
    """
    try:
        pdus = encodeSmsSubmitPdu(number, text, requestStatusReport=False)
    except Exception:  # an encoder limitation must never lose the event itself
        return ""
    return "\n".join(bytes(p.data).hex().upper() for p in pdus)


def incoming_raw(message: IncomingMessage) -> str:
    return "\n".join(message.raw)


class Recorder:
    """Appends one SIM's events (of one run, or of no run) and keeps them for the judge."""

    def __init__(
        self,
        db: sessionmaker[Session],
        sim: str | None,
        run_id: int | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self.db = db
        self.sim = sim
        self.run_id = run_id
        self.on_event = on_event
        self.rows: list[EventRow] = []

    def _append(self, kind: str, **values: Any) -> EventRow:
        row = append_event(self.db, kind, sim=self.sim, run_id=self.run_id, **values)
        self.rows.append(row)
        if self.on_event is not None:
            self.on_event(row)
        return row

    def sms_out(self, to: str, text: str, at: datetime, purpose: str = "other") -> EventRow:
        return self._append(
            "sms_out",
            at=at,
            peer=to,
            text=text,
            raw=submit_pdus(to, text),
            data={"purpose": purpose},
        )

    def http(
        self, url: str, status: int, body: str, at: datetime, data: dict[str, Any]
    ) -> EventRow:
        """One HTTP response (the body verbatim up to the caller's bound; SP text is untrusted)."""
        return self._append("http", at=at, peer=str(status), text=body, data={"url": url, **data})

    def mms(
        self, location: str, status: str, text: str, at: datetime, data: dict[str, Any]
    ) -> EventRow:
        """One MMS notification and what fetching it gave (channels.md §8; text is untrusted)."""
        return self._append("mms", at=at, peer=status, text=text, data={"url": location, **data})

    def sms_in(self, message: IncomingMessage, **extra: Any) -> EventRow:
        data: dict[str, Any] = {
            "sent_at": message.sent_at.isoformat(),
            "parts": message.parts,
            "complete": message.complete,
            "port": message.port,
        }
        push = message.wap_push
        if push is not None:
            data["wap_push"] = {
                "content_type": push.content_type,
                "headers": [list(h) for h in push.headers],
                "href": push.href,
                "text": push.text,
                "si_id": push.si_id,
                "body_hex": push.body_hex,
                "error": push.error,
            }
        data.update(extra)
        return self._append(
            "wap_push" if push is not None else "sms_in",
            at=message.received_at,
            peer=message.sender,
            text=message.text,
            raw=incoming_raw(message),
            data=data,
        )

    def _carrier_reply(self, kind: str, evidence: Evidence, data: dict[str, Any]) -> EventRow:
        message = evidence.messages[0] if evidence.messages else None
        data = {"request": evidence.request, **data}
        return self._append(
            kind,
            at=message.received_at if message else now(),
            peer=message.sender if message else evidence.to,
            text=evidence.reply_text,
            raw=incoming_raw(message) if message else None,
            data=data,
        )

    def balance(self, reading: Balance, label: str = "") -> EventRow:
        data = {"balance_fen": reading.fen, "via": reading.via, "label": label}
        return self._carrier_reply("balance", reading.evidence, data)

    def subscriptions(self, listing: SubscriptionList, label: str = "") -> EventRow:
        items = [{"service": i.service, "sp": i.sp} for i in listing.items]
        return self._carrier_reply(
            "subscriptions", listing.evidence, {"items": items, "label": label}
        )

    def fault(self, exc: BaseException, doing: str) -> EventRow:
        trace = exc.trace if isinstance(exc, ModemError) else []
        text = f"{doing}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        return self._append(
            "modem_fault", at=now(), text=text, data={"trace": trace, "error": type(exc).__name__}
        )

    def note(self, text: str, **data: Any) -> EventRow:
        return self._append("note", at=now(), text=text, data=data or None)


def to_judge_event(row: EventRow) -> Event:
    """The judge's view of a stored event (balances and listings already parsed)."""
    data = row.data if isinstance(row.data, dict) else {}
    balance = data.get("balance_fen") if row.kind == "balance" else None
    items: tuple[ListedItem, ...] | None = None
    if row.kind == "subscriptions" and isinstance(data.get("items"), list):
        items = tuple(ListedItem(str(i["service"]), str(i.get("sp", ""))) for i in data["items"])
    kind = "sms_in" if row.kind == "wap_push" else row.kind  # a push is a message on the handset
    return Event(
        id=row.id,
        at=row.at,
        kind=kind,  # type: ignore[arg-type]
        peer=row.peer or "",
        text=row.text or "",
        balance_fen=int(balance) if isinstance(balance, int) else None,
        items=items,
        data=data if row.kind in ("http", "mms") else None,
    )
