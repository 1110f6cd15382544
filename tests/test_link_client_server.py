"""Client <-> ProtocolServer over real sockets and ptys, with real fault injection on the bytes.

The handler is a test double for a model (it sums the input bytes): the protocol is what is tested.
"""
from __future__ import annotations

import os
import socket
import threading
import time

import numpy as np
import pytest

from edgeattack.errors import DeviceError, UsageError
from edgeattack.link import messages as m
from edgeattack.link.client import Client
from edgeattack.link.faults import FaultInjector
from edgeattack.link.frame import Frame, FrameDecoder, encode_frame
from edgeattack.link.server import ProtocolServer
from edgeattack.link.transport import open_port, open_pty


class SumHandler:
    """Output: [sum of the int8 inputs, call number] as int32. Records every input it ran."""

    def __init__(self, nbytes=64, dtype=m.DTYPE_INT8, fail=None, delay=0.0):
        self.nbytes, self.dtype, self.fail, self.delay = nbytes, dtype, fail, delay
        self.inputs: list[bytes] = []
        self.resets = 0

    def info(self):
        return {"board": "test", "runtime": "sum", "tick_hz": 1_000_000,
                "input": {"shape": [1, self.nbytes], "dtype": m.DTYPE_NAMES[self.dtype]},
                "output": {"shape": [1, 2], "dtype": "int32"}}

    def input_spec(self):
        if self.fail == "model":
            raise m.ProtocolError(m.ERR_MODEL, "operator FOO is not supported")
        return self.dtype, self.nbytes

    def infer(self, data, repeat):
        if self.fail == "runtime":
            raise RuntimeError("arena too small")
        if self.delay:
            time.sleep(self.delay)
        self.inputs.append(bytes(data))
        total = int(np.frombuffer(data, np.int8).astype(np.int64).sum())
        return np.array([total, len(self.inputs)], "<i4").tobytes(), m.DTYPE_INT32, 10 * repeat

    def reset(self):
        self.resets += 1


class TcpDevice:
    """A ProtocolServer in a thread behind a real TCP listener; successive connections share one
    device state (as a board does across host reconnects). Optional device-side faults."""

    def __init__(self, handler, faults: FaultInjector | None = None, **server_kw):
        self.handler = handler
        self.faults = faults
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"
        self.server = ProtocolServer(None, handler, **server_kw)
        self.connections = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-device")
        self._thread.start()

    def _run(self):
        try:
            self.server.serve_listener(self.listener, self._stop, wrap=self._wrap, poll_s=0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by close()
            self.error = exc

    def _wrap(self, port):
        self.connections += 1
        return self.faults.wrap(port) if self.faults is not None else port

    def close(self):
        self._stop.set()
        self._thread.join(10)
        self.listener.close()
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


@pytest.fixture
def device_factory():
    made = []

    def make(handler=None, **kw):
        dev = TcpDevice(handler or SumHandler(), **kw)
        made.append(dev)
        return dev

    yield make
    for dev in made:
        dev.close()


def inputs(n, nbytes=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, nbytes, dtype=np.int8) for _ in range(n)]


def check_answers(results, xs, handler):
    """Every input answered once, in order, by exactly one inference."""
    assert len(results) == len(xs)
    assert handler.inputs == [x.tobytes() for x in xs]
    for i, (r, x) in enumerate(zip(results, xs)):
        assert r.output_raw.shape == (1, 2)
        assert int(r.output_raw[0, 0]) == int(x.astype(np.int64).sum())
        assert int(r.output_raw[0, 1]) == i + 1  # the i-th inference served the i-th input


def test_connect_infer_and_info(device_factory):
    dev = device_factory()  # a v1 host (protocol=1) on a v2 device: v1 LOAD + INFER
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5, protocol=1) as client:
        info = client.connect()
        assert info["protocol"] == 1 and info["board"] == "test"
        assert (info["max_payload"], info["rx_buffers"], info["reply_cache"]) == (4096, 4, 8)
        assert info["inferences"] == 0 and info["log"] == []
        xs = inputs(3)
        results = [client.infer(x) for x in xs]
        check_answers(results, xs, dev.handler)
        assert results[2].inferences == 3 and results[2].ticks == 10 and results[2].retries == 0
        assert results[0].output_raw.dtype == np.int32 and results[0].rtt_s > 0
        info = client.info()
        assert info["inferences"] == 3
        assert [e["event"] for e in info["log"]] == ["start", "end"] * 3
        assert info["log"][-1]["ticks"] - info["log"][-2]["ticks"] == 10
        assert info["log"][-1]["inference"] == 3
        s = client.stats
        assert s.queries == 3 and s.retries == 0 and s.reconnects == 0
        assert dev.server.requests == s.requests == 1 + 3 * 2 + 1  # no INFO between inputs
        assert s.payload_bytes_sent == 3 * 64 and s.payload_bytes_received == 3 * 8
        assert s.wire_bytes_sent > s.payload_bytes_sent and s.wire_bytes_received > 0


