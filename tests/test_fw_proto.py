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
    proto = firmware_dir() / "proto"
    srcs = sorted(str(p) for p in proto.glob("*.c"))
    cmd = ["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
           f"-I{proto}", "-o", str(out), str(HERE / "fw_proto_host.c"), *srcs]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


class Harness:
    def __init__(self, exe, *args):
        self.proc = subprocess.Popen([str(exe), str(MAX_PAYLOAD), *args], stdin=subprocess.PIPE,
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
    h = Harness(harness_exe, "broken")
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
    # before any request, any sequence number is accepted as next
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
    code, msg = d.error(m.LOAD, 5, m.pack_load(m.DTYPE_INT8, 16, 8, X[:9]))
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
    # an OFFSET error leaves the partial tensor as it was
    d.one(m.LOAD, 14, m.pack_load(m.DTYPE_INT8, 16, 0, X[:8]))
    d.error(m.LOAD, 15, m.pack_load(m.DTYPE_INT8, 16, 9, X[9:]))
    d.one(m.LOAD, 16, m.pack_load(m.DTYPE_INT8, 16, 8, X[8:]))
    assert m.unpack_infer_reply(d.one(m.INFER, 17, m.pack_infer(1)).payload).output == _expected_out(X)


def test_other_version_is_answered_and_changes_nothing(harness):
    d = Dev(harness)
    d.info(30)
    frames = d.send(m.LOAD, 31, m.pack_load(m.DTYPE_INT8, 16, 0, X), version=2)
    assert len(frames) == 1 and frames[0].type == m.ERROR and frames[0].seq == 31
    assert m.unpack_error(frames[0].payload) == (m.ERR_VERSION, "device speaks protocol v1")
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
# The shared test vectors (tests/vectors/protocol_v1.json, written with the Python implementation)


def test_shared_vectors(harness):
    """Every valid vector decodes to its meaning; every invalid one is rejected."""
    if not VECTORS.is_file():
        pytest.fail(f"{VECTORS} is missing: the protocol's shared test vectors (docs/protocol.md)")
    doc = json.loads(VECTORS.read_text())
    valid, invalid = _vector_lists(doc)
    assert valid and invalid
    for v in valid:
        wire = bytes.fromhex(v["hex"])
        events = harness.ask(f"rx {wire.hex()}").split()
        frames = [e for e in events if e.startswith("F:")]
        assert len(frames) == 1, (v, events)
        _, ver, mtype, seq, payload = frames[0].split(":")
        meaning = v.get("frame", v)
        assert int(ver) == meaning.get("version", 1)
        assert int(mtype) == _int(meaning["type"]) and int(seq) == meaning["seq"]
        if "payload" in meaning:
            assert payload == meaning["payload"], v
    for v in invalid:
        wire = bytes.fromhex(v["hex"])
        if not wire.endswith(b"\x00"):
            wire += b"\x00"
        events = harness.ask(f"rx {wire.hex()}").split()
        # rejected: dropped, or (too long for this receiver) reported oversize, never a frame
        assert not any(e.startswith("F:") for e in events), (v, events)
        harness.ask("rx 00")  # back in step for the next vector


def _int(v):
    return int(v, 0) if isinstance(v, str) else int(v)


def _vector_lists(doc):
    if isinstance(doc, dict):
        valid = doc.get("valid") or doc.get("frames") or []
        invalid = doc.get("invalid") or []
        return list(valid), list(invalid)
    raise AssertionError("unexpected vector file layout")
