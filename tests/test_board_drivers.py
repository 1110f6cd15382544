"""The Board abstraction: one driver per kind chosen by a registry, the same operations on each,
and the command-line defects around starting and flashing boards (issue 7), each run as a user would.
"""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import numpy as np
import pytest

import edgeattack
from conftest import require_tool, run_cli
from edgeattack.device import Board, board_for
from edgeattack.device.board import LinkTimeouts, driver_for
from edgeattack.errors import DeviceError, UsageError
from edgeattack.profiles import KINDS, list_profiles

PACKAGE = Path(edgeattack.__file__).parent


def test_every_kind_has_a_driver_with_the_same_operations():
    assert set(KINDS) == {"emulator", "qemu", "linux", "mcu"}
    for kind in KINDS:
        cls = driver_for(kind)
        assert cls.kind == kind and isinstance(cls.link_timeouts, LinkTimeouts)
        assert cls.time_source in ("device", "host-wall", "qemu-instructions")
    for p in list_profiles():
        board = board_for(p)
        assert isinstance(board, Board) and board.profile == p
        assert board.started_by_host == (p.kind in ("emulator", "qemu"))
        assert board.failure() is None  # nothing started: nothing failed
        board.stop()  # idempotent, harmless before start


def test_time_source_and_estimation_come_from_the_driver():
    by_name = {p.name: board_for(p) for p in list_profiles()}
    assert by_name["emu-tflm"].time_source == "host-wall" and not by_name["emu-tflm"].time_estimated
    assert by_name["pi4"].time_source == "device" and by_name["nucleo-l4r5zi"].time_source == "device"
    m4 = by_name["qemu-m4"]
    assert m4.time_source == "qemu-instructions" and m4.time_estimated
    # 25 MHz SysTick, icount shift=0: one tick = 40 instructions; 3 inferences in the window
    seconds, instructions = m4.device_time(1000, 25e6, 3)
    assert instructions == 40_000
    assert seconds == pytest.approx(40_000 * m4.profile.model_cpi / m4.profile.model_clock_hz / 3)
    assert by_name["emu-tflm"].device_time(3000, 1e9, 3) == (pytest.approx(1e-6), None)
    # the link timers of each kind are what device/api's table held
    assert {k: tuple(vars(driver_for(k).link_timeouts).values()) for k in KINDS} == {
        "emulator": (1.0, 10.0), "qemu": (5.0, 30.0), "linux": (2.0, 20.0), "mcu": (5.0, 30.0)}


