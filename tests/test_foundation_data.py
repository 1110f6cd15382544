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
