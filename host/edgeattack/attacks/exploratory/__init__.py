"""Exploratory attacks through the device: model extraction and model inversion (docs/attacks.md).

    from edgeattack.attacks.exploratory import extract, invert
    res = extract("int8.tflite", board="emu-tflm", dataset="digits", budgets=[100, 300, 1000])
    inv = invert("int8.tflite", board="emu-tflm", dataset="digits", budget=2000)

Both only query the device (scores or labels) and never read the victim's weights. Importing this
package imports no TensorFlow.
"""
from __future__ import annotations

_LAZY = {
    "extract": "edgeattack.attacks.exploratory.extraction",
    "ExtractResult": "edgeattack.attacks.exploratory.extraction",
    "query_pool": "edgeattack.attacks.exploratory.pools",
    "evaluation_split": "edgeattack.attacks.exploratory.pools",
    "invert": "edgeattack.attacks.exploratory.inversion",
    "InvertResult": "edgeattack.attacks.exploratory.inversion",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeattack.attacks.exploratory' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = sorted(_LAZY)
