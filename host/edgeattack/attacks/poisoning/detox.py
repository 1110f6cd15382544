"""Distillation detox (the knowledge-distillation recovery of the backdoor literature, e.g. Yoshida &
Fujino 2020): a defender who holds a little clean unlabeled data distils the suspect model into a
student on that data only. The trigger never appears there, so the student learns the clean
behaviour and not the backdoor. Training samples where teacher and student disagree are flagged as
suspect and dropped; the student is then fine-tuned on the remaining labelled training data.

Three choices keep clean accuracy (cnn-digits, 72 clean samples; docs/benchmarks.md): the few clean
samples are stretched with mixup (convex pairs, teacher-labelled), so the student imitates the
teacher well enough that fewer clean training samples are flagged (175 -> 100 of 1,437); screening
is repeated (`rounds`) with the fine-tuned student, which agrees with the teacher on more clean
samples but still not on the poisons it never learned (100 -> 51 flagged clean); and fine-tuning
is long enough (clean accuracy 0.892 -> 0.955 vs the suspect's 0.983). Fine-tuning on the teacher's
soft targets (`alpha` < 1) helps accuracy but carries the backdoor back (test scale, alpha 0.8:
success 0.71), so the default learns from the labels alone.

    run_detox("runs/bd/float/model.keras", "runs/detox", clean_data=0.2, trigger="patch:3",
              target_class=0, recipes=["ptq-int8"], board="emu-tflm")

`clean_data` is a fraction of the clean test split (the defender's own data, kept apart: the rest
of the test split judges) or an .npz with `x` (an inputs file) or `x_train` (a dataset file).
The trigger and target class are the evaluator's knowledge, used only to measure backdoor success.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ...datasets import Dataset, load_dataset, load_npz
from ...errors import UsageError
from . import data as pdata
from .run import (_load_keras, _sha, check_compress_data, check_recipes, compress_all,
                  judge_backdoor, recipe_label, test_subset)
from .summary import run_folder, summary, write
from .triggers import parse_trigger

DEFAULTS = {"temperature": 4.0, "mixup": 10, "distill_epochs": 15, "rounds": 2,
            "finetune_epochs": 30, "alpha": 1.0, "lr": 1e-3, "finetune_lr": 1e-3, "width": 1.0, "batch_size": 32}


def check_settings(settings: dict) -> dict:
    for name in settings:
        if name not in DEFAULTS:
            raise UsageError(f"--set {name}: detox takes {', '.join(DEFAULTS)}")
    p = {**DEFAULTS, **settings}
    if not 0.0 <= float(p["alpha"]) <= 1.0:
        raise UsageError(f"--set alpha={p['alpha']}: the weight of the labels in fine-tuning is in "
                         f"[0, 1] (the rest goes to the teacher's soft targets)")
    if int(p["mixup"]) < 0:
        raise UsageError(f"--set mixup={p['mixup']}: give how many mixed samples to add per clean "
                         f"sample (0 for none)")
    return p


def mixup(x: np.ndarray, per_sample: int, seed: int) -> np.ndarray:
    """x and per_sample * len(x) convex combinations of seeded random pairs of its samples."""
    if per_sample <= 0 or len(x) < 2:
        return x
    rng = np.random.default_rng([seed, 52])
    m = per_sample * len(x)
    i, j = rng.integers(0, len(x), m), rng.integers(0, len(x), m)
    lam = rng.uniform(0.0, 1.0, (m,) + (1,) * (x.ndim - 1)).astype(np.float32)
    return np.concatenate([x, lam * x[i] + (1.0 - lam) * x[j]]).astype(np.float32)


def parse_clean_data(value) -> float | Path:
    """--clean-data: a fraction in (0, 1) of the clean test split, or an .npz path."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return Path(value)
    if not 0.0 < f < 1.0:
        raise UsageError(f"--clean-data {value}: give a fraction strictly between 0 and 1 of the "
                         f"clean test split, or an .npz with x")
    return f


