"""The one function that quantizes float inputs for an int8 model (CONVENTIONS: input quantization).

It does exactly what TFLite's QUANTIZE does: divide in float32, round half away from zero, then add
the zero-point and saturate. The session, the attacks and the tests all call it; nothing else quantizes.
"""
from __future__ import annotations

import numpy as np


def quantize_input(x, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """float input (model's own domain) -> int8 (or uint8/int16) tensor."""
    info = np.iinfo(dtype)
    scaled = np.asarray(x, dtype=np.float32) / np.float32(scale)
    # np.round rounds half to even; TFLite (std::round) rounds half away from zero. Adding 0.5 in
    # float32 would misround 0.49999997, so compare the exact fractional part instead.
    whole = np.trunc(scaled)
    rounded = whole + np.sign(scaled) * (np.abs(scaled - whole) >= np.float32(0.5))
    q = rounded.astype(np.int64) + int(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q, scale: float, zero_point: int) -> np.ndarray:
    """Integer tensor -> float32, as TFLite's DEQUANTIZE."""
    return (np.asarray(q, dtype=np.int64) - int(zero_point)).astype(np.float32) * np.float32(scale)
