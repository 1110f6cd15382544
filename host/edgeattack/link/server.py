"""The device side of the protocol: frames in, handler calls, replies out (docs/protocol.md).

`ProtocolServer` is the engine of the Python agent and the reference behaviour for the C firmware.
It owns the sequence-number rules and the reply cache (a retransmitted INFER is answered from the
cache and never runs the model again), input assembly from LOAD chunks, the inference counter and
the window log; the model itself is behind a small `handler` object.
"""
from __future__ import annotations

import collections
import socket
import time
from typing import Callable, Protocol

import serial

from edgeattack.link import messages as m
from edgeattack.link.frame import MAX_PAYLOAD, PROTOCOL_VERSION, Frame, FrameDecoder, encode_wire
from edgeattack.link.transport import SocketPort, read_some

_RUNS = (m.INFER, m.SLOT_INFER, m.PATCH)  # requests that may run the model
LOG_EVENTS = 8  # INFO's log keeps the most recent 8 window events
COALESCE_S = 0.001  # an INFER faster than this may have its reply wait to share a write ...
HOLD_S = 0.004  # ... for at most about this long (plus one inference)


class Handler(Protocol):
    """What the server needs from a model runner.

    info() -> dict: model fields for INFO (board, runtime, model_sha256, input, output, tick_hz, and
        "error" when the model failed to load); the server adds the protocol fields.
    input_spec() -> (dtype_code, nbytes): the input tensor's wire dtype code and size in bytes.
    infer(input_bytes, repeat) -> (output_bytes, dtype_code, ticks): run the model `repeat` times on
        the input and return the last output and the total ticks (units of tick_hz) of the window.
    reset() -> None: forget everything model-side (RESET).
    Any of them may raise an exception with an integer `error_code` attribute (e.g.
    messages.ProtocolError(ERR_MODEL, "...")) to answer ERROR with that code; other exceptions
    become ERROR RUNTIME (ERROR MODEL from input_spec).
    """

    def info(self) -> dict: ...

    def input_spec(self) -> tuple[int, int]: ...

    def infer(self, input_bytes: bytes, repeat: int) -> tuple[bytes, int, int]: ...

    def reset(self) -> None: ...


