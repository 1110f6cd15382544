"""TensorFlow import and seeding in one place (TF_USE_LEGACY_KERAS must be set before the import)."""
from __future__ import annotations

import os
import random

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX, so the
# kernel library (and the last bits of float results) would depend on the CPU. Asking for them
# everywhere keeps one library on every x86-64 machine, and halves a gradient step on small CNNs
# (docs/benchmarks.md, "Evasion attacks"). A user may still set it to 0.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
if not os.path.exists("/dev/nvidia0"):
    # No GPU: stop TensorFlow's failing cuInit, which logs an error line on every first op.
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def _quiet_import(name: str):
    """Import a module with C-level stderr silenced: TensorFlow's native start-up prints CUDA and
    absl lines (before its log level applies) that would bury our one-line messages. Python
    exceptions still propagate. EDGEATTACK_TF_LOGS=1 keeps the native output."""
    import importlib
    import sys

    if name in sys.modules or os.environ.get("EDGEATTACK_TF_LOGS") == "1":
        return importlib.import_module(name)
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        return importlib.import_module(name)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def tf():
    """Import TensorFlow with tf.keras bound to tf_keras (Keras 2)."""
    return _quiet_import("tensorflow")


def keras():
    """The Keras 2 module (tf_keras) that tfmot understands."""
    tf()
    return _quiet_import("tf_keras")


def set_seed(seed: int | None) -> None:
    """Seed Python, NumPy and TensorFlow and turn on op determinism (CONVENTIONS: Determinism)."""
    if seed is None:
        return
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    t = tf()
    t.random.set_seed(seed)
    try:
        t.config.experimental.enable_op_determinism()
    except Exception:  # already enabled, or not available on this build
        pass
