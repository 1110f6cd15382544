"""What a session sends: clean and adversarial inputs files (CONVENTIONS "Files"), or a dataset's
test split, loaded and checked before any board starts.

    load_clean(path)            x (N x ...), y (N), optional ids (int64, default 0..N-1)
    load_adversarial(path)      x_adv (E x N x ...), eps (E), y, ids, meta JSON, optional x
    load_dataset_inputs(name, n, seed=None)
                                the dataset's test split: the first n samples, or n drawn with seed
    check_ranges(sets, data_range, range_from, classes)
                                one warning line per file whose inputs leave the model's data range
                                or whose labels are not among the model's classes

Non-finite inputs (NaN, inf) are refused at load with the file and the first bad index: a
quantized NaN has no meaning, and the accuracy it gave would look valid.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..fileid import sha256_file

log = logging.getLogger("edgeattack.session")


@dataclass
class InputSet:
    """One inputs file. Clean: x is N x sample; adversarial: x is E x N x sample, one row per eps."""

    path: Path | str  # the file, or a description of the dataset split it came from
    kind: str  # "clean" | "adversarial"
    source: str
    eps: list  # [None] for clean
    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    sha256: str
    meta: dict = field(default_factory=dict)
    clean_x: np.ndarray | None = None  # adversarial files carry their clean samples too
    # black-box attacks' per-example costs (E x N): name -> array, copied into each record
    per_sample: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.x.shape[1:] if self.kind == "clean" else self.x.shape[2:])

    def describe(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "kind": self.kind, "source": self.source,
                "eps": self.eps, "n": self.n}


def _open_npz(path) -> tuple[Path, dict]:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"inputs file {path} does not exist (give an .npz with x, y[, ids])")
    try:
        with np.load(path, allow_pickle=False) as data:
            return path, {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - zip, pickle and format errors all mean "not our npz"
        raise UsageError(f"inputs file {path} is not a readable .npz ({type(exc).__name__}: {exc}); "
                         f"give a NumPy .npz saved without pickles") from None


def _need(path, data, key, what):
    if key not in data:
        raise UsageError(f"{path}: has no '{key}' array ({what}); it has {', '.join(sorted(data)) or 'nothing'}")
    return data[key]


def _ids_labels(path, data, n) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(_need(path, data, "y", "integer labels"))
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise UsageError(f"{path}: 'y' must be {n} integer labels, got shape {y.shape} {y.dtype}")
    ids = data.get("ids")
    if ids is None:
        ids = np.arange(n, dtype=np.int64)
    ids = np.asarray(ids)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise UsageError(f"{path}: 'ids' must be {n} integers, got shape {ids.shape} {ids.dtype}")
    if len(np.unique(ids)) != n:
        raise UsageError(f"{path}: 'ids' has duplicates (each sample needs its own id)")
    return ids.astype(np.int64), y.astype(np.int64)


def _check_finite(path, name: str, x: np.ndarray, ids: np.ndarray, sample_axis: int) -> None:
    """UsageError naming the file, the array and the first NaN/inf (index and sample id)."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    raise UsageError(f"{path}: '{name}' holds {x[where]} at index {list(where)} (sample id "
                     f"{int(ids[where[sample_axis]])}); inputs must be finite: fix or drop that sample")


def load_clean(path) -> InputSet:
    """A clean inputs .npz: x (N x ...), y (N), optional ids (int64, default 0..N-1)."""
    path, data = _open_npz(path)
    x = np.asarray(_need(path, data, "x", "the samples"))
    if x.ndim < 2 or len(x) == 0:
        raise UsageError(f"{path}: 'x' must hold N >= 1 samples (N x sample shape), got shape {x.shape}")
    ids, y = _ids_labels(path, data, len(x))
    _check_finite(path, "x", x, ids, 0)
    return InputSet(path, "clean", "clean", [None], x, y, ids, sha256_file(path))


