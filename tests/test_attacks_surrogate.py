"""The int8 surrogate (attacks/surrogate.py) against TFLM's own interpreter: same int8 outputs and
classes on clean data for the zoo models and the full-integer recipes, gradients that point uphill,
and one-line errors for what it cannot reproduce. Small models and few samples; the full matrix is
tools/bench_surrogate.py."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgeattack.errors import UsageError

pytest_plugins = ["fixtures_compress"]

# Full-integer recipes on cnn-digits, as (name, recipe). `prune` and `pqat` are the built-in recipes
# and `cluster` and `lowrank` the specs the transfer and compress-pipeline tests use: compress_digits
# shares those artifacts across modules. The others have their training shortened (the surrogate's
# fidelity is about the converted arithmetic, not about accuracy).
SHORT = {"batch_size": 512}
RECIPES = {
    "prune": ("prune", "prune"),
    "pqat": ("pqat", "pqat"),
    "cluster": ("cluster", [{"step": "cluster", "clusters": 16, "epochs": 1}, {"step": "ptq-int8"}]),
    "lowrank": ("lowrank", [{"step": "lowrank", "energy": 0.9, "epochs": 3}]),
    **{name: (f"sur-{name}", [{"step": name, **SHORT, **epochs}, {"step": "ptq-int8", "samples": 50}])
       for name, epochs in {
           "qat": {"epochs": 1}, "cqat": {"cluster_epochs": 1, "epochs": 1},
           "pcqat": {"prune_epochs": 1, "cluster_epochs": 1, "epochs": 1},
           "distill": {"epochs": 1}}.items()},
}

# Reduced zoo models (half width), untrained, converted by the ptq-int8 path with random calibration.
ZOO_SHAPES = {"cnn-mnist": (28, 28, 1), "resnet8": (32, 32, 3), "dscnn": (49, 10, 1),
              "mobilenet-tiny": (32, 32, 3)}


def fidelity(model_bytes, x):
    """(surrogate, TFLM int8 outputs, class agreement, histogram of |LSB difference|)."""
    from edgeattack.attacks.surrogate import Int8Surrogate
    from edgeattack.tflite.runtimes import TFLMRunner

    s = Int8Surrogate(model_bytes)
    ours = s.int8_output(x)
    ref = TFLMRunner(model_bytes).predict_raw(x).reshape(len(x), -1)
    diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
    agree = float(np.mean(ours.argmax(1) == ref.argmax(1)))
    hist = np.bincount(diff.ravel(), minlength=2)
    print(f"agreement {agree:.4f}, |diff| histogram {hist.tolist()}")
    return s, ours, ref, agree, hist


def assert_faithful(agree, hist):
    assert agree >= 0.995, agree
    assert hist[:2].sum() >= 0.99 * hist.sum(), hist.tolist()


def test_tiny_model_matches_tflm_bit_for_bit(tiny_tflite, tiny_dataset):
    x = tiny_dataset[2]
    s, ours, ref, agree, hist = fidelity(tiny_tflite.read_bytes(), x)
    assert_faithful(agree, hist)
    assert np.array_equal(ours, ref)  # every reproduced kernel is exact on this model
    assert ours.dtype == np.int8 and ours.shape == (len(x), 10)
    assert np.array_equal(s.predict(x), ref.argmax(1))
    assert s.input_shape == (8, 8, 1) and s.num_classes == 10 and s.ends_in_softmax
    lo, hi = s.data_range
    assert lo <= 0.0 < 1.0 <= hi + s.input_scale


def test_cnn_digits_ptq_int8_matches_tflm(digits_ptq):
    from edgeattack.datasets import load_dataset
    from edgeattack.quant import quantize_input

    x = load_dataset("digits").x_test
    data = digits_ptq.tflite_path.read_bytes()
    s, ours, ref, agree, hist = fidelity(data, x)
    assert_faithful(agree, hist)
    from edgeattack.fileid import sha256_file

    assert s.model_sha256 == sha256_file(digits_ptq.tflite_path)
    # int8 inputs are taken as already quantized
    q = quantize_input(x[:20], s.input_scale, s.input_zero_point)
    assert np.array_equal(s.int8_output(q), ours[:20])


def test_gradients_point_uphill_and_work_in_tf_function(digits_ptq):
    from edgeattack.attacks.surrogate import Int8Surrogate
    from edgeattack.datasets import load_dataset
    from edgeattack.tfutil import tf

    t = tf()
    d = load_dataset("digits")
    x, y = d.x_test[:100], d.y_test[:100]
    s = Int8Surrogate(digits_ptq.tflite_path)

    def loss_fn(xb):
        return t.nn.sparse_softmax_cross_entropy_with_logits(y, s.logits(xb))

    @t.function
    def grad(xb):
        with t.GradientTape() as tape:
            tape.watch(xb)
            loss = loss_fn(xb)
        return loss, tape.gradient(loss, xb)

    xt = t.constant(x)
    loss0, g = grad(xt)
    g = g.numpy()
    assert np.all(np.isfinite(g)) and np.mean(np.abs(g).reshape(len(x), -1).max(1) > 0) == 1.0
    # compiled and eager logits are the same numbers
    assert np.array_equal(t.function(s.logits)(xt).numpy(), s.logits(xt).numpy())
    x_adv = np.clip(x + 0.05 * np.sign(g), 0, 1).astype(np.float32)
    loss1 = loss_fn(t.constant(x_adv)).numpy()
    up = float(np.mean(loss1 > loss0.numpy()))
    assert up >= 0.8, up
    # the logits are the dequantized input of the final SOFTMAX: their argmax is the prediction
    assert np.mean(s.logits(xt).numpy().argmax(1) == s.predict(x)) >= 0.99


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_full_integer_recipes_on_cnn_digits_match_tflm(recipe, digits_model, tmp_path_factory):
    from fixtures_compress import compress_digits

    from edgeattack.datasets import load_dataset

    res = compress_digits(digits_model, tmp_path_factory, *RECIPES[recipe])
    x = load_dataset("digits").x_test[:120]
    *_, agree, hist = fidelity(res.tflite_path.read_bytes(), x)
    assert_faithful(agree, hist)


@pytest.mark.parametrize("recipe", ["dynamic-range", "float16"])
def test_non_integer_recipes_are_refused_in_one_line(recipe, digits_model, tmp_path_factory):
    from fixtures_compress import compress_digits

    from edgeattack.attacks.surrogate import Int8Surrogate

    res = compress_digits(digits_model, tmp_path_factory, f"sur-{recipe}", recipe)
    with pytest.raises(UsageError) as e:
        Int8Surrogate(res.tflite_path)
    msg = str(e.value)
    assert "\n" not in msg and str(res.tflite_path) in msg and "full-integer int8" in msg, msg


@pytest.mark.slow
@pytest.mark.parametrize("zoo", sorted(ZOO_SHAPES))
def test_zoo_models_ptq_int8_match_tflm(zoo):
    from edgeattack.compression.convert import to_tflite
    from edgeattack.tfutil import set_seed
    from edgeattack.zoo import build_model

    set_seed(0)
    rng = np.random.default_rng(0)
    shape = ZOO_SHAPES[zoo]
    model = build_model(zoo, width=0.5)  # untrained: random weights, random calibration
    data = to_tflite(model, "int8", rng.random((16, *shape), dtype=np.float32))
    x = rng.random((24, *shape), dtype=np.float32)
    *_, agree, hist = fidelity(data, x)
    assert_faithful(agree, hist)


def _convert(keras_layers, shape, tmp_path, name):
    from edgeattack.compression.convert import to_tflite
    from edgeattack.tfutil import keras

    k = keras()
    inp = k.Input(shape)
    x = inp
    for layer in keras_layers(k):
        x = layer(x) if not isinstance(layer, tuple) else layer[0]([x, layer[1](x)])
    path = tmp_path / name
    path.write_bytes(to_tflite(k.Model(inp, x), "int8", np.random.default_rng(0).random((8, *shape),
                                                                                         dtype=np.float32)))
    return path


@pytest.mark.parametrize("op, layers", [
    ("TANH", lambda k: [k.layers.Dense(8, activation="tanh"), k.layers.Dense(4)]),
    ("CONCATENATION", lambda k: [k.layers.Dense(8), (k.layers.Concatenate(), k.layers.Dense(8))]),
])
def test_unsupported_operator_is_one_line_naming_it(op, layers, tmp_path):
    from edgeattack.attacks.surrogate import Int8Surrogate

    path = _convert(layers, (6,), tmp_path, f"{op.lower()}.tflite")
    with pytest.raises(UsageError) as e:
        Int8Surrogate(path)
    msg = str(e.value)
    assert "\n" not in msg and op in msg and str(path) in msg, msg


def test_importing_the_package_does_not_import_tensorflow():
    code = "import sys, edgeattack.attacks; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_depthwise_with_unequal_strides_matches_tflm(tmp_path):
    # TF's depthwise kernel refuses unequal strides: the surrogate runs stride 1 with TFLM's padding
    path = _convert(lambda k: [k.layers.DepthwiseConv2D((3, 2), strides=(2, 1), padding="same",
                                                        depth_multiplier=2),
                               k.layers.Flatten(), k.layers.Dense(4)], (11, 9, 3), tmp_path, "dw.tflite")
    x = np.random.default_rng(1).random((30, 11, 9, 3), dtype=np.float32)
    s, ours, ref, agree, hist = fidelity(path.read_bytes(), x)
    assert np.array_equal(ours, ref) and not s.ends_in_softmax
