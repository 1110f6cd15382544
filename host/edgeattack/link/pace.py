"""A port paced like a UART: bytes cost 10 bit times each (8N1) in both directions.

Emulated and QEMU boards move bytes as fast as the host can (QEMU's UART ignores its baud divisor),
so a link measured on them says nothing about what a real UART costs. `PacedPort(port, baudrate)`
wraps the host's end of such a link:

- write(data) returns once the bytes would have left a UART at `baudrate` (the transmitter is busy
  until then; back-to-back writes queue behind each other), and only then hands them to the device,
  so the device sees a frame no earlier than its last byte would have arrived.
- read_some() releases received bytes no faster than the line could have carried them: each byte
  arrives 10 / baudrate seconds after the previous one, or after it reached the host, whichever is
  later.
"""
from __future__ import annotations

import time

from edgeattack.errors import UsageError
from edgeattack.link.transport import close_port, read_some

BITS_PER_BYTE = 10  # 8N1: a start bit, 8 data bits, a stop bit


def check_pace_baudrate(value, what: str = "--pace-baudrate") -> int | None:
    """None (unpaced) or a positive baud rate; anything else is one UsageError line."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{what} {value!r}: give a positive baud rate (e.g. 115200), or leave it "
                         f"out for an unpaced link")
    return value


class PacedPort:
    """`port` with both directions paced at `baudrate` 8N1 (see the module docstring)."""

    def __init__(self, port, baudrate: int):
        check_pace_baudrate(baudrate, "pace baud rate")
        self._port = port
        self.baudrate = baudrate
        self.byte_s = BITS_PER_BYTE / baudrate
        self._tx_free = 0.0  # when the transmitter has sent everything written so far
        self._rx = bytearray()  # received, not yet released
        self._rx_done = 0.0  # when the last byte in _rx has fully arrived on the line
        self.name = getattr(port, "name", None) or getattr(port, "port", None) or "paced port"

    @property
    def timeout(self):
        return self._port.timeout

    @timeout.setter
    def timeout(self, value):
        self._port.timeout = value

    @property
    def is_open(self) -> bool:
        return self._port.is_open

    @property
    def in_waiting(self) -> int:
        return 1 if self._released(time.monotonic()) else self._port.in_waiting

    def write(self, data: bytes) -> int:
        now = time.monotonic()
        self._tx_free = max(self._tx_free, now) + len(data) * self.byte_s
        _sleep_until(self._tx_free)
        return self._port.write(data)

    def _released(self, now: float) -> int:
        """How many bytes of _rx have arrived by `now`."""
        pending = max(0.0, self._rx_done - now)
        return max(0, len(self._rx) - int(pending / self.byte_s + 0.999999))

    def read_some(self, limit: int = 65536) -> bytes:
        deadline = time.monotonic() + (self._port.timeout or 0)
        while True:
            now = time.monotonic()
            ready = self._released(now)
            if ready:
                out = bytes(self._rx[:min(ready, limit)])
                del self._rx[:len(out)]
                return out
            wait = deadline - now
            if self._rx:  # the next byte is on its way
                wait = min(wait, self._rx_done - (len(self._rx) - 1) * self.byte_s - now)
            if wait <= 0 and not (self._rx and deadline > now):
                return b""
            saved = self._port.timeout
            self._port.timeout = max(0.0, wait)
            try:
                data = read_some(self._port, 65536)
            finally:
                self._port.timeout = saved
            if data:
                self._rx_done = max(self._rx_done, time.monotonic()) + len(data) * self.byte_s
                self._rx += data

    def read(self, size: int = 1) -> bytes:
        return self.read_some(size)

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        self._rx.clear()
        reset = getattr(self._port, "reset_input_buffer", None)
        if reset is not None:
            reset()

    def close(self) -> None:
        self._rx.clear()
        close_port(self._port)


def _sleep_until(t: float) -> None:
    while True:
        left = t - time.monotonic()
        if left <= 0:
            return
        time.sleep(left)
