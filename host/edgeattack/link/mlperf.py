"""The host side of MLPerf Tiny's device protocol (EEMBC / MLCommons "DUT" protocol).

    client = MlperfClient(lambda: open_port(url), expect=DutExpectation(model="ic01",
                          input_bytes=3072, outputs=10, input_offset=128))
    info = client.connect()           # name% and profile%: identity, model name, SHA-256 if reported
    r = client.infer(q_int8)          # db load / db hex chunks / db print / infer 1 0 / results
    client.close()

Written from the protocol as docs/mlperf.md describes it (commands are text ending in `%`, replies
are lines, every command ends with `m-ready`, errors `e-[...]`). The protocol has no checksum and no
sequence numbers, so nothing a line says is trusted alone: each load is read back with `db print`
and compared, scores are accepted only when two readings agree, every reply must have the shape its
command produces, and anything else makes the client resynchronize and redo the whole step (load
or inference). Tensor values travel as bytes chosen so that the device's input tensor equals the
shared quantizer's q: `(q + input_offset) mod 256` (128 for image classification and visual wake
words, whose reference firmware subtracts 128 from uint8 bytes; 0 for keyword spotting). Anomaly
detection's reference firmware reads float32 values and quantizes them itself, so it gets q's
dequantized values as float32, which its QuantizeFloatToInt8 turns back into exactly q.

This module knows no board: the Device over it (edgeattack.device.mlperf) brings the model's shapes.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import serial

from edgeattack.errors import DeviceError
from edgeattack.link.client import ClientStats, InferResult
from edgeattack.link.transport import close_port, port_name, read_some, write_all

log = logging.getLogger(__name__)
_DISCONNECT = (serial.SerialException, OSError, EOFError)

TERMINATOR = "%"
CHUNK_BYTES = 31          # payload bytes per `db <hex>%` command (62 digits: fits an 80-char line)
READY = "m-ready"
TICK_HZ = 1_000_000       # m-lap-us-N: microseconds
# Model names `profile%` reports (m-model-[NAME]) and the input byte convention of MLCommons'
# reference submissions for each (their submitter_implemented.cpp th_load_tensor; checked against
# mlcommons/tiny's benchmark/reference_submissions): the offset added to the int8 tensor value q to
# make the byte sent, or float32 input (ad01 loads 640 floats and quantizes them on the device).
MODELS = {
    "ic01": {"task": "image classification", "input_offset": 128, "scores": "classes"},
    "vww01": {"task": "visual wake words", "input_offset": 128, "scores": "classes"},
    "kws01": {"task": "keyword spotting", "input_offset": 0, "scores": "classes"},
    "ad01": {"task": "anomaly detection", "input_offset": 0, "scores": "one", "input": "float32"},
}
STREAMING = ("sww01",)  # streaming wake word: audio streamed in, not a query protocol
CUSTOM_MODEL = "ea-custom"  # the name edgeattack's own firmware reports for a non-benchmark model
# (input shape without batch, outputs) -> benchmark name: how a .tflite is recognised as one of them
SHAPES = {((32, 32, 3), 10): "ic01", ((96, 96, 3), 2): "vww01", ((49, 10, 1), 12): "kws01",
          ((640,), 640): "ad01"}
MAX_ATTEMPTS = 8  # whole-step retries (load, or inference) before giving up

_NAME = re.compile(r"m-name-(.*)")
_SHA = re.compile(r"sha256[=:\s-]*([0-9a-f]{64})", re.I)
_MODEL = re.compile(r"m-model-\[([^\]]*)\]")
_EXPECTING = re.compile(r"m-\[Expecting (\d+) bytes\]")
_TOO_BIG = re.compile(r"Supplied buffer size (\d+) exceeds maximum of (\d+)")  # the reference's form
_TOO_BIG_E = re.compile(r"e-\[db buffer holds (\d+) bytes, (\d+) requested\]")  # edgeattack firmware's
_DB_SIZE = re.compile(r"Input db has (\d+) element\w*, expected (\d+)")
_BUFFER = re.compile(r"m-buffer-((?:[0-9a-fA-F]{2}-)*[0-9a-fA-F]{2})")
_WARMUP = re.compile(r"m-warmup-start-(\d+)")
_INFER = re.compile(r"m-infer-start-(\d+)")
_LAP = re.compile(r"m-lap-us-(\d+)")
_RESULTS = re.compile(r"m-results-\[([^\]]*)\]")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^[-+]?(nan|inf)$", re.I)


def model_name_for(sample_shape, outputs: int) -> str:
    """The MLPerf Tiny benchmark a model's shapes match (ic01, vww01, kws01, ad01), else CUSTOM_MODEL."""
    return SHAPES.get((tuple(int(d) for d in sample_shape), int(outputs)), CUSTOM_MODEL)


