#!/usr/bin/env python3
"""Write tests/vectors/protocol_v1.json and protocol_v2.json: wire-protocol test vectors for every
implementation.

    python tools/gen_protocol_vectors.py            # rewrite the file
    python tools/gen_protocol_vectors.py --check    # exit 1 if the committed file is stale

The frames are built by edgeattack.link (the reference implementation); tests/test_link_vectors.py
checks the Python codec against the file and the C firmware's tests read the same file. The schema is
documented in the file's "schema" key and in docs/protocol.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

from edgeattack.link import cobs
from edgeattack.link import messages as m
from edgeattack.link.frame import Frame, FrameDecoder, encode_frame, frame_body
from edgeattack.link.server import ProtocolServer

OUT = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "protocol_v1.json"
OUT_V2 = OUT.with_name("protocol_v2.json")

SCHEMA_V2 = {
    "version": 1,
    "conventions": "As in protocol_v1.json. Frames here are protocol version 2 unless their "
                   "`version` says otherwise; a v2 device answers each request in its frame's "
                   "version.",
    "valid": "list of {name, description, wire_hex, frame, message}: one frame of each v2 message; "
             "message kinds slot_load_request (slot, dtype, total, offset, data_hex), "
             "slot_load_reply (slot, generation, received, total), patch_request (slot, infer, "
             "repeat, generation, runs: [[offset, data_hex]]), slot_infer_request (slot, repeat), "
             "slot_reply (slot, generation, infer: null | {ticks, inferences, dtype, output_hex}), "
             "info_request (boot_id: null for an empty INFO, else the u32 it assigns), error.",
    "sessions": "as in protocol_v1.json, with device.slots, and expect may hold slot_load_reply "
                "([slot, generation, received, total]), slot_reply ([slot, generation]), "
                "inferences (of an INFER, SLOT_INFER or PATCH-with-INFER reply), info ({protocol, "
                "protocols, slots, boot_id}: fields of an INFO reply). A fresh device is not "
                "synchronized: requests before its first INFO are ERROR NOT_SYNCED.",
}

SCHEMA = {
    "version": 1,
    "conventions": "All *_hex strings are lowercase hex of raw bytes. A wire_hex is exactly what "
                   "travels on the link: the COBS-encoded frame followed by its 0x00 delimiter. "
                   "Integers are plain JSON numbers.",
    "cobs": "list of {name, decoded_hex, encoded_hex}: encoded_hex is the canonical COBS encoding "
            "of decoded_hex (no delimiter); decoding encoded_hex gives decoded_hex.",
    "valid": "list of {name, description, wire_hex, frame: {version, type, seq, payload_hex}, "
             "message}: an encoder given `frame` produces wire_hex, a receiver fed wire_hex yields "
             "exactly `frame`. `message` holds the decoded payload: {kind, ...fields} with kind one "
             "of info_request, info_reply (json: the parsed object), load_request (dtype, total, "
             "offset, data_hex), load_reply (received, total), infer_request (repeat as on the "
             "wire, repeat_effective: 0 means 1), infer_reply (ticks, inferences, dtype, "
             "output_hex), reset_request, reset_reply, error (code, name, message), raw (a payload "
             "without message meaning: COBS edge cases).",
    "generated_valid": "list of {name, description, frame: {version, type, seq}, payload: "
                       "{length, pattern, start}, payload_crc32, wire_length, wire_crc32}: frames too "
                       "big to list; payload byte i = (start + i) mod 256 for pattern 'counter', or "
                       "(start + i) mod 255 + 1 for 'nonzero_counter'. wire_crc32 is zlib.crc32 of "
                       "the whole wire bytes, delimiter included.",
    "invalid": "list of {name, description, max_payload, reason, wire_hex | wire_pattern}: a receiver "
               "configured with max_payload, fed these bytes from a fresh state, yields no frame and "
               "counts one drop for `reason` (oversize, cobs, short, length, crc), checked in that "
               "order. wire_pattern {byte, count, then_hex} stands for `count` copies of `byte` "
               "followed by then_hex.",
    "streams": "list of {name, description, max_payload, wire_hex, frames: [frame objects], "
               "drops: {reason: count}}: a receiver fed wire_hex (in any chunking) yields exactly "
               "`frames`, in order, and counts exactly `drops` (reasons not listed: 0).",
    "sessions": "list of {name, description, device: {input_dtype, input_bytes, max_payload, "
                "reply_cache}, steps: [{send: frame, expect: null | {type, seq, payload_hex?, "
                "error_code?, load_reply?: [received, total], inferences?}}]}: the sequence-number "
                "and LOAD/INFER rules. A device with that input spec receives each step's frame; "
                "`expect` null means it sends no reply (a sequence gap), otherwise exactly one reply "
                "with that type and seq (ERROR replies: that code; message text is free). Model "
                "outputs and ticks are not compared.",
}


def hexs(data: bytes) -> str:
    return bytes(data).hex()


def frame_obj(f: Frame) -> dict:
    return {"version": f.version, "type": f.type, "seq": f.seq, "payload_hex": hexs(f.payload)}


def message_obj(f: Frame) -> dict:
    t, p = f.type, f.payload
    if t == m.INFO:
        return {"kind": "info_request"}
    if t == m.INFO | m.REPLY:
        return {"kind": "info_reply", "json": m.unpack_info(p)}
    if t == m.LOAD:
        r = m.unpack_load(p)
        return {"kind": "load_request", "dtype": r.dtype, "total": r.total, "offset": r.offset,
                "data_hex": hexs(r.data)}
    if t == m.LOAD | m.REPLY:
        received, total = m.unpack_load_reply(p)
        return {"kind": "load_reply", "received": received, "total": total}
    if t == m.INFER:
        repeat = int.from_bytes(p[:2], "little")
        return {"kind": "infer_request", "repeat": repeat, "repeat_effective": m.unpack_infer(p)}
    if t == m.INFER | m.REPLY:
        r = m.unpack_infer_reply(p)
        return {"kind": "infer_reply", "ticks": r.ticks, "inferences": r.inferences,
                "dtype": r.dtype, "output_hex": hexs(r.output)}
    if t == m.RESET:
        return {"kind": "reset_request"}
    if t == m.RESET | m.REPLY:
        return {"kind": "reset_reply"}
    if t == m.ERROR:
        code, text = m.unpack_error(p)
        return {"kind": "error", "code": code, "name": m.error_name(code), "message": text}
    return {"kind": "raw"}


def valid(name: str, description: str, f: Frame, raw: bool = False) -> dict:
    return {"name": name, "description": description, "wire_hex": hexs(encode_frame(f)),
            "frame": frame_obj(f), "message": {"kind": "raw"} if raw else message_obj(f)}


def nonzero_crc_seq(mtype: int, payload: bytes, start: int = 0x0101) -> int:
    """A sequence number (both bytes non-zero) for which the CRC has no zero byte, so a body's
    trailing run of non-zero bytes is exactly as long as the payload makes it."""
    for seq in range(start, 0x10000):
        if seq & 0xFF and seq >> 8:
            body = frame_body(Frame(1, mtype, seq, payload))
            if 0 not in body[-4:]:
                return seq
    raise AssertionError("no such seq")


def build() -> dict:
    info_json = {"protocol": 1, "board": "qemu-m4", "runtime": "edgeattack-c",
                 "model_sha256": "0" * 64,
                 "input": {"shape": [1, 8, 8, 1], "dtype": "int8", "scale": 0.00390625,
                           "zero_point": -128},
                 "output": {"shape": [1, 10], "dtype": "int8", "scale": 0.00390625,
                            "zero_point": -128},
                 "tick_hz": 25000000, "max_payload": 4096, "rx_buffers": 2, "reply_cache": 8,
                 "inferences": 1, "overruns": 0, "crc_errors": 0,
                 "log": [{"event": "start", "ticks": 123, "inference": 1},
                         {"event": "end", "ticks": 456, "inference": 1}]}
    data64 = bytes((i * 37) & 0xFF for i in range(64))  # contains 0x00 bytes
    out10 = bytes([0x80, 0x85, 0x00, 0x7F, 0x90, 0x80, 0x81, 0x82, 0x00, 0x83])
    vec_valid = [
        valid("info_request", "INFO request, the host's first sequence number",
              Frame(1, m.INFO, 1, b"")),
        valid("info_reply", "INFO reply with the documented JSON fields",
              Frame(1, m.INFO | m.REPLY, 1, m.pack_info(info_json))),
        valid("load_request_full", "LOAD of a whole 64-byte int8 tensor (data contains 0x00)",
              Frame(1, m.LOAD, 2, m.pack_load(m.DTYPE_INT8, 64, 0, data64))),
        valid("load_reply_full", "LOAD reply: all 64 bytes received",
              Frame(1, m.LOAD | m.REPLY, 2, m.pack_load_reply(64, 64))),
        valid("load_request_chunk", "second LOAD chunk of a 3072-byte tensor, at offset 2048",
              Frame(1, m.LOAD, 3, m.pack_load(m.DTYPE_INT8, 3072, 2048, bytes(range(1, 17))))),
        valid("load_reply_partial", "LOAD reply: 2064 of 3072 bytes received",
              Frame(1, m.LOAD | m.REPLY, 3, m.pack_load_reply(2064, 3072))),
        valid("load_request_float32", "LOAD of a float32 tensor [1.0, -2.5]",
              Frame(1, m.LOAD, 4, m.pack_load(m.DTYPE_FLOAT32, 8, 0,
                                               bytes.fromhex("0000803f000020c0")))),
        valid("infer_request", "INFER, repeat 1", Frame(1, m.INFER, 5, m.pack_infer(1))),
        valid("infer_request_repeat0", "INFER with repeat 0, which means 1",
              Frame(1, m.INFER, 6, m.pack_infer(0))),
        valid("infer_request_repeat10", "INFER, repeat 10", Frame(1, m.INFER, 7, m.pack_infer(10))),
        valid("infer_reply", "INFER reply: 10 int8 outputs, ticks 123456789012, inference 42",
              Frame(1, m.INFER | m.REPLY, 7, m.pack_infer_reply(123456789012, 42, m.DTYPE_INT8,
                                                                 out10))),
        valid("reset_request", "RESET", Frame(1, m.RESET, 8, b"")),
        valid("reset_reply", "RESET reply", Frame(1, m.RESET | m.REPLY, 8, b"")),
        valid("error_dtype", "ERROR DTYPE in answer to a LOAD",
              Frame(1, m.ERROR, 9, m.pack_error(m.ERR_DTYPE,
                                                 "LOAD dtype int16, the model's input is int8"))),
        valid("error_version", "ERROR VERSION naming the device's version",
              Frame(1, m.ERROR, 10, m.pack_error(m.ERR_VERSION, "device speaks protocol v1"))),
        valid("error_not_loaded", "ERROR NOT_LOADED with an empty message",
              Frame(1, m.ERROR, 11, m.pack_error(m.ERR_NOT_LOADED, ""))),
        valid("seq_wrap", "sequence number 65535 (the next is 0)", Frame(1, m.INFER, 0xFFFF,
                                                                         m.pack_infer(1))),
        valid("seq_zero", "sequence number 0", Frame(1, m.INFER, 0, m.pack_infer(1))),
        valid("other_version", "a valid frame of protocol version 2 (a v1 receiver decodes it, "
                               "then answers or reports VERSION)", Frame(2, m.INFO, 12, b"")),
    ]
    # COBS edge cases inside real frames: zero bytes and long non-zero runs.
    edge = [
        ("zeros_payload", "payload of 20 zero bytes", bytes(20)),
        ("zero_at_ends", "payload starting and ending with 0x00", b"\x00\x11\x22\x00"),
    ]
    for run in (253, 254, 255, 508):
        edge.append((f"run_{run}", f"payload of {run} non-zero bytes (a COBS run of 254 "
                                   f"needs an 0xFF block)", bytes(i % 255 + 1 for i in range(run))))
    for name, desc, payload in edge:
        seq = nonzero_crc_seq(0x05, payload)
        vec_valid.append(valid(name, desc, Frame(1, 0x05, seq, payload), raw=True))
    # A body whose last 254 bytes are non-zero: canonical COBS ends with a full 0xFF block and no
    # empty block after it. Payload 250 + CRC 4 = 254 non-zero bytes after the length's 0x00.
    payload = bytes(i % 255 + 1 for i in range(250))
    seq = nonzero_crc_seq(0x05, payload)
    f = Frame(1, 0x05, seq, payload)
    assert encode_frame(f)[-256] == 0xFF and 0 not in frame_body(f)[-254:]
    vec_valid.append(valid("final_block_254", "the body ends with exactly 254 non-zero bytes: the "
                                              "last COBS block is 0xFF and nothing follows it",
                           f, raw=True))

    generated = []
    for length, pattern, start, desc in [
        (4096, "counter", 0, "LOAD-sized payload of 4096 bytes (the example max_payload), "
                             "including a 0x00 every 256 bytes"),
        (4096, "nonzero_counter", 0, "4096 non-zero payload bytes: 0xFF blocks all the way"),
        (65535, "counter", 7, "the largest payload the u16 length field allows"),
    ]:
        if pattern == "counter":
            payload = bytes((start + i) % 256 for i in range(length))
        else:
            payload = bytes((start + i) % 255 + 1 for i in range(length))
        f = Frame(1, 0x05, 0x1234, payload)
        wire = encode_frame(f)
        generated.append({"name": f"max_{pattern}_{length}", "description": desc,
                          "frame": {"version": 1, "type": 0x05, "seq": 0x1234},
                          "payload": {"length": length, "pattern": pattern, "start": start},
                          "payload_crc32": zlib.crc32(payload), "wire_length": len(wire),
                          "wire_crc32": zlib.crc32(wire)})

    good = encode_frame(Frame(1, m.INFER, 5, m.pack_infer(1)))
    good_body = frame_body(Frame(1, m.INFER, 5, m.pack_infer(1)))

    def with_body(body: bytes) -> str:
        return hexs(cobs.encode(body) + b"\x00")

    bad_crc = bytearray(good_body)
    bad_crc[-1] ^= 0x01
    flipped = bytearray(good_body)
    flipped[6] ^= 0x40  # a payload bit: the CRC no longer matches
    wrong_len = bytearray(good_body[:-4])
    wrong_len[4] = 5  # length field says 5, payload has 4
    wrong_len = bytes(wrong_len) + zlib.crc32(bytes(wrong_len)).to_bytes(4, "little")
    invalid = [
        {"name": "bad_crc", "description": "INFER frame with the last CRC byte changed",
         "max_payload": 4096, "reason": "crc", "wire_hex": with_body(bytes(bad_crc))},
        {"name": "flipped_payload_bit", "description": "INFER frame with one payload bit flipped",
         "max_payload": 4096, "reason": "crc", "wire_hex": with_body(bytes(flipped))},
        {"name": "truncated", "description": "INFER frame missing its last 3 bytes before COBS",
         "max_payload": 4096, "reason": "length", "wire_hex": with_body(good_body[:-3])},
        {"name": "short", "description": "9 bytes: shorter than header + CRC",
         "max_payload": 4096, "reason": "short", "wire_hex": with_body(good_body[:9])},
        {"name": "short_single_byte", "description": "one data byte", "max_payload": 4096,
         "reason": "short", "wire_hex": "020100"},
        {"name": "bad_cobs_overrun", "description": "a good frame's encoding followed by a code "
                                                    "byte 0x20 that needs 31 bytes, with 3 left",
         "max_payload": 4096, "reason": "cobs", "wire_hex": hexs(good[:-1]) + "20aabbcc00"},
        {"name": "bad_cobs_code", "description": "first code 0x10 with only 5 bytes after it",
         "max_payload": 4096, "reason": "cobs", "wire_hex": "101112131415" + "00"},
        {"name": "wrong_length_field", "description": "length field 5 with a 4-byte payload "
                                                       "(CRC computed over the wrong header, valid)",
         "max_payload": 4096, "reason": "length", "wire_hex": with_body(wrong_len)},
        {"name": "oversize_run", "description": "5000 non-zero bytes then a delimiter: longer than "
                                                "any frame with max_payload 4096",
         "max_payload": 4096, "reason": "oversize",
         "wire_pattern": {"byte": 0x11, "count": 5000, "then_hex": "00"}},
        {"name": "oversize_frame", "description": "a correct frame whose payload (300 bytes) "
                                                  "exceeds max_payload 256",
         "max_payload": 256, "reason": "oversize",
         "wire_hex": hexs(encode_frame(Frame(1, m.LOAD, 3, m.pack_load(1, 288, 0, bytes(288)))))},
        {"name": "oversize_zeros", "description": "a correct frame of 0x00 bytes whose encoding "
                                                  "fits the limit but whose decoded size does not",
         "max_payload": 256,
         "reason": "oversize",
         "wire_hex": hexs(encode_frame(Frame(1, 0x05, 0x0101, bytes(257))))},
    ]
    for item in invalid:
        wire = (bytes([item["wire_pattern"]["byte"]]) * item["wire_pattern"]["count"]
                + bytes.fromhex(item["wire_pattern"]["then_hex"])) if "wire_pattern" in item \
            else bytes.fromhex(item["wire_hex"])
        dec = FrameDecoder(item["max_payload"])
        assert dec.feed(wire) == [] and dec.drops[item["reason"]] == 1 and dec.dropped == 1, item

    f1 = Frame(1, m.LOAD | m.REPLY, 20, m.pack_load_reply(64, 64))
    f2 = Frame(1, m.INFER | m.REPLY, 21, m.pack_infer_reply(5, 1, m.DTYPE_INT8, out10))
    streams = []
    for name, desc, wire, frames, drops in [
        ("two_frames", "two frames back to back", encode_frame(f1) + encode_frame(f2),
         [f1, f2], {}),
        ("leading_delimiters", "flush bytes before a frame are ignored, not counted",
         b"\x00\x00\x00" + encode_frame(f1), [f1], {}),
        ("garbage_then_frame", "line noise, then a frame: back in step after the next 0x00",
         bytes.fromhex("8899aabbccddeeff") + b"\x00" + encode_frame(f1), [f1], {"cobs": 1}),
        ("half_frame_then_frame", "the tail of an interrupted frame merges with nothing: dropped",
         encode_frame(f2)[5:] + encode_frame(f1), [f1], {"length": 1}),
        ("corrupt_between", "a frame with a bad CRC between two good ones",
         encode_frame(f1) + with_body_bytes(bad_crc) + encode_frame(f2), [f1, f2], {"crc": 1}),
        ("oversize_then_frame", "an oversize run is skipped up to its delimiter",
         b"\x22" * 300 + b"\x00" + encode_frame(f1), [f1], {"oversize": 1}),
    ]:
        max_payload = 256
        dec = FrameDecoder(max_payload)
        assert dec.feed(wire) == frames, name
        assert {k: v for k, v in dec.drops.items() if v} == drops, (name, dec.drops)
        streams.append({"name": name, "description": desc, "max_payload": max_payload,
                        "wire_hex": hexs(wire), "frames": [frame_obj(f) for f in frames],
                        "drops": drops})

    vec_cobs = []
    for name, data in [
        ("empty", b""), ("one_zero", b"\x00"), ("two_zeros", b"\x00\x00"),
        ("zero_between", b"\x11\x22\x00\x33"), ("no_zero", b"\x11\x22\x33\x44"),
        ("trailing_zero", b"\x11\x00"),
        ("run_254", bytes(range(1, 255))), ("zero_then_254", b"\x00" + bytes(range(1, 255))),
        ("run_255", bytes(range(1, 256))), ("run_254_then_zero", bytes(range(1, 255)) + b"\x00"),
        ("run_253_then_zero_one", bytes(range(3, 256)) + b"\x00\x01"),
        ("run_508", bytes(i % 255 + 1 for i in range(508))),
    ]:
        enc = cobs.encode(data)
        assert cobs.decode(enc) == data if data else True
        vec_cobs.append({"name": name, "decoded_hex": hexs(data), "encoded_hex": hexs(enc)})

    return {"schema": SCHEMA, "protocol": 1,
            "generator": "tools/gen_protocol_vectors.py",
            "message_types": {"INFO": m.INFO, "LOAD": m.LOAD, "INFER": m.INFER, "RESET": m.RESET,
                              "ERROR": m.ERROR, "REPLY_FLAG": m.REPLY},
            "dtype_codes": {name: code for code, name in m.DTYPE_NAMES.items()},
            "error_codes": {name: code for code, name in m.ERROR_NAMES.items() if code <= 9},
            "cobs": vec_cobs, "valid": vec_valid, "generated_valid": generated,
            "invalid": invalid, "streams": streams, "sessions": sessions()}


def with_body_bytes(body) -> bytes:
    return cobs.encode(bytes(body)) + b"\x00"


class _VectorHandler:
    """Device model for the session vectors: 16-byte int8 input, echo output."""

    def info(self):
        return {"board": "vectors"}

    def input_spec(self):
        return m.DTYPE_INT8, 16

    def infer(self, data, repeat):
        return bytes(data[:4]), m.DTYPE_INT8, repeat

    def reset(self):
        pass


def sessions() -> list:
    """Request sequences and the replies (or silence) the sequence rules require."""
    data = bytes(range(1, 17))
    L = lambda seq, off, chunk, dtype=m.DTYPE_INT8, total=16: Frame(  # noqa: E731
        1, m.LOAD, seq, m.pack_load(dtype, total, off, chunk))
    I = lambda seq, rep=1: Frame(1, m.INFER, seq, m.pack_infer(rep))  # noqa: E731
    N = lambda seq: Frame(1, m.INFO, seq, b"")  # noqa: E731
    plans = [
        ("load_infer", "INFO, a LOAD in two chunks, INFER",
         [N(100), L(101, 0, data[:10]), L(102, 10, data[10:]), I(103)]),
        ("retransmit_replays", "a repeated INFER is answered from the cache without running "
                               "again (inferences stays 1)",
         [N(1), L(2, 0, data), I(3), I(3), L(2, 0, data)]),
        ("gap_dropped", "a request after a missing one gets no reply; go-back-N then succeeds",
         [N(10), L(12, 0, data), L(11, 0, data), L(12, 0, data), I(13)]),
        ("info_resyncs", "INFO clears the cache and sets the sequence anywhere",
         [N(500), L(501, 0, data), N(7), I(501), L(8, 0, data), I(9)]),
        ("cache_evicts", "with reply_cache 2 only the last 2 replies can be replayed",
         [N(1), L(2, 0, data), I(3), I(4), I(5), I(3), I(4)]),
        ("seq_wraps", "65535 is followed by 0", [N(65534), L(65535, 0, data), I(0)]),
        ("load_errors", "DTYPE, SIZE, OFFSET, overrun and NOT_LOADED; a refused LOAD unloads",
         [N(1), L(2, 0, data, dtype=m.DTYPE_UINT8), L(3, 0, data, total=17), L(4, 4, data[:4]),
          L(5, 0, data[:8]), L(6, 12, data[:4]), I(7), L(8, 0, data[:8]), L(9, 8, data[:9]),
          I(10), L(11, 0, data), I(12)]),
        ("refused_load_unloads_complete", "after a complete tensor, a LOAD refused for DTYPE, SIZE "
                                          "or OFFSET leaves no tensor: the next INFER is NOT_LOADED",
         [N(1), L(2, 0, data), I(3), L(4, 0, data, dtype=m.DTYPE_UINT8), I(5),
          L(6, 0, data), L(7, 0, data, total=17), I(8),
          L(9, 0, data), L(10, 4, data[:4]), I(11),
          L(12, 0, data), L(13, 12, data[:8]), I(14), L(15, 0, data), I(16)]),
        ("bad_requests", "unknown type, reply type, malformed payloads, oversize payload",
         [N(1), Frame(1, 0x10, 2, b""), Frame(1, 0x83, 3, b""), Frame(1, m.INFER, 4, b"\x01"),
          Frame(1, m.LOAD, 5, b"\x01\x00"), Frame(1, m.RESET, 6, b"x"),
          Frame(1, m.LOAD, 7, m.pack_load(1, 16, 0, bytes(60)))]),
        ("version", "another version is answered with ERROR VERSION and changes nothing",
         [N(1), Frame(3, m.INFER, 2, b""), L(2, 0, data), I(3)]),
        ("first_info_any_seq", "after boot the first INFO may carry any sequence number (a v2 "
                               "device answers anything else with ERROR NOT_SYNCED until then: "
                               "protocol_v2.json)",
         [N(4000), L(4001, 0, data), I(4002)]),
        ("reset", "RESET answers, then counters restart and the input is gone",
         [N(1), L(2, 0, data), I(3), Frame(1, m.RESET, 4, b""), N(5), I(6)]),
    ]
    out = []
    for name, desc, frames in plans:
        cache = 2 if name == "cache_evicts" else 8
        server = ProtocolServer(None, _VectorHandler(), max_payload=48, reply_cache=cache)
        steps = []
        for f in frames:
            replies = server.receive(encode_frame(f))
            assert len(replies) <= 1
            expect = None
            if replies:
                (r,) = FrameDecoder().feed(replies[0])
                expect = {"type": r.type, "seq": r.seq}
                if r.type == m.ERROR:
                    expect["error_code"] = m.unpack_error(r.payload)[0]
                elif r.type == m.LOAD | m.REPLY:
                    expect["load_reply"] = list(m.unpack_load_reply(r.payload))
                elif r.type == m.INFER | m.REPLY:
                    expect["inferences"] = m.unpack_infer_reply(r.payload).inferences
                elif r.type in (m.RESET | m.REPLY,):
                    expect["payload_hex"] = ""
            steps.append({"send": frame_obj(f), "expect": expect})
        out.append({"name": name, "description": desc,
                    "device": {"input_dtype": m.DTYPE_INT8, "input_bytes": 16, "max_payload": 48,
                               "reply_cache": cache},
                    "steps": steps})
    return out


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


def valid_v2() -> list:
    data = bytes(range(1, 17))
    items = [
        ("slot_load", "SLOT_LOAD of 16 int8 bytes into slot 2",
         Frame(2, m.SLOT_LOAD, 7, m.pack_slot_load(2, m.DTYPE_INT8, 16, 0, data))),
        ("slot_load_reply", "its reply: generation 1, 16 of 16 bytes",
         Frame(2, m.SLOT_LOAD | m.REPLY, 7, m.pack_slot_load_reply(2, 1, 16, 16))),
        ("patch", "PATCH of slot 2 at generation 1: two runs, no INFER",
         Frame(2, m.PATCH, 8, m.pack_patch(2, 1, [(0, b"\x7f"), (10, b"\x80\x81")]))),
        ("patch_infer", "PATCH with its INFER (repeat 3)",
         Frame(2, m.PATCH, 9, m.pack_patch(2, 2, [(15, b"\x00")], infer=True, repeat=3))),
        ("patch_reply", "PATCH reply without INFER: slot 2, generation 2",
         Frame(2, m.PATCH | m.REPLY, 8, m.pack_slot_reply(2, 2))),
        ("patch_infer_reply", "PATCH-with-INFER reply: generation 3, then an INFER reply",
         Frame(2, m.PATCH | m.REPLY, 9, m.pack_slot_reply(
             2, 3, m.pack_infer_reply(1234, 5, m.DTYPE_INT8, b"\x01\x02")))),
        ("slot_infer", "SLOT_INFER of slot 1, repeat 0 (means 1)",
         Frame(2, m.SLOT_INFER, 10, m.pack_slot_infer(1, 0))),
        ("slot_infer_reply", "its reply",
         Frame(2, m.SLOT_INFER | m.REPLY, 10, m.pack_slot_reply(
             1, 4, m.pack_infer_reply(99, 6, m.DTYPE_INT8, b"\xff")))),
        ("error_stale", "ERROR STALE in a v2 frame",
         Frame(2, m.ERROR, 11, m.pack_error(m.ERR_STALE, "stale"))),
        ("info_boot_id", "v2 INFO assigning boot_id 0x89abcdef",
         Frame(2, m.INFO, 12, m.pack_info_request(0x89ABCDEF))),
        ("error_not_synced", "ERROR NOT_SYNCED: the device restarted, the host must send INFO",
         Frame(2, m.ERROR, 13, m.pack_error(m.ERR_NOT_SYNCED, "send INFO first"))),
    ]
    out = []
    for name, desc, f in items:
        out.append({"name": name, "description": desc, "wire_hex": hexs(encode_frame(f)),
                    "frame": frame_obj(f), "message": message_v2(f)})
    return out


def message_v2(f: Frame) -> dict:
    if f.type == m.INFO:
        return {"kind": "info_request", "boot_id": m.unpack_info_request(f.payload, f.version)}
    if f.type == m.SLOT_LOAD:
        r = m.unpack_slot_load(f.payload)
        return {"kind": "slot_load_request", "slot": r.slot, "dtype": r.dtype, "total": r.total,
                "offset": r.offset, "data_hex": hexs(r.data)}
    if f.type == m.SLOT_LOAD | m.REPLY:
        slot, gen, received, total = m.unpack_slot_load_reply(f.payload)
        return {"kind": "slot_load_reply", "slot": slot, "generation": gen, "received": received,
                "total": total}
    if f.type == m.PATCH:
        r = m.unpack_patch(f.payload)
        return {"kind": "patch_request", "slot": r.slot, "infer": r.infer, "repeat": r.repeat,
                "generation": r.generation, "runs": [[o, hexs(d)] for o, d in r.runs]}
    if f.type == m.SLOT_INFER:
        slot, repeat = m.unpack_slot_infer(f.payload)
        return {"kind": "slot_infer_request", "slot": slot, "repeat": repeat}
    if f.type in (m.PATCH | m.REPLY, m.SLOT_INFER | m.REPLY):
        slot, gen, rest = m.unpack_slot_reply(f.payload)
        infer = None
        if rest:
            r = m.unpack_infer_reply(rest)
            infer = {"ticks": r.ticks, "inferences": r.inferences, "dtype": r.dtype,
                     "output_hex": hexs(r.output)}
        return {"kind": "slot_reply", "slot": slot, "generation": gen, "infer": infer}
    code, text = m.unpack_error(f.payload)
    return {"kind": "error", "code": code, "name": m.error_name(code), "message": text}


def sessions_v2() -> list:
    """v2 corners: versions, slots, generations, STALE, refusals that unload, replays."""
    data = bytes(range(1, 17))
    N = lambda seq, v=1: Frame(v, m.INFO, seq, b"")  # noqa: E731
    SL = lambda seq, slot, off, chunk, total=16: Frame(  # noqa: E731
        2, m.SLOT_LOAD, seq, m.pack_slot_load(slot, m.DTYPE_INT8, total, off, chunk))
    P = lambda seq, slot, gen, runs, infer=False: Frame(  # noqa: E731
        2, m.PATCH, seq, m.pack_patch(slot, gen, runs, infer=infer))
    SI = lambda seq, slot: Frame(2, m.SLOT_INFER, seq, m.pack_slot_infer(slot, 1))  # noqa: E731
    L1 = lambda seq, v=1: Frame(v, m.LOAD, seq, m.pack_load(m.DTYPE_INT8, 16, 0, data))  # noqa: E731
    I1 = lambda seq, v=1: Frame(v, m.INFER, seq, m.pack_infer(1))  # noqa: E731
    B = lambda seq, boot_id: Frame(2, m.INFO, seq, m.pack_info_request(boot_id))  # noqa: E731
    plans = [
        ("info_versions", "INFO in a v1 frame reports protocol 1 and protocols [1, 2]; in a v2 "
                          "frame protocol 2; v1 LOAD/INFER keep working and use slot 0",
         [N(1, 1), N(2, 2), L1(3), I1(4), SI(5, 0)]),
        ("v1_frame_v2_type", "a v2 message type in a v1 frame is BAD_REQUEST (never in v1 bytes)",
         [N(1), Frame(1, m.PATCH, 2, m.pack_patch(0, 0, [])), Frame(1, m.SLOT_LOAD, 3, b"")]),
        ("slot_load_generations", "each completed LOAD start bumps its slot's generation; "
                                  "chunks keep it; slots are independent",
         [N(1, 2), SL(2, 0, 0, data[:10]), SL(3, 0, 10, data[10:]), SL(4, 1, 0, data),
          SL(5, 0, 0, data), SI(6, 0), SI(7, 1)]),
        ("patch_infer", "PATCH against the current generation, with and without its INFER",
         [N(1, 2), SL(2, 3, 0, data), P(3, 3, 1, [(0, b"\x7f")]),
          P(4, 3, 2, [(4, b"\x00\x00"), (15, b"\x01")], infer=True), SI(5, 3)]),
        ("stale_unloads", "a PATCH computed against an old generation is STALE and unloads the "
                          "slot: a later PATCH is NOT_LOADED, SLOT_INFER NOT_LOADED; LOAD recovers",
         [N(1, 2), SL(2, 0, 0, data), P(3, 0, 1, [(0, b"\x01")]), P(4, 0, 1, [(0, b"\x02")]),
          P(5, 0, 2, [(0, b"\x02")]), SI(6, 0), SL(7, 0, 0, data), P(8, 0, 4, [(0, b"\x02")], True)]),
        ("patch_beyond_slot", "a run past the slot's end is SIZE and unloads the slot; no run "
                              "is applied",
         [N(1, 2), SL(2, 1, 0, data), P(3, 1, 1, [(0, b"\x09"), (15, b"\x01\x02")]), SI(4, 1)]),
        ("slot_out_of_range", "slot >= INFO slots is ERROR SLOT for LOAD, PATCH and SLOT_INFER",
         [N(1, 2), SL(2, 4, 0, data), P(3, 200, 1, [(0, b"\x01")]), SI(4, 4)]),
        ("patch_not_loaded", "PATCH of a never-loaded or half-loaded slot is NOT_LOADED",
         [N(1, 2), P(2, 2, 0, [(0, b"\x01")]), SL(3, 2, 0, data[:8]), P(4, 2, 1, [(0, b"\x01")])]),
        ("refused_load_unloads", "a refused SLOT_LOAD (SIZE) unloads that slot only",
         [N(1, 2), SL(2, 0, 0, data), SL(3, 1, 0, data), SL(4, 0, 0, data, total=17), SI(5, 0),
          SI(6, 1)]),
        ("patch_replayed", "a retransmitted PATCH-with-INFER is answered from the cache: it is "
                           "neither applied twice (no STALE) nor run twice",
         [N(1, 2), SL(2, 0, 0, data), P(3, 0, 1, [(0, b"\x05")], infer=True),
          P(3, 0, 1, [(0, b"\x05")], infer=True), SL(2, 0, 0, data), SI(4, 0)]),
        ("malformed_patch", "runs that do not fill the payload, unknown flags: BAD_REQUEST",
         [N(1, 2), Frame(2, m.PATCH, 2, m.pack_patch(0, 0, [(0, b"\x01")])[:-1]),
          Frame(2, m.PATCH, 3, m.pack_patch(0, 0, []) + b"\x00"),
          Frame(2, m.PATCH, 4, b"\x00\x02" + m.pack_patch(0, 0, [])[2:])]),
        ("reset_clears_slots", "RESET unloads every slot and generations restart",
         [N(1, 2), SL(2, 0, 0, data), Frame(2, m.RESET, 3, b""), N(4, 2), SI(5, 0),
          SL(6, 0, 0, data)]),
        ("not_synced_until_info", "after boot every request but INFO, in either version, is "
                                  "ERROR NOT_SYNCED and changes nothing (not cached, not a "
                                  "sequence number); an INFO with a boot_id syncs and assigns it",
         [SL(7, 0, 0, data), L1(8), I1(9, 2), Frame(2, m.RESET, 10, b""), SL(7, 0, 0, data),
          B(11, 0x1234ABCD), SL(12, 0, 0, data), SI(13, 0), N(14, 2), N(15, 1)]),
        ("boot_id_assignment", "INFO without a payload keeps the boot_id; a v2 INFO with 4 bytes "
                               "sets it (0 included); other sizes, and 4 bytes in a v1 frame, are "
                               "BAD_REQUEST",
         [N(1, 2), B(2, 7), N(3, 1), Frame(2, m.INFO, 4, b"\x01\x02\x03"),
          Frame(1, m.INFO, 5, m.pack_info_request(9)), N(6, 2), B(7, 0xFFFFFFFF), B(8, 0)]),
        ("reset_forgets_boot_id", "RESET: the device restarts, NOT_SYNCED until INFO, boot_id 0",
         [N(1, 2), B(2, 99), SL(3, 0, 0, data), Frame(2, m.RESET, 4, b""), SI(5, 0), N(6, 2),
          SI(7, 0)]),
    ]
    out = []
    for name, desc, frames in plans:
        server = ProtocolServer(None, _VectorHandler(), max_payload=48, reply_cache=8, slots=4)
        steps = []
        for f in frames:
            replies = server.receive(encode_frame(f))
            assert len(replies) <= 1
            expect = None
            if replies:
                (r,) = FrameDecoder().feed(replies[0])
                assert r.version == f.version
                expect = {"type": r.type, "seq": r.seq}
                if r.type == m.ERROR:
                    expect["error_code"] = m.unpack_error(r.payload)[0]
                elif r.type == m.INFO | m.REPLY:
                    info = m.unpack_info(r.payload)
                    expect["info"] = {k: info[k] for k in ("protocol", "protocols", "slots",
                                                           "boot_id")}
                elif r.type == m.LOAD | m.REPLY:
                    expect["load_reply"] = list(m.unpack_load_reply(r.payload))
                elif r.type == m.SLOT_LOAD | m.REPLY:
                    expect["slot_load_reply"] = list(m.unpack_slot_load_reply(r.payload))
                elif r.type in (m.PATCH | m.REPLY, m.SLOT_INFER | m.REPLY):
                    slot, gen, rest = m.unpack_slot_reply(r.payload)
                    expect["slot_reply"] = [slot, gen]
                    if rest:
                        expect["inferences"] = m.unpack_infer_reply(rest).inferences
                elif r.type == m.INFER | m.REPLY:
                    expect["inferences"] = m.unpack_infer_reply(r.payload).inferences
                elif r.type == m.RESET | m.REPLY:
                    expect["payload_hex"] = ""
            steps.append({"send": frame_obj(f), "expect": expect})
        out.append({"name": name, "description": desc,
                    "device": {"input_dtype": m.DTYPE_INT8, "input_bytes": 16, "max_payload": 48,
                               "reply_cache": 8, "slots": 4},
                    "steps": steps})
    return out


def render_v2() -> str:
    doc = {"schema": SCHEMA_V2, "protocol": 2, "protocols": list(m.PROTOCOLS),
           "generator": "tools/gen_protocol_vectors.py",
           "message_types": {"SLOT_LOAD": m.SLOT_LOAD, "PATCH": m.PATCH,
                             "SLOT_INFER": m.SLOT_INFER},
           "info_request": "v2 INFO payload: empty, or boot_id u32 (the host assigns it)",
           "error_codes": {name: code for code, name in m.ERROR_NAMES.items()},
           "valid": valid_v2(), "sessions": sessions_v2()}
    return json.dumps(doc, indent=1) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed file is stale")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    outputs = [(args.out, render()), (args.out.with_name(OUT_V2.name), render_v2())]
    if args.check:
        stale = [str(path) for path, text in outputs
                 if not path.exists() or path.read_text() != text]
        if stale:
            print(f"{', '.join(stale)} stale: run python tools/gen_protocol_vectors.py",
                  file=sys.stderr)
            return 1
        return 0
    for path, text in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
