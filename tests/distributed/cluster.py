"""A controller and probe workers on loopback, as subprocesses, for the distributed tests.

Each worker has a dialbot.toml of its own (its host's ``hardware/`` holds
only its bank) and all share one fresh PostgreSQL database and one broker.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_session
from dialbot.db.models import Service, Sp

HERE = Path(__file__).resolve().parent
SCHEDULE = """
name = "night"
cron = "0 1 * * *"
window_end = "05:30"
flows = [{flows}]
coverage = "month"
per_sp_concurrency = 2
"""
REGIONS = ("north", "south", None)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def populate(db: sessionmaker[Session], sps: int = 6, per_sp: int = 4) -> None:
    """SPs of the north, of the south, and nationwide ones (region None)."""
    with write_session(db) as session:
        for s in range(sps):
            sp = Sp(code=f"91{s:04d}", name=f"SP {s}", hotline=None)
            session.add(sp)
            session.flush()
            for k in range(per_sp):
                session.add(
                    Service(sp_id=sp.id, code=f"S{k}", name=f"svc {k}",
                            access_number=f"1066{s:04d}", billing="monthly", price_fen=500,
                            subscribe_cmd="DG", cancel_cmd="TD", use_cmd=None,
                            region=REGIONS[s % 3], version=1)
                )  # fmt: skip


@dataclass
class Cluster:
    root: Path
    db_url: str
    broker_url: str
    delay: float = 0.3
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    worker_runtime: str = "stub_runtime:runtime"
    time_scale: float = 0.001
    flows: str = '"decline"'

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.txt"

    def bank(self, letter: str) -> str:
        return f"{letter}{self.tag}"

    def env(self, config: Path) -> dict[str, str]:
        return {
            **os.environ,
            "DIALBOT_CONFIG": str(config),
            "DIALBOT_BROKER_URL": self.broker_url,
            "DIALBOT_BROKER_HEARTBEAT_S": "0.25",
            "DIALBOT_BROKER_STALE_AFTER_S": "3",
            "DIALBOT_BROKER_CLAIM_TIMEOUT_S": "60",
            "DIALBOT_TEST_LEDGER": str(self.ledger),
            "DIALBOT_TEST_DELAY": str(self.delay),
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            **self.extra_env,
        }

    def host_config(self, name: str, body: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "dialbot.toml"
        path.write_text(
            f'[database]\nurl = "{self.db_url}"\n[probe]\ntime_scale = {self.time_scale}\n{body}'
        )
        return path

    def add_bank(self, letter: str, region: str, modems: int, first_msisdn: int) -> None:
        """A probe host with one bank (its inventory in the host's hardware/)."""
        hw = self.root / f"host{letter}" / "hardware"
        hw.mkdir(parents=True, exist_ok=True)
        lines = [f'[bank]\nname = "{self.bank(letter)}"\nregion = "{region}"\n']
        for slot in range(1, modems + 1):
            lines.append(f'[[modem]]\nslot = {slot}\nport = "/dev/ttyFAKE{letter}{slot}"\n'
                         f'msisdn = "{first_msisdn + slot}"\n')  # fmt: skip
        (hw / f"{letter}.toml").write_text("\n".join(lines))
        self.host_config(f"host{letter}", "")

    def start_worker(self, letter: str) -> subprocess.Popen[bytes]:
        config = self.root / f"host{letter}" / "dialbot.toml"
        log = (self.root / f"worker{letter}-{len(self.workers)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dialbot", "worker", "--bank", self.bank(letter),
             "--runtime", self.worker_runtime],
            env=self.env(config), cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.workers[f"{letter}{len(self.workers)}"] = proc
        return proc

    def controller(self) -> subprocess.Popen[bytes]:
        config = self.host_config("controller", "")
        (self.root / "controller" / "schedules").mkdir(exist_ok=True)
        (self.root / "controller" / "schedules" / "night.toml").write_text(
            SCHEDULE.replace("{flows}", self.flows)
        )
        return subprocess.Popen(
            [sys.executable, "-m", "dialbot", "schedule", "run", "night", "--window", "10",
             "--runtime", "dialbot.scheduling.distributed:runtime"],
            env=self.env(config), cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def lines(self) -> list[list[str]]:
        if not self.ledger.exists():
            return []
        return [ln.split() for ln in self.ledger.read_text().splitlines()]

    def still_subscribed(self) -> set[tuple[str, str]]:
        """Ground truth from the ledger: (SIM, service) orders never cancelled or cleaned."""
        subscribed: set[tuple[str, str]] = set()
        for line in self.lines():
            if line[0] == "ORDER":
                subscribed.add((line[2], line[1]))
            elif line[0] == "CANCEL":
                subscribed.discard((line[2], line[1]))
            elif line[0] == "CLEAN":
                subscribed = {s for s in subscribed if s[0] != line[1]}
        return subscribed

    def orders(self) -> Counter[str]:
        return Counter(line[1] for line in self.lines() if line[0] == "ORDER")

    def stop(self) -> None:
        """Stop the workers and delete this cluster's queues from the broker."""
        from kombu import Connection

        from dialbot.scheduling.celery_app import queue_name

        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        with Connection(self.broker_url) as conn:
            for letter in "AB":
                conn.default_channel.queue_delete(queue_name(self.bank(letter)))

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.root.glob("worker*.log"))
        )
