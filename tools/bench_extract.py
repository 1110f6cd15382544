"""Extraction and inversion through a device: the figures of docs/benchmarks.md "Extraction and inversion".

    python tools/bench_extract.py [--board emu-tflm] [--work DIR] [--budgets 100,300,1000,3000]
                                  [--invert-budget 2000] [--json OUT.json]

1. Trains cnn-digits on digits and compresses it with ptq-int8, pqat and prune (or reuses --work).
2. `extract` (labels only, heldout pool, Jacobian augmentation) against each artifact on the board:
   fidelity and accuracy per budget, device_inferences == queries checked.
3. ART's KnockoffNets (random and adaptive) and CopycatCNN on the ptq-int8 victim through the same
   device (ART's BlackBoxClassifier wrapping Device.infer), at the same budgets: the ratio of our
   fidelity to theirs, and where ART's cap at the pool size binds.
4. `invert` on ptq-int8 (device route) with the shortcut (replica route).

ART is a test dependency (pip install .[test]); it is never imported by the package.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np


class DeviceQueries:
    """ART's predict function: one device inference per sample (Device.infer_many), counted."""

    def __init__(self, target, output: str = "labels"):
        self.target = target
        self.output = output
        self.count = 0

    def __call__(self, x):
        x = np.asarray(x, np.float32)
        self.count += len(x)
        s = np.stack([r.output for r in self.target.device.infer_many(iter(x))])
        if self.output == "labels":
            return np.eye(s.shape[1], dtype=np.float32)[s.argmax(1)]
        return s


def art_steal(target, method: str, budget: int, x_pool, y_pool, x_eval, eval_pred, y_eval, *,
              replica="cnn-digits", width=1.0, epochs=30, seed=0, output="labels") -> dict:
    """Steal the device's model with ART (`method`: knockoff-random, knockoff-adaptive, copycat) and
    score the thieved model like `extract` does. Returns queries asked and made, device inferences
    (INFO), fidelity and accuracy with Wilson intervals, and whether the pool capped the queries."""
    from art.attacks.extraction import CopycatCNN, KnockoffNets
    from art.estimators.classification import BlackBoxClassifier, TensorFlowV2Classifier

    from edgeattack.attacks.exploratory.extraction import MIN_STEPS
    from edgeattack.results import wilson_interval
    from edgeattack.tfutil import keras, set_seed
    from edgeattack.zoo import build_model

    set_seed(seed)
    k = int(target.num_classes)
    # adaptive KnockoffNets' rewards (certainty, diversity, loss) read the victim's scores; it still
    # trains on labels (use_probability=False)
    fn = DeviceQueries(target, "scores" if method == "knockoff-adaptive" else output)
    victim = BlackBoxClassifier(fn, tuple(target.input_shape), k, clip_values=tuple(target.data_range))
    net = build_model(replica, tuple(target.input_shape), k, width)  # ends in softmax: the rewards need probabilities
    thief = TensorFlowV2Classifier(model=net, nb_classes=k, input_shape=tuple(target.input_shape),
                                   loss_object=keras().losses.CategoricalCrossentropy(),
                                   optimizer=keras().optimizers.Adam(1e-3),
                                   clip_values=tuple(target.data_range))
    made = min(budget, len(x_pool)) if method != "knockoff-adaptive" else budget
    # the same training effort as extract: at least MIN_STEPS optimizer steps
    ep = max(epochs, math.ceil(MIN_STEPS / max(1, math.ceil(made / 32))))
    use_prob = output == "scores"
    if method == "copycat":
        atk = CopycatCNN(victim, batch_size_fit=32, batch_size_query=32, nb_epochs=ep, nb_stolen=budget,
                         use_probability=use_prob)
        y_arg = None
    elif method == "knockoff-random":
        atk = KnockoffNets(victim, batch_size_fit=32, batch_size_query=32, nb_epochs=ep, nb_stolen=budget,
                           sampling_strategy="random", use_probability=use_prob)
        y_arg = None
    elif method == "knockoff-adaptive":
        # adaptive KnockoffNets draws one pool sample per query from the class its bandit picks
        # (with replacement: not capped), then trains once on what it gathered. Its default reward
        # "all" divides by the rewards' running deviation, which is 0 when the int8 scores saturate
        # (NaN bandit probabilities here): the "loss" reward has no such division.
        atk = KnockoffNets(victim, batch_size_fit=32, batch_size_query=32, nb_epochs=ep, nb_stolen=budget,
                           sampling_strategy="adaptive", reward="loss", use_probability=use_prob)
        y_arg = np.eye(k, dtype=np.float32)[y_pool]
    else:
        raise ValueError(method)
    np.random.seed(seed)
    i0 = target.device.info()["inferences"]
    stolen = atk.extract(np.asarray(x_pool, np.float32), y_arg, thieved_classifier=thief)
    inferences = int(target.device.info()["inferences"] - i0)
    pred = np.argmax(stolen.predict(np.asarray(x_eval, np.float32)), axis=1)
    agree, correct, n = int((pred == eval_pred).sum()), int((pred == y_eval).sum()), len(y_eval)
    return {"method": method, "queries_asked": budget, "queries": fn.count,
            "device_inferences": inferences, "capped_at_pool": fn.count < budget,
            "fidelity": agree / n, "fidelity_ci95": wilson_interval(agree, n),
            "accuracy": correct / n, "accuracy_ci95": wilson_interval(correct, n)}


