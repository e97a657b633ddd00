"""Answers with raw payloads, framed from transcripts (no port): SIMCom and Quectel reads."""

from __future__ import annotations

import re
import threading

from dialbot.modem.exchange import Exchange, RawRule
from dialbot.modem.patched import FleetGsmModem, is_urc

HTTPREAD = RawRule(re.compile(r"^\+HTTPREAD:\s*(\d+)"), lambda m: int(m.group(1)))


def feed_in_pieces(exchange: Exchange, data: bytes, size: int) -> tuple[bytearray, list[bytes]]:
    """Feed `data` in pieces of `size` bytes as a reader would; return leftovers and foreign lines."""
    buffer = bytearray()
    other: list[bytes] = []
    for i in range(0, len(data), size):
        buffer += data[i : i + size]
        exchange.feed(buffer, other.append)
    return buffer, other


def test_simcom_payload_with_crlf_and_urc_like_lines_in_any_split() -> None:
    body = '<p>第1期\r\nOK\r\n+CMTI: "SM",1\r\n</p>'.encode()
    wire = b"\r\n+HTTPREAD: %d\r\n" % len(body) + body + b'\r\nOK\r\n\r\n+CMTI: "SM",2\r\n'
    for size in (1, 3, 7, len(wire)):
        exchange = Exchange(raw=HTTPREAD, is_urc=lambda line: is_urc(line, None))
        rest, other = feed_in_pieces(exchange, wire, size)
        assert exchange.done.is_set() and exchange.final == "OK"
        assert exchange.payload == body
        assert b'+CMTI: "SM",2' in bytes(rest) or other  # what follows stays for the reader


def test_urc_before_the_answer_goes_back_to_the_reader() -> None:
    exchange = Exchange(raw=HTTPREAD, is_urc=lambda line: is_urc(line, None))
    wire = b'\r\n+CMTI: "SM",3\r\n\r\n+HTTPREAD: 2\r\nab\r\nOK\r\n'
    _, other = feed_in_pieces(exchange, wire, 5)
    assert other == [b'+CMTI: "SM",3'] and exchange.payload == b"ab"


def test_quectel_read_header_block_then_counted_body() -> None:
    rule = RawRule(re.compile(r"^CONNECT$"), lambda m: 5, head_first=True)
    exchange = Exchange(raw=rule)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    wire = b"\r\nCONNECT\r\n" + head + b"\r\n\r\nx\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"
    rest, _ = feed_in_pieces(exchange, wire, 4)
    assert exchange.head == head and exchange.payload == b"\r\n\r\nx"
    assert exchange.final == "OK" and b"+QHTTPREAD: 0" in bytes(rest)


def test_prompt_and_errors_end_the_answer() -> None:
    prompt = Exchange(prompts=("CONNECT",))
    prompt.feed(bytearray(b"\r\nCONNECT\r\n"), lambda raw: None)
    assert prompt.ok and prompt.final == "CONNECT"
    failed = Exchange()
    failed.feed(bytearray(b"\r\n+CME ERROR: 703\r\n"), lambda raw: None)
    assert failed.done.is_set() and not failed.ok


def test_announced_payload_over_the_limit_is_refused() -> None:
    exchange = Exchange(raw=HTTPREAD, max_payload=10)
    exchange.feed(bytearray(b"\r\n+HTTPREAD: 11\r\n"), lambda raw: None)
    assert exchange.done.is_set() and not exchange.ok


def test_reader_never_clears_the_next_commands_exchange() -> None:
    """The caller, woken when its answer is done, may install the next exchange at once.

    The reader used to clear `exchange` after the answer it fed was done and so
    sometimes wiped out the next command's (under load: its +HTTPREAD payload
    then came through as plain lines and the command timed out). Here the
    caller wins that race deterministically: `done.set()` installs the next one.
    """
    gsm = FleetGsmModem("/nonexistent/port")  # never connected: only the framing runs
    after = Exchange(raw=HTTPREAD)

    class CallerWakesAtOnce(threading.Event):
        def set(self) -> None:
            super().set()
            gsm.exchange = after

    first = Exchange(done=CallerWakesAtOnce())
    gsm.exchange = first
    rest = gsm._split_lines(bytearray(b"\r\nOK\r\n"))
    assert first.final == "OK" and rest == bytearray()
    assert gsm.exchange is after
    gsm._split_lines(bytearray(b"\r\n+HTTPREAD: 4\r\nOK\r\n\r\nOK\r\n"))
    assert after.payload == b"OK\r\n" and after.final == "OK"
