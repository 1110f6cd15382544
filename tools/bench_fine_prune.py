#!/usr/bin/env python
"""fine-prune against BadNets on digits, judged on the device.

    python tools/bench_fine_prune.py --work runs/bench-fp [--board qemu-m4] [--clean-data 0.3] [--json fp.json]

Trains cnn-digits on digits poisoned with BadNets (3x3 patch, target 0, 10%, 30 epochs, seed 0) and
compresses it with plain `ptq-int8` (the suspect artifact, through edgeattack.attacks.poisoning's
run_backdoor), then with the built-in `fine-prune` recipe on the defender's clean data (a fraction of
the clean training split), and judges both on --board over the whole clean test split: clean accuracy,
and backdoor success over the non-target inputs the artifact classifies correctly when clean, with
Wilson intervals. The issue's bar: success falls by >= 50 points, clean accuracy within 3 points.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="folder for the runs (the backdoor run is reused)")
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("--clean-data", default="0.3")
    ap.add_argument("--epochs", type=int, default=30, help="BadNets training epochs")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    import edgeattack.defenses  # noqa: F401  (registers fine-prune)
    from edgeattack.attacks.poisoning import run_backdoor
    from edgeattack.attacks.poisoning.run import judge_backdoor
    from edgeattack.attacks.poisoning.triggers import parse_trigger
    from edgeattack.compression import compress
    from edgeattack.compression.recipe import load_recipe, with_clean_data
    from edgeattack.datasets import load_dataset

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    bd = work / "badnets"
    t0 = time.monotonic()
    if not (bd / "backdoor.json").exists():
        run_backdoor(bd, trigger="patch:3", target_class=0, rate=0.1, recipes=["ptq-int8"],
                     board=args.board, epochs=args.epochs, seed=0, progress=False)
    suspect = {r["artifact"]: r for r in json.loads((bd / "backdoor.json").read_text())["metrics"]}
    recipe = with_clean_data(load_recipe("fine-prune"), args.clean_data)
    res = compress(bd / "float" / "model.keras", recipe, work / "fine-prune", dataset="digits", seed=0,
                   force=True, progress=False)
    clean = load_dataset("digits")
    trig = parse_trigger("patch:3", clean.input_shape, data_range=clean.data_range)
    (row,) = judge_backdoor([("fine-prune", res.tflite_path)], clean, trig, 0, args.board, None, False)
    base = suspect["ptq-int8"]
    keys = ("clean_accuracy", "clean_accuracy_ci95", "attack_success_rate", "attack_success_rate_ci95")
    details = res.manifest["steps"][0]["details"]
    out = {"board": args.board, "clean_data": args.clean_data,
           "suspect_float": {k: suspect["float"][k] for k in keys},
           "suspect_ptq_int8": {k: base[k] for k in keys},
           "fine_prune": {k: row[k] for k in keys},
           "pruned": [(s["producers"], s["channels_before"], s["channels_after"])
                      for s in details["spaces"]],
           "accuracy_after_pruning_before_finetuning": details["accuracy_pruned"],
           "weight_buffer_bytes": {"ptq-int8": json.loads((bd / "ptq-int8" / "manifest.json")
                                                          .read_text())["weight_buffer_bytes"],
                                   "fine-prune": res.manifest["weight_buffer_bytes"]},
           "success_drop": base["attack_success_rate"] - row["attack_success_rate"],
           "clean_change": row["clean_accuracy"] - base["clean_accuracy"],
           "wall_s": round(time.monotonic() - t0, 1)}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
