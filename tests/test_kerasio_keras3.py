"""Keras 3 models (TF 2.21's default `keras`) rebuilt as tf_keras models by keras_io.load_model."""
from __future__ import annotations

import numpy as np
import pytest

import edgeattack.tfutil as tu
from edgeattack.errors import UsageError
from edgeattack.keras_io import load_model


@pytest.fixture(scope="module")
def k3():
    tu.keras()  # TensorFlow first, with TF_USE_LEGACY_KERAS set, so tf.keras stays tf_keras
    import keras

    assert keras.__version__.startswith("3")
    return keras


@pytest.fixture(scope="module")
def tk():
    return tu.keras()


def _randomise(model, seed=1):
    """Non-default weights everywhere (BN statistics included), so the comparison proves that the
    weights were copied rather than re-initialised to the same defaults."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for w, v in zip(ws, layer.weights):
            r = rng.standard_normal(w.shape).astype(w.dtype) * 0.3
            # moving_variance must stay positive
            new.append(np.abs(r) + 0.5 if "variance" in v.path else r)
        layer.set_weights(new)


def _assert_same(src, model, seed=7):
    """Compare on inputs other than the loader's own check (it uses seed 0)."""
    rng = np.random.default_rng(seed)
    shapes = [[3] + list(t.shape[1:]) for t in src.inputs]
    xs = [rng.uniform(-1, 1, s).astype(np.float32) for s in shapes]
    feed = xs[0] if len(xs) == 1 else xs
    ref = src(feed, training=False)
    out = model(feed, training=False)
    ref = ref if isinstance(ref, (list, tuple)) else [ref]
    out = out if isinstance(out, (list, tuple)) else [out]
    assert len(ref) == len(out)
    for r, o in zip(ref, out):
        np.testing.assert_allclose(np.asarray(o), np.asarray(r), atol=1e-5, rtol=0)


def _sequential_cnn(k):
    return k.Sequential([
        k.Input((12, 12, 1)),
        k.layers.Conv2D(4, 3, padding="same", activation="relu"),
        k.layers.MaxPooling2D(2),
        k.layers.Conv2D(6, 3, activation="relu"),
        k.layers.Flatten(),
        k.layers.Dense(10),
        k.layers.Softmax(),
    ], name="seq_cnn")


