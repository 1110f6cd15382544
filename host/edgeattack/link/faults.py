"""Fault injection for links: lost, damaged and duplicated bytes, disconnects, and added latency.

Wrap any port (host or device side) to test what the protocol promises: every request answered
exactly once and no inference run twice, whatever the line does.

    faults = FaultInjector.parse("corrupt=0.01,drop=0.005,dup=0.001,disconnect_every=200,seed=1")
    client = Client(lambda: faults.wrap(open_port(url)))

Spec keys (comma-separated key=value; all optional):
  corrupt=P            each byte is replaced by a different random byte with probability P
  drop=P               each byte is lost with probability P
  dup=P                each byte is sent twice with probability P
  disconnect_every=N   after every N frames (0x00 delimiters) passing the injector, the link breaks
                       part-way through the chunk: the underlying port is closed (the peer sees EOF)
                       and this wrapper raises serial.SerialException until a new port is wrapped
  direction=both|tx|rx faults on bytes written (tx), read (rx) or both (default both)
  delay=S              every byte read becomes available S seconds after it arrived (a delay line,
                       so frames in flight overlap as on a real link with latency)
  seed=N               seed of the injector's random generator (default 0)
One injector keeps its random generator and counters across the ports it wraps (reconnects).
"""
from __future__ import annotations

import collections
import random
import time
from dataclasses import dataclass, fields

import serial

from edgeattack.errors import UsageError
from edgeattack.link.transport import close_port, read_some


@dataclass(frozen=True)
class FaultSpec:
    corrupt: float = 0.0
    drop: float = 0.0
    dup: float = 0.0
    disconnect_every: int = 0
    direction: str = "both"
    delay: float = 0.0
    seed: int = 0


def parse_fault_spec(text: str) -> FaultSpec:
    """Parse "corrupt=0.01,drop=0.005,..." (see the module docstring). Raises UsageError."""
    known = {f.name: f.type for f in fields(FaultSpec)}
    values: dict = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise UsageError(f"fault spec item {item!r}: expected key=value with key one of "
                             f"{', '.join(known)}")
        raw = raw.strip()
        try:
            if key == "direction":
                if raw not in ("both", "tx", "rx"):
                    raise ValueError
                values[key] = raw
            elif key in ("disconnect_every", "seed"):
                values[key] = int(raw)
                if values[key] < 0:
                    raise ValueError
            else:
                values[key] = float(raw)
                if not 0.0 <= values[key] <= (1.0 if key != "delay" else 60.0):
                    raise ValueError
        except ValueError:
            raise UsageError(f"fault spec {key}={raw!r}: expected "
                             f"{_EXPECTED.get(key, 'a probability 0..1')}") from None
    return FaultSpec(**values)


_EXPECTED = {"direction": "both, tx or rx", "disconnect_every": "a frame count >= 0",
             "seed": "an integer >= 0", "delay": "seconds 0..60"}


class FaultInjector:
    """Shared fault state (random generator, counters) for the ports it wraps."""

    def __init__(self, spec: FaultSpec | None = None, **overrides):
        spec = spec or FaultSpec()
        if overrides:
            spec = FaultSpec(**{**spec.__dict__, **overrides})
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.frames = 0  # delimiters seen since the last disconnect
        self.counts = collections.Counter()  # dropped, corrupted, duplicated, disconnects

    @classmethod
    def parse(cls, text: str) -> "FaultInjector":
        return cls(parse_fault_spec(text))

    def wrap(self, port) -> "FaultyPort":
        return FaultyPort(port, self)

    def mangle(self, data: bytes) -> bytes:
        """Apply the byte faults to one chunk."""
        spec = self.spec
        if not (spec.corrupt or spec.drop or spec.dup):
            return data
        rng = self.rng
        out = bytearray()
        for byte in data:
            r = rng.random()
            if r < spec.drop:
                self.counts["dropped"] += 1
                continue
            if r < spec.drop + spec.corrupt:
                byte ^= rng.randrange(1, 256)
                self.counts["corrupted"] += 1
            out.append(byte)
            if rng.random() < spec.dup:
                out.append(byte)
                self.counts["duplicated"] += 1
        return bytes(out)

    def cut_point(self, data: bytes) -> int | None:
        """Where in `data` the link breaks (None: it does not break in this chunk)."""
        every = self.spec.disconnect_every
        if not every:
            return None
        seen = data.count(0)
        if self.frames + seen < every:
            self.frames += seen
            return None
        # Break somewhere inside the frame that reaches the limit, so its tail is lost.
        index = -1
        for _ in range(every - self.frames):
            index = data.index(0, index + 1)
        self.frames = 0
        self.counts["disconnects"] += 1
        return self.rng.randrange(0, index + 1)


