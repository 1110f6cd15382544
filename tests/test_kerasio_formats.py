"""keras_io.load_model on tf_keras formats, SavedModel folders and things that are not models."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import edgeattack.tfutil as tu
from edgeattack.errors import UsageError
from edgeattack.keras_io import load_model

NOT_A_MODEL = "give a .keras, .h5 or SavedModel folder"


@pytest.fixture(scope="module")
def tk():
    return tu.keras()


@pytest.fixture(scope="module")
def tk_model(tk):
    tu.set_seed(0)
    inp = tk.Input((6, 6, 2))
    x = tk.layers.Conv2D(3, 3, activation="relu")(inp)
    x = tk.layers.BatchNormalization()(x)
    x = tk.layers.Flatten()(x)
    out = tk.layers.Dense(4, activation="softmax")(x)
    model = tk.Model(inp, out, name="tkm")
    bn = model.layers[2]
    # non-default statistics, so a load that dropped them would be visible
    bn.set_weights([w + 0.5 for w in bn.get_weights()])
    model.compile("adam", "categorical_crossentropy")  # saved with an optimizer; loaded without
    return model


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(3).uniform(0, 1, (3, 6, 6, 2)).astype(np.float32)


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "saved_model_dir"])
def test_tf_keras_round_trip(tk, tk_model, x, tmp_path, name):
    path = tmp_path / name
    if name.endswith("_dir"):
        tk_model.save(path, save_format="tf")
    else:
        tk_model.save(path)
    model = load_model(path)
    assert isinstance(model, tk.Model)
    assert model.compiled_loss is None  # loaded with compile=False
    np.testing.assert_array_equal(model(x).numpy(), tk_model(x).numpy())


@pytest.mark.parametrize("saved_as", ["m.keras", "m.h5"])
def test_extension_does_not_decide_the_format(tk, tk_model, x, tmp_path, saved_as):
    # a model file under a name that does not say its format is recognised by its content
    tk_model.save(tmp_path / saved_as)
    os.rename(tmp_path / saved_as, tmp_path / "model.bin")
    np.testing.assert_array_equal(load_model(tmp_path / "model.bin")(x).numpy(),
                                  tk_model(x).numpy())


def _usage_error(path) -> str:
    with pytest.raises(UsageError) as info:
        load_model(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: "), msg
    assert "\n" not in msg
    assert info.value.exit_code == 2
    return msg


def _not_a_model(path):
    msg = _usage_error(path)
    assert msg.startswith(f"{path}: not a Keras model ("), msg
    assert msg.endswith(NOT_A_MODEL), msg
    return msg


def test_missing_path(tmp_path):
    assert "no such file" in _not_a_model(tmp_path / "nope.keras")


def test_text_file(tmp_path):
    p = tmp_path / "model.keras"
    p.write_text("this is not a model\n")
    _not_a_model(p)


def test_truncated_keras_zip(tk_model, tmp_path):
    good = tmp_path / "good.keras"
    tk_model.save(good)
    data = good.read_bytes()
    p = tmp_path / "cut.keras"
    p.write_bytes(data[: len(data) // 2])
    assert "truncated" in _not_a_model(p)


def test_zip_without_config(tmp_path):
    p = tmp_path / "other.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("readme.txt", "hello")
    assert "config.json" in _not_a_model(p)


def test_truncated_h5(tk_model, tmp_path):
    good = tmp_path / "good.h5"
    tk_model.save(good)
    p = tmp_path / "cut.h5"
    p.write_bytes(good.read_bytes()[:4096])
    _not_a_model(p)


def test_weights_only_h5(tk_model, tmp_path):
    p = tmp_path / "w.weights.h5"
    tk_model.save_weights(p)
    assert "weights" in _not_a_model(p)


def test_folder_without_saved_model(tmp_path):
    (tmp_path / "d").mkdir()
    assert "saved_model.pb" in _not_a_model(tmp_path / "d")


def test_bare_saved_model(tk, tmp_path):
    # What Keras 3's model.export() and tf.saved_model.save write: no Keras metadata to rebuild from.
    tf = tu.tf()

    class Double(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def __call__(self, t):
            return 2 * t

    tf.saved_model.save(Double(), str(tmp_path / "bare"))
    msg = _usage_error(tmp_path / "bare")
    assert "without Keras metadata" in msg and ".keras" in msg


def test_lambda_h5_refused_unless_trusted(tk, tmp_path):
    # tf_keras's own safe mode covers only .keras; an .h5 Lambda would run its bytecode on load.
    model = tk.Sequential([tk.Input((3,)), tk.layers.Lambda(lambda t: t * 3)])
    p = tmp_path / "lam.h5"
    model.save(p)
    msg = _usage_error(p)
    assert "Python code" in msg and "safe_mode=False" in msg
    trusted = load_model(p, safe_mode=False)
    np.testing.assert_allclose(trusted(np.ones((1, 3), np.float32)).numpy(), 3.0)


def test_import_does_not_load_tensorflow():
    code = ("import sys, edgeattack.keras_io; "
            "bad = [m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
