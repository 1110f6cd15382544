"""Recipes: what they may contain, how they are read, and how each step's parameters are checked.

A recipe is a YAML list of steps run in order, each `{step: NAME, PARAM: VALUE, ...}`, or a mapping
with `steps:` and optional `name:` / `description:`. Built-in recipes live in `recipes/NAME.yaml`
beside this module, or beside the package that registered the step (steps.py, the registry, where
this module registers compression's own steps). Everything here is plain Python (no TensorFlow), so the CLI can validate a recipe
before paying for the TensorFlow import. docs/recipes.md documents the schema for users.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .steps import (CONVERT, FLOAT, PROVIDED_ELSEWHERE, QAT, STEP_HELP, STEP_KINDS,  # noqa: F401
                    STEP_PARAMS, Param, StepDef, get_step, register_step, registered)

RECIPES_DIR = Path(__file__).with_name("recipes")
# compression's own built-in recipes; packages that register steps may add theirs (builtin_names()).
BUILTIN_RECIPES = ("ptq-int8", "dynamic-range", "float16", "prune", "cluster", "qat", "pqat", "cqat",
                   "pcqat", "distill", "lowrank", "prune-channels", "structured")


def _fit(epochs: int, lr: float, prefix: str = "", what: str = "fine-tuning") -> dict[str, Param]:
    return {
        f"{prefix}epochs": Param("int", epochs, f"{what} epochs on the training split", min=0),
        f"{prefix}lr": Param("float", lr, f"Adam learning rate for {what}", min=0, max_exclusive=False),
    }


_BATCH = {"batch_size": Param("int", 32, "batch size for fine-tuning and distillation", min=1)}

# Every fine-tuning step takes `adversarial`: after a step that sets a training hook (adv-train),
# fine-tuning trains through the hook unless the step says false (plain fine-tuning would erase the
# robustness the earlier step trained in).
ADVERSARIAL = {"adversarial": Param("bool?", None, "train through an earlier adv-train step's "
                                                   "adversarial training (default: yes when one "
                                                   "ran before; false: plain fine-tuning)")}

_PRUNE = {
    "target_sparsity": Param("float", 0.75, "fraction of each conv/dense kernel set to zero", min=0,
                             max=1, max_exclusive=True),
    "initial_sparsity": Param("float", 0.0, "sparsity when pruning begins (PolynomialDecay)", min=0,
                              max=1, max_exclusive=True),
    "begin_step": Param("int?", None, "training step at which pruning begins (default 0)", min=0),
    "end_step": Param("int?", None, "step at which target_sparsity is reached (default: 2/3 of "
                                    "the pruning steps, so the rest fine-tunes at full sparsity)", min=1),
    "begin_epoch": Param("float?", None, "like begin_step, in epochs (give steps or epochs)", min=0),
    "end_epoch": Param("float?", None, "like end_step, in epochs", min=0),
    "frequency": Param("int", 10, "steps between mask updates", min=1),
}

_CLUSTER = {
    "clusters": Param("int", 16, "distinct weight values per conv/dense kernel", min=2, max=256),
    "init": Param("str", "kmeans++", "centroid initialisation",
                  choices=("kmeans++", "linear", "random", "density")),
}

_QAT_PRESERVE = ("auto", "none", "sparsity", "clusters", "sparsity+clusters")

_PARAMS: dict[str, dict[str, Param]] = {
    "ptq-int8": {
        "samples": Param("int", 200, "representative samples from the training split for calibration",
                         min=1),
    },
    "dynamic-range": {},
    "float16": {},
    "prune": {**_PRUNE, **_fit(4, 2e-3, what="pruning"), **_BATCH, **ADVERSARIAL},
    "cluster": {**_CLUSTER,
                "preserve_sparsity": Param("bool?", None, "keep zero weights at zero (default: "
                                                          "true when a prune step ran before)"),
                **_fit(3, 1e-4, what="clustering fine-tuning"), **_BATCH, **ADVERSARIAL},
    "qat": {"preserve": Param("str", "auto", "what QAT keeps: auto follows the recipe's earlier "
                                             "prune/cluster steps", choices=_QAT_PRESERVE),
            **_fit(3, 5e-4, what="quantization-aware training"), **_BATCH, **ADVERSARIAL},
    "pqat": {**_PRUNE, **_fit(4, 2e-3, "prune_", "pruning"),
             **_fit(3, 5e-4, what="quantization-aware training"), **_BATCH, **ADVERSARIAL},
    "cqat": {**_CLUSTER, **_fit(3, 1e-4, "cluster_", "clustering fine-tuning"),
             **_fit(3, 5e-4, what="quantization-aware training"), **_BATCH, **ADVERSARIAL},
    "pcqat": {**_PRUNE, **_fit(4, 2e-3, "prune_", "pruning"),
              **_CLUSTER, **_fit(3, 1e-4, "cluster_", "clustering fine-tuning"),
              **_fit(3, 5e-4, what="quantization-aware training"), **_BATCH, **ADVERSARIAL},
    "distill": {
        "width": Param("float", 0.5, "the student's zoo width multiplier", min=0, max_exclusive=False),
        "student": Param("str?", None, "zoo model of the student (default: the teacher's, from "
                                       "train.json)"),
        "assistants": Param("list[float]", [], "teacher-assistant widths, distilled in order "
                                               "between teacher and student"),
        "temperature": Param("float", 4.0, "softmax temperature of the soft targets", min=0),
        "alpha": Param("float", 0.1, "weight of the hard-label loss (1 - alpha: soft targets)",
                       min=0, max=1),
        **_fit(30, 2e-3, what="distillation"), **_BATCH, **ADVERSARIAL,
    },
    "lowrank": {
        "energy": Param("float?", None, "keep the smallest rank holding this fraction of the squared "
                                        "singular values (default 0.9 unless ratio is given)",
                        min=0, max=1),
        "ratio": Param("float?", None, "rank = ceil(ratio x full rank), instead of energy", min=0,
                       max=1),
        "max_param_ratio": Param("float", 0.5, "cap the rank so a factorized layer keeps at most "
                                               "this fraction of its parameters", min=0, max=1),
        "conv": Param("str", "tucker", "Conv2D factorization: tucker (1x1, KxK, 1x1) or cp "
                                       "(1x1, Kx1 and 1xK depthwise, 1x1)", choices=("tucker", "cp")),
        "layers": Param("list[str]?", None, "names of layers to factorize (default: every Conv2D "
                                            "and every Dense but the classifier)"),
        "min_params": Param("int", 1000, "skip layers with fewer weights than this (default "
                                         "selection only)", min=0),
        **_fit(5, 5e-4, what="fine-tuning"), **_BATCH, **ADVERSARIAL,
    },
    "prune-channels": {
        "ratio": Param("float", 0.5, "fraction of each prunable layer's channels (filters, units) "
                                     "removed", min=0, max=1, max_exclusive=True),
        "score": Param("str", "l1", "channel importance: the l1 or l2 norm of its filter's weights",
                       choices=("l1", "l2")),
        "layers": Param("list[str]?", None, "names of layers whose channels to prune (default: "
                                            "every prunable Conv2D and Dense)"),
        **_fit(10, 1e-3, what="fine-tuning"), **_BATCH, **ADVERSARIAL,
    },
    "structured": {
        "kind": Param("str", "circulant", "the structure: circulant (block-circulant, FFT) or "
                                          "hadamard (Walsh-Hadamard transforms and learned "
                                          "diagonals)", choices=("circulant", "hadamard")),
        "layers": Param("list[str]?", None, "names of Dense layers to constrain (default: every "
                                            "Dense but the classifier)"),
        "block": Param("int?", None, "circulant: block size (default: one circulant block of "
                                     "max(inputs, outputs))", min=1),
        "factors": Param("int?", None, "hadamard: Walsh-Hadamard x diagonal factors (default 2)",
                         min=1, max=8),
        **_fit(10, 3e-3, what="fine-tuning"), **_BATCH, **ADVERSARIAL,
    },
}

_KINDS = {"ptq-int8": CONVERT, "dynamic-range": CONVERT, "float16": CONVERT,
          "prune": FLOAT, "cluster": FLOAT, "distill": FLOAT, "lowrank": FLOAT,
          "prune-channels": FLOAT, "structured": FLOAT,
          "qat": QAT, "pqat": QAT, "cqat": QAT, "pcqat": QAT}

# the module under compression/ whose run(ctx, step) runs each step
_MODULES = {"ptq-int8": "convert", "dynamic-range": "convert", "float16": "convert",
            "prune": "sparsity", "cluster": "sparsity", "distill": "distill", "lowrank": "lowrank",
            "prune-channels": "channels", "structured": "structured",
            "qat": "qat", "pqat": "qat", "cqat": "qat", "pcqat": "qat"}

_HELP = {
    "ptq-int8": "full-integer post-training quantization, int8 input and output",
    "dynamic-range": "int8 weights, float activations (LiteRT / Pi only, not TFLM)",
    "float16": "float16 weights (LiteRT / Pi only, not TFLM)",
    "prune": "magnitude pruning (PolynomialDecay) with fine-tuning, then strip_pruning",
    "cluster": "weight clustering (k-means++) with fine-tuning, then strip_clustering",
    "qat": "quantization-aware training (quantize_model / quantize_apply)",
    "pqat": "prune, then sparsity-preserving QAT",
    "cqat": "cluster, then cluster-preserving QAT",
    "pcqat": "prune, cluster preserving sparsity, then sparsity- and cluster-preserving QAT",
    "distill": "knowledge distillation into a narrower zoo student (optional assistant chain)",
    "lowrank": "truncated SVD (Dense) and Tucker-2 or CP (Conv2D) factorization, then fine-tuning",
    "prune-channels": "structured pruning: remove the lowest-norm filters/units, rebuild a narrower "
                      "model, fine-tune",
    "structured": "Dense layers trained as circulant or Hadamard-diagonal matrices, then expanded "
                  "to dense for conversion",
}

_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "list[float]": "a list of numbers", "list[str]": "a list of strings",
               "fraction|path": "a fraction or an .npz path"}


def type_words(t: str) -> str:
    optional = t.endswith("?")
    words = _TYPE_WORDS[t.rstrip("?")]
    return f"{words} or null" if optional else words


def _conforms(t: str, value) -> bool:
    if t.endswith("?"):
        if value is None:
            return True
        t = t[:-1]
    if t == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "bool":
        return isinstance(value, bool)
    if t == "str":
        return isinstance(value, str)
    if t == "fraction|path":
        return isinstance(value, str) or _conforms("float", value)
    if t == "list[float]":
        return isinstance(value, list) and all(_conforms("float", v) for v in value)
    if t == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    raise AssertionError(f"unknown parameter type {t}")


@dataclass
class Step:
    name: str
    params: dict            # every parameter, defaults filled in
    given: dict             # what the recipe wrote
    appended: bool = False  # true for the ptq-int8 added to a recipe without a conversion step

    @property
    def kind(self) -> str:
        return STEP_KINDS[self.name]

    def describe(self) -> dict:
        d = {"step": self.name, "params": dict(self.params)}
        if self.appended:
            d["appended"] = True
        return d


@dataclass
class Recipe:
    name: str
    steps: list[Step]
    description: str = ""
    source: str = ""  # "builtin:NAME", a file path, or "<python>"
    warnings: list[str] = field(default_factory=list)

    @property
    def conversion(self) -> str:
        return self.steps[-1].name

    def describe(self) -> dict:
        return {"name": self.name, "description": self.description, "source": self.source,
                "steps": [s.describe() for s in self.steps]}


def builtin_paths() -> dict[str, Path]:
    """Built-in recipe name -> YAML: compression's own, then those of registered steps (a package
    that registers a step may ship a recipe of the step's name; it is listed once registered)."""
    paths = {name: RECIPES_DIR / f"{name}.yaml" for name in BUILTIN_RECIPES}
    for step in registered().values():
        if step.recipe is not None:
            paths.setdefault(step.name, Path(step.recipe))
    return paths