def _kind_comparisons(path: Path) -> list[str]:
    """`x.kind == "qemu"`-style tests (and `kind in (...)`) against board kind strings."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Compare):
            continue
        consts = [c for c in ast.walk(node) if isinstance(c, ast.Constant) and c.value in KINDS]
        names = [n for n in ast.walk(node) if isinstance(n, (ast.Attribute, ast.Name))
                 and getattr(n, "attr", getattr(n, "id", "")) == "kind"]
        if consts and names:
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_no_kind_strings_outside_the_drivers():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if str(rel) == "profiles.py" or rel.parts[:2] == ("device", "boards"):
            continue
        found += _kind_comparisons(path)
    assert found == []


def test_nothing_probes_a_board_by_attribute_name():
    for rel in ("cli/up.py", "cli/flash.py", "device/api.py", "demo.py"):
        text = (PACKAGE / rel).read_text()
        assert "getattr(handle" not in text and "getattr(result" not in text, rel


def test_firmware_never_imports_device():
    for path in (PACKAGE / "firmware").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                assert not target.startswith(("..device", "edgeattack.device")), (path, target)
    assert not (PACKAGE / "firmware" / "qemu.py").exists()
    assert not (PACKAGE / "device" / "profiles.py").exists()


def test_missing_driver_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "edgeattack.device.boards.mcu", None)
    with pytest.raises(DeviceError) as err:
        board_for("nucleo-l4r5zi")
    assert "mcu board driver" in str(err.value) and "\n" not in str(err.value)


def test_start_board_refuses_boards_on_their_own_hardware(tiny_tflite):
    from edgeattack.device import start_board

    with pytest.raises(UsageError, match="deploy it with `edgeattack flash`"):
        start_board("pi4", tiny_tflite)
    with pytest.raises(UsageError, match="startup timeout -1"):
        start_board("emu-tflm", tiny_tflite, startup_timeout=-1)


# command-line defects (each failed before the fix) -------------------------------------------------

def _agents(model: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"edgeattack.agent" in cmd and str(model).encode() in cmd:
                found.append(int(entry))
    return found


@pytest.fixture
def inputs(tmp_path, tiny_dataset):
    _, _, x, y = tiny_dataset
    path = tmp_path / "in.npz"
    np.savez(path, x=x[:4], y=y[:4])
    return path


@pytest.mark.parametrize("args, culprit", [
    (["--timeout", "-1"], "timeout -1"),
    (["--total-timeout", "-1"], "total timeout -1"),
    (["--timeout", "nan"], "timeout nan"),
    (["--port", "htp://x"], "htp://"),
])
def test_session_bad_timeout_or_port_url_is_a_usage_error_before_any_board(tiny_tflite, inputs, tmp_path,
                                                                           args, culprit):
    out = tmp_path / "run"
    proc = run_cli("session", "--board", "emu-tflm", "--model", tiny_tflite, "--inputs", inputs,
                   "--no-progress", *args, "-o", out, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert culprit in proc.stderr and proc.stderr.count("\n") == 1
    assert not out.exists() and _agents(tiny_tflite) == []


def test_up_bad_startup_timeout_and_corrupt_model_are_one_line_usage_errors(tiny_tflite, tmp_path):
    proc = run_cli("up", "--board", "emu-tflm", "--startup-timeout", "-1", tiny_tflite, timeout=120)
    assert proc.returncode == 2 and "startup timeout -1" in proc.stderr, proc.stderr
    bad = tmp_path / "corrupt.tflite"
    bad.write_bytes(tiny_tflite.read_bytes()[:1500])
    for board in ("emu-tflm", "emu-litert"):
        proc = run_cli("up", "--board", board, bad, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and f"{bad}: not a valid .tflite model" in proc.stderr
        assert "unpack" not in proc.stderr  # no raw struct error
    assert _agents(bad) == []


def test_flash_dry_run_for_a_microcontroller_needs_no_pyocd(tiny_tflite):
    proc = run_cli("flash", "--board", "nucleo-l4r5zi", "--dry-run", tiny_tflite)
    assert proc.returncode == 0, proc.stderr
    assert "program it with pyOCD (target stm32l4r5zitx)" in proc.stdout
    proc = run_cli("flash", "--board", "nrf52840dk", "--dry-run", "--json", tiny_tflite)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["board"] == "nrf52840dk" and summary["dry_run"] is True
    assert summary["pyocd_target"] == "nrf52840" and "pyOCD" in proc.stderr


def test_flash_json_prints_the_deploy_summary(tiny_tflite):
    proc = run_cli("flash", "--board", "pi4", "--port-mode", "uart", "--dry-run", "--json", tiny_tflite)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["board"] == "pi4" and summary["kind"] == "linux" and summary["dry_run"] is True
    assert summary["steps"][:2] == ["probe", "install"] and "--port /dev/serial0" in proc.stderr
    require_tool("arm-none-eabi-gcc")
    proc = run_cli("flash", "--board", "qemu-m4", "--json", tiny_tflite, timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    fw = summary["firmware"]
    assert summary["board"] == "qemu-m4" and summary["dry_run"] is False
    assert Path(fw["elf"]).is_file() and fw["board"] == "qemu-m4" and len(fw["model_sha256"]) == 64
    assert fw["flash_bytes"] == fw["text"] + fw["data"] and isinstance(fw["cached"], bool)
    assert "built the qemu-m4 firmware" in proc.stderr


def test_the_documented_example_profile_loads(tmp_path):
    from edgeattack.profiles import get_profile

    text = (PACKAGE.parents[1] / "docs" / "boards.md").read_text()
    example = text.split("## Example: adding a board", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "my-l4r5.yaml"
    path.write_text(example)
    p = get_profile(str(path))
    assert p.name == "my-l4r5" and p.energy == {"meter": "ppk2", "options": {"serial": "C41B3F"}}
    assert board_for(p).kind == "mcu"
