"""Opening a port so that hundreds of them fit in one process.

pyserial's POSIX `Serial` waits with select(), which fails outright for file
descriptors above 1023 ("filedescriptor out of range in select()"); each
port costs five descriptors, so a host with ~200 modems hits it. Its
`PosixPollSerial` still writes with select() and its read fails on a plain
timeout (UnboundLocalError, pyserial 3.5); this subclass reads and writes
with poll(). pyserial URLs (socket://, rfc2217://…) are opened by pyserial.
"""

from __future__ import annotations

import errno
import os
import select
import time
from typing import Any

import serial

_RETRY = {errno.EAGAIN, errno.EALREADY, errno.EWOULDBLOCK, errno.EINPROGRESS, errno.EINTR}


_FAIL = select.POLLERR | select.POLLHUP | select.POLLNVAL


class PollSerial(serial.Serial):
    """A POSIX serial port that never calls select() (reads and writes use poll)."""

    _read_poller: tuple[int, select.poll] | None = None  # (fd, poll on it) of read_available

    def read(self, size: int = 1) -> bytes:
        """Up to size bytes, waiting at most the read timeout; a vanished device raises."""
        if not self.is_open:
            raise serial.PortNotOpenError()
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | _FAIL)
        limit = self._timeout
        deadline = None if limit is None else time.monotonic() + limit
        out = bytearray()
        while len(out) < size:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = poller.poll(None if left is None else left * 1000)
            if not events:
                break
            if any(ev & _FAIL and not ev & select.POLLIN for _, ev in events):
                raise serial.SerialException("device reports error (poll)")
            try:
                chunk = os.read(self.fd, size - len(out))
            except OSError as exc:
                if exc.errno in _RETRY:
                    continue
                raise serial.SerialException(f"read failed: {exc}") from exc
            if not chunk:
                raise serial.SerialException("device disconnected (no data after readiness)")
            out.extend(chunk)
        return bytes(out)

    def read_available(self, limit: int) -> bytes:
        """What is waiting, up to `limit` bytes, in one read once the port is readable.

        The reader thread's call: `read(max(1, in_waiting))` costs a blocking
        one-byte read and then an ioctl, a second poll and a second read for
        the rest of the same burst; this is one poll and one read per burst.
        b"" after the read timeout with nothing to read.
        """
        if not self.is_open:
            raise serial.PortNotOpenError()
        poller = self._read_poller
        if poller is None or poller[0] != self.fd:
            poller = (self.fd, select.poll())
            poller[1].register(self.fd, select.POLLIN | _FAIL)
            self._read_poller = poller
        limit_s = self._timeout
        events = poller[1].poll(None if limit_s is None else limit_s * 1000)
        if not events:
            return b""
        if any(ev & _FAIL and not ev & select.POLLIN for _, ev in events):
            raise serial.SerialException("device reports error (poll)")
        try:
            chunk = os.read(self.fd, limit)
        except OSError as exc:
            if exc.errno in _RETRY:
                return b""
            raise serial.SerialException(f"read failed: {exc}") from exc
        if not chunk:
            raise serial.SerialException("device disconnected (no data after readiness)")
        return chunk

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise serial.PortNotOpenError()
        view = memoryview(serial.to_bytes(data))
        total = len(view)
        limit = self._write_timeout
        deadline = time.monotonic() + limit if limit else None
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT | select.POLLERR | select.POLLHUP)
        while view:
            try:
                written = os.write(self.fd, view)
            except OSError as exc:
                if exc.errno not in _RETRY:
                    raise serial.SerialException(f"write failed: {exc}") from exc
                written = 0
            view = view[written:]
            if not view:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise serial.SerialTimeoutException("Write timeout")
            for _, event in poller.poll(None if left is None else left * 1000):
                if event & (select.POLLERR | select.POLLHUP):
                    raise serial.SerialException("port closed while writing")
        return total


def open_port(port: str, baudrate: int, timeout: float, **kwargs: Any) -> serial.SerialBase:
    """Open a device path with `PollSerial`, or a pyserial URL with pyserial."""
    if "://" in port:
        return serial.serial_for_url(port, baudrate=baudrate, timeout=timeout, **kwargs)
    return PollSerial(port=port, baudrate=baudrate, timeout=timeout, **kwargs)
