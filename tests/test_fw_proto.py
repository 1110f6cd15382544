"""The firmware's protocol code (firmware_models/proto, C11) compiled for the host with ASan and UBSan,
checked against the Python implementation (edgeattack.link) and docs/protocol.md.

tests/fw_proto_host.c drives it line by line (see its header). The model behind the server there is a
test stand-in (out[k] = sum(input) + 7k); the real runtime runs end to end in tests/test_fw_qemu.py.
"""
from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from edgeattack.link import messages as m
from edgeattack.link.frame import Frame, FrameDecoder, encode_frame, frame_body
from edgeattack.resources import firmware_dir

HERE = Path(__file__).parent
VECTORS = HERE / "vectors" / "protocol_v1.json"
MAX_PAYLOAD = 600  # the harness's receiver limit (argv[1])


@pytest.fixture(scope="module")
def harness_exe(tmp_path_factory):
    require_tool("gcc")
    out = tmp_path_factory.mktemp("fwproto") / "proto_host"
    proto, util = firmware_dir() / "proto", firmware_dir() / "util"  # the protocol and the layer below it
    srcs = sorted(str(p) for p in [*proto.glob("*.c"), *util.glob("*.c")])
    cmd = ["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
           f"-I{proto}", f"-I{util}", "-o", str(out), str(HERE / "fw_proto_host.c"), *srcs]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


