#!/usr/bin/env python
"""structured (circulant, hadamard) vs plain ptq-int8 on cnn-digits: accuracy and parameter counts.

    python tools/bench_structured.py --work runs/bench-st [--epochs 10] [--json st.json]

Trains cnn-digits on digits (20 epochs, seed 0), compresses it with the built-in `ptq-int8` and with
the `structured` step (then ptq-int8) for each configuration below, and reports float and TFLM int8
accuracy on the whole test split (Wilson 95% interval on the TFLM figure), the parameters of the
constrained layers (dense vs structured), the model's trained parameters, and the int8 weight bytes
(the same as ptq-int8's: the artifact stores the expanded matrices).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

CONFIGS = {
    "circulant": {"kind": "circulant"},
    "circulant block 16": {"kind": "circulant", "block": 16},
    "hadamard 2 factors": {"kind": "hadamard", "factors": 2},
    "hadamard 4 factors": {"kind": "hadamard", "factors": 4},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="folder for the model and artifacts (reused)")
    ap.add_argument("--epochs", type=int, default=10, help="structured fine-tuning epochs")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    from edgeattack.compression import compress
    from edgeattack.results.stats import wilson_interval
    from edgeattack.train import train_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "digits" / "model.keras"
    if not model.exists():
        train_model("cnn-digits", "digits", work / "digits", epochs=20, seed=0, progress=False)
    recipes = {"ptq-int8": "ptq-int8"}
    recipes.update({name: [{"step": "structured", "epochs": args.epochs, **cfg}, {"step": "ptq-int8"}]
                    for name, cfg in CONFIGS.items()})
    rows = {}
    for name, recipe in recipes.items():
        t0 = time.monotonic()
        res = compress(model, recipe, work / name.replace(" ", "-"), seed=0, force=True,
                       progress=False)
        m = res.manifest
        n = m["accuracy"]["test_samples"]
        tflm = m["accuracy"]["tflm"]
        row = {"float_accuracy": m["accuracy"]["float"], "tflm_accuracy": tflm,
               "tflm_accuracy_ci95": list(wilson_interval(round(tflm * n), n)), "test_samples": n,
               "model_params": m["params"], "weight_buffer_bytes": m["weight_buffer_bytes"],
               "compress_s": round(time.monotonic() - t0, 1)}
        if name != "ptq-int8":
            d = m["steps"][0]["details"]
            row.update({"layers": [(l["layer"], l["shape"]) for l in d["layers"]],
                        "layer_params_dense": d["structured_params_dense"],
                        "layer_params_structured": d["structured_params"],
                        "model_params_trained": d["model_params_trained"],
                        "projection_error": [l["projection_error"] for l in d["layers"]],
                        "accuracy_projected": d["accuracy_projected"]})
        rows[name] = row
        print(name, json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": "cnn-digits (digits, 20 epochs, seed 0)",
                                               "epochs": args.epochs, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
