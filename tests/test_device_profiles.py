"""Board profiles: the built-in YAML files load, validate, and bad fields are named in one line."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import yaml

from edgeattack.profiles import BoardProfile, get_profile, list_profiles
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


# defects found as a new user (issue 7): each failed before the fix ----------------------------------

@pytest.mark.parametrize("changes, field", [
    ({"name": "../escaped"}, "name"),       # would escape the firmware cache folder
    ({"name": "My Board"}, "name"),
    ({"name": "-x"}, "name"),
    ({"model_cpi": float("inf")}, "model_cpi"),
    ({"model_cpi": float("nan")}, "model_cpi"),
    ({"energy": {"active_power_w": float("inf")}}, "energy.active_power_w"),
    ({"energy": {"estimate": {"active_power_w": float("nan")}}}, "energy.estimate.active_power_w"),
    ({"energy": {"meter": "../x"}}, "energy.meter"),
    ({"energy": {"meter": "ppk2", "options": "fast"}}, "energy.options"),
    ({"energy": {"meter": "ppk2", "active_power_w": 0.1}}, "energy.active_power_w"),
    ({"energy": {"metre": "ppk2"}}, "energy.metre"),
    ({"pace_baudrate": 0}, "pace_baudrate"),
    ({"pace_baudrate": float("inf")}, "pace_baudrate"),
    ({"protocol": "modbus"}, "protocol"),
])
def test_bad_names_non_finite_numbers_and_optional_fields_are_refused(tmp_path, changes, field):
    path = _write(tmp_path, **changes)
    with pytest.raises(UsageError) as err:
        get_profile(str(path))
    msg = str(err.value)
    assert str(path) in msg and f"'{field}'" in msg and "\n" not in msg


def test_inf_written_as_yaml_is_refused(tmp_path):
    path = _write(tmp_path)
    path.write_text(path.read_text().replace("model_cpi: null", "model_cpi: .inf"))
    assert "model_cpi: .inf" in path.read_text()
    with pytest.raises(UsageError, match=r"'model_cpi' must be a positive finite number.*inf"):
        get_profile(str(path))


def test_duplicate_yaml_keys_are_refused_naming_file_key_and_line(tmp_path):
    path = _write(tmp_path)
    lines = path.read_text().splitlines()
    lines.append("tick_hz: 1")  # PyYAML alone would keep this one silently
    path.write_text("\n".join(lines) + "\n")
    first = next(i for i, line in enumerate(lines, 1) if line.startswith("tick_hz:"))
    with pytest.raises(UsageError) as err:
        get_profile(str(path))
    msg = str(err.value)
    assert str(path) in msg and "duplicate key 'tick_hz'" in msg and "\n" not in msg
    assert f"line {len(lines)}" in msg and f"first given at line {first}" in msg
    nested = tmp_path / "nested.yaml"
    nested.write_text(path.read_text().replace("tick_hz: 1\n", "").replace(
        "method: pyocd", "method: pyocd\n  method: ssh"))
    with pytest.raises(UsageError, match="duplicate key 'method'"):
        get_profile(str(nested))


def test_optional_fields_of_conventions_are_accepted(tmp_path):
    plain = get_profile("nucleo-l4r5zi")
    assert plain.pace_baudrate is None and plain.protocol == "edgeattack"
    for energy in ({"meter": "ppk2", "options": {"serial": "C4:1B"}},
                   {"estimate": {"active_power_w": 0.04, "idle_power_w": None, "source": "datasheet"}},
                   {"meter": "joulescope"}):
        path = _write(tmp_path, energy=energy, pace_baudrate=115200, protocol="mlperf")
        p = get_profile(str(path))
        assert p.energy == energy and p.pace_baudrate == 115200 and p.protocol == "mlperf"
        assert get_profile(str(_write(tmp_path, **p.to_dict()))) == dataclasses.replace(p)


def test_boards_json_is_a_list_of_profiles():
    proc = cli("boards", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, list) and [d["name"] for d in data] == sorted(ALL_BOARDS)
    assert data == [p.to_dict() for p in list_profiles()]
