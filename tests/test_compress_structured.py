"""structured: the layer really is circulant / Hadamard-diagonal (its expanded matrix has the
structure, built here independently, and x K + b equals the fast FFT / butterfly forward); the
projection of a structured kernel recovers it; training lowers the loss; on digits the expanded int8
artifact keeps the dense size, runs on emu-tflm exactly as on TFLM, and keeps a reasonable accuracy;
a study can name the recipe; bad parameters are one line."""
from __future__ import annotations

import numpy as np
import pytest

from edgeattack.errors import UsageError

pytest_plugins = ["fixtures_compress"]


def _net(k, n_in=12, units=7):
    inp = k.Input((n_in,))
    return k.Model(inp, k.layers.Dense(3)(k.layers.Dense(units, activation="relu", name="d")(inp)))


def _structured(kind, block=None, factors=1, n_in=12, units=7, seed=0):
    """A net whose hidden layer is structured, with random structured parameters and bias."""
    from edgeattack.compression import structured as st
    from edgeattack.tfutil import keras

    base = _net(keras(), n_in, units)
    m, rows = st.structure(base, [base.get_layer("d")], kind, block, factors,
                           np.random.default_rng(seed))
    layer = m.get_layer("d")
    rng = np.random.default_rng(seed + 1)
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])
    return m, layer, rows