def test_pty_link_and_reopen():
    master, slave_path, slave_fd = open_pty(timeout=0.01)
    handler = SumHandler()
    server = ProtocolServer(master, handler)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(stop,))
    thread.start()
    try:
        xs = inputs(6)
        client = Client(lambda: open_port(slave_path), timeout=0.5, total_timeout=5)
        assert client.connect()["protocol"] == 2  # v1 INFO, then a v2 INFO assigning boot_id
        first = [client.infer(x) for x in xs[:3]]
        client.close()
        # A new host session on the same tty: INFO resynchronizes, the counter continues.
        client = Client(lambda: open_port(slave_path), timeout=0.5, total_timeout=5)
        assert client.connect()["inferences"] == 3
        rest = list(client.infer_many(xs[3:]))
        client.close()
        check_answers(first + rest, xs, handler)
    finally:
        stop.set()
        thread.join(5)
        master.close()
        os.close(slave_fd)
    assert not thread.is_alive()


def test_pipelined_results_in_order_and_faster_than_serial(device_factory):
    dev = device_factory()
    # 20 ms of latency on every reply, as through a slow USB/SSH link.
    delay = FaultInjector(delay=0.02)
    xs = inputs(24)
    client = Client(lambda: delay.wrap(open_port(dev.url)), timeout=1.0, total_timeout=5)
    client.connect()
    seen = []
    t0 = time.monotonic()
    serial_results = [client.infer(x) for x in xs[:8]]
    t_serial = (time.monotonic() - t0) / 8
    t0 = time.monotonic()
    piped = list(client.infer_many(xs[8:], inflight=4, on_result=lambda i, r: seen.append(i)))
    t_piped = (time.monotonic() - t0) / 16
    client.close()
    check_answers(serial_results + piped, xs, dev.handler)
    assert seen == list(range(16))
    assert t_serial >= 0.02
    assert t_piped < 0.6 * t_serial, (t_piped, t_serial)


def test_multi_chunk_inputs_respect_max_payload(device_factory):
    handler = SumHandler(nbytes=1000)
    dev = device_factory(handler, max_payload=100, rx_buffers=2, reply_cache=4)
    xs = inputs(5, nbytes=1000)
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
        client.connect()
        results = list(client.infer_many(xs))
    check_answers(results, xs, handler)
    # v1 INFO, v2 INFO (assigning boot_id), then ceil(1000 / 88) LOADs + INFER per input
    assert dev.server.requests == 2 + 5 * (12 + 1)
    assert dev.server.replays == 0 and dev.server.gaps == 0


@pytest.mark.parametrize("side", ["host", "device", "both"])
def test_retransmit_after_corruption_drops_and_duplicates(device_factory, side):
    rate = 0.0005 if side == "both" else 0.001  # per byte, per kind of fault, per direction
    spec = dict(corrupt=rate, drop=rate, dup=rate)
    host_faults = FaultInjector(seed=1, **spec) if side in ("host", "both") else None
    dev_faults = FaultInjector(seed=2, **spec) if side in ("device", "both") else None
    handler = SumHandler(nbytes=200)
    dev = device_factory(handler, faults=dev_faults, max_payload=128)
    xs = inputs(30, nbytes=200, seed=3)

    def factory():
        port = open_port(dev.url)
        return host_faults.wrap(port) if host_faults else port

    client = Client(factory, timeout=0.05, total_timeout=20)
    client.connect()
    results = list(client.infer_many(xs, inflight=3))
    info = client.info()
    client.close()
    check_answers(results, xs, handler)  # each input inferred exactly once, in order
    assert info["inferences"] == len(xs)
    assert client.stats.retries > 0
    assert sum(r.retries for r in results) > 0
    faults = (host_faults or dev_faults).counts
    assert faults["corrupted"] and faults["dropped"] and faults["duplicated"]