def load_adversarial(path) -> InputSet:
    """An adversarial .npz (CONVENTIONS: Files): x_adv (E x N x ...), eps (E), y, ids, meta JSON."""
    path, data = _open_npz(path)
    x_adv = np.asarray(_need(path, data, "x_adv", "adversarial examples, E x N x sample"))
    eps = np.asarray(_need(path, data, "eps", "the E epsilons")).reshape(-1)
    if x_adv.ndim < 3 or x_adv.shape[0] != len(eps) or x_adv.shape[1] == 0:
        raise UsageError(f"{path}: 'x_adv' must be E x N x sample with E = len(eps) = {len(eps)}, got "
                         f"shape {x_adv.shape}")
    ids, y = _ids_labels(path, data, x_adv.shape[1])
    meta_raw = _need(path, data, "meta", "a 0-d string array holding JSON with the attack name")
    try:
        meta = json.loads(str(np.asarray(meta_raw).reshape(()).item()))
        source = str(meta["attack"])
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{path}: 'meta' must be a JSON object with an 'attack' name") from None
    if source == "clean" or not source:
        raise UsageError(f"{path}: meta attack name {source!r} is reserved; name the attack")
    # An unbounded minimization attack's epsilon is inf in the .npz and null in every JSON record
    # (attacks.io): a record never holds a bare Infinity, which strict JSON parsers reject.
    eps_list = [None if np.isposinf(e) else float(e) for e in eps]
    if len(set(eps_list)) != len(eps_list):
        raise UsageError(f"{path}: 'eps' has repeated values {eps_list}")
    clean_x = data.get("x")
    if clean_x is not None and tuple(clean_x.shape) != tuple(x_adv.shape[1:]):
        raise UsageError(f"{path}: 'x' shape {clean_x.shape} does not match one row of 'x_adv' "
                         f"{x_adv.shape[1:]}")
    _check_finite(path, "x_adv", x_adv, ids, 1)
    if clean_x is not None:
        _check_finite(path, "x", clean_x, ids, 0)
    per_sample = {}
    for k in ("queries", "wire_bytes", "crafting_energy_j"):  # attacks.io.PER_SAMPLE
        if k in data:
            v = np.asarray(data[k])
            if v.shape != x_adv.shape[:2] or v.dtype.kind not in "iuf":
                raise UsageError(f"{path}: '{k}' must be numbers, E x N = {x_adv.shape[:2]}, got "
                                 f"{v.dtype} {v.shape}")
            per_sample[k] = v
    return InputSet(path, "adversarial", source, eps_list, x_adv, y, ids, sha256_file(path), meta, clean_x,
                    per_sample)


def load_dataset_inputs(name, n: int | None = None, seed: int | None = None) -> InputSet:
    """Clean inputs from a dataset's test split (edgeattack.datasets.load_dataset names and files):
    the first n samples, or with a seed n samples drawn without replacement. The ids are the
    samples' indices in the test split, so two runs that share samples share ids."""
    from ..datasets import load_dataset

    data = load_dataset(name)
    total = len(data.x_test)
    if n is None:
        n = total
    if n < 1 or n > total:
        raise UsageError(f"-n {n}: the test split of {data.name} has {total} samples; give 1..{total}")
    if seed is None:
        idx = np.arange(n)
        how = f"first {n}"
    else:
        idx = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
        how = f"{n} drawn with seed {seed}"
    x = np.ascontiguousarray(data.x_test[idx])
    y = np.asarray(data.y_test[idx]).astype(np.int64)
    label = f"dataset {data.name}, test split, {how}"
    _check_finite(label, "x_test", x, idx, 0)
    # Identity of exactly what is sent (for --resume): the samples, labels and ids themselves.
    h = hashlib.sha256()
    for a in (x, y, idx.astype(np.int64)):
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return InputSet(label, "clean", "clean", [None], x, y, idx.astype(np.int64), h.hexdigest(),
                    meta={"dataset": data.name, "n": n, "seed": seed})


def check_ranges(sets, data_range, range_from: str, classes: int | None) -> list[str]:
    """Warn (one line each, logging) about float inputs outside the model's data range and labels
    outside 0..classes-1; returns the warnings. Integer inputs are sent as they are: not checked."""
    lo, hi = (float(v) for v in data_range)
    warnings = []
    for s in sets:
        arrays = [s.x] + ([s.clean_x] if s.clean_x is not None else [])
        floats = [a for a in arrays if np.issubdtype(a.dtype, np.floating) and a.size]
        if floats:
            a_lo, a_hi = min(float(a.min()) for a in floats), max(float(a.max()) for a in floats)
            # Half a step of float32 slack: a sample written as 1.0000001 is not out of range.
            tol = 1e-6 * max(1.0, abs(lo), abs(hi))
            if a_lo < lo - tol or a_hi > hi + tol:
                outside = sum(int(((a < lo - tol) | (a > hi + tol)).sum()) for a in floats)
                warnings.append(f"{s.path}: inputs span [{a_lo:g}, {a_hi:g}], outside the model's data "
                                f"range [{lo:g}, {hi:g}] ({range_from}); {outside} values will saturate "
                                f"when quantized: give inputs in the model's own domain")
        if classes is not None and s.y.size and (s.y.min() < 0 or s.y.max() >= classes):
            bad = int(((s.y < 0) | (s.y >= classes)).sum())
            warnings.append(f"{s.path}: {bad} labels lie outside the model's {classes} classes "
                            f"(0..{classes - 1}); those samples can never count as correct")
    for w in warnings:
        log.warning(w)
    return warnings
