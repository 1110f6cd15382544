"""The one function that quantizes float inputs for an int8 model (CONVENTIONS: input quantization).

    q = clip(round_half_away_from_zero(float32(x) / float32(scale)) + zero_point, min, max)

That is TFLite's QUANTIZE (reference kernels, and TFLM's) wherever x / scale fits an int32. Beyond
that the kernels cast to int32 first, which C++ leaves undefined (on x86 -1e18 and +1e18 both come
out as INT32_MIN, so with zero point -128 they wrap to +127); here every out-of-range input, +-inf
included, saturates to the side it lies on. NaN has no quantized value: it is refused.

LiteRT's default CPU path (XNNPACK) is no oracle for ties: it multiplies by 1/scale and rounds
half to even, so 2.5 steps become 2 where TFLite's reference kernels and TFLM give 3. Compare with
LiteRT's reference kernels (OpResolverType.BUILTIN_REF) or TFLM (tests/test_quant.py does both).

The session, the attacks and the tests all call quantize_input; nothing else quantizes.
"""
from __future__ import annotations

import numpy as np

from .errors import UsageError


def quantize_input(x, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """float input (model's own domain) -> int8 (or uint8/int16) tensor. UsageError on NaN."""
    info = np.iinfo(dtype)
    scaled = np.asarray(x, dtype=np.float32) / np.float32(scale)
    nan = np.isnan(scaled)
    if nan.any():
        where = tuple(int(i) for i in np.argwhere(nan)[0])
        raise UsageError(f"cannot quantize NaN (first at index {list(where)}): inputs must be finite "
                         f"numbers in the model's input domain")
    # np.round rounds half to even; TFLite (std::round) rounds half away from zero. Adding 0.5 in
    # float32 would misround 0.49999997, so compare the exact fractional part instead.
    whole = np.trunc(scaled)
    with np.errstate(invalid="ignore"):  # inf - inf: its fraction is NaN, and NaN >= 0.5 is False
        rounded = whole + np.sign(scaled) * (np.abs(scaled - whole) >= np.float32(0.5))
    # Add the zero point and saturate in float64 (exact for every value that is not saturated
    # anyway), and only then cast: an integer cast of a huge or infinite value wraps.
    q = np.clip(rounded.astype(np.float64) + int(zero_point), info.min, info.max)
    return q.astype(dtype)


def dequantize(q, scale: float, zero_point: int) -> np.ndarray:
    """Integer tensor -> float32, as TFLite's DEQUANTIZE."""
    return (np.asarray(q, dtype=np.int64) - int(zero_point)).astype(np.float32) * np.float32(scale)
