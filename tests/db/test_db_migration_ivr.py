"""0004_ivr upgrades a database that already holds services and runs, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from dialbot.db.engine import make_engine, migrate

SERVICE = (
    "INSERT INTO services (id, sp_id, code, name, access_number, billing, price_fen, "
    "subscribe_cmd, version, created_at, updated_at{extra}) VALUES "
    "(:id, 1, :code, 'n', '125900001', :billing, 100, '', 1, CURRENT_TIMESTAMP, "
    "CURRENT_TIMESTAMP{values})"
)


def test_upgrade_keeps_rows_and_widens_checks(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine, "0003")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sps (id, code, name, created_at, updated_at) "
                    "VALUES (1, '901', 'X', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(SERVICE.format(extra="", values="")),
                {"id": 1, "code": "A", "billing": "monthly"},
            )
            conn.execute(
                text(
                    "INSERT INTO runs (id, flow, state, service_id, attempt, created_at) "
                    "VALUES (1, 'monthly', 'planned', 1, 1, CURRENT_TIMESTAMP)"
                )
            )
        migrate(engine)
        ivr = SERVICE.format(extra=", channel", values=", :channel")
        with engine.begin() as conn:
            conn.execute(
                text(ivr), {"id": 2, "code": "B", "billing": "per_minute", "channel": "ivr"}
            )
            rows = conn.execute(text("SELECT code, billing, channel FROM services ORDER BY id"))
            assert rows.all() == [("A", "monthly", "sms"), ("B", "per_minute", "ivr")]
        for billing, channel in (("per_hour", "ivr"), ("per_minute", "fax")):
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(
                    text(ivr), {"id": 3, "code": "C", "billing": billing, "channel": channel}
                )
    finally:
        engine.dispose()
