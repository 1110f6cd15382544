"""results.metrics and results.stats against known answers (no device, no TensorFlow)."""
from __future__ import annotations

import numpy as np
import pytest

from edgeattack.errors import UsageError
from edgeattack.results import metrics
from edgeattack.results.stats import wilson_interval


def _paired(n11, n12, n21, n22):
    """Two aligned boolean arrays with the given paired 2x2 counts (a&b, a&~b, ~a&b, ~a&~b)."""
    a = np.array([1] * n11 + [1] * n12 + [0] * n21 + [0] * n22, dtype=bool)
    b = np.array([1] * n11 + [0] * n12 + [1] * n21 + [0] * n22, dtype=bool)
    return a, b


# --- Wilson corner cases -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 3, 7, 10, 50, 1000])
def test_wilson_all_successes_upper_is_exactly_one(n):
    lo, hi = wilson_interval(n, n)
    assert hi == 1.0 and 0.0 < lo < 1.0


@pytest.mark.parametrize("n", [1, 3, 7, 10, 50, 1000])
def test_wilson_no_successes_lower_is_exactly_zero(n):
    lo, hi = wilson_interval(0, n)
    assert lo == 0.0 and 0.0 < hi < 1.0


def test_wilson_known_value_and_empty():
    # Wilson score interval for 1 of 10, to four decimals: 0.0179 to 0.4042.
    lo, hi = wilson_interval(1, 10)
    assert lo == pytest.approx(0.0179, abs=5e-5) and hi == pytest.approx(0.4042, abs=5e-5)
    assert wilson_interval(0, 0) is None


# --- paired_difference ----------------------------------------------------------------------------

def test_paired_difference_textbook_example():
    # Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables" (2017), ch. 8: complete
    # response before/after consolidation therapy (Cavo et al. 2012), table [[59, 6], [16, 80]].
    # Newcombe's hybrid score interval: -0.0621 (95% CI -0.1186 to -0.0046).
    a, b = _paired(59, 6, 16, 80)
    out = metrics.paired_difference(a, b)
    assert out["n"] == 161
    assert out["difference"] == pytest.approx(-0.0621, abs=5e-5)
    assert out["ci95"][0] == pytest.approx(-0.1186, abs=5e-5)
    assert out["ci95"][1] == pytest.approx(-0.0046, abs=5e-5)


def test_paired_difference_is_antisymmetric_and_zero_for_identical():
    a, b = _paired(36, 12, 2, 0)
    ab, ba = metrics.paired_difference(a, b), metrics.paired_difference(b, a)
    assert ab["difference"] == pytest.approx(0.2)
    assert ab["ci95"][0] == pytest.approx(-ba["ci95"][1]) and ab["ci95"][1] == pytest.approx(-ba["ci95"][0])
    assert ab["ci95"][0] > 0  # 12 against 2 discordant pairs: the interval excludes zero
    same = metrics.paired_difference(a, a)
    assert same["difference"] == 0.0 and same["ci95"][0] <= 0.0 <= same["ci95"][1]


def test_paired_difference_rejects_unaligned():
    with pytest.raises(UsageError, match="length"):
        metrics.paired_difference([True, False], [True])
    assert metrics.paired_difference([], [])["ci95"] is None


# --- robust_accuracy ----------------------------------------------------------------------------

def test_robust_accuracy_is_correct_under_every_attack_and_clean():
    clean = np.array([1, 1, 1, 1, 0, 1], dtype=bool)
    out = metrics.robust_accuracy({"pgd": [1, 0, 1, 1, 1, 1], "square": [1, 1, 0, 1, 1, 1]}, clean)
    assert out["n"] == 6 and out["correct"] == 3  # samples 0, 3, 5
    assert out["robust_accuracy"] == 0.5
    assert out["robust_accuracy_ci95"] == wilson_interval(3, 6)
    assert out["attacks"] == ["pgd", "square"]


def test_robust_accuracy_uses_samples_every_attack_ran_on():
    clean = {0: True, 1: True, 2: True, 3: False}
    out = metrics.robust_accuracy({"pgd": {0: True, 1: False, 2: True, 3: True},
                                   "square": {0: True, 2: False}}, clean)  # square ran on 0 and 2
    assert out["n"] == 2 and out["correct"] == 1


def test_robust_accuracy_bad_input():
    with pytest.raises(UsageError):
        metrics.robust_accuracy({}, [True])
    with pytest.raises(UsageError, match="length"):
        metrics.robust_accuracy({"pgd": [True, False]}, [True])


# --- latency ------------------------------------------------------------------------------------

def test_latency_summary_known_percentiles():
    out = metrics.latency_summary(np.arange(1, 101) / 1000.0)  # 1..100 ms
    assert out["n"] == 100
    assert out["p50"] == pytest.approx(0.0505) and out["p90"] == pytest.approx(0.0901)
    assert out["p99"] == pytest.approx(0.09901) and out["mean"] == pytest.approx(0.0505)
    assert metrics.latency_summary([None, None]) == {"p50": None, "p90": None, "p99": None,
                                                     "mean": None, "n": 0}


def test_latency_difference_zero_is_stated_with_interval():
    out = metrics.latency_difference([0.01] * 20, [0.01] * 30)
    assert out["difference_s"] == 0.0 and out["ci95"] == [0.0, 0.0]
    assert out["n_attacked"] == 20 and out["n_clean"] == 30


def test_latency_difference_detects_shift_and_is_seeded():
    rng = np.random.default_rng(1)
    clean = 0.010 + 0.0005 * rng.standard_normal(200)
    attacked = 0.012 + 0.0005 * rng.standard_normal(200)
    out = metrics.latency_difference(attacked, clean)
    assert out["difference_s"] == pytest.approx(np.median(attacked) - np.median(clean))
    assert 0.0015 < out["ci95"][0] < out["difference_s"] < out["ci95"][1] < 0.0025
    assert metrics.latency_difference(attacked, clean) == out  # same seed, same interval
    assert metrics.latency_difference(attacked, clean, seed=7)["ci95"] != out["ci95"]
    empty = metrics.latency_difference([], clean)
    assert empty["difference_s"] is None and empty["ci95"] is None


# --- cross-board disagreement and windows ----------------------------------------------------------

def test_cross_board_disagreement_overall_and_pairs():
    out = metrics.cross_board_disagreement({"emu-tflm": [1, 2, 3, 4], "emu-litert": [1, 2, 3, 5],
                                            "qemu-m4": [1, 0, 3, 4]})
    assert out["n"] == 4 and out["differ"] == 2 and out["disagreement"] == 0.5
    assert out["disagreement_ci95"] == wilson_interval(2, 4)
    pairs = {tuple(p["boards"]): p["differ"] for p in out["pairs"]}
    assert pairs == {("emu-litert", "emu-tflm"): 1, ("emu-litert", "qemu-m4"): 2, ("emu-tflm", "qemu-m4"): 1}
    with pytest.raises(UsageError, match="at least 2"):
        metrics.cross_board_disagreement({"emu-tflm": [1]})
    with pytest.raises(UsageError, match="aligned"):
        metrics.cross_board_disagreement({"a": [1, 2], "b": [1]})


def test_window_median():
    # e.g. energy per inference of 5 windows, one of them disturbed: the median ignores it
    assert metrics.window_median([2.0e-3, 2.1e-3, 9.0e-3, 1.9e-3, 2.0e-3]) == 2.0e-3
    assert metrics.window_median([]) is None
