"""Protocol v2 (input slots and patches) in Python: the v2 test vectors against the device engine,
version negotiation and the v1 fallback, patched queries over a real socket (with real faults),
and the device's one-line refusals."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from edgeattack.link import messages as m
from edgeattack.link.client import Client
from edgeattack.link.faults import FaultInjector
from edgeattack.link.frame import Frame, FrameDecoder, encode_frame, encode_wire, wire_size
from edgeattack.link.server import ProtocolServer
from edgeattack.link.transport import open_port
from test_link_client_server import SumHandler, device_factory  # noqa: F401 - fixture
from test_link_vectors import EchoHandler, load_generator, to_frame

ROOT = Path(__file__).resolve().parents[1]
V2 = json.loads((ROOT / "tests" / "vectors" / "protocol_v2.json").read_text())


def test_committed_v2_vectors_match_generator():
    assert load_generator().render_v2() == (ROOT / "tests/vectors/protocol_v2.json").read_text(), \
        "run python tools/gen_protocol_vectors.py"


@pytest.mark.parametrize("vec", V2["valid"], ids=lambda v: v["name"])
def test_v2_valid_frames(vec):
    frame = to_frame(vec["frame"])
    assert encode_frame(frame).hex() == vec["wire_hex"]
    assert FrameDecoder().feed(bytes.fromhex(vec["wire_hex"])) == [frame]
    assert load_generator().message_v2(frame) == vec["message"]


@pytest.mark.parametrize("vec", V2["sessions"], ids=lambda v: v["name"])
def test_v2_session_vectors(vec):
    d = vec["device"]
    handler = EchoHandler(d["input_dtype"], d["input_bytes"])
    server = ProtocolServer(None, handler, max_payload=d["max_payload"],
                            reply_cache=d["reply_cache"], slots=d["slots"])
    for step in vec["steps"]:
        sent = to_frame(step["send"])
        replies = server.receive(encode_frame(sent))
        exp = step["expect"]
        if exp is None:
            assert replies == []
            continue
        (reply,) = FrameDecoder().feed(replies[0])
        assert (reply.version, reply.type, reply.seq) == (sent.version, exp["type"], exp["seq"])
        if "error_code" in exp:
            assert m.unpack_error(reply.payload)[0] == exp["error_code"]
        if "info" in exp:
            info = m.unpack_info(reply.payload)
            assert {k: info[k] for k in exp["info"]} == exp["info"]
        if "slot_load_reply" in exp:
            assert list(m.unpack_slot_load_reply(reply.payload)) == exp["slot_load_reply"]
        rest = reply.payload
        if "slot_reply" in exp:
            slot, gen, rest = m.unpack_slot_reply(reply.payload)
            assert [slot, gen] == exp["slot_reply"]
        if "inferences" in exp:
            assert m.unpack_infer_reply(rest).inferences == exp["inferences"]
    # Replayed requests never ran the model again.
    counts = [s["expect"]["inferences"] for s in vec["steps"]
              if s["expect"] and "inferences" in s["expect"]]
    if counts:
        assert handler.runs == max(counts) == server.inferences


def _error_text(server, frame):
    (reply,) = FrameDecoder().feed(server.receive(encode_frame(frame))[0])
    assert reply.type == m.ERROR
    code, text = m.unpack_error(reply.payload)
    assert "\n" not in text
    return m.error_name(code), text


def test_refusals_are_one_line_naming_the_culprit():
    server = ProtocolServer(None, EchoHandler(m.DTYPE_INT8, 16), slots=4)
    server.receive(encode_frame(Frame(2, m.INFO, 1, b"")))
    server.receive(encode_frame(Frame(2, m.SLOT_LOAD, 2, m.pack_slot_load(0, 1, 16, 0, bytes(16)))))
    name, text = _error_text(server, Frame(2, m.PATCH, 3, m.pack_patch(0, 1, [(14, b"abc")])))
    assert name == "SIZE" and text == "PATCH run of 3 bytes at offset 14 overruns slot 0's 16 bytes"
    name, text = _error_text(server, Frame(2, m.SLOT_INFER, 4, m.pack_slot_infer(4)))
    assert name == "SLOT" and text == "slot 4 is out of range: this device has slots 0..3 (INFO slots)"
    server.receive(encode_frame(Frame(2, m.SLOT_LOAD, 5, m.pack_slot_load(1, 1, 16, 0, bytes(16)))))
    name, text = _error_text(server, Frame(2, m.PATCH, 6, m.pack_patch(1, 7, [(0, b"a")])))
    assert name == "STALE" and text == ("PATCH computed against generation 7 of slot 1, which is at "
                                        "generation 1 (LOAD it again)")


def varied(n, nbytes=600, seed=0, changes=3):
    """n inputs, each a few bytes away from the one before (what a black-box attack sends)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, nbytes, dtype=np.int8)
    out = []
    for _ in range(n):
        x = x.copy()
        x[rng.integers(0, nbytes, changes)] = rng.integers(-128, 128, changes)
        out.append(x)
    return out


