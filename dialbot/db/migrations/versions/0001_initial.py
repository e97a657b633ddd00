"""Initial schema: catalogue with history, SIMs, runs, evidence chain, findings,
cleanup obligations.

Frozen: this file describes the schema as of revision 0001 and must not
import the models (they move on; migrations do not).

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS_HASH = "0" * 64


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _catalogue_columns() -> list[sa.Column]:
    """Columns a service and each of its versions share."""
    return [
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("access_number", sa.String(21), nullable=False),
        sa.Column("billing", sa.String(16), nullable=False),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("subscribe_cmd", sa.String(70), nullable=False),
        sa.Column("cancel_cmd", sa.String(70), nullable=True),
        sa.Column("use_cmd", sa.String(70), nullable=True),
        sa.Column("region", sa.String(64), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "sps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hotline", sa.String(32), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sp_id", sa.Integer(), sa.ForeignKey("sps.id"), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        *_catalogue_columns(),
        sa.Column("version", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("sp_id", "code", name="uq_services_sp_code"),
        sa.CheckConstraint("billing IN ('monthly', 'per_use')", name="ck_services_billing"),
        sa.CheckConstraint("price_fen >= 0", name="ck_services_price"),
    )
    op.create_table(
        "service_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service_id", sa.Integer(), sa.ForeignKey("services.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sp_name", sa.String(200), nullable=False),
        sa.Column("sp_hotline", sa.String(32), nullable=True),
        *_catalogue_columns(),
        sa.Column("source", sa.String(255), nullable=True),
        _ts("imported_at"),
        sa.UniqueConstraint("service_id", "version", name="uq_service_versions"),
    )
    op.create_table(
        "sims",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("msisdn", sa.String(21), nullable=False, unique=True),
        sa.Column("imsi", sa.String(16), nullable=True),
        sa.Column("iccid", sa.String(22), nullable=True, unique=True),
        sa.Column("bank", sa.String(64), nullable=True),
        sa.Column("slot", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(24), nullable=False),
        _ts("updated_at"),
        sa.UniqueConstraint("bank", "slot", name="uq_sims_bank_slot"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("flow", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sp_id", sa.Integer(), sa.ForeignKey("sps.id"), nullable=True),
        sa.Column("service_id", sa.Integer(), sa.ForeignKey("services.id"), nullable=True),
        sa.Column(
            "service_version_id",
            sa.Integer(),
            sa.ForeignKey("service_versions.id"),
            nullable=True,
        ),
        sa.Column("sim_id", sa.Integer(), sa.ForeignKey("sims.id"), nullable=True),
        sa.Column("modem", sa.String(80), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_of_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("ended_at", nullable=True),
        _ts("heartbeat_at", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('planned', 'running', 'judging', 'done', 'infra_failed', 'aborted')",
            name="ck_runs_state",
        ),
    )
    op.create_index("ix_runs_service_id", "runs", ["service_id"])
    op.create_index("ix_runs_state_heartbeat", "runs", ["state", "heartbeat_at"])
    _create_evidence()
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("sp_code", sa.String(32), nullable=False),
        sa.Column("service_code", sa.String(32), nullable=True),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        _ts("observed_at"),
        sa.Column("sim", sa.String(21), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.CheckConstraint(
            "severity IN ('critical', 'major', 'minor', 'quality')", name="ck_findings_severity"
        ),
        sa.CheckConstraint("amount_fen >= 0", name="ck_findings_amount"),
    )
    op.create_index("ix_findings_run_id", "findings", ["run_id"])
    op.create_index("ix_findings_observed_at", "findings", ["observed_at"])
    op.create_index("ix_findings_sp_code", "findings", ["sp_code"])
    op.create_table(
        "cleanup_obligations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sim", sa.String(21), nullable=False),
        sa.Column("sp_code", sa.String(32), nullable=False),
        sa.Column("service_code", sa.String(32), nullable=False),
        sa.Column("access_number", sa.String(21), nullable=False),
        sa.Column("cancel_cmd", sa.String(70), nullable=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        _ts("created_at"),
        _ts("discharged_at", nullable=True),
        sa.Column("method", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_obligations_sim_pending", "cleanup_obligations", ["sim", "discharged_at"])


def _create_evidence() -> None:
    """The evidence log, its head row, and triggers that refuse UPDATE/DELETE."""
    op.create_table(
        "evidence_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("sim", sa.String(21), nullable=True),
        _ts("at"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("peer", sa.String(32), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.CheckConstraint(
            "kind IN ('sms_out', 'sms_in', 'balance', 'subscriptions', 'ussd', "
            "'modem_fault', 'note')",
            name="ck_evidence_kind",
        ),
    )
    op.create_index("ix_evidence_events_run_id", "evidence_events", ["run_id"])
    op.create_index("ix_evidence_sim_at", "evidence_events", ["sim", "at"])
    head = op.create_table(
        "evidence_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("last_id", BigId, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "last_id": 0, "last_hash": GENESIS_HASH}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION dialbot_evidence_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'evidence_events is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER evidence_events_append_only BEFORE UPDATE OR DELETE "
            "ON evidence_events FOR EACH ROW EXECUTE FUNCTION dialbot_evidence_append_only()"
        )
        op.execute(
            "CREATE TRIGGER evidence_events_no_truncate BEFORE TRUNCATE "
            "ON evidence_events FOR EACH STATEMENT EXECUTE FUNCTION dialbot_evidence_append_only()"
        )
    elif op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER evidence_events_no_{action.lower()} BEFORE {action} "
                "ON evidence_events BEGIN "
                "SELECT RAISE(ABORT, 'evidence_events is append-only'); END"
            )


def downgrade() -> None:
    op.drop_table("cleanup_obligations")
    op.drop_table("findings")
    op.drop_table("evidence_head")
    op.drop_table("evidence_events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS dialbot_evidence_append_only()")
    op.drop_table("runs")
    op.drop_table("sims")
    op.drop_table("service_versions")
    op.drop_table("services")
    op.drop_table("sps")
