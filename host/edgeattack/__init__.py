"""edgeattack: adversarial robustness of compressed ML models on embedded devices.

Importing this package is cheap: TensorFlow is imported only by the parts that need it. The package
sets TF_USE_LEGACY_KERAS=1 first, because tensorflow-model-optimization works only with Keras 2
(tf_keras) and the choice is fixed when TensorFlow is first imported.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

# Public API, imported lazily so `import edgeattack` stays fast and TensorFlow-free.
_LAZY = {
    "EdgeAttackError": "edgeattack.errors",
    "load_dataset": "edgeattack.datasets",
    "build_model": "edgeattack.zoo",
    "train_model": "edgeattack.train",
    "quantize_input": "edgeattack.quant",
    "open_device": "edgeattack.device.api",
    "Device": "edgeattack.device.api",
    "Session": "edgeattack.session",
    "run_session": "edgeattack.session",
    "read_results": "edgeattack.results",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeattack' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = sorted(_LAZY) + ["__version__"]
