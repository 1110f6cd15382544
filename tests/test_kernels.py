"""Kernel sets (firmware_models/runtime/kernels/): the dsp set's instruction wrappers against the real
instructions on qemu-m4, each set on a zoo model on QEMU against TFLM, and a set the board's core
cannot run refused in one line. (The randomized TFLM suite runs every set's C code on the host:
tests/test_fwrt_bitexact.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from test_fw_qemu import _check_identical, _random_inputs, no_qemu_left, zoo_model  # noqa: F401

pytestmark = pytest.mark.qemu
ROOT = Path(__file__).resolve().parent.parent
DSP_DIR = ROOT / "firmware_models" / "runtime" / "kernels" / "dsp"
CHECK = Path(__file__).resolve().parent / "data" / "dsp_intrinsics_check.c"
LINKER = """MEMORY { FLASH (rx) : ORIGIN = 0, LENGTH = 4M  RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 4M }
SECTIONS { .vectors : { KEEP(*(.vectors)) } > FLASH  .text : { *(.text*) *(.rodata*) } > FLASH
           .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM }
"""


def test_portable_dsp_definitions_match_the_instructions_on_qemu(tmp_path):
    require_tool("cc", "arm-none-eabi-gcc", "qemu-system-arm")
    from edgeattack.children import run

    (tmp_path / "check.ld").write_text(LINKER)
    # ea_dsp.h takes ea_requant from the runtime's ea_kernels.h
    flags = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{DSP_DIR}", f"-I{DSP_DIR.parents[1]}", str(CHECK)]
    arm = run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft", "-ffreestanding",
               "-nostdlib", "-T", str(tmp_path / "check.ld"), *flags, "-o", str(tmp_path / "check.elf")],
              timeout=120, text=True)
    assert arm.returncode == 0, arm.stderr
    host = run(["cc", "-fsanitize=undefined", "-fno-sanitize-recover=all", "-Wconversion", "-Wno-sign-conversion",
                *flags, "-o", str(tmp_path / "check")], timeout=120, text=True)
    assert host.returncode == 0, host.stderr
    # the ARM build really uses the instructions; the host build really uses the C definitions
    dis = run(["arm-none-eabi-objdump", "-d", str(tmp_path / "check.elf")], timeout=60, text=True).stdout
    for insn in ("sxtb16", "smlad", "smlabb", "smlatt", "ssat", "ssub8", "sel", "bfi", "smmlar"):
        assert f"\t{insn}" in dis, insn
    qemu = run(["qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
                "-serial", "null", "-semihosting-config", "enable=on,target=native", "-kernel",
                str(tmp_path / "check.elf")], timeout=120, text=True)
    assert qemu.returncode == 0, qemu.stderr[-2000:]
    on_qemu = [ln for ln in (qemu.stdout + qemu.stderr).splitlines() if ln.startswith("K")]
    portable = run([str(tmp_path / "check")], timeout=60, text=True)
    assert portable.returncode == 0, portable.stderr
    on_host = portable.stdout.splitlines()
    assert on_qemu[-1] == "K end" and len(on_qemu) > 10000
    diff = [(a, b) for a, b in zip(on_qemu, on_host) if a != b]
    assert not diff and len(on_qemu) == len(on_host), f"{len(diff)} results differ, first: {diff[:3]}"


def test_each_kernel_set_matches_tflm_on_qemu(tmp_path_factory):
    require_tool("arm-none-eabi-gcc", "qemu-system-arm", "make")
    from edgeattack.device.boards.qemu import start_qemu_board

    model = zoo_model("dscnn", tmp_path_factory.mktemp("kernels"), width=0.5)  # conv, depthwise, dense
    instructions = {}
    for kernels in ("ref", "dsp"):
        with start_qemu_board("qemu-m4", model, kernels=kernels) as board:
            assert "error" not in board.info, board.info["error"]
            assert board.build.kernels == kernels
            results, _ = _check_identical(board, model, _random_inputs(board.info, 20, seed=3))
            instructions[kernels] = np.median([r.ticks for r in results])
    assert instructions["dsp"] < instructions["ref"]


def test_a_kernel_set_the_core_lacks_is_one_line(tmp_path, tiny_tflite, capsys):
    from edgeattack.cli import main
    from edgeattack.errors import UsageError
    from edgeattack.firmware.build import resolve_kernels
    from edgeattack.profiles import get_profile

    with pytest.raises(SystemExit) as e:
        main(["flash", "--board", "qemu-m4", "--kernels", "mve", str(tiny_tflite)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert "qemu-m4" in err[0] and "cortex-m4f" in err[0] and "MVE" in err[0] and "auto, ref, dsp" in err[0]
    m0 = tmp_path / "m0.yaml"
    m0.write_text(get_profile("qemu-m4").path.read_text().replace("cpu: cortex-m4f", "cpu: cortex-m0plus")
                  .replace("name: qemu-m4", "name: my-m0"))
    with pytest.raises(UsageError, match=r"my-m0 has a cortex-m0plus core, which lacks the DSP instructions; "
                                         r"choose auto, ref$"):
        resolve_kernels(get_profile(str(m0)), "dsp")
    assert resolve_kernels(get_profile(str(m0)), "auto") == "ref"
    assert resolve_kernels(get_profile("qemu-m4")) == "dsp"