def _artifacts(work: Path) -> dict:
    from edgeattack.compression import compress
    from edgeattack.train import train_model

    fl = work / "float" / "model.keras"
    if not fl.is_file():
        train_model("cnn-digits", "digits", work / "float", epochs=20, seed=0, progress=False, force=True)
    out = {}
    for recipe in ("ptq-int8", "pqat", "prune"):
        m = work / recipe / "model.tflite"
        if not m.is_file():
            compress(fl, recipe, work / recipe, seed=0, progress=False, force=True)
        out[recipe] = m
    return out


def main(argv=None) -> int:
    from edgeattack.attacks.exploratory.extraction import extract
    from edgeattack.attacks.exploratory.inversion import invert
    from edgeattack.attacks.exploratory.pools import evaluation_split
    from edgeattack.attacks.targets import open_target
    from edgeattack.datasets import load_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="emu-tflm")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_extract"))
    ap.add_argument("--budgets", default="100,300,1000,3000")
    ap.add_argument("--invert-budget", type=int, default=2000)
    ap.add_argument("--shortcut-budgets", default="100,300,1000")
    ap.add_argument("--adaptive-budgets", default="100",
                    help="Budgets for ART's adaptive KnockoffNets (it refits after every query: "
                         "about 1.5 s per query here)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    models = _artifacts(args.work)
    ds = load_dataset("digits")
    x_pool, y_pool, x_eval, y_eval = evaluation_split(ds, 0)
    report = {"board": args.board, "budgets": budgets, "extract": {}, "art": [], "invert": None}

    for recipe, path in models.items():
        with open_target(path, board=args.board, output="scores") as t:
            t0 = time.time()
            res = extract(target=t, dataset=ds, budgets=budgets, pool="heldout", augment="jacobian",
                          output="labels", seed=0)
            for r in res.rows:
                assert r["device_inferences"] == r["queries"], r
            report["extract"][recipe] = {"victim_accuracy": res.victim_accuracy, "rows": res.rows,
                                         "seconds": time.time() - t0}
            print(f"{recipe}: victim acc {res.victim_accuracy:.3f}; " + "; ".join(
                f"{r['queries']}: fid {r['fidelity']:.3f} acc {r['accuracy']:.3f}" for r in res.rows), flush=True)
            if recipe == "ptq-int8":
                eval_pred = np.argmax(t.scores(x_eval), 1)
                ours = {r["queries"]: r["fidelity"] for r in res.rows}
                adaptive = [int(b) for b in args.adaptive_budgets.split(",") if b.strip()]
                for method in ("knockoff-random", "copycat", "knockoff-adaptive"):
                    for b in (adaptive if method == "knockoff-adaptive" else budgets):
                        a = art_steal(t, method, b, x_pool, y_pool, x_eval, eval_pred, y_eval, seed=0)
                        a["our_fidelity"] = ours.get(b)
                        a["fidelity_ratio"] = ours[b] / a["fidelity"] if a["fidelity"] and b in ours else None
                        report["art"].append(a)
                        print(f"  ART {method} {b}: made {a['queries']} (inferences {a['device_inferences']}) "
                              f"fid {a['fidelity']:.3f}; ours/ART {a['fidelity_ratio']}", flush=True)
                t0 = time.time()
                inv = invert(target=t, dataset=ds, budget=args.invert_budget,
                             shortcut_budgets=[int(b) for b in args.shortcut_budgets.split(",")], seed=0)
                report["invert"] = {"curve": inv.curve, "shortcut": inv.shortcut,
                                    "comparison": inv.comparison, "baselines": inv.baselines,
                                    "device_route_inferences": inv.device_route_inferences,
                                    "zero_difference_fraction": float(np.mean(
                                        [r["zero_difference_fraction"] for r in inv.rows if r["route"] == "device"])),
                                    "seconds": time.time() - t0}
                print("  invert:", json.dumps(report["invert"]), flush=True)
    # queries to steal: the smallest budget reaching 85% fidelity, per artifact
    report["queries_to_85"] = {rec: next((r["queries"] for r in v["rows"] if r["fidelity"] >= 0.85), None)
                               for rec, v in report["extract"].items()}
    print("queries to reach fidelity 0.85:", report["queries_to_85"])
    if args.json:
        from edgeattack.atomic import write_json

        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
