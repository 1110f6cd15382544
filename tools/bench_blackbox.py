#!/usr/bin/env python
"""Black-box attack figures through devices (docs/benchmarks.md, "Black-box attacks").

    python tools/bench_blackbox.py                       # all four parts
    python tools/bench_blackbox.py --parts qemu --json bb.json

Parts:
  qemu   Square (L-inf, eps 0.2, budget 1,000 queries per sample) on the first 100 digits test
         samples through qemu-m4 running the ptq-int8 digits model (cnn-digits trained 20 epochs,
         seed 0): attack success rate with its Wilson interval, median queries, and the device's
         inference counter (INFO) against the queries reported (attack + evaluation).
  art    The same attack on emu-tflm beside ART's SquareAttack through the same device (ART's
         BlackBoxClassifierNeuralNetwork over Device.infer_many, counting rows), ART's max_iter set
         so that no sample can cost it more than our per-sample budget (3 model calls an iteration).
  hsj    HopSkipJump (L2 and L-inf, budget 1,000 queries per sample (--hsj-budget), unbounded: both
         minimize, and success is counted at each eps after projecting onto its ball and asking the
         device; ours is given the eps list and probes each eps within its budget) on
         the clean-correct ones of the same samples through emu-tflm, beside ART's HopSkipJump
         through the same device (BlackBoxClassifier over Device.infer_many). ART's iteration
         limit is set per sample to the most iterations whose device queries fit the budget (see
         art_hopskipjump); ART runs with its default settings and with the smaller gradient
         estimates (init_eval = max_eval = 20) that suit small budgets.
  busy   Square on emu-tflm running a resnet8-sized int8 model (32x32x3, width 1, untrained,
         random calibration): the fraction of wall time the device spends inferring (sum of its
         per-query times / wall time). The host must not be the bottleneck.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402


def digits_ptq(work: Path) -> Path:
    from edgeattack.compression import compress
    from edgeattack.train import train_model

    model = train_model("cnn-digits", "digits", work / "digits", epochs=20, seed=0, progress=False)
    return compress(model.model_path, "ptq-int8", work / "ptq", seed=0, progress=False).out / "model.tflite"


def resnet8(work: Path) -> Path:
    from edgeattack import tfutil, zoo
    from edgeattack.compression.convert import to_tflite
    from edgeattack.tflite.align import align_16

    tfutil.set_seed(0)
    m = zoo.build_model("resnet8", input_shape=(32, 32, 3), width=1.0)
    calib = np.random.default_rng(0).random((16, 32, 32, 3), dtype=np.float32)
    path = work / "resnet8.tflite"
    path.write_bytes(align_16(to_tflite(m, "int8", calib)))
    return path


def wilson(k, n):
    from edgeattack.results import wilson_interval

    return wilson_interval(k, n)


def run_square(t, x, y, eps, budget, seed=0):
    """Our Square on target t; returns (result, figures dict)."""
    from edgeattack.attacks import make
    from edgeattack.attacks.blackbox.budgeted import cost_rows

    attack = make("square", budget=budget)
    before = t.device.info()["inferences"]
    t0 = time.perf_counter()
    res = attack(t, x, y, epsilons=[eps], seed=seed)
    wall = time.perf_counter() - t0
    delta = t.device.info()["inferences"] - before
    k, m = res.attack_success_rate(0)
    q = res.queries[0]
    row = cost_rows(attack, res, device_inferences=delta)[0]
    ok = res.success[0]
    return res, {
        "n": len(y), "clean_correct": m, "successes": k, "attack_success_rate": k / m,
        "attack_success_rate_ci95": wilson(k, m),
        "queries_median": float(np.median(q)), "queries_median_successes": float(np.median(q[ok])),
        "queries_mean": float(q.mean()), "attack_queries": int(q.sum()),
        "evaluation_queries": res.extra["evaluation_queries"], "device_inferences": int(delta),
        "device_inferences_equal_reported": int(delta) == int(q.sum()) + res.extra["evaluation_queries"],
        "wire_bytes_per_query": row["wire_bytes_per_query"], "device_time_s_median": row["device_time_s"],
        "time_source": row["time_source"], "time_estimated": row["time_estimated"],
        "device_busy_fraction": row["device_busy_fraction"], "wall_s": wall,
    }


def part_qemu(model, n):
    from edgeattack.attacks.targets import open_target
    from edgeattack.datasets import load_dataset

    ds = load_dataset("digits")
    with open_target(model, board="qemu-m4") as t:
        _, fig = run_square(t, ds.x_test[:n], ds.y_test[:n], 0.2, 1000)
    return fig


class DeviceCounter:
    """ART's view of a device: Device.infer_many behind a predict function that counts the rows it
    sends. With `cap` set, a call that would take `count` past it raises OverBudget before any row
    is sent (art_hopskipjump uses this to stop ART at the budget)."""

    def __init__(self, t):
        self.dev = t.device
        self.count = 0
        self.cap: int | None = None

    def __call__(self, xb):
        xb = np.asarray(xb, dtype=np.float32)
        if self.cap is not None and self.count + len(xb) > self.cap:
            raise OverBudget
        self.count += len(xb)
        return np.stack([r.output for r in self.dev.infer_many(iter(xb))])


class OverBudget(Exception):
    pass


def compare_square(t, x, y, eps, budget, seed=0):
    """Our Square and ART's SquareAttack on device target t, the same samples (those t classifies
    correctly), ART's max_iter = (budget - 3) // 3: ART spends 3 model calls an iteration on every
    sample still robust, plus 3 at the start, so no sample can cost it more than our budget."""
    from art.attacks.evasion import SquareAttack
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    res, ours = run_square(t, x, y, eps, budget, seed=seed)
    correct = res.clean_correct
    xc, yc = x[correct], y[correct]
    fn = DeviceCounter(t)
    clf = BlackBoxClassifierNeuralNetwork(fn, x.shape[1:], t.num_classes, channels_first=False,
                                          clip_values=tuple(t.data_range))
    np.random.seed(seed)
    t0 = time.perf_counter()
    max_iter = (budget - 3) // 3
    art = SquareAttack(clf, norm=np.inf, eps=eps, max_iter=max_iter, nb_restarts=1, verbose=False)
    x_art = art.generate(xc, np.eye(t.num_classes)[yc])
    wall = time.perf_counter() - t0
    k, m = int((t.predict(x_art) != yc).sum()), len(yc)
    return {"ours": ours, "art": {"max_iter": max_iter, "successes": k, "clean_correct": m,
                                  "attack_success_rate": k / m, "attack_success_rate_ci95": wilson(k, m),
                                  "device_queries": fn.count, "wall_s": wall}}


def art_hopskipjump(t, x, y, budget, norm="l2", seed=0, **art_params):
    """ART's HopSkipJump on device target t, each sample held to `budget` counted device queries.

    ART attacks one sample at a time and an iteration's cost depends on the search, so no single
    max_iter fits the budget. Instead each sample's run is snapshotted at the start of every
    iteration (the state after k iterations is exactly what max_iter=k returns, with the queries
    counted so far) and stopped before the query that would pass the budget; the sample's result is
    the last snapshot: ART with the largest max_iter whose queries fit. ART's own clean prediction
    and success check in generate() are not counted (ours reports those as evaluation queries).
    Returns (x_adv, per-sample queries, wall seconds)."""
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    fn = DeviceCounter(t)
    clf = BlackBoxClassifier(fn, x.shape[1:], t.num_classes, clip_values=tuple(t.data_range))
    used: list[int] = []

    class Capped(HopSkipJump):
        def _compute_delta(self, current_sample, *a, **kw):
            self.snaps.append((fn.count, current_sample.copy()))
            return super()._compute_delta(current_sample, *a, **kw)

        def _perturb(self, x, *a, **kw):
            self.snaps = []
            fn.count, fn.cap = 0, budget
            try:
                out = super()._perturb(x, *a, **kw)
                used.append(fn.count)
            except OverBudget:
                q, out = self.snaps[-1] if self.snaps else (fn.count, x)
                used.append(q)
            finally:
                fn.cap = None
            return out

    np.random.seed(seed)  # ART draws its probes from NumPy's global generator
    art = Capped(clf, norm=2 if norm == "l2" else np.inf, max_iter=budget, verbose=False, **art_params)
    t0 = time.perf_counter()
    x_adv = art.generate(x, np.eye(t.num_classes)[y])
    return x_adv, np.asarray(used), time.perf_counter() - t0


def compare_hopskipjump(t, x, y, epsilons, budget, norm="l2", seed=0, art_settings=None):
    """Our HopSkipJump and ART's through device target t on the samples t classifies correctly,
    both unbounded within `budget` queries a sample; success at each eps = misclassified by the
    device after projecting onto the eps-ball (the base's rule, applied to ART's output too).
    art_settings: {label: ART keyword arguments}, each run as its own ART attack."""
    from edgeattack.attacks import make
    from edgeattack.attacks.base import perturbation_norms, project

    ok = t.predict(x) == y
    x, y = x[ok], y[ok]
    lo, hi = t.data_range
    m = len(y)

    def judge(x_adv):
        """x_adv: one unbounded result (projected per eps here) or one result per eps."""
        rows = []
        for e, eps in enumerate(epsilons):
            xa = np.clip(project(x_adv[e] if x_adv.ndim > x.ndim else x_adv, x, eps, norm), lo, hi)
            k = int((t.predict(xa) != y).sum())
            rows.append({"eps": eps, "successes": k, "attack_success_rate": k / m,
                         "attack_success_rate_ci95": wilson(k, m)})
        return rows

    def norms_of(x_adv):
        adv = t.predict(x_adv) != y
        d = np.where(adv, perturbation_norms(x_adv, x, norm), np.inf)
        return float(np.median(d))

    out = {"n": m, "budget": budget, "norm": norm}
    attack = make("hopskipjump", norm=norm, budget=budget)
    t0 = time.perf_counter()
    # every eps at once: one unbounded run, then ours spends one held-back query a sample at each
    # eps (hopskipjump's _probe_within); the last row (None) is the unbounded point
    res = attack(t, x, y, epsilons=[*epsilons, None], seed=seed)
    wall = time.perf_counter() - t0
    out["ours"] = {"params": attack.params, "rows": judge(res.x_adv[:-1]),
                   "median_norm": norms_of(res.x_adv[-1]), "queries_max": int(res.queries.max()),
                   "queries_mean": float(res.queries.mean()), "wall_s": wall}
    for label, kw in ({"defaults": {}} if art_settings is None else art_settings).items():
        x_art, used, wall = art_hopskipjump(t, x, y, budget, norm=norm, seed=seed, **kw)
        out[f"art_{label}"] = {"params": kw, "rows": judge(x_art), "median_norm": norms_of(x_art),
                               "queries_max": int(used.max()), "queries_mean": float(used.mean()),
                               "wall_s": wall}
    return out


ART_HSJ_SETTINGS = {"defaults": {}, "eval20": {"init_eval": 20, "max_eval": 20}}


def part_art(model, n):
    from edgeattack.attacks.targets import open_target
    from edgeattack.datasets import load_dataset

    ds = load_dataset("digits")
    with open_target(model, board="emu-tflm") as t:
        return compare_square(t, ds.x_test[:n], ds.y_test[:n], 0.2, 1000)


def part_hsj(model, n, budget):
    from edgeattack.attacks.targets import open_target
    from edgeattack.datasets import load_dataset

    ds = load_dataset("digits")
    x, y = ds.x_test[:n], ds.y_test[:n]
    out = {}
    with open_target(model, board="emu-tflm") as t:
        for norm, eps in (("l2", [0.5, 1.0, 1.5, 2.0]), ("linf", [0.05, 0.1, 0.2, 0.3])):
            out[norm] = compare_hopskipjump(t, x, y, eps, budget, norm=norm, art_settings=ART_HSJ_SETTINGS)
            print(f"emu-tflm hopskipjump {norm} ours vs ART:", json.dumps(out[norm]), flush=True)
    return out


def part_busy(model, n, budget):
    from edgeattack.attacks.targets import open_target

    x = np.random.default_rng(1).random((n, 32, 32, 3), dtype=np.float32)
    with open_target(model, board="emu-tflm") as t:
        y = t.predict(x)  # the untrained model's own classes: every sample "correct when clean"
        _, fig = run_square(t, x, y, 0.01, budget)
    return fig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="qemu,art,hsj,busy")
    ap.add_argument("--hsj-budget", type=int, default=1000)
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--busy-n", type=int, default=16)
    ap.add_argument("--busy-budget", type=int, default=30)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    out = {"command": " ".join(["python", "tools/bench_blackbox.py", *(argv or sys.argv[1:])])}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if parts & {"qemu", "art", "hsj"}:
            model = digits_ptq(work)
        if "qemu" in parts:
            out["qemu"] = part_qemu(model, args.n)
            print("qemu-m4 square:", json.dumps(out["qemu"]), flush=True)
        if "art" in parts:
            out["art"] = part_art(model, args.n)
            print("emu-tflm ours vs ART:", json.dumps(out["art"]), flush=True)
        if "hsj" in parts:
            out["hsj"] = part_hsj(model, args.n, args.hsj_budget)
        if "busy" in parts:
            out["busy"] = part_busy(resnet8(work), args.busy_n, args.busy_budget)
            print("emu-tflm resnet8 busy:", json.dumps(out["busy"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