def input_offset_for(model: str) -> int:
    """The reference byte convention for a model name (0 for names the references do not define)."""
    return int(MODELS.get(model, {}).get("input_offset", 0))


def name_sha256(text: str) -> str | None:
    """The model SHA-256 in a complete `m-name-...` reply line (edgeattack's MLPerf-mode firmware
    reports one), else None."""
    for line in text.split("\n"):
        if line.startswith("m-name-") and line.endswith("\r"):
            m = _SHA.search(line)
            if m:
                return m.group(1).lower()
    return None


def dut_settings(sample_shape, outputs: int, overrides: dict | None = None) -> tuple[str, int]:
    """(model name profile% reports, input byte offset) for a model: recognised from its shapes,
    with a board profile's `mlperf: {model, input_offset}` overriding either. The host expects these
    and edgeattack's MLPerf-mode firmware is built with them."""
    overrides = overrides or {}
    name = overrides.get("model") or model_name_for(sample_shape, outputs)
    offset = overrides.get("input_offset")
    return name, int(offset) if offset is not None else input_offset_for(name)


def encode_input(q: np.ndarray, offset: int) -> bytes:
    """The bytes that make the device's int8 tensor equal q: (q + offset) mod 256."""
    q = np.asarray(q).reshape(-1)
    return ((q.astype(np.int16) + int(offset)) & 0xFF).astype(np.uint8).tobytes()


def encode_float_input(q: np.ndarray, scale: float, zero_point: int) -> bytes:
    """The bytes for a device that loads float32 and quantizes it (ad01's reference): q's
    dequantized values, little-endian float32. round(((q - zp) * s) / s) + zp is q again in
    float32 arithmetic for every int8 q (test_mlperf_client checks all 256 at several scales)."""
    q = np.asarray(q).reshape(-1).astype(np.float32)
    x = (q - np.float32(zero_point)) * np.float32(scale)
    return x.astype("<f4").tobytes()


def takes_float_input(model: str) -> bool:
    """Whether the benchmark's reference firmware loads float32 values rather than int8 bytes."""
    return MODELS.get(model, {}).get("input") == "float32"


def format_score(value: float) -> str:
    """How the reference firmware prints a score: C's %0.3f of the float32 value (Python's % uses the
    same correctly rounded conversion, ties to even on the exact binary value)."""
    return "%0.3f" % float(np.float32(value))


def parse_scores(text: str) -> np.ndarray | None:
    """The numbers inside m-results-[...] as printed (%0.3f, or digit by digit): float32, or None
    when any item is not a number."""
    items = [s.strip() for s in text.split(",")]
    if not items or any(not _NUMBER.match(s) for s in items):
        return None
    return np.array([float(s) for s in items], dtype=np.float32)


@dataclass(frozen=True)
class DutExpectation:
    """What the host knows about the device's model (from the .tflite it runs): `model` the name
    profile% must report (None: accept any), input_bytes, outputs (scores per result line), and
    input_offset (the byte convention)."""

    model: str | None
    input_bytes: int
    outputs: int
    input_offset: int = 0
    sha256: str | None = None  # checked when name% reports one
    # (scale, zero_point) of the int8 input when the device loads float32 (ad01), else None
    input_float: tuple | None = None


