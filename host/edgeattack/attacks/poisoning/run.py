"""The poisoning commands as Python functions (the CLI is a thin layer over them):

    run_backdoor(out, trigger="patch:3", target_class=0, rate=0.1, recipes=["ptq-int8"],
                 board="emu-tflm", activated=False)            -> backdoor.json's content
    run_poison(out, kind="flip", rate=0.1, recipes=[...], prune_ratios=[...], epochs=...)
                                                                -> poison.json's content
    run_detox(model, out, clean_data=0.2, board="emu-tflm", ...) -> detox.json's content   (detox.py)

The threat model (docs/attacks.md): the attacker trains on poisoned data; the defender compresses
the delivered float model with their OWN clean data unless compress_data="poisoned". Every summary
records which data each step used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...datasets import Dataset, load_dataset
from ...errors import UsageError
from . import data as pdata
from . import judge
from .summary import run_folder, summary, write
from .triggers import parse_trigger

COMPRESS_DATA = ("clean", "poisoned")


def check_compress_data(value: str) -> str:
    if value not in COMPRESS_DATA:
        raise UsageError(f"--compress-data {value}: choose clean (the defender's own data, the "
                         f"default) or poisoned")
    return value


def recipe_label(recipe) -> str:
    """A recipe's name in rows and folder names: a built-in name, or a YAML file's stem."""
    s = str(recipe)
    return Path(s).stem if s.endswith((".yaml", ".yml")) else s


def check_recipes(recipes) -> list:
    from ...compression.recipe import load_recipe

    out = []
    for r in recipes:
        load_recipe(r)  # an unknown name or a bad YAML fails before any training
        out.append(r)
    labels = [recipe_label(r) for r in out]
    if len(set(labels)) != len(labels):
        raise UsageError(f"--recipes {','.join(map(str, recipes))}: a recipe is named twice")
    return out


def test_subset(data: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded draw of n test samples (all when n is None), kept in test-split order."""
    if n is None or n >= len(data.y_test):
        return data
    if n < 1:
        raise UsageError(f"-n {n}: give at least one test sample")
    idx = np.sort(np.random.default_rng([seed, 31]).choice(len(data.y_test), n, replace=False))
    import dataclasses

    return dataclasses.replace(data, x_test=data.x_test[idx], y_test=data.y_test[idx])


def train_float(model_name: str, data: Dataset, folder: Path, *, epochs: int, seed: int,
                progress: bool, **kwargs) -> Path:
    from ...train import train_model

    return train_model(model_name, data, folder, epochs=epochs, seed=seed, progress=progress,
                       **kwargs).model_path


def compress_all(model_path: Path, recipes, folder: Path, data: Dataset, seed: int,
                 progress: bool) -> list[tuple[str, Path]]:
    """Compress the model with each recipe on `data`; [(label, model.tflite path)]."""
    from ...compression import compress

    out = []
    for r in recipes:
        res = compress(model_path, r, folder / recipe_label(r), dataset=data, seed=seed,
                       progress=progress)
        out.append((recipe_label(r), res.tflite_path))
    return out


def _load_keras(path):
    from ...compression.pipeline import load_keras_model

    return load_keras_model(Path(path))


def judge_backdoor(artifacts, test: Dataset, trigger, target_class: int, board: str | None,
                   port: str | None, progress: bool) -> list[dict]:
    """One row per artifact: ("float" or "unpoisoned", keras path) on the host, (recipe, tflite)
    on the board. Clean accuracy over the test inputs, backdoor success over those of other classes."""
    x_clean, x_trig, y_trig = pdata.triggered_test(test, trigger, target_class)
    keep = test.y_test != target_class
    rows = []
    for label, path in artifacts:
        if Path(path).suffix == ".tflite":
            (p_all, p_trig), ident = judge.predict_board(path, board, [test.x_test, x_trig], port=port,
                                                         progress=progress, desc=f"{label} on {board}")
            where = {"board": ident["board"], "model_sha256": ident["model_sha256"],
                     "device_inferences": ident["device_inferences"]}
        else:
            p_all, p_trig = judge.predict_float(_load_keras(path), [test.x_test, x_trig])
            where = {"board": None, "model_sha256": None}
        rows.append({"artifact": label, **where, **judge.clean_metrics(p_all, test.y_test),
                     **judge.backdoor_metrics(p_all[keep], p_trig, y_trig, target_class)})
    return rows


