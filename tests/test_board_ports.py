"""The physical boards' firmware (issue 13, Physical boards), checked without the boards: every zoo
model builds for every hardware port (nucleo-l4r5zi, nrf52840dk) and fits the board's flash and RAM;
each ELF's vector table sits at the chip's flash base, its initial stack pointer is the top of the
chip's RAM, its reset handler is Thumb code in flash, the UART's interrupt slot holds the port's
receive handler, and every loadable segment lies inside the chip's flash (load address) and flash or
RAM (run address). The chips' memory maps below are the datasheets' (nRF52840 Product Specification
"Memory"; STM32L4R5 RM0432 "Memory map"), checked against both the port's linker script and the
board's profile, so neither can drift alone.

What needs the board itself (not tested here): that the clock, UART, timestamp pin and cycle counter
work on the silicon, and programming through the probe (README, "Physical boards").

The size check covers the QEMU boards too (every board with firmware). Zoo models as
tests/test_fw_qemu.py builds them (untrained, int8): cnn-digits, cnn-mnist, dscnn and
mobilenet-tiny at width 1.0 with their default input shapes, resnet8 at width 0.5 on 16x16x3.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import require_tool
from test_fw_qemu import ZOO, zoo_model

pytestmark = pytest.mark.qemu  # needs the ARM toolchain (no QEMU)

# board -> (flash base, flash bytes, RAM base, RAM bytes, UART interrupt number, receive handler)
CHIPS = {
    "nucleo-l4r5zi": (0x0800_0000, 2 * 1024 * 1024, 0x2000_0000, 640 * 1024, 70, "lpuart1_isr"),
    "nrf52840dk": (0x0000_0000, 1024 * 1024, 0x2000_0000, 256 * 1024, 2, "uarte0_isr"),
    # the QEMU machines (docs/firmware.md, Board ports), for the size check over every board
    "qemu-m4": (0x0000_0000, 4 * 1024 * 1024, 0x2000_0000, 4 * 1024 * 1024, 0, "cmsdk_uart_isr"),
    "qemu-m55": (0x0000_0000, 512 * 1024, 0x2000_0000, 512 * 1024, 33, "cmsdk_uart_isr"),
}
HARDWARE = ["nucleo-l4r5zi", "nrf52840dk"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    require_tool("arm-none-eabi-gcc", "make")
    out = tmp_path_factory.mktemp("ports_zoo")
    return {name: zoo_model(name, out, input_shape=shape, width=width) for name, (shape, width) in ZOO.items()}


def _memory_regions(ld: Path) -> dict[str, tuple[int, int]]:
    units = {"": 1, "K": 1024, "M": 1024 * 1024}
    found = {}
    for name, origin, length, unit in re.findall(
            r"(\w+)\s*\([rwx]+\)\s*:\s*ORIGIN\s*=\s*(0x[0-9A-Fa-f]+)\s*,\s*LENGTH\s*=\s*(\d+)([KM]?)", ld.read_text()):
        found[name] = (int(origin, 16), int(length) * units[unit])
    return found


@pytest.mark.parametrize("board", HARDWARE)
def test_linker_script_and_profile_agree_with_the_datasheet(board):
    from edgeattack.firmware.build import port_for
    from edgeattack.profiles import get_profile
    from edgeattack.resources import boards_dir

    flash_base, flash_len, ram_base, ram_len, _, _ = CHIPS[board]
    profile = get_profile(board)
    port = port_for(profile)
    assert port == board
    regions = _memory_regions(next((boards_dir() / port).glob("*.ld")))
    assert regions == {"FLASH": (flash_base, flash_len), "RAM": (ram_base, ram_len)}
    assert (profile.flash_bytes, profile.ram_bytes) == (flash_len, ram_len)
    assert profile.kind == "mcu" and profile.tick_hz == profile.clock_hz  # DWT counts core cycles


def _check_elf(elf: Path, board: str) -> dict:
    from elftools.elf.constants import P_FLAGS  # noqa: F401 - pyelftools is the test's ELF reader
    from elftools.elf.elffile import ELFFile

    flash_base, flash_len, ram_base, ram_len, irq, isr = CHIPS[board]
    in_flash = lambda a, n=0: flash_base <= a and a + n <= flash_base + flash_len  # noqa: E731
    in_ram = lambda a, n=0: ram_base <= a and a + n <= ram_base + ram_len  # noqa: E731
    with open(elf, "rb") as fh:
        f = ELFFile(fh)
        assert f["e_machine"] == "EM_ARM"
        symbols = {s.name: s["st_value"] for s in f.get_section_by_name(".symtab").iter_symbols() if s.name}
        vec = f.get_section_by_name(".vectors")
        assert vec["sh_addr"] == flash_base, f"{board}: vector table at {vec['sh_addr']:#x}"
        words = [int.from_bytes(vec.data()[i:i + 4], "little") for i in range(0, vec["sh_size"], 4)]
        assert len(words) > 16 + irq
        sp, reset = words[0], words[1]
        assert sp == ram_base + ram_len and sp % 8 == 0, f"{board}: initial SP {sp:#x}"
        assert reset & 1 and in_flash(reset & ~1), f"{board}: reset vector {reset:#x}"
        assert reset & ~1 == symbols["Reset_Handler"] & ~1 and f["e_entry"] == reset
        assert words[16 + irq] & ~1 == symbols[isr] & ~1 and words[16 + irq] & 1
        assert words[15] & ~1 == symbols["SysTick_Handler"] & ~1  # observes the cycle counter
        for w in words[2:]:
            assert w & 1 and in_flash(w & ~1), f"{board}: a vector {w:#x} is not Thumb code in flash"
        loads = [s for s in f.iter_segments() if s["p_type"] == "PT_LOAD"]
        for seg in loads:
            if seg["p_filesz"]:  # bytes the probe programs: their load address must be flash
                assert in_flash(seg["p_paddr"], seg["p_filesz"]), f"{board}: segment at LMA {seg['p_paddr']:#x}"
            vaddr, size = seg["p_vaddr"], seg["p_memsz"]
            assert in_flash(vaddr, size) or in_ram(vaddr, size), f"{board}: segment at {vaddr:#x}+{size}"
        if board in HARDWARE:  # the QEMU ports' semihosting BKPT would fault without a debugger
            assert "cm_exit_code" in symbols and "cmsdk_uart_isr" not in symbols
            assert "ea_board_exit" in symbols and not any(n.startswith("semihost") for n in symbols)
    return symbols


@pytest.mark.parametrize("board", list(CHIPS))
def test_every_zoo_model_builds_and_fits_the_board(board, zoo):
    """CI's size check: each zoo model's firmware for the board fits its flash and RAM (stack included),
    and its ELF matches the chip's memory map."""
    from edgeattack.firmware.build import build_firmware, resolve_kernels
    from edgeattack.profiles import get_profile

    profile = get_profile(board)
    for name, model in zoo.items():
        b = build_firmware(model, board)
        assert b.board == board and b.port == board and not b.slots_message()
        assert b.kernels == resolve_kernels(profile, "auto")  # dsp on the M4s, mve on qemu-m55
        assert b.flash_bytes <= profile.flash_bytes and b.ram_total <= profile.ram_bytes, (name, b)
        symbols = _check_elf(b.elf, board)
        assert symbols["ea_model_data"] >= CHIPS[board][0]  # the model is read from flash


