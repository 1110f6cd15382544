"""tools/profile_fw_qemu.py: the traced inference is the firmware's own counted window, charged to the
kernels that ran, with a cycle estimate; and the cycle model's rules on single instructions."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from conftest import require_tool

TOOLS = Path(__file__).resolve().parent.parent / "tools"


@pytest.fixture(scope="module")
def prof():
    sys.path.insert(0, str(TOOLS))
    spec = importlib.util.spec_from_file_location("profile_fw_qemu", TOOLS / "profile_fw_qemu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cycle_model_rules(prof):
    c = prof._cycles
    assert c("ldr", "r0, [r1]", False, False) == (2, True)
    assert c("ldr", "r0, [r1, #4]", False, True) == (1, True)  # pipelined after a load
    assert c("ldrd", "r0, r1, [r2]", False, True)[0] == 3
    assert c("pop", "{r4, r5, r6, pc}", True, False)[0] == 1 + 4 + 2
    assert c("stmdb", "sp!, {r4-r7, lr}", False, False)[0] == 1 + 5
    assert c("bne", "1234 <f>", True, False)[0] == 3 and c("bne", "1234 <f>", False, False)[0] == 1
    assert c("sdiv", "r0, r1, r2", False, False)[0] == prof.DIVIDE_CYCLES
    assert c("smlad", "r0, r1, r2, r3", False, True) == (1, False)


@pytest.mark.qemu
def test_profile_covers_the_counted_inference(prof, tiny_tflite, tmp_path):
    require_tool("arm-none-eabi-gcc", "qemu-system-arm", "make")
    from edgeattack.tflite.align import align_16

    model = tmp_path / "tiny.tflite"
    model.write_bytes(align_16(tiny_tflite.read_bytes()))
    res = prof.profile("qemu-m4", model, "dsp", tmp_path)
    # the traced window is the one the firmware's tick count covers, give or take the tick reads
    assert abs(res["traced_instructions"] - res["firmware_instructions"]) < 100, res
    names = {r["function"] for r in res["functions"]}
    assert any("conv" in n or "mat_2cols" in n for n in names), names  # the CONV_2D kernel ran
    assert sum(r["instructions"] for r in res["functions"]) == res["traced_instructions"]
    assert res["traced_instructions"] < res["estimated_cycles"] < 4 * res["traced_instructions"]
    assert not (tmp_path / "trace.log").exists()  # the trace is deleted
