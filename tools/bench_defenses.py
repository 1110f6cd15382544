#!/usr/bin/env python
"""Defenses against plain ptq-int8 on the device: issue 12's "What must hold" figures for the
defenses this version has (adv-train, dq).

    python tools/bench_defenses.py --work runs/bench-def [-n 200] [--eps 0.05,0.1] [--budget 100]
                                   [--board qemu-m4] [--json def.json]

Trains cnn-digits on digits (20 epochs, seed 0), compresses it with `ptq-int8` and with each
defense's built-in recipe, and evaluates every artifact on the board with `edgeattack evaluate`
(pgd, apgd-ce, fgsm on the int8 surrogate, transfer from the float parent, square through the
device, unbounded pgd; first -n test samples). Reports clean and robust accuracy per eps with Wilson
intervals, the masking flags, and each defense's robust-accuracy difference to ptq-int8 at the
largest eps with Newcombe's paired interval (the same samples). The issue's bars: adv-train's robust
accuracy >= 30 points above ptq-int8 with clean accuracy within 5 points and no masking flag; dq's
robust accuracy at least ptq-int8's.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="folder for the model, artifacts and evaluations (reused)")
    ap.add_argument("-n", type=int, default=200, help="test samples evaluated")
    ap.add_argument("--eps", default="0.05,0.1")
    ap.add_argument("--budget", type=int, default=100, help="square's queries per sample")
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("--recipes", default="ptq-int8,adv-train,dq", help="the first is the baseline")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    import edgeattack.defenses  # noqa: F401  (registers the defense steps and their recipes)
    from edgeattack.compression import compress
    from edgeattack.compression.recipe import builtin_names
    from edgeattack.defenses.evaluate import evaluate
    from edgeattack.results.metrics import paired_difference
    from edgeattack.train import train_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "digits" / "model.keras"
    if not model.exists():
        train_model("cnn-digits", "digits", work / "digits", epochs=20, seed=0, progress=False)
    eps = [float(e) for e in args.eps.split(",")]
    recipes = [r for r in args.recipes.split(",") if r in builtin_names()]
    out = {"board": args.board, "n": args.n, "eps": eps, "budget": args.budget, "artifacts": {}}
    for recipe in recipes:
        art = work / recipe
        t0 = time.monotonic()
        if not (art / "manifest.json").exists():
            compress(model, recipe, art, seed=0, force=True, progress=False)
        t_compress = time.monotonic() - t0
        t0 = time.monotonic()
        s = evaluate(art / "model.tflite", board=args.board, epsilons=eps, n=args.n, seed=0,
                     budget=args.budget, out=work / f"eval-{recipe}", force=True, progress=False)
        rows = {(r["attack"], r["eps"]): r for r in s["metrics"]}
        entry = {"clean_accuracy": s["clean_accuracy"], "clean_accuracy_ci95": s["clean_accuracy_ci95"],
                 "robust": {str(e): {"robust_accuracy": rows[("all", e)]["robust_accuracy"],
                                     "ci95": rows[("all", e)]["robust_accuracy_ci95"]} for e in eps},
                 "attack_success": {f"{a}@{e:g}": r["attack_success_rate"] for (a, e), r in rows.items()
                                    if a != "all"},
                 "masking_flags": [f["sign"] for f in s["masking_flags"]],
                 "compress_s": round(t_compress, 1), "evaluate_s": round(time.monotonic() - t0, 1),
                 "device_inferences": s["device_inferences"],
                 "_robust_ids": {e: set(rows[("all", e)]["robust_ids"]) for e in eps}}
        out["artifacts"][recipe] = entry
        print(f"{recipe}: clean {_rate(entry['clean_accuracy'], entry['clean_accuracy_ci95'])}; "
              + "; ".join(f"robust@{e:g} {_rate(v['robust_accuracy'], v['ci95'])}"
                          for e, v in zip(eps, entry["robust"].values()))
              + f"; flags {entry['masking_flags'] or 'none'} ({entry['evaluate_s']:.0f} s)", flush=True)
    base = recipes[0]
    top = eps[-1]
    b = out["artifacts"][base]
    for recipe in recipes[1:]:
        a = out["artifacts"][recipe]
        ids = range(args.n)
        d = paired_difference([i in a["_robust_ids"][top] for i in ids], [i in b["_robust_ids"][top] for i in ids])
        a["robust_difference_vs_" + base] = {"eps": top, "difference": d["difference"], "ci95": d["ci95"]}
        a["clean_difference_vs_" + base] = a["clean_accuracy"] - b["clean_accuracy"]
        print(f"{recipe} - {base} robust@{top:g}: {d['difference']:+.3f} [{d['ci95'][0]:+.3f}, "
              f"{d['ci95'][1]:+.3f}] (paired, n={d['n']}); clean {a['clean_difference_vs_' + base]:+.3f}")
    for a in out["artifacts"].values():
        a.pop("_robust_ids")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def _rate(v, ci) -> str:
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


if __name__ == "__main__":
    sys.exit(main())