def _requests_seen(server):
    """Wrap server.handle_frame to record (version, type) of every request frame it gets."""
    seen = []
    inner = server.handle_frame

    def spy(frame):
        seen.append((frame.version, frame.type))
        return inner(frame)

    server.handle_frame = spy
    return seen


def test_v2_opens_with_v1_info_then_patches(device_factory):
    handler = SumHandler(nbytes=600)
    dev = device_factory(handler, max_payload=256)
    seen = _requests_seen(dev.server)
    xs = varied(20)
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
        info = client.connect()
        # the opening v1 INFO lists v2; a v2 INFO (which reports 2) then assigns the boot_id
        assert info["protocol"] == 2 and info["protocols"] == [1, 2] and info["slots"] == 4
        assert info["boot_id"] == client.boot_id != 0
        assert (client.version, client.slots) == (2, 4)
        assert client.info()["protocol"] == 2
        before = client.stats.wire_bytes_sent + client.stats.wire_bytes_received
        results = [client.infer(x) for x in xs]
        wire = client.stats.wire_bytes_sent + client.stats.wire_bytes_received - before
    assert seen[:3] == [(1, m.INFO), (2, m.INFO), (2, m.INFO)]
    # First query: SLOT_LOAD chunks (600 bytes > 256 - 12) + SLOT_INFER; then one PATCH each.
    types = [t for v, t in seen[3:]]
    assert types == [m.SLOT_LOAD] * 3 + [m.SLOT_INFER] + [m.PATCH] * 19
    assert all(v == 2 for v, _ in seen[1:])
    assert handler.inputs == [x.tobytes() for x in xs]
    assert [int(r.output_raw[0, 0]) for r in results] == [int(x.astype(int).sum()) for x in xs]
    # v1 reference: LOAD chunks + INFER and their replies, per query.
    v1 = 20 * (3 * wire_size(12) + 600 + 3 * wire_size(8) + wire_size(4) + wire_size(16 + 8))
    assert wire < 0.2 * v1


def test_slots_pin_samples_and_reset_forgets_them(device_factory):
    handler = SumHandler(nbytes=100)
    dev = device_factory(handler)
    seen = _requests_seen(dev.server)
    a, b = varied(6, nbytes=100, seed=1), varied(6, nbytes=100, seed=2)
    xs = [x for pair in zip(a, b) for x in pair]  # two samples interleaved
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
        client.connect()
        results = list(client.infer_many(xs, inflight=2, slots=[0, 1] * 6))
        assert [t for _, t in seen[1:]].count(m.PATCH) == 10  # both samples patched after a load
        del seen[:]
        client.reset()  # the device forgets its slots, and so does the host
        client.infer(a[1])
    assert [t for _, t in seen if t != m.INFO][-2:] == [m.SLOT_LOAD, m.SLOT_INFER]
    assert [int(r.output_raw[0, 0]) for r in results] == [int(x.astype(int).sum()) for x in xs]


class V1Server(ProtocolServer):
    """A protocol-v1 device: INFO without `protocols`, every other version answered VERSION."""

    def handle_frame(self, frame):
        if frame.version != 1:
            frame = Frame(99, frame.type, frame.seq, frame.payload)
        return super().handle_frame(frame)

    def info(self):
        info = super().info()
        del info["protocols"], info["slots"]
        return info


def test_v2_host_on_v1_device_falls_back_with_one_log_line(device_factory, caplog):
    dev = device_factory(SumHandler(nbytes=64))
    dev.server.__class__ = V1Server
    seen = _requests_seen(dev.server)
    xs = varied(5, nbytes=64)
    with caplog.at_level(logging.INFO, logger="edgeattack.link.client"):
        with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
            client.connect()
            results = [client.infer(x) for x in xs]
            client.info()
            assert (client.version, client.slots) == (1, 1)
    lines = [r.getMessage() for r in caplog.records if "only protocol v1" in r.getMessage()]
    assert lines == [f"device at {dev.url} speaks only protocol v1: every query is a full LOAD"]
    assert {v for v, _ in seen} == {1}
    assert [t for _, t in seen[1:11]] == [m.LOAD, m.INFER] * 5
    assert [int(r.output_raw[0, 0]) for r in results] == [int(x.astype(int).sum()) for x in xs]


