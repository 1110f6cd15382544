"""Board profiles: the built-in YAML files load, validate, and bad fields are named in one line."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from edgeattack.device.profiles import BoardProfile, get_profile, list_profiles
from edgeattack.errors import UsageError
from edgeattack.resources import boards_dir

ALL_BOARDS = {"emu-litert", "emu-tflm", "qemu-m4", "qemu-m55", "pi4", "nucleo-l4r5zi", "nrf52840dk"}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeattack", *args], capture_output=True, text=True,
                          timeout=120)


def test_every_conventions_board_has_a_valid_profile():
    profiles = {p.name: p for p in list_profiles()}
    assert set(profiles) == ALL_BOARDS
    for name, p in profiles.items():
        assert p.path.stem == name and p.path.parent == boards_dir()
    assert {p.kind for p in profiles.values()} == {"emulator", "qemu", "linux", "mcu"}
    assert profiles["emu-tflm"].runtime == "tflm" and profiles["emu-litert"].runtime == "litert"
    assert profiles["pi4"].runtime == "litert" and profiles["pi4"].deploy["method"] == "ssh"
    for mcu in ("nucleo-l4r5zi", "nrf52840dk"):
        assert profiles[mcu].deploy["method"] == "pyocd"
        assert profiles[mcu].port == "/dev/ttyACM0" and profiles[mcu].baudrate == 115200
    m4, m55 = profiles["qemu-m4"], profiles["qemu-m55"]
    assert m4.qemu["machine"] == "mps2-an386" and m55.qemu["machine"] == "mps3-an547"
    # QEMU boards estimate time: the latency model is complete and the source is documented
    for p in (m4, m55):
        assert p.model_clock_hz and p.model_cpi and p.model_chip
        text = p.path.read_text()
        assert "model_clock_hz" in text and "# " in text.split("model_cpi:")[0].rsplit("model_clock_hz", 1)[1]
    assert m4.model_clock_hz == 120_000_000 and m4.tick_hz == 25_000_000


def _write(tmp_path, **changes):
    data = get_profile("nucleo-l4r5zi").to_dict()
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not _DROP}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


_DROP = object()


def test_user_profile_file_is_loaded(tmp_path):
    path = _write(tmp_path, name="my-board", port="/dev/ttyUSB3")
    p = get_profile(str(path))
    assert isinstance(p, BoardProfile) and p.name == "my-board" and p.port == "/dev/ttyUSB3"


@pytest.mark.parametrize("changes, field", [
    ({"clock_hz": "fast"}, "clock_hz"),
    ({"kind": "fpga"}, "kind"),
    ({"runtime": "onnx"}, "runtime"),
    ({"tick_hz": 0}, "tick_hz"),
    ({"deploy": {"method": "ssh"}}, "deploy.method"),
    ({"colour": "red"}, "colour"),
    ({"energy": _DROP}, "energy"),
    ({"kind": "qemu", "deploy": {"method": "qemu"}, "qemu": {"machine": "mps2-an386", "cpu": "cortex-m4"},
      "model_cpi": None, "model_clock_hz": 1}, "model_cpi"),
])
def test_bad_field_is_named_with_the_file(tmp_path, changes, field):
    path = _write(tmp_path, **changes)
    with pytest.raises(UsageError) as err:
        get_profile(str(path))
    msg = str(err.value)
    assert str(path) in msg and f"'{field}'" in msg and "\n" not in msg


def test_unknown_board_and_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UsageError, match="unknown board 'nope'.*emu-tflm"):
        get_profile("nope")
    with pytest.raises(UsageError, match="does not exist"):
        get_profile(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        get_profile(str(bad))


def test_boards_cli_table_and_show():
    table = cli("boards")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "KIND", "CPU"]
    assert {line.split()[0] for line in lines[1:]} == ALL_BOARDS
    shown = cli("boards", "show", "qemu-m55", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data == get_profile("qemu-m55").to_dict()
    as_yaml = cli("boards", "show", "pi4")
    assert yaml.safe_load(as_yaml.stdout) == get_profile("pi4").to_dict()
    missing = cli("boards", "show", "no-such-board")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no-such-board" in missing.stderr
