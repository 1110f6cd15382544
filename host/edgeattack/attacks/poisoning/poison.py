"""`edgeattack poison` as a Python function: label flipping, targeted flipping, clean-label
(gradient matching or feature collision) and model poisoning, each written as `poisoned.npz`; with recipes, the model is trained,
compressed on the defender's data and judged on a board. With prune_ratios, the pruning-and-poisoning
experiment instead: train clean, prune to each ratio (masks fixed), retrain on the poisoned data for
`epochs` epochs, and judge each epoch's int8 artifact on the board.

    run_poison("runs/p", kind="flip", rate=0.2, recipes=["ptq-int8"], board="emu-tflm")
    run_poison("runs/pp", kind="flip", rate=0.3, prune_ratios=[0, 0.5, 0.75, 0.9], epochs=5)
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ...datasets import Dataset, load_dataset
from ...errors import UsageError
from . import data as pdata
from . import judge
from .run import (_sha, check_compress_data, check_recipes, compress_all, recipe_label, test_subset,
                  train_float)
from .summary import run_folder, summary, write

KINDS = ("flip", "flip-targeted", "clean-label", "model")
MODEL_MODES = ("ascent", "updates")
# --set names each kind takes, with defaults
SETTINGS = {
    "flip": {},
    "flip-targeted": {},
    # steps 0: the method's own default (240 gradient-matching, 100 feature-collision)
    "clean-label": {"method": "gradient-matching", "steps": 0, "step_size": 0.0, "targets": 1,
                    "restarts": 2, "augment": 1, "surrogates": 3, "pick": "random", "retrain": 0},
    "model": {"mode": "ascent", "factor": -1.0, "weight": 1.0},
}


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UsageError(f"poison {kind}: choose one of {', '.join(KINDS)}")
    return kind


def check_settings(kind: str, settings: dict) -> dict:
    known = SETTINGS[kind]
    for name in settings:
        if name not in known:
            raise UsageError(f"--set {name}: poison {kind} takes "
                             f"{', '.join(known) or 'no --set parameters'}")
    p = {**known, **settings}
    if kind == "clean-label":
        from .cleanlabel import METHODS

        if p["method"] not in METHODS:
            raise UsageError(f"--set method={p['method']}: choose gradient-matching (targets "
                             f"chosen test inputs, victim trained from scratch) or "
                             f"feature-collision (Poison Frogs, for transfer learning)")
        from .cleanlabel import check_pick

        check_pick(p["pick"])
        for name in ("steps", "targets", "restarts", "surrogates", "retrain"):
            least = 0 if name in ("steps", "retrain") else 1
            if not isinstance(p[name], int) or p[name] < least:
                raise UsageError(f"--set {name}={p[name]}: a whole number of at least {least}")
    if kind == "model" and p["mode"] not in MODEL_MODES:
        raise UsageError(f"--set mode={p['mode']}: choose ascent (gradient ascent on a subset) or "
                         f"updates (scaled/sign-flipped updates on a fraction of steps)")
    return p


def check_prune_ratios(ratios) -> list[float]:
    out = []
    for r in ratios:
        r = float(r)
        if not 0.0 <= r < 1.0:
            raise UsageError(f"--prune-ratios {r:g}: a pruning ratio is a fraction in [0, 1) of the "
                             f"kernel weights set to zero")
        out.append(r)
    if len(set(out)) != len(out):
        raise UsageError("--prune-ratios: a ratio is given twice")
    return out


def model_poisoning(data: Dataset, mode: str, rate: float, seed: int, factor: float = -1.0,
                    weight: float = 1.0):
    """(Poisoned, callbacks, sample_weight) for model poisoning: gradient ascent on a seeded
    fraction `rate` of the training samples (their loss weight -weight), or the weight update of a
    fraction `rate` of optimizer steps scaled by `factor`. The data itself is unchanged; `mask`
    marks the ascended samples (none for update poisoning)."""
    from .callbacks import ascent_weights, update_poisoning

    pdata.check_rate(rate)
    n = len(data.y_train)
    mask = np.zeros(n, bool)
    if mode == "ascent":
        mask[pdata._choose(np.random.default_rng([seed, 15]), np.arange(n), rate, n)] = True
        callbacks, weights = [], ascent_weights(n, mask, weight)
        info = {"poison": "model", "mode": mode, "rate": rate, "weight": weight}
    else:
        callbacks, weights = [update_poisoning(rate, factor, seed)], None
        info = {"poison": "model", "mode": mode, "rate": rate, "factor": factor}
    info["poisoned_samples"] = int(mask.sum())
    return pdata.Poisoned(data, mask, info), callbacks, weights


def make_poison(kind: str, clean: Dataset, *, rate: float, source_class: int, target_class: int,
                eps: float, settings: dict, model: str, epochs: int, seed: int, progress: bool):
    """(Poisoned, train kwargs: callbacks and sample_weight) for one poisoning kind."""
    if kind == "flip":
        return pdata.flip(clean, rate, seed), {}
    if kind == "flip-targeted":
        return pdata.flip_targeted(clean, rate, source_class, target_class, seed), {}
    if kind == "clean-label":
        from .cleanlabel import check_eps, choose_targets, clean_label, gradient_matching
        from .gradmatch import train_surrogates

        pdata.check_rate(rate)
        pdata.check_class(source_class, clean.classes, "--source-class")
        pdata.check_class(target_class, clean.classes)
        check_eps(eps, clean.data_range)
        if settings["method"] == "gradient-matching":
            choose_targets(clean, source_class, settings["targets"], seed)  # refuse before training
        # the attacker's own clean models (seeds apart from the victim's), snapshotted on the way;
        # an ensemble over seeds (Witches' Brew's ensembles) so the poisons do not fit one
        # initialisation: a victim trained from scratch starts from another
        seeds = [seed + 1 + i for i in range(settings["surrogates"] if settings["method"] ==
                                             "gradient-matching" else 1)]

        def ensemble(data):
            return [train_surrogates(model, data, epochs, (2, 5), s, progress)[0] for s in seeds]

        runs = ensemble(clean)
        surrogates = [m for snaps in runs for m in snaps]
        if settings["method"] == "feature-collision":
            return clean_label(clean, rate, source_class, target_class, eps, surrogates[-1], seed,
                               steps=settings["steps"] or 100,
                               step_size=settings["step_size"] or None), {}
        return gradient_matching(clean, rate, source_class, target_class, eps, surrogates, seed,
                                 targets=settings["targets"], steps=settings["steps"] or 240,
                                 restarts=settings["restarts"],
                                 augment=bool(settings["augment"]), pick=settings["pick"],
                                 pick_models=[snaps[-1] for snaps in runs],
                                 retrain=lambda d: [m for snaps in ensemble(d) for m in snaps],
                                 retrain_rounds=settings["retrain"]), {}
    p, callbacks, weights = model_poisoning(clean, settings["mode"], rate, seed,
                                            factor=settings["factor"], weight=settings["weight"])
    return p, {"callbacks": callbacks, "sample_weight": weights}


def _metrics(kind: str, pred, y, source_class: int, target_class: int, pred_targets=None) -> dict:
    if pred_targets is not None:  # gradient matching: the chosen target inputs are what it aims at
        return judge.targeted_flip_metrics(pred_targets, np.full(len(pred_targets), source_class),
                                           source_class, target_class)
    if kind in ("flip-targeted", "clean-label"):
        return judge.targeted_flip_metrics(pred, y, source_class, target_class)
    return judge.untargeted_metrics()


def judge_artifact(kind, label, path, test: Dataset, board, port, progress, source_class,
                   target_class, x_targets=None) -> dict:
    """One row: clean accuracy on `test`; attack success over the source class, or over
    x_targets (gradient matching's chosen test inputs) when given."""
    arrays = [test.x_test] + ([] if x_targets is None else [x_targets])
    if Path(path).suffix == ".tflite":
        preds, ident = judge.predict_board(path, board, arrays, port=port,
                                           progress=progress, desc=f"{label} on {board}")
        where = {"board": ident["board"], "model_sha256": ident["model_sha256"],
                 "device_inferences": ident["device_inferences"]}
    else:
        from .run import _load_keras

        preds = judge.predict_float(_load_keras(path), arrays)
        where = {"board": None, "model_sha256": None}
    pred, pred_targets = preds[0], (preds[1] if len(preds) > 1 else None)
    return {"artifact": label, **where, **judge.clean_metrics(pred, test.y_test),
            **_metrics(kind, pred, test.y_test, source_class, target_class, pred_targets)}


def prune_and_poison(model_path: Path, poisoned: pdata.Poisoned, train_kwargs: dict, recipes,
                     compress_set: Dataset, folder: Path, *, ratios, epochs: int, seed: int,
                     judge_row, progress: bool) -> list[dict]:
    """The pruning-and-poisoning experiment: for each ratio, prune the clean model's kernels by
    magnitude (one shot), then retrain on the poisoned data for `epochs` epochs with the zero masks
    fixed; after each epoch (and before the first, epoch 0) compress with each recipe on
    compress_set and judge the artifact. Rows carry prune_ratio, epoch and the kernel sparsity."""
    from ...compression import compress
    from ...compression.pipeline import load_keras_model
    from ...tfutil import set_seed
    from ...train import META_FILE, compile_for_classification, read_train_meta
    from ...atomic import write_json
    from .callbacks import fixed_masks, magnitude_prune

    meta = read_train_meta(model_path)
    rows = []
    for ratio in ratios:
        set_seed(seed)
        net = load_keras_model(model_path)
        sparsity = magnitude_prune(net, ratio)
        kernel_sparsity = float(np.mean(list(sparsity.values()))) if sparsity else 0.0
        compile_for_classification(net, 1e-3)
        callbacks = [fixed_masks(net), *train_kwargs.get("callbacks", [])]
        for epoch in range(epochs + 1):
            if epoch:
                net.fit(poisoned.data.x_train, poisoned.data.y_train, epochs=1, batch_size=32,
                        verbose=0, shuffle=True, callbacks=callbacks,
                        sample_weight=train_kwargs.get("sample_weight"))
            where = folder / f"prune-{ratio:g}" / f"epoch-{epoch}"
            where.mkdir(parents=True)
            keras_path = where / "model.keras"
            net.save(keras_path)
            write_json(where / META_FILE, {**meta, "dataset": pdata.POISONED_FILE, "epochs": epoch,
                                           "prune_ratio": ratio})
            artifacts = compress_all(keras_path, recipes, where, compress_set, seed, progress)
            for label, path in artifacts:
                row = judge_row(label, path)
                rows.append({**row, "prune_ratio": ratio, "epoch": epoch,
                             "kernel_sparsity": kernel_sparsity})
    return rows


def run_poison(out, kind: str = "flip", *, model: str = "cnn-digits", dataset="digits",
               rate: float = 0.1, source_class: int = 1, target_class: int = 7, eps: float = 0.1,
               settings: dict | None = None, recipes=("ptq-int8",), board: str | None = "emu-tflm",
               port: str | None = None, compress_data: str = "clean", epochs: int = 30,
               pretrain_epochs: int = 30, prune_ratios=None, n: int | None = None, seed: int = 0,
               baseline: bool = False, force: bool = False, progress: bool = True) -> dict:
    """Poison the training of `model` on `dataset` (kind: flip, flip-targeted, clean-label, model)
    and write OUT/poisoned.npz and OUT/poison.json. With recipes: train on the poisoned data for
    `epochs` epochs (OUT/float/), compress with each recipe on the defender's data (OUT/<recipe>/)
    and judge on the board. With prune_ratios: the pruning-and-poisoning experiment (clean training
    for `pretrain_epochs`, then `epochs` poisoned epochs per ratio; OUT/prune-R/epoch-E/).

    Rows: one per (artifact, board[, prune_ratio, epoch]) with clean_accuracy and
    attack_success_rate (source-class test samples classified as the target, for flip-targeted
    and feature-collision clean-label; the chosen target test inputs classified as the target for
    gradient-matching clean-label, whose poisoned-data summary lists them; null for the untargeted
    kinds)."""
    check_kind(kind)
    settings = check_settings(kind, dict(settings or {}))
    check_compress_data(compress_data)
    recipes = check_recipes(recipes)
    pdata.check_rate(rate)
    ratios = check_prune_ratios(prune_ratios) if prune_ratios else None
    for what, value in (("--epochs", epochs), ("--pretrain-epochs", pretrain_epochs)):
        if value < 1:
            raise UsageError(f"{what} {value}: must be at least 1")
    clean = load_dataset(dataset)
    clean.check_finite()
    targeted = kind in ("flip-targeted", "clean-label")
    if targeted:
        pdata.check_class(source_class, clean.classes, "--source-class")
        pdata.check_class(target_class, clean.classes)
    if ratios and not recipes:
        raise UsageError("--prune-ratios needs --recipes (e.g. ptq-int8): each epoch's compressed "
                         "artifact is what the experiment judges")
    if recipes and board is None and port is None:
        raise UsageError("--recipes needs --board (or --port): compressed artifacts are judged on a device")
    with run_folder(out, force) as folder:
        poisoned, train_kwargs = make_poison(
            kind, clean, rate=rate, source_class=source_class, target_class=target_class, eps=eps,
            settings=settings, model=model, epochs=pretrain_epochs if ratios else epochs, seed=seed,
            progress=progress)
        poisoned_path = pdata.save_poisoned(folder / pdata.POISONED_FILE, poisoned)
        poisoned.data.name = str(poisoned_path.resolve())  # what train.json records
        compress_set = clean if compress_data == "clean" else poisoned.data
        test = test_subset(clean, n, seed)
        targets = poisoned.info.get("targets")
        x_targets = None if targets is None else clean.x_test[targets]

        def judge_row(label, path):
            return judge_artifact(kind, label, path, test, board, port, progress, source_class,
                                  target_class, x_targets)

        rows, float_sha = [], None
        if ratios:
            clean_path = train_float(model, clean, folder / "clean", epochs=pretrain_epochs,
                                     seed=seed, progress=progress)
            float_sha = _sha(clean_path)
            rows = prune_and_poison(clean_path, poisoned, train_kwargs, recipes, compress_set,
                                    folder, ratios=ratios, epochs=epochs, seed=seed,
                                    judge_row=judge_row, progress=progress)
            train_data = "clean, then poisoned after pruning"
        elif recipes or baseline or kind == "model":  # model poisoning lives in training
            float_path = train_float(model, poisoned.data, folder / "float", epochs=epochs,
                                     seed=seed, progress=progress, **train_kwargs)
            float_sha = _sha(float_path)
            artifacts = [("float", float_path)]
            if baseline:
                artifacts.append(("unpoisoned", train_float(model, clean, folder / "unpoisoned",
                                                            epochs=epochs, seed=seed,
                                                            progress=progress)))
            artifacts += compress_all(float_path, recipes, folder, compress_set, seed, progress)
            rows = [judge_row(label, path) for label, path in artifacts]
            train_data = "poisoned"
        else:
            train_data = None
        for row in rows:
            row["train_data"] = "clean" if row["artifact"] == "unpoisoned" else train_data
            row["compress_data"] = None if row["board"] is None else compress_data
        params = {"model": model, "dataset": str(dataset), "kind": kind, "rate": rate,
                  "source_class": source_class if targeted else None,
                  "target_class": target_class if targeted else None,
                  "eps": eps if kind == "clean-label" else None, **settings,
                  "recipes": [recipe_label(r) for r in recipes], "compress_data": compress_data,
                  "epochs": epochs, "pretrain_epochs": pretrain_epochs if ratios else None,
                  "prune_ratios": ratios}
        obj = summary("poison", kind, params, seed, float_sha,
                      {"kind": "board" if recipes else "float", "model_sha256": None,
                       "board": board if recipes else None},
                      len(test.y_test), rows,
                      data={"train": train_data, "poisoned_file": pdata.POISONED_FILE,
                            "poisoned_samples": int(poisoned.mask.sum()), "poison": poisoned.info,
                            "compress": compress_data if recipes else None,
                            "judge": "clean test split"})
        write(folder, "poison", obj)
    return obj
