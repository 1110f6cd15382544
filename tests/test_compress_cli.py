"""The compress command as a user runs it: one success, and bad input that must fail with one clear
line on stderr, exit 1 or 2, and nothing written."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli

pytest_plugins = ["fixtures_compress"]


def _assert_clean_failure(proc, out, *words):
    assert proc.returncode in (1, 2), (proc.returncode, proc.stdout, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgeattack: error: "), lines
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    if out is not None:
        assert not out.exists() or out.is_dir() and out.name == "existing"
        parent = out.parent
        assert not [p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_cli_compress_writes_model_tflite_and_manifest(digits_model, tmp_path):
    out = tmp_path / "cli-ptq"
    proc = run_cli("compress", digits_model, "--recipe", "ptq-int8", "-o", out, "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.keras", "model.tflite"]
    m = json.loads((out / "manifest.json").read_text())
    assert m["seed"] == 1 and m["dataset"]["name"] == "digits"  # dataset from train.json
    assert "ptq-int8: float" in proc.stdout and "TFLM" in proc.stdout
    assert "ptq-int8" in proc.stderr and "->" in proc.stderr  # the per-step accuracy line


def test_cli_not_a_model(tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_text("not a model")
    out = tmp_path / "o"
    proc = run_cli("compress", bad, "--recipe", "ptq-int8", "--dataset", "digits", "-o", out)
    _assert_clean_failure(proc, out, str(bad), "not a Keras model")


def test_cli_unknown_recipe(digits_model, tmp_path):
    out = tmp_path / "o"
    proc = run_cli("compress", digits_model, "--recipe", "ptq-int4", "-o", out)
    _assert_clean_failure(proc, out, "ptq-int4", "unknown recipe", "ptq-int8")
    assert proc.returncode == 2


def test_cli_step_parameter_of_wrong_type(digits_model, tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("- step: distill\n  width: 0.5\n- step: prune\n  target_sparsity: lots\n")
    out = tmp_path / "o"
    proc = run_cli("compress", digits_model, "--recipe", recipe, "-o", out)
    _assert_clean_failure(proc, out, str(recipe), "step 2 (prune)", "'target_sparsity'", "a number")
    assert proc.returncode == 2


@pytest.mark.parametrize("text, words", [
    ("- step: prune\n  target_sparsity: .nan\n", ["'target_sparsity'", "finite"]),
    ("- step: prune\n  lr: .inf\n", ["'lr'", "finite"]),
    ("- step: prune\n  epochs: 1\n  epochs: 5\n", ["line 3", "duplicate key 'epochs'"]),
])
def test_cli_non_finite_or_repeated_recipe_values(digits_model, tmp_path, text, words):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(text)
    out = tmp_path / "o"
    proc = run_cli("compress", digits_model, "--recipe", recipe, "-o", out)
    _assert_clean_failure(proc, out, str(recipe), *words)
    assert proc.returncode == 2


def test_cli_dataset_npz_missing_a_key(digits_model, tmp_path):
    npz = tmp_path / "data.npz"
    np.savez(npz, x_train=np.zeros((4, 8, 8, 1), np.float32), y_train=np.zeros(4, np.int64),
             x_test=np.zeros((2, 8, 8, 1), np.float32))
    out = tmp_path / "o"
    proc = run_cli("compress", digits_model, "--recipe", "ptq-int8", "--dataset", npz, "-o", out)
    _assert_clean_failure(proc, out, str(npz), "y_test")


def test_cli_input_shape_does_not_fit_dataset(digits_model, tmp_path):
    out = tmp_path / "o"
    proc = run_cli("compress", digits_model, "--recipe", "ptq-int8", "--dataset",
                   "synthetic:16x16x1:10:100", "-o", out)
    _assert_clean_failure(proc, out, "input shape (8, 8, 1)", "(16, 16, 1)", "--dataset")


def test_cli_refuses_existing_output_without_force(digits_model, tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = run_cli("compress", digits_model, "--recipe", "ptq-int8", "-o", out)
    _assert_clean_failure(proc, out, str(out), "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"


def test_cli_unwritable_output_refused_before_the_work(digits_model, tmp_path):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "o"
    proc = run_cli("compress", digits_model, "--recipe", "ptq-int8", "-o", out)
    _assert_clean_failure(proc, None, str(out), "is a file, not a folder", "choose another -o")
    assert proc.returncode == 2
    assert "ptq-int8" not in proc.stderr  # no step ran
