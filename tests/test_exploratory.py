"""`edgeattack extract` and `edgeattack invert` through emu-tflm running the digits ptq-int8 model:
fidelity per budget with every query counted by the device, ART's KnockoffNets/CopycatCNN through the
same device as a sanity check, inversion images scored independently of the victim, bad input."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

pytest_plugins = ["fixtures_compress"]

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (100, 300)  # the heldout pool has 180 samples: 300 needs Jacobian augmentation


@pytest.fixture(scope="module")
def ptq(digits_ptq):
    return digits_ptq.out / "model.tflite"


@pytest.fixture(scope="module")
def extract_run(ptq, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract") / "run"
    proc = run_cli("extract", "--board", "emu-tflm", "--model", ptq, "--dataset", "digits",
                   "--budgets", ",".join(map(str, BUDGETS)), "--pool", "heldout", "--width", "0.5",
                   "--epochs", "10", "--seed", "0", "-o", out)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def device(ptq):
    from edgeattack.attacks.targets import open_target

    with open_target(ptq, board="emu-tflm") as t:
        yield t


def test_fidelity_rises_with_budget_and_every_query_is_a_device_inference(extract_run):
    s = json.loads((extract_run / "extract.json").read_text())
    assert s["schema"] == 1 and s["command"] == "extract"
    assert s["target"]["kind"] == "board" and s["target"]["board"] == "emu-tflm"
    assert s["pool_size"] == 180 and s["n"] == 180
    # the evaluation half is queried once, apart from the attack, and counted by the device too
    assert s["evaluation_queries"] == s["evaluation_device_inferences"] == 180
    rows = s["metrics"]
    assert [r["queries"] for r in rows] == list(BUDGETS)
    for r in rows:
        assert r["device_inferences"] == r["queries"]
        for name in ("fidelity", "accuracy"):
            lo, hi = r[f"{name}_ci95"]
            assert 0 <= lo <= r[name] <= hi <= 1
        assert (extract_run / r["replica"]).is_file()
    assert rows[0]["augmented_queries"] == 0 and rows[1]["augmented_queries"] == 300 - 180
    assert rows[1]["fidelity"] >= rows[0]["fidelity"]
    assert rows[1]["fidelity"] >= 0.8  # about 0.90 here; the victim's accuracy is about 0.96
    q = np.load(extract_run / "queries.npz")
    assert q["x"].shape == (300, 8, 8, 1) and q["y"].shape == (300,)


def test_replica_is_a_transfer_source(extract_run, ptq):
    """The replica (replica.keras) crafts adversarial examples that fool the victim's surrogate."""
    from edgeattack.attacks.transfer import transfer
    from edgeattack.datasets import load_dataset

    ds = load_dataset("digits")
    res = transfer("pgd", [extract_run / "replica.keras"], [ptq], ds.x_test[:30], ds.y_test[:30],
                   epsilons=[0.2])
    assert res.sources[0]["kind"] == "float"
    assert res.rows[0]["attack_success_rate"] >= 0.3


def test_scores_a_noise_pool_and_augmentation_beyond_it(device):
    from edgeattack.attacks.exploratory import extract
    from edgeattack.errors import UsageError

    i0 = device.device.info()["inferences"]
    res = extract(target=device, budgets=[40, 60], pool="noise", pool_size=40, output="scores",
                  width=0.25, epochs=1, seed=1)
    assert [r["queries"] for r in res.rows] == [40, 60]
    assert [r["device_inferences"] for r in res.rows] == [40, 60]
    assert res.rows[1]["augmented_queries"] == 20
    assert device.device.info()["inferences"] - i0 == 60 + res.evaluation_queries
    assert res.params["output"] == "scores" and res.queried_t.max() < 1.0001
    with pytest.raises(UsageError, match="the pool has 40 samples"):
        extract(target=device, budgets=[41], pool="noise", pool_size=40, augment="none")


