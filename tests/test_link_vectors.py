"""The Python codec and device engine against tests/vectors/protocol_v1.json (shared with the C
firmware's tests), and the committed file against its generator."""
from __future__ import annotations

import importlib.util
import json
import zlib
from pathlib import Path

import pytest

from edgeattack.link import cobs
from edgeattack.link import messages as m
from edgeattack.link.frame import Frame, FrameDecoder, encode_frame
from edgeattack.link.server import ProtocolServer

ROOT = Path(__file__).resolve().parents[1]
VECTORS = json.loads((ROOT / "tests" / "vectors" / "protocol_v1.json").read_text())


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_protocol_vectors",
                                                  ROOT / "tools" / "gen_protocol_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def to_frame(obj) -> Frame:
    return Frame(obj["version"], obj["type"], obj["seq"], bytes.fromhex(obj.get("payload_hex", "")))


def chunkings(wire: bytes):
    yield [wire]
    yield [wire[i:i + 1] for i in range(len(wire))]
    yield [wire[i:i + 7] for i in range(0, len(wire), 7)]


def test_committed_vectors_match_generator():
    assert load_generator().render() == (ROOT / "tests/vectors/protocol_v1.json").read_text(), \
        "run python tools/gen_protocol_vectors.py"


def test_schema_is_documented():
    assert set(VECTORS["schema"]) >= {"cobs", "valid", "generated_valid", "invalid", "streams",
                                      "sessions"}
    doc = (ROOT / "docs" / "protocol.md").read_text()
    for key in ("generated_valid", "streams", "sessions", "wire_pattern"):
        assert key in doc


@pytest.mark.parametrize("vec", VECTORS["cobs"], ids=lambda v: v["name"])
def test_cobs_vectors(vec):
    data, enc = bytes.fromhex(vec["decoded_hex"]), bytes.fromhex(vec["encoded_hex"])
    assert cobs.encode(data) == enc
    assert cobs.decode(enc) == data


@pytest.mark.parametrize("vec", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vectors(vec):
    frame = to_frame(vec["frame"])
    wire = bytes.fromhex(vec["wire_hex"])
    assert wire.endswith(b"\x00") and wire.count(0) == 1
    assert encode_frame(frame) == wire
    for chunks in chunkings(wire):
        dec = FrameDecoder()
        got = [f for c in chunks for f in dec.feed(c)]
        assert got == [frame] and dec.dropped == 0
    msg = vec["message"]
    p = frame.payload
    kind = msg["kind"]
    if kind == "info_reply":
        assert m.unpack_info(p) == msg["json"]
    elif kind == "load_request":
        r = m.unpack_load(p)
        assert (r.dtype, r.total, r.offset, r.data.hex()) == (msg["dtype"], msg["total"],
                                                            msg["offset"], msg["data_hex"])
        assert m.pack_load(r.dtype, r.total, r.offset, r.data) == p
    elif kind == "load_reply":
        assert m.unpack_load_reply(p) == (msg["received"], msg["total"])
    elif kind == "infer_request":
        assert m.unpack_infer(p) == msg["repeat_effective"] and m.pack_infer(msg["repeat"]) == p
    elif kind == "infer_reply":
        r = m.unpack_infer_reply(p)
        assert (r.ticks, r.inferences, r.dtype, r.output.hex()) == (
            msg["ticks"], msg["inferences"], msg["dtype"], msg["output_hex"])
    elif kind == "error":
        assert m.unpack_error(p) == (msg["code"], msg["message"])
        assert m.error_name(msg["code"]) == msg["name"]
    elif kind in ("info_request", "reset_request", "reset_reply"):
        assert p == b""


def pattern_payload(spec) -> bytes:
    n, start = spec["length"], spec["start"]
    if spec["pattern"] == "counter":
        return bytes((start + i) % 256 for i in range(n))
    assert spec["pattern"] == "nonzero_counter"
    return bytes((start + i) % 255 + 1 for i in range(n))


@pytest.mark.parametrize("vec", VECTORS["generated_valid"], ids=lambda v: v["name"])
def test_generated_valid_vectors(vec):
    payload = pattern_payload(vec["payload"])
    assert zlib.crc32(payload) == vec["payload_crc32"]
    frame = Frame(vec["frame"]["version"], vec["frame"]["type"], vec["frame"]["seq"], payload)
    wire = encode_frame(frame)
    assert (len(wire), zlib.crc32(wire)) == (vec["wire_length"], vec["wire_crc32"])
    dec = FrameDecoder(len(payload))
    assert dec.feed(wire) == [frame]
    too_small = FrameDecoder(len(payload) - 1)  # one byte less room: dropped as oversize
    assert too_small.feed(wire) == [] and too_small.drops["oversize"] == 1


def invalid_wire(vec) -> bytes:
    if "wire_pattern" in vec:
        pat = vec["wire_pattern"]
        return bytes([pat["byte"]]) * pat["count"] + bytes.fromhex(pat["then_hex"])
    return bytes.fromhex(vec["wire_hex"])


@pytest.mark.parametrize("vec", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vectors(vec):
    wire = invalid_wire(vec)
    for chunks in chunkings(wire):
        dec = FrameDecoder(vec["max_payload"])
        assert [f for c in chunks for f in dec.feed(c)] == []
        assert dec.drops[vec["reason"]] == 1 and dec.dropped == 1
        assert dec.buffered <= dec.max_encoded


@pytest.mark.parametrize("vec", VECTORS["streams"], ids=lambda v: v["name"])
def test_stream_vectors(vec):
    wire = bytes.fromhex(vec["wire_hex"])
    for chunks in chunkings(wire):
        dec = FrameDecoder(vec["max_payload"])
        assert [f for c in chunks for f in dec.feed(c)] == [to_frame(f) for f in vec["frames"]]
        assert {k: v for k, v in dec.drops.items() if v} == vec["drops"]


class EchoHandler:
    def __init__(self, dtype, nbytes):
        self.spec = (dtype, nbytes)
        self.runs = 0

    def info(self):
        return {"board": "vectors"}

    def input_spec(self):
        return self.spec

    def infer(self, data, repeat):
        self.runs += repeat
        return bytes(data[:4]), m.DTYPE_INT8, repeat

    def reset(self):
        pass


@pytest.mark.parametrize("vec", VECTORS["sessions"], ids=lambda v: v["name"])
def test_session_vectors(vec):
    d = vec["device"]
    handler = EchoHandler(d["input_dtype"], d["input_bytes"])
    server = ProtocolServer(None, handler, max_payload=d["max_payload"],
                            reply_cache=d["reply_cache"])
    for step in vec["steps"]:
        replies = server.receive(encode_frame(to_frame(step["send"])))
        exp = step["expect"]
        if exp is None:
            assert replies == []
            continue
        (wire,) = replies
        (reply,) = FrameDecoder().feed(wire)
        assert (reply.version, reply.type, reply.seq) == (1, exp["type"], exp["seq"])
        if "error_code" in exp:
            assert m.unpack_error(reply.payload)[0] == exp["error_code"]
        if "load_reply" in exp:
            assert list(m.unpack_load_reply(reply.payload)) == exp["load_reply"]
        if "inferences" in exp:
            assert m.unpack_infer_reply(reply.payload).inferences == exp["inferences"]
        if "payload_hex" in exp:
            assert reply.payload.hex() == exp["payload_hex"]
    # Replayed INFERs never ran the model again.
    last_infer = [s["expect"]["inferences"] for s in vec["steps"]
                  if s["expect"] and "inferences" in s["expect"]]
    if last_infer and vec["name"] != "reset":
        assert handler.runs == max(last_infer) == server.inferences
