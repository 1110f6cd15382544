"""The Python API to a device: `open_device(board, model, port=None)` yields a `Device`.

    with open_device("emu-tflm", "model.tflite") as dev:
        r = dev.infer(x_float)          # one query: quantized with the device's INFO scale/zero-point
        r.pred, r.output, r.device_time_s, dev.queries, dev.wire_bytes

For boards the host runs (emulator, qemu) without a port, open_device builds what the board needs,
starts it and stops it on exit (also on errors and signals that raise); its driver
(edgeattack.device.board) says how. With a port (or for boards on their own hardware, the profile's
default port) it connects to a device already running. The device must run the model given: its
INFO model_sha256 is compared with the SHA-256 of the model file's exact bytes.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..energy import Estimate, profile_estimate
from ..errors import DeviceError, UsageError
from ..fileid import sha256_file
from ..profiles import BoardProfile, get_profile
from ..quant import dequantize, quantize_input
from .board import Board, board_for, check_seconds

log = logging.getLogger(__name__)


@dataclass
class Result:
    """One inference. `output_raw` is the device's flat output (its dtype); `output` dequantized
    float32; `device_ticks` the device's ticks of the whole repeat window; `device_time_s` the time
    of ONE inference (window / repeat), estimated from instructions on QEMU boards."""

    pred: int
    output_raw: np.ndarray
    output: np.ndarray
    device_ticks: int
    device_time_s: float
    device_instructions: int | None
    time_estimated: bool
    time_source: str  # "device" ticks, "host-wall" (emulated boards), "qemu-instructions"
    energy_j: float | None
    energy_source: str | None
    rtt_s: float
    retries: int
    inferences: int  # the device's inference counter after this query


class Device:
    """A connected device: wraps a link.client.Client with the board's profile and INFO.

    Device(client, profile, info=None, faults=None, driver=None): `info` is the INFO already
    received (else it is asked); `driver` the profile's Board (made from the profile when None).
    info() -> dict (fresh INFO); prepare(x) -> input tensor; infer(x, repeat=1) -> Result;
    infer_many(xs, inflight=None, repeat=1) -> iterator of Result, in order.
    Counters (host side): queries, wire_bytes, retries, reconnects, reboots, inferences_unobserved,
    inferences_total (the device's counter summed over its boots). time_source and time_estimated
    say how device_time_s is obtained on this board (CONVENTIONS "Measurement units").
    `estimate`: the energy.Estimate from the profile's cited constants that gives each Result its
    energy_j (labelled "estimated"), or None; a session sets it by --energy (a measured run sets
    None and fills energy from its meter's windows instead).
    """

    def __init__(self, client, profile: BoardProfile, info: dict | None = None, faults=None,
                 driver: Board | None = None):
        self.client = client
        self.profile = profile
        self.driver = driver if driver is not None else board_for(profile)
        self.faults = faults  # the LinkFaults injector on this link, if any
        self._info = dict(info) if info is not None else client.info()
        self._configure(self._info)
        self.estimate: Estimate | None = profile_estimate(profile)

    def _configure(self, info: dict) -> None:
        inp, out = info.get("input") or {}, info.get("output") or {}
        try:
            self.input_shape = tuple(int(d) for d in inp["shape"])
            self.input_dtype = np.dtype(inp["dtype"])
            self.output_shape = tuple(int(d) for d in out["shape"])
            self.output_dtype = np.dtype(out["dtype"])
        except (KeyError, TypeError, ValueError):
            raise DeviceError(f"board {self.profile.name}: INFO does not describe the model's input and "
                              f"output ({info.get('error') or 'fields missing'})") from None
        self.input_scale, self.input_zero_point = inp.get("scale"), inp.get("zero_point")
        self.output_scale, self.output_zero_point = out.get("scale"), out.get("zero_point")
        # An 8-bit output takes 256 values: dequantize them once (with the shared dequantize)
        # and look results up, instead of four NumPy operations per result.
        self._dequant_table = None
        if self.output_scale is not None and self.output_dtype in (np.int8, np.uint8):
            codes = np.arange(256, dtype=np.uint8).view(self.output_dtype)
            self._dequant_table = dequantize(codes, self.output_scale, self.output_zero_point)
        tick_hz = info.get("tick_hz") or self.profile.tick_hz
        self.tick_hz = float(tick_hz)

    # identity -------------------------------------------------------------------------------------

    @property
    def board(self) -> str:
        return self.profile.name

    @property
    def model_sha256(self) -> str | None:
        return self._info.get("model_sha256")

    @property
    def url(self) -> str:
        return self.client.port_name

    @property
    def time_source(self) -> str:
        """"device" ticks, "host-wall" (emulated boards) or "qemu-instructions"."""
        return self.driver.time_source

    @property
    def time_estimated(self) -> bool:
        """True when device_time_s is derived from an instruction count (QEMU boards)."""
        return self.driver.time_estimated

    def info(self) -> dict:
        """Fresh INFO (counters, window log)."""
        with _faults_paused(self.faults):
            self._info = self.client.info()
        return dict(self._info)

    @property
    def last_info(self) -> dict:
        return dict(self._info)

    # counters -------------------------------------------------------------------------------------

    @property
    def queries(self) -> int:
        return self.client.stats.queries

    @property
    def wire_bytes(self) -> int:
        s = self.client.stats
        return s.wire_bytes_sent + s.wire_bytes_received

    @property
    def retries(self) -> int:
        return self.client.stats.retries

    @property
    def reconnects(self) -> int:
        return self.client.stats.reconnects

    @property
    def reboots(self) -> int:
        """Device restarts the link noticed and recovered from (docs/protocol.md, "Reboots")."""
        return int(getattr(self.client.stats, "reboots", 0))

    @property
    def inferences_unobserved(self) -> int:
        """Inferences that may have run on a device that restarted before answering them."""
        return int(getattr(self.client.stats, "inferences_unobserved", 0))

    @property
    def inferences_total(self) -> int | None:
        """The device's inferences as the host saw them: the sum over its boots of the highest
        counter seen in each (None when the link does not track boots)."""
        total = getattr(self.client, "inferences_total", None)
        return None if total is None else int(total)

    # inputs ---------------------------------------------------------------------------------------

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample's shape: the input shape without its batch axis of 1."""
        s = self.input_shape
        return s[1:] if len(s) > 1 and s[0] == 1 else s

    def check_shape(self, sample_shape, what: str = "input") -> None:
        sample_shape = tuple(sample_shape)
        if sample_shape not in (self.sample_shape, self.input_shape):
            raise UsageError(f"{what}: sample shape {sample_shape} does not fit the model's input "
                             f"{self.input_shape} (give inputs made for this model)")

    def prepare(self, x, what: str = "input") -> np.ndarray:
        """One sample or a batch of samples -> the input tensor(s) the device takes.

        Float data is quantized with the shared quantizer and INFO's scale and zero-point when the
        model's input is an integer type; integer data of the input's own dtype is sent as it is.
        """
        x = np.asarray(x)
        ns = len(self.sample_shape)
        if x.shape == self.input_shape:
            batch = ()
        elif ns and x.ndim >= ns and x.shape[x.ndim - ns:] == self.sample_shape:
            batch = x.shape[:x.ndim - ns]
        else:
            self.check_shape(x.shape, what)
            batch = ()
        if np.issubdtype(self.input_dtype, np.integer):
            if np.issubdtype(x.dtype, np.floating):
                if self.input_scale is None:
                    raise DeviceError(f"board {self.board}: the model's {self.input_dtype} input has "
                                      f"no quantization scale; give {self.input_dtype} inputs")
                x = quantize_input(x, self.input_scale, self.input_zero_point, dtype=self.input_dtype)
            elif x.dtype != self.input_dtype:
                raise UsageError(f"{what}: inputs are {x.dtype}, the model's input is "
                                 f"{self.input_dtype} (give float inputs, or {self.input_dtype})")
        else:
            if not np.issubdtype(x.dtype, np.floating):
                raise UsageError(f"{what}: inputs are {x.dtype}, the model's input is "
                                 f"{self.input_dtype} (give float inputs)")
            x = x.astype(self.input_dtype)
        return x.reshape(batch + self.input_shape) if batch else x.reshape(self.input_shape)

    # inference ------------------------------------------------------------------------------------

    def _result(self, r, repeat: int) -> Result:
        raw = np.asarray(r.output_raw).reshape(-1)
        table = self._dequant_table
        if table is not None and raw.dtype == self.output_dtype:
            out = table[raw.view(np.uint8)]  # == dequantize(raw, scale, zero_point)
        elif self.output_scale is not None and raw.dtype.kind in "iu":  # integer output
            out = dequantize(raw, self.output_scale, self.output_zero_point)
        else:
            out = raw.astype(np.float32)
        ticks = int(r.ticks)
        device_time, instructions = self.driver.device_time(ticks, self.tick_hz, repeat)
        estimate = self.estimate
        energy = estimate.energy_j(device_time) if estimate is not None else None
        return Result(pred=int(out.argmax()) if out.size else -1, output_raw=raw, output=out,
                      device_ticks=ticks, device_time_s=device_time,
                      device_instructions=instructions, time_estimated=self.driver.time_estimated,
                      time_source=self.driver.time_source, energy_j=energy,
                      energy_source=estimate.energy_source if estimate is not None else None,
                      rtt_s=float(r.rtt_s), retries=int(r.retries), inferences=int(r.inferences))

    def infer(self, x, repeat: int = 1) -> Result:
        """One query: send one sample, run it `repeat` times, return the answer."""
        r = self.client.infer(self.prepare(x), repeat=repeat)
        return self._result(r, repeat)

    @property
    def slots(self) -> int:
        """Input slots the link uses (protocol v2; 1 on a v1 device)."""
        return int(getattr(self.client, "slots", 1))

    def infer_many(self, xs: Iterable, inflight: int | None = None, repeat: int = 1,
                   prepared: bool = False, slots: Iterable[int] | None = None) -> Iterator[Result]:
        """Pipelined queries; results in input order. `xs` yields samples; prepared=True means
        they already are input tensors from prepare() (skips the per-sample checks). `slots`
        pins each query to an input slot (protocol v2: a query goes as a patch of that slot's
        previous input when smaller)."""
        tensors = xs if prepared else (self.prepare(x) for x in xs)
        for r in self.client.infer_many(tensors, inflight=inflight, repeat=repeat, slots=slots):
            yield self._result(r, repeat)

    def close(self) -> None:
        self.client.close()


# fault injection ----------------------------------------------------------------------------------

def _link_faults(spec):
    """A fault injector (link.faults) whose faults can be paused around INFO exchanges.

    Why paused: INFO's reply is JSON of 0.5-1 KB, and a frame survives a link that damages a fraction
    p of bytes with probability (1-p)^size: at the fault tests' 1.5% that is about 1e-4, so INFO
    (sent at connect and at a session's start and end) would never get through. Faults stay on for
    every LOAD and INFER, their replies, retransmissions and reconnects: the traffic under test.
    """
    from ..link.faults import FaultInjector, FaultSpec, parse_fault_spec

    class LinkFaults(FaultInjector):
        paused = False

        def mangle(self, data: bytes) -> bytes:
            return data if self.paused else super().mangle(data)

        def cut_point(self, data: bytes):
            return None if self.paused else super().cut_point(data)

    if isinstance(spec, FaultInjector):
        spec = spec.spec
    return LinkFaults(spec if isinstance(spec, FaultSpec) else parse_fault_spec(spec))


@contextlib.contextmanager
def _faults_paused(injector):
    if injector is None:
        yield
        return
    injector.paused = True
    try:
        yield
    finally:
        injector.paused = False


# opening ------------------------------------------------------------------------------------------

def check_port_url(url: str) -> None:
    """A port URL is a device path or `scheme://...` with a scheme pyserial handles (its own, or
    edgeattack.link's tcp:// and ssh://); anything else is a UsageError before any board starts
    (pyserial would only fail at the first open)."""
    if not isinstance(url, str) or not url.strip():
        raise UsageError(f"--port {url!r}: give a device path (/dev/ttyACM0) or a URL (socket://HOST:PORT)")
    if "://" not in url:
        return
    scheme = url.split("://", 1)[0].lower()
    import serial

    from ..link import transport  # noqa: F401 - registers edgeattack's URL handlers with pyserial

    for package in serial.protocol_handler_packages:
        try:
            importlib.import_module(f"{package}.protocol_{scheme}")
            return
        except ImportError:
            continue
    raise UsageError(f"--port {url}: unknown URL scheme '{scheme}://' (use a device path such as "
                     f"/dev/ttyACM0, or socket://, rfc2217://, ssh:// or tcp://)")


def _aligned_sha256(model_path: Path) -> str | None:
    """SHA-256 of the model once 16-byte aligned: what firmware built from it runs (CONVENTIONS:
    Model identity). None when it cannot be aligned (then only the file's own hash can match)."""
    try:
        from ..tflite.align import align_16

        return hashlib.sha256(align_16(model_path.read_bytes(), name=str(model_path))).hexdigest()
    except Exception as exc:  # noqa: BLE001 - a model that cannot be aligned simply does not match
        log.debug("cannot align %s: %s", model_path, exc)
        return None


@contextlib.contextmanager
def open_device(board, model=None, port: str | None = None, *, faults=None,
                timeout: float | None = None, total_timeout: float | None = None,
                startup_timeout: float = 60.0, max_inflight: int | None = None,
                check_model: bool = True, pace_baudrate: int | None = None,
                link_protocol: int = 2, kernels: str | None = None,
                protocol: str | None = None) -> Iterator[Device]:
    """Connect to (or start) a board running `model`; yield a Device; clean up on exit.

    board: a profile name or path (or a BoardProfile). model: the .tflite file the device runs (its
    SHA-256, or that of its 16-byte-aligned form which firmware builds embed, must match the
    device's; None skips the check when connecting to a port).
    port: a URL to connect to instead of starting a board. faults: a fault spec string (or a
    link.faults FaultSpec / FaultInjector's spec) applied to the host side of the link, both
    directions by default, paused only for INFO exchanges (see _link_faults); `Device.faults`
    is the injector (its `counts`).
    pace_baudrate: pace the link like a UART at that rate, 8N1, both directions (emulator and
    qemu boards; default: the profile's `pace_baudrate`, absent = unpaced).
    kernels: boards this host builds firmware for (qemu): the kernel set (auto, ref, dsp, mve; None =
    auto), checked against the board's core before anything starts.
    link_protocol: the newest wire protocol to use (2: slots and patches when the device offers
    them; 1: full loads only, the reference the benchmarks compare against).
    protocol: "edgeattack" or "mlperf" (MLPerf Tiny's DUT protocol, edgeattack.device.mlperf);
    default: the profile's `protocol`.
    """
    from ..link.client import Client
    from ..link.transport import open_port

    profile = get_profile(board)
    protocol = protocol or profile.protocol
    if protocol not in ("edgeattack", "mlperf"):
        raise UsageError(f"--protocol {protocol}: choose edgeattack or mlperf")
    # bad arguments are usage errors before any board starts
    check_seconds(timeout, "timeout")
    check_seconds(total_timeout, "total timeout")
    check_seconds(startup_timeout, "startup timeout")
    if port is not None:
        check_port_url(port)
    model_path = Path(model) if model is not None else None
    if model_path is not None and not model_path.is_file():
        raise UsageError(f"model {model_path} does not exist (give the .tflite file the device runs)")
    from ..link.pace import PacedPort, check_pace_baudrate

    check_pace_baudrate(pace_baudrate)
    pace = pace_baudrate if pace_baudrate is not None else profile.pace_baudrate
    driver = board_for(profile, model_path)
    if protocol == "mlperf":
        if port is None and driver.started_by_host and "mlperf" not in driver.protocols:
            raise UsageError(f"--protocol mlperf: board {profile.name} runs edgeattack's agent, which "
                             f"speaks only edgeattack's protocol; use a qemu board, or --port to a "
                             f"device running MLPerf Tiny firmware")
        driver.protocol = protocol  # a board built here runs the MLPerf-mode firmware
    if kernels is not None:
        if "kernels" not in driver.flash_options or not driver.started_by_host:
            raise UsageError(f"--kernels applies to boards this host builds and starts (qemu); {profile.name} "
                             f"is a {profile.kind} board (for a microcontroller, give it to flash)")
        from ..firmware.build import resolve_kernels

        resolve_kernels(profile, kernels)  # a core without the instructions: one line, nothing started
        driver.kernels = kernels
    if pace is not None and not driver.started_by_host:
        # only a board this host runs (emulated, QEMU) has a link faster than a real UART
        raise UsageError(f"--pace-baudrate applies to boards this host starts (emulated and QEMU); "
                         f"{profile.name} is a {profile.kind} board whose link already runs at its own speed")
    expected = sha256_file(model_path) if model_path is not None and check_model else None
    injector = _link_faults(faults) if faults else None
    timeout = timeout or driver.link_timeouts.timeout
    total_timeout = total_timeout or driver.link_timeouts.total_timeout

    with contextlib.ExitStack() as stack:
        url = port
        handle = None
        if url is None:
            if driver.started_by_host:
                if model_path is None:
                    raise UsageError(f"board {profile.name} is started by the host: give the model to run")
                driver.prepare()  # the firmware is built before anything runs
                stack.callback(driver.stop)
                handle = driver.start(startup_timeout)
            url = driver.url
            if not url:
                raise UsageError(f"board {profile.name} has no default port: give --port URL")
        baud = profile.baudrate or 115200

        def factory():
            p = open_port(url, baudrate=baud)
            if pace is not None:
                p = PacedPort(p, pace)
            return injector.wrap(p) if injector is not None else p

        factory.url = url  # the Client names the port by it in errors
        if protocol == "mlperf":
            from .mlperf import connect_mlperf

            with _faults_paused(injector):
                device = connect_mlperf(factory, profile, model_path, driver, timeout=timeout,
                                        total_timeout=total_timeout, expected_sha256=expected,
                                        aligned_sha256=_aligned_sha256(model_path) if expected else None,
                                        faults=injector)
            stack.callback(device.close)
        else:
            from ..firmware.messages import lookup

            client = Client(factory, timeout=timeout, total_timeout=total_timeout, max_inflight=max_inflight,
                            protocol=link_protocol, message_texts=lookup)
            stack.callback(client.close)
            with _faults_paused(injector):
                info = client.connect()
            if info.get("error"):
                raise DeviceError(f"board {profile.name} at {url} could not load its model: {info['error']}")
            got = info.get("model_sha256")
            if expected is not None and got != expected:
                aligned = _aligned_sha256(model_path)
                if got != aligned:
                    also = f" ({aligned} once 16-byte aligned)" if aligned not in (None, expected) else ""
                    raise DeviceError(f"board {profile.name} at {url} runs model sha256 {got}, but "
                                      f"{model_path} has sha256 {expected}{also} (deploy this model, or "
                                      f"give the model the device runs)")
            if info.get("board") and info["board"] != profile.name:
                log.warning("device at %s reports board %r, profile is %r", url, info["board"], profile.name)
            device = Device(client, profile, info, faults=injector, driver=driver)
        device.port_url = url
        device.pace_baudrate = pace
        device.model_file_sha256 = expected
        device.handle = handle  # the board started here (a Board), None for --port or own hardware
        try:
            yield device
        except DeviceError as exc:
            # "no answer" from a board we started that has died: say why it died instead
            why = driver.failure()
            if why:
                raise DeviceError(f"{why} (the link said: {exc})") from exc
            raise
