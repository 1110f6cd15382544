"""The issue's budget: a 200-sample session of the full-size resnet8 (32x32x3, width 1) on qemu-m4
completes in under 2 minutes, and the firmware's outputs equal the TFLM runtime's."""
from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import require_tool
from edgeattack.quant import quantize_input
from edgeattack.results import read_results
from edgeattack.session import run_session
from test_fw_qemu import zoo_model
from test_session_runner import no_orphans  # noqa: F401 - the autouse orphan check


@pytest.mark.qemu
def test_resnet8_200_samples_on_qemu_m4_under_two_minutes(tmp_path_factory, tmp_path):
    require_tool("qemu-system-arm", "arm-none-eabi-gcc")
    from edgeattack.datasets import load_dataset
    from edgeattack.firmware.build import build_firmware
    from edgeattack.profiles import get_profile
    from edgeattack.tflite.runtimes import TFLMRunner

    model = zoo_model("resnet8", tmp_path_factory.mktemp("r8"), input_shape=(32, 32, 3), width=1.0)
    build_firmware(model, get_profile("qemu-m4"))  # building is not part of the session budget
    data = load_dataset("synthetic:32x32x3:10:400")
    x, y = data.x_test[:200], data.y_test[:200]
    x = np.concatenate([x, data.x_train[: 200 - len(x)]]) if len(x) < 200 else x
    y = np.concatenate([y, data.y_train[: 200 - len(y)]]) if len(y) < 200 else y
    inputs = tmp_path / "in.npz"
    np.savez(inputs, x=x, y=y)

    t0 = time.monotonic()
    summary = run_session("qemu-m4", model, inputs, out=tmp_path / "run", progress=False)
    elapsed = time.monotonic() - t0
    assert summary["counts"]["records"] == 200
    assert summary["device"]["inferences_run"] == 200 and summary["device"]["overruns"] == 0
    assert elapsed < 120, f"200 resnet8 samples on qemu-m4 took {elapsed:.1f} s"

    runner = TFLMRunner(model.read_bytes())
    d = runner.input_details
    records = sorted(read_results(tmp_path / "run" / "results.jsonl"), key=lambda r: r["id"])
    for r in records:  # every sample against TFLM in-process, byte for byte
        q = quantize_input(x[r["id"]][None], d.scale, d.zero_point)
        assert r["output_raw"] == np.asarray(runner.invoke_raw(q)).reshape(-1).tolist()
    instr = [r["device_instructions"] for r in records]
    # the instruction counter is live: ~12.5 M MACs cost at least one instruction each (the DSP
    # kernels reach ~2.3 per MAC), and the work hardly depends on the data (clamps and saturation
    # branches move it by about 0.1%)
    assert min(instr) > 12_500_000 and max(instr) < 1.01 * min(instr), (min(instr), max(instr))
