"""What a session sends, checked before anything is sent: non-finite inputs refused, inputs outside
the model's data range and labels outside its classes warned about, a dataset's test split taken
directly (--dataset NAME -n N), and --json printing session.json."""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from conftest import run_cli
from edgeattack.errors import UsageError
from edgeattack.results import read_results
from edgeattack.session import load_dataset_inputs, run_session

from test_session_runner import no_orphans  # noqa: F401 - the autouse orphan check


@pytest.fixture
def model(tiny_tflite, tmp_path):
    path = tmp_path / "model.tflite"
    shutil.copy(tiny_tflite, path)
    return path


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_refused_naming_file_and_index(bad, model, tiny_dataset, tmp_path):
    _, _, x_test, y_test = tiny_dataset
    x = x_test[:6].copy()
    x[4, 2, 3, 0] = bad
    path = npz(tmp_path / "clean.npz", x=x, y=y_test[:6], ids=np.arange(10, 16))
    with pytest.raises(UsageError) as err:
        run_session("emu-tflm", model, path, out=tmp_path / "RUN", progress=False)
    msg = str(err.value)
    assert str(path) in msg and "[4, 2, 3, 0]" in msg and "sample id 14" in msg and "\n" not in msg
    assert not (tmp_path / "RUN").exists()  # refused before any board started or file was written
    # adversarial files too (x_adv is E x N x sample)
    x_adv = np.stack([x_test[:6], x]).astype(np.float32)
    adv = npz(tmp_path / "adv.npz", x_adv=x_adv, eps=np.float32([0.1, 0.2]), y=y_test[:6],
              meta=np.array(json.dumps({"attack": "fgsm"})))
    with pytest.raises(UsageError, match=r"adv.npz: 'x_adv' holds .* at index \[1, 4, 2, 3, 0\]"):
        run_session("emu-tflm", model, adversarial=[adv], out=tmp_path / "RUN", progress=False)
    # and the CLI says it in one line, exit 2, without numpy warnings
    proc = run_cli("session", "--board", "emu-tflm", "--model", model, "--inputs", path, "-o", tmp_path / "C")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "[4, 2, 3, 0]" in proc.stderr and "Warning" not in proc.stderr


def test_inputs_outside_the_data_range_and_foreign_labels_warn(model, tiny_dataset, tmp_path, caplog):
    _, _, x_test, y_test = tiny_dataset
    y = y_test[:8].copy()
    y[:3] = 12  # the model has 10 classes
    fine = npz(tmp_path / "fine.npz", x=x_test[:8], y=y_test[:8])
    scaled = npz(tmp_path / "x255.npz", x=x_test[:8] * 255, y=y)  # 0-255 images for a [0, 1] model
    with caplog.at_level(logging.WARNING, logger="edgeattack.session"):
        run_session("emu-tflm", model, fine, out=tmp_path / "A", progress=False)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="edgeattack.session"):
        s = run_session("emu-tflm", model, scaled, out=tmp_path / "B", progress=False)
    text = [r.getMessage() for r in caplog.records]
    assert len(text) == 2 and all("\n" not in t for t in text)
    # no manifest: the range the int8 input quantization represents (scale 1/255, zero point -128)
    assert "x255.npz" in text[0] and "outside the model's data range [0, 1]" in text[0]
    assert "input quantization" in text[0]
    assert "3 labels lie outside the model's 10 classes" in text[1]
    assert s["status"] == "complete"  # a warning, not a refusal

    # a manifest beside the model (compress writes one) gives the recorded data range
    (tmp_path / "manifest.json").write_text(json.dumps({
        "data_range": [0.0, 0.5], "dataset": {"classes": 10},
        "files": {"model.tflite": model.stat().st_size}}))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgeattack.session"):
        run_session("emu-tflm", model, fine, out=tmp_path / "C", progress=False)
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "[0, 0.5]" in msg and "manifest.json" in msg


def test_dataset_test_split_directly_and_json_summary(model, tmp_path):
    """--dataset NAME -n N sends the test split's first N (or N seeded) samples; --json prints
    session.json as one JSON object."""
    out = tmp_path / "RUN"
    proc = run_cli("session", "--board", "emu-tflm", "--model", model, "--dataset", "synthetic:8x8x1:10",
                   "-n", "15", "--no-progress", "--json", "-o", out)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary == json.loads((out / "session.json").read_text())
    assert summary["counts"]["records"] == 15 and summary["time_source"] == "host-wall"
    assert "synthetic:8x8x1:10" in summary["inputs"][0]["path"]
    records = read_results(out)
    first = load_dataset_inputs("synthetic:8x8x1:10", 15)
    assert [r["id"] for r in records] == list(range(15))
    assert [r["label"] for r in records] == first.y.tolist()
    seeded = load_dataset_inputs("synthetic:8x8x1:10", 15, seed=4)
    assert seeded.ids.tolist() != list(range(15))
    assert seeded.ids.tolist() == load_dataset_inputs("synthetic:8x8x1:10", 15, seed=4).ids.tolist()
    assert seeded.sha256 == load_dataset_inputs("synthetic:8x8x1:10", 15, seed=4).sha256 != first.sha256
    with pytest.raises(UsageError, match="has .* samples; give 1"):
        load_dataset_inputs("synthetic:8x8x1:10", 10 ** 6)
    with pytest.raises(UsageError, match="not both"):
        run_session("emu-tflm", model, tmp_path / "x.npz", dataset="digits", out=tmp_path / "X")