def _bench():
    spec = importlib.util.spec_from_file_location("bench_extract", ROOT / "tools" / "bench_extract.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_art_knockoffnets_and_copycat_through_the_same_device(device, extract_run):
    from edgeattack.attacks.exploratory import evaluation_split
    from edgeattack.datasets import load_dataset

    bench = _bench()
    ds = load_dataset("digits")
    x_pool, y_pool, x_eval, y_eval = evaluation_split(ds, 0)
    eval_pred = np.argmax(device.scores(x_eval), 1)
    ours = json.loads((extract_run / "extract.json").read_text())["metrics"][0]
    art = bench.art_steal(device, "knockoff-random", 100, x_pool, y_pool, x_eval, eval_pred, y_eval,
                          width=0.5, epochs=10)
    assert art["queries"] == art["device_inferences"] == 100 and not art["capped_at_pool"]
    assert art["fidelity"] >= 0.6
    assert ours["fidelity"] / art["fidelity"] >= 0.85  # the same order: both about 0.85-0.9
    # ART draws without replacement from the pool: a budget beyond it is capped at the pool's size
    cap = bench.art_steal(device, "copycat", 300, x_pool, y_pool, x_eval, eval_pred, y_eval,
                          width=0.25, epochs=1)
    assert cap["capped_at_pool"] and cap["queries"] == cap["device_inferences"] == len(x_pool)


@pytest.fixture(scope="module")
def invert_run(ptq, tmp_path_factory):
    out = tmp_path_factory.mktemp("invert") / "run"
    proc = run_cli("invert", "--board", "emu-tflm", "--model", ptq, "--budget", "60", "--classes", "0,1,2",
                   "--shortcut-budgets", "100", "--set", "probes=5", "--set", "judge_epochs=5",
                   "--set", "whitebox_steps=50", "-o", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_inversion_writes_pngs_and_independent_scores(invert_run):
    from PIL import Image

    s = json.loads((invert_run / "invert.json").read_text())
    assert s["schema"] == 1 and s["command"] == "invert" and s["classes"] == [0, 1, 2]
    dev = [r for r in s["metrics"] if r["route"] == "device"]
    rep = [r for r in s["metrics"] if r["route"] == "replica-100"]
    assert [r["class"] for r in dev] == [0, 1, 2] and [r["class"] for r in rep] == [0, 1, 2]
    for r in dev + rep:
        img = Image.open(invert_run / r["image"])
        assert img.size == (64, 64)
        assert -1 <= r["ssim_to_class_mean"] <= 1 and 0 <= r["independent_model_confidence"] <= 1
    for r in dev:
        assert r["queries"] == 60 and 0 <= r["zero_difference_fraction"] <= 1
    # every query is a device inference: the device route, then the shortcut's extraction and its
    # evaluation half
    assert s["device_route_inferences"] == 3 * 60
    assert s["device_inferences"] == 3 * 60 + 100 + 180
    assert s["baselines"]["independent_model_accuracy"] > 0.5
    assert set(s["comparison"]) >= {"equal_score", "device_route_queries", "shortcut_route_queries"}
    assert len(list((invert_run / "class-means").glob("class-*.png"))) == 3


@pytest.mark.parametrize("command, args, message", [
    ("extract", ["--budgets", "0"], "a query budget must be at least 1"),
    ("extract", ["--budgets", "100,x"], "give a comma-separated list of numbers"),
    ("extract", ["--pool", "{wrong}"], "its samples have shape (28, 28, 1) but the device's input is (8, 8, 1)"),
    ("extract", ["--pool", "nowhere"], "choose heldout, synthetic, noise or an .npz"),
    ("extract", ["--budgets", "200", "--augment", "none"], "the pool has 180 samples"),
    ("extract", ["--set", "bogus=1"], "unknown parameter"),
    ("invert", ["--budget", "0"], "must be at least 1"),
    ("invert", ["--budget", "5"], "one gradient estimate takes 20 queries"),
    ("invert", ["--classes", "12"], "the model has classes 0..9"),
])
def test_bad_input_is_one_line(ptq, tmp_path, command, args, message):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((5, 28, 28, 1), np.float32))
    args = [a.format(wrong=wrong) for a in args]
    proc = run_cli(command, "--board", "emu-tflm", "--model", ptq, *args, "-o", tmp_path / "o")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_no_device_and_existing_output_are_refused(ptq, extract_run, tmp_path):
    proc = run_cli("extract", "--model", ptq, "-o", tmp_path / "o")
    assert proc.returncode == 2 and "give --board" in proc.stderr
    proc = run_cli("extract", "--board", "emu-tflm", "--model", ptq, "-o", extract_run)
    assert proc.returncode == 2 and "--force" in proc.stderr
