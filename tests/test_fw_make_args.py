"""Values reach the firmware's make as plain arguments: a board name is checked (by the host and again
by the Makefile) and written into a generated header by make itself, never into a shell command."""
from __future__ import annotations

import subprocess

import pytest

from conftest import require_tool
from edgeattack.errors import UsageError
from edgeattack.firmware.build import make_command
from edgeattack.resources import firmware_dir

INJECTIONS = ["x'; touch PWNED; '", 'a"; touch PWNED; "', "$(shell touch PWNED)", "../escaped", "Qemu", "-x", "a b"]


def test_make_command_is_one_argument_per_variable():
    cmd = make_command("/fw", {"BOARD": "qemu-m4", "BOARD_NAME": "my-board-2", "EA_ARENA_SIZE": 4096,
                               "EXTRA_CFLAGS": ""}, jobs=3)
    assert cmd == ["make", "-C", "/fw", "-j3", "BOARD=qemu-m4", "BOARD_NAME=my-board-2", "EA_ARENA_SIZE=4096"]


@pytest.mark.parametrize("name", INJECTIONS)
def test_make_command_refuses_board_names_outside_the_pattern(name):
    with pytest.raises(UsageError, match="board name"):
        make_command("/fw", {"BOARD_NAME": name})


@pytest.mark.parametrize("value", ["/tmp/a b", "/tmp/$(shell id)", "/tmp/x'y", "/tmp/#c"])
def test_make_command_refuses_values_make_would_interpret(value):
    with pytest.raises(UsageError, match="BUILD_DIR"):
        make_command("/fw", {"BUILD_DIR": value})


@pytest.mark.parametrize("name", INJECTIONS)
def test_makefile_refuses_the_name_and_runs_nothing(name, tmp_path):
    """Called directly (not through build.py), the Makefile itself stops at parse time."""
    require_tool("make")
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_data.c").write_text("")
    p = subprocess.run(["make", "-C", str(firmware_dir()), "BOARD=qemu-m4", f"MODEL_DIR={model}",
                        f"BUILD_DIR={tmp_path / 'build'}", f"BOARD_NAME={name}", "CROSS=false-"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode != 0
    assert "BOARD_NAME must be letters a-z, digits and '-'" in p.stderr, p.stderr
    assert not list(tmp_path.rglob("PWNED")) and not (firmware_dir() / "PWNED").exists()


def test_makefile_writes_the_board_name_header(tmp_path):
    require_tool("make")
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_data.c").write_text("")
    build = tmp_path / "build"
    # -n: parse and plan only (the header is written while parsing); nothing is compiled.
    p = subprocess.run(["make", "-n", "-C", str(firmware_dir()), "BOARD=qemu-m4", f"MODEL_DIR={model}",
                        f"BUILD_DIR={build}", "BOARD_NAME=lab-m4-01"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert (build / "gen" / "ea_board_name.h").read_text() == '#define EA_BOARD_NAME "lab-m4-01"\n'
    assert "lab-m4-01" not in p.stdout  # the name is in no compile command