def _sha(path) -> str:
    from ...fileid import sha256_file

    return sha256_file(path)


def run_backdoor(out, *, model: str = "cnn-digits", dataset="digits", trigger: str = "patch:3",
                 target_class: int = 0, rate: float = 0.1, recipes=("ptq-int8",),
                 board: str | None = "emu-tflm", port: str | None = None,
                 compress_data: str = "clean", activated: bool = False, epochs: int = 30,
                 n: int | None = None, seed: int = 0, position: str = "bottom-right",
                 baseline: bool = False, activation: dict | None = None, force: bool = False,
                 progress: bool = True) -> dict:
    """Train `model` on data poisoned with a BadNets trigger (or, with activated=True, the
    compression-activated backdoor of activated.py), compress it with each recipe on the
    defender's data and judge every artifact on the board. Writes OUT/poisoned.npz,
    OUT/float/model.keras, OUT/<recipe>/model.tflite and OUT/backdoor.json; returns the summary."""
    check_compress_data(compress_data)
    recipes = check_recipes(recipes)
    clean = load_dataset(dataset)
    clean.check_finite()
    trig = parse_trigger(trigger, clean.input_shape, position=position, data_range=clean.data_range)
    pdata.check_class(target_class, clean.classes)
    pdata.check_rate(rate)
    if recipes and board is None and port is None:
        raise UsageError("--recipes needs --board (or --port): compressed artifacts are judged on a device")
    with run_folder(out, force) as folder:
        poisoned_path = folder / pdata.POISONED_FILE
        poisoned = pdata.badnets(clean, trig, target_class, rate, seed)
        pdata.save_poisoned(poisoned_path, poisoned)
        poisoned.data.name = str(poisoned_path.resolve())  # what train.json records
        if activated:
            from .activated import train_activated

            float_path, act_info = train_activated(model, clean, trig, target_class, folder / "float",
                                                   epochs=epochs, seed=seed, progress=progress,
                                                   dataset_spec=poisoned.data.name,
                                                   **{"rate": rate, **(activation or {})})
            attack, train_data = "quantization-activated", "poisoned, then a suppressor unit"
        else:
            float_path = train_float(model, poisoned.data, folder / "float", epochs=epochs, seed=seed,
                                     progress=progress)
            attack, train_data, act_info = "badnets", "poisoned", None
        artifacts = [("float", float_path)]
        if baseline:
            artifacts.append(("unpoisoned", train_float(model, clean, folder / "unpoisoned",
                                                        epochs=epochs, seed=seed, progress=progress)))
        compress_set = clean if compress_data == "clean" else poisoned.data
        artifacts += compress_all(float_path, recipes, folder, compress_set, seed, progress)
        test = test_subset(clean, n, seed)
        rows = judge_backdoor(artifacts, test, trig, target_class, board, port, progress)
        for row in rows:
            row["train_data"] = "clean" if row["artifact"] == "unpoisoned" else train_data
            row["compress_data"] = None if row["board"] is None else compress_data
        params = {"model": model, "dataset": str(dataset), **trig.describe(),
                  "target_class": target_class, "rate": rate,
                  "recipes": [recipe_label(r) for r in recipes], "compress_data": compress_data,
                  "activated_by_quantization": activated, "epochs": epochs}
        if act_info:
            params["activation"] = act_info
        obj = summary("backdoor", attack, params, seed, _sha(float_path),
                      {"kind": "board" if recipes else "float", "model_sha256": None, "board": board},
                      len(test.y_test), rows,
                      data={"train": train_data, "poisoned_file": pdata.POISONED_FILE,
                            "poisoned_samples": int(poisoned.mask.sum()),
                            "compress": compress_data, "judge": "clean test split (triggered copies "
                                                                  "for backdoor success)"})
        write(folder, "backdoor", obj)
    return obj
