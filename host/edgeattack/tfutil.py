"""TensorFlow import and seeding in one place (TF_USE_LEGACY_KERAS must be set before the import)."""
from __future__ import annotations

import os
import random

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tf():
    """Import TensorFlow with tf.keras bound to tf_keras (Keras 2)."""
    import tensorflow

    return tensorflow


def keras():
    """The Keras 2 module (tf_keras) that tfmot understands."""
    import tf_keras

    return tf_keras


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
