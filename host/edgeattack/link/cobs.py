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
    out = bytearray()
    i = 0
    n = len(data)
    if n == 0:
        raise CobsError("empty COBS frame")
    while i < n:
        code = data[i]
        if code == 0:
            raise CobsError(f"zero byte at offset {i}")
        end = i + code
        if end > n:
            raise CobsError(f"block at offset {i} needs {code - 1} bytes, {n - i - 1} left")
        block = data[i + 1:end]
        if 0 in block:
            raise CobsError(f"zero byte inside the block at offset {i}")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def max_encoded_size(n: int) -> int:
    """Largest COBS encoding of n bytes (n >= 1): n + ceil(n / 254)."""
    return n + max(1, -(-n // 254))
