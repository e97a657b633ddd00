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
from dialbot.modem.inbox import DEFAULT_TZ, event_time

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


def received_data(message: IncomingMessage) -> dict[str, Any]:
    """What the evidence keeps of a received message beside its text and raw PDUs:
    the network's time stamp (SCTS, with its own offset) next to the host's read time
    (the event's ``at``), where it was stored on the modem, and its completeness."""
    data: dict[str, Any] = {
        "sent_at": message.sent_at.isoformat(),
        "scts": message.scts.isoformat() if message.scts else None,
        "parts": message.parts,
        "complete": message.complete,
        "port": message.port,
        "slots": list(message.slots),
    }
    if message.recovered:
        data["recovered"] = True  # read by a process that died before recording it
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
    return data


# Evidence kinds of a message on the handset (a WAP PUSH is one too); the judge sees both
# as `sms_in` (see `to_judge_event`).
MESSAGE_KINDS = ("sms_in", "wap_push")


def network_time(row: EventRow) -> datetime:
    """When a received message happened, for ordering: its SCTS when it was read late
    (`dialbot.modem.inbox.event_time`), else the host's read time (``at``)."""
    data = row.data if isinstance(row.data, dict) else {}
    received = (*MESSAGE_KINDS, "balance", "subscriptions")
    stamp = data.get("scts") if row.kind in received else None
    if not isinstance(stamp, str):
        return row.at
    try:
        scts = datetime.fromisoformat(stamp)
    except ValueError:
        return row.at
    return event_time(row.at, scts if scts.tzinfo is not None else None)


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
        """Append now; an event recording received PDUs names their receipts (`receipts`),
        which the append marks recorded in its own transaction."""
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
        """A received message; one that is not a readable message to the SIM (an
        undecodable PDU, a status report) is a `note` with its raw PDU, never judged."""
        data = {**received_data(message), **extra}
        if message.problem is not None:
            return self._append(
                "note",
                at=message.received_at,
                peer=message.sender or None,
                text=message.problem,
                raw=incoming_raw(message),
                data=data,
                receipts=message.receipts,
            )
        push = message.wap_push
        return self._append(
            "wap_push" if push is not None else "sms_in",
            at=message.received_at,
            peer=message.sender,
            text=message.text,
            raw=incoming_raw(message),
            data=data,
            receipts=message.receipts,
        )

    def _carrier_reply(self, kind: str, evidence: Evidence, data: dict[str, Any]) -> EventRow:
        message = evidence.messages[0] if evidence.messages else None
        data = {"request": evidence.request, **data}
        if message is not None:
            data = {**received_data(message), **data}
        return self._append(
            kind,
            at=message.received_at if message else now(),
            peer=message.sender if message else evidence.to,
            text=evidence.reply_text,
            raw=incoming_raw(message) if message else None,
            data=data,
            receipts=tuple(r for m in evidence.messages for r in m.receipts),
        )

    def balance(self, reading: Balance, label: str = "") -> EventRow:
        data = {"balance_fen": reading.fen, "via": reading.via, "label": label}
        return self._carrier_reply("balance", reading.evidence, data)

    def subscriptions(self, listing: SubscriptionList, label: str = "") -> EventRow:
        items = [
            {"service": i.service, "sp": i.sp, "number": i.number, "raw": i.raw}
            | ({"price_fen": i.price_fen} if i.price_fen is not None else {})
            | ({"access": i.access} if i.access else {})
            for i in listing.items
        ]
        data: dict[str, Any] = {"items": items, "label": label}
        if not listing.complete:
            data["incomplete"] = listing.why_incomplete or "incomplete"
        return self._carrier_reply("subscriptions", listing.evidence, data)

    def fault(self, exc: BaseException, doing: str) -> EventRow:
        trace = exc.trace if isinstance(exc, ModemError) else []
        text = f"{doing}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        return self._append(
            "modem_fault", at=now(), text=text, data={"trace": trace, "error": type(exc).__name__}
        )

    def call(self, evidence: dict[str, Any], label: str = "") -> EventRow:
        """A voice call (spec/channels.md §8): dial, progress lines with times, answer,
        DTMF, hang-up, release and the measured duration (all in `data`; `text` sums up)."""
        return self._append(
            "call",
            at=datetime.fromisoformat(evidence["dialled_at"]),
            peer=str(evidence.get("number", "")),
            text=call_summary(evidence),
            data={**evidence, "label": label},
        )

    def note(self, text: str, **data: Any) -> EventRow:
        return self._append("note", at=now(), text=text, data=data or None)


def _listed_item(data: dict[str, Any]) -> ListedItem:
    """A stored list item back as the judge reads it (older rows have only the names)."""
    number, price = data.get("number"), data.get("price_fen")
    return ListedItem(
        str(data["service"]),
        str(data.get("sp", "")),
        number=number if isinstance(number, int) else None,
        raw=str(data.get("raw") or ""),
        price_fen=price if isinstance(price, int) else None,
        access=str(data.get("access") or ""),
    )


def call_summary(evidence: dict[str, Any]) -> str:
    """One line a reader of the publication understands: what happened, with times."""

    def secs(key: str) -> str | None:
        value = evidence.get(key)
        return f"{value:.1f}s" if isinstance(value, int | float) else None

    parts = [f"call {evidence.get('number', '')} ({evidence.get('make', '')})"]
    answered = secs("answered_t")
    parts.append(f"answered after {answered}" if answered else "not answered")
    keys = "".join(str(k.get("key", "")) for k in evidence.get("dtmf") or [])
    if keys:
        parts.append(f"DTMF {keys}")
    ended = evidence.get("ended_by")
    if ended == "robot":
        parts.append(
            f"hung up after {secs('measured_s')} connected (at most {secs('max_connected_s')})"
        )
        released = secs("released_t")
        parts.append(
            f"released at {released}" if released else "NOT released (+CLCC still lists it)"
        )
    elif ended == "far_end":
        parts.append(f"ended by the far end after {secs('measured_s')} connected")
    elif ended == "not_placed":
        parts.append(f"not placed: {evidence.get('cause', '')}")
    return "; ".join(parts)


def to_judge_event(row: EventRow) -> Event:
    """The judge's view of a stored event (balances and listings already parsed); a
    message read late is placed at the network's time stamp, not at its reading."""
    data = row.data if isinstance(row.data, dict) else {}
    balance = data.get("balance_fen") if row.kind == "balance" else None
    items: tuple[ListedItem, ...] | None = None
    if row.kind == "subscriptions" and isinstance(data.get("items"), list):
        items = tuple(_listed_item(i) for i in data["items"] if isinstance(i, dict))
    kind = "sms_in" if row.kind in MESSAGE_KINDS else row.kind  # a push is a message too
    return Event(
        id=row.id,
        at=network_time(row),
        kind=kind,  # type: ignore[arg-type]
        peer=row.peer or "",
        text=row.text or "",
        balance_fen=int(balance) if isinstance(balance, int) else None,
        items=items,
        data=data if row.kind in ("http", "mms") else None,
        call=data if row.kind == "call" else None,
    )