def test_a_board_yaml_too_small_for_the_model_fails_before_building(zoo, tmp_path):
    """A user's profile for the same chip whose memory cannot hold the model: one line naming the
    model, the board and the sizes, and no build started."""
    from edgeattack.errors import UsageError
    from edgeattack.firmware.build import build_firmware
    from edgeattack.resources import boards_dir

    text = (boards_dir() / "nrf52840dk.yaml").read_text().replace("name: nrf52840dk", "name: my-nrf") \
        .replace("ram_bytes: 262144", "ram_bytes: 24576")
    path = tmp_path / "my-nrf.yaml"
    path.write_text(text)
    cache = tmp_path / "cache"
    with pytest.raises(UsageError) as err:
        build_firmware(zoo["resnet8"], str(path), cache_dir=cache)
    msg = str(err.value)
    assert "\n" not in msg and "my-nrf" in msg and "24576" in msg and str(zoo["resnet8"]) in msg
    assert "before building" in msg and not cache.exists()


def test_a_user_yaml_for_the_same_chip_reuses_the_port(zoo, tmp_path):
    from edgeattack.firmware.build import port_for
    from edgeattack.profiles import get_profile

    text = (Path(__file__).resolve().parents[1] / "docs" / "boards.md").read_text()
    example = text.split("## Example: adding a board", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my-l4r5.yaml").write_text(example)
    assert port_for(get_profile(str(tmp_path / "my-l4r5.yaml"))) == "nucleo-l4r5zi"


# --------------------------------------------------------------------------------------------------
# flashing: every missing piece is one line, found before anything is built (pyOCD's own code paths)

@pytest.fixture
def no_packs(tmp_path, monkeypatch):
    """pyOCD's pack manager (cmsis-pack-manager) looking at an empty data folder, so no pack counts as
    installed whatever this machine has; and an empty firmware cache to see that nothing was built."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("EDGEATTACK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _nothing_built(cache: Path) -> bool:
    return not (cache / "firmware").exists() or not any((cache / "firmware").glob("*-*"))


def _flash(board, model, **kw):
    from edgeattack.device import board_for

    lines = []
    summary = board_for(board, model).flash(echo=lines.append, **kw)
    return summary, lines


def test_missing_pack_names_the_install_command(tiny_tflite, no_packs):
    """A real pyOCD target lookup (its built-in table, then the pack manager's installed packs) for the
    L4R5, whose support only a pack gives; the nRF52840 is built into pyOCD."""
    from edgeattack.deploy.pyocd_flash import target_source
    from edgeattack.errors import EdgeAttackError

    assert target_source("nrf52840") == "builtin" and target_source("stm32l4r5zitx") is None
    with pytest.raises(EdgeAttackError) as err:
        _flash("nucleo-l4r5zi", tiny_tflite)
    msg = str(err.value)
    assert "`pyocd pack install stm32l4r5zitx`" in msg and "nucleo-l4r5zi" in msg and "\n" not in msg
    assert _nothing_built(no_packs)


def test_missing_jlink_library_names_it_and_where_to_get_it(tiny_tflite, no_packs):
    """pyOCD's J-Link driver (JLinkProbe, through pylink's library search) finds no libjlinkarm here."""
    from edgeattack.deploy.pyocd_flash import jlink_library_found
    from edgeattack.errors import EdgeAttackError

    if jlink_library_found():
        pytest.skip("SEGGER's J-Link library is installed here: its absence cannot be provoked")
    with pytest.raises(EdgeAttackError) as err:
        _flash("nrf52840dk", tiny_tflite)
    msg = str(err.value)
    assert "libjlinkarm" in msg and "https://www.segger.com/downloads/jlink/" in msg and "\n" not in msg
    assert _nothing_built(no_packs)


def test_missing_probe_and_bad_probe_kind(tiny_tflite, no_packs, tmp_path):
    """A DK whose interface chip runs CMSIS-DAP firmware (a user's YAML): the target is pyOCD's own,
    no J-Link library is needed, and pyOCD's real probe enumeration finds no probe on this machine."""
    from edgeattack.errors import EdgeAttackError, UsageError
    from edgeattack.resources import boards_dir

    text = (boards_dir() / "nrf52840dk.yaml").read_text().replace("name: nrf52840dk", "name: my-dap")
    dap = tmp_path / "my-dap.yaml"
    dap.write_text(re.sub(r"probe: jlink.*", "probe: cmsis-dap", text))
    from pyocd.core.helpers import ConnectHelper

    if ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False):
        pytest.skip("a debug probe is connected here: its absence cannot be provoked")
    with pytest.raises(EdgeAttackError, match=r"^board my-dap: no CMSIS-DAP probe connected: .*`pyocd list`$"):
        _flash(str(dap), tiny_tflite)
    bad = tmp_path / "my-bad.yaml"
    bad.write_text(re.sub(r"probe: jlink.*", "probe: ulink", text.replace("my-dap", "my-bad")))
    with pytest.raises(UsageError, match="deploy.probe 'ulink': choose one of jlink, stlink, cmsis-dap"):
        _flash(str(bad), tiny_tflite)
    assert _nothing_built(no_packs)


def test_without_pyocd_dry_run_prints_the_plan_and_flash_says_how_to_install(tiny_tflite, no_packs,
                                                                             monkeypatch):
    """pyOCD is installed here, so its absence is simulated (the one mock in this file): an import of
    `pyocd` that fails as it would in an environment without it."""
    import sys

    from edgeattack.errors import EdgeAttackError

    monkeypatch.setitem(sys.modules, "pyocd", None)
    summary, lines = _flash("nucleo-l4r5zi", tiny_tflite, dry_run=True)
    assert summary["dry_run"] and summary["pyocd_target"] == "stm32l4r5zitx" and summary["probe"] == "stlink"
    assert any("`pyocd pack install stm32l4r5zitx`" in ln for ln in lines), lines
    summary, lines = _flash("nrf52840dk", tiny_tflite, dry_run=True)
    assert any("libjlinkarm" in ln for ln in lines) and not any("pack install" in ln for ln in lines)
    with pytest.raises(EdgeAttackError, match=r"pyOCD, which is not installed: pip install 'edgeattack\[mcu\]'"):
        _flash("nrf52840dk", tiny_tflite)
    assert _nothing_built(no_packs)


def test_flash_command_exits_non_zero_with_one_line(tiny_tflite, tmp_path):
    from conftest import run_cli

    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "EDGEATTACK_CACHE": str(tmp_path / "cache")}
    proc = run_cli("flash", "--board", "nucleo-l4r5zi", tiny_tflite, env=env, timeout=300)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "pyocd pack install stm32l4r5zitx" in proc.stderr, proc.stderr
    proc = run_cli("flash", "--board", "nrf52840dk", "--dry-run", tiny_tflite, env=env, timeout=300)
    assert proc.returncode == 0 and "program it with pyOCD (target nrf52840)" in proc.stdout
    assert _nothing_built(tmp_path / "cache")


