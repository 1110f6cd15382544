#!/usr/bin/env python
"""White-box attack figures against IBM's ART, speed ratios, and the int8 surrogate's white-box
attack on a QEMU board (docs/benchmarks.md, "Evasion attacks").

    python tools/bench_attacks.py                          # every part, n = 200
    python tools/bench_attacks.py --parts speed --repeats 5 --json speed.json

The model is cnn-digits trained 20 epochs on digits (seed 0); ART wraps the same tf_keras logits
model in its TensorFlowV2Classifier. Parts:
  art        on the first n digits test samples (eps 0.1 L-inf where a bound applies):
             PGD-20 and BIM-10 without random start (same eps, steps and step size): prediction
             agreement; C&W L2 and DeepFool: success and median L2 (over each one's successes and
             over the samples both fooled); JSMA (target (y+1) mod K, theta 0.1, gamma 1) and
             APGD-CE (100 steps, one restart, initial step 2 eps on both): success, Wilson intervals.
  speed      wall time, warm-up excluded, median of --repeats: PGD-20 L-inf on the whole digits set
             (1,797 samples) vs ART with the whole set as one batch and vs ART at batch 32; C&W L2 on
             the first --cw-n samples vs ART at the same batch size (--cw-repeats runs: ART's C&W
             takes minutes a run); success and median L2 beside them.
  surrogate  on ptq-int8 and pqat digits models: PGD (L-inf, eps 0.1) crafted on the int8 surrogate
             vs crafted on the float model (transfer), both judged on qemu-m4 running the model;
             both rates and the paired 95% interval of their difference (Newcombe's hybrid score).

The tests (tests/test_attacks_art.py) call the same functions at n = 50.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

EPS = 0.1


def wilson(k: int, n: int):
    from edgeattack.results import wilson_interval

    return wilson_interval(k, n)


def rate(ok: np.ndarray, n: int) -> dict:
    k = int(np.sum(ok))
    return {"successes": k, "of": n, "rate": k / n if n else None, "ci95": wilson(k, n)}


def art_classifier(target):
    """ART's TensorFlowV2Classifier over the same tf_keras logits model as our float target."""
    from art.estimators.classification import TensorFlowV2Classifier

    from edgeattack.tfutil import keras

    k = keras()
    return TensorFlowV2Classifier(
        model=target.logits_model, nb_classes=target.num_classes, input_shape=tuple(target.input_shape),
        loss_object=k.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=tuple(float(v) for v in target.data_range))


def fooled(target, x_adv, y, targets=None) -> np.ndarray:
    """Per sample: correct when clean... is checked by the caller; here the target's verdict."""
    pred = target.predict(x_adv)
    return pred == targets if targets is not None else pred != y


def onehot(y, k):
    return np.eye(k, dtype=np.float32)[y]


def compare_iterative(target, clf, x, y, name: str, eps: float = EPS, steps: int = 20,
                      rel_stepsize: float = 0.1, batch_size: int = 32) -> dict:
    """PGD or BIM without random start, ours vs ART's with the same eps, steps and step size."""
    from art.attacks.evasion import BasicIterativeMethod, ProjectedGradientDescent

    from edgeattack.attacks import make

    ours = make(name, steps=steps, rel_stepsize=rel_stepsize, random_start=False)(
        target, x, y, epsilons=[eps], seed=0)
    kw = dict(eps=eps, eps_step=rel_stepsize * eps, max_iter=steps, batch_size=batch_size, verbose=False)
    art_attack = (ProjectedGradientDescent(clf, norm=np.inf, num_random_init=0, **kw) if name == "pgd"
                  else BasicIterativeMethod(clf, **kw))
    art = art_attack.generate(x, y=onehot(y, target.num_classes))
    correct = ours.clean_correct
    art_pred = target.predict(art)
    return {"attack": name, "eps": eps, "steps": steps, "n": len(y),
            "prediction_agreement": float(np.mean(ours.pred[0] == art_pred)),
            "max_abs_diff": float(np.abs(ours.x_adv[0] - art).max()),
            "ours": rate(ours.success[0], int(correct.sum())),
            "art": rate((art_pred != y) & correct, int(correct.sum()))}