class FaultyPort:
    """A port whose reads and writes go through a FaultInjector (see the module docstring)."""

    def __init__(self, port, injector: FaultInjector):
        self._port = port
        self._faults = injector
        self._broken = False
        self._held: collections.deque[tuple[float, bytes]] = collections.deque()  # delay line
        spec = injector.spec
        self._tx = spec.direction in ("both", "tx")
        self._rx = spec.direction in ("both", "rx")
        self.name = getattr(port, "name", None) or getattr(port, "port", None) or "faulty port"

    # pass-through attributes the client and server use
    @property
    def timeout(self):
        return self._port.timeout

    @timeout.setter
    def timeout(self, value):
        self._port.timeout = value

    @property
    def is_open(self) -> bool:
        return not self._broken and self._port.is_open

    @property
    def byte_s(self) -> float:
        """Seconds per byte of a paced line underneath (link.pace.PacedPort), else 0."""
        return getattr(self._port, "byte_s", 0.0)

    @property
    def in_waiting(self) -> int:
        self._check()
        return 1 if self._held else self._port.in_waiting

    def _check(self) -> None:
        if self._broken:
            raise serial.SerialException(f"{self.name}: link broken (injected disconnect)")

    def _break(self) -> None:
        self._broken = True
        self._held.clear()
        try:
            close_port(self._port)
        except Exception:  # noqa: BLE001 - the port may already be gone
            pass

    def write(self, data: bytes) -> int:
        self._check()
        data = bytes(data)
        cut = self._faults.cut_point(data)
        part = data if cut is None else data[:cut]
        if self._tx:
            part = self._faults.mangle(part)
        try:
            self._port.write(part)
        except (serial.SerialException, OSError):
            self._break()
            raise
        if cut is not None:
            self._break()
            raise serial.SerialException(f"{self.name}: link broken (injected disconnect)")
        return len(data)

    def read_some(self, limit: int = 65536) -> bytes:
        self._check()
        delay = self._faults.spec.delay
        if not delay:
            return self._deliver(self._read_inner(limit))
        deadline = time.monotonic() + (self._port.timeout or 0)
        while True:
            now = time.monotonic()
            if self._held and self._held[0][0] <= now:
                out = bytearray()
                while self._held and self._held[0][0] <= now and len(out) < limit:
                    out += self._held.popleft()[1]
                return self._deliver(bytes(out))
            if now >= deadline and not self._held:
                return b""
            if now >= deadline and self._held[0][0] > deadline:
                return b""
            saved = self._port.timeout
            wait = (self._held[0][0] - now) if self._held else (deadline - now)
            self._port.timeout = max(0.0005, min(wait, deadline - now, saved or wait))
            try:
                data = self._read_inner(limit)
            finally:
                self._port.timeout = saved
            if data:
                self._held.append((time.monotonic() + delay, data))

    def _read_inner(self, limit: int) -> bytes:
        try:
            return read_some(self._port, limit)
        except (serial.SerialException, OSError):
            self._break()
            raise

    def _deliver(self, data: bytes) -> bytes:
        if not data:
            return data
        cut = self._faults.cut_point(data)
        if cut is not None:
            data = data[:cut]
            self._break()  # the next call raises; this chunk's head still arrives
        return self._faults.mangle(data) if self._rx else data

    def read(self, size: int = 1) -> bytes:
        return self.read_some(size)

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        reset = getattr(self._port, "reset_input_buffer", None)
        if reset is not None:
            reset()

    def close(self) -> None:
        self._broken = True
        self._held.clear()
        close_port(self._port)


def wrap_faults(port, spec: str | FaultSpec) -> FaultyPort:
    """Wrap one port with faults from a spec string or FaultSpec (a fresh injector)."""
    injector = FaultInjector(spec if isinstance(spec, FaultSpec) else parse_fault_spec(spec))
    return injector.wrap(port)


def with_latency(port, seconds: float) -> FaultyPort:
    """`port` with every byte read delivered `seconds` after it arrived (no other faults)."""
    return FaultInjector(delay=seconds).wrap(port)
