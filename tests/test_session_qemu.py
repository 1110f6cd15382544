"""A session on a QEMU board (the C firmware on an emulated Cortex-M4) through the same API.

The firmware runs the 16-byte-aligned model (its INFO hash is the aligned bytes'), computes what
TFLM computes, and its SysTick counts instructions, so the records carry instructions and an
estimated latency for the modelled chip.
"""
from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from conftest import require_tool
from edgeattack.profiles import get_profile
from edgeattack.results import read_results
from edgeattack.session import run_session

from test_session_runner import identity, no_orphans  # noqa: F401 - the autouse orphan check


@pytest.mark.qemu
def test_qemu_m4_session_matches_emu_tflm_and_estimates_time(tiny_tflite, tiny_dataset, tmp_path):
    require_tool("qemu-system-arm", "arm-none-eabi-gcc")
    model = tmp_path / "model.tflite"
    shutil.copy(tiny_tflite, model)
    _, _, x_test, y_test = tiny_dataset
    inputs = tmp_path / "in.npz"
    np.savez(inputs, x=x_test[:40], y=y_test[:40])
    q = run_session("qemu-m4", model, inputs, out=tmp_path / "Q", warmup=1, progress=False)
    e = run_session("emu-tflm", model, inputs, out=tmp_path / "E", warmup=1, progress=False)
    qr = read_results(tmp_path / "Q" / "results.jsonl")
    er = read_results(tmp_path / "E" / "results.jsonl")
    assert identity(qr) == identity(er)  # the firmware computes what TFLM computes
    assert q["device"]["inferences_run"] == 41 == q["device"]["records_sent"]
    assert q["model"]["file_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert all(r["model_sha256"] == q["model"]["sha256"] for r in qr)
    p = get_profile("qemu-m4")
    tick_hz = q["board"]["tick_hz"]
    for r in qr:
        assert r["board"] == "qemu-m4" and r["time_estimated"] is True
        assert r["time_source"] == "qemu-instructions"
        assert r["device_instructions"] == round(r["device_ticks"] * 1e9 / tick_hz)
        assert r["device_time_s"] == pytest.approx(r["device_instructions"] * p.model_cpi / p.model_clock_hz)
        assert r["energy_source"] == "estimated"
    # -icount shift=0: instruction counts repeat (within one SysTick) for the same work
    counts = [r["device_instructions"] for r in qr if not r["warmup"]]
    assert max(counts) - min(counts) <= 0.2 * max(counts)
    assert q["time_estimated"] is True and q["metrics"][0]["time_estimated"] is True
    assert q["time_source"] == q["metrics"][0]["time_source"] == "qemu-instructions"
    assert e["time_source"] == "host-wall"
