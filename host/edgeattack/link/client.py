"""The host side of the protocol: pipelined requests with go-back-N retransmission and reconnects.

    client = Client(lambda: open_port("socket://127.0.0.1:5555"), timeout=1.0, total_timeout=10.0)
    info = client.connect()
    result = client.infer(x_int8)                  # one input: LOAD chunk(s) + INFER
    for r in client.infer_many(xs, inflight=4):    # several inputs in flight, results in order
        ...
    client.close()

A Client is not thread-safe: one thread talks to one device.
"""
from __future__ import annotations

import collections
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import serial

from edgeattack.errors import DeviceError, UsageError
from edgeattack.link import coded
from edgeattack.link import messages as m
from edgeattack.link.coded import TextLookup
from edgeattack.link.frame import OVERHEAD, Frame, FrameDecoder, encode_wire, wire_size
from edgeattack.link.transport import close_port, port_name, read_some, write_all

log = logging.getLogger(__name__)
_DISCONNECT = (serial.SerialException, OSError, EOFError)
HOST_PROTOCOL = 2  # the newest protocol this host speaks (docs/protocol.md, "Version 2")
MIN_WINDOW = 2  # requests: a single-LOAD input and its INFER
# On a paced line (link.pace.PacedPort) the timeouts grow by the line time of the bytes in flight
# plus one reply of at most this many bytes (an INFO reply, or an output) beyond its output tensor.
PACED_REPLY_BYTES = 2048


@dataclass
class InferResult:
    """One input's answer. `output_raw` has the device's output dtype (shaped as INFO's output
    shape when the sizes agree); `ticks` the device ticks of the repeat window; `inferences` the
    device's counter after it; `retries` the go-back-N rounds while this input was in flight;
    `rtt_s` host time from the input's first byte sent to its INFER reply."""

    output_raw: np.ndarray
    ticks: int
    inferences: int
    retries: int
    rtt_s: float


@dataclass
class ClientStats:
    """Host-side counters. Wire bytes include retransmissions and flush bytes; payload bytes are the
    input tensor bytes sent (once per input) and output tensor bytes received."""

    queries: int = 0
    requests: int = 0
    wire_bytes_sent: int = 0
    wire_bytes_received: int = 0
    payload_bytes_sent: int = 0
    payload_bytes_received: int = 0
    retries: int = 0
    reconnects: int = 0
    stale_replies: int = 0
    reloads: int = 0  # PATCHes the device refused (STALE / NOT_LOADED) and sent again as full loads
    reboots: int = 0  # device restarts this host noticed (NOT_SYNCED, a new boot_id in INFO)
    # inferences that may have run on a device that restarted before answering them: model-running
    # requests of which the restarted device did not answer every copy sent (docs/protocol.md,
    # "Reboots"); each was sent again, so it also ran once observed
    inferences_unobserved: int = 0
    frames_dropped: dict = field(default_factory=dict)


@dataclass(eq=False)
class _Job:
    index: int
    requests: list  # of _Request, LOADs then the INFER (v2: SLOT_LOADs then SLOT_INFER, or a PATCH)
    slot: int = -1  # v2: the input slot this input goes to
    data: bytes = b""  # the input's wire bytes (v2: the slot's content once acknowledged)
    code: int = 0  # its dtype code
    repeat: int = 1
    first_sent: float | None = None
    retries: int = 0
    result: InferResult | None = None
    open_requests: int = 0


@dataclass(eq=False)
class _Request:
    type: int
    payload: bytes
    job: _Job | None = None
    seq: int = -1
    wire: bytes = b""
    sent_at: float = 0.0
    reply: Frame | None = None
    copies: int = 0  # times handed to the link (first send and every go-back-N resend)
    not_synced: int = 0  # of those, answered ERROR NOT_SYNCED by a restarted device


# Requests that can run the model (every PATCH a job sends carries its INFER).
_RUNS = (m.INFER, m.SLOT_INFER, m.PATCH)


