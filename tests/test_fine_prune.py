"""fine-prune: on the BadNets digits model (fixtures_poisoning, reduced scale) the int8 artifact's
backdoor success on emu-tflm falls by >= 50 points with clean accuracy within 3 points of plain
ptq-int8; the least active channels on the clean data are the ones removed; no clean data and bad
parameters are one line."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgeattack.errors import UsageError

pytest_plugins = ["fixtures_poisoning"]


def test_fine_prune_removes_the_backdoor_on_the_device(badnets_run, tmp_path):
    import edgeattack.defenses  # noqa: F401  (registers the defense steps)
    from edgeattack.attacks.poisoning.run import judge_backdoor, test_subset
    from edgeattack.attacks.poisoning.triggers import parse_trigger
    from edgeattack.compression import compress
    from edgeattack.datasets import load_dataset
    from fixtures_poisoning import N

    out, obj = badnets_run
    base = {r["artifact"]: r for r in obj["metrics"]}["ptq-int8"]
    assert base["attack_success_rate"] >= 0.8  # the backdoor is there to remove
    res = compress(out / "float" / "model.keras", [{"step": "fine-prune", "clean_data": 0.3,
                                                    "epochs": 20}, {"step": "ptq-int8"}],
                   tmp_path / "fp", dataset="digits", seed=0, progress=False)
    step = res.manifest["steps"][0]
    assert step["details"]["labels"] == "the training split's" and step["details"]["samples"] == 431
    # the default layers: the last conv and the hidden dense layer, half their channels each
    assert [(s["channels_before"], s["channels_after"]) for s in step["details"]["spaces"]] == \
        [(32, 16), (64, 32)]
    for space, (probe, acts) in zip(step["details"]["spaces"], step["details"]["probes"].items()):
        acts = np.asarray(acts)
        assert acts[space["removed"]].max() <= acts[space["kept"]].min()  # the dormant ones went
    clean = load_dataset("digits")
    trig = parse_trigger("patch:3", clean.input_shape, data_range=clean.data_range)
    (row,) = judge_backdoor([("fine-prune", res.tflite_path)], test_subset(clean, N, 0), trig, 0,
                            "emu-tflm", None, False)
    assert base["attack_success_rate"] - row["attack_success_rate"] >= 0.5, (base, row)
    assert row["clean_accuracy"] >= base["clean_accuracy"] - 0.03, (base, row)


def test_fine_prune_without_clean_data_is_one_line(badnets_run, tmp_path):
    out, _ = badnets_run
    r = subprocess.run([sys.executable, "-m", "edgeattack", "compress", str(out / "float" / "model.keras"),
                        "--recipe", "fine-prune", "-o", str(tmp_path / "fp")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "needs the defender's clean data" in lines[0] and "--clean-data" in lines[0]
    assert not (tmp_path / "fp").exists()


@pytest.mark.parametrize("step, message", [
    ({"step": "fine-prune", "clean_data": 0.3, "ratio": 1.0}, "'ratio' must be < 1"),
    ({"step": "fine-prune", "clean_data": 0.3, "ratio": 0}, "'ratio' must be in (0, 1)"),
    ({"step": "fine-prune", "clean_data": 1.5}, "'clean_data' 1.5: give a fraction"),
    ({"step": "fine-prune", "clean_data": True}, "'clean_data' must be a fraction or an .npz path"),
])
def test_bad_parameters_are_one_line(step, message):
    import edgeattack.defenses  # noqa: F401
    from edgeattack.compression.recipe import load_recipe

    with pytest.raises(UsageError) as e:
        load_recipe([step])
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("recipe, value, message", [
    ("ptq-int8", "0.3", "--clean-data: recipe ptq-int8 has no step that takes clean data"),
    ("fine-prune", "1.5", "--clean-data 1.5: give a fraction strictly between 0 and 1"),
    ("fine-prune", "nowhere.npz", "--clean-data nowhere.npz: no such file"),
    ("fine-prune", None, "fine-prune needs the defender's clean data: pass --clean-data"),
])
def test_clean_data_option_is_checked_before_any_work(recipe, value, message):
    import edgeattack.defenses  # noqa: F401
    from edgeattack.compression.recipe import load_recipe, with_clean_data

    with pytest.raises(UsageError) as e:
        with_clean_data(load_recipe(recipe), value)
    assert message in str(e.value) and "\n" not in str(e.value)
    r = with_clean_data(load_recipe([{"step": "fine-prune", "clean_data": 0.2}]), "0.4")
    assert r.steps[0].params["clean_data"] == 0.2  # the recipe's own value wins
    r = with_clean_data(load_recipe("fine-prune"), "0.4")
    assert r.steps[0].params["clean_data"] == 0.4