def builtin_names() -> list[str]:
    return list(builtin_paths())


def builtin_recipes() -> list[Recipe]:
    """Every built-in recipe, parsed (what `edgeattack recipes` lists)."""
    return [load_recipe(name) for name in builtin_names()]


def load_recipe(name_or_path) -> Recipe:
    """A built-in recipe by name, a YAML file, or (Python API) an already parsed list/mapping."""
    if isinstance(name_or_path, Recipe):
        return name_or_path
    if isinstance(name_or_path, (list, dict)):
        return parse_recipe(name_or_path, "<python>", "custom")
    text = os.fspath(name_or_path)
    builtins = builtin_paths()
    if text in builtins:
        return parse_recipe(_read_yaml(builtins[text], text), f"builtin:{text}", text)
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UsageError(f"--recipe {text}: no such file; give a built-in recipe "
                             f"({', '.join(builtins)}) or a recipe .yaml file")
        return parse_recipe(_read_yaml(path, text), str(path), path.stem)
    if text in PROVIDED_ELSEWHERE:
        get_step(text, f"--recipe {text}")  # raises: says which package to import
    raise UsageError(f"--recipe {text}: unknown recipe; give a built-in recipe "
                     f"({', '.join(builtins)}) or a recipe .yaml file")


def _read_yaml(path: Path, shown: str):
    from ..yamlload import load_yaml

    return load_yaml(path, shown, hint="a recipe is a list of {step: NAME, ...} mappings "
                                       "(see docs/recipes.md)")


