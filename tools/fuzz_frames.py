#!/usr/bin/env python3
"""Fuzz the frame receiver and the device's request handling with Hypothesis.

    python tools/fuzz_frames.py                      # 100,000 inputs per target (a few minutes)
    python tools/fuzz_frames.py --examples 2000      # the CI size (tests/test_link_fuzz.py)

Inputs: random bytes, valid frames, valid frames mutated (bit flips, inserted/deleted/duplicated
bytes, inserted 0x00, truncation, splices), all fed in random chunk sizes. Checked on every input:
no exception escapes; the receiver's buffer never exceeds one maximum-size encoded frame; the
streaming receiver agrees with whole-frame decoding on every delimited piece (same frame or same drop
reason); the device's reply cache, log and input buffer stay within their limits, its inference
counter equals the inferences the model actually ran, and every reply is a valid v1 frame answering a
request it received.
"""
from __future__ import annotations

import argparse
import random
import sys
import time

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from edgeattack.link import messages as m
from edgeattack.link.frame import (DROP_REASONS, Frame, FrameDecoder, FrameError, decode_body,
                                   encode_frame)
from edgeattack.link.server import LOG_EVENTS, ProtocolServer

MAX_PAYLOAD = 96  # small, so oversize frames are common


# inputs ------------------------------------------------------------------------------------------
# Each input is one Hypothesis byte string read as a program (like libFuzzer's FuzzedDataProvider):
# one cheap draw per example, and Hypothesis still shrinks a failing input to a small one.

class Program:
    """Reads choices from a byte string, then from a random generator seeded by `tail_seed`
    (Hypothesis draws short byte strings: the generator makes long inputs cheap)."""

    def __init__(self, data: bytes, tail_seed: int = 0):
        self.data = data
        self.pos = 0
        self.tail = random.Random(tail_seed)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return self.tail.randrange(256)
        self.pos += 1
        return self.data[self.pos - 1]

    def int(self, low: int, high: int) -> int:
        span = high - low + 1
        value = self.byte() | self.byte() << 8 if span > 256 else self.byte()
        return low + value % span

    def pick(self, options):
        return options[self.byte() % len(options)]

    def bytes(self, max_len: int) -> bytes:
        return bytes(self.byte() for _ in range(self.int(0, max_len)))

    def sizes(self) -> list[int]:
        return [self.int(1, 64) for _ in range(self.int(0, 20))]


def split(stream: bytes, sizes: list[int]):
    """The stream in chunks of the given sizes, the rest in one last chunk."""
    pos = 0
    for size in sizes:
        if pos >= len(stream):
            return
        yield stream[pos:pos + size]
        pos += size
    if pos < len(stream):
        yield stream[pos:]


def mutate(p: Program, wire: bytes) -> bytes:
    data = bytearray(wire)
    for _ in range(p.int(1, 3)):
        op = p.pick(["flip", "insert", "delete", "dup", "zero", "truncate", "set"])
        i = p.int(0, max(len(data) - 1, 0))
        if op == "flip" and data:
            data[i] ^= 1 << p.int(0, 7)
        elif op == "insert":
            data[i:i] = p.bytes(8) or b"\x01"
        elif op == "delete" and data:
            del data[i:i + p.int(1, 8)]
        elif op == "dup" and data:
            data[i:i] = data[i:i + p.int(1, 8)]
        elif op == "zero":
            data.insert(i, 0)
        elif op == "truncate":
            del data[i:]
        elif op == "set" and data:
            data[i] = p.byte()
    return bytes(data)


def decoder_input(blob: bytes, tail_seed: int = 0) -> tuple[bytes, list[int]]:
    """Random bytes, valid frames of any version/type, mutated frames, long garbage runs."""
    p = Program(blob, tail_seed)
    pieces = []
    for _ in range(p.int(0, 8)):
        kind = p.pick(["valid", "valid", "mutated", "mutated", "random", "garbage_run"])
        if kind == "random":
            pieces.append(p.bytes(80))
        elif kind == "garbage_run":
            pieces.append(bytes([p.int(1, 255)]) * p.int(1, 400))
        else:
            size = MAX_PAYLOAD + 40 if p.int(0, 7) == 7 else MAX_PAYLOAD
            frame = Frame(p.pick([1, 1, 1, 0, 2, 255]), p.byte(), p.int(0, 0xFFFF), p.bytes(size))
            wire = encode_frame(frame)
            pieces.append(wire if kind == "valid" else mutate(p, wire))
    return b"".join(pieces), p.sizes()


