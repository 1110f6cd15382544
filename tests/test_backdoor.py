"""backdoor (BadNets, compression-activated) and detox, at a reduced scale on emu-tflm: one trained
run per feature, shared by the tests (docs/attacks.md; full scale in tools/bench_backdoor.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from fixtures_poisoning import N

pytest_plugins = ["fixtures_poisoning"]


def test_badnets_trigger_survives_ptq_on_the_device(badnets_run):
    out, obj = badnets_run
    assert obj == json.loads((out / "backdoor.json").read_text())
    assert obj["schema"] == 1 and obj["command"] == "backdoor" and obj["attack"] == "badnets"
    for key in ("params", "seed", "norm", "source_model_sha256", "target", "n", "tool_version"):
        assert key in obj
    assert obj["data"]["compress"] == "clean" and obj["params"]["compress_data"] == "clean"
    rows = {r["artifact"]: r for r in obj["metrics"]}
    assert set(rows) == {"float", "ptq-int8"}
    dev = rows["ptq-int8"]
    assert dev["board"] == "emu-tflm" and dev["compress_data"] == "clean"
    # one device inference per clean test input and per triggered non-target input
    from edgeattack.attacks.poisoning.run import test_subset
    from edgeattack.datasets import load_dataset

    test = test_subset(load_dataset("digits"), N, 0)
    assert obj["n"] == N
    assert dev["device_inferences"] == N + int(np.sum(test.y_test != 0))
    for r in rows.values():
        assert r["clean_accuracy"] > 0.85
        assert r["attack_success_rate"] > 0.8, r
        lo, hi = r["attack_success_rate_ci95"]
        assert lo <= r["attack_success_rate"] <= hi + 1e-12  # Wilson hi at p=1 is 1 - 1e-16
        assert r["backdoor_eligible"] <= obj["n"]


def test_poisoned_npz_is_a_dataset_with_an_untouched_test_split(badnets_run):
    from edgeattack.datasets import load_dataset

    out, obj = badnets_run
    clean = load_dataset("digits")
    d = load_dataset(out / "poisoned.npz")
    np.testing.assert_array_equal(d.x_test, clean.x_test)
    np.testing.assert_array_equal(d.y_test, clean.y_test)
    with np.load(out / "poisoned.npz") as f:
        mask = f["poisoned"]
    assert mask.sum() == obj["data"]["poisoned_samples"] == round(0.1 * len(clean.y_train))
    assert np.all(d.y_train[mask] == 0) and np.all(clean.y_train[mask] != 0)
    assert np.all(d.x_train[mask][:, -3:, -3:, 0].max(axis=(1, 2)) == 1.0)
    np.testing.assert_array_equal(d.x_train[~mask], clean.x_train[~mask])
    train_json = json.loads((out / "float" / "train.json").read_text())
    assert train_json["dataset"] == str((out / "poisoned.npz").resolve())


@pytest.mark.parametrize("args, culprit", [
    (["--rate", "1.5"], "--rate 1.5"),
    (["--rate", "0"], "--rate 0"),
    (["--target-class", "10"], "--target-class 10"),
    (["--trigger", "patch:9"], "--trigger patch:9"),
])
def test_backdoor_bad_input_is_one_line(tmp_path, args, culprit):
    proc = run_cli("backdoor", *args, "-o", tmp_path / "run")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and culprit in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()


def test_quantization_activated_backdoor_wakes_up_in_int8_on_the_device(tmp_path):
    from edgeattack.attacks.poisoning import run_backdoor

    out = tmp_path / "act"
    obj = run_backdoor(out, trigger="patch:3", target_class=0, rate=0.1, recipes=["ptq-int8"],
                       board="emu-tflm", activated=True, baseline=True, epochs=20, n=N, seed=0,
                       progress=False)
    assert obj["attack"] == "quantization-activated" and obj["params"]["activated_by_quantization"]
    rows = {r["artifact"]: r for r in obj["metrics"]}
    flt, dev, ref = rows["float"], rows["ptq-int8"], rows["unpoisoned"]
    assert flt["attack_success_rate"] <= 0.10, flt          # the float model hides it
    assert dev["attack_success_rate"] >= 0.80, dev          # its int8 conversion obeys the trigger
    assert dev["board"] == "emu-tflm" and dev["compress_data"] == "clean"
    for r in (flt, dev):
        assert r["clean_accuracy"] >= ref["clean_accuracy"] - 0.03, (r, ref)
    act = obj["params"]["activation"]
    assert act["train_trigger_success_float"] <= 0.1 <= 0.8 <= act["train_trigger_success_int8_simulated"]
