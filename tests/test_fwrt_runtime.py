"""The firmware's C runtime on the host (ASan + UBSan): plans, runs, and refuses bad models cleanly.

Corrupt models (truncated, byte flips, wrong identifier, unsupported operator, too small an arena) must
give exit code 2 (bad model) or 3 (failed run) with one `ea_host: <message>` line, never a crash or a
sanitizer report. Uses the small seed models in firmware_models/fuzz/corpus_model (no TensorFlow needed)
and the shared tiny_tflite fixture.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool

REPO = Path(__file__).resolve().parent.parent
SEEDS = sorted((REPO / "firmware_models" / "fuzz" / "corpus_model").glob("*.tflite"))
RUNTIME = REPO / "firmware_models" / "runtime"


@pytest.fixture(scope="module")
def host():
    require_tool("cc", "make")
    from edgeattack.firmware import hostrt

    return hostrt


@pytest.fixture(scope="module")
def binary(host):
    return str(host.host_binary())


def _ea_host(binary, *args, stdin=b""):
    p = subprocess.run([binary, *map(str, args)], input=stdin, capture_output=True, timeout=120,
                       env={"ASAN_OPTIONS": "detect_leaks=0:exitcode=86", "UBSAN_OPTIONS": "halt_on_error=1:exitcode=87",
                            "PATH": "/usr/bin:/bin"})
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def _assert_clean_failure(rc, err, allowed=(2, 3)):
    assert rc in allowed, f"exit {rc} (86/87 = sanitizer report, negative = signal):\n{err[-3000:]}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ea_host: ") and len(lines[0]) > len("ea_host: ") + 5, err


def test_seed_corpus_is_small_and_present():
    assert len(SEEDS) >= 8
    assert sum(p.stat().st_size for p in SEEDS) < 200_000


def test_plan_matches_tflm_tensor_details(host):
    from tflite_micro.python.tflite_micro import runtime

    for path in SEEDS:
        model = path.read_bytes()
        plan = host.host_plan(model)
        assert plan["arena_bytes"] == host.firmware_arena_bytes(model) > 0
        assert plan["arena_bytes"] % 16 == 0
        interp = runtime.Interpreter.from_bytes(model, arena_size=4 << 20)
        for key, details in (("input", interp.get_input_details(0)), ("output", interp.get_output_details(0))):
            ours = plan[key]
            assert tuple(ours["shape"]) == tuple(details["shape"]), path.name
            assert ours["dtype"] == np.dtype(details["dtype"]).name, path.name
            q = details["quantization_parameters"]
            if ours["dtype"] == "int8":
                assert np.float32(ours["scale"]) == np.float32(q["scales"][0])
                assert ours["zero_point"] == int(q["zero_points"][0])
            assert ours["bytes"] == int(np.prod(details["shape"])) * np.dtype(details["dtype"]).itemsize


def test_run_host_matches_tflm_on_the_tiny_model(host, tiny_tflite):
    from tflite_micro.python.tflite_micro import runtime

    model = Path(tiny_tflite).read_bytes()
    interp = runtime.Interpreter.from_bytes(model, arena_size=4 << 20)
    rng = np.random.default_rng(0)
    xs = rng.integers(-128, 128, size=(16, 1, 8, 8, 1)).astype(np.int8)
    xs[0], xs[1] = -128, 127
    expected = []
    for x in xs:
        interp.set_input(x, 0)
        interp.invoke()
        expected.append(interp.get_output(0).copy())
    got = host.run_host(model, xs)
    assert got.dtype == np.int8 and got.shape == (16, 1, 10)
    assert np.array_equal(got, np.stack(expected))
    single = host.run_host(model, xs[3])  # one sample: no batch axis
    assert np.array_equal(single, expected[3])


def test_run_host_rejects_wrong_inputs(host):
    from edgeattack.errors import UsageError

    model = SEEDS[0].read_bytes()
    shape = tuple(host.host_plan(model)["input"]["shape"])
    dtype = np.int8 if host.host_plan(model)["input"]["dtype"] == "int8" else np.float32
    wrong = np.float64 if dtype == np.int8 else np.int8
    with pytest.raises(UsageError, match="inputs must be"):
        host.run_host(model, np.zeros(shape, wrong))
    with pytest.raises(UsageError, match="shape"):
        host.run_host(model, np.zeros((2, 3, 1, 1, 1, 1, 7), dtype))


def test_truncated_models_fail_with_a_message(binary, tmp_path):
    model = SEEDS[-1].read_bytes()
    lengths = sorted(set([0, 1, 3, 4, 7, 8, 9, 12, 16, 24, 32, 64] + list(range(0, len(model), max(1, len(model) // 60)))))
    failures = 0
    for n in lengths:
        if n >= len(model):
            continue
        p = tmp_path / f"t{n}.tflite"
        p.write_bytes(model[:n])
        rc, out, err = _ea_host(binary, "plan", p)
        if rc != 0:
            _assert_clean_failure(rc, err, allowed=(2,))
            failures += 1
    assert failures >= len([n for n in lengths if n < len(model)]) - 2  # the last bytes may be padding


def test_random_byte_flips_never_crash(binary, tmp_path):
    rng = np.random.default_rng(1234)
    outcomes = {0: 0, 2: 0, 3: 0}
    for k in range(240):
        model = bytearray(SEEDS[k % len(SEEDS)].read_bytes())
        mode = k % 3
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, len(model)))
            if mode == 0:
                model[i] ^= 1 << int(rng.integers(0, 8))
            elif mode == 1:
                model[i] = int(rng.integers(0, 256))
            elif i + 4 <= len(model):  # a plausible-looking but wrong offset or size
                model[i:i + 4] = int(rng.choice([0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, len(model), 1 << 20])).to_bytes(4, "little")
        p = tmp_path / f"f{k}.tflite"
        p.write_bytes(bytes(model))
        rc, out, err = _ea_host(binary, "plan", p)
        if rc == 0:  # still a valid model: run it on the rails too
            import json

            nbytes = json.loads(out)["input"]["bytes"]
            rc, out, err = _ea_host(binary, "run", p, stdin=bytes([0x80]) * nbytes + bytes([0x7F]) * nbytes)
        if rc != 0:
            _assert_clean_failure(rc, err)
        outcomes[rc] = outcomes.get(rc, 0) + 1
    assert outcomes[2] > 50, outcomes  # most corruptions are detected at load time


def test_wrong_identifier_is_named(binary, tmp_path):
    model = bytearray(SEEDS[0].read_bytes())
    model[4:8] = b"XXXX"
    p = tmp_path / "id.tflite"
    p.write_bytes(bytes(model))
    rc, out, err = _ea_host(binary, "plan", p)
    _assert_clean_failure(rc, err, allowed=(2,))
    assert "identifier" in err


def _with_opcode(model: bytes, op_index: int, code: int) -> bytes:
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    oc = schema.OperatorCodeT()
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = min(code, 127)
    oc.version = 1
    m.operatorCodes.append(oc)
    m.subgraphs[0].operators[op_index].opcodeIndex = len(m.operatorCodes) - 1
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_unsupported_operator_is_named(binary, tmp_path):
    p = tmp_path / "elu.tflite"
    p.write_bytes(_with_opcode(SEEDS[0].read_bytes(), 0, 111))  # ELU
    rc, out, err = _ea_host(binary, "plan", p)
    _assert_clean_failure(rc, err, allowed=(2,))
    assert "unsupported operator ELU (builtin 111) at op 0" in err


def test_arena_too_small_is_reported(binary, host):
    model = SEEDS[3]
    need = host.firmware_arena_bytes(model.read_bytes())
    rc, out, err = _ea_host(binary, "run", model, need - 16)
    _assert_clean_failure(rc, err, allowed=(2,))
    assert f"arena too small: the model needs {need} bytes" in err
    rc, out, err = _ea_host(binary, "run", model, need)  # exactly enough: fine
    assert rc == 0, err


def test_runtime_has_no_malloc_and_builds_for_cortex_m(tmp_path):
    """The firmware sources compile for Cortex-M4F with -Werror and reference no allocator or stdio."""
    require_tool("arm-none-eabi-gcc", "arm-none-eabi-nm")
    util = RUNTIME.parent / "util"  # the runtime's only dependency (its layer's include path)
    srcs = sorted(RUNTIME.rglob("*.c")) + sorted(util.glob("*.c"))
    objs = []
    for src in srcs:
        obj = tmp_path / (src.stem + ".o")
        subprocess.run(["arm-none-eabi-gcc", "-std=c11", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror",
                        "-Wconversion", "-Wno-sign-conversion", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                        "-mfpu=fpv4-sp-d16", f"-I{RUNTIME}", f"-I{util}", "-c", str(src), "-o", str(obj)], check=True,
                       capture_output=True)
        objs.append(str(obj))
    undefined = subprocess.run(["arm-none-eabi-nm", "-u", *objs], check=True, capture_output=True, text=True).stdout
    symbols = {line.split()[-1] for line in undefined.splitlines() if line.strip() and not line.endswith(":")}
    forbidden = {"malloc", "calloc", "realloc", "free", "printf", "snprintf", "sprintf", "puts", "abort"}
    assert not symbols & forbidden, symbols & forbidden
    assert shutil.which("arm-none-eabi-gcc")


def test_misaligned_arena_gives_the_same_outputs(binary, host):
    """The runtime aligns the caller's arena itself: 15 spare bytes suffice at any misalignment."""
    model = SEEDS[5]
    plan = host.host_plan(model.read_bytes())
    need, nbytes = plan["arena_bytes"], plan["input"]["bytes"]
    x = np.random.default_rng(3).integers(0, 256, size=4 * nbytes).astype(np.uint8).tobytes()
    outputs = set()
    for offset in range(16):
        rc, out, err = _ea_host(binary, "run", model, need + 15, offset, stdin=x)
        assert rc == 0, err
        outputs.add(out)
    assert len(outputs) == 1 and len(next(iter(outputs))) == 4 * plan["output"]["bytes"]