def request(p: Program, seq: int, loaded: int) -> tuple[Frame, int]:
    """One request; mostly well-formed (the next LOAD chunk, INFER), sometimes anything.
    Returns it with the number of input bytes a device following the rules would then hold."""
    kind = p.int(0, 31)
    pick = p.int(0, 31)
    version = 3 if pick == 31 else 2 if pick >= 24 else 1  # 3: a version nobody speaks
    if version == 2 and p.int(0, 1):
        return slot_request(p, seq), 0
    if kind <= 24:
        # Mostly the productive request: the next LOAD chunk, or INFER once the input is whole.
        infer = (kind <= 21) == (loaded == 16)
        kind = 7 if infer else 0
    else:
        kind -= 14  # 11: INFO, 12: RESET, 13..17: other types
    if kind <= 6:  # the next chunk of the 16-byte input, occasionally wrong
        offset = loaded if loaded < 16 else 0
        chunk = (16 - offset) - p.int(0, 15 - offset)
        dtype, total = m.DTYPE_INT8, 16
        twist = p.int(0, 47)
        if twist == 1:
            dtype = p.pick([m.DTYPE_UINT8, 0, 77])
        elif twist == 2:
            total = p.pick([15, 17, 0, 0xFFFFFFFF])
        elif twist == 3:
            offset = p.pick([4, 8, 12, 16, 0xFFFFFFF0])
        elif twist == 4:
            chunk += p.int(1, 8)
        elif twist == 6:
            chunk = p.int(MAX_PAYLOAD - 12, MAX_PAYLOAD + 8)  # up to TOO_LARGE
        data = bytes(p.byte() for _ in range(chunk))
        payload = m.pack_load(dtype, total, offset, data)
        if twist == 5:
            payload = payload[:p.int(0, len(payload) - 1)]
        ok = twist == 0 or twist > 6
        loaded = (offset + chunk) if ok and version == 1 else 0
        return Frame(version, m.LOAD, seq, payload), loaded
    if kind <= 10:
        payload = m.pack_infer(p.int(0, 3)) if p.int(0, 15) != 15 else p.bytes(6)
        return Frame(version, m.INFER, seq, payload), loaded
    if kind in (11, 13):  # empty, a boot_id (v2), or anything
        how = p.int(0, 7)
        payload = b"" if how < 5 else m.pack_info_request(p.int(0, 0xFFFF)) if how < 7 else p.bytes(8)
        return Frame(version, m.INFO, seq, payload), loaded
    if kind == 12:
        return Frame(version, m.RESET, seq, b"" if p.int(0, 7) != 7 else p.bytes(8)), 0
    mtype = p.pick([0x05, 0x00, m.ERROR, m.INFO | m.REPLY, m.INFER | m.REPLY, 0xFF])
    return Frame(version, mtype, seq, p.bytes(MAX_PAYLOAD + 20)), loaded


def slot_request(p: Program, seq: int) -> Frame:
    """A v2 slot message: SLOT_LOAD, PATCH (with or without INFER) or SLOT_INFER, over slots
    0..4 of a 4-slot device, generations 0..3, runs that sometimes overrun the 16-byte input."""
    what = p.int(0, 3)
    slot = p.pick([0, 0, 0, 0, 1, 4])  # mostly one slot, so generations line up now and then
    if what == 0:
        offset = p.pick([0, 0, 0, 8, 16])
        chunk = 16 - offset if p.int(0, 3) else p.int(0, 16)
        payload = m.pack_slot_load(slot, p.pick([m.DTYPE_INT8] * 7 + [m.DTYPE_UINT8]),
                                   p.pick([16] * 7 + [17]), offset,
                                   bytes(p.byte() for _ in range(chunk)))
        return Frame(2, m.SLOT_LOAD, seq, payload)
    if what <= 2:
        runs = [(p.int(0, 17), bytes(p.byte() for _ in range(p.int(0, 4))))
                for _ in range(p.int(0, 3))]
        payload = m.pack_patch(slot, p.pick([1, 1, 2, 3, 0]), runs, infer=bool(p.int(0, 1)), repeat=p.int(0, 2))
        if p.int(0, 15) == 15:
            payload = payload[:p.int(0, len(payload))] + p.bytes(3)  # malformed runs
        return Frame(2, m.PATCH, seq, payload)
    return Frame(2, m.SLOT_INFER, seq, m.pack_slot_infer(slot, p.int(0, 2)))


