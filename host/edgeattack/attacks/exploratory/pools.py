"""Where an extraction attacker's queries come from, and the data the attacker never queries.

The test split of the dataset is cut in two seeded halves: the *pool half* (what `--pool heldout`
queries) and the *evaluation half* (fidelity, accuracy and the inversion scores are measured on it,
and no attack ever sends it to the device). Neither half was used to train the victim.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import UsageError

POOLS = ("heldout", "synthetic", "noise")


def evaluation_split(dataset, seed: int = 0):
    """(x_pool, y_pool, x_eval, y_eval): a seeded half of `dataset`'s test split and the rest."""
    n = len(dataset.x_test)
    if n < 2:
        raise UsageError(f"--dataset {dataset.name}: its test split has {n} sample(s); extraction "
                         f"needs at least 2 (one half to query, one to measure fidelity)")
    order = np.random.default_rng(seed).permutation(n)
    a, b = np.sort(order[: n // 2]), np.sort(order[n // 2:])
    return dataset.x_test[a], dataset.y_test[a], dataset.x_test[b], dataset.y_test[b]


def query_pool(spec: str | os.PathLike, dataset, input_shape, data_range, seed: int = 0,
               size: int | None = None) -> np.ndarray:
    """The attacker's unlabeled query pool, float32 of the device's sample shape.

    spec: "heldout" (the pool half of the test split), "synthetic" (class-structured synthetic
    images of the input shape, unrelated to the victim's task), "noise" (uniform in the data range),
    or an inputs/dataset .npz (its `x`, else `x_train`). `size` sets how many synthetic or noise
    samples are drawn (default 1000)."""
    shape = tuple(int(d) for d in input_shape)
    s = str(spec)
    rng = np.random.default_rng(seed)
    count = int(size or 1000)
    if s == "heldout":
        x = evaluation_split(dataset, seed)[0]
    elif s == "synthetic":
        from ...datasets import synthetic

        spec_s = f"synthetic:{'x'.join(map(str, shape))}:{max(2, dataset.classes)}:{max(2 * dataset.classes, count)}"
        syn = synthetic(spec_s, seed=seed + 1)
        x = np.concatenate([syn.x_train, syn.x_test])[:count]
        lo, hi = data_range
        x = lo + x * (hi - lo)
    elif s == "noise":
        lo, hi = data_range
        x = rng.uniform(lo, hi, size=(count, *shape))
    elif Path(s).suffix.lower() == ".npz":
        x = _npz_pool(Path(s))
    else:
        raise UsageError(f"--pool {s}: choose heldout, synthetic, noise or an .npz file with x")
    x = np.asarray(x, dtype=np.float32)
    if tuple(x.shape[1:]) != shape:
        raise UsageError(f"--pool {s}: its samples have shape {tuple(x.shape[1:])} but the device's "
                         f"input is {shape}; give a pool of {shape} samples")
    if len(x) == 0:
        raise UsageError(f"--pool {s}: the pool is empty")
    if not np.isfinite(x).all():
        raise UsageError(f"--pool {s}: the pool holds NaN or infinite values")
    return x[rng.permutation(len(x))]


def _npz_pool(path: Path) -> np.ndarray:
    from ...datasets import load_npz

    try:
        return load_npz(path, ("x",), "a --pool inputs .npz")["x"]
    except UsageError as e:
        if "missing key" not in str(e):
            raise
    return load_npz(path, ("x_train",), "a --pool .npz (x, or a dataset's x_train)")["x_train"]
