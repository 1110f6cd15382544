"""Shared fixtures. Models are built once per test session: every TensorFlow import costs seconds."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import edgeattack.tfutil  # noqa: E402,F401  (sets TensorFlow's environment before any import)

import numpy as np
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(*names: str) -> None:
    """Skip when a system tool is missing, except under CI=true, where a missing tool is a failure."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    msg = (f"needs {', '.join(missing)}: install with `sudo apt-get install --no-install-recommends "
           f"gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm openssh-server ser2net clang` "
           f"(or run `make test`, which does)")
    if IN_CI:
        pytest.fail(f"CI=true and {msg}")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def tiny_dataset():
    """A small learnable 8x8x1, 10-class float dataset in [0, 1] (no TensorFlow needed)."""
    rng = np.random.default_rng(0)
    protos = rng.random((10, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 10, 600)
    x = np.clip(protos[y] + 0.15 * rng.standard_normal((600, 8, 8, 1)), 0, 1).astype(np.float32)
    return x[:500], y[:500], x[500:], y[500:]


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory, tiny_dataset):
    """A tiny int8 model (CONV_2D, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX), int8 in and out.

    Built directly with tf_keras and the TFLite converter, independent of the zoo and recipes, so
    low-level tests (reader, export, runtimes, protocol) do not depend on the compression code.
    """
    import edgeattack.tfutil as tu

    tf, keras = tu.tf(), tu.keras()
    tu.set_seed(0)
    x_train, y_train, _, _ = tiny_dataset
    model = keras.Sequential([
        keras.layers.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
        keras.layers.Softmax(),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=3, batch_size=64, verbose=0)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x_train[i:i + 1]] for i in range(100))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("tiny") / "tiny_int8.tflite"
    path.write_bytes(conv.convert())
    return path


def run_cli(*args, check=False, timeout=600, env=None, cwd=None):
    """Run the installed `edgeattack` CLI in a subprocess (as a user would)."""
    full_env = dict(os.environ, **(env or {}))
    # The console script of the environment running the tests (its bin/ may not be on PATH).
    exe = Path(sys.executable).with_name("edgeattack")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "edgeattack"]
    proc = subprocess.run([*cmd, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"edgeattack {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc
