"""Two probe hosts and a controller ride out a PostgreSQL restart (issue: database outage).

The cluster's database is a private server (`pgserver`) the test stops for
longer than the workers' `stale_after_s` in the middle of the night and
starts again. The controller must finish the night (exit 0, no traceback);
no probe may be resolved as lost and no bank taken over because heartbeats
could not be written meanwhile; nothing is ordered twice or left subscribed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster, wait_for
from pgserver import PrivatePostgres, private_pg  # noqa: F401  (fixture)
from sqlalchemy import select
from test_distributed import REDIS, check_night, finish_controller, start_two_banks

from dialbot.db.engine import engine_of, open_database
from dialbot.scheduling.hosts import Dispatch
from dialbot.scheduling.models import PlanItemRow

STALE_AFTER_S = 3.0


@pytest.fixture
def cluster(private_pg: PrivatePostgres, tmp_path: Path) -> Iterator[Cluster]:  # noqa: F811
    c = Cluster(tmp_path, private_pg.url, REDIS, delay=0.3)
    yield c
    c.stop()


def test_night_survives_a_database_restart(
    cluster: Cluster,
    private_pg: PrivatePostgres,  # noqa: F811
) -> None:
    start_two_banks(cluster)
    db = open_database(cluster.db_url)
    controller = cluster.controller()

    def some_done() -> bool:
        with db() as session:
            return (
                session.scalar(select(PlanItemRow.id).where(PlanItemRow.state == "done"))
                is not None
            )

    wait_for(some_done, 60, "the night's first probe")
    engine_of(db).dispose()
    private_pg.stop()
    stopped = time.monotonic()
    # Down for longer than a heartbeat may be missed: under the old rule every worker was dead.
    wait_for(lambda: time.monotonic() - stopped > 2 * STALE_AFTER_S, 10, "the outage to last")
    assert controller.poll() is None, "the controller gave up during the outage"
    private_pg.start()
    finish_controller(cluster, controller)
    states = check_night(cluster)
    assert states == {"done": 24}, states
    db = open_database(cluster.db_url)
    try:
        with db() as session:
            lost = session.scalars(select(Dispatch).where(Dispatch.state == "lost")).all()
        assert lost == [], "a live worker's probe was taken for lost"
    finally:
        engine_of(db).dispose()
    assert all(proc.poll() is None for proc in cluster.workers.values()), cluster.logs()