class Client:
    """Host end of one device link.

    Client(port_factory, timeout=1.0, total_timeout=10.0, max_inflight=None)
      port_factory: callable returning an open port (link.transport.open_port(url) or anything with
        its API); called again to reconnect after a disconnect.
      timeout: seconds the oldest outstanding request may wait for its reply (counted from when it
        was sent or the previous reply arrived, whichever is later) before every outstanding
        request is sent again (go-back-N). Must exceed the device's time for one request.
      total_timeout: seconds without any reply before DeviceError("no answer from <port> ...").
      max_inflight: cap on requests in flight (default: the device's reply_cache).
      protocol: the newest protocol version to use (2, or 1 for full loads only). The host opens
        with a v1 INFO and switches to v2 only when the device lists 2 in INFO's `protocols`.
    connect() -> dict: (re)open the port, send INFO, return its JSON.
    info() -> dict: INFO again (fresh counters and window log).
    infer(x, repeat=1) -> InferResult
    infer_many(xs, inflight=None, on_result=None, repeat=1, slots=None) -> iterator of
      InferResult, in order; `slots` (v2) pins each input to an input slot (taken mod `slots`)
    slots: the device's input slots (1 on a v1 device). version: the protocol in use.
    reset() -> None: RESET the device (its counters go back to 0).
    A PATCH refused STALE or NOT_LOADED is sent again as a full load (stats.reloads).
    Reboots (docs/protocol.md, "Reboots"): a device that restarted answers ERROR NOT_SYNCED (or an
      INFO shows another boot_id); the client then assigns a fresh boot_id with INFO, checks that the
      model hash did not change (else DeviceError naming both), forgets its slots and sends every
      unanswered input again as a full load: callers see each result once. `inferences_total` is
      the sum over boots of the highest inference counter seen in each; stats.reboots and
      stats.inferences_unobserved count the restarts and the inferences that may have run unseen
      (model-running requests of which the restarted device did not answer every copy sent).
    stats: ClientStats. Errors: DeviceError (no answer, wrong protocol version, ERROR replies with
      `.error_code` and `.device_message` set), UsageError (an input dtype with no wire code).
    """

    def __init__(self, port_factory: Callable[[], object], timeout: float = 1.0,
                 total_timeout: float = 10.0, max_inflight: int | None = None,
                 protocol: int = HOST_PROTOCOL, message_texts: TextLookup | None = None):
        if protocol not in (1, 2):
            raise ValueError("protocol must be 1 or 2")
        if timeout <= 0 or total_timeout <= 0:
            raise ValueError("timeout and total_timeout must be positive")
        self.port_factory = port_factory
        self.timeout = float(timeout)
        self.total_timeout = float(total_timeout)
        self.max_inflight = max_inflight
        self.protocol = protocol
        # build_id -> the firmware's error-message texts (link.coded; firmware.messages.lookup)
        self.message_texts = message_texts
        self._texts: tuple[str | None, object] = (None, None)
        self.version = 1  # every session opens in v1 (docs/protocol.md, "Version 2")
        self.slots = 1
        # Per slot: (generation, wire bytes, dtype code) of the input the device acknowledged;
        # None when unknown (never loaded, or a request to the slot is still unacknowledged).
        self._slot_state: list = [None]
        self._slot_busy: list = [0]  # jobs in flight per slot
        self._fallback_logged = False
        self.stats = ClientStats()
        self.port = None
        self.port_name = getattr(port_factory, "url", None) or "the device port"
        self._decoder = FrameDecoder()
        self._seq = random.SystemRandom().randrange(1, 0x10000)  # see docs/protocol.md, "Host"
        self._info: dict | None = None
        self._max_payload = 256
        self._rx_budget = wire_size(256)
        self._max_requests = 1
        # Congestion window (requests), at most _max_requests: halved by every go-back-N round,
        # grown by about one per window of answered requests. On a clean link it stays at the
        # device's limit (deep pipelines hide the latency of waking each side); on a lossy link it
        # shrinks, so each retransmission round resends little.
        self._cwnd = 1.0
        self._window = 1
        self._inflight: collections.deque[_Request] = collections.deque()
        self._inflight_bytes = 0  # wire bytes of the requests in _inflight
        self._pending: collections.deque[_Request] = collections.deque()
        self._gbn_round: set[int] = set()  # ids of requests resent by the last go-back-N round
        self._outbox: list[bytes] = []  # frames assigned a sequence number, not yet written
        self._out_shape: list | None = None  # INFO's output shape, when it is a valid one
        self._out_size = -1
        self._byte_s = 0.0  # seconds per byte on a paced line (PacedPort.byte_s); 0: unpaced
        self._reply_allow = PACED_REPLY_BYTES  # reply bytes a paced line's timeouts allow for
        self._last_progress = time.monotonic()
        self._need_sync = True
        self._rebooted = False  # a NOT_SYNCED reply arrived: recover at the end of this _pump
        # Boots: the boot_id of the device's current boot (None: not known, or the device has none),
        # the highest inference counter seen in each earlier boot and in this one, and the model
        # hash the device must keep running across restarts.
        self.boot_id: int | None = None
        self._boot_highs: list[int] = []
        self._boot_high = 0
        self._model_sha256: str | None = None
        self._broken = False  # a read or write failed: reopen before the next read
        self._fresh = True  # the next INFO sets the full window

    # connection -----------------------------------------------------------------------------------

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        port, self.port = self.port, None
        self._inflight.clear()
        self._inflight_bytes = 0
        self._pending.clear()
        self._outbox.clear()
        self._need_sync = True
        self._forget_slots()
        if port is not None:
            try:
                close_port(port)
            except Exception:  # noqa: BLE001 - closing a dead port must not mask the real error
                pass

    def _open(self) -> None:
        port = self.port_factory()  # DeviceError from open_port names the port and what to check
        self.port = port
        self.port_name = port_name(port)
        try:
            self._setup(port)
        except BaseException:
            self.port = None
            try:
                close_port(port)
            except Exception:  # noqa: BLE001
                pass
            raise

    def _setup(self, port) -> None:
        self._byte_s = float(getattr(port, "byte_s", 0.0) or 0.0)
        if hasattr(port, "timeout"):
            port.timeout = min(0.05, self.timeout / 4)  # read poll; our own timers decide
        if hasattr(port, "write_timeout"):
            try:
                port.write_timeout = self.total_timeout
            except (ValueError, AttributeError, NotImplementedError):  # rfc2217:// has none
                pass
        reset_input = getattr(port, "reset_input_buffer", None)
        if reset_input is not None:
            try:
                reset_input()  # stale bytes of an earlier session
            except Exception:  # noqa: BLE001
                pass
        self._decoder.reset()
        self._broken = False
        self._write(b"\x00")  # ends any half frame the device holds from before

    def connect(self) -> dict:
        """Open the port (closing an open one) and synchronize with INFO. Returns INFO's JSON."""
        self.close()
        self._fresh = True
        self.version = 1  # a new session opens with a v1 INFO
        self._last_progress = time.monotonic()
        try:
            self._open()
        except _DISCONNECT as exc:
            self.close()
            raise DeviceError(f"cannot use {self.port_name}: {exc}") from None
        return self._sync()

    def _sync(self, boot_id: int | None = None) -> dict:
        # INFO resynchronizes the device's sequence state; it must travel alone. With boot_id (v2
        # only) it also assigns the device's boot_id.
        self._need_sync = False
        try:
            reply = self._roundtrip(m.INFO, m.pack_info_request(boot_id))
        except BaseException:
            self._need_sync = True
            raise
        try:
            info = m.unpack_info(reply.payload)
        except m.MalformedPayload as exc:
            self._need_sync = True
            raise DeviceError(f"device at {self.port_name} sent a malformed INFO reply: {exc}") \
                from None
        proto = info.get("protocol")
        if proto != self.version:
            self._need_sync = True
            raise DeviceError(f"device at {self.port_name}: device speaks protocol v{proto}, this "
                              f"host speaks v{self.version}")
        self._choose_version(info)
        build_id = info.get("build_id") if isinstance(info.get("build_id"), str) else None
        if build_id != self._texts[0]:
            self._texts = (build_id, self.message_texts(build_id)
                           if build_id and self.message_texts is not None else None)
        if isinstance(info.get("error"), str):
            info["error"] = self.expand(info["error"])
        self._info = info
        self._max_payload = _int_field(info, "max_payload", 256, 13, 0xFFFF)
        rx_buffers = _int_field(info, "rx_buffers", 1, 1, 1 << 16)
        self._rx_budget = rx_buffers * wire_size(self._max_payload)
        cache = _int_field(info, "reply_cache", 1, 1, 0x7FFF)
        self._max_requests = min(cache, self.max_inflight) if self.max_inflight else cache
        if self._fresh:  # a new connection starts with the full window; a resync keeps its own
            self._cwnd = float(self._max_requests)
            self._fresh = False
        self._cwnd = min(self._cwnd, float(self._max_requests))
        self._window = int(self._cwnd)
        shape = (info.get("output") or {}).get("shape")
        if isinstance(shape, list) and shape and all(type(d) is int and d > 0 for d in shape):
            self._out_shape, self._out_size = shape, int(np.prod(shape))
        else:
            self._out_shape, self._out_size = None, -1
        self._reply_allow = PACED_REPLY_BYTES + 4 * max(self._out_size, 0)  # float32 at most
        return self._track_boot(info, boot_id)

    # boots ----------------------------------------------------------------------------------------

    @property
    def inferences_total(self) -> int:
        """Inferences the device ran as far as this host saw: the sum over its boots of the
        highest inference counter seen in each (counters restart at 0 with every boot)."""
        return sum(self._boot_highs) + self._boot_high

    @property
    def in_flight(self) -> int:
        """Inputs sent or queued whose result has not arrived yet."""
        return len({id(r.job) for r in (*self._inflight, *self._pending)
                    if r.job is not None and r.job.result is None})

    @property
    def inferences_in_flight(self) -> int:
        """Inferences a device restarting now could take unseen: the repeat counts of the
        model-running requests (INFER, SLOT_INFER, PATCH) sent and not answered. A restart bounds
        stats.inferences_unobserved by this figure taken at the restart."""
        return sum(r.job.repeat for r in self._inflight
                   if r.job is not None and r.type in _RUNS and r.copies)

    def _observe(self, inferences, fresh: bool = False) -> None:
        """Note an inference counter the device reported. fresh: from INFO, which is never a
        replay (a replayed INFER reply may carry an older counter than one already seen)."""
        if isinstance(inferences, int) and not isinstance(inferences, bool):
            if fresh and inferences < self._boot_high:
                # A counter that went back: a restart this host was not told of (a device
                # without boot ids). Close the boot so the total stays right.
                self._new_boot(f"its inference counter went back from {self._boot_high} to "
                               f"{inferences}", forget=False)
            self._boot_high = max(self._boot_high, inferences)

    def _new_boot(self, why: str, forget: bool = True, counted: bool = True) -> None:
        """The device restarted: close the boot's counter and (forget) everything slot-side."""
        if counted:
            self.stats.reboots += 1
            log.warning("device at %s restarted (%s): resynchronizing", self.port_name, why)
        self._boot_highs.append(self._boot_high)
        self._boot_high = 0
        self.boot_id = None
        if forget:
            self._forget_slots()

    def _track_boot(self, info: dict, assigned: int | None) -> dict:
        """Check an INFO reply against the boot and model this host knows; assign a boot_id when
        the device has none yet. Returns the (last) INFO reply."""
        sha = info.get("model_sha256")
        if self._model_sha256 is None:
            self._model_sha256 = sha
        elif sha != self._model_sha256:
            self._need_sync = True
            raise DeviceError(f"device at {self.port_name} now runs model sha256 {sha}, but this "
                              f"session started with model sha256 {self._model_sha256} (it "
                              f"restarted with other firmware or another model: deploy the "
                              f"session's model again, or start a new session)")
        reported = info.get("boot_id")
        if not isinstance(reported, int) or isinstance(reported, bool):
            self._observe(info.get("inferences"), fresh=True)  # a device without boot ids
            return info
        if assigned is not None:
            if reported != assigned:
                self._need_sync = True
                raise DeviceError(f"device at {self.port_name} did not take boot_id {assigned} "
                                  f"(its INFO reports {reported})")
        elif self.boot_id is not None and reported != self.boot_id:
            self._new_boot(f"INFO reports boot_id {reported}, this host assigned {self.boot_id}")
        self._observe(info.get("inferences"))
        if reported == 0 and self.version >= 2:
            # QEMU boots identically every time, so the host gives each boot its own number.
            return self._sync(random.SystemRandom().randrange(1, 1 << 32))
        self.boot_id = reported
        return info

    def _choose_version(self, info: dict) -> None:
        protocols = info.get("protocols")
        offers_v2 = isinstance(protocols, list) and 2 in protocols
        if self.protocol >= 2 and offers_v2:
            slots = _int_field(info, "slots", 1, 1, 255)
            if self.version != 2 or slots != self.slots:
                self._slot_state = [None] * slots
                self._slot_busy = [0] * slots
            self.version, self.slots = 2, slots
            return
        if self.protocol >= 2 and not self._fallback_logged:
            log.info("device at %s speaks only protocol v1: every query is a full LOAD",
                     self.port_name)
            self._fallback_logged = True
        self.version, self.slots = 1, 1
        self._slot_state, self._slot_busy = [None], [0]

    def _forget_slots(self) -> None:
        """Whatever was unacknowledged may or may not have reached the device: forget it all."""
        self._slot_state = [None] * len(self._slot_state)
        self._slot_busy = [0] * len(self._slot_busy)

    def _ensure(self) -> None:
        if self.port is None:
            self.connect()
            return
        if self._need_sync:
            self._sync()

    # public requests ------------------------------------------------------------------------------

    def info(self) -> dict:
        """INFO's JSON (sent when nothing else is in flight)."""
        if self.port is None or self._need_sync:
            self._ensure()
            return dict(self._info)
        return dict(self._sync())

    def reset(self) -> None:
        """RESET the device; its counters restart at 0. The next request re-synchronizes."""
        self._ensure()
        self._roundtrip(m.RESET, b"")
        self._new_boot("RESET", counted=False)  # a restart this host asked for: not a reboot
        self._need_sync = True

    def infer(self, x: np.ndarray, repeat: int = 1) -> InferResult:
        """Send one input (LOAD chunks with its dtype, then INFER) and wait for the output."""
        # Run the generator to its end: closing it early would abandon the window and force an
        # INFO resync before the next query (twice the round trips for black-box attacks).
        (result,) = self.infer_many([x], inflight=1, repeat=repeat)
        return result

    def infer_many(self, xs: Iterable[np.ndarray], inflight: int | None = None,
                   on_result: Callable[[int, InferResult], object] | None = None,
                   repeat: int = 1, slots: Iterable[int] | None = None) -> Iterator[InferResult]:
        """Pipelined inference: yields one InferResult per input, in input order.

        Up to `inflight` inputs (default: as many as the device's buffers allow) have their LOAD
        and INFER requests in flight, so transfers overlap the device's computation. `on_result`
        (index, result) is called as each result is yielded. The iterator is lazy; closing it early
        waits for (and discards) what is still in flight, so the link stays in step.

        On a v2 device each input goes to an input slot: `slots` yields one slot per input (taken
        mod the device's slots; default: input i to slot i mod slots). An input goes as a PATCH
        (with its INFER) against the slot's last acknowledged input when that is smaller than a
        full load, as SLOT_LOAD + SLOT_INFER otherwise.
        """
        if inflight is not None and inflight < 1:
            raise ValueError("inflight must be at least 1")
        if not 1 <= repeat <= 0xFFFF:
            raise ValueError("repeat must be 1..65535")
        self._ensure()
        source = iter(xs)
        slot_source = iter(slots) if slots is not None else None
        jobs: collections.deque[_Job] = collections.deque()  # admitted, not yet yielded
        exhausted = False
        index = 0
        clean = False
        try:
            while True:
                if jobs and jobs[0].result is not None:
                    # Hand over every result already here first, then refill the window with
                    # one write (fewer system calls and device wake-ups than one per result).
                    job = jobs.popleft()
                    if on_result is not None:
                        on_result(job.index, job.result)
                    yield job.result
                    # Time the caller spent between results is not the device's silence.
                    self._last_progress = max(self._last_progress, time.monotonic())
                    continue
                while not exhausted and (inflight is None or len(jobs) < inflight) \
                        and self._room_for_more():
                    try:
                        x = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    slot = next(slot_source) if slot_source is not None else index
                    job = self._make_job(index, x, repeat, int(slot) % self.slots)
                    index += 1
                    jobs.append(job)
                    self._pending.extend(job.requests)
                    self._send_pending(flush=False)
                if self._outbox:
                    self._flush()  # every input admitted this round in one write
                if not jobs and exhausted:
                    clean = True
                    return
                self._pump()
        finally:
            if not clean:
                self._abandon(drain=True)

    # engine ---------------------------------------------------------------------------------------

    def _make_job(self, index: int, x, repeat: int, slot: int = 0) -> _Job:
        try:
            code, data = m.to_wire_bytes(np.asarray(x))
        except ValueError as exc:
            raise UsageError(f"input {index}: {exc}") from None
        if self.version >= 2:
            return self._make_slot_job(index, code, data, repeat, slot)
        job = _Job(index, [], data=data, code=code, repeat=repeat)
        job.requests = self._v1_load(job)
        job.open_requests = len(job.requests)
        return job

    def _v1_load(self, job: _Job) -> list:
        """LOAD chunk(s) and INFER of a v1 job's input."""
        data, code, total = job.data, job.code, len(job.data)
        chunk = self._max_payload - m.LOAD_HEADER.size
        requests = [_Request(m.LOAD, m.pack_load(code, total, offset, data[offset:offset + chunk]),
                             job) for offset in range(0, max(total, 1), chunk)]
        requests.append(_Request(m.INFER, m.pack_infer(job.repeat), job))
        self.stats.payload_bytes_sent += total
        return requests

    def _make_slot_job(self, index: int, code: int, data: bytes, repeat: int, slot: int) -> _Job:
        """A v2 input: a PATCH against the slot's acknowledged input when that is smaller, else
        SLOT_LOAD chunk(s) and SLOT_INFER."""
        job = _Job(index, [], slot=slot, data=data, code=code, repeat=repeat)
        requests = job.requests
        total = len(data)
        state = self._slot_state[slot]
        self._slot_state[slot] = None  # unknown until this job is acknowledged
        self._slot_busy[slot] += 1
        patched = False
        if state is not None and state[2] == code and len(state[1]) == total:
            runs = m.patch_runs(state[1], data)
            size = m.patch_size(runs)
            # A full load costs its header and data plus a SLOT_INFER frame (4 + 10 + 2 bytes).
            if size <= self._max_payload and size < m.SLOT_LOAD_HEADER.size + total + 16:
                requests.append(_Request(m.PATCH, m.pack_patch(slot, state[0], runs, infer=True,
                                                               repeat=repeat), job))
                patched = True
                self.stats.payload_bytes_sent += size - m.PATCH_HEADER.size
        if not patched:
            requests += self._full_load(job)
        job.open_requests = len(requests)
        return job

    def _full_load(self, job: _Job) -> list:
        """SLOT_LOAD chunk(s) and SLOT_INFER of a v2 job's input."""
        data, total = job.data, len(job.data)
        chunk = self._max_payload - m.SLOT_LOAD_HEADER.size
        requests = [_Request(m.SLOT_LOAD, m.pack_slot_load(job.slot, job.code, total, offset,
                                                            data[offset:offset + chunk]), job)
                    for offset in range(0, max(total, 1), chunk)]
        requests.append(_Request(m.SLOT_INFER, m.pack_slot_infer(job.slot, job.repeat), job))
        self.stats.payload_bytes_sent += total
        return requests

    def _reload(self, req: _Request, frame: Frame) -> bool:
        """A PATCH refused STALE or NOT_LOADED (the slot changed or emptied behind this host's back:
        another host on the board, a device that restarted) ran nothing and left its slot unloaded:
        send the job again as a full load, ahead of everything not yet sent. False for other
        errors."""
        try:
            code, text = m.unpack_error(frame.payload)
        except m.MalformedPayload:
            return False
        if req.type != m.PATCH or req.job is None or code not in (m.ERR_STALE, m.ERR_NOT_LOADED):
            return False
        job = req.job
        self.stats.reloads += 1
        log.info("device at %s refused a PATCH of slot %d (%s: %s): sending the input again as a full "
                 "load", self.port_name, job.slot, m.error_name(code), text)
        job.requests = self._full_load(job)
        job.open_requests = len(job.requests)
        self._pending.extendleft(reversed(job.requests))
        return True

    def _room_for_more(self) -> bool:
        # Admit another input only when its first request could go out now.
        return not self._pending and self._has_room(self._max_payload)

    def _has_room(self, payload_len: int) -> bool:
        if not self._inflight:
            return True
        # Go-back-N window: from the oldest unanswered request on, at most reply_cache sequence
        # numbers, so the device still caches every reply a retransmission may ask for again.
        if (self._seq + 1 - self._inflight[0].seq) & 0xFFFF >= self._window:
            return False
        body = payload_len + OVERHEAD  # wire_size(payload_len), inline: this runs per request
        return self._inflight_bytes + body + (body + 253) // 254 + 1 <= self._rx_budget

    def _send_pending(self, flush: bool = True) -> None:
        """Move queued requests into the window while it has room. Their frames go out in one
        write (with any still in the outbox) unless flush=False: then the caller flushes."""
        pending = self._pending
        if pending:
            now = time.monotonic()
            while pending and self._has_room(len(pending[0].payload)):
                req = pending.popleft()
                self._seq = seq = (self._seq + 1) & 0xFFFF
                req.seq = seq
                req.wire = wire = encode_wire(self.version, req.type, seq, req.payload)
                if not self._inflight:
                    self._last_progress = now  # the link was idle: the clock starts now
                self._inflight.append(req)
                self._inflight_bytes += len(wire)
                req.sent_at = now
                req.copies += 1
                job = req.job
                if job is not None and job.first_sent is None:
                    job.first_sent = now
                self._outbox.append(req.wire)
        if flush and self._outbox:
            self._flush()

    def _flush(self) -> None:
        frames, self._outbox = self._outbox, []
        self._write_frames(frames)

    def _roundtrip(self, mtype: int, payload: bytes) -> Frame:
        """One request alone on the link (INFO, RESET): wait for everything else first."""
        self._drain()
        req = _Request(mtype, payload)
        self._pending.append(req)
        self._send_pending()
        while req.reply is None:
            self._pump()
        return req.reply

    def _drain(self) -> None:
        while self._pending or self._inflight:
            self._send_pending()
            self._pump()

    def _abandon(self, drain: bool) -> None:
        """Give up on queued requests; optionally let those in flight finish first."""
        self._pending.clear()
        if drain and self.port is not None:
            try:
                while self._inflight:
                    self._pump()
                return  # everything sent was answered: the link is still in step
            except (DeviceError, KeyboardInterrupt):
                pass
        self._inflight.clear()
        self._inflight_bytes = 0
        self._gbn_round.clear()
        self._forget_slots()  # abandoned requests may or may not have changed their slots
        self._need_sync = True  # the device may hold a sequence gap: INFO before the next request

    def _pump(self) -> None:
        """Read once (up to the poll interval), handle replies, run the retransmit timers."""
        if self._outbox:
            self._flush()
        if self._broken or self.port is None:
            self._reconnect()
            return
        got = self._read_frames()
        if got is None:
            return
        now, damaged, received = got
        if received:
            if self._rebooted:
                self._recover()
            self._send_pending()
            if damaged and self._inflight and not self._gbn_round:
                self._go_back_n()  # a reply was lost in transit: resend without waiting
                return
        if not self._inflight:
            return
        # A paced line takes its time: the bytes in flight and a reply must cross it first.
        line = self._byte_s * (self._inflight_bytes + self._reply_allow) if self._byte_s else 0.0
        if now - self._last_progress > self.total_timeout + line:
            self._abandon(drain=False)
            raise DeviceError(f"no answer from {self.port_name} after {self.total_timeout:g} s "
                              f"(is the board running and the port right?)")
        oldest = self._inflight[0]
        if now - max(oldest.sent_at, self._last_progress) > self.timeout + line:
            self._go_back_n()

    def _retire(self, req: _Request) -> None:
        """Take an answered request out of the window."""
        inflight = self._inflight
        if inflight[0] is req:
            inflight.popleft()  # replies come in order: the usual case
        else:
            inflight.remove(req)
        self._inflight_bytes -= len(req.wire)
        if self._gbn_round:
            self._gbn_round.discard(id(req))

    def _on_frame(self, frame: Frame, now: float) -> None:
        seq = frame.seq
        inflight = self._inflight
        if inflight and inflight[0].seq == seq:
            req = inflight[0]
        else:
            req = next((r for r in inflight if r.seq == seq), None)
        if req is None or frame.type not in (req.type | m.REPLY, m.ERROR):
            # A duplicate, or a late reply from before a resync, in whatever version: e.g. the
            # second answer to the session's opening v1 INFO (sent twice on a slow line), arriving
            # after the switch to v2. Sequence numbers never repeat within a session's reach.
            self.stats.stale_replies += 1
            return
        if frame.version != self.version:
            self._abandon(drain=False)
            raise DeviceError(f"device at {self.port_name}: device speaks protocol "
                              f"v{frame.version}, this host speaks v{self.version}")
        if frame.type == m.ERROR and _error_code(frame) == m.ERR_NOT_SYNCED:
            # The device restarted: it answers every copy of every request it reads so. Recover
            # once, after this batch of frames (_pump), with the window as it stands.
            req.not_synced += 1
            self._last_progress = now
            self._rebooted = True
            return
        self._retire(req)
        self._last_progress = now
        req.reply = frame
        cwnd = self._cwnd
        if cwnd < self._max_requests:
            self._cwnd = cwnd = min(float(self._max_requests), cwnd + 1.0 / cwnd)
            self._window = int(cwnd)
        self.stats.requests += 1
        if frame.type == m.ERROR:
            if self._reload(req, frame):
                return
            self._on_error(req, frame)
        if req.job is not None:
            self._complete(req, frame)

    def _await_not_synced(self) -> None:
        """Read, sending nothing, until the restarted device has answered every copy of every
        model-running request in flight, or stays silent for the timeout. It reads the byte stream
        from some point on and answers each request there NOT_SYNCED; what came before that point
        went to the device that died (or was lost with it)."""
        def unanswered():
            return any(r.copies > r.not_synced for r in self._inflight
                       if r.job is not None and r.type in _RUNS)

        quiet = self.timeout + self._byte_s * (self._inflight_bytes + self._reply_allow)
        while unanswered() and not self._broken and self.port is not None:
            got = self._read_frames()
            if got is None:
                return
            now, _damaged, received = got
            if not received and now - self._last_progress > quiet:
                return

    def _read_frames(self):
        """Read once (up to the poll interval) and handle every whole frame that arrived. Returns
        (now, damaged: the decoder dropped bytes, received: any byte came), or None when the port
        is gone (self._broken set)."""
        try:
            data = read_some(self.port)
        except _DISCONNECT:
            self._broken = True
            return None
        now = time.monotonic()
        if not data:
            return now, False, False
        self.stats.wire_bytes_received += len(data)
        drops_before = self._decoder.dropped
        frames = self._decoder.feed(data)
        damaged = self._decoder.dropped > drops_before
        self.stats.frames_dropped = dict(self._decoder.drops)
        for frame in frames:
            self._on_frame(frame, now)
        return now, damaged, True

    def _recover(self) -> None:
        """After NOT_SYNCED: count what may have run unseen, give the device a new boot_id (INFO,
        which also re-checks the model), then send every unanswered input again as a full load,
        in order, ahead of anything else."""
        self._await_not_synced()
        self._rebooted = False
        requests = list(self._inflight) + list(self._pending)
        # A request of which the new boot answered every copy never reached the old one; one with
        # a copy unanswered may have run there (or was lost in the restart: counted all the same).
        self.stats.inferences_unobserved += sum(
            r.job.repeat for r in self._inflight
            if r.job is not None and r.type in _RUNS and r.not_synced < r.copies)
        jobs = list({id(r.job): r.job for r in requests
                     if r.job is not None and r.job.result is None}.values())
        for req in requests:
            if req.job is None and req.type == m.RESET:
                # The device restarted, which is what RESET asked for.
                req.reply = Frame(self.version, m.RESET | m.REPLY, req.seq, b"")
        self._inflight.clear()
        self._inflight_bytes = 0
        self._pending.clear()
        self._outbox.clear()
        self._gbn_round.clear()
        version, slots = self.version, self.slots
        self._new_boot("it answered NOT_SYNCED")
        self._sync(random.SystemRandom().randrange(1, 1 << 32) if version >= 2 else None)
        if (self.version, self.slots) != (version, slots):
            self._abandon(drain=False)
            raise DeviceError(f"device at {self.port_name} restarted speaking protocol "
                              f"v{self.version} with {self.slots} slot(s), it spoke v{version} with "
                              f"{slots} (other firmware?): start a new session")
        for job in sorted(jobs, key=lambda j: j.index):
            if job.slot >= 0:
                self._slot_busy[job.slot] += 1
                job.requests = self._full_load(job)
            else:
                job.requests = self._v1_load(job)
            job.open_requests = len(job.requests)
            self._pending.extend(job.requests)

    def expand(self, text: str) -> str:
        """A device text with the firmware's coded message pieces written out (link.coded)."""
        return coded.expand(text, self._texts[1], self._texts[0])

    def _on_error(self, req: _Request, frame: Frame) -> None:
        try:
            code, text = m.unpack_error(frame.payload)
            text = self.expand(text)
        except m.MalformedPayload:
            code, text = 0, "(malformed ERROR payload)"
        self._abandon(drain=False)
        what = f"device at {self.port_name} answered {m.TYPE_NAMES.get(req.type, '?')} with ERROR"
        if code == m.ERR_VERSION:
            message = f"{what} VERSION: {text}; this host speaks v{self.version}"
        else:
            message = f"{what} {m.error_name(code)} ({code}): {text}"
        err = DeviceError(message)
        err.error_code = code
        err.device_message = text
        raise err

    def _complete(self, req: _Request, frame: Frame) -> None:
        job = req.job
        job.open_requests -= 1
        try:
            if req.type == m.LOAD:
                m.unpack_load_reply(frame.payload)
                return
            if req.type == m.SLOT_LOAD:
                m.unpack_slot_load_reply(frame.payload)
                return
            payload = frame.payload
            if job.slot >= 0:
                slot, generation, payload = m.unpack_slot_reply(payload)
                if slot != job.slot:
                    raise m.MalformedPayload(f"reply for slot {slot}, the request was for slot "
                                             f"{job.slot}")
            ticks, inferences, code, output_bytes = m.infer_reply_fields(payload)
            dtype = m.dtype_from_code(code)
        except m.MalformedPayload as exc:
            self._abandon(drain=False)
            raise DeviceError(f"device at {self.port_name} sent a malformed "
                              f"{m.TYPE_NAMES[req.type]} reply: {exc}") from None
        if len(output_bytes) % dtype.itemsize:
            self._abandon(drain=False)
            raise DeviceError(f"device at {self.port_name} sent {len(output_bytes)} output bytes, "
                              f"not a whole number of {dtype.name} values")
        output = np.frombuffer(output_bytes, dtype=dtype).astype(m.native_dtype(code))
        if output.size == self._out_size:
            output = output.reshape(self._out_shape)
        if job.open_requests:
            # The INFER succeeded, so every LOAD of this input did (a refused LOAD leaves no
            # input): their lost replies need no retransmission.
            for other in [r for r in self._inflight if r.job is job]:
                self._retire(other)
        self._observe(inferences)
        if job.slot >= 0:
            self._slot_busy[job.slot] -= 1
            if not self._slot_busy[job.slot]:  # no later input to this slot is in flight
                self._slot_state[job.slot] = (generation, job.data, job.code)
        stats = self.stats
        stats.queries += 1
        stats.payload_bytes_received += len(output_bytes)
        job.result = InferResult(output, ticks, inferences, job.retries,
                                 time.monotonic() - job.first_sent)

    def _go_back_n(self) -> None:
        """Resend every outstanding request, in order, with its sequence number."""
        self.stats.retries += 1
        self._cwnd = min(float(self._max_requests), max(float(MIN_WINDOW), self._cwnd / 2))
        self._window = int(self._cwnd)
        for job in {id(r.job): r.job for r in self._inflight if r.job is not None}.values():
            job.retries += 1
        self._gbn_round = {id(r) for r in self._inflight}
        now = time.monotonic()
        for req in self._inflight:
            req.sent_at = now
            req.copies += 1
        self._write_frames([r.wire for r in self._inflight])

    def _write(self, data: bytes) -> None:
        write_all(self.port, data)
        self.stats.wire_bytes_sent += len(data)

    def _write_frames(self, frames: list) -> None:
        """Write frames, all in one write (one system call and one wake-up of the device per
        batch); a broken link is only noted here and repaired by the next _pump."""
        if self._broken or self.port is None or not frames:
            return
        try:
            self._write(frames[0] if len(frames) == 1 else b"".join(frames))
        except serial.SerialTimeoutException:
            self._abandon(drain=False)
            raise DeviceError(f"no answer from {self.port_name} after {self.total_timeout:g} s "
                              f"(it stopped reading: is the board running and the port "
                              f"right?)") from None
        except _DISCONNECT:
            self._broken = True

    def _reconnect(self) -> None:
        """Reopen the port and resend what is outstanding (the device's cache answers what it
        already executed). No INFO here: it would clear that cache."""
        old, self.port = self.port, None
        try:
            if old is not None:
                close_port(old)
        except Exception:  # noqa: BLE001
            pass
        self.stats.reconnects += 1
        delay = 0.02
        while True:
            try:
                self._open()
                break
            except (DeviceError, *_DISCONNECT) as exc:
                self.port = None
                if time.monotonic() - self._last_progress > self.total_timeout:
                    self._abandon(drain=False)
                    raise DeviceError(f"lost {self.port_name} and could not reopen it within "
                                      f"{self.total_timeout:g} s: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        if self._inflight:
            self._go_back_n()


def _error_code(frame: Frame) -> int:
    try:
        return m.unpack_error(frame.payload)[0]
    except m.MalformedPayload:
        return 0


def _int_field(info: dict, key: str, default: int, low: int, high: int) -> int:
    value = info.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DeviceError(f"device INFO has a bad {key!r}: {value!r} (expected {low}..{high})")
    return value