def clean_inputs(spec, data: Dataset, model_shape, seed: int) -> tuple[np.ndarray, Dataset, str]:
    """(the defender's clean inputs, the test split left to judge on, a description)."""
    spec = parse_clean_data(spec)
    if isinstance(spec, float):
        n = len(data.y_test)
        take = np.sort(np.random.default_rng([seed, 51]).choice(n, max(1, int(round(spec * n))),
                                                                 replace=False))
        rest = np.setdiff1d(np.arange(n), take)
        judged = dataclasses.replace(data, x_test=data.x_test[rest], y_test=data.y_test[rest])
        return data.x_test[take], judged, f"{spec:g} of the clean test split ({len(take)} samples)"
    if not spec.is_file():
        raise UsageError(f"--clean-data {spec}: no such file; give a fraction (e.g. 0.2) or an "
                         f".npz with x")
    try:
        x = load_npz(spec, ("x",), "an inputs .npz")["x"]
    except UsageError:
        x = load_npz(spec, ("x_train",), "an inputs .npz (x) or a dataset .npz (x_train)")["x_train"]
    x = np.asarray(x, np.float32)
    if tuple(x.shape[1:]) != tuple(model_shape):
        raise UsageError(f"--clean-data {spec}: inputs of shape {tuple(x.shape[1:])} but the model "
                         f"takes {tuple(model_shape)}; give clean data of the model's input shape")
    return x, data, f"{spec} ({len(x)} samples)"


def poisoned_mask(spec) -> np.ndarray | None:
    """The `poisoned` mask a poisoned.npz carries (for scoring the flags), else None."""
    p = Path(str(spec))
    if p.suffix != ".npz" or not p.is_file():
        return None
    with np.load(p, allow_pickle=False) as f:
        return f["poisoned"].astype(bool) if "poisoned" in f.files else None


def detox_model(teacher, zoo_name: str, zoo_width: float, x_clean, train: Dataset, p: dict,
                seed: int, progress: bool):
    """(student, flagged mask over train, flags per round): distil on x_clean (with mixup), then
    `rounds` times flag the training samples where teacher and student disagree and fine-tune the
    student on the rest (labels, plus the teacher's soft targets when alpha < 1)."""
    from ...compression.distill import logits_model, soft_targets
    from ...tfutil import keras, set_seed
    from ...train import compile_for_classification, tqdm_callback
    from ...zoo import build_model

    k = keras()
    set_seed(seed)
    student = build_model(zoo_name, train.input_shape, train.classes, zoo_width * p["width"])
    t, alpha, classes = float(p["temperature"]), float(p["alpha"]), train.classes
    ce = k.losses.categorical_crossentropy
    x_distil = mixup(np.asarray(x_clean, np.float32), int(p["mixup"]), seed)
    logits = logits_model(student)
    logits.compile(optimizer=k.optimizers.Adam(p["lr"]),
                   loss=lambda y, z: (t * t) * ce(y, z / t, from_logits=True))
    cbs = [tqdm_callback(k, p["distill_epochs"], "distil")] if progress else []
    logits.fit(x_distil, soft_targets(teacher, x_distil, t), epochs=int(p["distill_epochs"]),
               batch_size=int(p["batch_size"]), shuffle=True, verbose=0, callbacks=cbs)
    pt = np.argmax(teacher.predict(train.x_train, batch_size=256, verbose=0), axis=-1)
    per_round = []
    for r in range(max(1, int(p["rounds"]))):
        # each round screens with the student as it now is: a fine-tuned student agrees with the
        # teacher on more clean samples than the distilled one, never on the poisons it never saw
        ps = np.argmax(student.predict(train.x_train, batch_size=256, verbose=0), axis=-1)
        flagged = pt != ps
        per_round.append(int(flagged.sum()))
        keep = ~flagged
        if p["finetune_epochs"] <= 0 or not keep.any():
            break
        x_keep = train.x_train[keep]
        hard = np.eye(classes, dtype=np.float32)[train.y_train[keep]]
        packed = np.concatenate([hard, soft_targets(teacher, x_keep, t)], axis=1)

        def loss(y, z):  # labels, then the teacher's soft targets (Hinton et al.)
            return (alpha * ce(y[:, :classes], z, from_logits=True)
                    + (1.0 - alpha) * (t * t) * ce(y[:, classes:], z / t, from_logits=True))

        logits.compile(optimizer=k.optimizers.Adam(p["finetune_lr"]), loss=loss)
        cbs = [tqdm_callback(k, p["finetune_epochs"], f"fine-tune {r + 1}")] if progress else []
        logits.fit(x_keep, packed, epochs=int(p["finetune_epochs"]),
                   batch_size=int(p["batch_size"]), shuffle=True, verbose=0, callbacks=cbs)
    compile_for_classification(student, p["finetune_lr"])  # saved ready to evaluate
    return student, flagged, per_round


