"""Compression recipes: YAML lists of steps (ptq-int8, prune, cluster, qat, ...) run in order.

Public API (imported lazily; reading a recipe needs no TensorFlow):
    compress(model_path_or_keras, recipe, out, dataset=None, seed=0, force=False, progress=True)
        -> CompressResult(out, manifest)
    load_recipe(name_or_path) -> Recipe
    BUILTIN_RECIPES, STEP_PARAMS
"""
from __future__ import annotations

_LAZY = {
    "compress": "pipeline", "CompressResult": "pipeline", "read_manifest": "pipeline",
    "load_recipe": "recipe", "Recipe": "recipe", "Step": "recipe", "BUILTIN_RECIPES": "recipe",
    "STEP_PARAMS": "recipe",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeattack.compression' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_LAZY)