def _residual(k):
    inp = k.Input((16, 16, 3))
    x = k.layers.ZeroPadding2D(1)(inp)
    x = k.layers.Conv2D(8, 3, use_bias=False, kernel_regularizer=k.regularizers.l2(1e-4))(x)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.Activation("relu")(x)
    y = k.layers.DepthwiseConv2D(3, padding="same")(x)
    y = k.layers.BatchNormalization()(y)
    x = k.layers.Add()([x, y])
    x = k.layers.ReLU(6.0)(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    x = k.layers.Dense(5)(x)
    out = k.layers.Softmax()(x)
    return k.Model(inp, out, name="residual")


def _nested_multi_output(k):
    # A Sequential submodel called twice: tf_keras and Keras 3 number its nodes differently.
    block = k.Sequential([k.Input((6,)), k.layers.Dense(6, activation="tanh")], name="block")
    inp = k.Input((6,))
    a = block(inp)
    b = block(k.layers.Dense(6)(inp))
    c = k.layers.Concatenate()([a, b])
    return k.Model(inp, [k.layers.Dense(3)(c), k.layers.Multiply()([a, b]), b], name="nested")


def _nested_functional(k):
    # A Functional submodel: both Kerases count its construction as node 0, unlike a Sequential's.
    sub_in = k.Input((5,))
    sub = k.Model(sub_in, k.layers.Dense(5, activation="relu")(sub_in), name="sub")
    inp = k.Input((5,))
    x = sub(sub(inp))
    return k.Model(inp, [k.layers.Subtract()([x, k.layers.Dense(5)(inp)]), x],
                   name="nested_functional")


@pytest.mark.parametrize("build", [_sequential_cnn, _residual, _nested_multi_output,
                                   _nested_functional])
@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_keras3_model_rebuilt_in_tf_keras(k3, tk, tmp_path, build, ext):
    src = build(k3)
    _randomise(src)
    path = tmp_path / f"m.{ext}"
    src.save(path)
    model = load_model(path)
    assert isinstance(model, tk.Model)
    assert model.name == src.name
    assert [l.name for l in model.layers if not isinstance(l, tk.layers.InputLayer)] == \
        [l.name for l in src.layers if type(l).__name__ != "InputLayer"]
    _assert_same(src, model)


def test_rebuilt_model_keeps_regularizer(k3, tk, tmp_path):
    src = _residual(k3)
    src.save(tmp_path / "r.keras")
    model = load_model(tmp_path / "r.keras")
    conv = model.get_layer(src.layers[2].name)
    assert isinstance(conv.kernel_regularizer, tk.regularizers.L2)
    assert conv.kernel_regularizer.l2 == pytest.approx(1e-4)


def test_rebuilt_model_accepted_by_tfmot(k3, tmp_path):
    """The reason for the rebuild: tfmot refuses Keras 3 models but takes the tf_keras one."""
    import tensorflow_model_optimization as tfmot

    src = _sequential_cnn(k3)
    src.save(tmp_path / "s.keras")
    q = tfmot.quantization.keras.quantize_model(load_model(tmp_path / "s.keras"))
    x = np.random.default_rng(0).uniform(0, 1, (2, 12, 12, 1)).astype(np.float32)
    assert q(x).shape == (2, 10)


def _expect_usage_error(path, *fragments):
    with pytest.raises(UsageError) as info:
        load_model(path)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg
    assert info.value.exit_code == 2
    return msg


def test_semantic_difference_is_caught(k3, tmp_path):
    # hard_sigmoid is relu6(x + 3) / 6 in Keras 3 but clip(0.2x + 0.5) in tf_keras: same name,
    # different function, which only the output comparison can see.
    src = k3.Sequential([k3.Input((5,)), k3.layers.Dense(4, activation="hard_sigmoid", name="hs")])
    src.save(tmp_path / "hs.keras")
    _expect_usage_error(tmp_path / "hs.keras", "differs", "'hs'", "re-save it with tf_keras")


def test_keras3_op_is_unsupported(k3, tmp_path):
    inp = k3.Input((4,))
    x = k3.layers.Dense(4)(inp)
    k3.Model(inp, x * 2.0).save(tmp_path / "op.keras")
    _expect_usage_error(tmp_path / "op.keras", "tensor operation", "re-save it with tf_keras")


def test_layer_without_tf_keras_equivalent(k3, tmp_path):
    src = k3.Sequential([k3.Input((4, 4, 2)), k3.layers.Resizing(2, 2, fill_mode="reflect",
                                                                  pad_to_aspect_ratio=True,
                                                                  name="rz")])
    src.save(tmp_path / "rz.keras")
    _expect_usage_error(tmp_path / "rz.keras", "'rz'", "re-save it with tf_keras")


def test_keras3_lambda_refused(k3, tmp_path):
    src = k3.Sequential([k3.Input((3,)), k3.layers.Lambda(lambda t: t * 2)])
    src.save(tmp_path / "lam.keras")
    _expect_usage_error(tmp_path / "lam.keras", "Python code", "safe_mode=False")


def test_keras3_custom_layer_unknown_to_loader(k3, tmp_path):
    @k3.saving.register_keras_serializable(package="kerasio_test")
    class Twice(k3.layers.Layer):
        def call(self, x):
            return x * 2

    src = k3.Sequential([k3.Input((3,)), Twice(name="twice")])
    src.save(tmp_path / "custom.keras")
    # Registered in this process, so Keras 3 loads it; tf_keras has no such layer.
    _expect_usage_error(tmp_path / "custom.keras", "'twice'", "re-save it with tf_keras")


def test_keras3_file_recognised_by_content(k3, tmp_path):
    src = _sequential_cnn(k3)
    src.save(tmp_path / "m.keras")
    (tmp_path / "m.keras").rename(tmp_path / "model.bin")
    _assert_same(src, load_model(tmp_path / "model.bin"))