def _fast_equals_expanded(m, layer, n_in):
    from edgeattack.tfutil import keras

    x = np.random.default_rng(2).normal(size=(6, n_in)).astype(np.float32)
    fast = keras().Model(m.input, layer.output).predict(x, verbose=0)
    ref = np.maximum(x @ layer.expanded_kernel() + layer.get_weights()[1], 0)
    np.testing.assert_allclose(fast, ref, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("n_in, units, block", [(12, 7, None), (7, 12, None), (12, 7, 4)])
def test_circulant_expansion_has_the_structure_and_matches_the_fft_forward(n_in, units, block):
    m, layer, rows = _structured("circulant", block, n_in=n_in, units=units)
    c = layer.get_weights()[0]
    b = c.shape[-1]
    assert b == (block or max(n_in, units))
    assert rows[0]["params_structured"] == c.size + units < rows[0]["params_dense"]
    # independently: each BxB block is circulant, row j of it = its first row rolled by j
    full = np.block([[np.stack([np.roll(c[p, q], j) for j in range(b)]) for q in range(c.shape[1])]
                     for p in range(c.shape[0])])
    k = layer.expanded_kernel()
    np.testing.assert_array_equal(k, full[:n_in, :units])
    if block is None:  # one circulant: K[j+1, i+1] == K[j, i]
        np.testing.assert_array_equal(k[1:, 1:], k[:-1, :-1])
    _fast_equals_expanded(m, layer, n_in)


@pytest.mark.parametrize("factors", [1, 3])
def test_hadamard_expansion_is_the_diagonal_product_and_matches_the_butterfly_forward(factors):
    from scipy.linalg import hadamard

    m, layer, rows = _structured("hadamard", factors=factors)
    d = layer.get_weights()[0]
    n = d.shape[1]
    assert n == 16 and d.shape[0] == factors and rows[0]["params_structured"] == factors * 16 + 7
    h = hadamard(n) / np.sqrt(n)
    full = np.eye(n)
    for i in range(factors):
        full = full @ h @ np.diag(d[i])
        if i < factors - 1:
            full = full @ np.eye(n)[:, layer.perms[i]]  # column c of the product = column perms[c]
    np.testing.assert_allclose(layer.expanded_kernel(), full[:12, :7], atol=1e-5)
    _fast_equals_expanded(m, layer, 12)


def test_projection_recovers_a_kernel_that_has_the_structure():
    from edgeattack.compression import structured as st

    rng = np.random.default_rng(0)
    c = rng.normal(size=(3, 2, 4)).astype(np.float32)
    kernel = st.expand_circulant(c, 12, 7)
    back = st.project_circulant(kernel, 4)
    np.testing.assert_allclose(st.expand_circulant(back, 12, 7), kernel, atol=1e-6)
    # hadamard: with the earlier factors fixed (same rng), the last diagonal is recovered exactly
    diags, perms = st.project_hadamard(np.zeros((16, 16), np.float32), 2, np.random.default_rng(5))
    diags[1] = rng.normal(size=16)
    kernel = st.expand_hadamard(diags, perms, 16, 16)
    d2, p2 = st.project_hadamard(kernel, 2, np.random.default_rng(5))
    np.testing.assert_array_equal(p2, perms)
    np.testing.assert_allclose(d2, diags, atol=1e-5)
    assert st.relative_error(kernel, st.expand_hadamard(d2, p2, 16, 16)) < 1e-5


@pytest.mark.parametrize("kind", ["circulant", "hadamard"])
def test_training_the_structured_layer_reduces_the_loss(kind):
    from edgeattack.tfutil import keras, set_seed

    set_seed(0)
    k = keras()
    m, layer, _ = _structured(kind, factors=2)
    m.layers[-1].trainable = False  # only the structured layer (and its bias) learns
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 12)).astype(np.float32)
    y = x[:, :3].argmax(1)
    m.compile(k.optimizers.Adam(0.01), k.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = layer.get_weights()[0].copy()
    hist = m.fit(x, y, epochs=10, batch_size=32, verbose=0).history["loss"]
    assert hist[-1] < 0.8 * hist[0], hist
    assert not np.allclose(layer.get_weights()[0], before)  # the structure itself was trained


@pytest.mark.parametrize("kind", ["circulant", "hadamard"])
def test_digits_expanded_int8_runs_on_emu_tflm_as_on_tflm(kind, digits_model, digits_ptq,
                                                         tmp_path_factory):
    from fixtures_compress import compress_digits

    from edgeattack.datasets import load_dataset
    from edgeattack.device.api import open_device
    from edgeattack.tflite.runtimes import TFLMRunner

    res = compress_digits(digits_model, tmp_path_factory, f"structured-{kind}",
                          [{"step": "structured", "kind": kind, "epochs": 3}, {"step": "ptq-int8"}])
    m, base = res.manifest, digits_ptq.manifest
    d = m["steps"][0]["details"]
    (row,) = d["layers"]
    assert row["shape"] == [128, 64]  # the hidden Dense; the classifier is left alone
    assert row["params_dense"] == 128 * 64 + 64
    assert row["params_structured"] == (128 if kind == "circulant" else 2 * 128) + 64
    assert d["model_params_trained"] == d["model_params_before"] - row["params_dense"] \
        + row["params_structured"]
    # the device gets the expanded dense matrix: same parameters and weight bytes as plain ptq-int8
    assert d["model_params_after"] == d["model_params_before"] == m["params"] == base["params"]
    assert m["weight_buffer_bytes"] == base["weight_buffer_bytes"]
    assert "not device bytes" in d["note"] and d["expansion_max_abs_diff"] < 1e-4
    assert m["accuracy"]["tflm"] >= base["accuracy"]["tflm"] - 0.08, (m["accuracy"], base["accuracy"])
    x = load_dataset("digits").x_test[:24]
    with open_device("emu-tflm", res.tflite_path) as dev:
        raw = np.stack([r.output_raw for r in dev.infer_many(x)])
    ref = TFLMRunner(res.tflite_path.read_bytes()).predict_raw(x).reshape(raw.shape)
    np.testing.assert_array_equal(raw, ref)


def test_a_study_can_name_the_recipe(tmp_path):
    import yaml

    from edgeattack.study.spec import defense_recipes, load_study

    assert "structured" in defense_recipes()
    doc = {"recipes": ["ptq-int8", "structured"], "boards": ["emu-tflm"], "epochs": 2,
           "parts": {"defenses": {"n": 8, "eps": [0.1], "defenses": ["structured"],
                                  "chains": ["prune"]}}}
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    study = load_study(p)
    names = [a["name"] for a in study["parts"]["defenses"]["artifacts"]]
    assert names == ["ptq-int8", "structured", "structured", "structured+prune"]


@pytest.mark.parametrize("step, message", [
    ({"step": "structured", "kind": "toeplitz"}, "'kind' must be one of circulant, hadamard"),
    ({"step": "structured", "factors": 2}, "'factors' is for kind: hadamard"),
    ({"step": "structured", "kind": "hadamard", "block": 8}, "'block' is for kind: circulant"),
    ({"step": "structured", "block": 0}, "'block' must be >= 1"),
    ({"step": "structured", "kind": "hadamard", "factors": 9}, "'factors' must be <= 8"),
    ({"step": "structured", "epochs": -1}, "'epochs' must be >= 0"),
    ({"step": "structured", "layers": "dense"}, "'layers' must be a list of strings"),
])
def test_bad_parameters_are_one_line(step, message):
    from edgeattack.compression.recipe import load_recipe

    with pytest.raises(UsageError) as e:
        load_recipe([step])
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("layers, message", [
    (["nope"], "no layer named 'nope'"),
    (["CONV"], "layer 'CONV' is a Conv2D; only Dense layers"),
])
def test_bad_layers_are_one_line_and_write_nothing(layers, message, digits_model, tmp_path):
    from edgeattack.compression import compress
    from edgeattack.compression.pipeline import load_keras_model

    if layers == ["CONV"]:
        conv = next(l.name for l in load_keras_model(digits_model).layers
                    if type(l).__name__ == "Conv2D")
        layers, message = [conv], message.replace("CONV", conv)
    with pytest.raises(UsageError) as e:
        compress(digits_model, [{"step": "structured", "layers": layers}], tmp_path / "out",
                 progress=False)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()