def _l2(a, x):
    return np.sqrt(((a - x) ** 2).reshape(len(x), -1).sum(1))


def _median(v):
    return float(np.median(v)) if len(v) else None


def minimization_row(name, target, x, y, x_ours, x_art, ours_time=None, art_time=None) -> dict:
    correct = target.predict(x) == y
    ok_ours = fooled(target, x_ours, y) & correct
    ok_art = fooled(target, x_art, y) & correct
    both = ok_ours & ok_art
    d_ours, d_art = _l2(x_ours, x), _l2(x_art, x)
    row = {"attack": name, "n": len(y), "ours": rate(ok_ours, int(correct.sum())),
           "art": rate(ok_art, int(correct.sum())),
           "ours_median_l2": _median(d_ours[ok_ours]), "art_median_l2": _median(d_art[ok_art]),
           "both_fooled": int(both.sum()),
           "ours_median_l2_both": _median(d_ours[both]), "art_median_l2_both": _median(d_art[both])}
    if row["art_median_l2"]:
        row["l2_ratio"] = row["ours_median_l2"] / row["art_median_l2"]
    if row["art_median_l2_both"]:
        row["l2_ratio_both"] = row["ours_median_l2_both"] / row["art_median_l2_both"]
    if ours_time is not None:
        row.update(ours_s=ours_time, art_s=art_time, speedup=art_time / ours_time)
    return row


def cw_pair(target, clf, x, y, batch_size: int):
    """(ours attack, ART attack) for C&W L2, each at its library's defaults and the same batch size."""
    from art.attacks.evasion import CarliniL2Method

    from edgeattack.attacks import make

    return (make("cw-l2"),
            CarliniL2Method(clf, batch_size=batch_size, verbose=False))


def compare_cw(target, clf, x, y, batch_size: int = 32) -> dict:
    ours_attack, art_attack = cw_pair(target, clf, x, y, batch_size)
    x_ours = _with_batch(target, batch_size, lambda: ours_attack(target, x, y, epsilons=[None], seed=0).x_adv[0])
    x_art = art_attack.generate(x, y=onehot(y, target.num_classes))
    return minimization_row("cw-l2", target, x, y, x_ours, x_art)


def compare_deepfool(target, clf, x, y, overshoot: float = 0.02, batch_size: int = 32) -> dict:
    """DeepFool L2, the same overshoot, iterations and candidate classes on both."""
    from art.attacks.evasion import DeepFool

    from edgeattack.attacks import make

    k = target.num_classes
    x_ours = make("deepfool", norm="l2", steps=50, candidates=k, overshoot=overshoot)(
        target, x, y, epsilons=[None], seed=0).x_adv[0]
    x_art = DeepFool(clf, max_iter=50, epsilon=overshoot, nb_grads=k, batch_size=batch_size,
                     verbose=False).generate(x)
    return minimization_row("deepfool", target, x, y, x_ours, x_art)


def compare_jsma(target, clf, x, y, theta: float = 0.1, gamma: float = 1.0, batch_size: int = 32) -> dict:
    from art.attacks.evasion import SaliencyMapMethod

    from edgeattack.attacks import make

    k = target.num_classes
    tc = (y + 1) % k
    ours = make("jsma", theta=theta, gamma=gamma)(target, x, y, epsilons=[None], seed=0)
    art = SaliencyMapMethod(clf, theta=theta, gamma=gamma, batch_size=batch_size, verbose=False).generate(
        x, y=onehot(tc, k))
    correct = ours.clean_correct
    return {"attack": "jsma", "n": len(y), "ours": rate(ours.success[0], int(correct.sum())),
            "art": rate(fooled(target, art, y, tc) & correct, int(correct.sum()))}