def server_input(blob: bytes, tail_seed: int = 0) -> tuple[bytes, list[int]]:
    """A host session seen by the device: requests mostly in sequence, with retransmissions of
    recent frames, gaps, jumps, damaged frames and noise, so every sequence rule fires."""
    p = Program(blob, tail_seed)
    seq = p.int(0, 0xFFFF)
    loaded = 0
    sent: list[bytes] = []
    pieces = []
    if seq % 8:  # a host opens with INFO; without it the device answers NOT_SYNCED
        pieces.append(encode_frame(Frame(1 + (seq >> 3) % 2, m.INFO, (seq - 1) & 0xFFFF, b"")))
    for _ in range(16 - p.int(0, 15)):
        mode = p.int(0, 15)
        if mode >= 13 and sent:  # go-back-N: the last few frames again, in order
            pieces.extend(sent[-p.int(1, min(len(sent), 4)):])
            continue
        if mode >= 11 and sent:  # one recent frame again (a duplicate)
            pieces.append(sent[-1 - p.int(0, min(len(sent), 6) - 1)])
            continue
        if mode == 9 and p.int(0, 1):
            seq = p.int(0, 0xFFFF)  # a jump (another host, a wrap)
        frame, loaded = request(p, seq, loaded)
        wire = encode_frame(frame)
        sent.append(wire)
        seq = (seq + 1) & 0xFFFF
        if mode == 10:
            continue  # lost on the way: later frames are a gap until a go-back
        how = p.int(0, 15)
        if how == 15:
            wire = mutate(p, wire)
        elif how == 14:
            wire = p.bytes(40)
        pieces.append(wire)
    return b"".join(pieces), p.sizes()


class FuzzHandler:
    """A model stand-in: 16-byte int8 input; a first byte of 0xEE or 0xEF makes it fail."""

    INPUT = (m.DTYPE_INT8, 16)

    def __init__(self):
        self.runs = 0  # since the last RESET, as the device's counter
        self.total = 0  # ever

    def info(self):
        return {"board": "fuzz", "tick_hz": 1000}

    def input_spec(self):
        return self.INPUT

    def infer(self, data, repeat):
        assert len(data) == self.INPUT[1]
        if data[0] == 0xEE:
            raise m.ProtocolError(m.ERR_MODEL, "fuzz model error")
        if data[0] == 0xEF:
            raise RuntimeError("fuzz runtime error")
        self.runs += repeat
        self.total += repeat
        return bytes(data[:3]), m.DTYPE_INT8, repeat

    def reset(self):
        self.runs = 0  # RESET restarts the device's inference counter too


# checks --------------------------------------------------------------------------------------------

def expected_outcomes(stream: bytes, max_payload: int) -> list:
    """Whole-frame decoding of every delimited, non-empty piece: a Frame or a drop reason."""
    out = []
    pieces = stream.split(b"\x00")
    for piece in pieces[:-1]:
        if not piece:
            continue
        try:
            out.append(decode_body(piece, max_payload))
        except FrameError as exc:
            out.append(exc.reason)
    return out


COVERAGE: dict = {}  # what the inputs reached: frames, drop reasons, replies, sequence rules


def _seen(key: str, n: int = 1) -> None:
    COVERAGE[key] = COVERAGE.get(key, 0) + n