def test_patched_queries_under_faults_are_exact(device_factory):
    """1% corrupted, 0.5% dropped bytes, a disconnect every 200 frames, both directions: the same
    answers as a clean link, every query inferred exactly once."""
    xs = varied(60, nbytes=100, seed=5)
    slots = [i % 3 for i in range(len(xs))]
    clean = SumHandler(nbytes=100)
    dev = device_factory(clean)
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
        client.connect()
        want = [r.output_raw.tolist() for r in client.infer_many(xs, inflight=3, slots=slots)]
        clean_wire = client.stats.wire_bytes_sent + client.stats.wire_bytes_received

    class Paused(FaultInjector):  # off for the connect's INFO (its JSON would never get through)
        paused = True

        def mangle(self, data):
            return data if self.paused else super().mangle(data)

        def cut_point(self, data):
            return None if self.paused else super().cut_point(data)

    faults = Paused(corrupt=0.01, drop=0.005, disconnect_every=200, seed=11)
    handler = SumHandler(nbytes=100)
    dev = device_factory(handler)
    client = Client(lambda: faults.wrap(open_port(dev.url)), timeout=0.05, total_timeout=30)
    client.connect()
    faults.paused = False
    got = [r.output_raw.tolist() for r in client.infer_many(xs, inflight=3, slots=slots)]
    faults.paused = True
    client.close()
    assert got == want
    assert handler.inputs == clean.inputs == [x.tobytes() for x in xs]  # once each, in order
    assert dev.server.inferences == len(xs)
    c = faults.counts
    assert client.stats.retries > 0 and c["corrupted"] and c["dropped"] and c["disconnects"] >= 1
    print(f"faults {c}, retries {client.stats.retries}, clean wire {clean_wire} B, "
          f"faulty {client.stats.wire_bytes_sent + client.stats.wire_bytes_received} B")


class TwiceInfoServer(ProtocolServer):
    """Answers the opening v1 INFO twice, as a device does when a slow line made the host resend
    it: the second answer reaches the host after it has moved to v2."""

    late = None

    def handle_frame(self, frame):
        reply = super().handle_frame(frame)
        if frame.type == m.INFO and frame.version == 1 and reply is not None:
            self.late = reply  # sent again ahead of the next answer
            return reply
        if self.late is not None and reply is not None:
            reply, self.late = self.late + reply, None
        return reply


def test_late_second_answer_to_the_opening_info_is_stale_not_a_version_error(device_factory):
    dev = device_factory(SumHandler(nbytes=64))
    dev.server.__class__ = TwiceInfoServer
    xs = varied(5, nbytes=64)
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
        client.connect()
        assert client.version == 2
        results = [client.infer(x) for x in xs]
        assert client.stats.stale_replies == 1
    assert [int(r.output_raw[0, 0]) for r in results] == [int(x.astype(int).sum()) for x in xs]


class StrayV1Server(ProtocolServer):
    """Sends, ahead of its first v2 answer, a v1 ERROR under a sequence number long gone: a late
    frame from an earlier v1 session on the same port."""

    stray_sent = False

    def handle_frame(self, frame):
        reply = super().handle_frame(frame)
        if frame.version == 2 and reply is not None and not self.stray_sent:
            self.stray_sent = True
            stray = encode_wire(1, m.ERROR, (frame.seq - 1000) & 0xFFFF,
                                m.pack_error(m.ERR_NOT_LOADED, "from an earlier session"))
            reply = stray + reply
        return reply


def test_late_frame_of_any_version_matching_nothing_in_flight_is_stale(device_factory):
    dev = device_factory(SumHandler(nbytes=64))
    dev.server.__class__ = StrayV1Server
    xs = varied(3, nbytes=64)
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
        client.connect()
        results = [client.infer(x) for x in xs]
        assert dev.server.stray_sent and client.version == 2
        assert client.stats.stale_replies == 1
    assert [int(r.output_raw[0, 0]) for r in results] == [int(x.astype(int).sum()) for x in xs]
