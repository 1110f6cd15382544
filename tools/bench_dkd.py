#!/usr/bin/env python
"""dkd against single distilled students: transfer success of PGD crafted on the teacher, judged on
the device (issue 12: "transfer success from the teacher to the ensemble is lower than to a single
student of the same size").

    python tools/bench_dkd.py --work runs/bench-dkd [-n 300] [--eps 0.05,0.1,0.2] [--board qemu-m4]
                              [--students 3] [--width 0.5] [--epochs 30] [--json dkd.json]

Trains cnn-digits on digits (20 epochs, seed 0: the teacher), then compresses it four ways, each
ending in ptq-int8: `dkd` (N students at --width, linear-CKA diversity penalty), `dkd` with
diversity 0 (the same ensemble trained without the penalty: what the penalty adds), `distill` into one
student whose parameter count is closest to the ensemble's ("same size"), and `distill` into one
student at --width (the size of one member). PGD (L-inf, the attack's defaults) is crafted on the
float teacher for the first -n test samples and every int8 artifact is judged on --board with
`edgeattack.attacks.transfer` (attack success over the samples it classifies correctly when clean,
with Wilson 95% intervals). Artifacts are reused when the work folder has them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def same_size_width(ensemble_params: int, shape, classes: int) -> float:
    """The cnn-digits width (0.05 steps) whose parameter count is closest to the ensemble's."""
    from edgeattack.zoo import build_model

    widths = [round(0.05 * i, 2) for i in range(4, 41)]
    return min(widths, key=lambda w: abs(build_model("cnn-digits", shape, classes, w).count_params()
                                         - ensemble_params))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="folder for the models, artifacts and figures (reused)")
    ap.add_argument("-n", type=int, default=300, help="test samples attacked")
    ap.add_argument("--eps", default="0.05,0.1,0.2")
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("--students", type=int, default=3)
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=30, help="distillation epochs (dkd and distill)")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    import edgeattack.defenses  # noqa: F401  (registers dkd)
    from edgeattack.attacks.transfer import transfer
    from edgeattack.compression import compress
    from edgeattack.datasets import load_dataset
    from edgeattack.train import train_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    teacher = work / "teacher" / "model.keras"
    if not teacher.exists():
        train_model("cnn-digits", "digits", work / "teacher", epochs=20, seed=0, progress=False)
    data = load_dataset("digits")
    eps = [float(e) for e in args.eps.split(",")]
    dkd = {"step": "dkd", "students": args.students, "width": args.width, "epochs": args.epochs}
    plans = {"dkd": [dkd, {"step": "ptq-int8"}],
             "dkd-no-diversity": [{**dkd, "diversity": 0.0}, {"step": "ptq-int8"}]}
    manifests, seconds = {}, {}

    def build(name, recipe):
        art = work / name
        t0 = time.monotonic()
        if not (art / "manifest.json").exists():
            compress(teacher, recipe, art, seed=0, force=True, progress=False)
        seconds[name] = round(time.monotonic() - t0, 1)
        manifests[name] = json.loads((art / "manifest.json").read_text())

    for name, recipe in plans.items():
        build(name, recipe)
    ens_params = manifests["dkd"]["steps"][0]["details"]["ensemble_params"]
    w_same = same_size_width(ens_params, data.input_shape, data.classes)
    for name, width in ((f"single-x{w_same:g}", w_same), (f"single-x{args.width:g}", args.width)):
        build(name, [{"step": "distill", "width": width, "epochs": args.epochs}, {"step": "ptq-int8"}])
    names = list(manifests)

    t0 = time.monotonic()
    x, y = data.x_test[:args.n], data.y_test[:args.n]
    res = transfer("pgd", [teacher], [work / n / "model.tflite" for n in names], x, y, epsilons=eps,
                   board=args.board, seed=0)
    t_transfer = time.monotonic() - t0

    out = {"board": args.board, "n": len(x), "eps": eps, "attack": "pgd", "params": res.params,
           "transfer_s": round(t_transfer, 1), "artifacts": {}}
    for name, tgt in zip(names, res.targets):
        m = manifests[name]
        d = m["steps"][0]["details"]
        entry = {"params": m["params"], "clean_accuracy": tgt["clean_accuracy"],
                 "clean_accuracy_ci95": tgt["clean_accuracy_ci95"], "int8_accuracy_tflm": m["accuracy"]["tflm"],
                 "compress_s": seconds[name], "device_inferences": tgt.get("device_inferences"),
                 "transfer": {}}
        if "hard_vote_accuracy" in d:
            entry.update({k: d[k] for k in ("student_accuracy", "soft_vote_accuracy", "hard_vote_accuracy")})
            entry["similarity_before_after"] = [d["before"]["similarity"], d["after"]["similarity"]]
            entry["disagreement"] = d["after"]["disagreement"]
        for r in res.rows:
            if r["target"] == tgt["name"]:
                entry["transfer"][f"{r['eps']:g}"] = {
                    "attack_success_rate": r["attack_success_rate"], "ci95": r["attack_success_rate_ci95"],
                    "successes": r["successes"], "clean_correct": r["clean_correct"]}
        out["artifacts"][name] = entry
        extra = (f"; students {', '.join(f'{a:.3f}' for a in entry['student_accuracy'])}, soft "
                 f"{entry['soft_vote_accuracy']:.3f}, hard {entry['hard_vote_accuracy']:.3f}, CKA "
                 f"{entry['similarity_before_after'][0]:.3f}->{entry['similarity_before_after'][1]:.3f}"
                 if "hard_vote_accuracy" in entry else "")
        print(f"{name}: {m['params']} params, clean on {args.board} "
              f"{_rate(entry['clean_accuracy'], entry['clean_accuracy_ci95'])}{extra}", flush=True)
        for e, v in entry["transfer"].items():
            print(f"    transfer@{e}: {_rate(v['attack_success_rate'], v['ci95'])} "
                  f"({v['successes']}/{v['clean_correct']})", flush=True)
    same = f"single-x{w_same:g}"
    for e in map(lambda v: f"{v:g}", eps):
        a, b = out["artifacts"]["dkd"]["transfer"][e], out["artifacts"][same]["transfer"][e]
        verdict = ("lower, intervals disjoint" if a["ci95"][1] < b["ci95"][0] else
                   "lower, intervals overlap" if a["attack_success_rate"] < b["attack_success_rate"]
                   else "NOT lower")
        print(f"eps {e}: ensemble {a['attack_success_rate']:.3f} vs same-size student "
              f"{b['attack_success_rate']:.3f}: {verdict}")
    print(f"(transfer judged on {args.board}: {t_transfer:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def _rate(v, ci) -> str:
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if v is not None else "n/a"


if __name__ == "__main__":
    sys.exit(main())
