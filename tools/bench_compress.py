#!/usr/bin/env python
"""Benchmark every built-in compression recipe on digits with its real (built-in) epochs.

Trains cnn-digits once (or takes --model), runs each recipe through edgeattack.compression.compress,
and prints a Markdown table (accuracy float / LiteRT / TFLM, sizes, gzip, sparsity, distinct values,
parameters, MACs, TFLM arena, LiteRT-vs-TFLM agreement). Writes OUT/bench.md and OUT/bench.json; each
recipe's full output stays in OUT/<recipe>/.

    python tools/bench_compress.py -o runs/bench-compress
    python tools/bench_compress.py -o runs/bench-compress --recipes ptq-int8 pqat --seed 1
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

COLUMNS = [
    ("recipe", "recipe"), ("float", "float acc"), ("litert", "LiteRT acc"), ("tflm", "TFLM acc"),
    ("tflite_bytes", ".tflite B"), ("weight_bytes", "weights B"), ("gzip_bytes", "weights gzip B"),
    ("sparsity", "sparsity"), ("max_distinct", "max distinct/ch"), ("params", "params"),
    ("macs", "MACs"), ("arena", "TFLM arena B"), ("agree", "LiteRT=TFLM"), ("lsb", "max LSB"),
    ("seconds", "time s"),
]


def row_of(name: str, m: dict, seconds: float) -> dict:
    a = m["accuracy"]
    return {
        "recipe": name, "float": a["float"], "litert": a["litert"], "tflm": a["tflm"],
        "tflite_bytes": m["tflite_bytes"], "weight_bytes": m["weight_buffer_bytes"],
        "gzip_bytes": m["weight_buffer_gzip_bytes"], "sparsity": m["sparsity"],
        "max_distinct": m["max_distinct_values_per_channel"], "params": m["params"],
        "macs": m["macs"], "arena": m["tflm_arena_bytes"], "agree": m["agreement"],
        "lsb": m["max_lsb_diff"], "seconds": round(seconds, 1),
    }


def fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}" if v <= 1.0 else f"{v:.1f}"
    return str(v)


def table(rows: list[dict], baseline: dict) -> str:
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    lines.append("| float32 (source) | " + fmt(baseline["accuracy"]) + " | n/a | n/a | "
                 + f"{baseline['tflite_bytes']} | {baseline['weight_bytes']} | "
                 + f"{baseline['gzip_bytes']} | n/a | n/a | {baseline['params']} | n/a | n/a | n/a "
                 + "| n/a | n/a |")
    for r in rows:
        lines.append("| " + " | ".join(fmt(r[k]) for k, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from edgeattack.compression import compress
    from edgeattack.compression.recipe import BUILTIN_RECIPES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", required=True, type=Path)
    ap.add_argument("--model", type=Path, help="a trained model.keras (default: train cnn-digits)")
    ap.add_argument("--epochs", type=int, default=30, help="training epochs of the source model")
    ap.add_argument("--recipes", nargs="+", default=list(BUILTIN_RECIPES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    model = args.model
    if model is None:
        from edgeattack.train import train_model

        t0 = time.monotonic()
        res = train_model("cnn-digits", "digits", args.out / "float", epochs=args.epochs,
                          seed=args.seed, force=True)
        model = res.model_path
        print(f"trained cnn-digits: accuracy {res.test_accuracy:.4f} ({time.monotonic() - t0:.1f} s)",
              file=sys.stderr)

    rows, manifests, baseline = [], {}, None
    for name in args.recipes:
        t0 = time.monotonic()
        res = compress(model, name, args.out / name, seed=args.seed, force=True, progress=True,
                       float_baseline=baseline is None)
        m = res.manifest
        if baseline is None:
            f = m["float_model"]["tflite_float32"]
            baseline = {"accuracy": m["source"]["accuracy"], "params": m["source"]["params"],
                        "tflite_bytes": f["size_bytes"], "weight_bytes": f["weight_buffer_bytes"],
                        "gzip_bytes": f["weight_buffer_gzip_bytes"]}
        rows.append(row_of(name, m, time.monotonic() - t0))
        manifests[name] = m
        print(f"{name}: done in {rows[-1]['seconds']} s", file=sys.stderr)

    md = (f"cnn-digits on digits ({manifests[args.recipes[0]]['dataset']['test']} test samples), "
          f"seed {args.seed}, built-in recipe epochs; float32 row = the source model as a float32 "
          f".tflite.\n\n" + table(rows, baseline))
    (args.out / "bench.md").write_text(md)
    (args.out / "bench.json").write_text(json.dumps({"baseline": baseline, "rows": rows}, indent=2))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
