"""The runtime's shortcut requantization (ea_quant.h: ea_mbqm_r, one 64-bit multiply-add and a shift
for TFLite's double-rounding MultiplyByQuantizedMultiplier with a right shift) against the rounding
written out step by step (ea_mbqm), on every right shift 0..31: corner values of x and of the multiplier
(INT32_MIN, +-2^30, ties) and 100,000 random pairs per shift, compiled with ASan and UBSan.
"""
from __future__ import annotations

import subprocess

from conftest import require_tool
from edgeattack.resources import firmware_dir

HERE = __import__("pathlib").Path(__file__).parent


def test_shortcut_requantization_equals_tflites_two_roundings(tmp_path):
    require_tool("cc")
    exe = tmp_path / "fw_requant_host"
    runtime = firmware_dir() / "runtime"
    subprocess.run(["cc", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", f"-I{runtime}", "-o", str(exe), str(HERE / "fw_requant_host.c")],
                   check=True, timeout=120)
    out = subprocess.run([str(exe), "100000"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"checked {32 * (15 * 8 + 100000)}, differ 0" in out.stdout