def compare_apgd(target, clf, x, y, eps: float = EPS, steps: int = 100, batch_size: int = 32) -> dict:
    from art.attacks.evasion import AutoProjectedGradientDescent

    from edgeattack.attacks import make

    ours = make("apgd-ce", steps=steps, n_restarts=1)(target, x, y, epsilons=[eps], seed=0)
    art = AutoProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=steps,
                                       nb_random_init=1, batch_size=batch_size, loss_type="cross_entropy",
                                       verbose=False).generate(x, y=onehot(y, target.num_classes))
    correct = ours.clean_correct
    return {"attack": "apgd-ce", "eps": eps, "n": len(y), "ours": rate(ours.success[0], int(correct.sum())),
            "art": rate(fooled(target, art, y) & correct, int(correct.sum()))}


def art_comparisons(target, x, y) -> list[dict]:
    clf = art_classifier(target)
    return [compare_iterative(target, clf, x, y, "pgd", steps=20),
            compare_iterative(target, clf, x, y, "bim", steps=10),
            compare_cw(target, clf, x, y), compare_deepfool(target, clf, x, y),
            compare_jsma(target, clf, x, y), compare_apgd(target, clf, x, y)]


# --- speed -------------------------------------------------------------------------------------------

def _with_batch(target, batch_size, fn):
    """Run fn with the target's attack batch size set to batch_size (restored after)."""
    had = "batch_size" in vars(target)
    old = target.batch_size
    target.batch_size = batch_size
    try:
        return fn()
    finally:
        if had:
            target.batch_size = old
        else:
            del target.batch_size


