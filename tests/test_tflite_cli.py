"""`edgeattack inspect` and `edgeattack export` as a user runs them (subprocess), good and bad inputs."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli
from edgeattack.tflite.align import align_16


def _firmware_rt_present() -> bool:
    try:
        import edgeattack.firmware.hostrt  # noqa: F401  (written by the firmware side, maybe not yet)
    except ImportError:
        return False
    return True


def test_inspect_json(tiny_tflite):
    proc = run_cli("inspect", tiny_tflite, "--json", check=True)
    s = json.loads(proc.stdout)
    assert s["operators"] == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert s["size_bytes"] == tiny_tflite.stat().st_size and not s["aligned_16"]
    assert s["inputs"][0]["shape"] == [1, 8, 8, 1] and s["inputs"][0]["dtype"] == "int8"
    conv = s["layers"][0]
    assert conv["op"] == "CONV_2D" and conv["options"]["padding"] == "SAME" and conv["macs"] == 8 * 8 * 4 * 9
    assert s["macs"]["total"] == sum(layer["macs"] for layer in s["layers"])
    assert len(s["tensors"]) == s["tensor_count"]
    arena = s["tflm_arena"]
    assert arena["measured"] % 16 == 0 and arena["with_margin"] > arena["measured"]
    if _firmware_rt_present():
        assert isinstance(s["firmware_arena"], int)
    else:
        assert s["firmware_arena"] is None


def test_inspect_table(tiny_tflite):
    proc = run_cli("inspect", tiny_tflite, "--no-arena", check=True)
    out = proc.stdout
    assert "CONV_2D" in out and "SAME stride 1x1 RELU" in out and "MAX_POOL_2D" in out
    assert "TFLM arena: skipped (--no-arena)" in out
    assert "firmware arena: " in out
    assert "scale 0.00392157 zero_point -128" in out


def test_export_both_formats(tiny_tflite, tmp_path):
    aligned = align_16(tiny_tflite.read_bytes())
    for fmt, files, extra in (("tflm", {"model_data.cc", "op_resolver.h"}, []),
                              ("c", {"model_data.c"}, ["--arena-size", "3000"])):
        out = tmp_path / fmt
        proc = run_cli("export", tiny_tflite, "--format", fmt, "-o", out, "--name", "digits", *extra, check=True)
        assert files <= {p.name for p in out.iterdir()}
        assert (out / "model.tflite").read_bytes() == aligned
        assert "aligned to 16 bytes by export" in proc.stdout
    assert "g_digits_model_data" in (tmp_path / "tflm" / "model_data.h").read_text()
    assert "#define EA_TFLM_ARENA_MEASURED 3000" in (tmp_path / "c" / "model_settings.h").read_text()
    measured = int(next(line for line in (tmp_path / "tflm" / "model_settings.h").read_text().splitlines()
                        if "kTensorArenaMeasured" in line).split("=")[1].strip(" ;"))
    assert measured % 16 == 0 and 0 < measured < 100_000


def _assert_one_line_failure(proc, *fragments):
    assert proc.returncode in (1, 2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for frag in fragments:
        assert frag in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["inspect", "export"])
def test_not_a_model(tmp_path, command):
    bad = tmp_path / "notes.txt"
    bad.write_text("just some text that is long enough to have a file identifier\n")
    extra = ["--format", "c", "-o", tmp_path / "out"] if command == "export" else []
    proc = run_cli(command, bad, *extra)
    _assert_one_line_failure(proc, f"{bad}: not a valid .tflite model", "TFLite converter")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("command", ["inspect", "export"])
def test_truncated_model(tiny_tflite, tmp_path, command):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(tiny_tflite.read_bytes()[:1500])
    extra = ["--format", "tflm", "-o", tmp_path / "out"] if command == "export" else []
    proc = run_cli(command, cut, *extra)
    _assert_one_line_failure(proc, f"{cut}: not a valid .tflite model", "truncated")
    assert [p.name for p in tmp_path.iterdir()] == ["cut.tflite"]


def test_export_refuses_existing_output(tiny_tflite, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_data.c").write_text("/* someone's work */\n")
    proc = run_cli("export", tiny_tflite, "--format", "c", "-o", out)
    _assert_one_line_failure(proc, str(out), "--force")
    assert [p.name for p in out.iterdir()] == ["model_data.c"]
    assert (out / "model_data.c").read_text() == "/* someone's work */\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no partial output folder
    run_cli("export", tiny_tflite, "--format", "c", "-o", out, "--force", "--arena-size", "4096", check=True)
    assert (out / "model.tflite").is_file()


def test_export_json_lists_the_files(tiny_tflite, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("export", tiny_tflite, "--format", "c", "-o", out, "--arena-size", "4096", "--json",
                   check=True)
    res = json.loads(proc.stdout)
    assert res["files"] == sorted(p.name for p in out.iterdir())
    assert res["format"] == "c" and res["out_dir"] == str(out) and res["arena"]["measured"] == 4096
    assert len(res["sha256"]) == 64 and res["size"] == (out / "model.tflite").stat().st_size


def test_export_refuses_an_arena_size_below_the_need(tiny_tflite, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("export", tiny_tflite, "--format", "c", "-o", out, "--arena-size", "512")
    assert proc.returncode == 2
    _assert_one_line_failure(proc, "--arena-size 512: too small for", "which needs", "omit --arena-size")
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_missing_model_file(tmp_path):
    proc = run_cli("inspect", tmp_path / "nope.tflite")
    _assert_one_line_failure(proc, "nope.tflite: no such model file")
