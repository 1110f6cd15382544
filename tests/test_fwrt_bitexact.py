"""The firmware's C runtime against TFLM (the pinned tflite-micro wheel) on >= 300 random int8 models.

Models, inputs and TFLM outputs come from tools/gen_random_models.py, run once in a subprocess and cached
under ~/.cache/edgeattack/random_models (keyed by the generator source and the TF/TFLM versions). Every
output must match byte for byte; the host runtime runs under ASan and UBSan, so any memory error or
undefined behaviour fails the run as well.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import require_tool

TOOLS = Path(__file__).resolve().parent.parent / "tools"
COUNT, SEED, MUTANTS, JOBS = 330, 7, 5, 2


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def random_models():
    require_tool("cc", "make")
    import tflite_micro  # noqa: F401  (the oracle: a declared dependency, so missing it is a failure)
    return _tool("fwrt_bitexact").ensure_models(COUNT, SEED, MUTANTS, JOBS)


def test_random_models_cover_the_operators(random_models):
    manifest = json.loads((random_models / "manifest.json").read_text())
    assert len(manifest["models"]) >= 300
    ops = {layer["op"] for m in manifest["models"] for layer in m["layers"]}
    for needed in ("conv", "dwconv", "dense", "maxpool", "avgpool", "residual_add", "broadcast_add", "pad", "mean",
                   "softmax"):
        assert needed in ops, f"no random model exercises {needed}"
    assert any(m["float_io"] for m in manifest["models"]), "no QUANTIZE/DEQUANTIZE (float I/O) model"
    assert any(n.get("appended") == "requantize" for m in manifest["models"] for n in m.get("mutations") or [])


@pytest.mark.parametrize("kernels", ["ref", "dsp", "mve"])
def test_c_runtime_matches_tflm_byte_for_byte(random_models, kernels):
    # Each kernel set's C code (dsp, mve: their instructions' portable definitions, checked against the
    # instructions on QEMU by tests/test_kernels.py and tests/test_kernels_mve.py)
    res = _tool("fwrt_bitexact").compare(random_models, kernels)
    assert res["models"] >= 300
    assert res["inputs"] >= 300 * 7
    detail = "\n".join(json.dumps(f)[:400] for f in res["failures"][:10])
    assert not res["failures"], f"{len(res['failures'])} of {res['models']} models differ from TFLM:\n{detail}"
    assert res["matching_outputs"] == res["inputs"]