@pytest.mark.parametrize("side", ["host", "device"])
def test_disconnects_reconnect_and_resend(device_factory, side):
    faults = FaultInjector(disconnect_every=9, seed=4)
    handler = SumHandler(nbytes=300)
    dev = device_factory(handler, faults=faults if side == "device" else None, max_payload=128)
    xs = inputs(20, nbytes=300, seed=5)

    def factory():
        port = open_port(dev.url)
        return faults.wrap(port) if side == "host" else port

    client = Client(factory, timeout=0.2, total_timeout=10)
    client.connect()
    results = list(client.infer_many(xs, inflight=2))
    client.close()
    check_answers(results, xs, handler)
    assert faults.counts["disconnects"] >= 5
    assert client.stats.reconnects >= 5
    assert dev.connections == client.stats.reconnects + 1


def test_pty_disconnect_reconnect():
    faults = FaultInjector(disconnect_every=7, corrupt=0.001, seed=6)
    master, slave_path, slave_fd = open_pty(timeout=0.01)
    handler = SumHandler()
    server = ProtocolServer(master, handler)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(stop,))
    thread.start()
    try:
        xs = inputs(15, seed=7)
        client = Client(lambda: faults.wrap(open_port(slave_path)), timeout=0.2, total_timeout=10)
        client.connect()
        results = list(client.infer_many(xs, inflight=2))
        client.close()
        check_answers(results, xs, handler)
        assert client.stats.reconnects >= 3
    finally:
        stop.set()
        thread.join(5)
        master.close()
        os.close(slave_fd)


def test_silent_device_times_out_with_clear_error():
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{listener.getsockname()[1]}"
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]))
    thread.start()
    try:
        client = Client(lambda: open_port(url), timeout=0.1, total_timeout=0.6)
        t0 = time.monotonic()
        with pytest.raises(DeviceError) as err:
            client.connect()
        elapsed = time.monotonic() - t0
        client.close()
    finally:
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()
    assert 0.6 <= elapsed < 2.0
    assert str(err.value) == (f"no answer from {url} after 0.6 s "
                              f"(is the board running and the port right?)")
    assert client.stats.retries >= 3  # INFO was resent while waiting


class RawDevice:
    """A device thread that answers each request frame with `respond(frame) -> bytes`."""

    def __init__(self, respond):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"
        self.respond = respond
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self):
        self.listener.settimeout(0.02)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, TimeoutError):
                continue
            conn.settimeout(0.02)
            decoder = FrameDecoder()
            with conn:
                while not self._stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except (socket.timeout, TimeoutError):
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    for frame in decoder.feed(data):
                        try:
                            conn.sendall(self.respond(frame))
                        except OSError:
                            break

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.listener.close()
        assert not self._thread.is_alive()


def test_garbage_between_replies_is_skipped():
    rng = np.random.default_rng(8)
    server = ProtocolServer(None, SumHandler())

    def respond(frame):
        junk = bytes(rng.integers(1, 256, 40, dtype=np.uint8)) + b"\x00"
        return junk + b"".join(server.receive(encode_frame(frame)))

    dev = RawDevice(respond)
    try:
        client = Client(lambda: open_port(dev.url), timeout=0.3, total_timeout=5)
        client.connect()
        xs = inputs(5)
        results = list(client.infer_many(xs))
        client.close()
    finally:
        dev.close()
    check_answers(results, xs, server.handler)
    assert sum(client.stats.frames_dropped.values()) >= 5


def test_garbage_only_device_times_out():
    rng = np.random.default_rng(9)
    dev = RawDevice(lambda frame: bytes(rng.integers(0, 256, 100, dtype=np.uint8)))
    try:
        client = Client(lambda: open_port(dev.url), timeout=0.1, total_timeout=0.5)
        with pytest.raises(DeviceError, match="no answer from socket://"):
            client.connect()
        client.close()
    finally:
        dev.close()
    assert sum(client.stats.frames_dropped.values()) > 0


def test_other_protocol_version_is_reported():
    dev = RawDevice(lambda frame: encode_frame(Frame(2, frame.type | m.REPLY, frame.seq, b"{}")))
    try:
        client = Client(lambda: open_port(dev.url), timeout=0.3, total_timeout=5)
        with pytest.raises(DeviceError, match=r"device speaks protocol v2, this host speaks v1"):
            client.connect()
        client.close()
    finally:
        dev.close()


