"""A receiving process that dies between reading a message and recording it.

Run by test_store_first_kill: it opens the fleet with the durable receipt
log, and its sink never records anything — ``park`` keeps the message in
memory as a lease's inbox would, ``block`` hangs the sweep inside the
delivery of a new message (before the modem's delete). It prints ``READ <text>`` for each
message; the test then kills it with SIGKILL.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from dialbot.db.engine import open_database
from dialbot.db.received import DbPduStore
from dialbot.fleet import Fleet, FleetSettings, load_inventories
from dialbot.modem import IncomingMessage


def main(url: str, hardware: str, mode: str) -> None:
    db = open_database(url)
    parked: list[IncomingMessage] = []

    def sink(message: IncomingMessage) -> None:
        sys.stdout.buffer.write(f"READ {message.text}\n".encode())
        sys.stdout.flush()
        if mode == "block" and not message.recovered:
            threading.Event().wait()  # the sweep never gets to AT+CMGD
        parked.append(message)

    settings = FleetSettings(command_timeout=1.0, backoff_initial=0.2, check_interval=60)
    fleet = Fleet(
        load_inventories(Path(hardware)),
        unsolicited=sink,
        settings=settings,
        stores=lambda slot: DbPduStore(db, slot.source, slot.entry.msisdn),
    )
    fleet.open(timeout=10)
    time.sleep(600)  # until killed


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
