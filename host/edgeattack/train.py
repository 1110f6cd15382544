"""Training a zoo model on a dataset: the float model every compression recipe starts from."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_dir, check_output, write_json
from .datasets import Dataset, load_dataset, recorded_spec
from .errors import UsageError

MODEL_FILE = "model.keras"
META_FILE = "train.json"


@dataclass
class TrainResult:
    model_path: Path
    test_accuracy: float
    meta: dict


def tqdm_callback(k, epochs: int, desc: str):
    """A Keras callback drawing a tqdm bar per epoch on stderr (hidden when not a terminal)."""
    from tqdm.auto import tqdm

    class _Bar(k.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=False)

        def on_epoch_end(self, epoch, logs=None):
            acc = (logs or {}).get("accuracy")
            self.bar.set_postfix(acc=f"{acc:.3f}" if acc is not None else "-")
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return _Bar()


def compile_for_classification(model, lr: float = 1e-3):
    from .tfutil import keras

    k = keras()
    model.compile(optimizer=k.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def evaluate(model, x, y, batch_size: int = 256) -> float:
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(probs, axis=-1) == y))


def check_input_shape(model_shape, data: Dataset, model_desc: str) -> None:
    if tuple(model_shape) != tuple(data.input_shape):
        raise UsageError(f"{model_desc}: input shape {tuple(model_shape)} does not fit dataset "
                         f"{data.name} of shape {tuple(data.input_shape)}; pick a matching --dataset "
                         f"or --input-shape")


def train_model(model: str = "cnn-digits", dataset: str | Dataset = "digits", out=None, *,
                epochs: int = 30, batch_size: int = 32, lr: float = 1e-3, width: float = 1.0,
                input_shape=None, seed: int = 0, force: bool = False, progress: bool = True,
                callbacks=(), sample_weight=None) -> TrainResult:
    """Train zoo model `model` on `dataset`; write OUT/model.keras and OUT/train.json (which
    records a dataset file or folder by its absolute path, for `compress` to find from anywhere).

    callbacks (tf_keras callbacks) and sample_weight (one weight per training sample) let a
    training-time attack (attacks.poisoning) manipulate the run without a training loop of its own."""
    from .tfutil import keras, set_seed
    from .zoo import build_model

    if epochs < 1:
        raise UsageError(f"--epochs {epochs}: must be at least 1")
    if out is not None:
        check_output(out, force)  # before training, not after
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    data.check_finite()
    shape = tuple(input_shape) if input_shape else data.input_shape
    set_seed(seed)
    net = build_model(model, shape, data.classes, width)
    check_input_shape(net.input_shape[1:], data, f"--model {model}")
    compile_for_classification(net, lr)
    k = keras()
    callbacks = list(callbacks) + ([tqdm_callback(k, epochs, f"train {model}")] if progress else [])
    net.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size, verbose=0,
            shuffle=True, callbacks=callbacks, sample_weight=sample_weight)
    acc = evaluate(net, data.x_test, data.y_test)
    meta = {
        "model": model, "width": width, "input_shape": list(shape), "classes": data.classes,
        "dataset": recorded_spec(data.name), "data_range": list(data.data_range), "seed": seed, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "params": int(net.count_params()),
        "test_accuracy": acc,
    }
    if out is None:
        return TrainResult(Path(), acc, meta | {"keras_model": net})
    with atomic_dir(out, force=force) as tmp:
        net.save(tmp / MODEL_FILE)
        write_json(tmp / META_FILE, meta)
    return TrainResult(Path(out) / MODEL_FILE, acc, meta)


def read_train_meta(model_path: str | Path) -> dict:
    """The train.json written next to a model by `edgeattack train`, or {} for a foreign model."""
    p = Path(model_path)
    meta = (p if p.is_dir() else p.parent) / META_FILE
    if meta.is_file():
        return json.loads(meta.read_text())
    return {}
