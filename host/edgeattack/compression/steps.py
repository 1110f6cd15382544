"""The registry of recipe steps: each step's name, kind, parameters, help, run function and built-in
recipe. compression registers its own steps here (recipe.py); packages above it (edgeattack.defenses)
register theirs when imported, so a new step is one module plus one `register_step` call and nothing
in compression names it.

Registration is plain Python: the run function is named as "module:function" and imported only when
the step runs, so registering (and listing, and validating recipes) never imports TensorFlow.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError

# Step kinds: "float" steps change the float Keras model; "qat" steps make a quantization-aware model
# that only an int8 conversion may follow; "convert" steps produce the .tflite and end the recipe.
FLOAT, QAT, CONVERT = "float", "qat", "convert"

# Steps other packages provide, by the package that registers them: a recipe naming one of these
# before that package is imported gets an error saying what to import, not "unknown step".
PROVIDED_ELSEWHERE = {name: "edgeattack.defenses"
                      for name in ("adv-train", "dq", "anp", "dkd", "fine-prune")}


@dataclass(frozen=True)
class Param:
    """One step parameter: its type (see recipe.type_words), default, allowed range or choices, and
    help."""

    type: str
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    max_exclusive: bool = False
    choices: tuple = ()


@dataclass(frozen=True)
class StepDef:
    name: str
    kind: str                        # FLOAT, QAT or CONVERT
    params: dict                     # name -> Param, in the order manifests list them
    help: str                        # one line for listings and docs
    run: str                         # "package.module:function", called as function(ctx, step) -> dict
    check: Callable | None = None    # check(params, where): raise UsageError on a bad combination
    recipe: Path | None = None       # a built-in recipe YAML of the step's name (listed when registered)
    sets_train_hook: bool = False    # the step leaves a training hook later fine-tuning follows

    def run_function(self) -> Callable:
        module, _, func = self.run.partition(":")
        return getattr(importlib.import_module(module), func)


_STEPS: dict[str, StepDef] = {}
# Live views of the registry, kept for callers that read the tables (they update on registration).
STEP_PARAMS: dict[str, dict] = {}
STEP_KINDS: dict[str, str] = {}
STEP_HELP: dict[str, str] = {}


def register_step(step: StepDef) -> StepDef:
    """Add (or, on re-import, replace) a step. Returns it, so modules can keep a handle."""
    if step.kind not in (FLOAT, QAT, CONVERT):
        raise ValueError(f"step {step.name}: kind {step.kind!r} is not float, qat or convert")
    if ":" not in step.run:
        raise ValueError(f"step {step.name}: run must be 'module:function', got {step.run!r}")
    _STEPS[step.name] = step
    STEP_PARAMS[step.name] = step.params
    STEP_KINDS[step.name] = step.kind
    STEP_HELP[step.name] = step.help
    return step


def registered() -> dict[str, StepDef]:
    """Every registered step by name, in registration order."""
    return dict(_STEPS)


def get_step(name: str, where: str = "") -> StepDef:
    """The step called `name`, or a UsageError naming the fix."""
    step = _STEPS.get(name)
    if step is not None:
        return step
    prefix = f"{where}: " if where else ""
    provider = PROVIDED_ELSEWHERE.get(name)
    if provider is not None:
        raise UsageError(f"{prefix}step {name!r} is provided by {provider}, which is not loaded; "
                         f"`import {provider}` before loading the recipe (the CLI does this)")
    raise UsageError(f"{prefix}unknown step {name!r}; known steps: {', '.join(_STEPS)}")


def run_step(ctx, step) -> dict:
    return get_step(step.name).run_function()(ctx, step)
