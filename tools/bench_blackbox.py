#!/usr/bin/env python
"""Black-box attack figures through devices (docs/benchmarks.md, "Black-box attacks").

    python tools/bench_blackbox.py                       # all three parts
    python tools/bench_blackbox.py --parts qemu --json bb.json

Parts:
  qemu   Square (L-inf, eps 0.2, budget 1,000 queries per sample) on the first 100 digits test
         samples through qemu-m4 running the ptq-int8 digits model (cnn-digits trained 20 epochs,
         seed 0): attack success rate with its Wilson interval, median queries, and the device's
         inference counter (INFO) against the queries reported (attack + evaluation).
  art    The same attack on emu-tflm beside ART's SquareAttack through the same device (ART's
         BlackBoxClassifierNeuralNetwork over Device.infer_many, counting rows), ART's max_iter set
         so that no sample can cost it more than our per-sample budget (3 model calls an iteration).
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
    """Our Square on target t; returns (result, attack, figures dict)."""
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


def part_art(model, n):
    from art.attacks.evasion import SquareAttack
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    from edgeattack.attacks.targets import open_target
    from edgeattack.datasets import load_dataset

    ds = load_dataset("digits")
    x, y = ds.x_test[:n], ds.y_test[:n]
    budget, eps = 1000, 0.2
    with open_target(model, board="emu-tflm") as t:
        res, ours = run_square(t, x, y, eps, budget)
        count = [0]

        def predict(xb):
            xb = np.asarray(xb, dtype=np.float32)
            count[0] += len(xb)
            return np.stack([r.output for r in t.device.infer_many(iter(xb))])

        clf = BlackBoxClassifierNeuralNetwork(predict, x.shape[1:], 10, channels_first=False,
                                              clip_values=(0.0, 1.0))
        correct = res.clean_correct
        np.random.seed(0)
        t0 = time.perf_counter()
        art = SquareAttack(clf, norm=np.inf, eps=eps, max_iter=(budget - 3) // 3, nb_restarts=1,
                           verbose=False)
        x_art = art.generate(x[correct], np.eye(10)[y[correct]])
        wall = time.perf_counter() - t0
        k = int((t.predict(x_art) != y[correct]).sum())
    m = int(correct.sum())
    return {"ours": ours, "art": {"max_iter": (budget - 3) // 3, "successes": k, "clean_correct": m,
                                   "attack_success_rate": k / m, "attack_success_rate_ci95": wilson(k, m),
                                   "device_queries": count[0], "wall_s": wall}}


def part_busy(model, n, budget):
    from edgeattack.attacks.targets import open_target

    x = np.random.default_rng(1).random((n, 32, 32, 3), dtype=np.float32)
    with open_target(model, board="emu-tflm") as t:
        y = t.predict(x)  # the untrained model's own classes: every sample "correct when clean"
        _, fig = run_square(t, x, y, 0.01, budget)
    return fig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="qemu,art,busy")
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--busy-n", type=int, default=16)
    ap.add_argument("--busy-budget", type=int, default=30)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    out = {"command": " ".join(["python", "tools/bench_blackbox.py", *(argv or sys.argv[1:])])}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if parts & {"qemu", "art"}:
            model = digits_ptq(work)
        if "qemu" in parts:
            out["qemu"] = part_qemu(model, args.n)
            print("qemu-m4 square:", json.dumps(out["qemu"]), flush=True)
        if "art" in parts:
            out["art"] = part_art(model, args.n)
            print("emu-tflm ours vs ART:", json.dumps(out["art"]), flush=True)
        if "busy" in parts:
            out["busy"] = part_busy(resnet8(work), args.busy_n, args.busy_budget)
            print("emu-tflm resnet8 busy:", json.dumps(out["busy"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
