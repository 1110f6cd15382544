"""COBS, frames, the streaming decoder, payload layouts and the fault-spec parser."""
from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeattack.errors import UsageError
from edgeattack.link import cobs
from edgeattack.link import messages as m
from edgeattack.link.faults import FaultInjector, FaultSpec, parse_fault_spec, with_latency
from edgeattack.link.frame import (Frame, FrameDecoder, decode_body, encode_frame, frame_body,
                                   wire_size)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_cobs_roundtrip_and_bounds(data):
    enc = cobs.encode(data)
    assert 0 not in enc
    assert cobs.decode(enc) == data
    assert len(data) + 1 <= len(enc) <= cobs.max_encoded_size(len(data))


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x03\x11", b"\x02\x00", b"\x03\x11\x00"])
def test_cobs_rejects_invalid(bad):
    with pytest.raises(cobs.CobsError):
        cobs.decode(bad)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=700),
       st.lists(st.integers(1, 50), max_size=30))
def test_frames_roundtrip_through_any_chunking(version, mtype, seq, payload, cuts):
    frame = Frame(version, mtype, seq, payload)
    wire = encode_frame(frame)
    assert len(wire) <= wire_size(len(payload))
    if 0 not in frame_body(frame):
        assert len(wire) == wire_size(len(payload))  # the documented cost is exact without zeros
    stream = b"\x00" + wire + wire
    dec = FrameDecoder()
    got, pos = [], 0
    for cut in cuts:
        got += dec.feed(stream[pos:pos + cut])
        pos += cut
    got += dec.feed(stream[pos:])
    assert got == [frame, frame] and dec.dropped == 0 and dec.buffered == 0


def test_decoder_counts_each_reason_and_recovers():
    good = Frame(1, m.INFER, 9, m.pack_infer(1))
    body = bytearray(frame_body(good))
    crc_bad = bytes(body[:-1]) + bytes([body[-1] ^ 1])
    dec = FrameDecoder(max_payload=16)
    stream = (cobs.encode(crc_bad) + b"\x00"            # crc
              + b"\x05\x01\x02\x00"                     # cobs (block overruns)
              + cobs.encode(bytes(body[:8])) + b"\x00"  # short
              + cobs.encode(bytes(body[:-2])) + b"\x00"  # length
              + b"\x11" * 100 + b"\x00"                 # oversize
              + encode_frame(good))
    assert dec.feed(stream) == [good]
    assert dec.drops == {"oversize": 1, "cobs": 1, "short": 1, "length": 1, "crc": 1}


def test_decoder_memory_is_bounded_for_endless_garbage():
    dec = FrameDecoder(max_payload=64)
    for _ in range(100):
        dec.feed(b"\x7f" * 1000)
        assert dec.buffered <= dec.max_encoded
    assert dec.drops["oversize"] == 1  # one frame, however long
    frame = Frame(1, m.INFO, 1, b"")
    assert dec.feed(b"\x00" + encode_frame(frame)) == [frame]


def test_decode_body_rejects_oversize_payload_of_zeros():
    frame = Frame(1, 5, 0x0101, bytes(300))
    enc = encode_frame(frame)[:-1]
    assert decode_body(enc, 300) == frame
    with pytest.raises(Exception) as err:
        decode_body(enc, 299)
    assert err.value.reason == "oversize"


def test_payload_layouts():
    assert m.pack_load(1, 3072, 2048, b"ab") == bytes([1, 0, 0, 0]) + (3072).to_bytes(4, "little") \
        + (2048).to_bytes(4, "little") + b"ab"
    assert m.unpack_load(m.pack_load(5, 8, 4, b"1234")) == m.LoadRequest(5, 8, 4, b"1234")
    assert m.unpack_infer(m.pack_infer(0)) == 1 and m.unpack_infer(m.pack_infer(7)) == 7
    reply = m.pack_infer_reply(2**40 + 3, 9, m.DTYPE_INT8, b"\x01\x02")
    assert len(reply) == 18 and m.unpack_infer_reply(reply) == m.InferReply(2**40 + 3, 9, 1,
                                                                            b"\x01\x02")
    for bad, fn in [(b"\x01", m.unpack_infer), (b"", m.unpack_error), (b"x" * 11, m.unpack_load),
                    (b"x" * 7, m.unpack_load_reply), (b"x" * 15, m.unpack_infer_reply),
                    (b"[1]", m.unpack_info), (b"\xff", m.unpack_info)]:
        with pytest.raises(m.MalformedPayload):
            fn(bad)
    # ERROR messages are cut to 200 bytes on a character boundary.
    code, text = m.unpack_error(m.pack_error(m.ERR_RUNTIME, "é" * 150))
    assert code == m.ERR_RUNTIME and text == "é" * 100


def test_dtype_codes_roundtrip_little_endian():
    for code, name in m.DTYPE_NAMES.items():
        assert m.dtype_code(np.dtype(name)) == code
        assert m.dtype_from_code(code) == np.dtype(name).newbyteorder("<")
    big = np.array([1, -2], dtype=">i4")
    code, data = m.to_wire_bytes(big)
    assert code == m.DTYPE_INT32 and data == np.array([1, -2], "<i4").tobytes()
    with pytest.raises(ValueError, match="float64"):
        m.dtype_code(np.float64)
    with pytest.raises(m.MalformedPayload):
        m.dtype_from_code(99)


def test_fault_spec_parsing():
    spec = parse_fault_spec("corrupt=0.01, drop=0.005,dup=0,disconnect_every=200,seed=1,"
                            "direction=rx,delay=0.002")
    assert spec == FaultSpec(corrupt=0.01, drop=0.005, dup=0.0, disconnect_every=200,
                             direction="rx", delay=0.002, seed=1)
    assert parse_fault_spec("") == FaultSpec()
    for bad in ["corrupt=2", "nope=1", "drop", "direction=up", "disconnect_every=-1"]:
        with pytest.raises(UsageError):
            parse_fault_spec(bad)


def test_fault_injector_is_seeded_and_counts():
    data = bytes(range(1, 256)) * 40
    a = FaultInjector.parse("corrupt=0.01,drop=0.01,dup=0.01,seed=3")
    b = FaultInjector.parse("corrupt=0.01,drop=0.01,dup=0.01,seed=3")
    out = a.mangle(data)
    assert out == b.mangle(data) and out != data
    n = len(data)
    for key in ("corrupted", "dropped", "duplicated"):
        assert 0.5 * 0.01 * n < a.counts[key] < 1.6 * 0.01 * n
    assert len(out) == n - a.counts["dropped"] + a.counts["duplicated"]


def test_latency_wrapper_delays_each_byte_but_overlaps_frames():
    a, b = socket.socketpair()
    from edgeattack.link.transport import SocketPort

    sender, receiver = SocketPort(a), with_latency(SocketPort(b, timeout=0.01), 0.08)
    try:
        t0 = time.monotonic()
        sender.write(b"first\x00")
        time.sleep(0.03)
        sender.write(b"second\x00")
        got, arrivals = b"", []
        while len(got) < 14 and time.monotonic() - t0 < 2:
            data = receiver.read_some()
            if data:
                got += data
                arrivals.append(time.monotonic() - t0)
        assert got == b"first\x00second\x00"
        assert 0.075 <= arrivals[0] < 0.3 and arrivals[-1] >= 0.105
        assert arrivals[-1] - arrivals[0] < 0.08  # in flight together, not one delay after another
    finally:
        sender.close()
        receiver.close()
