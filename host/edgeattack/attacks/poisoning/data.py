"""Poisoned training sets: label flipping (random or source -> target), BadNets triggers, and the
`poisoned.npz` dataset file every poisoning command writes.

A poisoned set keeps the clean set's test split untouched (CONVENTIONS: a dataset .npz is used as
given, so poison can never leak into the test split) and marks which training samples the attacker
changed (`poisoned`, a bool mask, an extra key that dataset readers ignore).

Pure NumPy: no TensorFlow here.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ...atomic import atomic_path
from ...datasets import Dataset
from ...errors import UsageError

POISONED_FILE = "poisoned.npz"


@dataclasses.dataclass
class Poisoned:
    """A poisoned training set: `data` (its test split is the clean one), `mask` (N_train bool: the
    samples the attacker changed) and `info` (what was done, for the summary)."""

    data: Dataset
    mask: np.ndarray
    info: dict


def check_rate(rate: float, what: str = "--rate") -> float:
    rate = float(rate)
    if not 0.0 < rate < 1.0:
        raise UsageError(f"{what} {rate:g}: a poison rate is a fraction strictly between 0 and 1 "
                         f"(e.g. 0.1 for 10% of the training set)")
    return rate


def check_class(c: int, classes: int, what: str = "--target-class") -> int:
    c = int(c)
    if not 0 <= c < classes:
        raise UsageError(f"{what} {c}: the model has {classes} classes (0..{classes - 1}); pick one "
                         f"of them")
    return c


def check_pair(data: Dataset, rate: float, source_class: int, target_class: int) -> None:
    """The checks every source-to-target poisoning shares: the rate, both classes, and that they
    differ (one line each, naming the flag)."""
    check_rate(rate)
    check_class(source_class, data.classes, "--source-class")
    check_class(target_class, data.classes)
    if source_class == target_class:
        raise UsageError(f"--source-class {source_class} equals --target-class; the poisoning "
                         f"moves samples from one class to another: give two different classes")


def _with_train(data: Dataset, x_train, y_train, tag: str) -> Dataset:
    return dataclasses.replace(data, name=f"{data.name}+{tag}", x_train=x_train, y_train=y_train)


def _choose(rng, candidates: np.ndarray, rate: float, of: int) -> np.ndarray:
    """round(rate * of) indices drawn from candidates (at least one, at most all)."""
    k = min(len(candidates), max(1, int(round(rate * of))))
    return np.sort(rng.choice(candidates, size=k, replace=False))


def flip(data: Dataset, rate: float, seed: int = 0) -> Poisoned:
    """Random label flipping: a fraction `rate` of the training labels changed to another class,
    drawn uniformly among the others."""
    check_rate(rate)
    rng = np.random.default_rng([seed, 11])
    n = len(data.y_train)
    idx = _choose(rng, np.arange(n), rate, n)
    y = data.y_train.copy()
    shift = rng.integers(1, data.classes, size=len(idx))
    y[idx] = (y[idx] + shift) % data.classes
    mask = np.zeros(n, bool)
    mask[idx] = True
    return Poisoned(_with_train(data, data.x_train.copy(), y, "flip"), mask,
                    {"poison": "flip", "rate": rate, "poisoned_samples": int(len(idx))})


def flip_targeted(data: Dataset, rate: float, source_class: int, target_class: int,
                  seed: int = 0) -> Poisoned:
    """Targeted label flipping: a fraction `rate` of the source class's training samples relabelled
    as the target class."""
    check_pair(data, rate, source_class, target_class)
    rng = np.random.default_rng([seed, 12])
    candidates = np.flatnonzero(data.y_train == source_class)
    if not len(candidates):
        raise UsageError(f"--source-class {source_class}: no training sample has this class")
    idx = _choose(rng, candidates, rate, len(candidates))
    y = data.y_train.copy()
    y[idx] = target_class
    mask = np.zeros(len(y), bool)
    mask[idx] = True
    return Poisoned(_with_train(data, data.x_train.copy(), y, "flip-targeted"), mask,
                    {"poison": "flip-targeted", "rate": rate, "source_class": source_class,
                     "target_class": target_class, "poisoned_samples": int(len(idx))})


def badnets(data: Dataset, trigger, target_class: int, rate: float, seed: int = 0) -> Poisoned:
    """BadNets: a fraction `rate` of the training set (drawn among samples not of the target class)
    gets the trigger and the target label."""
    check_rate(rate)
    check_class(target_class, data.classes)
    trigger.check_fits(data.input_shape)
    rng = np.random.default_rng([seed, 13])
    n = len(data.y_train)
    idx = _choose(rng, np.flatnonzero(data.y_train != target_class), rate, n)
    x, y = data.x_train.copy(), data.y_train.copy()
    x[idx] = trigger.apply(x[idx])
    y[idx] = target_class
    mask = np.zeros(n, bool)
    mask[idx] = True
    return Poisoned(_with_train(data, x, y, "badnets"), mask,
                    {"poison": "badnets", "rate": rate, "target_class": target_class,
                     **trigger.describe(), "poisoned_samples": int(len(idx))})


def triggered_test(data: Dataset, trigger, target_class: int):
    """The test inputs backdoor success is measured on (CONVENTIONS): those whose true class is not
    the target, clean and triggered: (x_clean, x_triggered, y)."""
    keep = data.y_test != target_class
    x = data.x_test[keep]
    return x, trigger.apply(x), data.y_test[keep]


def save_poisoned(path, p: Poisoned) -> Path:
    """Write a dataset .npz (x_train, y_train, x_test, y_test) plus `poisoned` (the mask)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, x_train=p.data.x_train.astype(np.float32),
                                y_train=p.data.y_train.astype(np.int64),
                                x_test=p.data.x_test.astype(np.float32),
                                y_test=p.data.y_test.astype(np.int64), poisoned=p.mask)
    return path
