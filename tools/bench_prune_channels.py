#!/usr/bin/env python
"""prune-channels vs plain ptq-int8 on cnn-digits: int8 weight bytes, qemu-m4 instructions per
inference and accuracy on the device.

    python tools/bench_prune_channels.py --work runs/bench-pc [--ratio 0.5] [-n 360] [--json pc.json]

Trains cnn-digits on digits (20 epochs, seed 0), compresses it with the built-in `ptq-int8` and with
`prune-channels` at --ratio (then ptq-int8), and for each artifact reports the manifest's weight-buffer
bytes, file bytes and MACs, and runs the first -n test samples on qemu-m4: the median instructions
per inference (QEMU -icount, the firmware's SysTick) and the device's accuracy with its Wilson
interval. The issue's bar: at ratio 0.5 weight bytes and instructions both fall by >= 40 %, accuracy
within 2 points.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def on_device(tflite: Path, x, y, board: str) -> dict:
    import numpy as np

    from edgeattack.device.api import open_device
    from edgeattack.results.stats import wilson_interval

    with open_device(board, tflite) as dev:
        results = list(dev.infer_many(x))
    preds = np.array([r.pred for r in results])
    correct = int((preds == y).sum())
    lo, hi = wilson_interval(correct, len(y))
    return {"samples": len(y), "accuracy": correct / len(y), "accuracy_ci95": [lo, hi],
            "instructions_p50": int(statistics.median(r.device_instructions for r in results)),
            "instructions_min": int(min(r.device_instructions for r in results)),
            "instructions_max": int(max(r.device_instructions for r in results))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="folder for the model and artifacts (reused)")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=10, help="prune-channels fine-tuning epochs")
    ap.add_argument("-n", type=int, default=360, help="test samples run on the device")
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    from edgeattack.compression import compress
    from edgeattack.datasets import load_dataset
    from edgeattack.train import train_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "digits" / "model.keras"
    if not model.exists():
        train_model("cnn-digits", "digits", work / "digits", epochs=20, seed=0, progress=False)
    data = load_dataset("digits")
    x, y = data.x_test[:args.n], data.y_test[:args.n]
    rows = {}
    recipes = {"ptq-int8": "ptq-int8",
               "prune-channels": [{"step": "prune-channels", "ratio": args.ratio,
                                   "epochs": args.epochs}, {"step": "ptq-int8"}]}
    for name, recipe in recipes.items():
        t0 = time.monotonic()
        res = compress(model, recipe, work / name, seed=0, force=True, progress=False)
        m = res.manifest
        row = {"weight_buffer_bytes": m["weight_buffer_bytes"], "tflite_bytes": m["tflite_bytes"],
               "macs": m["macs"], "params": m["params"], "tflm_test_accuracy": m["accuracy"]["tflm"],
               "compress_s": round(time.monotonic() - t0, 1)}
        row[args.board] = on_device(res.tflite_path, x, y, args.board)
        rows[name] = row
        print(name, json.dumps(row), flush=True)
    base, pc = rows["ptq-int8"], rows["prune-channels"]
    out = {
        "model": "cnn-digits (digits, 20 epochs, seed 0)", "ratio": args.ratio, "board": args.board,
        "rows": rows,
        "weight_bytes_drop": 1 - pc["weight_buffer_bytes"] / base["weight_buffer_bytes"],
        "instructions_drop": 1 - pc[args.board]["instructions_p50"] / base[args.board]["instructions_p50"],
        "macs_drop": 1 - pc["macs"] / base["macs"],
        "device_accuracy_change": pc[args.board]["accuracy"] - base[args.board]["accuracy"],
    }
    print(f"ratio {args.ratio}: weight bytes -{out['weight_bytes_drop']:.1%}, {args.board} instructions "
          f"-{out['instructions_drop']:.1%} (MACs -{out['macs_drop']:.1%}), device accuracy "
          f"{base[args.board]['accuracy']:.4f} -> {pc[args.board]['accuracy']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
