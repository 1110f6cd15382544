"""compress(): run a recipe on a float Keras model and write OUT/{model.keras, model.tflite,
manifest.json} (CONVENTIONS: manifest.json). docs/recipes.md documents the manifest's keys."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..atomic import atomic_dir, check_output, write_bytes, write_json
from ..datasets import Dataset, is_named, load_dataset
from ..errors import UsageError
from ..fileid import sha256_file
from .context import StepContext, log
from .recipe import CONVERT, QAT, load_recipe, with_clean_data
from .steps import run_step

MODEL_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA = 1


@dataclass
class CompressResult:
    out: Path
    manifest: dict

    @property
    def model_path(self) -> Path:
        return self.out / MODEL_FILE

    @property
    def tflite_path(self) -> Path:
        return self.out / TFLITE_FILE


def load_keras_model(path: Path):
    """A tf_keras model from .keras/.h5/SavedModel (keras_io also rebuilds Keras 3 files)."""
    try:
        from ..keras_io import load_model
    except ImportError:  # keras_io not installed in this checkout: plain tf_keras loading
        from ..tfutil import keras

        try:
            return keras().models.load_model(path, compile=False)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise UsageError(f"{path}: not a Keras model ({first}); give a .keras, .h5 or "
                             f"SavedModel folder") from None
    return load_model(path)


def _load_source(model, dataset, desc):
    """(model path or None, keras model, train meta, dataset). Cheap checks (paths, a dataset
    .npz) run before TensorFlow loads; a file that is not a model is reported as such even when
    the dataset is unknown too."""
    from ..train import read_train_meta

    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise UsageError(f"{path}: no such model; give a .keras, .h5 or SavedModel folder")
        meta = read_train_meta(path)
    else:
        path, meta = None, {}
    spec = dataset if dataset is not None else _recorded_dataset(meta, path, desc)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(spec) if spec else None
    keras_model = load_keras_model(path) if path is not None else model
    if data is None:
        raise UsageError(f"{desc}: no train.json next to it records its dataset; pass --dataset "
                         f"(digits, synthetic:HxWxC:K, a .npz, ...)")
    return path, keras_model, meta, data


def _recorded_dataset(meta: dict, path: Path | None, desc: str):
    """The dataset train.json records. A file or folder is recorded absolute; an older train.json
    may hold it relative to the training run's working directory, which is unknown: try the
    current folder, then the model's own folder."""
    spec = meta.get("dataset")
    if not spec or is_named(spec) or Path(spec).is_absolute() or path is None:
        return spec
    folder = path if path.is_dir() else path.parent
    for candidate in (Path(spec), folder / spec):
        if candidate.exists():
            return str(candidate)
    raise UsageError(f"{desc}: its train.json records dataset {spec}, relative to where it was "
                     f"trained, and it is neither here nor beside the model; pass --dataset")


def _check_fits(model, data: Dataset, desc: str) -> None:
    shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if shape != tuple(data.input_shape):
        raise UsageError(f"{desc}: input shape {shape} does not fit dataset {data.name} of shape "
                         f"{tuple(data.input_shape)}; pass the --dataset the model was trained on")
    out = model.output_shape
    if isinstance(out, list) or len(out) != 2:
        raise UsageError(f"{desc}: output shape {out}; compress takes classifiers with one output "
                         f"of shape (batch, classes)")
    if out[-1] != data.classes:
        raise UsageError(f"{desc}: {out[-1]} outputs but dataset {data.name} has {data.classes} "
                         f"classes; pick the --dataset the model was trained on")