def test_hostrt_rejects_a_path_instead_of_bytes(host):
    from edgeattack.errors import UsageError

    with pytest.raises(UsageError, match="tflite bytes"):
        host.firmware_arena_bytes(str(SEEDS[0]))


def test_repeated_invokes_see_the_same_input(binary, host):
    """The planner never reuses the input's memory: invoking again on the loaded input (INFER with a
    repeat count) gives the same output as the first invoke."""
    for model in SEEDS:
        plan = host.host_plan(model.read_bytes())
        x = np.random.default_rng(5).integers(0, 256, size=3 * plan["input"]["bytes"]).astype(np.uint8).tobytes()
        rc, once, err = _ea_host(binary, "run", model, stdin=x)
        assert rc == 0, err
        p = subprocess.run([binary, "run", str(model)], input=x, capture_output=True, timeout=120,
                           env={"EA_HOST_REPEAT": "3", "ASAN_OPTIONS": "detect_leaks=0"})
        assert p.returncode == 0, p.stderr
        assert p.stdout == once, model.name


def test_indexed_load_errors_keep_the_field_name(binary, tmp_path):
    """A failed read inside a numbered element (operator code, tensor, op) names the field and the
    element: "Model.operator_codes: ... (operator code 0)", not the index alone."""
    model = SEEDS[-1].read_bytes()
    indexed = []
    for n in range(8, len(model), 3):
        p = tmp_path / f"t{n}.tflite"
        p.write_bytes(model[:n])
        rc, out, err = _ea_host(binary, "plan", p)
        line = err.strip()
        if rc == 2 and line.endswith(")") and any(f"({k} " in line for k in ("operator code", "tensor", "op", "buffer")):
            indexed.append(line)
    assert indexed, "no truncation hit an indexed element"
    for line in indexed:
        assert line.startswith("ea_host: ") and ": " in line[len("ea_host: "):].split(" (")[0], line
