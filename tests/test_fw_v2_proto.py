"""Protocol v2 in the firmware's C engine (firmware_models/proto, built for the host with ASan and
UBSan by test_fw_proto.py's harness): every frame and session of tests/vectors/protocol_v2.json, and a
seeded random request stream, answered byte for byte as the Python reference (link.server) answers
them. ERROR replies are compared by code (the message texts of v1 errors are worded differently);
the v2 refusals' texts are compared too.
"""
from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from edgeattack.link import messages as m
from edgeattack.link.frame import Frame, FrameDecoder, encode_frame
from edgeattack.link.server import ProtocolServer
from test_fw_proto import Harness, harness_exe  # noqa: F401 - fixture

V2 = json.loads((Path(__file__).parent / "vectors" / "protocol_v2.json").read_text())


class SlotHarness(Harness):
    """The C harness with `slots` input slots (its argv[4])."""

    def __init__(self, exe, max_payload, cache, slots):
        self.proc = subprocess.Popen([str(exe), str(max_payload), "ok", str(cache), str(slots)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def send(self, frame: Frame) -> list[Frame]:
        answer = self.ask(f"dev {encode_frame(frame).hex()}")
        if answer == "-":
            return []
        dec = FrameDecoder()
        frames = dec.feed(bytes.fromhex(answer))
        assert dec.dropped == 0, answer
        return frames


class HarnessModel:
    """The Python twin of tests/fw_proto_host.c's stand-in model: int8 [1,4,4,1] in, 3 int8 out,
    out[k] = sum(input) + 7k mod 256, an input starting 7f 7f fails, every window 1000 ticks."""

    def __init__(self):
        self.runs = 0

    def info(self):
        return {"board": "host-test"}

    def input_spec(self):
        return m.DTYPE_INT8, 16

    def infer(self, data, repeat):
        if data[:2] == b"\x7f\x7f":
            raise m.ProtocolError(m.ERR_RUNTIME, "test model: inference failed on purpose")
        self.runs += repeat
        s = sum(data)
        return bytes((s + 7 * k) & 0xFF for k in range(3)), m.DTYPE_INT8, 1000

    def reset(self):
        pass


class Twins:
    """The C engine and the Python reference, fed the same frames."""

    def __init__(self, exe, max_payload, cache, slots):
        self.c = SlotHarness(exe, max_payload, cache, slots)
        self.model = HarnessModel()
        self.py = ProtocolServer(None, self.model, max_payload=max_payload, reply_cache=cache,
                                 slots=slots)

    def send(self, frame: Frame, where: str) -> list[Frame]:
        got = self.c.send(frame)
        want = [f for wire in self.py.receive(encode_frame(frame)) for f in FrameDecoder().feed(wire)]
        assert len(got) == len(want), (where, got, want)
        for g, w in zip(got, want):
            assert (g.version, g.type, g.seq) == (w.version, w.type, w.seq), (where, g, w)
            if w.type == m.ERROR:
                assert m.unpack_error(g.payload)[0] == m.unpack_error(w.payload)[0], (where, g, w)
            elif w.type == m.INFO | m.REPLY:
                gi, wi = m.unpack_info(g.payload), m.unpack_info(w.payload)
                keys = ("protocol", "protocols", "slots", "boot_id", "max_payload", "reply_cache",
                        "inferences")
                assert {k: gi[k] for k in keys} == {k: wi[k] for k in keys}, where
            else:
                assert g.payload == w.payload, (where, g, w)  # byte for byte
        return got

    def close(self):
        assert int(self.c.ask("runs")) == self.model.runs  # nothing ran twice, nothing skipped
        self.c.close()


@pytest.mark.parametrize("vec", V2["valid"], ids=lambda v: v["name"])
def test_v2_valid_frames_decode_and_encode(harness_exe, vec):  # noqa: F811
    h = Harness(harness_exe, max_payload=0xFFFF)
    try:
        fr = vec["frame"]
        assert h.ask(f"rx {vec['wire_hex']}") == \
            f"F:{fr['version']}:{fr['type']}:{fr['seq']}:{fr['payload_hex']}"
        assert h.ask(f"encv {fr['version']} {fr['type']} {fr['seq']} {fr['payload_hex']}") == \
            vec["wire_hex"]
    finally:
        h.close()


@pytest.mark.parametrize("vec", V2["sessions"], ids=lambda v: v["name"])
def test_v2_session_vectors(harness_exe, vec):  # noqa: F811
    d = vec["device"]
    assert (d["input_dtype"], d["input_bytes"]) == (m.DTYPE_INT8, 16)  # the harness's model
    twins = Twins(harness_exe, d["max_payload"], d["reply_cache"], d["slots"])
    try:
        for n, step in enumerate(vec["steps"]):
            s = step["send"]
            sent = Frame(s["version"], s["type"], s["seq"], bytes.fromhex(s["payload_hex"]))
            where = f"{vec['name']} step {n}"
            frames = twins.send(sent, where)
            exp = step["expect"]
            if exp is None:
                assert frames == [], where
                continue
            (f,) = frames
            assert (f.version, f.type, f.seq) == (sent.version, exp["type"], exp["seq"]), where
            if "error_code" in exp:
                assert m.unpack_error(f.payload)[0] == exp["error_code"], (where, f.payload)
            if "info" in exp:
                info = m.unpack_info(f.payload)
                assert {k: info[k] for k in exp["info"]} == exp["info"], where
            if "load_reply" in exp:
                assert list(m.unpack_load_reply(f.payload)) == exp["load_reply"], where
            if "slot_load_reply" in exp:
                assert list(m.unpack_slot_load_reply(f.payload)) == exp["slot_load_reply"], where
            rest = f.payload
            if "slot_reply" in exp:
                slot, gen, rest = m.unpack_slot_reply(f.payload)
                assert [slot, gen] == exp["slot_reply"], where
            if "inferences" in exp:
                assert m.unpack_infer_reply(rest).inferences == exp["inferences"], where
            if "payload_hex" in exp:
                assert f.payload.hex() == exp["payload_hex"], where
    finally:
        twins.close()


def _random_request(rng: random.Random, gens: dict) -> tuple[int, int, bytes]:
    """(version, type, payload) of a plausible request: mostly valid, often slightly wrong."""
    x = bytes(rng.randrange(256) for _ in range(16))
    if rng.random() < 0.05:
        x = b"\x7f\x7f" + x[2:]  # the model fails on this input
    slot = rng.choice([0, 1, 2, 3, 3, 4, 200])
    gen = gens.get(slot, 0) + rng.choice([0, 0, 0, 0, 1, -1])
    kind = rng.randrange(9)
    if kind == 0:
        return 1, m.LOAD, m.pack_load(m.DTYPE_INT8, 16, 0, x)
    if kind == 1:
        return rng.choice([1, 2]), m.INFER, m.pack_infer(rng.choice([0, 1, 2]))
    if kind == 2:
        dtype = rng.choice([m.DTYPE_INT8] * 5 + [m.DTYPE_UINT8])
        total = rng.choice([16] * 8 + [17])
        offset = rng.choice([0, 0, 0, 8, 4])
        return 2, m.SLOT_LOAD, m.pack_slot_load(slot, dtype, total, offset, x[offset:offset + rng.choice([16, 8, 12])])
    if kind in (3, 4, 5):
        runs = [(rng.choice([0, 3, 10, 15, 16]), x[:rng.randrange(0, 4)]) for _ in range(rng.randrange(0, 4))]
        payload = m.pack_patch(slot, gen & 0xFFFFFFFF, runs, infer=rng.random() < 0.6,
                               repeat=rng.choice([0, 1, 3]))
        if rng.random() < 0.08:
            payload = payload[:-1] if rng.random() < 0.5 else payload + b"\x00"  # runs do not fill it
        if rng.random() < 0.04:
            payload = payload[:1] + bytes([payload[1] | 0x04]) + payload[2:]  # an unknown flag
        return 2, m.PATCH, payload
    if kind == 6:
        return 2, m.SLOT_INFER, m.pack_slot_infer(slot, rng.choice([0, 1, 2]))
    if kind == 7:
        return 1, rng.choice([m.SLOT_LOAD, m.PATCH, m.SLOT_INFER]), bytes(4)  # v2 types in v1 frames
    if rng.random() < 0.03:
        return rng.choice([1, 2]), m.RESET, b""  # then NOT_SYNCED until an INFO
    version = rng.choice([1, 2, 3])
    boot_id = version == 2 and rng.random() < 0.5
    return version, m.INFO, m.pack_info_request(rng.randrange(1 << 32)) if boot_id else b""


def test_random_v2_stream_matches_the_python_reference(harness_exe):  # noqa: F811
    """600 requests: every message, wrong generations, bad slots, refusals, the failing input,
    retransmissions (answered from the cache) and gaps (dropped), both versions."""
    rng = random.Random(20261205)
    twins = Twins(harness_exe, max_payload=64, cache=6, slots=4)
    gens: dict = {}
    seen: set = set()
    history: list[Frame] = []
    seq = 100
    try:
        twins.send(Frame(1, m.INFO, seq, b""), "the opening INFO")
        for i in range(600):
            r = rng.random()
            if history and r < 0.1:
                frame = rng.choice(history[-8:])  # a retransmission (never of an INFO: it resyncs)
            elif r < 0.13:
                frame = Frame(2, m.SLOT_INFER, (seq + rng.randrange(2, 5)) & 0xFFFF, m.pack_slot_infer(0))  # a gap
            else:
                seq = (seq + 1) & 0xFFFF
                version, mtype, payload = _random_request(rng, gens)
                frame = Frame(version, mtype, seq, payload)
                if version == 3:
                    seq = (seq - 1) & 0xFFFF  # answered VERSION, not executed: the number is free
                elif mtype != m.INFO:
                    history.append(frame)
            for reply in twins.send(frame, f"request {i}: {frame}"):
                seen.add(m.error_name(m.unpack_error(reply.payload)[0]) if reply.type == m.ERROR
                         else m.TYPE_NAMES[reply.type & 0x7F])
                if reply.type in (m.SLOT_LOAD | m.REPLY, m.PATCH | m.REPLY, m.SLOT_INFER | m.REPLY):
                    slot, gen = (m.unpack_slot_load_reply(reply.payload)[:2]
                                 if reply.type == m.SLOT_LOAD | m.REPLY else m.unpack_slot_reply(reply.payload)[:2])
                    gens[slot] = gen
        print(f"replays {twins.py.replays}, gaps {twins.py.gaps}, runs {twins.model.runs}, "
              f"generations {gens}")
        assert twins.py.replays > 10 and twins.py.gaps > 5 and twins.model.runs > 50
        # the stream reached every reply and every refusal it is meant to compare
        assert seen >= {"INFO", "LOAD", "INFER", "SLOT_LOAD", "PATCH", "SLOT_INFER", "STALE", "SLOT",
                        "SIZE", "NOT_LOADED", "OFFSET", "DTYPE", "BAD_REQUEST", "RUNTIME", "VERSION",
                        "RESET", "NOT_SYNCED"}, seen
    finally:
        twins.close()


def _error(h: SlotHarness, frame: Frame) -> tuple[str, str]:
    (reply,) = h.send(frame)
    assert reply.type == m.ERROR and reply.version == frame.version
    code, text = m.unpack_error(reply.payload)
    return m.error_name(code), text


def test_v2_refusals_are_one_line_naming_the_culprit(harness_exe):  # noqa: F811
    """The same texts as the Python agent's (tests/test_link_v2.py)."""
    h = SlotHarness(harness_exe, 256, 8, 4)
    try:
        h.send(Frame(2, m.INFO, 1, b""))
        h.send(Frame(2, m.SLOT_LOAD, 2, m.pack_slot_load(0, 1, 16, 0, bytes(16))))
        assert _error(h, Frame(2, m.PATCH, 3, m.pack_patch(0, 1, [(14, b"abc")]))) == \
            ("SIZE", "PATCH run of 3 bytes at offset 14 overruns slot 0's 16 bytes")
        assert _error(h, Frame(2, m.SLOT_INFER, 4, m.pack_slot_infer(4))) == \
            ("SLOT", "slot 4 is out of range: this device has slots 0..3 (INFO slots)")
        h.send(Frame(2, m.SLOT_LOAD, 5, m.pack_slot_load(1, 1, 16, 0, bytes(16))))
        assert _error(h, Frame(2, m.PATCH, 6, m.pack_patch(1, 7, [(0, b"a")]))) == \
            ("STALE", "PATCH computed against generation 7 of slot 1, which is at generation 1 "
                      "(LOAD it again)")
        assert _error(h, Frame(2, m.PATCH, 7, m.pack_patch(1, 1, [(0, b"a")]))) == \
            ("NOT_LOADED", "PATCH of slot 1, which holds no complete input (LOAD it first)")
        name, text = _error(h, Frame(1, m.PATCH, 8, m.pack_patch(0, 1, [])))
        assert name == "BAD_REQUEST" and "v1 frame" in text
    finally:
        h.close()


def test_one_slot_device_reports_it(harness_exe):  # noqa: F811
    """A firmware built with one input slot (RAM too small for more) says so in INFO and refuses
    slot 1; v1 LOAD / INFER and slot 0 work as usual."""
    h = SlotHarness(harness_exe, 256, 8, 1)
    try:
        (info,) = h.send(Frame(1, m.INFO, 1, b""))
        assert m.unpack_info(info.payload)["slots"] == 1
        assert _error(h, Frame(2, m.SLOT_LOAD, 2, m.pack_slot_load(1, 1, 16, 0, bytes(16))))[0] == "SLOT"
        (r,) = h.send(Frame(2, m.SLOT_LOAD, 3, m.pack_slot_load(0, 1, 16, 0, bytes(range(16)))))
        assert m.unpack_slot_load_reply(r.payload) == (0, 1, 16, 16)
        (r,) = h.send(Frame(2, m.PATCH, 4, m.pack_patch(0, 1, [(0, b"\x10")], infer=True)))
        slot, gen, rest = m.unpack_slot_reply(r.payload)
        assert (slot, gen) == (0, 2) and m.unpack_infer_reply(rest).output == bytes(
            (sum(range(16)) + 16 + 7 * k) & 0xFF for k in range(3))
    finally:
        h.close()