@pytest.mark.parametrize("board", HARDWARE)
def test_a_kernel_set_the_core_lacks_is_refused_before_anything(tiny_tflite, no_packs, board):
    """resolve_kernels (firmware/build.py) answers for mcu boards too: their Cortex-M4F has no MVE."""
    from edgeattack.errors import UsageError

    with pytest.raises(UsageError, match=rf"--kernels mve: board {board} has a cortex-m4f core, which "
                                         r"lacks the MVE instructions; choose auto, ref, dsp"):
        _flash(board, tiny_tflite, kernels="mve", dry_run=True)
    summary, _ = _flash(board, tiny_tflite, kernels="ref", dry_run=True)
    assert summary["dry_run"] and _nothing_built(no_packs)


def test_nrf52840_keeps_its_debug_port_open_on_hardened_silicon(tmp_path):
    """boards/nrf52840dk/nrf_approtect.h, compiled for the host: revision 3 silicon (FICR words 0x08 and
    5 or later) locks the debug port at each reset unless UICR.APPROTECT is HwDisabled (0x5A) and the
    firmware writes SwDisable; older silicon and a UICR that asks for protection are left alone."""
    require_tool("cc")
    header = Path(__file__).resolve().parents[1] / "boards" / "nrf52840dk"
    cases = [  # (conf0, conf1, uicr) -> (program UICR, open the port)
        ((0x08, 0x05, 0xFFFFFFFF), (1, 1)),   # new silicon, erased UICR: program it once, open
        ((0x08, 0x06, 0xFFFFFF5A), (0, 1)),   # new silicon, already HwDisabled: open at each boot
        ((0x08, 0xFFFFFFFF, 0xFFFFFFFF), (1, 1)),  # an unknown later revision counts as new (as the MDK)
        ((0x08, 0x05, 0xFFFFFF00), (0, 0)),   # protection asked for: keep it
        ((0x08, 0x05, 0x12345678), (0, 0)),   # anything but HwDisabled keeps the port locked
        ((0x08, 0x04, 0xFFFFFFFF), (0, 0)),   # revision before the hardened AP-Protect
        ((0x08, 0x00, 0xFFFFFFFF), (0, 0)),
        ((0x0D, 0x05, 0xFFFFFFFF), (0, 0)),   # not an nRF52840
    ]
    src = tmp_path / "t.c"
    src.write_text('#include <stdio.h>\n#include "nrf_approtect.h"\nint main(void) {\n' + "".join(
        f'    printf("%u\\n", nrf_approtect_plan({a:#x}u, {b:#x}u, {c:#x}u));\n' for (a, b, c), _ in cases)
        + "    return 0;\n}\n")
    exe = tmp_path / "t"
    subprocess.run([shutil.which("cc"), "-std=c11", "-Wall", "-Werror", f"-I{header}", str(src), "-o", str(exe)],
                   check=True, timeout=60)
    got = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30).stdout.split()
    assert [(int(g) & 1, int(g) >> 1 & 1) for g in got] == [want for _, want in cases]


