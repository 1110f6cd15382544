"""Export: the generated C/C++ compiles (-Wall -Werror) and the compiled array holds exactly the model's
aligned bytes. TFLM's resolver is the only stub (tests/stubs, CONVENTIONS: stubs that are allowed)."""
from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from conftest import require_tool
from edgeattack.errors import UsageError
from edgeattack.tflite.align import align_16
from edgeattack.tflite.export import TFLM_RESOLVER_METHODS, c_identifier, export_model
from edgeattack.tflite.reader import read_model

STUBS = Path(__file__).parent / "stubs"


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, timeout=120, **kw)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout.decode(errors='replace')}\n{proc.stderr.decode(errors='replace')}"
    return proc


def test_tflm_export_compiles_and_embeds_the_aligned_model(tiny_tflite, tmp_path):
    require_tool("g++")
    out = tmp_path / "tflm"
    res = export_model(tiny_tflite, "tflm", out, name="tiny", arena=2048)
    aligned = align_16(tiny_tflite.read_bytes())
    assert res["aligned_by_export"] and res["sha256"] == hashlib.sha256(aligned).hexdigest()
    assert sorted(p.name for p in out.iterdir()) == ["model.tflite", "model_data.cc", "model_data.h",
                                                     "model_settings.h", "op_resolver.h"]
    assert (out / "model.tflite").read_bytes() == aligned
    header = (out / "model_data.h").read_text()
    assert "extern const unsigned char g_tiny_model_data[];" in header
    assert "alignas(16) const unsigned char g_tiny_model_data[]" in (out / "model_data.cc").read_text()

    exe = tmp_path / "dump"
    _run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{out}", f"-I{STUBS}", "-DEA_NAME=tiny",
          str(out / "model_data.cc"), str(STUBS / "dump_tflm_model.cc"), "-o", str(exe)])
    proc = _run([str(exe)])
    assert proc.stdout == aligned
    lines = proc.stderr.decode().splitlines()
    ops = read_model(aligned).distinct_ops
    assert lines[:-1] == ops  # registered exactly the model's operators, in order
    fields = dict(kv.split("=") for kv in lines[-1].split())
    assert fields == {"len": str(len(aligned)), "sha": res["sha256"], "aligned": "1", "ops": str(len(ops)),
                      "capacity": str(len(ops)), "arena": str(2048 + res["arena"]["margin"]), "classes": "10"}


def test_c_export_compiles_and_embeds_the_aligned_model(tiny_tflite, tmp_path):
    require_tool("gcc")
    out = tmp_path / "c"
    labels = [f"digit {i}" for i in range(9)] + ['quote " and \\ and ?']
    res = export_model(tiny_tflite, "c", out, labels=labels, arena=4096)
    aligned = align_16(tiny_tflite.read_bytes())
    assert sorted(p.name for p in out.iterdir()) == ["model.tflite", "model_data.c", "model_data.h", "model_settings.h"]
    assert res["symbols"] == {"data": "ea_model_data", "len": "ea_model_data_len", "sha256": "ea_model_sha256"}
    exe = tmp_path / "dump"
    _run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{out}",
          str(out / "model_data.c"), str(STUBS / "dump_c_model.c"), "-o", str(exe)])
    proc = _run([str(exe)])
    assert proc.stdout == aligned
    info = read_model(aligned)
    inp = info.input_tensors[0]
    line = proc.stderr.decode().strip()
    assert f"len={len(aligned)} sha={hashlib.sha256(aligned).hexdigest()} aligned=1" in line
    assert f"arena={4096 + res['arena']['margin']} classes=10" in line
    scale, zp = re.search(r"input=([^,]+),(-?\d+)", line).groups()
    assert float(scale) == pytest.approx(inp.scale, rel=1e-7) and -int(zp) == inp.zero_point
    assert line.endswith("label0=digit 0")
    # The C string escaping survives the compiler: the last label comes back as given.
    settings = (out / "model_settings.h").read_text()
    assert '"quote \\" and \\\\ and \\077"' in settings


