"""Datasets by name: digits (bundled, offline), mnist / fashion_mnist / cifar10 (keras cache),
synthetic:HxWxC:K (seeded generator), a user .npz, or an image folder (one sub-folder per class).

Every dataset is float32 `x` in the model's input domain ([0, 1] here) and int64 labels, with a fixed
seeded train/test split, so `train`, `compress`, `attack` and `study` all see the same split.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UsageError

SPLIT_SEED = 0  # fixed: every command must see the same train/test split of a named dataset
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
# What keras.datasets leaves in its cache for each dataset (EDGEATTACK_OFFLINE=1 never downloads).
KERAS_CACHE_NAMES = {"mnist": "mnist.npz", "fashion_mnist": "fashion-mnist", "cifar10": "cifar-10-batches-py"}


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    data_range: tuple[float, float] = (0.0, 1.0)
    labels: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def check_finite(self) -> None:
        check_finite(self.name, x_train=self.x_train, x_test=self.x_test)

    def describe(self) -> dict:
        return {
            "name": self.name, "input_shape": list(self.input_shape), "classes": self.classes,
            "train": int(len(self.x_train)), "test": int(len(self.x_test)),
            "data_range": [float(self.data_range[0]), float(self.data_range[1])],
        }


def load_dataset(spec: str | os.PathLike = "digits") -> Dataset:
    """Load a dataset by name or path (see module docstring)."""
    s = str(spec)
    if not s:
        raise UsageError("--dataset is empty; give a dataset name, a .npz or an image folder")
    if s == "digits":
        return _digits()
    if s in KERAS_DATASETS:
        return _keras_dataset(s)
    if s.startswith("synthetic"):
        return synthetic(s)
    p = Path(s)
    if p.suffix.lower() == ".npz":
        return _npz(p)
    if p.is_dir():
        return _image_folder(p)
    raise UsageError(
        f"--dataset {s}: unknown dataset; use digits, mnist, fashion_mnist, cifar10, "
        f"synthetic:HxWxC:K, a .npz with x_train/y_train/x_test/y_test, or an image folder")


def _split(x, y, test_fraction=0.2):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_fraction, random_state=SPLIT_SEED, stratify=y)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = _split(x, y)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, 10, (0.0, 1.0), [str(i) for i in range(10)])


def _keras_dataset(name: str) -> Dataset:
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    hint = (f"keras downloads it when online, or put the keras file for {name} at "
            f"{cache / KERAS_CACHE_NAMES[name]}, or pass --dataset file.npz")
    if os.environ.get("EDGEATTACK_OFFLINE") == "1" and not (cache / KERAS_CACHE_NAMES[name]).exists():
        raise UsageError(f"--dataset {name}: not cached and EDGEATTACK_OFFLINE=1; {hint}")
    try:
        from . import tfutil

        module = getattr(tfutil.keras().datasets, name)
        (x_tr, y_tr), (x_te, y_te) = module.load_data()
    except Exception as e:  # offline: the loader fails to download
        raise UsageError(f"--dataset {name}: not available ({type(e).__name__}); {hint}") from None
    x_tr = x_tr.astype(np.float32) / 255.0
    x_te = x_te.astype(np.float32) / 255.0
    if x_tr.ndim == 3:
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    return Dataset(name, x_tr, y_tr.reshape(-1).astype(np.int64), x_te,
                   y_te.reshape(-1).astype(np.int64), 10, (0.0, 1.0))


def parse_synthetic(spec: str) -> tuple[tuple[int, ...], int, int]:
    """`synthetic:32x32x3:10[:N]` -> (shape, classes, samples)."""
    parts = spec.split(":")
    try:
        shape = tuple(int(v) for v in parts[1].split("x")) if len(parts) > 1 else (8, 8, 1)
        classes = int(parts[2]) if len(parts) > 2 else 10
        n = int(parts[3]) if len(parts) > 3 else 1200
        if len(parts) > 4 or min(shape) < 1 or classes < 2 or n < 2 * classes:
            raise ValueError
    except ValueError:
        raise UsageError(f"--dataset {spec}: bad synthetic spec; write synthetic:HxWxC:CLASSES[:SAMPLES], "
                         f"e.g. synthetic:32x32x3:10") from None
    return shape, classes, n


def synthetic(spec: str = "synthetic:8x8x1:10", seed: int = 0) -> Dataset:
    """Learnable class-structured data: smooth per-class prototypes plus noise, in [0, 1]."""
    shape, classes, n = parse_synthetic(spec)
    rng = np.random.default_rng(seed)
    # Smooth prototypes (low-frequency patterns upsampled) so convolutions can learn them quickly.
    coarse = [max(1, d // 4) for d in shape[:-1]] + [shape[-1]]
    protos = rng.random((classes, *coarse)).astype(np.float32)
    for axis, d in enumerate(shape[:-1]):
        reps = int(np.ceil(d / coarse[axis]))
        protos = np.repeat(protos, reps, axis=axis + 1)
        protos = np.take(protos, np.arange(d), axis=axis + 1)
    y = np.arange(n) % classes
    rng.shuffle(y)
    x = protos[y] + 0.25 * rng.standard_normal((n, *shape)).astype(np.float32)
    x = np.clip(x, 0.0, 1.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = _split(x, y.astype(np.int64))
    return Dataset(spec, x_tr, y_tr, x_te, y_te, classes, (0.0, 1.0))


NPZ_MAGIC = b"PK\x03\x04"    # an .npz is a zip archive of .npy files
NPY_MAGIC = b"\x93NUMPY"


def load_npz(path: str | os.PathLike, keys: tuple[str, ...], what: str = "an .npz",
             optional: tuple[str, ...] = ()) -> dict:
    """The arrays `keys` (and those of `optional` the file has) of the .npz file `path`
    (allow_pickle=False). A single .npy array, a text file or a missing key is a one-line
    UsageError saying what the file is and what is expected."""
    path = Path(path)
    need = ", ".join(keys)
    if not path.is_file():
        raise UsageError(f"{path}: no such file; give {what} with {need}")
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
    except OSError as e:
        raise UsageError(f"{path}: cannot read it ({e.strerror})") from None
    if not head.startswith(NPZ_MAGIC):
        kind = ("a single .npy array" if head.startswith(NPY_MAGIC) else
                "an empty file" if not head else "not an .npz archive")
        raise UsageError(f"{path}: {kind}; give {what} with {need}, saved with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise UsageError(f"{path}: missing key {missing[0]!r}; {what} needs {need}")
            return {k: f[k] for k in tuple(keys) + tuple(optional) if k in f.files}
    except UsageError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UsageError(f"{path}: not a readable .npz ({first}); save it with numpy.savez, "
                         f"without object arrays") from None


def _npz(path: Path) -> Dataset:
    arrays = load_npz(path, ("x_train", "y_train", "x_test", "y_test"), "a dataset .npz")
    x_tr, x_te = arrays["x_train"].astype(np.float32), arrays["x_test"].astype(np.float32)
    y_tr, y_te = arrays["y_train"].reshape(-1).astype(np.int64), arrays["y_test"].reshape(-1).astype(np.int64)
    if len(x_tr) != len(y_tr) or len(x_te) != len(y_te) or x_tr.shape[1:] != x_te.shape[1:]:
        raise UsageError(f"{path}: x/y lengths or train/test shapes disagree "
                         f"({x_tr.shape}, {y_tr.shape}, {x_te.shape}, {y_te.shape})")
    check_finite(path, x_train=x_tr, x_test=x_te)
    lo = float(min(x_tr.min(), x_te.min()))
    hi = float(max(x_tr.max(), x_te.max()))
    classes = int(max(y_tr.max(), y_te.max())) + 1
    return Dataset(str(path), x_tr, y_tr, x_te, y_te, classes, (lo, hi))


def check_finite(name, **arrays) -> None:
    """UsageError naming the first array holding NaN or infinity: training on it gives a NaN model
    and a NaN data range, and nothing downstream could be trusted."""
    for key, a in arrays.items():
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise UsageError(f"{name}: {key} holds {bad} NaN or infinite value(s); remove or replace "
                             f"them (a model trained on them is NaN)")


def is_named(spec: str) -> bool:
    """True for a dataset given by name (digits, mnist, synthetic:...), False for a file or folder."""
    s = str(spec)
    return s == "digits" or s in KERAS_DATASETS or s.startswith("synthetic")


def recorded_spec(spec) -> str:
    """How a dataset is recorded (train.json): a name as it is, a file or folder as an absolute
    path, so a later command finds it from any working directory."""
    s = str(spec)
    return s if is_named(s) else str(Path(s).resolve())


def _image_folder(root: Path) -> Dataset:
    try:
        from PIL import Image
    except ImportError:
        raise UsageError(f"--dataset {root}: reading an image folder needs Pillow (pip install pillow)") from None
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if len(class_dirs) < 2:
        raise UsageError(f"--dataset {root}: an image folder needs one sub-folder per class (found "
                         f"{len(class_dirs)})")
    xs, ys, shape = [], [], None
    for label, d in enumerate(class_dirs):
        for f in sorted(d.iterdir()):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm"):
                continue
            img = np.asarray(Image.open(f))
            img = img[..., None] if img.ndim == 2 else img
            if shape is None:
                shape = img.shape
            if img.shape != shape:
                raise UsageError(f"{f}: image shape {img.shape} differs from {shape}; resize all images alike")
            xs.append(img.astype(np.float32) / 255.0)
            ys.append(label)
    if not xs:
        raise UsageError(f"--dataset {root}: no images found in its class folders")
    x_tr, x_te, y_tr, y_te = _split(np.stack(xs), np.array(ys, dtype=np.int64))
    return Dataset(str(root), x_tr, y_tr, x_te, y_te, len(class_dirs), (0.0, 1.0),
                   [d.name for d in class_dirs])
