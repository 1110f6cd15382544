#!/usr/bin/env python
"""Benchmark adversarial training and Defensive Quantization against plain ptq-int8 on digits, at full
scale: trains cnn-digits once (or takes --model), compresses it with the built-in recipes ptq-int8,
adv-train and dq (their real epochs), and evaluates each int8 artifact on a board with
`edgeattack.defenses.evaluate.evaluate` (white-box PGD and APGD-CE on the int8 surrogate, FGSM,
transfer from the float parent, black-box Square through the device, and the masking checks).

Prints a Markdown table: clean accuracy on the device, robust accuracy over the attack set per eps
(Wilson 95%), the difference to ptq-int8 (Newcombe's hybrid score interval from the two Wilson
intervals, which treats the two rates as independent: conservative for these paired samples), and
the masking flags. Writes OUT/bench.md and OUT/bench.json; each run's files stay in OUT/.

    python tools/bench_advtrain.py -o runs/bench-advtrain
    python tools/bench_advtrain.py -o runs/bench-advtrain --board qemu-m4 -n 200 --eps 0.1
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

RECIPES = ("ptq-int8", "adv-train", "dq")


def newcombe(k1: int, n1: int, k2: int, n2: int) -> list:
    """95% interval for p1 - p2 (Newcombe 1998, method 10: from the two Wilson intervals)."""
    from edgeattack.results.stats import wilson_interval

    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson_interval(k1, n1), wilson_interval(k2, n2)
    d = p1 - p2
    return [d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", required=True, type=Path)
    ap.add_argument("--model", type=Path, help="a trained cnn-digits model.keras (default: train one)")
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("-n", type=int, default=200, help="test samples evaluated")
    ap.add_argument("--eps", default="0.1", help="comma-separated L-inf budgets")
    ap.add_argument("--budget", type=int, default=None, help="Square queries per sample")
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import edgeattack.defenses  # noqa: F401  (registers adv-train and dq)
    from edgeattack.compression import compress
    from edgeattack.defenses.evaluate import evaluate
    from edgeattack.train import train_model

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    eps = [float(e) for e in args.eps.split(",")]
    model = args.model
    if model is None:
        model = train_model("cnn-digits", "digits", out / "float", epochs=20, seed=args.seed,
                            progress=False, force=True).model_path
    rows, robust = [], {}
    for recipe in args.recipes:
        t0 = time.monotonic()
        res = compress(model, recipe, out / recipe, seed=args.seed, progress=False, force=True)
        t_compress = time.monotonic() - t0
        kw = {"budget": args.budget} if args.budget else {}
        t0 = time.monotonic()
        ev = evaluate(res.tflite_path, board=args.board, epsilons=eps, n=args.n, seed=args.seed,
                      out=out / f"eval-{recipe}", force=True, progress=False, **kw)
        t_eval = time.monotonic() - t0
        for e in eps:
            row = next(r for r in ev["metrics"] if r["attack"] == "all" and r["eps"] == e)
            k, n = row["robust"], row["n"]
            robust[(recipe, e)] = (k, n)
            rows.append({"recipe": recipe, "eps": e, "n": n,
                         "clean_accuracy": ev["clean_accuracy"],
                         "robust_accuracy": row["robust_accuracy"],
                         "robust_accuracy_ci95": row["robust_accuracy_ci95"],
                         "attacks": row.get("attacks"),
                         "masking_flags": [f["sign"] for f in ev["masking_flags"]],
                         "litert_accuracy": res.manifest["accuracy"]["litert"],
                         "compress_s": round(t_compress, 1), "evaluate_s": round(t_eval, 1)})
    for r in rows:
        base = robust.get(("ptq-int8", r["eps"]))
        if base and r["recipe"] != "ptq-int8":
            k, n = robust[(r["recipe"], r["eps"])]
            r["minus_ptq_int8"] = k / n - base[0] / base[1]
            r["minus_ptq_int8_ci95"] = newcombe(k, n, *base)

    def f(v):
        return "-" if v is None else f"{v:.3f}"

    lines = [f"board {args.board}, n {args.n}, seed {args.seed}", "",
             "| recipe | eps | clean acc | robust acc [95% CI] | minus ptq-int8 [95% CI] | masking flags | LiteRT acc (test split) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = r["robust_accuracy_ci95"]
        diff = (f"{r['minus_ptq_int8']:+.3f} [{r['minus_ptq_int8_ci95'][0]:+.3f}, "
                f"{r['minus_ptq_int8_ci95'][1]:+.3f}]" if "minus_ptq_int8" in r else "-")
        lines.append(f"| {r['recipe']} | {r['eps']:g} | {f(r['clean_accuracy'])} | "
                     f"{r['robust_accuracy']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {diff} | "
                     f"{', '.join(r['masking_flags']) or 'none'} | {f(r['litert_accuracy'])} |")
    text = "\n".join(lines) + "\n"
    (out / "bench.md").write_text(text)
    (out / "bench.json").write_text(json.dumps(rows, indent=1))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
