"""Datasets, zoo and the train command."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from edgeattack.datasets import load_dataset
from edgeattack.errors import UsageError


def test_digits_is_offline_fixed_split_in_unit_range():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.input_shape == (8, 8, 1) and a.classes == 10
    assert len(a.x_train) + len(a.x_test) == 1797
    assert a.x_train.dtype == np.float32 and 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    np.testing.assert_array_equal(a.x_test, b.x_test)  # same split every time
    assert set(np.unique(a.y_test)) == set(range(10))  # stratified


@pytest.mark.parametrize("spec,shape,classes", [("synthetic:32x32x3:10", (32, 32, 3), 10),
                                                ("synthetic:49x10x1:12:240", (49, 10, 1), 12)])
def test_synthetic_shapes_and_determinism(spec, shape, classes):
    d = load_dataset(spec)
    assert d.input_shape == shape and d.classes == classes
    np.testing.assert_array_equal(d.x_train, load_dataset(spec).x_train)
    # Learnable: class means differ far more than the noise of a mean over samples.
    m0 = d.x_train[d.y_train == 0].mean(0)
    m1 = d.x_train[d.y_train == 1].mean(0)
    assert np.abs(m0 - m1).mean() > 0.1


@pytest.mark.parametrize("spec", ["synthetic:0x3:2", "synthetic:axb:3", "nonsense", "synthetic:8x8x1:1"])
def test_bad_dataset_specs(spec):
    with pytest.raises(UsageError, match="--dataset"):
        load_dataset(spec)


def test_npz_dataset_used_as_given(tmp_path):
    rng = np.random.default_rng(1)
    f = tmp_path / "d.npz"
    np.savez(f, x_train=rng.random((20, 4, 4, 1)), y_train=np.arange(20) % 2,
             x_test=rng.random((6, 4, 4, 1)) * 255, y_test=np.arange(6) % 2)
    d = load_dataset(f)
    assert len(d.x_train) == 20 and len(d.x_test) == 6  # never re-split
    assert d.data_range[1] > 200  # range recorded as found, not rescaled


def test_offline_keras_dataset_error(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEATTACK_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(UsageError, match=r"mnist.*mnist\.npz"):
        load_dataset("mnist")


def test_zoo_builds_every_model_with_width():
    from edgeattack.zoo import ZOO, build_model

    for name, (shape, classes) in ZOO.items():
        full, half = build_model(name), build_model(name, width=0.5)
        assert tuple(full.input_shape[1:]) == shape and full.output_shape[-1] == classes
        assert half.count_params() < full.count_params()
    with pytest.raises(UsageError, match="unknown zoo model"):
        build_model("resnet9000")


def test_train_cli_digits_accuracy_and_outputs(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "--model", "cnn-digits", "--dataset", "digits", "-o", out, "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "train.json").read_text())
    assert meta["test_accuracy"] >= 0.95, meta
    assert meta["dataset"] == "digits" and meta["data_range"] == [0.0, 1.0]
    assert (out / "model.keras").stat().st_size > 0
    # No silent overwrite.
    again = run_cli("train", "-o", out)
    assert again.returncode == 2 and "--force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_train_cli_bad_inputs(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((4, 8, 8, 1)), y_train=np.zeros(4))
    proc = run_cli("train", "--dataset", bad, "-o", tmp_path / "o1")
    assert proc.returncode == 2 and "x_test" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o1").exists()
    proc = run_cli("train", "--model", "cnn-mnist", "--dataset", "digits", "--input-shape", "28x28x1",
                   "-o", tmp_path / "o2")
    assert proc.returncode == 2 and "does not fit" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o2").exists()


def test_image_folder_one_subfolder_per_class(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        for i in range(10):
            img = (rng.random((6, 5)) * 100 + 150 * c).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / name / f"{i}.png")
    d = load_dataset(tmp_path)
    assert d.classes == 2 and d.labels == ["cat", "dog"] and d.input_shape == (6, 5, 1)
    assert len(d.x_train) + len(d.x_test) == 20 and d.x_train.max() <= 1.0
    # the brighter class is "dog" (label 1)
    assert d.x_train[d.y_train == 1].mean() > d.x_train[d.y_train == 0].mean()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "dog" / "odd.png")
    with pytest.raises(UsageError, match="odd.png"):
        load_dataset(tmp_path)


def _small_npz(path, x_train=None):
    rng = np.random.default_rng(0)
    x = rng.random((40, 8, 8, 1)).astype(np.float32) if x_train is None else x_train
    np.savez(path, x_train=x, y_train=np.arange(40) % 2, x_test=rng.random((10, 8, 8, 1)),
             y_test=np.arange(10) % 2)
    return path


@pytest.mark.parametrize("content, words", [
    ("npy", ["a single .npy array", "x_train, y_train, x_test, y_test", "numpy.savez"]),
    ("text", ["not an .npz archive", "numpy.savez"]),
    ("empty", ["an empty file"]),
])
def test_npy_or_text_given_as_npz_is_one_clear_line(tmp_path, content, words):
    f = tmp_path / "data.npz"
    if content == "npy":
        with open(f, "wb") as fh:
            np.save(fh, np.zeros((4, 8, 8, 1)))
    else:
        f.write_text("x,y\n1,2\n" if content == "text" else "")
    with pytest.raises(UsageError) as e:
        load_dataset(f)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(f)) and "pickle" not in msg
    for w in words:
        assert w in msg, (w, msg)


def test_train_refuses_nan_or_npy_data_before_any_work(tmp_path):
    nan = np.random.default_rng(0).random((40, 8, 8, 1)).astype(np.float32)
    nan[3, 2, 2, 0] = np.nan
    bad = _small_npz(tmp_path / "nan.npz", nan)
    proc = run_cli("train", "--dataset", bad, "--epochs", "1", "-o", tmp_path / "o1")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"edgeattack: error: {bad}: x_train holds 1 NaN or "
                                                f"infinite value(s); remove or replace them (a model "
                                                f"trained on them is NaN)"]
    assert not (tmp_path / "o1").exists()
    npy = tmp_path / "arr.npz"
    with open(npy, "wb") as fh:
        np.save(fh, nan)
    proc = run_cli("train", "--dataset", npy, "--epochs", "1", "-o", tmp_path / "o2")
    assert proc.returncode == 2 and "a single .npy array" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "o2").exists()


def test_nan_in_a_python_dataset_refused_by_train_model(tmp_path):
    from edgeattack.datasets import Dataset
    from edgeattack.train import train_model

    x = np.zeros((20, 8, 8, 1), np.float32)
    x[0, 0, 0, 0] = np.inf
    d = Dataset("mine", x, np.arange(20) % 2, x[:4].copy() * 0, np.arange(4) % 2, 2)
    with pytest.raises(UsageError, match="mine: x_train holds 1 NaN or infinite"):
        train_model("cnn-digits", d, tmp_path / "o", epochs=1, progress=False)
    assert not (tmp_path / "o").exists()


def test_unwritable_output_refused_before_training(tmp_path):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "run"
    proc = run_cli("train", "--epochs", "1", "-o", out)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"edgeattack: error: {out}: cannot create the output, "
                                                f"{tmp_path / 'afile'} is a file, not a folder; choose "
                                                f"another -o"]
    with pytest.raises(UsageError, match="is a file, not a folder"):  # the Python API checks first too
        from edgeattack.train import train_model

        train_model("cnn-digits", "digits", out, epochs=1, progress=False)


def test_dataset_recorded_absolute_and_found_from_another_folder(tmp_path):
    """train.json records a dataset file by absolute path: `compress` run from another working
    directory (without --dataset) finds it."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _small_npz(tmp_path / "a" / "data.npz")
    proc = run_cli("train", "--dataset", "data.npz", "--epochs", "1", "-o", "run", "--json",
                   cwd=tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "a" / "run" / "train.json").read_text())
    assert meta["dataset"] == str(tmp_path / "a" / "data.npz")
    assert json.loads(proc.stdout) == meta  # --json: stdout is exactly train.json
    proc = run_cli("compress", "../a/run/model.keras", "--recipe", "ptq-int8", "-o", "c", "--json",
                   cwd=tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "b" / "c" / "manifest.json").read_text())
    assert json.loads(proc.stdout) == m  # --json: stdout is exactly manifest.json
    assert m["dataset"]["name"] == str(tmp_path / "a" / "data.npz") and m["dataset"]["test"] == 10


def test_relative_dataset_of_an_older_train_json_is_resolved_or_named(tmp_path):
    from edgeattack.compression.pipeline import compress

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_text("not read: the dataset is checked first")
    (run / "train.json").write_text(json.dumps({"dataset": "gone/data.npz"}))
    with pytest.raises(UsageError, match=r"records dataset gone/data.npz.*neither here nor beside "
                                         r"the model; pass --dataset"):
        compress(run / "model.keras", "ptq-int8", tmp_path / "o", progress=False)
    _small_npz(run / "data.npz")
    (run / "train.json").write_text(json.dumps({"dataset": "data.npz"}))  # beside the model: found,
    with pytest.raises(UsageError, match="not a Keras model"):  # so the model is what fails next
        compress(run / "model.keras", "ptq-int8", tmp_path / "o", progress=False)
