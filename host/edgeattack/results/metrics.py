"""Metrics that compare configurations: robust accuracy over a set of attacks, paired differences of
rates, latency summaries and differences, cross-board disagreement, MLPerf Tiny-style window medians.

Pure NumPy. Every rate carries a Wilson 95% interval and every difference an interval
(CONVENTIONS "Metrics"); see docs/measurement.md for the methods and their sources.
"""
from __future__ import annotations

import itertools
import math
from typing import Mapping

import numpy as np

from ..errors import UsageError
from .stats import wilson_interval

# Bootstrap settings of latency_difference: fixed so the same records give the same interval.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def _bools(name: str, values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise UsageError(f"{name}: expected a 1-d array of per-sample outcomes, got shape {arr.shape}")
    if arr.dtype != bool:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise UsageError(f"{name}: expected booleans (or 0/1), got values other than 0 and 1")
        arr = arr.astype(bool)
    return arr


def _aligned(named: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Per-sample outcomes on the samples they all share. Arrays must be aligned (same length, same
    order); mappings {sample id: outcome} are intersected on their ids, for attacks that ran on
    different subsets."""
    if all(isinstance(v, Mapping) for v in named.values()):
        common = set.intersection(*(set(v) for v in named.values())) if named else set()
        ids = sorted(common)
        return {k: _bools(k, [v[i] for i in ids]) for k, v in named.items()}
    if any(isinstance(v, Mapping) for v in named.values()):
        raise UsageError("pass either aligned arrays or {sample id: outcome} mappings, not a mix")
    arrays = {k: _bools(k, v) for k, v in named.items()}
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise UsageError(f"per-sample arrays differ in length ({lengths}); pass them aligned on the "
                         f"same samples, or as {{sample id: outcome}} mappings")
    return arrays


def robust_accuracy(correct_by_attack: Mapping[str, object], clean_correct) -> dict:
    """Fraction of samples classified correctly when clean and under every attack in the set
    (CONVENTIONS "Metrics"), over the samples every attack ran on.

    `correct_by_attack` maps an attack name to per-sample correctness under that attack; with
    `clean_correct`, all aligned arrays or all {sample id: bool} mappings."""
    if not correct_by_attack:
        raise UsageError("robust_accuracy needs at least one attack")
    if "clean" in correct_by_attack:
        raise UsageError("robust_accuracy: 'clean' is not an attack name; pass it as clean_correct")
    outcomes = _aligned({**correct_by_attack, "clean": clean_correct})
    robust = outcomes.pop("clean")
    for arr in outcomes.values():
        robust = robust & arr
    n, k = len(robust), int(robust.sum())
    return {"robust_accuracy": k / n if n else None, "robust_accuracy_ci95": wilson_interval(k, n),
            "correct": k, "n": n, "attacks": sorted(correct_by_attack)}


def _newcombe_paired(n11: int, n12: int, n21: int, n22: int, z: float) -> list:
    """Newcombe's hybrid score interval for p1 - p2 on paired data (Newcombe 1998, Stat Med 17:2635,
    method 10): Wilson intervals for the two marginal proportions combined with the estimated
    correlation phi between them, phi's numerator shrunk by n/2 when positive (as in Newcombe's paper
    and Altman et al., Statistics with Confidence, 2nd ed., ch. 6)."""
    n = n11 + n12 + n21 + n22
    p1, p2 = (n11 + n12) / n, (n11 + n21) / n
    l1, u1 = wilson_interval(n11 + n12, n, z)
    l2, u2 = wilson_interval(n11 + n21, n, z)
    margins = (n11 + n12) * (n21 + n22) * (n11 + n21) * (n12 + n22)
    phi = 0.0
    if margins:
        cross = n11 * n22 - n12 * n21
        corrected = max(cross - n / 2, 0.0) if cross > 0 else cross
        phi = corrected / math.sqrt(margins)
    d = p1 - p2
    lower = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = d + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return [max(-1.0, lower), min(1.0, upper)]


def paired_difference(a, b, z: float = 1.959963984540054) -> dict:
    """Difference of two rates measured on the same samples (e.g. robust accuracy of two recipes on
    the same adversarial inputs): mean(a) - mean(b) with Newcombe's paired 95% interval."""
    pair = _aligned({"a": a, "b": b})
    a, b = pair["a"], pair["b"]
    n = len(a)
    if n == 0:
        return {"difference": None, "ci95": None, "n": 0}
    n11, n12 = int((a & b).sum()), int((a & ~b).sum())
    n21, n22 = int((~a & b).sum()), int((~a & ~b).sum())
    return {"difference": (n12 - n21) / n, "ci95": _newcombe_paired(n11, n12, n21, n22, z), "n": n,
            "a_only": n12, "b_only": n21}