class Garbled(Exception):
    """A reply that does not have its command's shape (a damaged byte, a stale line): redo the step."""


class MlperfClient:
    """Host end of one MLPerf Tiny DUT link. Same surface as link.client.Client where it applies:
    connect(), info(), infer(x, repeat), infer_many(xs, ...), stats, slots (always 1), close().

    timeout: seconds an inference may keep the line silent; other commands' replies may pause
    `command_timeout` seconds between bytes (a missing m-ready is then a damaged exchange). total_timeout: seconds without any
    byte from the device before DeviceError. inferences: inferences the device reported running
    (warm-ups included) in every reply seen, the protocol having no counter of its own.
    """

    version = "mlperf"
    slots = 1

    def __init__(self, port_factory: Callable[[], object], expect: DutExpectation, *,
                 timeout: float = 5.0, total_timeout: float = 30.0, command_timeout: float = 0.5,
                 max_attempts: int = MAX_ATTEMPTS):
        if timeout <= 0 or total_timeout <= 0 or command_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self.port_factory = port_factory
        self.expect = expect
        self.timeout = float(timeout)
        self.total_timeout = float(total_timeout)
        self.command_timeout = float(command_timeout)
        self.max_attempts = int(max_attempts)
        self.port = None
        self.port_name = getattr(port_factory, "url", None) or "the device port"
        self.stats = ClientStats()
        self.inferences = 0
        self.loads_verified = 0
        self.load_mismatches = 0
        self.resyncs = 0
        self.transcript: list[tuple[str, str]] | None = None  # ("tx"|"rx", text) when recording
        self._rx = ""
        self._info: dict = {}
        self._byte_s = 0.0

    # connection -----------------------------------------------------------------------------------

    def __enter__(self) -> "MlperfClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            try:
                close_port(port)
            except Exception:  # noqa: BLE001 - closing a dead port must not mask the real error
                pass

    def _open(self) -> None:
        port = self.port_factory()
        self.port = port
        self.port_name = port_name(port)
        self._byte_s = float(getattr(port, "byte_s", 0.0) or 0.0)
        if hasattr(port, "timeout"):
            port.timeout = 0.02
        self._rx = ""

    def connect(self) -> dict:
        """Open the port and identify the device: name% (its SHA-256 when it reports one) and
        profile% (the model name). Raises DeviceError when it runs another model or a streaming one."""
        self.close()
        try:
            self._open()
        except _DISCONNECT as exc:
            self.close()
            raise DeviceError(f"cannot use {self.port_name}: {exc}") from None
        self._resync()
        name_lines = self._step(lambda: self._checked("name", lambda ls: _find(_NAME, ls)))
        profile_lines = self._step(lambda: self._checked("profile", lambda ls: _find(_MODEL, ls)))
        name = _find(_NAME, name_lines).group(1).strip()
        model = _find(_MODEL, profile_lines).group(1).strip()
        sha = _SHA.search(name)
        info = {"protocol": "mlperf", "device_name": name, "mlperf_model": model,
                "model_sha256": sha.group(1).lower() if sha else None,
                "profile": next((ln for ln in profile_lines if ln.startswith("m-profile-")), None)}
        if model in STREAMING:
            raise DeviceError(f"device at {self.port_name} runs the streaming benchmark {model}: "
                              f"its audio is streamed, not queried; edgeattack drives ic01, vww01, "
                              f"kws01 and ad01 firmware")
        want = self.expect.model
        if want is not None and model != want:
            raise DeviceError(f"device at {self.port_name} answers profile% with model {model!r}, "
                              f"but the model given is {want!r} (flash the firmware for this model, "
                              f"or set mlperf.model in the board profile)")
        if info["model_sha256"] and self.expect.sha256 and info["model_sha256"] != self.expect.sha256:
            raise DeviceError(f"device at {self.port_name} reports model sha256 {info['model_sha256']} "
                              f"in name%, but the model given has sha256 {self.expect.sha256} "
                              f"(deploy this model, or give the model the device runs)")
        self._info = info
        return dict(info)

    def info(self) -> dict:
        """What connect() learnt, with the host's count of inferences the device reported."""
        if self.port is None:
            self.connect()
        return {**self._info, "inferences": self.inferences}

    # queries --------------------------------------------------------------------------------------

    def infer(self, x: np.ndarray, repeat: int = 1) -> InferResult:
        """One query: load x (verified), `infer repeat 0`, scores read twice and agreeing."""
        if self.port is None:
            self.connect()
        if self.expect.input_float is not None:
            data = encode_float_input(x, *self.expect.input_float)
        else:
            data = encode_input(x, self.expect.input_offset)
        if len(data) != self.expect.input_bytes:
            raise DeviceError(f"input of {len(data)} bytes, the model takes {self.expect.input_bytes}")
        start = time.monotonic()
        retries_before = self.stats.retries
        self.stats.queries += 1
        self.stats.payload_bytes_sent += len(data)
        last = ""
        for _attempt in range(self.max_attempts):
            self._step(lambda: self._load(data))
            try:
                ticks, scores = self._infer(int(repeat))
            except Garbled as exc:
                last = str(exc)
                self._retry(f"inference: {exc}")
                continue
            self.stats.payload_bytes_received += 4 * scores.size
            return InferResult(output_raw=scores, ticks=ticks, inferences=self.inferences,
                               retries=self.stats.retries - retries_before,
                               rtt_s=time.monotonic() - start)
        raise DeviceError(f"device at {self.port_name}: no consistent inference reply after "
                          f"{self.max_attempts} attempts, the last: {last}")

    def infer_many(self, xs: Iterable[np.ndarray], inflight: int | None = None, on_result=None,
                   repeat: int = 1, slots=None) -> Iterator[InferResult]:
        """One query after the other (the DUT protocol has no pipelining, slots or patches)."""
        for i, x in enumerate(xs):
            r = self.infer(x, repeat=repeat)
            if on_result is not None:
                on_result(i, r)
            yield r

    # steps ----------------------------------------------------------------------------------------

    def _step(self, fn):
        """Run fn (a whole step) until its replies hold together; resynchronize between tries."""
        last = ""
        for _attempt in range(self.max_attempts):
            try:
                return fn()
            except Garbled as exc:
                last = str(exc)
                self._retry(last)
        raise DeviceError(f"device at {self.port_name}: no consistent reply after {self.max_attempts} "
                          f"attempts, the last: {last} (a link damaging too many bytes, or not MLPerf "
                          f"Tiny firmware)")

    def _retry(self, why: str) -> None:
        self.stats.retries += 1
        log.debug("mlperf link %s: redo (%s)", self.port_name, why)
        self._resync()

    def _checked(self, command: str, ok) -> list[str]:
        lines = self._command(command)
        _raise_errors(lines, command)
        if not ok(lines):
            raise Garbled(f"{command}%: unexpected reply {lines!r}")
        return lines

    def _load(self, data: bytes) -> None:
        n = len(data)
        lines = self._command(f"db load {n}")
        big = _find(_TOO_BIG, lines)
        size = (int(big.group(1)), int(big.group(2))) if big else None
        big = _find(_TOO_BIG_E, lines)
        size = (int(big.group(2)), int(big.group(1))) if big else size
        if size and size[0] == n:
            raise DeviceError(f"device at {self.port_name}: its db buffer holds {size[1]} bytes, "
                              f"the model's input needs {n} (build the firmware with a larger "
                              f"MAX_DB_INPUT_SIZE, or use a smaller model)")
        _raise_errors(lines, "db load")
        got = _find(_EXPECTING, lines)
        if not got or int(got.group(1)) != n:
            raise Garbled(f"db load {n}%: {lines!r}")
        for k in range(0, n, CHUNK_BYTES):
            chunk = data[k:k + CHUNK_BYTES]
            lines = self._command("db " + chunk.hex())
            _raise_errors(lines, "db")
            last = k + len(chunk) >= n
            if ("m-load-done" in lines) != last or any(ln != "m-load-done" for ln in lines):
                raise Garbled(f"db chunk at {k}: {lines!r}")
        # The readback's own text can be damaged too: a second one tells a damaged reply from a
        # damaged buffer. Only a readback equal to the bytes sent is accepted.
        for _ in range(2):
            try:
                if self._readback(n) == data:
                    self.loads_verified += 1
                    return
            except Garbled:
                pass
        self.load_mismatches += 1
        raise Garbled("db print readback differs from the bytes sent")

    def _readback(self, n: int) -> bytes:
        lines = self._command("db print")
        _raise_errors(lines, "db print")
        out = bytearray()
        for ln in lines:
            if not ln:
                continue  # the reference prints an empty line after a length that is a multiple of 8
            m = _BUFFER.fullmatch(ln)
            if m is None:
                raise Garbled(f"db print line {ln!r}")
            out += bytes.fromhex(m.group(1).replace("-", ""))
        return bytes(out)

    def _infer(self, repeat: int) -> tuple[int, np.ndarray]:
        lines = self._command(f"infer {repeat} 0", timeout=self.timeout * max(1, repeat))
        self._count(lines)
        size = _find(_DB_SIZE, lines)
        if size:
            if int(size.group(1)) == self.expect.input_bytes:
                raise DeviceError(f"device at {self.port_name} expects {size.group(2)} input bytes, "
                                  f"the model given takes {size.group(1)} (the device runs another "
                                  f"model: flash the firmware for this one)")
            raise Garbled(f"db size complaint {size.group(0)!r}")
        _raise_errors(lines, "infer")
        strange = [ln for ln in lines if ln and not ln.startswith("m-")]
        if strange:
            # a message without e- (what the reference prints before inferring on stale data)
            raise Garbled(f"infer: device said {strange[0]!r}")
        w, n = _find(_WARMUP, lines), _find(_INFER, lines)
        if not w or not n or int(w.group(1)) != 0 or int(n.group(1)) != repeat \
                or "m-infer-done" not in lines:
            raise Garbled(f"infer {repeat} 0%: {lines!r}")
        laps = [int(m.group(1)) for m in (_LAP.fullmatch(ln) for ln in lines) if m]
        if len(laps) != 2:
            raise Garbled(f"infer: {len(laps)} timestamps")
        ticks = (laps[1] - laps[0]) % (1 << 32)
        first = self._scores(lines)
        # Read the scores again: two readings must agree (a damaged digit is still a digit).
        for _ in range(3):
            again = self._scores(self._command("results"))
            if first is not None and again is not None and np.array_equal(first, again):
                return ticks, first
            first = again
        raise Garbled("results% readings disagree")

    def _scores(self, lines: list[str]) -> np.ndarray | None:
        _raise_errors(lines, "results")
        found = [m for m in (_RESULTS.fullmatch(ln) for ln in lines) if m]
        if len(found) != 1:
            return None
        scores = parse_scores(found[0].group(1))
        if scores is None or scores.size != self.expect.outputs:
            return None
        return scores

    def _count(self, lines: list[str]) -> None:
        for ln in lines:
            for pattern in (_WARMUP, _INFER):
                m = pattern.fullmatch(ln)
                if m:
                    self.inferences += int(m.group(1))

    # the line -------------------------------------------------------------------------------------

    def _resync(self) -> None:
        """Bring the device's command buffer back to empty: whatever half command it holds becomes
        part of a `name%` (answered with an error or a name, then m-ready); then drain."""
        self.resyncs += 1
        for _ in range(3):
            self._drain()
            try:
                self._command("name", record=False)
                self._drain(0.02)
                return
            except Garbled:
                continue

    def _drain(self, quiet: float = 0.0) -> None:
        """Discard what has arrived (and whatever arrives within `quiet` seconds), without waiting
        for a read timeout when nothing is there."""
        self._rx = ""
        deadline = time.monotonic() + quiet
        while True:
            try:
                waiting = self.port.in_waiting
            except (AttributeError, *_DISCONNECT):
                waiting = 1  # no cheap test: read (waits up to the port's poll interval)
            if waiting:
                self._read()
            elif time.monotonic() >= deadline:
                return
            else:
                time.sleep(0.002)

    def _read(self) -> bytes:
        try:
            data = read_some(self.port)
        except _DISCONNECT as exc:
            raise DeviceError(f"device at {self.port_name} disconnected: {exc}") from None
        self.stats.wire_bytes_received += len(data)
        return data

    def _command(self, command: str, *, timeout: float | None = None, record: bool = True) -> list[str]:
        """Send `command%` and return the reply's lines up to (not including) m-ready.

        Raises Garbled when no m-ready comes within the timeout or the line ending in m-ready
        carries other text (two replies run together)."""
        if self.port is None:
            raise DeviceError(f"device at {self.port_name}: not connected")
        self._drain()
        wire = (command + TERMINATOR).encode("ascii")
        try:
            write_all(self.port, wire)
        except _DISCONNECT as exc:
            raise DeviceError(f"device at {self.port_name} disconnected: {exc}") from None
        self.stats.wire_bytes_sent += len(wire)
        self.stats.requests += 1
        if record and self.transcript is not None:
            self.transcript.append(("tx", wire.decode("ascii")))
        # A reply may be long (db print at 115200 baud) and an inference silent for a while: give up
        # when nothing has arrived for `wait` seconds, not at a fixed time after the command.
        wait = (timeout or self.command_timeout) + len(wire) * self._byte_s
        last_byte = time.monotonic()
        deadline = last_byte + wait
        text = ""
        while True:
            data = self._read()
            now = time.monotonic()
            if data:
                last_byte = now
                deadline = now + wait
                text += data.decode("latin-1")
                end = _ready_end(text, final=now > deadline)
                if end is not None:
                    body, tail = text[:end[0]], end[1]
                    if record and self.transcript is not None:
                        self.transcript.append(("rx", text[:end[2]]))
                    self._rx = text[end[2]:]
                    lines = [ln.strip("\r") for ln in body.split("\n")]
                    if lines and lines[-1] == "":
                        lines.pop()
                    if tail:
                        raise Garbled(f"{command}%: m-ready ran into {tail!r}")
                    return lines
            elif now - last_byte > self.total_timeout:
                raise DeviceError(f"no answer from {self.port_name} for {self.total_timeout:g} s "
                                  f"(is MLPerf Tiny firmware running there at the right baud rate?)")
            if now > deadline:
                end = _ready_end(text, final=True)
                if end is not None:
                    self._rx = ""
                    raise Garbled(f"{command}%: m-ready without its line end")
                raise Garbled(f"{command}%: no m-ready ({wait:.2f} s without a byte)")


