"""The black-box attacks' view of a target: batched queries with exact per-sample accounting.

Every black-box attack here runs its samples in lockstep: each step gathers one candidate per
still-active sample (or many, for HopSkipJump's gradient estimate) and sends them as ONE call to
`target.scores` / `target.predict`, which a DeviceTarget pipelines through `Device.infer_many`.
A device that answers in 0.1 ms then never waits for N sequential round trips.

`Oracle` counts each sample's queries, refuses to exceed its budget, and records when each sample
stopped. The success test and the loss are written for what devices return: int8 scores (256
levels, many exact ties), labels only (a one-hot "score"), and scores rounded to a few decimals.
"""
from __future__ import annotations

import time

import numpy as np

from ...errors import UsageError


def margin(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Untargeted margin loss: score of the true class minus the best other score (lower is better;
    negative = misclassified). Works on probabilities, logits, rounded scores and one-hot labels."""
    s = np.asarray(scores, dtype=np.float64)
    rows = np.arange(len(s))
    own = s[rows, y]
    other = s.copy()
    other[rows, y] = -np.inf
    return own - other.max(axis=1)


def misclassified(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where another class scores STRICTLY higher than the true one. A tie at the top is not
    counted: which class a tied argmax picks depends on class order (and on rounding the device
    hides), so a tie is not yet an adversarial example on every judge."""
    return margin(scores, y) < 0


def better(new: np.ndarray, old: np.ndarray, accept_ties: bool) -> np.ndarray:
    """Accept a candidate whose loss is lower, or equal when ties are accepted.

    Why accept ties: an int8 softmax saturates (the true class at 127, the rest at -128), so most
    candidates score exactly the same as the current point. Refusing ties freezes the search on that
    plateau; accepting them turns it into a random walk over equally good points until one lowers
    the margin, which is what lets score-based attacks progress through 256-level outputs.
    """
    return (new <= old) if accept_ties else (new < old)


def input_step(target) -> float | None:
    """The float size of one input quantization step of an int8 target (None for a float target).
    Decision-based searches stop refining below it: finer steps round to the same device input."""
    for obj in (target, getattr(target, "device", None), getattr(target, "surrogate", None)):
        scale = getattr(obj, "input_scale", None) if obj is not None else None
        if scale:
            return float(scale)
    return None


def check_budget(budget) -> int:
    if budget is None or int(budget) != budget or int(budget) < 1:
        raise UsageError(f"budget {budget!r}: a black-box attack needs a query budget of at least 1 "
                         f"per sample (give --budget N)")
    return int(budget)


class Oracle:
    """Queries `target` for n samples, each within `budget` queries.

    scores(xs, idx) / decisions(xs, idx): xs holds one candidate per entry of idx (sample indices,
    repeats allowed); each entry costs its sample one query. `queries` (n,) counts them exactly.
    `reserved` queries per sample are held back from `remaining()` for a final phase (HopSkipJump's
    probes at each requested epsilon); the budget itself stays the hard cap.
    """

    def __init__(self, target, y: np.ndarray, budget: int, on_queries=None):
        self.target = target
        self.on_queries = on_queries  # called with each batch's query count (progress bars)
        self.y = np.asarray(y, dtype=np.int64)
        self.budget = check_budget(budget)
        n = len(self.y)
        self.queries = np.zeros(n, dtype=np.int64)
        self.reserved = 0
        self.t0 = time.perf_counter()
        self.finished_s = np.full(n, np.nan)  # seconds from start until the sample stopped
        # What the queries cost on a device, per sample (DeviceTarget only; None elsewhere).
        self.device = getattr(target, "device", None) if hasattr(target, "results") else None
        if self.device is not None:
            self.wire_bytes = np.zeros(n)
            self.device_time_s = np.zeros(n)
            self.energy_j = np.zeros(n)
            self.energy_source: str | None = None
            self.time_source: str | None = None
            self.time_estimated = False
            # Which sample each device query was for, by the target's query number: a meter's
            # windows (one per INFER, in the order sent) are charged to samples through it.
            self._query_numbers: list[np.ndarray] = []
            self._query_samples: list[np.ndarray] = []
        else:
            self.wire_bytes = self.device_time_s = self.energy_j = None
            self.energy_source = self.time_source = None
            self.time_estimated = False

    def remaining(self, idx=None) -> np.ndarray:
        left = self.budget - self.reserved - self.queries
        return left if idx is None else left[idx]

    def _charge(self, idx: np.ndarray) -> None:
        counts = np.bincount(idx, minlength=len(self.queries))
        if np.any(self.queries + counts > self.budget):
            raise AssertionError("black-box attack exceeded its query budget")  # a bug, not input
        self.queries += counts
        if self.on_queries is not None:
            self.on_queries(len(idx))

    def scores(self, xs: np.ndarray, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(idx) == 0:
            return np.zeros((0, 0), dtype=np.float32)
        self._charge(idx)
        out = self._costed(idx, self.target.scores, xs)
        return np.asarray(out, dtype=np.float32)

    def decisions(self, xs: np.ndarray, idx) -> np.ndarray:
        """True where the candidate is adversarial (predicted class != the sample's label)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(idx) == 0:
            return np.zeros(0, dtype=bool)
        self._charge(idx)
        pred = np.asarray(self._costed(idx, self.target.predict, xs)).reshape(-1)
        return pred != self.y[idx]

    def _costed(self, idx: np.ndarray, call, xs):
        """call(xs), charging each query's device time, energy and wire bytes to its sample.

        The device's Result of every query (kept by the DeviceTarget while this runs) carries its
        device time and energy; the link's byte counter is split evenly over the batch's queries
        (they are the same size: one input, one output)."""
        xs = np.asarray(xs, dtype=np.float32)
        dev, t = self.device, self.target
        if dev is None:
            return call(xs)
        keep, k0, w0, q0 = t.keep_results, len(t.results), dev.wire_bytes, t.queries
        t.keep_results = True
        t.sample_keys = idx  # pins each sample to an input slot (protocol v2 patches)
        try:
            out = call(xs)
        finally:
            t.keep_results = keep
            t.sample_keys = None
        new = t.results[k0:]
        if not keep:
            del t.results[k0:]
        if len(new) == len(idx):
            np.add.at(self.device_time_s, idx, [r.device_time_s for r in new])
            energies = [r.energy_j for r in new]
            if all(e is not None for e in energies):
                np.add.at(self.energy_j, idx, energies)
                self.energy_source = new[0].energy_source
            else:
                self.energy_source = None
            self.time_source = new[0].time_source
            self.time_estimated = bool(new[0].time_estimated)
        np.add.at(self.wire_bytes, idx, (dev.wire_bytes - w0) / len(idx))
        if t.queries - q0 == len(idx):
            self._query_numbers.append(np.arange(q0, t.queries, dtype=np.int64))
            self._query_samples.append(idx.copy())
        return out

    def costs(self) -> dict:
        """Per-sample cost arrays of this run (None entries when the target is not a device)."""
        have_energy = self.device is not None and self.energy_source is not None
        return {"queries": self.queries.copy(), "finished_s": self.finished_s.copy(),
                "wall_s": time.perf_counter() - self.t0,
                "wire_bytes": None if self.wire_bytes is None else self.wire_bytes.copy(),
                "device_time_s": None if self.device_time_s is None else self.device_time_s.copy(),
                "time_source": self.time_source, "time_estimated": self.time_estimated,
                "energy_j": self.energy_j.copy() if have_energy else None,
                "energy_source": self.energy_source if have_energy else None,
                "query_log": self._query_log()}

    def _query_log(self):
        """(target query numbers, sample of each) of every device query, in the order sent."""
        if self.device is None:
            return None
        if not self._query_numbers:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(self._query_numbers), np.concatenate(self._query_samples)

    def finish(self, idx) -> None:
        """Mark samples stopped now (first call wins)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        fresh = idx[np.isnan(self.finished_s[idx])]
        self.finished_s[fresh] = time.perf_counter() - self.t0