def timed(fn, repeats: int):
    """(last result, median wall seconds) over `repeats` runs after one warm-up run."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times)), times


def interleaved(fns: dict, repeats: int) -> tuple[dict, dict, dict]:
    """(last results, median wall seconds, all times) per name: one warm-up each, then `repeats`
    rounds that run every function once in turn, so a load swing on a shared machine hits all sides
    alike (a ratio of medians from separate blocks of runs would not be)."""
    out = {k: f() for k, f in fns.items()}
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            out[k] = f()
            times[k].append(time.perf_counter() - t0)
    return out, {k: float(np.median(v)) for k, v in times.items()}, times


def speed_pgd(target, x, y, repeats: int, eps: float = EPS, steps: int = 20,
              art_batches: tuple = (None, 32)) -> list[dict]:
    """PGD-20 on the whole set, ours (one batch) against ART at each of `art_batches` (None: the
    whole set as one batch), timed interleaved."""
    from art.attacks.evasion import ProjectedGradientDescent

    from edgeattack.attacks import make

    clf = art_classifier(target)
    attack = make("pgd", steps=steps, rel_stepsize=0.1, random_start=False)
    yy = onehot(y, target.num_classes)
    # the public call, clean and adversarial predictions included
    fns = {"ours": lambda: _with_batch(target, len(x),
                                       lambda: attack(target, x, y, epsilons=[eps], seed=0).x_adv[0])}
    for bs in art_batches:
        art_attack = ProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=0.1 * eps, max_iter=steps,
                                              num_random_init=0, batch_size=bs or len(x), verbose=False)
        fns[f"art{bs or len(x)}"] = (lambda a: lambda: a.generate(x, y=yy))(art_attack)
    res, med, times = interleaved(fns, repeats)
    correct = target.predict(x) == y
    ok_ours = fooled(target, res["ours"], y) & correct
    rows = []
    for bs in art_batches:
        key = f"art{bs or len(x)}"
        ok_art = fooled(target, res[key], y) & correct
        ratios = [a / o for a, o in zip(times[key], times["ours"])]
        rows.append({"attack": "pgd", "steps": steps, "eps": eps, "n": len(x), "ours_batch": len(x),
                     "art_batch": bs or len(x), "ours_s": med["ours"], "art_s": med[key],
                     "speedup": med[key] / med["ours"], "speedup_per_round": ratios,
                     "ours_times": times["ours"], "art_times": times[key],
                     "ours": rate(ok_ours, int(correct.sum())), "art": rate(ok_art, int(correct.sum()))})
    return rows


def speed_cw(target, x, y, repeats: int, batch_size: int) -> dict:
    clf = art_classifier(target)
    ours_attack, art_attack = cw_pair(target, clf, x, y, batch_size)
    x_ours, t_ours, _ = timed(lambda: _with_batch(
        target, batch_size, lambda: ours_attack(target, x, y, epsilons=[None], seed=0).x_adv[0]), repeats)
    yy = onehot(y, target.num_classes)
    x_art, t_art, _ = timed(lambda: art_attack.generate(x, y=yy), repeats)
    row = minimization_row("cw-l2", target, x, y, x_ours, x_art, t_ours, t_art)
    row["batch"] = batch_size
    return row


# --- the int8 surrogate's white-box attack on a board ---------------------------------------------

def surrogate_vs_transfer(model_path: Path, tflite: Path, recipe: str, x, y, board: str,
                          eps: float = EPS) -> dict:
    from edgeattack.attacks import make, open_target, target
    from edgeattack.attacks.base import judge
    from edgeattack.keras_io import load_model
    from edgeattack.results.metrics import paired_difference

    pgd = make("pgd", steps=40)
    white = pgd(target(str(tflite)), x, y, epsilons=[eps], seed=0)
    trans = pgd(target(load_model(str(model_path))), x, y, epsilons=[eps], seed=0)
    with open_target(str(tflite), board=board) as dev:
        jw, jt = judge(white, dev), judge(trans, dev)
    correct = jw.clean_correct
    m = int(correct.sum())
    sw, st = jw.success[0][correct], jt.success[0][correct]
    return {"recipe": recipe, "board": board, "eps": eps, "n": len(y), "clean_correct": m,
            "surrogate_whitebox": rate(sw, m), "float_transfer": rate(st, m),
            "difference": paired_difference(sw, st)}


# --- main --------------------------------------------------------------------------------------------

def trained_digits(work: Path):
    from edgeattack.attacks import target
    from edgeattack.keras_io import load_model
    from edgeattack.train import train_model

    res = train_model("cnn-digits", "digits", work / "digits", epochs=20, seed=0, progress=False)
    return res.model_path, target(load_model(str(res.model_path)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="art,speed,surrogate")
    ap.add_argument("-n", type=int, default=200, help="samples for the ART comparisons and C&W speed")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cw-batch", type=int, default=32)
    ap.add_argument("--cw-n", type=int, default=64, help="samples for the C&W speed ratio")
    ap.add_argument("--cw-repeats", type=int, default=3,
                    help="timed C&W runs (ART's C&W takes minutes per run)")
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("--art-batches", default="all,32",
                    help="ART batch sizes for the PGD speed ratio (all = the whole set as one batch)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    parts = args.parts.split(",")

    from edgeattack import tfutil
    from edgeattack.datasets import load_dataset

    tfutil.set_seed(0)
    d = load_dataset("digits")
    x, y = d.x_test[:args.n], d.y_test[:args.n]
    out = {"n": args.n}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_path, t = trained_digits(work)
        if "art" in parts:
            out["art"] = art_comparisons(t, x, y)
            _print("art", out["art"])
        if "speed" in parts:
            xa = np.concatenate([d.x_train, d.x_test])
            ya = np.concatenate([d.y_train, d.y_test])
            art_batches = tuple(None if b == "all" else int(b) for b in args.art_batches.split(","))
            out["speed"] = speed_pgd(t, xa, ya, args.repeats, art_batches=art_batches) + [
                speed_cw(t, d.x_test[:args.cw_n], d.y_test[:args.cw_n], args.cw_repeats, args.cw_batch)]
            _print("speed", out["speed"])
        if "surrogate" in parts:
            from edgeattack.compression import compress

            rows = []
            for recipe in ("ptq-int8", "pqat"):
                res = compress(model_path, recipe, work / recipe, seed=0, progress=False)
                rows.append(surrogate_vs_transfer(model_path, res.out / "model.tflite", recipe, x, y,
                                                  args.board))
            out["surrogate"] = rows
            _print("surrogate", rows)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def _print(part, rows):
    print(f"== {part}")
    for r in rows:
        print(json.dumps({k: v for k, v in r.items() if not k.endswith("_times")}))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