def _times(name: str, values) -> np.ndarray:
    if not isinstance(values, np.ndarray):
        values = list(values)  # any iterable, generators included
    arr = np.asarray([v for v in np.ravel(np.asarray(values, dtype=object)) if v is not None],
                     dtype=np.float64)
    if np.isnan(arr).any() or (arr < 0).any():
        raise UsageError(f"{name}: times must be non-negative numbers")
    return arr


def latency_summary(times_s) -> dict:
    """p50, p90, p99 and mean of per-inference times in seconds (None values dropped; warm-ups are
    the caller's to exclude). All None with n 0 when there are no times."""
    arr = _times("latency_summary", times_s)
    if not arr.size:
        return {"p50": None, "p90": None, "p99": None, "mean": None, "n": 0}
    p50, p90, p99 = (float(v) for v in np.percentile(arr, [50, 90, 99]))
    return {"p50": p50, "p90": p90, "p99": p99, "mean": float(arr.mean()), "n": int(arr.size)}


def _boot_medians(values: np.ndarray, resamples: int, rng) -> np.ndarray:
    """Medians of `resamples` resamples with replacement, drawn in blocks of about 4M indices so a
    long session does not need resamples x n indices in memory at once."""
    block = max(1, 4_000_000 // values.size)
    out = [np.median(values[rng.integers(0, values.size, (min(block, resamples - done), values.size))],
                     axis=1) for done in range(0, resamples, block)]
    return np.concatenate(out)


def latency_difference(attacked_s, clean_s, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> dict:
    """Median latency under attack minus median clean latency, with a 95% percentile-bootstrap
    interval (each group resampled with replacement on its own, `resamples` times, from a seeded
    generator, so the same times give the same interval). A zero difference is reported as 0.0 with
    its interval, never omitted: int8 kernels do data-independent work, so zero is the expectation."""
    att, cln = _times("attacked", attacked_s), _times("clean", clean_s)
    out = {"difference_s": None, "ci95": None, "n_attacked": int(att.size), "n_clean": int(cln.size),
           "method": "bootstrap-percentile", "resamples": resamples, "seed": seed}
    if not att.size or not cln.size:
        return out
    rng = np.random.default_rng(seed)
    boot_att, boot_cln = _boot_medians(att, resamples, rng), _boot_medians(cln, resamples, rng)
    lo, hi = np.percentile(boot_att - boot_cln, [2.5, 97.5])
    out.update(difference_s=float(np.median(att) - np.median(cln)), ci95=[float(lo), float(hi)])
    return out


def cross_board_disagreement(preds_by_board: Mapping[str, object]) -> dict:
    """On what fraction of the same inputs the boards' predicted classes differ (not all equal), with a
    Wilson interval, and the same for each pair of boards. Arrays are aligned on the same inputs."""
    if len(preds_by_board) < 2:
        raise UsageError(f"cross_board_disagreement needs predictions from at least 2 boards, got "
                         f"{sorted(preds_by_board)}")
    preds = {k: np.asarray(v) for k, v in preds_by_board.items()}
    lengths = {k: v.shape for k, v in preds.items()}
    if len({s for s in lengths.values()}) > 1 or any(len(s) != 1 for s in lengths.values()):
        raise UsageError(f"predictions must be 1-d and aligned on the same inputs; shapes: {lengths}")
    boards = sorted(preds)
    stacked = np.stack([preds[b] for b in boards])
    n = stacked.shape[1]
    differ = (stacked != stacked[0]).any(axis=0)
    k = int(differ.sum())
    pairs = []
    for x, y in itertools.combinations(boards, 2):
        kp = int((preds[x] != preds[y]).sum())
        pairs.append({"boards": [x, y], "disagreement": kp / n if n else None,
                      "disagreement_ci95": wilson_interval(kp, n), "differ": kp, "n": n})
    return {"boards": boards, "disagreement": k / n if n else None,
            "disagreement_ci95": wilson_interval(k, n), "differ": k, "n": n, "pairs": pairs}


def window_median(per_window_values) -> float | None:
    """MLPerf Tiny-style figure: the median over windows of a per-inference value (a window's time or
    energy divided by its iterations). None when no window has a value."""
    arr = _times("window_median", per_window_values)
    return float(np.median(arr)) if arr.size else None
