"""Defenses as recipe steps (docs/defenses.md): importing this package registers each defense step
with compression's step registry, so recipes may name them (`adv-train -> prune -> ptq-int8`).

A defense is one module here that declares its parameters and calls
`edgeattack.compression.steps.register_step` (its run function is named as "module:function" and
imported only when the step runs), plus its line below. Importing the package imports no
TensorFlow. The CLI and the study runner import it before they read a recipe; a Python user calling
`edgeattack.compression.compress` with a defense step imports it first.

Built-in recipes of the defenses (the step, then ptq-int8) live in `recipes/` beside this file.
"""
from __future__ import annotations

from . import adv_train, anp, dkd, dq, fine_prune  # noqa: F401  (each registers its step on import)
