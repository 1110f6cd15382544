"""Evasion attacks on what is deployed (docs/attacks.md).

    from edgeattack import attacks
    t = attacks.target(keras_model)                 # or "int8.tflite" (its surrogate), or a Device
    pgd = attacks.make("pgd", steps=20, random_start=False)
    res = pgd(t, x, y, epsilons=[0.05, 0.1], seed=0)   # res.x_adv, res.success, res.norms

Importing this package imports no TensorFlow.
"""
from __future__ import annotations

_LAZY = {
    "make": "edgeattack.attacks.base",
    "list_attacks": "edgeattack.attacks.base",
    "Attack": "edgeattack.attacks.base",
    "AttackResult": "edgeattack.attacks.base",
    "target": "edgeattack.attacks.targets",
    "open_target": "edgeattack.attacks.targets",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeattack.attacks' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = sorted(_LAZY)
