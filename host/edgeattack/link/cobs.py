"""Consistent Overhead Byte Stuffing (Cheshire & Baker), the framing of docs/protocol.md.

The encoder writes the canonical form: a block of 254 non-zero bytes gets code 0xFF and no zero
follows it; the final block is never followed by an extra empty block. So n input bytes (n >= 1)
become at most n + ceil(n / 254) bytes, none of them 0x00. The decoder accepts any valid COBS.
"""
from __future__ import annotations


class CobsError(ValueError):
    """The bytes are not valid COBS (a zero byte, or a block running past the end)."""


def encode(data: bytes) -> bytes:
    """COBS-encode `data` (without the trailing 0x00 delimiter)."""
    if type(data) is not bytes:
        data = bytes(data)
    pieces = data.split(b"\x00")
    if len(data) < 254 or max(map(len, pieces)) < 254:
        # No block is cut at 254 bytes: the encoding is a code byte followed by the data, each 0x00
        # replaced by the code of the block after it (one Python step per zero, no slicing).
        out = bytearray(b"\x00")
        out += data
        pos = 0
        for step in map(len, pieces):
            step += 1
            out[pos] = step
            pos += step
        return bytes(out)
    return _encode_blocks(data)


def _encode_blocks(data: bytes) -> bytes:
    """The general encoder, for data with runs of 254 or more non-zero bytes."""
    out = bytearray()
    start = 0
    n = len(data)
    while True:
        # One block: up to 254 non-zero bytes, ended by a zero (consumed) or by the 254 limit.
        zero = data.find(b"\x00", start, start + 254)
        if zero >= 0:
            out.append(zero - start + 1)
            out += data[start:zero]
            start = zero + 1
            continue
        end = min(start + 254, n)
        run = end - start
        if run == 254:
            out.append(0xFF)
            out += data[start:end]
            start = end
            if start == n:
                return bytes(out)  # canonical: no empty block after a full one at the end
            continue
        out.append(run + 1)
        out += data[start:end]
        return bytes(out)


def decode(data: bytes) -> bytes:
    """Decode one COBS-encoded frame (delimiter already removed). Raises CobsError."""
    n = len(data)
    if n == 0:
        raise CobsError("empty COBS frame")
    zero = data.find(b"\x00") if isinstance(data, bytes) else bytes(data).find(b"\x00")
    if zero >= 0:
        raise CobsError(f"zero byte at offset {zero}")
    # Without 0xFF blocks the decoded data is the encoded data minus its first code byte, each
    # later code byte replaced by 0x00: walk the codes and patch them in one copy.
    out = bytearray(data)
    i = 0
    while True:
        code = data[i]
        if code == 0xFF:
            return _decode_blocks(data)
        end = i + code
        if end >= n:
            if end > n:
                raise CobsError(f"block at offset {i} needs {code - 1} bytes, {n - i - 1} left")
            del out[0]
            return bytes(out)
        out[end] = 0
        i = end


def _decode_blocks(data: bytes) -> bytes:
    """The general decoder (frames with 0xFF blocks); `data` holds no 0x00 byte."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        end = i + code
        if end > n:
            raise CobsError(f"block at offset {i} needs {code - 1} bytes, {n - i - 1} left")
        out += data[i + 1:end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def max_encoded_size(n: int) -> int:
    """Largest COBS encoding of n bytes (n >= 1): n + ceil(n / 254)."""
    return n + max(1, -(-n // 254))
