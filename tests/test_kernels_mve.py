"""The mve kernel set (firmware_models/runtime/kernels/mve/): the portable definitions of its MVE
intrinsics against the real instructions on qemu-m55, a zoo model on qemu-m55 with mve against TFLM
(and under one instruction per MAC), and the board's automatic choice. (The randomized TFLM suite runs
the set's C code on the host: tests/test_fwrt_bitexact.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from test_fw_qemu import _check_identical, _random_inputs, no_qemu_left, zoo_model  # noqa: F401

pytestmark = pytest.mark.qemu
ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "firmware_models" / "runtime"
CHECK = Path(__file__).resolve().parent / "data" / "mve_intrinsics_check.c"
LINKER = """MEMORY { FLASH (rx) : ORIGIN = 0, LENGTH = 512K  RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 512K }
SECTIONS { .vectors : { KEEP(*(.vectors)) } > FLASH  .text : { *(.text*) *(.rodata*) } > FLASH
           .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM }
"""


def test_portable_mve_definitions_match_the_instructions_on_qemu(tmp_path):
    require_tool("cc", "arm-none-eabi-gcc", "qemu-system-arm")
    from edgeattack.children import run

    (tmp_path / "check.ld").write_text(LINKER)
    flags = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{RUNTIME / 'kernels' / 'mve'}", f"-I{RUNTIME}",
             str(CHECK)]
    arm = run(["arm-none-eabi-gcc", "-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard", "-ffreestanding", "-nostdlib",
               "-T", str(tmp_path / "check.ld"), *flags, "-o", str(tmp_path / "check.elf")], timeout=120, text=True)
    assert arm.returncode == 0, arm.stderr
    host = run(["cc", "-fsanitize=undefined", "-fno-sanitize-recover=all", "-Wconversion", "-Wno-sign-conversion",
                *flags, "-o", str(tmp_path / "check")], timeout=120, text=True)
    assert host.returncode == 0, host.stderr
    # the ARM build really uses the MVE instructions (objdump needs the architecture named to decode them)
    dis = run(["arm-none-eabi-objdump", "-d", "-m", "armv8.1-m.main", str(tmp_path / "check.elf")], timeout=60,
              text=True).stdout
    for insn in ("vmlava.s8", "vctp.8", "vctp.32", "vldrbt.u8", "vstrbt.8", "vqrdmulh.s32", "vrshl.s32", "vqadd.s32",
                 "vshl.s32", "vldrb.s32", "vstrb.32"):
        assert f"\t{insn}" in dis, insn
    qemu = run(["qemu-system-arm", "-M", "mps3-an547", "-nographic", "-monitor", "none", "-serial", "null",
                "-semihosting-config", "enable=on,target=native", "-kernel", str(tmp_path / "check.elf")],
               timeout=120, text=True)
    assert qemu.returncode == 0, qemu.stderr[-2000:]
    on_qemu = [ln for ln in (qemu.stdout + qemu.stderr).splitlines() if ln.startswith("M")]
    portable = run([str(tmp_path / "check")], timeout=60, text=True)
    assert portable.returncode == 0, portable.stderr
    on_host = portable.stdout.splitlines()
    assert on_qemu[-1] == "M end" and len(on_qemu) > 30000
    diff = [(a, b) for a, b in zip(on_qemu, on_host) if a != b]
    assert not diff and len(on_qemu) == len(on_host), f"{len(diff)} results differ, first: {diff[:3]}"
    # the vector requantization agrees with the scalar one (lines 'X' where it does not)
    assert sum(ln.startswith("MQ") for ln in on_qemu) == 3000 and not any(ln.startswith("MX") for ln in on_qemu)


def test_mve_set_matches_tflm_on_qemu_m55_under_one_instruction_per_mac(tmp_path_factory):
    require_tool("arm-none-eabi-gcc", "qemu-system-arm", "make")
    from edgeattack.device.boards.qemu import start_qemu_board
    from edgeattack.tflite.analysis import layer_macs

    # conv (1x1 in place and 3x3 through im2col), residual ADD, pooling, dense; the depthwise kernel runs in
    # tests/test_fw_qemu.py (dscnn on qemu-m55, whose default set is mve)
    model = zoo_model("resnet8", tmp_path_factory.mktemp("kernels_mve"), width=0.5)
    with start_qemu_board("qemu-m55", model, kernels="mve") as board:
        assert "error" not in board.info, board.info["error"]
        assert board.build.kernels == "mve"
        results, _ = _check_identical(board, model, _random_inputs(board.info, 10, seed=5))
        instructions = np.median([r.ticks for r in results]) * 1e9 / board.info["tick_hz"]  # -icount shift=0
    macs = sum(row["macs"] for row in layer_macs(model.read_bytes()))
    # the whole inference (every operator) under one instruction per MAC: the dsp set takes about 2.4
    assert instructions / macs < 1.0, instructions / macs


def test_auto_picks_mve_on_the_m55_and_dsp_stays_available():
    from edgeattack.firmware.build import resolve_kernels
    from edgeattack.profiles import get_profile

    m55 = get_profile("qemu-m55")
    assert resolve_kernels(m55) == "mve" and resolve_kernels(m55, "auto") == "mve"
    assert resolve_kernels(m55, "dsp") == "dsp" and resolve_kernels(m55, "ref") == "ref"
    assert resolve_kernels(get_profile("qemu-m4")) == "dsp"
