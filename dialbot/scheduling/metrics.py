"""Prometheus metrics, computed from the database at scrape time.

Counting in the database rather than in process counters means a restart
(or kill -9) loses nothing and several processes can share one view. Only
the modems' states come from the live fleet. Metrics use a registry of
their own, so tests and several daemons in one process never collide.

    dialbot_modems{state}                    modems by state
    dialbot_probes_total{state}              runs by final state (done, infra_failed, ...)
    dialbot_plan_items_total{state}          scheduled probes by state (all nights)
    dialbot_findings_total{code}             findings by violation code
    dialbot_queue_depth                      pending items of running nights
    dialbot_last_successful_night_timestamp  when the last night finished (Unix time)
    dialbot_alerts_undelivered               alerts not yet accepted by every channel
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.models import Finding, Run
from dialbot.scheduling.models import AlertEvent, ItemState, NightPlan, NightState, PlanItemRow

log = logging.getLogger("dialbot.scheduling.metrics")


class DialbotCollector(Collector):
    """Reads the figures at each scrape."""

    def __init__(
        self,
        db: sessionmaker[Session],
        modem_states: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self.db = db
        self.modem_states = modem_states

    def collect(self) -> Iterator[Any]:
        modems = GaugeMetricFamily("dialbot_modems", "Modems by state", labels=["state"])
        for state, count in sorted(self.modem_states().items()):
            modems.add_metric([state], count)
        yield modems
        try:
            yield from self._from_database()
        except SQLAlchemyError as exc:  # a scrape must not crash the daemon
            log.warning("metrics: database unavailable", extra={"error": str(exc)})

    def _from_database(self) -> Iterator[Any]:
        with self.db() as session:
            runs = session.execute(select(Run.state, func.count()).group_by(Run.state)).all()
            items = session.execute(
                select(PlanItemRow.state, func.count()).group_by(PlanItemRow.state)
            ).all()
            codes = session.execute(select(Finding.code, func.count()).group_by(Finding.code)).all()
            depth = session.scalar(
                select(func.count())
                .select_from(PlanItemRow)
                .join(NightPlan, PlanItemRow.plan_id == NightPlan.id)
                .where(
                    NightPlan.state == NightState.RUNNING.value,
                    PlanItemRow.state == ItemState.PENDING.value,
                )
            )
            last = session.scalar(
                select(func.max(NightPlan.finished_at)).where(
                    NightPlan.state == NightState.DONE.value
                )
            )
            undelivered = session.scalar(
                select(func.count())
                .select_from(AlertEvent)
                .where(AlertEvent.delivered_at.is_(None))
            )
        yield _counter("dialbot_probes", "Probe runs by state", "state", runs)
        yield _counter("dialbot_plan_items", "Scheduled probes by state", "state", items)
        yield _counter("dialbot_findings", "Findings by violation code", "code", codes)
        yield GaugeMetricFamily("dialbot_queue_depth", "Pending probes of running nights",
                                value=int(depth or 0))  # fmt: skip
        yield GaugeMetricFamily(
            "dialbot_last_successful_night_timestamp",
            "Unix time the last night finished (0: never)",
            value=last.timestamp() if last is not None else 0.0,
        )
        yield GaugeMetricFamily("dialbot_alerts_undelivered", "Alerts not yet delivered",
                                value=int(undelivered or 0))  # fmt: skip


def _counter(name: str, doc: str, label: str, rows: Any) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for value, count in sorted(rows):
        family.add_metric([str(value)], int(count))
    return family


class MetricsServer:
    """The HTTP endpoint; ``close()`` is safe twice."""

    def __init__(self, collector: Collector, port: int, addr: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self._server, self._thread = start_http_server(port, addr=addr, registry=self.registry)
        self.port = int(self._server.server_address[1])
        self._closed = threading.Event()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