class ProtocolServer:
    """Serve one protocol endpoint over `port` (any object with the port API of link.transport).

    ProtocolServer(port, handler, max_payload=4096, rx_buffers=4, reply_cache=8, clock=None,
                   slots=4)
      max_payload: largest request payload executed; larger valid frames are answered TOO_LARGE.
      rx_buffers, reply_cache: advertised in INFO; the host keeps at most reply_cache requests and
        rx_buffers maximum-size frames' worth of bytes in flight. reply_cache replies are kept.
      slots: input slots of protocol v2 (INFO `slots`); v1's LOAD and INFER use slot 0.
      clock: callable returning the device tick counter (for the window log); default: the
        handler's `ticks()` if it has one, else a monotonic clock at the handler's tick_hz.
    serve_forever(stop_event=None): handle requests until stop_event (a threading.Event) is set
      or the peer disconnects (returns; call attach(new_port) and serve again to keep state).
      The port needs a read timeout (open_port's default 0.05 s) so stop_event is noticed.
    serve_listener(listener, stop_event=None, wrap=None): serve a TCP listener's connections one
      after another with this one state (what a TCP agent does).
    poll_once() -> int: wait up to port.timeout for bytes, handle every complete frame, return the
      number of frames handled; a disconnected peer raises serial.SerialException.
    receive(data, send=None) -> list[bytes]: the protocol engine without I/O (tests, fuzzing):
      feed raw bytes, get the wire bytes of each reply (and `send` them, coalesced into few
      writes: see receive(); every reply is sent before receive returns).
    Counters: inferences, crc_errors, dropped (frames dropped by the decoder, by reason in
      `decoder.drops`), gaps (requests dropped by the sequence rule), replays (cached replies sent
      again), overruns (always 0 here: the OS buffers the stream), requests (executed).
    """

    def __init__(self, port, handler, max_payload: int = 4096, rx_buffers: int = 4,
                 reply_cache: int = 8, clock: Callable[[], int] | None = None, slots: int = 4):
        if not 12 < max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload must be 13..{MAX_PAYLOAD}")
        if rx_buffers < 1 or reply_cache < 1:
            raise ValueError("rx_buffers and reply_cache must be at least 1")
        if not 1 <= slots <= 255:
            raise ValueError("slots must be 1..255")
        self.slots = slots
        self.port = port
        self.handler = handler
        self.max_payload = max_payload
        self.rx_buffers = rx_buffers
        self.reply_cache = reply_cache
        self._clock = clock
        # The receive buffer takes any frame the u16 length allows, so a too-large request gets a
        # TOO_LARGE answer instead of a silent drop (memory stays bounded at one 64 KiB frame).
        self.decoder = FrameDecoder(MAX_PAYLOAD)
        self._version = PROTOCOL_VERSION  # the version of the request being executed
        self._reset_state()

    # state ----------------------------------------------------------------------------------------

    def _reset_state(self) -> None:
        self.inferences = 0
        self.requests = 0
        self.gaps = 0
        self.replays = 0
        self.overruns = 0
        self.decoder.drops = dict.fromkeys(self.decoder.drops, 0)
        self.log: collections.deque = collections.deque(maxlen=LOG_EVENTS)
        self._last: int | None = None  # last executed sequence number (None: accept any)
        # After boot (and RESET) only INFO is answered until one arrives: a host that was talking
        # to the device before it restarted learns so from ERROR NOT_SYNCED (docs/protocol.md,
        # "Reboots"). boot_id is what the host assigned in INFO, 0 until it does.
        self._synced = False
        self.boot_id = 0
        self._cache: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        # Per input slot: its tensor (None: unloaded), bytes received, generation (v2).
        self._input: list[bytearray | None] = [None] * self.slots
        self._received = [0] * self.slots
        self._generation = [0] * self.slots

    def restart(self) -> None:
        """Forget everything, as a device does when it boots: sequence state, reply cache, slots,
        counters, boot_id; NOT_SYNCED until the next INFO. (What RESET does after its reply; tests
        call it to restart a device under a host.)"""
        self._reset_state()

    @property
    def crc_errors(self) -> int:
        return self.decoder.drops["crc"]

    @property
    def dropped(self) -> int:
        return self.decoder.dropped

    def attach(self, port) -> None:
        """Serve a new connection with the same device state (sequence, cache, loaded input)."""
        self.port = port
        self.decoder.reset()

    # I/O ------------------------------------------------------------------------------------------

    def poll_once(self) -> int:
        data = read_some(self.port)
        if not data:
            return 0
        return len(self.receive(data, send=self.port.write))

    def serve_forever(self, stop_event=None) -> None:
        while stop_event is None or not stop_event.is_set():
            try:
                self.poll_once()
            except (serial.SerialException, OSError):
                return  # the peer went away; the caller decides whether to attach a new port

    def serve_listener(self, listener: socket.socket, stop_event=None, wrap=None,
                       poll_s: float = 0.05) -> None:
        """Serve the TCP connections of a listening socket one after another, all with this one
        device state (a host that reconnects finds its cached replies), until stop_event is set.
        `wrap(port)` may wrap each connection (e.g. link.faults.FaultInjector.wrap)."""
        listener.settimeout(poll_s)
        while stop_event is None or not stop_event.is_set():
            try:
                conn, addr = listener.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                if listener.fileno() < 0:
                    return  # the listener was closed: nothing more to serve
                raise
            port = SocketPort(conn, name=f"tcp {addr[0]}:{addr[1]}", timeout=poll_s)
            if wrap is not None:
                port = wrap(port)
            self.attach(port)
            try:
                self.serve_forever(stop_event)
            finally:
                port.close()

    def receive(self, data: bytes, send: Callable[[bytes], object] | None = None) -> list[bytes]:
        frames = self.decoder.feed(data)
        replies = []
        if send is None:
            for frame in frames:
                reply = self.handle_frame(frame)
                if reply is not None:
                    replies.append(reply)
            return replies
        # Replies are coalesced into few writes: each write costs a system call and usually wakes
        # the host, which on a busy machine takes a core from the device. A LOAD's reply (the LOAD
        # took no time) rides along with the next reply. Other replies wait for the next INFER of
        # this chunk while the chunk still holds more inputs than replies are waiting, at most
        # about HOLD_S plus one inference; a slow inference (>= COALESCE_S) sends everything at
        # once. So the host gets replies in batches while the device keeps inputs to work on.
        # Nothing is held past this call.
        clock = time.perf_counter
        infers_left = sum(1 for frame in frames if frame.type in _RUNS)
        batch: list[bytes] = []
        held = 0
        held_since = 0.0
        for frame in frames:
            if frame.type in _RUNS:
                infers_left -= 1
                started = clock()
                reply = self.handle_frame(frame)
                now = clock()
                slow = now - started >= COALESCE_S
            else:
                reply = self.handle_frame(frame)
                now = clock()
                slow = False
            if reply is None:
                continue
            replies.append(reply)
            batch.append(reply)
            if frame.type in (m.LOAD, m.SLOT_LOAD):
                continue
            if not held:
                held_since = now
            held += 1
            if slow or held >= infers_left or now - held_since >= HOLD_S:
                send(batch[0] if len(batch) == 1 else b"".join(batch))
                batch = []
                held = 0
        if batch:
            send(batch[0] if len(batch) == 1 else b"".join(batch))
        return replies

    # protocol -------------------------------------------------------------------------------------

    def handle_frame(self, frame: Frame) -> bytes | None:
        """Apply the sequence rules to one valid frame; return the reply's wire bytes or None."""
        if frame.version not in m.PROTOCOLS:
            # The frame's meaning is unknown: answer without touching the sequence state.
            # It is answered in a v1 frame, which every host reads.
            return encode_wire(PROTOCOL_VERSION, m.ERROR, frame.seq, m.pack_error(
                m.ERR_VERSION, f"device speaks protocols v1 and v2, request is v{frame.version}"))
        seq = frame.seq
        if frame.type == m.INFO:
            self._cache.clear()
            self._synced = True
        elif not self._synced:
            # Changes nothing and is not cached: every request until INFO gets the same answer.
            self._version = frame.version
            return self._error(seq, m.ERR_NOT_SYNCED, "device restarted since the host last "
                                                      "synchronized: send INFO first")
        elif self._last is not None and seq != (self._last + 1) & 0xFFFF:
            cached = self._cache.get(seq)
            if cached is not None:
                self.replays += 1
                return cached
            self.gaps += 1
            return None
        self._version = frame.version
        reply = self._execute(frame)
        self.requests += 1
        self._last = seq
        self._cache[seq] = reply
        self._cache.move_to_end(seq)
        while len(self._cache) > self.reply_cache:
            self._cache.popitem(last=False)
        return reply

    def _encode(self, seq: int, mtype: int, payload: bytes) -> bytes:
        return encode_wire(self._version, mtype, seq, payload)  # replies in the request's version

    def _error(self, seq: int, code: int, message: str) -> bytes:
        return self._encode(seq, m.ERROR, m.pack_error(code, message))

    def _execute(self, frame: Frame) -> bytes:
        seq, mtype, payload = frame.seq, frame.type, frame.payload
        if mtype not in (m.V2_REQUEST_TYPES if self._version >= 2 else m.REQUEST_TYPES):
            return self._error(seq, m.ERR_BAD_REQUEST, f"unknown message type 0x{mtype:02x}")
        if len(payload) > self.max_payload:
            return self._error(seq, m.ERR_TOO_LARGE,
                               f"payload of {len(payload)} bytes, max_payload is {self.max_payload}")
        try:
            if mtype == m.INFO:
                boot_id = m.unpack_info_request(payload, self._version)
                if boot_id is not None:
                    self.boot_id = boot_id
                return self._encode(seq, m.INFO | m.REPLY, m.pack_info(self.info()))
            if mtype == m.LOAD:
                if len(payload) < m.LOAD_HEADER.size:
                    m.unpack_load(payload)  # raises MalformedPayload with its message
                code, total, offset = m.LOAD_HEADER.unpack_from(payload)
                received, _ = self._load(0, code, total, offset, payload[m.LOAD_HEADER.size:])
                return self._encode(seq, m.LOAD | m.REPLY, m.LOAD_REPLY.pack(received, total))
            if mtype == m.INFER:
                return self._encode(seq, m.INFER | m.REPLY, self._infer(0, m.unpack_infer(payload)))
            if mtype == m.SLOT_LOAD:
                req = m.unpack_slot_load(payload)
                slot = self._slot(req.slot)
                received, gen = self._load(slot, req.dtype, req.total, req.offset, req.data)
                return self._encode(seq, m.SLOT_LOAD | m.REPLY,
                                    m.pack_slot_load_reply(slot, gen, received, req.total))
            if mtype == m.PATCH:
                req = m.unpack_patch(payload)
                slot = self._slot(req.slot)
                gen = self._patch(slot, req.generation, req.runs)
                out = self._infer(slot, req.repeat or 1) if req.infer else b""
                return self._encode(seq, m.PATCH | m.REPLY, m.pack_slot_reply(slot, gen, out))
            if mtype == m.SLOT_INFER:
                slot, repeat = m.unpack_slot_infer(payload)
                slot = self._slot(slot)
                out = self._infer(slot, repeat or 1)
                return self._encode(seq, m.SLOT_INFER | m.REPLY,
                                    m.pack_slot_reply(slot, self._generation[slot], out))
            m.check_empty(payload, "RESET")
            self._do_reset()
            return self._encode(seq, m.RESET | m.REPLY, b"")
        except m.MalformedPayload as exc:
            return self._error(seq, m.ERR_BAD_REQUEST, str(exc))
        except _Refusal as exc:
            return self._error(seq, exc.code, exc.message)

    def info(self) -> dict:
        """INFO's JSON: the handler's model fields plus the protocol fields."""
        try:
            info = dict(self.handler.info())
        except Exception as exc:  # noqa: BLE001 - a broken handler still answers INFO
            info = {"error": f"{type(exc).__name__}: {exc}"}
        info.update({
            "protocol": self._version, "protocols": list(m.PROTOCOLS), "slots": self.slots,
            "boot_id": self.boot_id,
            "max_payload": self.max_payload,
            "rx_buffers": self.rx_buffers, "reply_cache": self.reply_cache,
            "inferences": self.inferences, "overruns": self.overruns,
            "crc_errors": self.crc_errors, "dropped": self.dropped, "log": list(self.log),
        })
        return info

    def _slot(self, slot: int) -> int:
        if slot >= self.slots:
            raise _Refusal(m.ERR_SLOT, f"slot {slot} is out of range: this device has slots "
                                       f"0..{self.slots - 1} (INFO slots)")
        return slot

    def _unload(self, slot: int) -> None:
        self._input[slot] = None  # a refused LOAD or PATCH leaves the slot unloaded
        self._received[slot] = 0

    def _load(self, slot: int, code: int, total: int, offset: int, data: bytes) -> tuple[int, int]:
        """One LOAD chunk into `slot`, checked in the documented order: (received, generation)."""
        size = len(data)
        tensor = self._input[slot]
        try:
            try:
                dtype, nbytes = self.handler.input_spec()
            except Exception as exc:  # noqa: BLE001 - a handler failure is an ERROR reply
                raise _refusal(exc, m.ERR_MODEL) from None
            if code != dtype:
                raise _Refusal(m.ERR_DTYPE, f"LOAD dtype {_dtype_name(code)}, the model's input "
                                            f"is {_dtype_name(dtype)}")
            if total != nbytes:
                raise _Refusal(m.ERR_SIZE, f"LOAD total {total} bytes, the model's input has "
                                           f"{nbytes}")
            if offset != 0 and (tensor is None or offset != self._received[slot]):
                expected = self._received[slot] if tensor is not None else 0
                raise _Refusal(m.ERR_OFFSET, f"LOAD chunk at offset {offset}, expected "
                                             f"{expected}")
            if offset + size > total:
                raise _Refusal(m.ERR_SIZE, f"LOAD chunk of {size} bytes at offset "
                                           f"{offset} overruns the input's {total} bytes")
        except _Refusal:
            self._unload(slot)
            raise
        if offset == 0:
            self._input[slot] = tensor = bytearray(total)
            self._generation[slot] = (self._generation[slot] + 1) & 0xFFFFFFFF
        tensor[offset:offset + size] = data
        self._received[slot] = offset + size
        return self._received[slot], self._generation[slot]

    def _patch(self, slot: int, generation: int, runs) -> int:
        """Apply a PATCH's runs to a complete slot computed at `generation`: the new generation.
        All runs are checked before any is applied."""
        tensor = self._input[slot]
        try:
            if tensor is None or self._received[slot] != len(tensor):
                raise _Refusal(m.ERR_NOT_LOADED, f"PATCH of slot {slot}, which holds no complete "
                                                 f"input (LOAD it first)")
            if generation != self._generation[slot]:
                raise _Refusal(m.ERR_STALE, f"PATCH computed against generation {generation} of "
                                            f"slot {slot}, which is at generation "
                                            f"{self._generation[slot]} (LOAD it again)")
            for offset, data in runs:
                if offset + len(data) > len(tensor):
                    raise _Refusal(m.ERR_SIZE, f"PATCH run of {len(data)} bytes at offset {offset} "
                                               f"overruns slot {slot}'s {len(tensor)} bytes")
        except _Refusal:
            self._unload(slot)
            raise
        for offset, data in runs:
            tensor[offset:offset + len(data)] = data
        self._generation[slot] = (self._generation[slot] + 1) & 0xFFFFFFFF
        return self._generation[slot]

    def _infer(self, slot: int, repeat: int) -> bytes:
        tensor = self._input[slot]
        if tensor is None or self._received[slot] != len(tensor):
            have = 0 if tensor is None else self._received[slot]
            total = 0 if tensor is None else len(tensor)
            raise _Refusal(m.ERR_NOT_LOADED, f"INFER without a complete input ({have} of "
                                             f"{total} bytes loaded)")
        start = self._now()
        try:
            output, dtype, ticks = self.handler.infer(bytes(tensor), repeat)
        except Exception as exc:  # noqa: BLE001 - a handler failure is an ERROR reply
            raise _refusal(exc, m.ERR_RUNTIME) from None
        self.inferences += repeat
        self.log.append({"event": "start", "ticks": int(start), "inference": self.inferences})
        self.log.append({"event": "end", "ticks": int(start + ticks), "inference": self.inferences})
        output = bytes(output)
        if len(output) + m.INFER_REPLY.size + m.SLOT_REPLY.size > MAX_PAYLOAD:
            raise _Refusal(m.ERR_RUNTIME, f"output of {len(output)} bytes does not fit one frame")
        return m.pack_infer_reply(int(ticks), self.inferences, int(dtype), output)

    def _do_reset(self) -> None:
        self._call(self.handler.reset, m.ERR_RUNTIME)
        self._reset_state()  # the caller then records this RESET as executed and caches its reply

    def _call(self, fn, default_code: int):
        try:
            return fn()
        except _Refusal:
            raise
        except Exception as exc:  # noqa: BLE001 - every handler failure becomes an ERROR reply
            raise _refusal(exc, default_code) from None

    def _now(self) -> int:
        if self._clock is None:
            ticks = getattr(self.handler, "ticks", None)
            if callable(ticks):
                self._clock = ticks
            else:
                try:
                    hz = float(self.handler.info().get("tick_hz") or 1e9)
                except Exception:  # noqa: BLE001
                    hz = 1e9
                self._clock = lambda: int(time.perf_counter_ns() * hz / 1e9)
        return int(self._clock())


class _Refusal(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _refusal(exc: Exception, default_code: int) -> "_Refusal":
    """The ERROR reply for a handler's exception: its `error_code` if it has a valid one."""
    if isinstance(exc, _Refusal):
        return exc
    code = getattr(exc, "error_code", None)
    if not isinstance(code, int) or not 0 < code <= 0xFFFF:
        code = default_code
    text = str(exc) if isinstance(exc, m.ProtocolError) else f"{type(exc).__name__}: {exc}"
    return _Refusal(code, text)


def _dtype_name(code: int) -> str:
    return m.DTYPE_NAMES.get(code, f"code {code}")