def parse_recipe(doc, source: str, default_name: str) -> Recipe:
    """Validate a parsed recipe document; raise UsageError naming the file, step and parameter."""
    where = source.removeprefix("builtin:")
    name, description = default_name, ""
    if isinstance(doc, dict):
        unknown = sorted(set(doc) - {"name", "description", "steps"})
        if unknown:
            raise UsageError(f"{where}: unknown top-level key {unknown[0]!r}; a recipe mapping has "
                             f"steps, and optionally name and description")
        if "steps" not in doc:
            raise UsageError(f"{where}: no 'steps:' list; write steps: [{{step: ptq-int8}}]")
        name = doc.get("name") or default_name
        description = doc.get("description") or ""
        if not isinstance(name, str) or not isinstance(description, str):
            raise UsageError(f"{where}: 'name' and 'description' must be strings")
        doc = doc["steps"]
    if not isinstance(doc, list) or not doc:
        raise UsageError(f"{where}: a recipe must be a non-empty list of steps, e.g. "
                         f"[{{step: prune, target_sparsity: 0.5}}, {{step: ptq-int8}}]")
    steps = [_parse_step(entry, i, where) for i, entry in enumerate(doc, 1)]
    recipe = Recipe(name=name, steps=steps, description=description, source=source)
    _check_order(recipe, where)
    return recipe


