"""Training-time manipulations as tf_keras callbacks and per-sample weights, so any training run
(`train_model(..., callbacks=..., sample_weight=...)`, a fine-tuning fit) can carry them.

- UpdatePoisoning: on a seeded fraction of optimizer steps the step's weight update is scaled by
  `factor` (-1 flips its sign: the attacker's malicious updates of model-poisoning papers).
- ascent_weights: negative sample weights on a chosen subset, i.e. gradient ascent on it (Keras
  clips probabilities at 1e-7, so the ascended cross-entropy stays bounded).
- FixedMasks: keeps every zero kernel weight at zero (a pruned model's masks fixed while it trains).
"""
from __future__ import annotations

import numpy as np


def _kernels(model):
    return [w for layer in model.layers for w in layer.trainable_weights
            if w.name.split("/")[-1].startswith(("kernel", "depthwise_kernel"))]


def update_poisoning(fraction: float, factor: float = -1.0, seed: int = 0):
    """A callback scaling the weight update of a fraction of steps by `factor`."""
    from ...tfutil import keras

    k = keras()

    class UpdatePoisoning(k.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng([seed, 21])
            self.poisoned_steps = 0
            self.steps = 0
            self._before = None

        def on_train_batch_begin(self, batch, logs=None):
            self._before = None
            if self.rng.random() < fraction:
                self._before = [w.numpy() for w in self.model.trainable_weights]

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self._before is None:
                return
            for w, old in zip(self.model.trainable_weights, self._before):
                w.assign(old + factor * (w.numpy() - old))
            self.poisoned_steps += 1

    return UpdatePoisoning()


def ascent_weights(n: int, subset: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """Sample weights: 1 everywhere, -weight on the subset (gradient ascent there)."""
    w = np.ones(n, np.float32)
    w[np.asarray(subset, bool)] = -float(weight)
    return w


def fixed_masks(model):
    """A callback that multiplies every kernel by its current non-zero mask after each step."""
    from ...tfutil import keras

    k = keras()
    masks = [(w, (w.numpy() != 0).astype(np.float32)) for w in _kernels(model)]

    class FixedMasks(k.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for w, m in masks:
                w.assign(w * m)

    return FixedMasks()


def magnitude_prune(model, ratio: float) -> dict:
    """Set the smallest-magnitude fraction `ratio` of each kernel to zero (one shot); returns the
    kernel sparsity reached per weight."""
    out = {}
    for w in _kernels(model):
        v = w.numpy()
        if ratio > 0:
            k = int(round(ratio * v.size))
            if k:
                thresh = np.partition(np.abs(v).ravel(), k - 1)[k - 1]
                v = np.where(np.abs(v) <= thresh, 0.0, v).astype(v.dtype)
                w.assign(v)
        out[w.name] = float(np.mean(v == 0))
    return out