def check_decoder(stream: bytes, sizes: list[int]) -> None:
    dec = FrameDecoder(MAX_PAYLOAD)
    frames = []
    for chunk in split(stream, sizes):
        frames += dec.feed(chunk)
        assert dec.buffered <= dec.max_encoded, (dec.buffered, dec.max_encoded)
    expected = expected_outcomes(stream, MAX_PAYLOAD)
    assert frames == [e for e in expected if isinstance(e, Frame)]
    reasons = {r: 0 for r in DROP_REASONS}
    for e in expected:
        if not isinstance(e, Frame):
            reasons[e] += 1
    tail = stream.split(b"\x00")[-1]
    if len(tail) > dec.max_encoded:  # an unterminated oversize piece is already counted
        reasons["oversize"] += 1
    assert dec.drops == reasons, (dec.drops, reasons)
    for f in frames:
        assert FrameDecoder(MAX_PAYLOAD).feed(encode_frame(f)) == [f]
    _seen("decoder.frames", len(frames))
    for reason, n in dec.drops.items():
        _seen(f"decoder.drop.{reason}", n)


def check_server(stream: bytes, sizes: list[int]) -> None:
    handler = FuzzHandler()
    server = ProtocolServer(None, handler, max_payload=MAX_PAYLOAD, rx_buffers=2, reply_cache=4,
                            slots=4)
    received = FrameDecoder(MAX_PAYLOAD + 40)  # what the server decoded, to match replies against
    requests: dict[int, set] = {}
    reply_decoder = FrameDecoder()
    for chunk in split(stream, sizes):
        for f in received.feed(chunk):
            requests.setdefault(f.seq, set()).add((f.version, f.type))
        replies = server.receive(chunk)
        assert server.decoder.buffered <= server.decoder.max_encoded
        assert len(server._cache) <= server.reply_cache
        assert len(server.log) <= LOG_EVENTS
        assert all(t is None or len(t) == FuzzHandler.INPUT[1] for t in server._input)
        assert server.inferences == handler.runs
        for wire in replies:
            (reply,) = reply_decoder.feed(wire)
            assert reply.seq in requests, reply
            sent = requests[reply.seq]
            if reply.type == m.ERROR:  # in the request's version (a foreign version: in v1)
                assert reply.version in {v if v in m.PROTOCOLS else 1 for v, _ in sent}
            else:  # a v2 device answers in the request's version
                assert (reply.version, reply.type & ~m.REPLY) in sent
            rest = None
            if reply.type == m.INFER | m.REPLY:
                rest = reply.payload
            elif reply.type in (m.PATCH | m.REPLY, m.SLOT_INFER | m.REPLY):
                slot, _, rest = m.unpack_slot_reply(reply.payload)
                assert slot < server.slots
            if rest:
                assert 1 <= m.unpack_infer_reply(rest).inferences <= handler.total
            if reply.type == m.ERROR:
                _seen(f"server.error.{m.error_name(m.unpack_error(reply.payload)[0])}")
            else:
                _seen(f"server.reply.{m.TYPE_NAMES.get(reply.type & ~m.REPLY)}")
    _seen("server.replays", server.replays)
    _seen("server.gaps", server.gaps)
    _seen("server.drop.crc", server.crc_errors)


# runners -------------------------------------------------------------------------------------------

def run(examples: int, seed_value: int = 0, verbose: bool = True) -> dict:
    """Run both targets; returns {target: inputs run}. Raises on the first failing input."""
    counts = {"decoder": 0, "server": 0}
    config = settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                      suppress_health_check=list(HealthCheck), print_blob=True)

    @seed(seed_value)
    @config
    @given(st.binary(max_size=1500), st.integers(0, 2**32 - 1))
    def decoder_target(blob, tail_seed):
        counts["decoder"] += 1
        check_decoder(*decoder_input(blob, tail_seed))

    @seed(seed_value + 1)
    @config
    @given(st.binary(max_size=1500), st.integers(0, 2**32 - 1))
    def server_target(blob, tail_seed):
        counts["server"] += 1
        check_server(*server_input(blob, tail_seed))

    for name, target in (("decoder", decoder_target), ("server", server_target)):
        t0 = time.monotonic()
        target()
        if verbose:
            print(f"{name}: {counts[name]} inputs, no failure ({time.monotonic() - t0:.1f} s)",
                  flush=True)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100_000, help="inputs per target")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    counts = run(args.examples, args.seed)
    print(f"total: {sum(counts.values())} inputs")
    print("reached: " + ", ".join(f"{k}={v}" for k, v in sorted(COVERAGE.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