class Harness:
    def __init__(self, exe, mode="ok", max_payload=MAX_PAYLOAD, cache=8):
        self.proc = subprocess.Popen([str(exe), str(max_payload), mode, str(cache)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise AssertionError(f"harness died: {self.proc.stderr.read()}")
        return answer.strip()

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=30)
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        assert rc == 0, f"harness exited {rc} (sanitizer report?):\n{err}"


@pytest.fixture
def harness(harness_exe):
    h = Harness(harness_exe)
    yield h
    h.close()


@pytest.fixture
def broken_harness(harness_exe):
    h = Harness(harness_exe, mode="broken")
    yield h
    h.close()


# -------------------------------------------------------------------------------------------------
# CRC, COBS, frames


def test_crc32_is_zlib(harness):
    rng = random.Random(1)
    for n in [0, 1, 9, 255, 1000]:
        data = bytes(rng.randrange(256) for _ in range(n))
        assert harness.ask(f"crc {data.hex()}") == f"{zlib.crc32(data):08x}"
    assert harness.ask(f"crc {b'123456789'.hex()}") == "cbf43926"


def _payloads():
    rng = random.Random(2)
    sizes = [0, 1, 2, 243, 244, 245, 253, 254, 255, 497, 498, 499, 508, MAX_PAYLOAD]
    out = []
    for n in sizes:
        out.append(bytes(rng.randrange(1, 256) for _ in range(n)))  # no zeros: full COBS blocks
        out.append(bytes(rng.choice([0, 0, rng.randrange(256)]) for _ in range(n)))  # many zeros
    return out


def test_encoder_matches_python(harness):
    for i, payload in enumerate(_payloads()):
        seq = (i * 977) & 0xFFFF
        expected = encode_frame(Frame(1, 0x83, seq, payload)).hex()
        assert harness.ask(f"enc {0x83} {seq} {payload.hex()}") == expected


def test_receiver_decodes_python_frames_in_one_stream(harness):
    payloads = _payloads()
    stream = b"".join(encode_frame(Frame(1, 2, i, p)) for i, p in enumerate(payloads))
    events = harness.ask(f"rx {stream.hex()}").split()
    assert events == [f"F:1:2:{i}:{p.hex()}" for i, p in enumerate(payloads)]


def test_receiver_resyncs_after_garbage_and_reports_each_drop(harness):
    good = encode_frame(Frame(1, 3, 7, b"\x01\x00\x00\x00"))
    body = frame_body(Frame(1, 3, 8, b"abc"))
    from edgeattack.link import cobs

    bad_crc = cobs.encode(body[:-1] + bytes([body[-1] ^ 0x55])) + b"\x00"
    short = cobs.encode(b"\x01\x03\x00") + b"\x00"
    wrong_len = cobs.encode(body[:4] + b"\x09\x00" + body[6:]) + b"\x00"
    bad_cobs = b"\x05\x11\x22\x00"  # a block announcing 4 data bytes, 2 before the delimiter
    garbage = b"\x13\x37\xff\xfe"  # half a frame: the next delimiter ends it
    stream = b"\x00" + garbage + b"\x00" + good + bad_crc + short + wrong_len + bad_cobs + good
    events = harness.ask(f"rx {stream.hex()}").split()
    frame = "F:1:3:7:01000000"
    # the garbage is not valid COBS (its first block announces 18 bytes)
    assert events == ["E", "D:cobs", frame, "D:crc", "D:short", "D:length", "D:cobs", frame]


def test_oversize_frame_is_reported_with_its_header(harness):
    big = bytes(range(256)) * 3  # 768 > MAX_PAYLOAD, zeros inside
    events = harness.ask(f"rx {encode_frame(Frame(1, 2, 99, big)).hex()}").split()
    assert events == [f"O:1:2:99:{len(big)}"]
    # and a damaged oversize frame is a CRC drop, like any other
    wire = bytearray(encode_frame(Frame(1, 2, 99, big)))
    wire[300] ^= 0x01 if wire[300] not in (0, 1) else 0x02
    assert harness.ask(f"rx {bytes(wire).hex()}").split() == ["D:crc"]


def test_json_float_is_exact_for_float32(harness):
    rng = np.random.default_rng(3)
    bits = list(rng.integers(0, 2**32, 300, dtype=np.uint64))
    specials = [0x00000000, 0x80000000, 0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0x3F800000,
                0x3B808081, 0x4B800000, 0xC2F70000]
    for b in [*specials, *bits]:
        b = int(b)
        value = np.array([b], dtype=np.uint32).view(np.float32)[0]
        text = harness.ask(f"json_f32 {b:08x}")
        if not np.isfinite(value):
            assert text == "null"
            continue
        parsed = json.loads(text)
        assert isinstance(parsed, float)
        assert parsed == float(value), (hex(b), text)


# -------------------------------------------------------------------------------------------------
# The server: sequence numbers, reply cache, messages


class Dev:
    """Talk to the harness's protocol server with the Python frame code."""

    def __init__(self, h: Harness):
        self.h = h
        self.decoder = FrameDecoder()

    def raw(self, wire: bytes) -> list[Frame]:
        answer = self.h.ask(f"dev {wire.hex()}")
        if answer == "-":
            return []
        frames = self.decoder.feed(bytes.fromhex(answer))
        assert self.decoder.dropped == 0
        return frames

    def send(self, mtype: int, seq: int, payload: bytes = b"", version: int = 1) -> list[Frame]:
        return self.raw(encode_frame(Frame(version, mtype, seq, payload)))

    def one(self, mtype, seq, payload=b"") -> Frame:
        frames = self.send(mtype, seq, payload)
        assert len(frames) == 1, frames
        assert frames[0].seq == seq
        return frames[0]

    def info(self, seq) -> dict:
        f = self.one(m.INFO, seq)
        assert f.type == m.INFO | m.REPLY
        return json.loads(f.payload.decode())

    def error(self, mtype, seq, payload=b"") -> tuple[int, str]:
        f = self.one(mtype, seq, payload)
        assert f.type == m.ERROR, f
        code, msg = m.unpack_error(f.payload)
        assert len(msg.encode()) <= 200
        return code, msg


X = bytes(range(1, 17))


def _expected_out(x: bytes) -> bytes:
    s = sum(x)
    return bytes((s + 7 * k) & 0xFF for k in range(3))


def test_info_json(harness):
    info = Dev(harness).info(41)
    assert info["protocol"] == 1 and info["board"] == "host-test" and info["runtime"] == "edgeattack-c"
    assert info["model_sha256"] == "00112233445566778899aabbccddeeff" * 2
    assert info["input"] == {"shape": [1, 4, 4, 1], "dtype": "int8",
                             "scale": float(np.float32(1 / 255)), "zero_point": -128}
    assert info["output"] == {"shape": [1, 3], "dtype": "int8", "scale": 0.00390625, "zero_point": -128}
    assert info["tick_hz"] == 1000000 and info["max_payload"] == MAX_PAYLOAD and info["rx_buffers"] == 2
    assert info["reply_cache"] == 8
    assert info["inferences"] == 0 and info["overruns"] == 0 and info["crc_errors"] == 0
    assert info["log"] == [] and "error" not in info


def test_load_infer_window_and_counters(harness):
    d = Dev(harness)
    d.info(100)
    f = d.one(m.LOAD, 101, m.pack_load(m.DTYPE_INT8, 16, 0, X[:10]))
    assert f.type == m.LOAD | m.REPLY and m.unpack_load_reply(f.payload) == (10, 16)
    f = d.one(m.LOAD, 102, m.pack_load(m.DTYPE_INT8, 16, 10, X[10:]))
    assert m.unpack_load_reply(f.payload) == (16, 16)
    r = m.unpack_infer_reply(d.one(m.INFER, 103, m.pack_infer(1)).payload)
    assert r.output == _expected_out(X) and r.inferences == 1 and r.dtype == m.DTYPE_INT8 and r.ticks > 0
    r = m.unpack_infer_reply(d.one(m.INFER, 104, m.pack_infer(5)).payload)  # same input, 5 runs
    assert r.output == _expected_out(X) and r.inferences == 6
    r0 = m.unpack_infer_reply(d.one(m.INFER, 105, struct.pack("<HH", 0, 0)).payload)  # 0 means 1
    assert r0.inferences == 7
    info = d.info(106)
    assert info["inferences"] == 7
    log = info["log"]
    assert [e["event"] for e in log] == ["start", "end"] * 3
    assert [e["inference"] for e in log] == [1, 1, 2, 6, 7, 7]
    assert all(b["ticks"] > a["ticks"] for a, b in zip(log, log[1:]))


def test_retransmission_replays_without_running_again(harness):
    d = Dev(harness)
    d.info(1)
    d.one(m.LOAD, 2, m.pack_load(m.DTYPE_INT8, 16, 0, X))
    first = d.one(m.INFER, 3, m.pack_infer(1))
    again = d.one(m.INFER, 3, m.pack_infer(1))  # the host lost the reply and goes back
    assert again == first
    again_load = d.one(m.LOAD, 2, m.pack_load(m.DTYPE_INT8, 16, 0, X))
    assert m.unpack_load_reply(again_load.payload) == (16, 16)
    assert d.info(4)["inferences"] == 1


def test_gap_is_dropped_silently_then_in_order_request_runs(harness):
    d = Dev(harness)
    d.info(500)
    assert d.send(m.LOAD, 502, m.pack_load(m.DTYPE_INT8, 16, 0, X)) == []  # 501 was lost
    assert d.send(m.INFER, 503, m.pack_infer(1)) == []
    f = d.one(m.LOAD, 501, m.pack_load(m.DTYPE_INT8, 16, 0, X))
    assert f.type == m.LOAD | m.REPLY
    assert d.one(m.LOAD, 502, m.pack_load(m.DTYPE_INT8, 16, 0, X)).type == m.LOAD | m.REPLY
    assert m.unpack_infer_reply(d.one(m.INFER, 503, m.pack_infer(1)).payload).inferences == 1
    info = d.info(504)
    assert info["seq_gaps"] == 2 and info["inferences"] == 1


def test_sequence_wraps_and_first_request_sets_it(harness):
    d = Dev(harness)
    # after boot every request but INFO is NOT_SYNCED (changing nothing); INFO may carry any seq
    assert d.error(m.LOAD, 7, m.pack_load(m.DTYPE_INT8, 16, 0, X))[0] == m.ERR_NOT_SYNCED
    assert d.info(65534)["boot_id"] == 0
    assert d.one(m.LOAD, 65535, m.pack_load(m.DTYPE_INT8, 16, 0, X)).type == m.LOAD | m.REPLY
    assert d.one(m.INFER, 0, m.pack_infer(1)).type == m.INFER | m.REPLY  # 65535 + 1 wraps to 0


def test_reply_cache_holds_the_last_eight(harness):
    d = Dev(harness)
    d.info(10)
    replies = {}
    for seq in range(11, 21):  # ten LOADs
        replies[seq] = d.one(m.LOAD, seq, m.pack_load(m.DTYPE_INT8, 16, 0, X[:seq - 10]))
    for seq in range(13, 21):  # the last 8 replay exactly
        assert d.one(m.LOAD, seq, m.pack_load(m.DTYPE_INT8, 16, 0, b"")) == replies[seq]
    assert d.send(m.LOAD, 11, m.pack_load(m.DTYPE_INT8, 16, 0, b"")) == []  # evicted: a gap
    # INFO resynchronizes and clears the cache
    d.info(200)
    assert d.send(m.LOAD, 20, m.pack_load(m.DTYPE_INT8, 16, 0, b"")) == []


def test_error_codes(harness):
    d = Dev(harness)
    d.info(1)
    code, msg = d.error(m.INFER, 2, m.pack_infer(1))
    assert code == m.ERR_NOT_LOADED and "0 of 16" in msg
    code, msg = d.error(m.LOAD, 3, m.pack_load(m.DTYPE_UINT8, 16, 0, X))
    assert code == m.ERR_DTYPE and "uint8" in msg and "int8" in msg
    code, msg = d.error(m.LOAD, 4, m.pack_load(m.DTYPE_INT8, 17, 0, X))
    assert code == m.ERR_SIZE and "17" in msg and "16" in msg
    code, msg = d.error(m.LOAD, 5, m.pack_load(m.DTYPE_INT8, 16, 0, X + X[:1]))
    assert code == m.ERR_SIZE and "overruns" in msg
    code, msg = d.error(m.LOAD, 6, m.pack_load(m.DTYPE_INT8, 16, 4, X[:4]))
    assert code == m.ERR_OFFSET and "expected offset 0" in msg
    code, _ = d.error(m.LOAD, 7, b"\x01\x00\x00")
    assert code == m.ERR_BAD_REQUEST
    code, _ = d.error(m.INFER, 8, b"\x01\x00")
    assert code == m.ERR_BAD_REQUEST
    code, msg = d.error(0x33, 9)
    assert code == m.ERR_BAD_REQUEST and "51" in msg
    code, _ = d.error(m.RESET, 10, b"x")
    assert code == m.ERR_BAD_REQUEST
    code, msg = d.error(m.LOAD, 11, m.pack_load(m.DTYPE_INT8, 16, 0, bytes(MAX_PAYLOAD)))
    assert code == m.ERR_TOO_LARGE and str(MAX_PAYLOAD) in msg
    d.one(m.LOAD, 12, m.pack_load(m.DTYPE_INT8, 16, 0, b"\x7f\x7f" + X[2:]))
    code, msg = d.error(m.INFER, 13, m.pack_infer(1))
    assert code == m.ERR_RUNTIME and "on purpose" in msg
    # docs/protocol.md: OFFSET is checked before the overrun, and a refused LOAD (OFFSET included)
    # leaves no tensor, partial or complete
    d.one(m.LOAD, 14, m.pack_load(m.DTYPE_INT8, 16, 0, X[:8]))
    code, msg = d.error(m.LOAD, 15, m.pack_load(m.DTYPE_INT8, 16, 12, X[:8]))
    assert code == m.ERR_OFFSET and "expected offset 8" in msg
    code, msg = d.error(m.LOAD, 16, m.pack_load(m.DTYPE_INT8, 16, 8, X[8:]))
    assert code == m.ERR_OFFSET and "expected offset 0" in msg
    assert d.error(m.INFER, 17, m.pack_infer(1))[0] == m.ERR_NOT_LOADED
    d.one(m.LOAD, 18, m.pack_load(m.DTYPE_INT8, 16, 0, X))
    assert m.unpack_infer_reply(d.one(m.INFER, 19, m.pack_infer(1)).payload).output == _expected_out(X)


def test_other_version_is_answered_and_changes_nothing(harness):
    d = Dev(harness)
    d.info(30)
    frames = d.send(m.LOAD, 31, m.pack_load(m.DTYPE_INT8, 16, 0, X), version=3)
    assert len(frames) == 1 and frames[0].type == m.ERROR and frames[0].seq == 31
    assert frames[0].version == 1  # answered in a frame every host reads
    assert m.unpack_error(frames[0].payload) == (m.ERR_VERSION, "device speaks protocols v1 and v2, "
                                                                "request is v3")
    assert d.one(m.LOAD, 31, m.pack_load(m.DTYPE_INT8, 16, 0, X)).type == m.LOAD | m.REPLY


def test_crc_errors_are_counted_and_dropped(harness):
    d = Dev(harness)
    d.info(1)
    from edgeattack.link import cobs

    body = bytearray(frame_body(Frame(1, m.LOAD, 2, m.pack_load(m.DTYPE_INT8, 16, 0, X))))
    body[20] ^= 0x08  # valid COBS around a damaged byte: only the CRC can tell
    assert d.raw(cobs.encode(bytes(body)) + b"\x00") == []
    info = d.info(3)
    assert info["crc_errors"] == 1 and info["dropped_frames"] == 1


def test_reset_answers_then_restarts(harness):
    d = Dev(harness)
    d.info(1)
    d.one(m.LOAD, 2, m.pack_load(m.DTYPE_INT8, 16, 0, X))
    d.one(m.INFER, 3, m.pack_infer(3))
    f = d.one(m.RESET, 4)
    assert f.type == m.RESET | m.REPLY and f.payload == b""
    info = d.info(9)
    assert info["inferences"] == 0 and info["log"] == []
    code, _ = d.error(m.INFER, 10, m.pack_infer(1))
    assert code == m.ERR_NOT_LOADED


def test_broken_model_still_answers_info_and_names_the_operator(broken_harness):
    d = Dev(broken_harness)
    info = d.info(1)
    assert "TANH" in info["error"] and info["input"] is None and info["output"] is None
    code, msg = d.error(m.LOAD, 2, m.pack_load(m.DTYPE_INT8, 16, 0, X))
    assert code == m.ERR_MODEL and "unsupported operator TANH" in msg
    code, msg = d.error(m.INFER, 3, m.pack_infer(1))
    assert code == m.ERR_MODEL and "TANH" in msg


def test_garbage_never_crashes_and_the_device_recovers(harness):
    d = Dev(harness)
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randrange(1, 600)
        junk = bytes(rng.choice([0, rng.randrange(256), rng.randrange(256)]) for _ in range(n))
        d.decoder = FrameDecoder()  # replies to accidental valid frames are possible: ignore them
        d.h.ask(f"dev {junk.hex()}")
    d.decoder = FrameDecoder()
    assert d.raw(b"\x00") == []  # end whatever half frame the junk left
    assert d.info(77)["protocol"] == 1


# -------------------------------------------------------------------------------------------------
# The shared test vectors (tests/vectors/protocol_v1.json, written from the Python implementation)


@pytest.fixture(scope="module")
def vectors():
    if not VECTORS.is_file():
        pytest.fail(f"{VECTORS} is missing: the protocol's shared test vectors (docs/protocol.md)")
    return json.loads(VECTORS.read_text())


def _frame_event(fr: dict) -> str:
    return f"F:{fr['version']}:{fr['type']}:{fr['seq']}:{fr.get('payload_hex', '')}"


def _wire(v: dict) -> bytes:
    if "wire_hex" in v:
        return bytes.fromhex(v["wire_hex"])
    pat = v["wire_pattern"]
    return bytes([pat["byte"]]) * pat["count"] + bytes.fromhex(pat["then_hex"])


def test_vectors_cobs(harness, vectors):
    for v in vectors["cobs"]:
        assert harness.ask(f"cobsenc {v['decoded_hex']}") == v["encoded_hex"], v["name"]
        assert harness.ask(f"cobsdec {v['encoded_hex']}") == v["decoded_hex"], v["name"]


def test_vectors_valid_frames_encode_and_decode(harness_exe, vectors):
    h = Harness(harness_exe, max_payload=0xFFFF)
    try:
        for v in vectors["valid"]:
            fr = v["frame"]
            assert h.ask(f"rx {v['wire_hex']}") == _frame_event(fr), v["name"]
            if fr["version"] == 1:  # the device only ever writes version-1 frames
                assert h.ask(f"enc {fr['type']} {fr['seq']} {fr['payload_hex']}") == v["wire_hex"], v["name"]
        for v in vectors["generated_valid"]:
            p = v["payload"]
            i = np.arange(p["length"])
            data = ((p["start"] + i) % 256 if p["pattern"] == "counter"
                    else (p["start"] + i) % 255 + 1).astype(np.uint8).tobytes()
            assert zlib.crc32(data) == v["payload_crc32"]
            fr = v["frame"]
            wire = bytes.fromhex(h.ask(f"enc {fr['type']} {fr['seq']} {data.hex()}"))
            assert len(wire) == v["wire_length"] and zlib.crc32(wire) == v["wire_crc32"], v["name"]
            assert h.ask(f"rx {wire.hex()}") == f"F:1:{fr['type']}:{fr['seq']}:{data.hex()}", v["name"]
    finally:
        h.close()


def _accepts_drop(event: str, reason: str) -> bool:
    """The firmware's receiver decodes and checks the CRC of frames of any length as they stream in
    (it never holds more than one maximum-size frame), so a frame over the limit is classified by its
    content: a good CRC gives an oversize report (answered TOO_LARGE), else the first check it fails."""
    if reason == "oversize":
        return event.startswith("O:") or event.startswith("D:")
    return event == f"D:{reason}"


def test_vectors_invalid_frames_are_rejected(harness_exe, vectors):
    for v in vectors["invalid"]:
        h = Harness(harness_exe, max_payload=v["max_payload"])
        try:
            events = h.ask(f"rx {_wire(v).hex()}").split()
            assert len(events) == 1 and _accepts_drop(events[0], v["reason"]), (v["name"], events)
        finally:
            h.close()


def test_vectors_streams(harness_exe, vectors):
    for v in vectors["streams"]:
        h = Harness(harness_exe, max_payload=v["max_payload"])
        try:
            wire = bytes.fromhex(v["wire_hex"])
            events = []
            for start in range(0, len(wire), 7):  # any chunking: here 7 bytes at a time
                answer = h.ask(f"rx {wire[start:start + 7].hex()}")
                events += [] if answer == "-" else answer.split()
            frames = [e for e in events if e.startswith("F:")]
            drops = [e for e in events if e.startswith(("D:", "O:"))]
            assert frames == [_frame_event(f) for f in v["frames"]], v["name"]
            expected = [r for r, n in v.get("drops", {}).items() for _ in range(n)]
            assert len(drops) == len(expected), (v["name"], drops, expected)
            assert all(_accepts_drop(e, r) for e, r in zip(drops, expected)), (v["name"], drops)
        finally:
            h.close()


def test_vectors_sessions(harness_exe, vectors):
    for sess in vectors["sessions"]:
        spec = sess["device"]
        assert spec["input_dtype"] == m.DTYPE_INT8 and spec["input_bytes"] == 16  # the harness model
        h = Harness(harness_exe, max_payload=spec["max_payload"], cache=spec["reply_cache"])
        try:
            d = Dev(h)
            for n, step in enumerate(sess["steps"]):
                s = step["send"]
                frames = d.send(s["type"], s["seq"], bytes.fromhex(s["payload_hex"]), version=s["version"])
                where = f"{sess['name']} step {n}"
                exp = step["expect"]
                if exp is None:
                    assert frames == [], where
                    continue
                assert len(frames) == 1, (where, frames)
                f = frames[0]
                assert (f.type, f.seq) == (exp["type"], exp["seq"]), (where, f)
                if "payload_hex" in exp:
                    assert f.payload.hex() == exp["payload_hex"], where
                if "error_code" in exp:
                    assert m.unpack_error(f.payload)[0] == exp["error_code"], (where, f.payload)
                if "load_reply" in exp:
                    assert list(m.unpack_load_reply(f.payload)) == exp["load_reply"], where
                if "inferences" in exp:
                    assert m.unpack_infer_reply(f.payload).inferences == exp["inferences"], where
        finally:
            h.close()
