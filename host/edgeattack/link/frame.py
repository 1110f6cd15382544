"""Frames of docs/protocol.md: header, payload and CRC-32, COBS-encoded, ended by 0x00.

`encode_frame` builds the wire bytes of one frame. `FrameDecoder` is fed arbitrary chunks of a byte
stream and returns the valid frames in them; everything else is dropped and counted by reason. It
never raises on stream content and never holds more than one maximum-size encoded frame.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from edgeattack.link import cobs

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBHH")  # version, type, seq, payload length
HEADER_SIZE = HEADER.size  # 6
CRC = struct.Struct("<I")
CRC_SIZE = CRC.size  # 4
# zlib.crc32 of a body followed by its own CRC (little-endian) is this constant for every body: a
# receiver checks a frame with one CRC over all its bytes, without slicing off the CRC first.
CRC_RESIDUE = 0x2144DF1C
OVERHEAD = HEADER_SIZE + CRC_SIZE  # 10 bytes around the payload before COBS
MAX_PAYLOAD = 0xFFFF  # the length field is a u16

# Drop reasons, in the order a receiver checks them (docs/protocol.md, "Frames").
DROP_REASONS = ("oversize", "cobs", "short", "length", "crc")


@dataclass(frozen=True)
class Frame:
    """One decoded frame. `version` is whatever the sender wrote: the caller decides what to do
    with a frame of another protocol version (its CRC was good)."""

    version: int
    type: int
    seq: int
    payload: bytes = b""


def _new_frame(version: int, mtype: int, seq: int, payload: bytes, _new=object.__new__) -> Frame:
    """Frame(version, mtype, seq, payload), built without the frozen dataclass's __init__ (which
    sets each field through object.__setattr__): the receiver builds one per frame."""
    frame = _new(Frame)
    fields = frame.__dict__
    fields["version"] = version
    fields["type"] = mtype
    fields["seq"] = seq
    fields["payload"] = payload
    return frame


def frame_body(frame: Frame) -> bytes:
    """The frame before COBS: header, payload, CRC-32 (little-endian)."""
    payload = frame.payload
    length = len(payload)
    if length > MAX_PAYLOAD:
        raise ValueError(f"payload of {length} bytes exceeds the u16 length field")
    head = HEADER.pack(frame.version, frame.type, frame.seq & 0xFFFF, length)
    return b"".join((head, payload, CRC.pack(zlib.crc32(payload, zlib.crc32(head)))))


def encode_frame(frame: Frame) -> bytes:
    """Wire bytes of one frame: COBS(body) + 0x00."""
    return cobs.encode(frame_body(frame)) + b"\x00"


def encode_wire(version: int, mtype: int, seq: int, payload: bytes) -> bytes:
    """encode_frame(Frame(version, mtype, seq, payload)) without building the Frame."""
    length = len(payload)
    if length > MAX_PAYLOAD:
        raise ValueError(f"payload of {length} bytes exceeds the u16 length field")
    head = HEADER.pack(version, mtype, seq & 0xFFFF, length)
    body = b"".join((head, payload, CRC.pack(zlib.crc32(payload, zlib.crc32(head)))))
    return cobs.encode(body) + b"\x00"


def wire_size(payload_len: int) -> int:
    """Upper bound of the wire bytes of a frame with this payload length (exact when the frame
    contains no 0x00 byte): L + 10 + ceil((L + 10) / 254) + 1."""
    return cobs.max_encoded_size(payload_len + OVERHEAD) + 1


class FrameError(ValueError):
    """A received frame is invalid; `reason` is one of DROP_REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def decode_body(encoded: bytes, max_payload: int = MAX_PAYLOAD) -> Frame:
    """Decode one COBS-encoded frame (without its 0x00). Raises FrameError with the drop reason."""
    max_body = max_payload + OVERHEAD
    if len(encoded) > cobs.max_encoded_size(max_body):
        raise FrameError("oversize", f"{len(encoded)} encoded bytes")
    return _decode_checked(encoded, max_body)


def _decode_checked(encoded: bytes, max_body: int) -> Frame:
    """decode_body once the encoded size is known to be within the limit."""
    try:
        body = cobs.decode(encoded)
    except cobs.CobsError as exc:
        raise FrameError("cobs", str(exc)) from None
    if len(body) > max_body:
        raise FrameError("oversize", f"{len(body)} decoded bytes, limit {max_body}")
    if len(body) < OVERHEAD:
        raise FrameError("short", f"{len(body)} bytes, a frame has at least {OVERHEAD}")
    version, mtype, seq, length = HEADER.unpack_from(body)
    if length != len(body) - OVERHEAD:
        raise FrameError("length", f"length field {length}, payload has {len(body) - OVERHEAD} bytes")
    if zlib.crc32(body) != CRC_RESIDUE:
        (crc,) = CRC.unpack_from(body, len(body) - CRC_SIZE)
        raise FrameError("crc", f"CRC {crc:08x} != {zlib.crc32(body[:-CRC_SIZE]):08x}")
    return _new_frame(version, mtype, seq, body[HEADER_SIZE:-CRC_SIZE])


class FrameDecoder:
    """Streaming frame receiver with bounded memory.

    `feed(chunk)` returns the frames completed by `chunk`, in order. Invalid frames are counted in
    `drops[reason]` (reasons: DROP_REASONS) and skipped; empty frames (consecutive 0x00, e.g. the
    flush byte a host sends on connect) are ignored without counting. Bytes beyond one maximum-size
    encoded frame are discarded until the next 0x00, so `buffered` never exceeds `max_encoded`.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        if not 0 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload must be 0..{MAX_PAYLOAD}")
        self.max_payload = max_payload
        self._max_body = max_payload + OVERHEAD
        self.max_encoded = cobs.max_encoded_size(max_payload + OVERHEAD)
        self.drops = {reason: 0 for reason in DROP_REASONS}
        self.frames = 0
        self._buf = bytearray()
        self._discarding = False  # inside an oversize frame: skip to the next delimiter

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())

    @property
    def buffered(self) -> int:
        """Bytes held for the frame in progress (never more than max_encoded)."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget a partial frame (e.g. after reconnecting)."""
        self._buf.clear()
        self._discarding = False

    def feed(self, chunk: bytes) -> list[Frame]:
        frames: list[Frame] = []
        buf = self._buf
        max_encoded = self.max_encoded
        pos = 0
        n = len(chunk)
        while pos < n:
            end = chunk.find(b"\x00", pos)
            if end < 0:  # a frame continues in the next chunk
                if not self._discarding:
                    if n - pos > max_encoded - len(buf):
                        buf.clear()
                        self._discarding = True
                        self.drops["oversize"] += 1
                    else:
                        buf += chunk[pos:]
                break
            start, pos = pos, end + 1
            if self._discarding:
                self._discarding = False  # the oversize frame ends here (counted already)
                continue
            if buf:
                if end - start > max_encoded - len(buf):
                    buf.clear()
                    self.drops["oversize"] += 1
                    continue
                buf += chunk[start:end]
                encoded = bytes(buf)
                buf.clear()
            elif end == start:
                continue  # empty frame: a flush or a repeated delimiter
            elif end - start > max_encoded:
                self.drops["oversize"] += 1
                continue
            else:
                encoded = chunk[start:end]  # the whole frame is in this chunk: no buffering
            try:
                frames.append(_decode_checked(encoded, self._max_body))
                self.frames += 1
            except FrameError as exc:
                self.drops[exc.reason] += 1
        return frames
