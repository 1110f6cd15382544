"""State shared by the steps of one compression run, and the helpers every step uses (fine-tuning,
accuracy, progress output)."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..datasets import Dataset

log = logging.getLogger("edgeattack.compression")


@dataclass
class StepContext:
    model: Any                      # the current float tf_keras model (no pruning/clustering wrappers)
    data: Dataset
    seed: int
    progress: bool = True
    meta: dict = field(default_factory=dict)   # train.json of the source model ({} if foreign)
    qat_model: Any = None           # the quantization-aware model, once a QAT step ran
    tflite: bytes | None = None     # set by the conversion step
    aligned: bytes | None = None    # the same model re-packed to 16-byte alignment (what ships)
    conversion: str | None = None   # "int8", "dynamic-range" or "float16"
    zoo_name: str | None = None     # zoo model the current float model is (None once reshaped)
    zoo_width: float | None = None
    done: list = field(default_factory=list)   # names of the steps already run
    recipe_steps: list = field(default_factory=list)  # the whole recipe (steps look back at it)
    step: Any = None                # the step running now
    # A training hook a step left for the fine-tuning after it (adv-train: adversarial training).
    # hook(model) changes how model.fit trains that compiled model and returns a function that
    # undoes the change (or None); compression never looks inside.
    train_hook: Any = None
    fits: list = field(default_factory=list)   # (desc, trained through the hook) per fit this step

    # -------------------------------------------------------------------------------------- output
    def echo(self, message: str) -> None:
        """A step's one-line summary: on stderr when progress is on, always in the log."""
        log.info(message)
        if self.progress and not log.isEnabledFor(logging.INFO):
            from tqdm.auto import tqdm

            tqdm.write(message, file=sys.stderr)

    # ------------------------------------------------------------------------------------ training
    def accuracy(self, model=None) -> float:
        """Top-1 accuracy of a Keras model (default: the current one) on the test split."""
        from ..train import evaluate

        return evaluate(model if model is not None else self.model, self.data.x_test,
                        self.data.y_test)

    def fit(self, model, epochs: int, lr: float, batch_size: int, desc: str, callbacks=(),
            x=None, y=None, loss=None, hook=None) -> None:
        """Compile with Adam(lr) and train on the training split (shuffled by the seeded TF RNG).

        Trains through `hook`, else through the run's train_hook unless the running step says
        `adversarial: false`."""
        if epochs <= 0:
            return
        if hook is None and self.train_hook is not None:
            opted_out = self.step is not None and self.step.params.get("adversarial") is False
            hook = None if opted_out else self.train_hook
        from ..tfutil import keras
        from ..train import compile_for_classification, tqdm_callback

        k = keras()
        if loss is None:
            compile_for_classification(model, lr)
        else:
            model.compile(optimizer=k.optimizers.Adam(lr), loss=loss)
        undo = hook(model) if hook is not None else None
        self.fits.append((desc, hook is not None))
        cbs = list(callbacks)
        if self.progress:
            cbs.append(tqdm_callback(k, epochs, desc))
        try:
            model.fit(self.data.x_train if x is None else x, self.data.y_train if y is None else y,
                      epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=cbs)
        finally:
            if undo is not None:
                undo()

    def rng(self, salt: int = 0) -> np.random.Generator:
        """A NumPy generator derived from the run's seed (salted per use, so uses do not interfere)."""
        return np.random.default_rng([self.seed, salt])


@contextlib.contextmanager
def native_stderr_quiet():
    """Silence C++ logging on fd 2 (the TFLite converter prints its settings and absl warnings there)
    while yielding a file object that still reaches the real stderr, for progress bars.
    EDGEATTACK_TF_LOGS=1 or -vv keeps the native output."""
    if os.environ.get("EDGEATTACK_TF_LOGS") == "1" or log.isEnabledFor(logging.DEBUG):
        yield sys.stderr
        return
    sys.stderr.flush()
    saved = os.dup(2)
    real = os.fdopen(os.dup(saved), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield real
    finally:
        real.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        real.close()
