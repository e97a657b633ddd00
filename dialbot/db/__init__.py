"""Storage: SQLAlchemy 2.0 models, migrations shipped in the package, and the
few operations the rest of dialbot needs. SQLite (WAL) by default,
PostgreSQL (psycopg 3) in production; the same code and tests run on both.

Every helper takes the ``sessionmaker`` returned by :func:`open_database`,
opens its own short transaction and returns immutable snapshots, so callers
on many threads never share a session.

Start-up::

    sessions = open_database(config.database_url)   # migrates to head

Catalogue (``dialbot.db.catalogue``): ``list_services`` → current entries
(with the ``version_id`` a run pins); importing is ``dialbot.catalog``.

Runs (``dialbot.db.runs``): ``create_run`` (planned; pins the catalogue
version), ``transition`` (planned → running → judging → done | infra_failed |
aborted; anything else raises ``IllegalTransition``), ``heartbeat``,
``stale_runs``, ``get_run``, ``upsert_sim``.

Evidence (``dialbot.db.evidence``): ``append_event`` / ``append_events``
(hash-chained, serialised; an event naming ``receipts`` marks those received
PDUs recorded in its own transaction), ``events_for_run``, ``events_by_id``,
``verify_chain``.

Received PDUs (``dialbot.db.received``): ``DbPduStore``, the driver's receipt
log (every PDU committed before the modem deletes it; ``left_over`` is what a
dead process read and never recorded), ``unrecorded``.

Cleanup obligations (``dialbot.db.obligations``): ``create_obligation``
(before the order is sent), ``pending_for_sim``, ``sims_with_pending``,
``record_attempt``, ``discharge``, ``discharge_all_for_sim``.

Findings (``dialbot.db.findings``): ``record_findings`` (only for a run in
state judging), ``export_findings`` (spec §5, MSISDN masked).

Writing code of your own: use ``write_session(sessions)`` for any
read-modify-write transaction; on SQLite it takes the write lock at BEGIN,
which is what keeps concurrent writers from failing with "database is locked".
"""

from __future__ import annotations

from dialbot.db.engine import engine_of, make_engine, open_database, write_session

__all__ = ["engine_of", "make_engine", "open_database", "write_session"]