def _parse_step(entry, index: int, where: str) -> Step:
    if isinstance(entry, str):  # a bare step name is allowed: `- prune`
        entry = {"step": entry}
    if not isinstance(entry, dict) or "step" not in entry:
        raise UsageError(f"{where}: step {index}: write each step as a mapping with a 'step' key, "
                         f"e.g. {{step: prune, target_sparsity: 0.5}}")
    name = entry["step"]
    spec = get_step(name, f"{where}: step {index}").params
    given = {k: v for k, v in entry.items() if k != "step"}
    params = {}
    for key, value in given.items():
        if key not in spec:
            takes = ", ".join(spec) or "no parameters"
            raise UsageError(f"{where}: step {index} ({name}): unknown parameter {key!r}; "
                             f"{name} takes {takes}")
        params[key] = _check_value(spec[key], value, f"{where}: step {index} ({name}): parameter "
                                                     f"{key!r}")
    params = {key: params[key] if key in params else
              (list(p.default) if isinstance(p.default, list) else p.default)
              for key, p in spec.items()}  # spec order, so manifests read alike
    _check_combinations(name, params, f"{where}: step {index} ({name})")
    return Step(name, params, given)


def _check_value(p: Param, value, what: str):
    if not _conforms(p.type, value):
        raise UsageError(f"{what} must be {type_words(p.type)} (got {type(value).__name__} "
                         f"{value!r})")
    if value is None:
        return None
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, float) and not math.isfinite(v):
            raise UsageError(f"{what} must be a finite number (got {v!r})")
    if p.choices and value not in p.choices:
        raise UsageError(f"{what} must be one of {', '.join(p.choices)} (got {value!r})")
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, str):
            continue
        if p.min is not None and v < p.min:
            raise UsageError(f"{what} must be >= {p.min:g} (got {v!r})")
        if p.max is not None and (v >= p.max if p.max_exclusive else v > p.max):
            raise UsageError(f"{what} must be {'<' if p.max_exclusive else '<='} {p.max:g} "
                             f"(got {v!r})")
    if p.type.startswith("float") and not isinstance(value, list):
        return float(value)
    if p.type.startswith("list[float]"):
        return [float(v) for v in value]
    return value


