"""The firmware's TFLite QuantizeMultiplier (runtime/ea_quant.c) in integer arithmetic, against TFLM's
double-precision formula computed here in Python floats (IEEE doubles): double(a) * double(b) / double(c)
* 2^pow2, frexp, round(q * 2^31) half away from zero. The firmware has no double arithmetic (it would be
soft-float on the single-precision Cortex-M4F), so every multiplier must still come out bit-exact.
"""
from __future__ import annotations

import math
import random
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import require_tool
from edgeattack.resources import firmware_dir

HERE = Path(__file__).parent


def _f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _tflm(a: float, b: float, c: float, pow2: int) -> tuple[int, int, int]:
    """TFLite's QuantizeMultiplier of the double TFLM computes; rc -1 where the firmware refuses."""
    if any(math.isnan(v) for v in (a, b, c)) or math.isinf(a) or math.isinf(b) or c == 0.0:
        return (-1, 0, 0)
    m = a * b / c * 2.0 ** pow2  # a * b exact in a double, one rounding in the division
    if m == 0.0:
        return (0, 0, 0)
    if m < 0.0:
        return (-1, 0, 0)
    q, e = math.frexp(m)
    q_fixed = math.floor(q * 2.0 ** 31 + 0.5)  # exact: q * 2^31 < 2^31 keeps 22 fraction bits
    if q_fixed == 2 ** 31:
        q_fixed //= 2
        e += 1
    if e < -31:
        e, q_fixed = 0, 0
    return (0, q_fixed, e)


def _cases(n: int, seed: int) -> list[tuple[int, int, int, int]]:
    rng = random.Random(seed)
    one = 0x3F800000

    def scale():  # mostly realistic scales, some arbitrary bit patterns (subnormals, NaN, inf, negatives)
        r = rng.random()
        if r < 0.6:
            return rng.getrandbits(23) | (rng.randrange(100, 140) << 23)
        if r < 0.8:  # significands with two set bits: products land on round(q * 2^31)'s ties
            return (one | (1 << rng.randrange(23)) | (1 << rng.randrange(23))) + ((rng.randrange(16) - 8) << 23)
        return rng.getrandbits(32)

    cases = [(scale(), one if rng.random() < 0.4 else scale(), one if rng.random() < 0.3 else scale(),
              rng.randrange(-20, 28) if rng.random() < 0.5 else 0) for _ in range(n)]
    cases += [(0, one, one, 0), (one, one, 0, 0), (0x7F800000, one, one, 0), (one, one, 0x7F800000, 0),
              (0xBF800000, one, one, 0), (0xBF800000, one, 0xBF800000, 0), (0x00000001, one, 0x7F7FFFFF, 0),
              (0x7F7FFFFF, 0x7F7FFFFF, 0x00000001, 0), (0x4EFFFFFF, one, one, 0)]
    return cases


def test_integer_quantize_multiplier_is_bit_exact_with_tflms_double_formula(tmp_path):
    require_tool("gcc")
    runtime = firmware_dir() / "runtime"
    exe = tmp_path / "quant_host"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", f"-I{runtime}", "-o", str(exe), str(HERE / "fw_quant_host.c"),
                    str(runtime / "ea_quant.c"), "-lm"], check=True, capture_output=True, text=True, timeout=120)
    cases = _cases(20_000, seed=13)
    stdin = "".join(f"{a:08x} {b:08x} {c:08x} {k}\n" for a, b, c, k in cases)
    out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True, timeout=120).stdout
    got = [tuple(int(v) for v in line.split()) for line in out.splitlines()]
    assert len(got) == len(cases)
    want = [_tflm(_f32(a), _f32(b), _f32(c), k) for a, b, c, k in cases]
    wrong = [(f"{a:08x} {b:08x} {c:08x} {k}", g, w) for (a, b, c, k), g, w in zip(cases, got, want)
             if (g[0], g[1:] if g[0] == 0 else ()) != (w[0], w[1:] if w[0] == 0 else ())]
    assert not wrong, wrong[:5]
    assert sum(1 for w in want if w[0] == 0 and w[1]) > 10_000  # most cases are real multipliers
