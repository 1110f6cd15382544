"""Training-time attacks (docs/attacks.md: poison, backdoor, detox): poisoned datasets, BadNets
triggers, training callbacks, the compression-activated backdoor and distillation detox.

    from edgeattack.attacks import poisoning
    poisoning.run_backdoor("runs/bd", trigger="patch:3", target_class=0, rate=0.1,
                           recipes=["ptq-int8"], board="emu-tflm")

Importing this package imports no TensorFlow.
"""
from __future__ import annotations

_LAZY = {
    "run_backdoor": "run", "run_poison": "poison", "run_detox": "detox",
    "parse_trigger": "triggers", "Trigger": "triggers",
    "flip": "data", "flip_targeted": "data", "badnets": "data", "save_poisoned": "data",
    "Poisoned": "data", "POISONED_FILE": "data",
    "clean_label": "cleanlabel", "gradient_matching": "cleanlabel", "model_poisoning": "poison", "train_activated": "activated",
    "update_poisoning": "callbacks", "ascent_weights": "callbacks", "fixed_masks": "callbacks",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeattack.attacks.poisoning' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_LAZY)
