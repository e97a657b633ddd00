"""Anchors: evidence that outlives the database.

`verify_chain` proves the chain is consistent with itself, which is not
enough: whoever controls the database can rewrite an event and re-hash
everything after it, and the chain is consistent again. An anchor is the
chain's head (hash, event count, last id, time) taken at some moment and
kept outside the database — published with a report, exported with
`dialbot evidence anchor`, mailed to a third party. Because every hash
covers the one before it, the event at the anchor's id still having the
anchor's hash proves that nothing up to it has changed since; a rewritten
chain cannot match an anchor published before it was rewritten.

Event ids are the positions in the chain (1, 2, 3 …), so the head's event
count is its id; both are kept so an anchor reads plainly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dialbot.db.models import GENESIS_HASH, EvidenceEvent
from dialbot.db.types import utcnow
from dialbot.errors import InputError

ANCHOR_FORMAT = "dialbot-evidence-anchor/1"


@dataclass(frozen=True)
class ChainHead:
    """The chain as far as one event: its hash, how many events lead to it, when it was."""

    hash: str
    events: int
    last_id: int
    at: datetime | None  # time of the last event (None for an empty chain)

    @property
    def short(self) -> str:
        return self.hash[:16]


def head_until(session: Session, until: datetime | None = None) -> ChainHead:
    """The head of the chain as it stood at `until` (the last event recorded before it; the
    current head when None)."""
    query = select(func.max(EvidenceEvent.id))
    if until is not None:
        query = query.where(EvidenceEvent.at < until)
    last_id = session.scalar(query)
    if not last_id:
        return ChainHead(GENESIS_HASH, 0, 0, None)
    row = session.get(EvidenceEvent, last_id)
    assert row is not None
    return ChainHead(row.hash, int(last_id), int(last_id), row.at)


def anchor_document(head: ChainHead, period: str | None = None) -> dict[str, Any]:
    """The anchor as a small JSON document (what is published or exported)."""
    return {
        "format": ANCHOR_FORMAT,
        "period": period,
        "hash": head.hash,
        "events": head.events,
        "last_id": head.last_id,
        "at": head.at.isoformat() if head.at else None,
        "taken_at": utcnow().isoformat(),
    }


def read_anchor(path: Path) -> ChainHead:
    """An anchor file back; InputError naming the file when it is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(str(path), "", f"not a readable anchor: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != ANCHOR_FORMAT:
        raise InputError(str(path), "", f"not an evidence anchor (format {ANCHOR_FORMAT})")
    try:
        at = datetime.fromisoformat(doc["at"]) if doc.get("at") else None
        head = ChainHead(str(doc["hash"]), int(doc["events"]), int(doc["last_id"]), at)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(str(path), "", f"anchor field missing or wrong: {exc}") from exc
    return head


def check_anchor(session: Session, anchor: ChainHead) -> str | None:
    """Why the database's chain does not contain the anchored head, or None when it does.

    Run after `verify_chain` has found the chain intact: then the event at the
    anchor's id having the anchor's hash means every event up to it is the one
    anchored.
    """
    if anchor.last_id != anchor.events:
        return f"the anchor is inconsistent: {anchor.events} events but last id {anchor.last_id}"
    if anchor.last_id == 0:
        return None
    row = session.get(EvidenceEvent, anchor.last_id)
    if row is None:
        return (
            f"event {anchor.last_id} of the anchor is not in the database: the chain is shorter "
            f"than when the anchor was taken"
        )
    if row.hash != anchor.hash:
        return (
            f"event {anchor.last_id} has hash {row.hash[:16]}…, the anchor says "
            f"{anchor.hash[:16]}…: the chain was rewritten after the anchor was taken"
        )
    return None
