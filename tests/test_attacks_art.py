"""Our white-box attacks against IBM ART's on the same tf_keras model (ART's TensorFlowV2Classifier),
the same samples and the same hyperparameters, at reduced scale (n <= 50; ART's slow attacks on
fewer). The comparison functions are tools/bench_attacks.py's, which runs them at n >= 200 for
docs/benchmarks.md."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest_plugins = ["fixtures_attacks"]

N_SLOW = 25


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parent.parent / "tools" / "bench_attacks.py"
    spec = importlib.util.spec_from_file_location("bench_attacks", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def art_setup(bench, digits_target):
    t, x, y = digits_target
    return t, bench.art_classifier(t), x, y


def within(rate, ci):
    return ci[0] <= rate <= ci[1]


@pytest.mark.parametrize("name,steps", [("pgd", 20), ("bim", 10)])
def test_pgd_and_bim_predict_like_art(bench, art_setup, name, steps):
    t, clf, x, y = art_setup
    r = bench.compare_iterative(t, clf, x, y, name, eps=0.1, steps=steps, rel_stepsize=0.1)
    print(r)
    assert r["prediction_agreement"] >= 0.99, r
    assert 0 < r["ours"]["successes"] < r["ours"]["of"]  # a split decision: agreement means something


@pytest.mark.parametrize("name", ["cw-l2", "deepfool"])
def test_minimization_attacks_perturb_no_more_than_art(bench, art_setup, name):
    t, clf, x, y = art_setup
    x, y = x[:N_SLOW], y[:N_SLOW]  # ART's C&W and DeepFool loop in Python: 1-2 s a sample here
    r = (bench.compare_cw(t, clf, x, y, batch_size=len(x)) if name == "cw-l2"
         else bench.compare_deepfool(t, clf, x, y, batch_size=len(x)))
    print(r)
    assert r["ours"]["successes"] >= r["art"]["successes"], r
    assert r["l2_ratio"] <= 1.10, r


def test_jsma_success_within_arts_interval(bench, art_setup):
    t, clf, x, y = art_setup
    x, y = x[:N_SLOW], y[:N_SLOW]
    r = bench.compare_jsma(t, clf, x, y, theta=0.1, gamma=1.0, batch_size=len(x))
    print(r)
    assert within(r["ours"]["rate"], r["art"]["ci95"]), r


def test_apgd_ce_success_within_arts_interval(bench, art_setup):
    t, clf, x, y = art_setup
    r = bench.compare_apgd(t, clf, x, y, eps=0.1, steps=50, batch_size=len(x))
    print(r)
    assert within(r["ours"]["rate"], r["art"]["ci95"]), r
    assert 0 < r["ours"]["successes"] < r["ours"]["of"]
