"""Alembic environment, configured from code (see dialbot.db.engine.alembic_config).

The caller passes an open connection in ``config.attributes["connection"]``;
for developer use (``alembic revision --autogenerate``) a URL in the main
option ``sqlalchemy.url`` works too. Batch mode is on so that later
migrations can alter tables on SQLite.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from dialbot.db.engine import make_engine
from dialbot.db.models import load_all_models


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=load_all_models().metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


run_migrations_online()