@pytest.mark.parametrize("board", HARDWARE)
def test_mlperf_mode_firmware_builds_for_each_hardware_board(zoo, board, no_packs):
    """flash --protocol mlperf (or the profile's `protocol: mlperf`) builds the MLPerf-mode firmware for a
    physical board (docs/mlperf.md): MLPerf Tiny's DUT engine in place of edgeattack's protocol, inside
    the chip's flash and RAM; the dry-run plan says so."""
    from edgeattack.device import board_for

    driver = board_for(board, zoo["resnet8"])
    summary, lines = _flash(board, zoo["resnet8"], dry_run=True, protocol="mlperf")
    assert summary["protocol"] == "mlperf" and any("MLPerf-mode firmware" in ln for ln in lines), lines
    assert any("MLPerf Tiny's DUT protocol" in ln for ln in lines), lines
    assert _nothing_built(no_packs)
    driver.protocol = "mlperf"
    mlperf = driver.prepare()
    driver.protocol = None  # the profile's: edgeattack
    own = driver.prepare()
    flash_bytes, ram_bytes = CHIPS[board][1], CHIPS[board][3]
    assert mlperf.flash_bytes <= flash_bytes and mlperf.ram_total <= ram_bytes
    assert b"m-ready" in mlperf.elf.read_bytes() and b"m-ready" not in own.elf.read_bytes()
    assert mlperf.model_sha256 == own.model_sha256 and mlperf.elf != own.elf


def test_protocol_applies_to_firmware_boards_only(tiny_tflite, tmp_path):
    from conftest import run_cli

    proc = run_cli("flash", "--board", "pi4", "--protocol", "mlperf", "--dry-run", tiny_tflite, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--protocol applies to qemu and mcu boards only; board pi4 is kind linux" in proc.stderr, proc.stderr
