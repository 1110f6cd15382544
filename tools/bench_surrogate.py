#!/usr/bin/env python3
"""Fidelity of the int8 surrogate (edgeattack.attacks.surrogate) against TFLM's interpreter.

    python tools/bench_surrogate.py [--models all] [--recipes all] [-n 300] [--random 0] [--seed 0]

For every zoo model x every full-integer recipe (cnn-digits trained on digits for the recipes that
need training; the other zoo models at half width on synthetic data of their shape, one epoch) it
compresses, runs n inputs through the surrogate and through TFLM, and prints class agreement and the
distribution of |int8 output difference| in LSB. Non-integer recipes (dynamic-range, float16) are
listed as refused. --random N also checks N of the random int8 models that tools/fwrt_bitexact.py
generates (cached) against their recorded TFLM outputs. Prints one table and a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ZOO_DATA = {"cnn-digits": "digits", "cnn-mnist": "synthetic:28x28x1:10:600",
            "resnet8": "synthetic:32x32x3:10:600", "dscnn": "synthetic:49x10x1:12:600",
            "mobilenet-tiny": "synthetic:32x32x3:10:600"}
INTEGER_RECIPES = ["ptq-int8", "prune", "cluster", "qat", "pqat", "cqat", "pcqat", "distill", "lowrank"]
FLOAT_RECIPES = ["dynamic-range", "float16"]


def compare(model_bytes: bytes, x) -> dict:
    from edgeattack.attacks.surrogate import Int8Surrogate
    from edgeattack.tflite.runtimes import TFLMRunner

    s = Int8Surrogate(model_bytes)
    t0 = time.perf_counter()
    ours = s.int8_output(x)
    t_sur = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = TFLMRunner(model_bytes).predict_raw(x).reshape(len(x), -1)
    t_tflm = time.perf_counter() - t0
    diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64)).ravel()
    hist = np.bincount(diff, minlength=3)
    return {"n": len(x), "agreement": float(np.mean(ours.argmax(1) == ref.argmax(1))),
            "lsb_0": int(hist[0]), "lsb_1": int(hist[1]), "lsb_ge2": int(hist[2:].sum()),
            "max_lsb": int(diff.max()) if diff.size else 0, "elements": int(diff.size),
            "surrogate_s": round(t_sur, 3), "tflm_s": round(t_tflm, 3)}


def run_matrix(models, recipes, n, seed, work: Path) -> list[dict]:
    from edgeattack.attacks.surrogate import Int8Surrogate
    from edgeattack.compression import compress
    from edgeattack.datasets import load_dataset
    from edgeattack.errors import UsageError
    from edgeattack.train import train_model

    rows = []
    for zoo in models:
        data = load_dataset(ZOO_DATA[zoo])
        big = zoo == "cnn-digits"
        trained = train_model(zoo, data, work / zoo / "float", epochs=20 if big else 1, batch_size=32,
                              seed=seed, progress=False, **({} if big else {"width": 0.5}))
        x = data.x_test[:n]
        for recipe in recipes:
            t0 = time.perf_counter()
            try:
                res = compress(trained.model_path, recipe, work / zoo / recipe, seed=seed, progress=False)
            except Exception as e:  # a recipe that cannot run on this model: report, go on
                rows.append({"model": zoo, "recipe": recipe, "status": f"compress failed: {e}"})
                print(f"{zoo:15s} {recipe:14s} compress failed: {e}", flush=True)
                continue
            data_bytes = res.tflite_path.read_bytes()
            if recipe in FLOAT_RECIPES:
                try:
                    Int8Surrogate(data_bytes)
                    status = "NOT refused"
                except UsageError as e:
                    status = f"refused: {e}"
                rows.append({"model": zoo, "recipe": recipe, "status": status})
                print(f"{zoo:15s} {recipe:14s} {status[:100]}", flush=True)
                continue
            row = {"model": zoo, "recipe": recipe, "status": "ok", **compare(data_bytes, x),
                   "compress_s": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(f"{zoo:15s} {recipe:14s} n={row['n']:4d} agree={row['agreement']:.4f} "
                  f"|diff| 0:{row['lsb_0']} 1:{row['lsb_1']} >=2:{row['lsb_ge2']} max={row['max_lsb']} "
                  f"(surrogate {row['surrogate_s']} s, TFLM {row['tflm_s']} s)", flush=True)
    return rows


def run_random(count: int, seed: int) -> dict:
    from edgeattack.attacks.surrogate import Int8Surrogate
    from fwrt_bitexact import ensure_models

    folder = ensure_models(count, seed, 5, 1)
    models = sorted(folder.glob("model_*.tflite"))
    exact, hist = 0, np.zeros(3, np.int64)
    for p in models:
        z = np.load(p.with_suffix(".npz"))
        s = Int8Surrogate(p)
        x = z["inputs"]
        x = x.reshape(len(x), *s.input_shape)
        ours = s.int8_output(x if x.dtype == np.int8 else x.astype(np.float32)).reshape(len(x), -1)
        ref = z["expected"].reshape(len(x), -1)
        if ref.dtype != np.int8:  # a float-output model: back to the int8 it dequantized
            ref = np.round(ref / np.float32(s.output_scale) + s.output_zero_point)
        diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64)).ravel()
        exact += int(diff.max(initial=0) == 0)
        hist += np.array([np.sum(diff == 0), np.sum(diff == 1), np.sum(diff >= 2)])
    out = {"models": len(models), "exact_models": exact, "lsb_0": int(hist[0]), "lsb_1": int(hist[1]),
           "lsb_ge2": int(hist[2])}
    print(f"random int8 models: {exact}/{len(models)} bit-exact; |diff| 0:{hist[0]} 1:{hist[1]} "
          f">=2:{hist[2]}", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="all", help="comma-separated zoo models, or all")
    ap.add_argument("--recipes", default="all", help="comma-separated recipes, or all")
    ap.add_argument("-n", type=int, default=300, help="test inputs per model (default 300)")
    ap.add_argument("--random", type=int, default=0, help="also check N generated random models")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    models = list(ZOO_DATA) if a.models == "all" else a.models.split(",")
    recipes = INTEGER_RECIPES + FLOAT_RECIPES if a.recipes == "all" else a.recipes.split(",")
    with tempfile.TemporaryDirectory(prefix="bench_surrogate_") as tmp:
        rows = run_matrix(models, recipes, a.n, a.seed, Path(tmp))
    ok = [r for r in rows if r.get("status") == "ok"]
    summary = {"rows": rows}
    if ok:
        tot = {k: sum(r[k] for r in ok) for k in ("lsb_0", "lsb_1", "lsb_ge2", "elements")}
        summary["total"] = {**tot, "artifacts": len(ok),
                            "min_agreement": min(r["agreement"] for r in ok),
                            "max_lsb": max(r["max_lsb"] for r in ok)}
        print(f"total: {len(ok)} int8 artifacts, min agreement {summary['total']['min_agreement']:.4f}, "
              f"|diff| 0:{tot['lsb_0']} 1:{tot['lsb_1']} >=2:{tot['lsb_ge2']} of {tot['elements']} elements")
    if a.random:
        summary["random"] = run_random(a.random, a.seed)
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
