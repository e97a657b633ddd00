"""Store first, delete after, in the driver (a scripted modem on a pty).

The driver commits every PDU to its store before ``AT+CMGD``: a store that
fails leaves the message on the modem (read again by the next sweep, then
delivered once); a failed delete does not deliver twice; a sink that fails
hands the message to the unsolicited sink, never to a queue nobody reads.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakemodem import FakeModem

from dialbot.modem import IncomingMessage, LinkState, Modem, ModemSettings
from dialbot.modem.inbox import StoredPdu
from dialbot.modem.store import MemoryStore, Receipt


class FlakyStore(MemoryStore):
    """Refuses the first `failures` PDUs (a database that is down), then works."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def store_many(self, items: list[StoredPdu]) -> list[Receipt]:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database unreachable")
        return super().store_many(items)


@pytest.fixture
def fake() -> Iterator[FakeModem]:
    peer = FakeModem()
    yield peer
    peer.close()


def _modem(fake: FakeModem, got: list[IncomingMessage], store: MemoryStore) -> Modem:
    modem = Modem(
        ModemSettings(fake.port, command_timeout=2.0), unsolicited=got.append, store=store
    )
    modem.start()
    assert modem.wait_settled(10) == LinkState.READY
    modem.sweep()  # the worker's first sweep is over (sweeps are serialised)
    return modem


def test_a_message_the_store_refuses_stays_on_the_modem(fake: FakeModem) -> None:
    got: list[IncomingMessage] = []
    store = FlakyStore(failures=0)
    modem = _modem(fake, got, store)
    try:
        store.failures = 1
        (index,) = fake.store("1065800101", "【星河科技】存储失败时不能删除")
        fake.commands.clear()
        modem.sweep()
        assert index in fake.storage and got == []
        assert not any(c.startswith("AT+CMGD") for c in fake.commands)
        assert modem.store_error and "unreachable" in modem.store_error
        modem.sweep()  # the database is back
        assert [m.text for m in got] == ["【星河科技】存储失败时不能删除"]
        assert index not in fake.storage and modem.store_error is None
        assert got[0].receipts and got[0].slots == (f"SM:{index}",)
    finally:
        modem.close()


def test_a_failed_delete_does_not_deliver_twice(fake: FakeModem) -> None:
    got: list[IncomingMessage] = []
    modem = _modem(fake, got, MemoryStore())
    try:
        (index,) = fake.store("1065800101", "删除失败的消息")
        refused = []

        def refuse_once(cmd: str) -> list[str]:
            if not refused:
                refused.append(cmd)
                return ["+CMS ERROR: 500"]
            fake.storage.pop(index, None)
            return ["OK"]

        fake.handlers[f"AT+CMGD={index}"] = refuse_once
        with pytest.raises(Exception):  # noqa: B017 (the driver's CmsError)
            modem.sweep()
        assert index in fake.storage and len(got) == 1
        modem.sweep()
        assert index not in fake.storage and len(got) == 1
    finally:
        modem.close()


def test_a_failing_sink_hands_over_to_the_unsolicited_sink(fake: FakeModem) -> None:
    got: list[IncomingMessage] = []
    modem = _modem(fake, got, MemoryStore())
    try:

        def broken(_message: IncomingMessage) -> None:
            raise RuntimeError("lease holder crashed")

        modem.set_sink(broken)
        fake.store("1065800101", "持有者出错时的消息")
        modem.sweep()
        assert [m.text for m in got] == ["持有者出错时的消息"]
        assert modem.unsolicited.empty()
    finally:
        modem.close()