def compress(model_path_or_keras, recipe, out, dataset=None, seed: int = 0, force: bool = False,
             progress: bool = True, float_baseline: bool = False) -> CompressResult:
    """Compress a float classifier with a recipe; write OUT/model.keras, model.tflite, manifest.json.

    model_path_or_keras: a .keras/.h5/SavedModel path (its train.json supplies the dataset and zoo
    name) or a tf_keras model. recipe: a built-in name, a .yaml path, a parsed list/mapping or a
    Recipe. dataset: a dataset spec or Dataset (default: the one in train.json). float_baseline
    also converts the final float model to a float32 .tflite and records its sizes. Nothing is
    written unless every step, the conversion and the checks succeed.
    """
    from ..tfutil import keras, set_seed

    # a step missing the defender's clean data fails here, before any step runs
    recipe = with_clean_data(load_recipe(recipe), None)
    out = Path(out)
    check_output(out, force)
    desc = str(model_path_or_keras) if isinstance(model_path_or_keras, (str, os.PathLike)) \
        else "the given Keras model"
    path, model, meta, data = _load_source(model_path_or_keras, dataset, desc)
    _check_fits(model, data, desc)
    # Fresh layer-name counters: generated layer names end up in the .tflite, so the same seed
    # must see the same names however many models this process built before.
    keras().backend.clear_session()
    set_seed(seed)

    ctx = StepContext(model=model, data=data, seed=seed, progress=progress, meta=meta,
                      zoo_name=meta.get("model"), zoo_width=meta.get("width"),
                      recipe_steps=recipe.steps)
    source_acc = ctx.accuracy()
    ctx.echo(f"source model: {model.count_params()} params, accuracy {source_acc:.4f} on "
             f"{data.name} test ({len(data.x_test)} samples)")
    records, acc = [], source_acc
    for i, step in enumerate(recipe.steps, 1):
        t0 = time.monotonic()
        ctx.step, ctx.fits = step, []
        details = run_step(ctx, step)
        ctx.done.append(step.name)
        rec = {"step": step.name, "params": step.params, "accuracy_before": acc}
        if step.appended:
            rec["appended"] = True
        if any(hooked for _, hooked in ctx.fits) or (ctx.fits and ctx.train_hook is not None):
            # which steps trained through an earlier step's hook (adv-train), and which opted out
            rec["adversarial"] = any(hooked for _, hooked in ctx.fits)
        if step.kind == CONVERT:
            rec["accuracy_after"] = None  # filled in with the LiteRT accuracy below
        elif step.kind == QAT:
            rec["accuracy_after"] = details["qat_accuracy"]
            acc = details["float_accuracy"]
        else:
            rec["accuracy_after"] = acc = ctx.accuracy()
        rec["seconds"] = round(time.monotonic() - t0, 2)
        rec["details"] = details
        records.append(rec)
        if step.kind != CONVERT:
            ctx.echo(f"step {i}/{len(recipe.steps)} {step.name}: accuracy "
                     f"{rec['accuracy_before']:.4f} -> {rec['accuracy_after']:.4f} "
                     f"({rec['seconds']:.1f} s)")
        if details.get("warning"):
            ctx.echo(f"  warning: {details['warning']}")
        log.info("  %s details: %s", step.name, json.dumps(details, default=str))

    from .measure import measure

    m = measure(ctx, float_baseline)
    last = records[-1]
    last["accuracy_after"] = m["accuracy"]["litert"]
    ctx.echo(f"step {len(records)}/{len(recipe.steps)} {last['step']}: accuracy "
             f"{last['accuracy_before']:.4f} -> {m['accuracy']['litert']:.4f} (LiteRT)"
             + (f", {m['accuracy']['tflm']:.4f} (TFLM)" if m["accuracy"]["tflm"] is not None else "")
             + f" ({last['seconds']:.1f} s)")

    manifest = {
        "schema": MANIFEST_SCHEMA,
        "tool": f"edgeattack {__version__}",
        "source": {
            "model": str(path) if path is not None else None,
            "sha256": sha256_file(path) if path is not None and path.is_file() else None,
            "zoo_model": meta.get("model"), "width": meta.get("width"),
            "params": int(model.count_params()), "accuracy": source_acc,
        },
        "recipe": recipe.describe(),
        "steps": records,
        "dataset": data.describe(),
        "seed": seed,
        "data_range": [float(data.data_range[0]), float(data.data_range[1])],
        **m,
    }
    with atomic_dir(out, force=force) as tmp:
        ctx.model.save(tmp / MODEL_FILE)
        write_bytes(tmp / TFLITE_FILE, ctx.aligned)
        manifest["files"] = {MODEL_FILE: (tmp / MODEL_FILE).stat().st_size,
                             TFLITE_FILE: len(ctx.aligned)}
        write_json(tmp / MANIFEST_FILE, manifest)
    return CompressResult(out, manifest)


def read_manifest(out) -> dict:
    return json.loads((Path(out) / MANIFEST_FILE).read_text())


__all__ = ["compress", "CompressResult", "read_manifest", "MODEL_FILE", "TFLITE_FILE",
           "MANIFEST_FILE"]
