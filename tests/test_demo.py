"""The main job (`edgeattack demo`), cut down to one recipe and one emulated board."""
from __future__ import annotations

import json

from conftest import run_cli


def test_demo_small(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "-o", out, "--recipes", "ptq-int8", "--boards", "emu-tflm",
                   "--samples", "40", "--epochs", "25")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    row = summary["recipes"][0]
    assert row["recipe"] == "ptq-int8"
    assert row["float_accuracy"] >= 0.9 and row["tflm_accuracy"] >= 0.9
    board = row["boards"]["emu-tflm"]
    assert board["inferences_run"] == 40 + 1  # 40 records + 1 warm-up, nothing run twice
    assert board["accuracy"] >= 0.85
    assert (out / "ptq-int8" / "c" / "model_data.c").is_file()
    assert "| ptq-int8 |" in proc.stdout


def test_demo_bad_recipe_fails_before_training(tmp_path):
    proc = run_cli("demo", "-o", tmp_path / "d", "--recipes", "ptq-int8,nope")
    assert proc.returncode == 2
    assert "nope" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_make_demo_runs_the_default_study():
    """The README's main-job command is the default study (which ends with its report), not the
    older `edgeattack demo`."""
    from pathlib import Path

    from edgeattack.study.spec import load_study

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text().splitlines()
    start = makefile.index("demo: setup")
    recipe = [ln.strip() for ln in makefile[start + 1:] if ln.startswith("\t")][:1]
    assert recipe == ["$(VENV)/bin/edgeattack study default -o runs/default --force"]
    study = load_study("default")  # built in, on the embedded default
    assert study["dataset"] == "digits" and set(study["boards"]) == {"emu-tflm", "qemu-m4"}