def run_detox(model, out, *, clean_data="0.2", dataset=None, trigger: str = "patch:3",
              target_class: int = 0, position: str = "bottom-right", recipes=("ptq-int8",),
              board: str | None = "emu-tflm", port: str | None = None,
              compress_data: str = "clean", settings: dict | None = None, n: int | None = None,
              seed: int = 0, force: bool = False, progress: bool = True) -> dict:
    """Detox the suspect float model `model` (a .keras with its train.json) and judge the suspect
    and the detoxed student, float and compressed with each recipe on the defender's clean data,
    on the board. Writes OUT/detoxed/model.keras, OUT/{suspect,detoxed}-<recipe>/ and
    OUT/detox.json; rows carry `stage` ("suspect" or "detoxed")."""
    from ...train import META_FILE, read_train_meta

    p = check_settings(dict(settings or {}))
    check_compress_data(compress_data)
    recipes = check_recipes(recipes)
    path = Path(model)
    if path.suffix != ".keras" or not path.exists():
        raise UsageError(f"--model {model}: give the suspect float model (.keras, with the "
                         f"train.json training wrote beside it)")
    meta = read_train_meta(path)
    if not meta.get("model"):
        raise UsageError(f"--model {model}: no train.json beside it names its zoo architecture; "
                         f"detox distils into a student of the same architecture")
    spec = dataset if dataset is not None else meta.get("dataset")
    if not spec:
        raise UsageError(f"--model {model}: its train.json records no dataset; pass --dataset "
                         f"(the training set to screen)")
    train = load_dataset(spec)
    pdata.check_class(target_class, train.classes)
    trig = parse_trigger(trigger, train.input_shape, position=position, data_range=train.data_range)
    parse_clean_data(clean_data)
    if recipes and board is None and port is None:
        raise UsageError("--recipes needs --board (or --port): compressed artifacts are judged on a device")
    teacher = _load_keras(path)
    if tuple(teacher.input_shape[1:]) != tuple(train.input_shape):
        raise UsageError(f"--dataset {spec}: input shape {train.input_shape} does not fit the model's "
                         f"{tuple(teacher.input_shape[1:])}")
    x_clean, judged, clean_desc = clean_inputs(clean_data, train, teacher.input_shape[1:], seed)
    with run_folder(out, force) as folder:
        from ...atomic import write_json

        student, flagged, per_round = detox_model(teacher, meta["model"], float(meta.get("width", 1.0)),
                                       x_clean, train, p, seed, progress)
        (folder / "detoxed").mkdir()
        student_path = folder / "detoxed" / "model.keras"
        student.save(student_path)
        write_json(folder / "detoxed" / META_FILE,
                   {**meta, "width": float(meta.get("width", 1.0)) * p["width"],
                    "dataset": str(spec), "detox": {**p, "clean_data": clean_desc}})
        # the defender compresses with their clean data: the clean inputs labelled by the student
        compress_set = dataclasses.replace(
            judged, name=f"{train.name}+defender-clean", x_train=x_clean,
            y_train=np.argmax(student.predict(x_clean, verbose=0), axis=-1).astype(np.int64)) \
            if compress_data == "clean" else train
        test = test_subset(judged, n, seed)
        rows = []
        (folder / "suspect").mkdir()
        for stage, src in (("suspect", path), ("detoxed", student_path)):
            artifacts = [("float", src)]
            artifacts += [(label, tfl) for label, tfl in
                          compress_all(src, recipes, folder / stage, compress_set, seed, progress)]
            for row in judge_backdoor(artifacts, test, trig, target_class, board, port, progress):
                row["stage"] = stage
                row["compress_data"] = None if row["board"] is None else compress_data
                rows.append(row)
        truth = poisoned_mask(spec)
        flags = {"flagged": int(flagged.sum()), "kept": int((~flagged).sum()),
                 "flagged_per_round": per_round}
        if truth is not None and len(truth) == len(flagged):
            flags.update(poisoned=int(truth.sum()), flagged_poisoned=int((flagged & truth).sum()),
                         flagged_clean=int((flagged & ~truth).sum()))
        params = {"model": str(model), "dataset": str(spec), **trig.describe(),
                  "target_class": target_class, "clean_data": str(clean_data),
                  "recipes": [recipe_label(r) for r in recipes], "compress_data": compress_data, **p}
        obj = summary("detox", "distillation-detox", params, seed, _sha(path),
                      {"kind": "board" if recipes else "float", "model_sha256": None, "board": board},
                      len(test.y_test), rows,
                      data={"clean": clean_desc, "screened": str(spec), **flags,
                            "compress": ("the defender's clean data" if compress_data == "clean"
                                         else "the screened training set"),
                            "judge": "clean test split minus the defender's share"})
        write(folder, "detox", obj)
    return obj
