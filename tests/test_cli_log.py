"""A command's log: details in dialbot.log, never a traceback on the console, whoever logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import logging, sys
from pathlib import Path
from types import SimpleNamespace
from dialbot.cli.common import command_log

path = command_log(SimpleNamespace(source=Path(sys.argv[1]) / "dialbot.toml"), console=True)
try:
    raise OSError("server closed the connection unexpectedly")
except OSError:
    # what SQLAlchemy's pool logs when a connection cannot be reset (a database restart)
    logging.getLogger("sqlalchemy.pool.impl.QueuePool").error(
        "Exception during reset or similar", exc_info=True
    )
logging.getLogger("dialbot.db").warning("database unreachable; waiting")
print(path)
"""


def test_library_errors_go_to_the_log_not_as_tracebacks_to_the_console(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "warning: database unreachable; waiting" in done.stderr  # the user's one line
    log = (tmp_path / "dialbot.log").read_text(encoding="utf-8")
    assert "Exception during reset or similar" in log
    assert "Traceback" in log and "server closed the connection unexpectedly" in log