def _check_prune(params: dict, what: str) -> None:
    if params["begin_step"] is not None and params["begin_epoch"] is not None:
        raise UsageError(f"{what}: give begin_step or begin_epoch, not both")
    if params["end_step"] is not None and params["end_epoch"] is not None:
        raise UsageError(f"{what}: give end_step or end_epoch, not both")
    if params["initial_sparsity"] > params["target_sparsity"]:
        raise UsageError(f"{what}: initial_sparsity {params['initial_sparsity']} exceeds "
                         f"target_sparsity {params['target_sparsity']}")
    key = "epochs" if "prune_epochs" not in params else "prune_epochs"
    if params[key] < 1:
        raise UsageError(f"{what}: pruning needs at least 1 epoch ({key}: {params[key]}); the "
                         f"masks update during training")


def _check_lowrank(params: dict, what: str) -> None:
    if params["energy"] is not None and params["ratio"] is not None:
        raise UsageError(f"{what}: give energy or ratio, not both")
    if params["energy"] is None and params["ratio"] is None:
        params["energy"] = 0.9
    for key in ("energy", "ratio"):
        if params[key] == 0:
            raise UsageError(f"{what}: parameter {key!r} must be > 0")


def _check_distill(params: dict, what: str) -> None:
    if params["epochs"] < 1:
        raise UsageError(f"{what}: distillation needs at least 1 epoch (epochs: "
                         f"{params['epochs']}); the student starts untrained")
    if params["width"] <= 0 or any(w <= 0 for w in params["assistants"]):
        raise UsageError(f"{what}: widths must be > 0")
    if params["temperature"] <= 0:
        raise UsageError(f"{what}: parameter 'temperature' must be > 0")


def _check_prune_channels(params: dict, what: str) -> None:
    if params["ratio"] <= 0:
        raise UsageError(f"{what}: parameter 'ratio' must be in (0, 1) (got {params['ratio']!r}); "
                         f"it is the fraction of each layer's channels removed")


def _check_structured(params: dict, what: str) -> None:
    if params["kind"] == "circulant" and params["factors"] is not None:
        raise UsageError(f"{what}: parameter 'factors' is for kind: hadamard; circulant takes "
                         f"'block'")
    if params["kind"] == "hadamard" and params["block"] is not None:
        raise UsageError(f"{what}: parameter 'block' is for kind: circulant; hadamard takes "
                         f"'factors'")
    if params["kind"] == "hadamard" and params["factors"] is None:
        params["factors"] = 2


_CHECKS = {"prune": _check_prune, "pqat": _check_prune, "pcqat": _check_prune,
           "lowrank": _check_lowrank, "distill": _check_distill,
           "prune-channels": _check_prune_channels, "structured": _check_structured}

for _name, _params in _PARAMS.items():
    register_step(StepDef(_name, _KINDS[_name], _params, _HELP[_name],
                          run=f"{__package__}.{_MODULES[_name]}:run", check=_CHECKS.get(_name)))


def _check_combinations(name: str, params: dict, what: str) -> None:
    step = get_step(name)
    if step.kind == QAT and params["epochs"] < 1:
        raise UsageError(f"{what}: quantization-aware training needs at least 1 epoch (epochs: "
                         f"{params['epochs']}); it calibrates the fake-quantization ranges")
    if step.check is not None:
        step.check(params, what)


