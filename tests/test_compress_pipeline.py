"""compress() end to end on digits: every figure is read back from the written files (the .tflite
flatbuffer, the .keras model), not only from the manifest. Epochs are tiny; see tools/bench_compress.py
for real-epoch figures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fixtures_compress import compress_digits

pytest_plugins = ["fixtures_compress"]


@pytest.fixture(scope="session")
def digits_pqat(digits_model, tmp_path_factory):
    return compress_digits(digits_model, tmp_path_factory, "pqat",
                           [{"step": "pqat", "target_sparsity": 0.75, "prune_epochs": 4, "epochs": 1}])


def _weights(path):
    from edgeattack.tflite import analysis

    return analysis.weight_sparsity(path), analysis.distinct_values_per_channel(path)


def test_float_model_and_ptq_int8(digits_model, digits_ptq):
    from edgeattack.tflite import analysis
    from edgeattack.tflite.runtimes import TFLMRunner
    from edgeattack.datasets import load_dataset

    m = digits_ptq.manifest
    acc = m["accuracy"]
    assert m["source"]["accuracy"] >= 0.95
    assert acc["float"] == m["source"]["accuracy"]  # ptq-int8 has no float step
    for runtime in ("litert", "tflm"):
        assert acc[runtime] >= acc["float"] - 0.01, (runtime, acc)
    # int8 weights: at most 0.27x the float32 weights
    assert m["weight_buffer_bytes"] <= 0.27 * m["float_model"]["float32_weight_bytes"]
    # the files on disk are what the manifest says
    tfl = digits_ptq.tflite_path.read_bytes()
    assert m["files"]["model.tflite"] == len(tfl) == m["tflite_bytes"]
    assert m["files"]["model.keras"] == digits_ptq.model_path.stat().st_size
    assert analysis.weight_buffer_bytes(tfl) == m["weight_buffer_bytes"]
    assert analysis.is_aligned_16(tfl)
    import hashlib

    assert hashlib.sha256(tfl).hexdigest() == m["model_sha256"]
    # TFLM accuracy recomputed from the file, in the arena the manifest reports (plus margin)
    data = load_dataset("digits")
    out = TFLMRunner(tfl, arena_size=m["tflite"]["tflm_arena"]["with_margin"]).predict_raw(data.x_test)
    assert np.mean(out.argmax(1) == data.y_test) == pytest.approx(acc["tflm"])
    assert json.loads((digits_ptq.out / "manifest.json").read_text()) == m


def test_manifest_has_the_conventions_fields(digits_ptq):
    m = digits_ptq.manifest
    assert m["recipe"]["name"] == "ptq-int8" and m["recipe"]["steps"][0]["step"] == "ptq-int8"
    step = m["steps"][0]
    assert step["params"] == {"samples": 200}
    assert step["accuracy_before"] == m["source"]["accuracy"]
    assert step["accuracy_after"] == m["accuracy"]["litert"]
    assert m["dataset"]["name"] == "digits" and m["seed"] == 0 and m["data_range"] == [0.0, 1.0]
    assert m["input"]["dtype"] == "int8" and m["input"]["shape"] == [1, 8, 8, 1]
    assert m["input"]["scale"] > 0 and isinstance(m["input"]["zero_point"], int)
    assert m["output"]["dtype"] == "int8" and m["output"]["shape"] == [1, 10]
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(m["operators"])
    assert m["macs"] > 0 and m["params"] == m["source"]["params"]
    assert m["tflm_arena_bytes"] > 0 and m["tflm_runnable"] is True
    assert m["agreement"] >= 0.995 and isinstance(m["max_lsb_diff"], int)
    assert m["weight_buffer_gzip_bytes"] > 0 and m["sparsity"] is not None
    assert m["max_distinct_values_per_channel"] > 16  # plain PTQ: no clustering


def test_float_model_written_is_the_last_float_model(digits_ptq):
    from edgeattack.datasets import load_dataset
    from edgeattack.tfutil import keras

    from edgeattack.train import evaluate

    model = keras().models.load_model(digits_ptq.model_path)
    data = load_dataset("digits")
    # The manifest's own evaluation (same batch size): float sums in another batching may round a
    # near-tie the other way, depending on the CPU's kernels; the same batching cannot.
    assert evaluate(model, data.x_test, data.y_test) == digits_ptq.manifest["accuracy"]["float"]


def test_pqat_75_percent_zeros_in_the_int8_kernels(digits_pqat, digits_ptq):
    m, ref = digits_pqat.manifest, digits_ptq.manifest
    sparsity, _ = _weights(digits_pqat.tflite_path)
    kernels = sparsity["per_tensor"]
    assert len(kernels) == 4  # two CONV_2D and two FULLY_CONNECTED kernels
    for t in kernels:
        assert t["fraction"] >= 0.75, t
    assert sparsity["overall"] >= 0.75
    assert m["tflite"]["sparsity"]["per_tensor"] == kernels  # the manifest reports which layers
    assert m["weight_buffer_gzip_bytes"] <= 0.55 * ref["weight_buffer_gzip_bytes"]
    assert m["weight_buffer_bytes"] == ref["weight_buffer_bytes"]  # zeros are still stored
    for runtime in ("litert", "tflm"):
        assert m["accuracy"][runtime] >= ref["accuracy"][runtime] - 0.02, (runtime, m["accuracy"])
    assert m["steps"][0]["details"]["preserve"] == "sparsity"
    assert m["steps"][1]["step"] == "ptq-int8" and m["steps"][1]["appended"] is True


def test_cluster_16_distinct_values_per_output_channel(digits_model, digits_ptq, tmp_path_factory):
    res = compress_digits(digits_model, tmp_path_factory, "cluster",
                          [{"step": "cluster", "clusters": 16, "epochs": 1}, {"step": "ptq-int8"}])
    _, distinct = _weights(res.tflite_path)
    assert len(distinct) == 4
    for t in distinct:
        assert t["max"] <= 16, t
    assert res.manifest["max_distinct_values_per_channel"] <= 16
    assert res.manifest["accuracy"]["tflm"] >= digits_ptq.manifest["accuracy"]["tflm"] - 0.03


def test_lowrank_halves_factorized_params(digits_model, digits_ptq, tmp_path_factory):
    res = compress_digits(digits_model, tmp_path_factory, "lowrank",
                          [{"step": "lowrank", "energy": 0.9, "epochs": 3}])
    m = res.manifest
    d = m["steps"][0]["details"]
    assert d["layers"], "nothing was factorized"
    assert d["factorized_params_before"] >= 2 * d["factorized_params_after"]
    # the model that was converted really is smaller, by exactly the saving in factorized layers
    saved = d["factorized_params_before"] - d["factorized_params_after"]
    assert d["model_params_after"] == d["model_params_before"] - saved
    assert m["float_model"]["params"] == d["model_params_after"]
    assert m["params"] < digits_ptq.manifest["params"]
    for runtime in ("float", "litert", "tflm"):
        assert m["accuracy"][runtime] >= m["source"]["accuracy"] - 0.03, (runtime, m["accuracy"])


def test_distill_half_width_student(digits_model, tmp_path_factory):
    res = compress_digits(digits_model, tmp_path_factory, "distill",
                          [{"step": "distill", "width": 0.5, "epochs": 30}])
    m = res.manifest
    d = m["steps"][0]["details"]
    assert d["student_params"] <= d["teacher_params"] / 2
    assert m["float_model"]["params"] == d["student_params"] == m["params"]
    for runtime in ("float", "litert", "tflm"):
        assert m["accuracy"][runtime] >= m["source"]["accuracy"] - 0.03, (runtime, m["accuracy"])


def test_same_seed_same_tflite_bytes(digits_model, tmp_path_factory):
    recipe = [{"step": "prune", "target_sparsity": 0.5, "epochs": 1}, {"step": "ptq-int8", "samples": 50}]
    a = compress_digits(digits_model, tmp_path_factory, "det-a", recipe, seed=3)
    b = compress_digits(digits_model, tmp_path_factory, "det-b", recipe, seed=3)
    assert a.tflite_path.read_bytes() == b.tflite_path.read_bytes()
    assert a.manifest["model_sha256"] == b.manifest["model_sha256"]
    assert a.manifest["steps"][0]["accuracy_after"] == b.manifest["steps"][0]["accuracy_after"]


def test_failed_compress_leaves_no_output(digits_model, tmp_path):
    from edgeattack.compression import compress
    from edgeattack.errors import UsageError

    out = tmp_path / "out"
    with pytest.raises(UsageError, match="no layer was factorized"):
        compress(digits_model, [{"step": "lowrank", "min_params": 10 ** 9, "epochs": 0}], out,
                 progress=False)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir()]  # no temporary folder left behind either


def test_distill_foreign_model_needs_student(tmp_path):
    """A model without train.json: distill cannot guess the student's zoo name."""
    from edgeattack.compression import compress
    from edgeattack.errors import UsageError
    from edgeattack.zoo import build_model

    model = build_model("cnn-digits", (8, 8, 1), 10, 0.25)
    with pytest.raises(UsageError, match="student: NAME"):
        compress(model, ["distill"], tmp_path / "o", dataset="digits", progress=False)
    assert not (tmp_path / "o").exists()
