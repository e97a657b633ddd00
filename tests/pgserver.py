"""A private PostgreSQL server a test may stop and start: the outage tests' database.

The machine's own server (127.0.0.1:5432) is shared by every test and must
never go down; this one lives in a temporary data directory on a free
loopback port, owned by the ``postgres`` system user (initdb refuses root),
and is removed at the end. ``pg_ctl stop -m fast`` cuts every connection, as
a restart for an upgrade or a crash does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """initdb + pg_ctl on a temporary directory; stop()/start() at will."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l",
                  str(self.root / "log"), "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A running private server; skipped when PostgreSQL's binaries are not installed."""
    if os.environ.get("DIALBOT_TEST_PG", "1") == "0":
        pytest.skip("PostgreSQL tests disabled (DIALBOT_TEST_PG=0)")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (pg_ctl) not installed")
    root = Path(tempfile.mkdtemp(prefix="dialbot-pg-"))
    server = PrivatePostgres(bindir, root)
    server.init()
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped by the test
        shutil.rmtree(root, ignore_errors=True)