def test_already_aligned_model_is_embedded_unchanged(tiny_tflite, tmp_path):
    aligned = align_16(tiny_tflite.read_bytes())
    src = tmp_path / "aligned.tflite"
    src.write_bytes(aligned)
    res = export_model(src, "c", tmp_path / "out", arena=1024)
    assert not res["aligned_by_export"]
    assert (tmp_path / "out" / "model.tflite").read_bytes() == aligned
    assert res["sha256"] == hashlib.sha256(aligned).hexdigest()
    assert res["sha256"] in (tmp_path / "out" / "model_data.c").read_text()


def test_existing_output_needs_force(tiny_tflite, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="already exists; pass --force"):
        export_model(tiny_tflite, "c", out, arena=1024)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    export_model(tiny_tflite, "c", out, arena=1024, force=True)
    assert "keep.txt" not in [p.name for p in out.iterdir()]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left behind


def test_bad_arguments(tiny_tflite, tmp_path):
    with pytest.raises(UsageError, match="unknown export format"):
        export_model(tiny_tflite, "cpp", tmp_path / "a", arena=1024)
    with pytest.raises(UsageError, match="is not a C identifier"):
        export_model(tiny_tflite, "tflm", tmp_path / "b", name="2fast", arena=1024)
    with pytest.raises(UsageError, match="3 labels given"):
        export_model(tiny_tflite, "c", tmp_path / "c", labels=["a", "b", "c"], arena=1024)
    assert not any(tmp_path.iterdir())
    assert c_identifier("my-model.v2") == "my_model_v2" and c_identifier("8bit") == "m8bit"


def test_stub_has_every_resolver_method():
    stub = (STUBS / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    declared = dict(re.findall(r"TfLiteStatus (Add\w+)\(\) \{ return Add\(\"(\w+)\"\); \}", stub))
    assert declared == {m: op for op, m in TFLM_RESOLVER_METHODS.items()}
    assert "standing in ONLY for TFLM's API" in stub


@pytest.fixture(scope="module")
def float_tflites(tmp_path_factory):
    """The tiny model's shape converted without int8 quantization: float32, and dynamic-range
    (int8 weights, float activations). Untrained: only the tensor types matter here."""
    import edgeattack.tfutil as tu

    tf, keras = tu.tf(), tu.keras()
    tu.set_seed(0)
    model = keras.Sequential([keras.layers.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    out = {}
    for kind in ("float32", "dynamic-range"):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if kind == "dynamic-range":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        path = tmp_path_factory.mktemp("float") / f"{kind}.tflite"
        path.write_bytes(conv.convert())
        out[kind] = path
    return out


@pytest.mark.parametrize("kind", ["float32", "dynamic-range"])
def test_c_export_refuses_a_float_model(float_tflites, tmp_path, kind):
    """The firmware computes in int8 only: a float model is refused at export, not later at `up`."""
    with pytest.raises(UsageError) as e:
        export_model(float_tflites[kind], "c", tmp_path / "out", arena=100_000)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(float_tflites[kind]))
    assert "a float model (CONV_2D reads float32" in msg and "int8 models only" in msg
    assert "--format tflm" in msg
    assert not any(tmp_path.iterdir())
    res = export_model(float_tflites[kind], "tflm", tmp_path / "tflm", arena=100_000)  # TFLM runs it
    assert "model_data.cc" in res["files"]


def test_int8_models_pass_the_float_check(tiny_tflite):
    from edgeattack.tflite.export import float_compute

    assert float_compute(read_model(tiny_tflite.read_bytes())) is None


def test_arena_size_below_the_need_is_refused_with_the_need(tiny_tflite, tmp_path):
    from edgeattack.tflite.arena import find_arena_size

    need = find_arena_size(tiny_tflite.read_bytes())["measured"]
    with pytest.raises(UsageError) as e:
        export_model(tiny_tflite, "c", tmp_path / "out", arena=need - 16, verify_arena=True)
    assert str(e.value) == (f"--arena-size {need - 16}: too small for {tiny_tflite}, which needs {need} "
                            f"bytes (measured, as `edgeattack inspect` does); give at least {need} or "
                            f"omit --arena-size")
    assert not any(tmp_path.iterdir())
    res = export_model(tiny_tflite, "c", tmp_path / "out", arena=need, verify_arena=True)
    assert res["arena"]["measured"] == need