def test_server_answers_other_version_with_error():
    server = ProtocolServer(None, SumHandler())
    (reply,) = server.receive(encode_frame(Frame(3, m.INFO, 77, b"")))
    (frame,) = FrameDecoder().feed(reply)
    assert (frame.version, frame.type, frame.seq) == (1, m.ERROR, 77)
    assert m.unpack_error(frame.payload) == (m.ERR_VERSION,
                                             "device speaks protocols v1 and v2, request is v3")


def test_device_errors_propagate_and_client_recovers(device_factory):
    dev = device_factory()
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
        client.connect()
        with pytest.raises(DeviceError) as err:
            client.infer(np.zeros(32, np.int16))
        assert err.value.error_code == m.ERR_DTYPE
        assert "answered SLOT_LOAD with ERROR DTYPE (3): LOAD dtype int16, the model's input is int8" \
            in str(err.value)
        with pytest.raises(DeviceError) as err:
            client.infer(np.zeros(65, np.int8))
        assert err.value.error_code == m.ERR_SIZE and "65" in err.value.device_message
        with pytest.raises(UsageError, match="float64"):
            client.infer(np.zeros(64))
        # Errors in the middle of a pipeline: the rest is abandoned, the link stays usable.
        xs = inputs(4)
        with pytest.raises(DeviceError, match="DTYPE"):
            list(client.infer_many([xs[0], np.zeros(64, np.uint8), xs[1]]))
        r = client.infer(xs[2])
        assert int(r.output_raw[0, 0]) == int(xs[2].astype(int).sum())
        dev.handler.fail = "runtime"
        with pytest.raises(DeviceError) as err:
            client.infer(xs[3])
        assert err.value.error_code == m.ERR_RUNTIME
        assert err.value.device_message == "RuntimeError: arena too small"
        dev.handler.fail = "model"
        with pytest.raises(DeviceError) as err:
            client.infer(xs[3])
        assert err.value.error_code == m.ERR_MODEL
        assert "operator FOO is not supported" in str(err.value)


def test_reset_restarts_counters(device_factory):
    dev = device_factory()
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
        client.connect()
        client.infer(inputs(1)[0])
        client.reset()
        assert dev.handler.resets == 1
        info = client.info()
        assert info["inferences"] == 0 and info["log"] == []
        # A reset forgets the loaded input.
        r = client.infer(inputs(1)[0])
        assert r.inferences == 1


def test_closing_infer_many_early_keeps_link_in_step(device_factory):
    dev = device_factory()
    xs = inputs(10)
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
        client.connect()
        gen = client.infer_many(xs, inflight=4)
        first = next(gen)
        gen.close()  # waits for what was in flight
        sent = client.stats.queries
        assert 1 <= sent <= 4
        r = client.infer(xs[0])
        assert int(r.output_raw[0, 0]) == int(xs[0].astype(int).sum())
        assert r.inferences == sent + 1
    assert first.inferences == 1


def test_missing_port_is_one_clear_line():
    with pytest.raises(DeviceError) as err:
        open_port("/dev/ttyEDGEATTACK_NOPE")
    text = str(err.value)
    assert "\n" not in text and "/dev/ttyEDGEATTACK_NOPE" in text and "check" in text
    with socket.create_server(("127.0.0.1", 0)) as s:
        free = s.getsockname()[1]
    with pytest.raises(DeviceError, match=f"socket://127.0.0.1:{free}.*listening"):
        open_port(f"socket://127.0.0.1:{free}")
    client = Client(lambda: open_port("/dev/ttyEDGEATTACK_NOPE"), timeout=0.1, total_timeout=0.2)
    with pytest.raises(DeviceError, match="/dev/ttyEDGEATTACK_NOPE"):
        client.connect()


def test_socket_port_sets_nodelay(device_factory):
    dev = device_factory()
    port = open_port(dev.url)
    try:
        assert port._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        port.close()


def test_single_queries_cost_one_load_and_one_infer_each(device_factory):
    """Black-box attacks query one input at a time: no INFO resync between queries (v1)."""
    dev = device_factory()
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5, protocol=1) as client:
        client.connect()
        before = dev.server.requests
        xs = inputs(5)
        for x in xs:
            client.infer(x)
        after = dev.server.requests
        assert after - before == 2 * len(xs)  # LOAD + INFER per query, nothing else