def _check_order(recipe: Recipe, where: str) -> None:
    steps = recipe.steps
    for i, s in enumerate(steps, 1):
        if s.kind == CONVERT and i != len(steps):
            raise UsageError(f"{where}: step {i} ({s.name}) converts to .tflite and must be the "
                             f"last step; move it to the end")
    qat = [i for i, s in enumerate(steps, 1) if s.kind == QAT]
    if len(qat) > 1:
        raise UsageError(f"{where}: steps {qat[0]} and {qat[1]} are both quantization-aware "
                         f"training; keep one (pqat/cqat/pcqat already include prune/cluster)")
    if qat:
        after = [s for s in steps[qat[0]:] if s.kind != CONVERT]
        if after:
            raise UsageError(f"{where}: step {qat[0]} ({steps[qat[0] - 1].name}) is "
                             f"quantization-aware training; only ptq-int8 may follow it, not "
                             f"{after[0].name}; move {after[0].name} before it")
        if steps[-1].kind == CONVERT and steps[-1].name != "ptq-int8":
            raise UsageError(f"{where}: a quantization-aware model converts only with ptq-int8, "
                             f"not {steps[-1].name}")
    hooked = False
    for i, s in enumerate(steps, 1):
        spec = get_step(s.name).params.get("adversarial")
        # `adversarial: true` on a step whose default is "follow an earlier hook" needs that hook
        if spec is not None and spec.default is None and s.params["adversarial"] and not hooked:
            raise UsageError(f"{where}: step {i} ({s.name}): adversarial: true needs an adv-train "
                             f"step before it (its settings are what the fine-tuning uses); add "
                             f"one, or drop the parameter")
        hooked = hooked or get_step(s.name).sets_train_hook
    if steps[-1].kind != CONVERT:
        steps.append(Step("ptq-int8", {k: p.default for k, p in STEP_PARAMS["ptq-int8"].items()},
                          {}, appended=True))


def with_clean_data(recipe: Recipe, value) -> Recipe:
    """Give `value` (the CLI's --clean-data: a fraction of the training split or an .npz path) to
    every step taking `clean_data` that does not set it; then a step still without clean data, or
    --clean-data given to a recipe with no such step, is a UsageError. Runs before any work."""
    takers = [s for s in recipe.steps if "clean_data" in STEP_PARAMS.get(s.name, {})]
    if value is not None:
        if not takers:
            raise UsageError(f"--clean-data: recipe {recipe.name} has no step that takes clean data "
                             f"(fine-prune does)")
        try:
            parsed = float(value)
        except (TypeError, ValueError):
            parsed = str(value)
            if not Path(parsed).is_file():
                raise UsageError(f"--clean-data {value}: no such file; give a fraction of the "
                                 f"training split (e.g. 0.3) or an .npz with x") from None
        if isinstance(parsed, float) and not 0 < parsed < 1:
            raise UsageError(f"--clean-data {value}: give a fraction strictly between 0 and 1 of "
                             f"the training split, or an .npz with x")
        for s in takers:
            if "clean_data" not in s.given:
                s.params["clean_data"] = parsed
    for i, s in enumerate(recipe.steps, 1):
        if "clean_data" in STEP_PARAMS.get(s.name, {}) and s.params["clean_data"] is None:
            raise UsageError(f"step {i} ({s.name}) needs the defender's clean data: set the step's "
                             f"clean_data (a fraction of the training split, e.g. clean_data: 0.3, "
                             f"or an .npz) or pass --clean-data FRACTION|NPZ")
    return recipe


def qat_preserve(recipe_steps: list[Step], step: Step) -> str:
    """What a QAT step keeps: its own composite name decides, else `preserve`, else (auto) the
    prune/cluster steps that ran before it."""
    if step.name == "pqat":
        return "sparsity"
    if step.name == "cqat":
        return "clusters"
    if step.name == "pcqat":
        return "sparsity+clusters"
    preserve = step.params["preserve"]
    if preserve != "auto":
        return preserve
    before = {s.name for s in recipe_steps[:recipe_steps.index(step)]}
    pruned = "prune" in before
    clustered = "cluster" in before
    if pruned and clustered:
        return "sparsity+clusters"
    return "sparsity" if pruned else "clusters" if clustered else "none"
