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

pytest_plugins = ["fixtures_poisoning", "fixtures_compress"]


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
    ("fine-prune", None, "step 1 (fine-prune) needs the defender's clean data: set the step's clean_data"),
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


def test_python_compress_refuses_missing_clean_data_before_any_step(tmp_path):
    """The model path does not exist: had any step (or the model's loading) come first, the error
    would be another one."""
    import edgeattack.defenses  # noqa: F401
    from edgeattack.compression import compress

    with pytest.raises(UsageError) as e:
        compress(tmp_path / "absent.keras", [{"step": "adv-train", "epochs": 1},
                                             {"step": "fine-prune"}, {"step": "ptq-int8"}],
                 tmp_path / "out", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("step 2 (fine-prune) needs the defender's clean data")
    assert "clean_data: 0.3" in msg and "--clean-data" in msg
    assert not (tmp_path / "out").exists()


def test_defenses_study_gives_fine_prune_a_clean_split_and_the_cell_compresses(digits_model, tmp_path):
    """The built-in `defenses` study's fine-prune artifacts (alone and chained) carry the part's
    clean_data (a fraction of the training split); artifacts needing none keep their built-in
    recipe; such a recipe compresses (at a reduced scale: one fine-tuning epoch)."""
    from edgeattack.compression import compress
    from edgeattack.compression.recipe import load_recipe, with_clean_data
    from edgeattack.study.spec import load_study

    part = load_study("defenses")["parts"]["defenses"]
    assert part["clean_data"] == 0.2
    arts = {a["name"]: a for a in part["artifacts"]}
    pruned = [a for a in arts.values() if a["defense"] == "fine-prune"]
    assert {a["name"] for a in pruned} >= {"fine-prune", "fine-prune+prune", "fine-prune+pqat"}
    for a in pruned:
        steps = [st for st in a["recipe"]["steps"] if st["step"] == "fine-prune"]
        assert [st["clean_data"] for st in steps] == [0.2], a
        with_clean_data(load_recipe(a["recipe"]), None)  # what compress checks first: passes
    assert arts["ptq-int8"]["recipe"] == "ptq-int8" and arts["adv-train"]["recipe"] == "adv-train"

    recipe = arts["fine-prune"]["recipe"]
    tiny = {**recipe, "steps": [{**st, "epochs": 1} if st["step"] == "fine-prune" else st
                                for st in recipe["steps"]]}
    res = compress(digits_model, tiny, tmp_path / "fp", seed=0, progress=False)
    details = res.manifest["steps"][0]["details"]
    assert details["clean_data"] == "0.2 of the training split"
    assert details["labels"] == "the training split's" and details["samples"] == 287
    assert res.manifest["conversion"] == "int8" and res.tflite_path.is_file()


def test_defenses_part_clean_data_is_checked():
    from edgeattack.study.spec import StudyError, resolve

    for bad, message in ((1.5, "1.5: give a fraction strictly between 0 and 1"),
                         ("nowhere.npz", "nowhere.npz: no such file"),
                         (True, "expected a fraction of the training split")):
        doc = {"boards": ["emu-tflm"], "parts": {"defenses": {"defenses": ["fine-prune"],
                                                               "clean_data": bad}}}
        with pytest.raises(StudyError) as e:
            resolve(doc, "s.yaml")
        assert f"s.yaml: parts.defenses.clean_data: {message}" in str(e.value)


def test_fine_prune_in_any_part_of_a_study_gets_the_clean_data():
    """A user's study naming fine-prune outside the defenses part: the shared compression of that
    name carries the study's clean data (the defenses part's clean_data, else its default) whichever
    part builds it first (evasion comes before defenses); backdoor and poisoning, which compress
    inside their cell, refuse it up front in one line naming the fix."""
    from edgeattack.study.graph import build_cells
    from edgeattack.study.spec import StudyError, resolve

    context = {"dataset_sha256": "0" * 64, "tool_version": "t", "firmware": {"emu-tflm": None}}
    evasion = {"n": 5, "crafted_on": ["surrogate"], "attacks": [{"attack": "fgsm", "eps": [0.1]}]}
    for parts, value in (({"evasion": evasion}, 0.2),
                         ({"evasion": evasion, "blackbox": {"attacks": [{"attack": "square", "eps": [0.1]}]},
                           "defenses": {"defenses": [], "chains": [], "clean_data": 0.3}}, 0.3)):
        study = resolve({"recipes": ["ptq-int8", "fine-prune"], "boards": ["emu-tflm"], "parts": parts},
                        "s.yaml")
        comp = {c.labels["recipe"]: c for c in build_cells(study, context) if c.kind == "compress"}
        assert comp["ptq-int8"].params["recipe"] == "ptq-int8"  # no taker: unchanged (same hash)
        steps = comp["fine-prune"].params["recipe"]["steps"]
        assert [st.get("clean_data") for st in steps if st["step"] == "fine-prune"] == [value]
    for part in ("backdoor", "poisoning"):
        with pytest.raises(StudyError) as e:
            resolve({"recipes": ["fine-prune"], "parts": {part: {}}}, "s.yaml")
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"s.yaml: parts.{part}.recipes: recipe 'fine-prune'")
        assert "needs the defender's clean data" in msg and "sets clean_data" in msg
