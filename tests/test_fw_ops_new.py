"""The operators added to the firmware's C runtime after the first twelve (RELU, RELU6, LEAKY_RELU,
CONCATENATION, MUL, SUB, MAXIMUM, MINIMUM, LOGISTIC, TANH, HARD_SWISH, PADV2, STRIDED_SLICE,
SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND, ARG_MAX, TRANSPOSE_CONV) against TFLM, byte for byte, on random
models of the generator's "ops" family (tools/gen_random_models.py --family ops, cached like the base
suite), each operator in at least 20 models."""
from __future__ import annotations

import json

import pytest

from conftest import require_tool
from test_fwrt_bitexact import _tool

COUNT, SEED, MUTANTS, JOBS = 150, 11, 5, 2
NEW_OPS = ("RELU", "RELU6", "LEAKY_RELU", "CONCATENATION", "MUL", "SUB", "MAXIMUM", "MINIMUM", "LOGISTIC", "TANH",
           "HARD_SWISH", "PADV2", "STRIDED_SLICE", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "ARG_MAX",
           "TRANSPOSE_CONV")


@pytest.fixture(scope="module")
def ops_models():
    require_tool("cc", "make")
    import tflite_micro  # noqa: F401  (the oracle)
    return _tool("fwrt_bitexact").ensure_models(COUNT, SEED, MUTANTS, JOBS, family="ops")


def test_every_new_operator_is_in_at_least_20_models(ops_models):
    manifest = json.loads((ops_models / "manifest.json").read_text())
    counts = {op: sum(op in m["builtins"] for m in manifest["models"]) for op in NEW_OPS}
    assert all(n >= 20 for n in counts.values()), counts
    # More than three inputs reach the runtime (CONCATENATION of up to 5, STRIDED_SLICE, TRANSPOSE_CONV).
    assert any(layer.get("inputs", 0) > 3 for m in manifest["models"] for layer in m["layers"])


def test_new_operators_match_tflm_byte_for_byte(ops_models):
    res = _tool("fwrt_bitexact").compare(ops_models)
    assert res["models"] >= COUNT - 5
    detail = "\n".join(json.dumps(f)[:400] for f in res["failures"][:10])
    assert not res["failures"], f"{len(res['failures'])} of {res['models']} models differ from TFLM:\n{detail}"
    assert res["matching_outputs"] == res["inputs"]
