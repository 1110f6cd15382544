"""Poisoning and backdoor figures at full scale (docs/benchmarks.md "Poisoning and backdoors").

    python tools/bench_backdoor.py --work runs/bench-bd [--json bd.json] [--skip-qemu]

1. BadNets on digits (10%, 3x3 patch, target 0, 30 epochs) beside an unpoisoned model; the float
   model and its ptq-int8, prune, cluster, pqat and distill artifacts (compressed on clean data) on
   emu-tflm, and the ptq-int8 artifact on qemu-m4.
2. The compression-activated backdoor: float model and ptq-int8 on qemu-m4 (and emu-tflm).
3. Distillation detox of the BadNets float model (clean data: 20% of the test split), ptq-int8 on
   emu-tflm before and after.
4. poison flip / flip-targeted / model, each with ptq-int8 on emu-tflm.
5. The pruning-and-poisoning curves: ratios 0, 0.5, 0.75, 0.9, 5 poisoned epochs (label flips, 30%).
6. clean-label gradient matching (1 -> 7, 95% of the 7s, eps 0.3, an ensemble of 3 surrogate
   seeds, one target a run picked near the 1/7 boundary by the attacker's surrogates) over
   --cl-runs seeds: the targets' success pooled with a Wilson interval, float, unpoisoned and
   ptq-int8 on emu-tflm, and each target's log10 p(7) under the poisoned and unpoisoned float
   models.
Prints markdown tables; --json writes every summary.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path


def fmt(r, key):
    v, ci = r.get(key), r.get(f"{key}_ci95")
    return "-" if v is None else f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def table(title, rows, extra=()):
    print(f"\n### {title}\n")
    cols = ["stage", "artifact", *extra, "board"]
    print("| " + " | ".join([c for c in cols if any(c in r for r in rows)] + ["clean accuracy",
                                                                          "attack success"]) + " |")
    print("|" + " --- |" * (len([c for c in cols if any(c in r for r in rows)]) + 2))
    for r in rows:
        cells = [str(r.get(c) if r.get(c) is not None else "host") for c in cols
                 if any(c in x for x in rows)]
        print("| " + " | ".join(cells + [fmt(r, "clean_accuracy"), fmt(r, "attack_success_rate")])
              + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--skip-qemu", action="store_true", help="No qemu-m4 judging.")
    ap.add_argument("--only", help="Comma-separated parts: badnets,activated,detox,poison,curves,"
                                   "clean-label")
    ap.add_argument("--cl-runs", type=int, default=8, help="clean-label: seeds (one target each).")
    ap.add_argument("--cl-eps", type=float, default=0.3, help="clean-label: L-inf budget.")
    ap.add_argument("--cl-pick", default="boundary", help="clean-label: target pick, random or "
                                                         "boundary (--set pick).")
    ap.add_argument("--cl-surrogates", type=int, default=3,
                    help="clean-label: surrogate seeds in the ensemble (--set surrogates).")
    args = ap.parse_args()
    from edgeattack.attacks.poisoning import run_backdoor, run_detox, run_poison
    from edgeattack.attacks.poisoning.run import judge_backdoor
    from edgeattack.attacks.poisoning.triggers import parse_trigger
    from edgeattack.datasets import load_dataset

    parts = set((args.only or "badnets,activated,detox,poison,curves,clean-label").split(","))
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    results, seconds = {}, {}

    def timed(name, fn):
        t0 = time.monotonic()
        out = fn()
        seconds[name] = round(time.monotonic() - t0, 1)
        results[name] = out
        return out

    if "detox" in parts and "badnets" not in parts \
            and not (work / "badnets" / "float" / "model.keras").exists():
        # detox alone needs only the float BadNets model (the same seed and epochs as part 1)
        timed("badnets-float", lambda: run_backdoor(
            work / "badnets", trigger="patch:3", target_class=0, rate=0.1, epochs=30, recipes=[],
            board=None, force=True, progress=False))
    if "badnets" in parts:
        bd = timed("badnets", lambda: run_backdoor(
            work / "badnets", trigger="patch:3", target_class=0, rate=0.1, epochs=30, baseline=True,
            recipes=["ptq-int8", "prune", "cluster", "pqat", "distill"], board="emu-tflm",
            force=True, progress=False))
        rows = list(bd["metrics"])
        if not args.skip_qemu:
            clean = load_dataset("digits")
            trig = parse_trigger("patch:3", clean.input_shape)
            rows += judge_backdoor([("ptq-int8", work / "badnets" / "ptq-int8" / "model.tflite")],
                                   clean, trig, 0, "qemu-m4", None, False)
            results["badnets_qemu"] = rows[-1]
        table("BadNets, digits, 10%, 3x3 patch, target 0", rows)
    if "activated" in parts:
        board = "emu-tflm" if args.skip_qemu else "qemu-m4"
        act = timed("activated", lambda: run_backdoor(
            work / "activated", trigger="patch:3", target_class=0, rate=0.1, epochs=30,
            baseline=True, activated=True, recipes=["ptq-int8"], board=board, force=True,
            progress=False))
        table(f"Compression-activated backdoor (ptq-int8 on {board})", act["metrics"])
        print("\nactivation:", json.dumps(act["params"]["activation"]))
    if "detox" in parts:
        dx = timed("detox", lambda: run_detox(
            work / "badnets" / "float" / "model.keras", work / "detox", clean_data="0.2",
            trigger="patch:3", target_class=0, recipes=["ptq-int8"], board="emu-tflm", force=True,
            progress=False))
        table("Distillation detox (clean data: 20% of the test split)", dx["metrics"])
        print("\nflags:", json.dumps(dx["data"]))
    if "poison" in parts:
        for kind, kw in (("flip", {"rate": 0.3}), ("flip-targeted", {"rate": 0.5}),
                         ("model", {"rate": 0.3})):
            p = timed(f"poison-{kind}", lambda: run_poison(
                work / f"poison-{kind}", kind, epochs=30, baseline=True, recipes=["ptq-int8"],
                board="emu-tflm", force=True, progress=False, **kw))
            table(f"poison {kind} {json.dumps(kw)}", p["metrics"])
    if "curves" in parts:
        pc = timed("curves", lambda: run_poison(
            work / "curves", "flip", rate=0.3, prune_ratios=[0, 0.5, 0.75, 0.9], epochs=5,
            pretrain_epochs=30, recipes=["ptq-int8"], board="emu-tflm", force=True,
            progress=False))
        print("\n### Pruning and poisoning (flip 30%, ptq-int8 on emu-tflm): clean accuracy\n")
        ratios = sorted({r["prune_ratio"] for r in pc["metrics"]})
        epochs = sorted({r["epoch"] for r in pc["metrics"]})
        print("| prune ratio | " + " | ".join(f"epoch {e}" for e in epochs) + " |")
        print("|" + " --- |" * (len(epochs) + 1))
        for ratio in ratios:
            cells = [f"{r['clean_accuracy']:.3f}" for e in epochs for r in pc["metrics"]
                     if r["prune_ratio"] == ratio and r["epoch"] == e]
            print(f"| {ratio:g} | " + " | ".join(cells) + " |")
    if "clean-label" in parts:
        import numpy as np
        from edgeattack.results import wilson_interval
        from edgeattack.tfutil import keras

        clean = load_dataset("digits")
        hits, runs = {}, []
        for seed in range(args.cl_runs):
            cl = timed(f"clean-label-{seed}", lambda: run_poison(
                work / f"clean-label-{seed}", "clean-label", rate=0.95, source_class=1,
                target_class=7, eps=args.cl_eps, epochs=30, baseline=True, recipes=["ptq-int8"],
                board="emu-tflm", seed=seed, force=True, progress=False,
                settings={"pick": args.cl_pick, "surrogates": args.cl_surrogates}))
            targets = cl["data"]["poison"]["targets"]
            logp = {name: np.round(np.log10(keras().models.load_model(
                        work / f"clean-label-{seed}" / name / "model.keras").predict(
                        clean.x_test[targets], verbose=0)[:, 7] + 1e-12), 2).tolist()
                    for name in ("float", "unpoisoned")}
            runs.append({"seed": seed, "targets": targets,
                         "alignment_loss": round(cl["data"]["poison"]["alignment_loss"], 3),
                         "log10_p7_poisoned": logp["float"], "log10_p7_unpoisoned": logp["unpoisoned"]})
            for r in cl["metrics"]:
                k, n = hits.get(r["artifact"], (0, 0))
                hits[r["artifact"]] = (k + r["backdoor_successes"], n + r["backdoor_eligible"])
        print(f"\n### Clean-label gradient matching, 1 -> 7, eps {args.cl_eps:g}, pick "
              f"{args.cl_pick}, {args.cl_surrogates} surrogate seeds, {args.cl_runs} seeds x 1 "
              f"target\n")
        print("| artifact | targets classified 7 | rate [Wilson 95%] |\n| --- | --- | --- |")
        for name, (k, n) in hits.items():
            lo, hi = wilson_interval(k, n)
            print(f"| {name} | {k}/{n} | {k / n:.3f} [{lo:.3f}, {hi:.3f}] |")
        print("\nruns:", json.dumps(runs))
    print("\nseconds:", json.dumps(seconds))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "seconds": seconds}, indent=1))
    if (work / "tmp").exists():
        shutil.rmtree(work / "tmp")


if __name__ == "__main__":
    main()