def _ready_end(text: str, final: bool = False):
    """Where a reply ends, once its m-ready line is complete: (start of the m-ready line, text run
    into that line before m-ready, end of the line), else None. A damaged CR or LF after m-ready
    still ends the reply (the stray byte is drained before the next command); `final` accepts an
    m-ready with nothing after it yet (the deadline passed)."""
    i = text.find(READY)
    if i < 0:
        return None
    start = text.rfind("\n", 0, i) + 1
    after = i + len(READY)
    rest = text[after:after + 2]
    if rest == "\r\n":
        stop = after + 2
    elif rest[:1] == "\n" or (rest[:1] == "\r" and len(rest) == 2):
        stop = after + 1
    elif rest == "\r" or (rest == "" and not final):
        return None  # the line end is on its way
    else:
        stop = after
    return start, text[start:i], stop


def _find(pattern: re.Pattern, lines: list[str]):
    for ln in lines:
        m = pattern.search(ln)
        if m:
            return m
    return None


def _raise_errors(lines: list[str], command: str) -> None:
    """`e-[...]` lines: the device refused what it received. The bytes may have been damaged on the
    way, so it is redone (Garbled); the error text goes into the retry log."""
    for ln in lines:
        if ln.startswith("e-"):
            raise Garbled(f"{command}%: device error {ln!r}")
