"""Study files: read, validate and resolve (every default filled in). No TensorFlow here.

A study file is YAML (docs/studies.md):

    name: my-study
    dataset: digits            # a dataset name or a dataset .npz (x_train, y_train, x_test, y_test)
    model: cnn-digits          # a zoo model, trained once for the whole study
    epochs: 20
    recipes: [ptq-int8, prune]
    boards: [emu-tflm, qemu-m4]
    parts:
      evasion:  {n: 100, attacks: [{attack: pgd, eps: [0.05, 0.1]}]}
      blackbox: {n: 50, attacks: [{attack: square, eps: [0.2], budget: 300}]}

Every problem is one UsageError naming the file and the field (`study.yaml: parts.evasion.attacks[0].eps: ...`).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

from ..errors import UsageError

SCHEMA = 1
# CONVENTIONS' study parts (all run today; a part named here before its cells exist is refused).
AVAILABLE_PARTS = ("evasion", "blackbox", "transfer", "backdoor", "poisoning", "extraction", "inversion",
                   "defenses")
PENDING_PARTS: dict = {}
# CONVENTIONS' defense steps and its two further compression steps (prune-channels, which anp builds
# on, and structured), whose robustness the same part measures: the defenses part's default is every
# one of them that has a built-in recipe in this version.
DEFENSE_RECIPES = ("adv-train", "dq", "anp", "dkd", "fine-prune", "prune-channels", "structured")
CRAFTED_ON = ("float", "surrogate")
ENERGY = ("auto", "measured", "estimated", "off")

TOP = {"schema": SCHEMA, "name": None, "description": "", "dataset": "digits", "model": "cnn-digits",
       "width": 1.0, "epochs": 20, "seed": 0, "recipes": ["ptq-int8"], "boards": ["emu-tflm"],
       "threads": 1, "energy": "auto", "parts": None}
PART_DEFAULTS = {
    "evasion": {"n": 100, "crafted_on": ["float", "surrogate"], "boards": None, "recipes": None,
                "attacks": None},
    "blackbox": {"n": 50, "boards": None, "recipes": None, "attacks": None},
    "transfer": {"n": 100, "attack": "pgd", "eps": [0.1], "params": {}, "sources": None,
                 "boards": None, "recipes": None},
    # clean_data: what a step needing the defender's clean data (fine-prune) gets when its recipe
    # gives none: a fraction of the study's training split (the study trains on clean data)
    "defenses": {"n": 100, "eps": [0.05, 0.1], "defenses": None, "chains": ["prune", "pqat"],
                 "budget": 200, "params": {}, "latency_n": 20, "clean_data": 0.2, "boards": None,
                 "recipes": None},
    "backdoor": {"n": 200, "trigger": "patch:3", "target_class": 0, "rate": 0.1, "epochs": None,
                 "compress_data": "clean", "activated_by_quantization": False, "boards": None,
                 "recipes": None},
    # `edgeattack poison KIND` (one cell per board): n test samples judged (a seeded draw)
    "poisoning": {"n": 200, "kind": "flip-targeted", "rate": 0.1, "source_class": 1, "target_class": 7,
                  "eps": 0.1, "params": {}, "epochs": None, "prune_ratios": None, "pretrain_epochs": None,
                  "compress_data": "clean", "boards": None, "recipes": None},
    # `edgeattack extract` (one cell per recipe and board); epochs: the replica's (default the study's)
    "extraction": {"budgets": [100, 300, 1000], "pool": "heldout", "augment": "jacobian",
                   "output": "labels", "epochs": None, "params": {}, "boards": None, "recipes": None},
    # `edgeattack invert` (one cell per recipe and board): budget = device queries per class
    "inversion": {"budget": 2000, "classes": None, "shortcut_budgets": [], "params": {}, "boards": None,
                  "recipes": None},
}
EXTRACT_PARAMS = ("lam", "batch_size")
INVERT_PARAMS = ("probes", "sigma", "lr", "init", "judge_epochs", "whitebox_steps")
ATTACK_DEFAULTS = {"evasion": {"attack": None, "eps": None, "params": {}},
                   "blackbox": {"attack": None, "eps": None, "budget": 300, "params": {}}}


class StudyError(UsageError):
    pass


def builtin_dir() -> Path:
    from ..resources import package_data_dir

    return package_data_dir() / "study" / "builtin"


def list_studies() -> list[dict]:
    """Every built-in study: name, description, parts (what `edgeattack studies` prints)."""
    from ..yamlload import load_yaml

    out = []
    for p in sorted(builtin_dir().glob("*.yaml")):
        doc = load_yaml(p) or {}
        out.append({"name": p.stem, "description": str(doc.get("description", "")).strip(),
                    "parts": sorted((doc.get("parts") or {}).keys()), "file": str(p)})
    return out


def find_study(name_or_path) -> tuple[Path, str]:
    """(file, how errors name it) of a built-in study name or a YAML file."""
    s = str(name_or_path)
    if s.endswith((".yaml", ".yml")) or os.sep in s:
        p = Path(s)
        if not p.is_file():
            raise UsageError(f"study file {p} does not exist")
        return p, str(p)
    p = builtin_dir() / f"{s}.yaml"
    if not p.is_file():
        names = ", ".join(sorted(q.stem for q in builtin_dir().glob("*.yaml")))
        raise UsageError(f"unknown study {s!r}; built-in studies are {names} (`edgeattack studies`), "
                         f"or give a study .yaml file")
    return p, f"study {s}"


def load_study(name_or_path, energy: str | None = None) -> dict:
    """The resolved study (a dict with every default filled in), validated. `energy` (the command
    line's --energy) overrides the file's before it is resolved: a resolved study is not resolved
    twice (parts such as defenses add derived fields)."""
    from ..yamlload import load_yaml

    path, shown = find_study(name_or_path)
    doc = load_yaml(path, shown, hint="a study file is a YAML mapping (docs/studies.md)")
    if energy is not None:
        doc = {**_mapping(doc if doc is not None else {}, shown, "(top)"), "energy": energy}
    return resolve(doc, shown, default_name=path.stem)


def _err(where: str, field: str, msg: str):
    raise StudyError(f"{where}: {field}: {msg}")


def _mapping(value, where, field) -> dict:
    if not isinstance(value, dict):
        _err(where, field, f"expected a mapping, got {type(value).__name__}")
    return value


def _fill(doc: dict, defaults: dict, where: str, field: str) -> dict:
    unknown = sorted(set(doc) - set(defaults))
    if unknown:
        _err(where, f"{field}{unknown[0]}" if field else unknown[0],
             f"unknown field (known: {', '.join(sorted(defaults))})")
    out = copy.deepcopy(defaults)
    out.update(copy.deepcopy(doc))
    return out


def _names(value, where, field) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        _err(where, field, "expected a non-empty list of names")
    if len(set(value)) != len(value):
        _err(where, field, f"a name is given twice in {value}")
    return list(value)


def _int(value, where, field, lo=1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        _err(where, field, f"expected an integer >= {lo}, got {value!r}")
    return value


def _number(value, where, field, lo=0.0, hi=None, open_lo=True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _err(where, field, f"expected a number, got {value!r}")
    if (value <= lo if open_lo else value < lo) or (hi is not None and value > hi):
        _err(where, field, f"{value} is out of range")
    return float(value)


def _eps(value, where, field) -> list:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        _err(where, field, "expected a list of epsilons (numbers > 0)")
    return [_number(e, where, f"{field}[{i}]") for i, e in enumerate(value)]


def _check_recipes(names, where, field) -> None:
    from .. import defenses  # noqa: F401  (registers the defense steps)
    from ..compression.recipe import load_recipe

    for r in names:
        try:
            load_recipe(r)
        except UsageError as e:
            _err(where, field, f"recipe {r!r}: {e}")


def _check_boards(names, where, field, energy: str) -> None:
    from ..energy.mode import resolve_energy_mode
    from ..profiles import get_profile

    for b in names:
        try:
            get_profile(b)
        except UsageError as e:
            _err(where, field, f"board {b!r}: {e}")
        try:
            resolve_energy_mode(b, energy)
        except UsageError as e:
            _err(where, "energy", str(e))


def _check_attack(name, params, where, field, family: str, budget=None) -> dict:
    from ..attacks.base import attack_class

    try:
        cls = attack_class(name)
    except UsageError as e:
        _err(where, field, str(e))
    if cls.family != family:
        _err(where, field, f"attack {name!r} is {cls.family}: put it under "
                           f"{'evasion' if cls.family == 'whitebox' else 'blackbox'}")
    if not isinstance(params, dict):
        _err(where, f"{field}.params", "expected a mapping of hyperparameters")
    try:
        atk = cls(**params, **({"budget": budget} if budget is not None else {}))
    except UsageError as e:
        _err(where, f"{field}.params", str(e))
    return {k: v for k, v in atk.params.items() if k != "budget"}


def resolve(doc, where: str, default_name: str = "study") -> dict:
    """Validate a study document and fill every default; raises one StudyError naming the field."""
    doc = _mapping(doc if doc is not None else {}, where, "(top)")
    s = _fill(doc, TOP, where, "")
    if s["schema"] != SCHEMA:
        _err(where, "schema", f"this tool reads study schema {SCHEMA}, got {s['schema']!r}")
    s["name"] = str(s["name"] or default_name)
    s["description"] = str(s["description"] or "").strip()
    if not isinstance(s["dataset"], str) or not s["dataset"]:
        _err(where, "dataset", "expected a dataset name or .npz path")
    from ..zoo import ZOO

    if s["model"] not in ZOO:
        _err(where, "model", f"unknown zoo model {s['model']!r}; choose one of {', '.join(sorted(ZOO))}")
    s["width"] = _number(s["width"], where, "width")
    s["epochs"] = _int(s["epochs"], where, "epochs")
    s["seed"] = _int(s["seed"], where, "seed", lo=0)
    s["threads"] = _int(s["threads"], where, "threads")
    if s["energy"] not in ENERGY:
        _err(where, "energy", f"choose one of {', '.join(ENERGY)}")
    s["recipes"] = _names(s["recipes"], where, "recipes")
    s["boards"] = _names(s["boards"], where, "boards")
    _check_recipes(s["recipes"], where, "recipes")
    _check_boards(s["boards"], where, "boards", s["energy"])
    parts = _mapping(s["parts"], where, "parts") if s["parts"] is not None else None
    if not parts:
        _err(where, "parts", f"name at least one part ({', '.join(AVAILABLE_PARTS)})")
    resolved = {}
    for part, body in parts.items():
        field = f"parts.{part}"
        if part in PENDING_PARTS:
            _err(where, field, f"part {part!r} is not available yet (it needs {PENDING_PARTS[part]}); "
                               f"available parts: {', '.join(AVAILABLE_PARTS)}")
        if part not in PART_DEFAULTS:
            _err(where, field, f"unknown part {part!r}; parts are {', '.join(AVAILABLE_PARTS)} "
                               f"(pending: {', '.join(PENDING_PARTS)})")
        p = _fill(_mapping(body or {}, where, field), PART_DEFAULTS[part], where, f"{field}.")
        if "n" in p:
            p["n"] = _int(p["n"], where, f"{field}.n")
        for key, top in (("recipes", s["recipes"]), ("boards", s["boards"])):
            p[key] = top if p[key] is None else _names(p[key], where, f"{field}.{key}")
        _check_recipes(p["recipes"], where, f"{field}.recipes")
        _check_boards(p["boards"], where, f"{field}.boards", s["energy"])
        resolved[part] = globals()[f"_part_{part}"](p, where, field, s)
    s["parts"] = resolved
    return s


def _attacks(p, where, field, family):
    attacks = p["attacks"]
    if not isinstance(attacks, list) or not attacks:
        _err(where, f"{field}.attacks", "expected a non-empty list of {attack: NAME, eps: [...]}")
    out, seen = [], set()
    for i, a in enumerate(attacks):
        f = f"{field}.attacks[{i}]"
        if isinstance(a, str):
            a = {"attack": a}
        a = _fill(_mapping(a, where, f), ATTACK_DEFAULTS[field.split(".")[-1]], where, f"{f}.")
        if not isinstance(a["attack"], str):
            _err(where, f"{f}.attack", "name the attack (`edgeattack attacks` lists them)")
        if a["eps"] is None:
            _err(where, f"{f}.eps", "give the epsilons (numbers > 0, in the input domain's units)")
        a["eps"] = _eps(a["eps"], where, f"{f}.eps")
        if "budget" in a:
            a["budget"] = _int(a["budget"], where, f"{f}.budget")
        a["params"] = _check_attack(a["attack"], a["params"], where, f"{f}.attack", family, a.get("budget"))
        if a["attack"] in seen:
            _err(where, f"{f}.attack", f"attack {a['attack']!r} is listed twice")
        seen.add(a["attack"])
        out.append(a)
    p["attacks"] = out
    return p


def _part_evasion(p, where, field, s):
    p["crafted_on"] = _names(p["crafted_on"], where, f"{field}.crafted_on")
    for c in p["crafted_on"]:
        if c not in CRAFTED_ON:
            _err(where, f"{field}.crafted_on", f"{c!r}: choose from {', '.join(CRAFTED_ON)}")
    return _attacks(p, where, field, "whitebox")


def _part_blackbox(p, where, field, s):
    return _attacks(p, where, field, "blackbox")


def _part_transfer(p, where, field, s):
    p["eps"] = _eps(p["eps"], where, f"{field}.eps")
    p["params"] = _check_attack(p["attack"], p["params"], where, f"{field}.attack", "whitebox")
    if p["sources"] is None:
        p["sources"] = ["float"] + p["recipes"]
    p["sources"] = _names(p["sources"], where, f"{field}.sources")
    for src in p["sources"]:
        if src != "float" and src not in p["recipes"]:
            _err(where, f"{field}.sources", f"{src!r}: a source is 'float' or one of the part's "
                                            f"recipes ({', '.join(p['recipes'])})")
    return p


def _part_backdoor(p, where, field, s):
    from ..attacks.poisoning.triggers import parse_trigger

    p["epochs"] = s["epochs"] if p["epochs"] is None else _int(p["epochs"], where, f"{field}.epochs")
    p["rate"] = _number(p["rate"], where, f"{field}.rate", 0.0, 1.0)
    p["target_class"] = _int(p["target_class"], where, f"{field}.target_class", lo=0)
    if p["compress_data"] not in ("clean", "poisoned"):
        _err(where, f"{field}.compress_data", "choose clean or poisoned")
    try:
        parse_trigger(str(p["trigger"]), (8, 8, 1))
    except UsageError as e:
        _err(where, f"{field}.trigger", str(e))
    _refuse_clean_data_takers(p, where, field)
    return p


def defense_recipes() -> list[str]:
    """The defenses with a built-in recipe in this version (CONVENTIONS names)."""
    from .. import defenses  # noqa: F401  (registers the defense steps and their recipes)
    from ..compression.recipe import builtin_names

    names = set(builtin_names())
    return [d for d in DEFENSE_RECIPES if d in names]


def _steps_before_conversion(name: str) -> list[dict]:
    from ..compression.recipe import load_recipe

    steps = [{"step": st.name, **st.given} for st in load_recipe(name).steps]
    return steps[:-1] if steps and steps[-1]["step"] == "ptq-int8" else steps


def chained(defense: str, chain: str) -> dict:
    """The recipe `defense` then `chain`, named "DEFENSE+CHAIN": the defense's steps up to its int8
    conversion, then the chain's. Where that order is not a valid recipe (a quantization-aware
    defense such as dq admits only the conversion after it), the chain's steps come first instead
    ("CHAIN+DEFENSE"); a UsageError when neither order is valid (two quantization-aware steps)."""
    from ..compression.recipe import load_recipe

    a, b = _steps_before_conversion(defense), _steps_before_conversion(chain)
    tries = [(f"{defense}+{chain}", a + b), (f"{chain}+{defense}", b + a)]
    errors = []
    for name, steps in tries:
        recipe = {"name": name, "steps": steps + [{"step": "ptq-int8"}]}
        try:
            load_recipe(recipe)
            return recipe
        except UsageError as e:
            errors.append(str(e).removeprefix("<python>: "))
    raise UsageError(f"{defense} and {chain} do not chain in either order ({errors[0]})")


def _clean_data(value, where, field):
    """The defenses part's clean_data: a fraction in (0, 1) of the training split, or an .npz."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not 0 < value < 1:
            _err(where, field, f"{value}: give a fraction strictly between 0 and 1 of the training "
                               f"split, or an .npz with x")
        return float(value)
    if isinstance(value, str) and value.endswith(".npz"):
        if not Path(value).is_file():
            _err(where, field, f"{value}: no such file; give a fraction of the training split "
                               f"(e.g. 0.2) or an .npz with x")
        return value
    _err(where, field, f"expected a fraction of the training split in (0, 1) or an .npz path, "
                       f"got {value!r}")


def _named_and_takers(recipe) -> tuple[dict, list]:
    """(recipe as {name, steps}, its steps that take clean_data and set none)."""
    from .. import defenses  # noqa: F401  (registers fine-prune, the step that takes clean_data)
    from ..compression.recipe import load_recipe
    from ..compression.steps import STEP_PARAMS

    if isinstance(recipe, str):
        loaded = load_recipe(recipe)
        named = {"name": recipe, "steps": [{"step": st.name, **st.given} for st in loaded.steps]}
    else:
        named = recipe
    return named, [st for st in named["steps"] if "clean_data" in STEP_PARAMS.get(st["step"], {})
                   and st.get("clean_data") is None]


def given_clean_data(recipe, value):
    """`recipe` (a built-in name or an inline {name, steps}) with `value` given as clean_data to
    every step that takes it and sets none (fine-prune); the recipe itself, unchanged, when no step
    needs it (so other cells keep their hashes)."""
    named, takers = _named_and_takers(recipe)
    if not takers:
        return recipe
    return {**named, "steps": [{**st, "clean_data": value} if any(st is t for t in takers) else st
                               for st in named["steps"]]}


def study_clean_data(study: dict):
    """The clean data every compression of the study's shared artifacts (any part but backdoor and
    poisoning) gives a step that needs it and sets none: the defenses part's clean_data, else that
    part's default (a fraction of the study's training split, which is clean)."""
    part = study["parts"].get("defenses") or PART_DEFAULTS["defenses"]
    return part["clean_data"]


def _refuse_clean_data_takers(p, where, field):
    """backdoor and poisoning compress inside their cell, on data of the part's choosing, by recipe
    name: a step needing clean data there must bring its own (one line naming the fix)."""
    for r in p["recipes"]:
        _, takers = _named_and_takers(r)
        if takers:
            _err(where, f"{field}.recipes", f"recipe {r!r}: its {takers[0]['step']} step needs the "
                                            f"defender's clean data, which this part does not supply; "
                                            f"give a recipe .yaml whose {takers[0]['step']} step sets "
                                            f"clean_data (e.g. clean_data: 0.2, a fraction of the "
                                            f"data the part compresses with, or an .npz)")


def _part_defenses(p, where, field, s):
    """Artifacts: the part's recipes (the undefended baselines), each defense's built-in recipe, and
    each defense chained with each of `chains`; each evaluated on each board. A step that needs the
    defender's clean data and has none (fine-prune's built-in recipe) gets the part's clean_data."""
    from ..defenses.evaluate import ATTACKS
    from ..attacks.run import attack_params

    p["clean_data"] = _clean_data(p["clean_data"], where, f"{field}.clean_data")
    p["eps"] = _eps(p["eps"], where, f"{field}.eps")
    p["budget"] = _int(p["budget"], where, f"{field}.budget")
    p["latency_n"] = _int(p["latency_n"], where, f"{field}.latency_n", lo=0)
    available = defense_recipes()
    p["defenses"] = (available if p["defenses"] is None else [] if p["defenses"] == []
                     else _names(p["defenses"], where, f"{field}.defenses"))
    _check_recipes(p["defenses"], where, f"{field}.defenses")
    p["chains"] = [] if not p["chains"] else _names(p["chains"], where, f"{field}.chains")
    _check_recipes(p["chains"], where, f"{field}.chains")
    params = _mapping(p["params"], where, f"{field}.params")
    for name, given in params.items():
        if name not in ATTACKS:
            _err(where, f"{field}.params.{name}", f"choose attacks among {', '.join(ATTACKS)}")
        try:
            attack_params("pgd" if name in ("transfer", "pgd-unbounded") else name,
                          _mapping(given, where, f"{field}.params.{name}"), "linf")
        except UsageError as e:
            _err(where, f"{field}.params.{name}", str(e))
    clean = p["clean_data"]
    artifacts = [{"name": r, "recipe": given_clean_data(r, clean), "defense": None, "chain": None}
                 for r in p["recipes"]]
    p["skipped"] = []  # combinations that make no valid recipe, with the reason (kept in study.yaml)
    for d in p["defenses"]:
        artifacts.append({"name": d, "recipe": given_clean_data(d, clean), "defense": d, "chain": None})
        for c in p["chains"]:
            try:
                recipe = chained(d, c)
            except UsageError as e:
                p["skipped"].append({"defense": d, "chain": c, "reason": str(e)})
                continue
            artifacts.append({"name": recipe["name"], "recipe": given_clean_data(recipe, clean),
                              "defense": d, "chain": c})
    p["artifacts"] = artifacts
    return p


def _checked(where, field, check, *args):
    """check(*args), its UsageError turned into one StudyError naming the field."""
    try:
        return check(*args)
    except UsageError as e:
        _err(where, field, str(e))


def _params(p, where, field, allowed) -> dict:
    params = _mapping(p["params"], where, f"{field}.params")
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        _err(where, f"{field}.params.{unknown[0]}", f"unknown parameter (known: {', '.join(allowed)})")
    for k, v in params.items():
        _number(v, where, f"{field}.params.{k}", open_lo=k not in ("init",), lo=-1e9 if k == "init" else 0.0)
    return dict(params)


def _part_poisoning(p, where, field, s):
    from ..attacks.poisoning import data as pdata
    from ..attacks.poisoning.poison import check_kind, check_prune_ratios, check_settings

    p["kind"] = _checked(where, f"{field}.kind", check_kind, p["kind"])
    p["rate"] = _checked(where, f"{field}.rate", pdata.check_rate, p["rate"])
    p["source_class"] = _int(p["source_class"], where, f"{field}.source_class", lo=0)
    p["target_class"] = _int(p["target_class"], where, f"{field}.target_class", lo=0)
    p["eps"] = _number(p["eps"], where, f"{field}.eps")
    p["params"] = _checked(where, f"{field}.params", check_settings, p["kind"],
                           dict(_mapping(p["params"], where, f"{field}.params")))
    p["epochs"] = s["epochs"] if p["epochs"] is None else _int(p["epochs"], where, f"{field}.epochs")
    p["pretrain_epochs"] = (s["epochs"] if p["pretrain_epochs"] is None
                            else _int(p["pretrain_epochs"], where, f"{field}.pretrain_epochs"))
    if p["prune_ratios"] is not None:
        p["prune_ratios"] = _checked(where, f"{field}.prune_ratios", check_prune_ratios, p["prune_ratios"])
    if p["compress_data"] not in ("clean", "poisoned"):
        _err(where, f"{field}.compress_data", "choose clean or poisoned")
    _refuse_clean_data_takers(p, where, field)
    return p


def _part_extraction(p, where, field, s):
    from ..attacks.exploratory.extraction import AUGMENTS, OUTPUTS, check_budgets
    from ..attacks.exploratory.pools import POOLS

    budgets = p["budgets"] if isinstance(p["budgets"], list) else [p["budgets"]]
    if not all(isinstance(b, int) and not isinstance(b, bool) for b in budgets):
        _err(where, f"{field}.budgets", f"expected a list of query counts, got {p['budgets']!r}")
    p["budgets"] = _checked(where, f"{field}.budgets", check_budgets, budgets)
    if p["pool"] not in POOLS and not str(p["pool"]).endswith(".npz"):
        _err(where, f"{field}.pool", f"{p['pool']!r}: choose {', '.join(POOLS)} or an .npz file")
    for key, allowed in (("augment", AUGMENTS), ("output", OUTPUTS)):
        if p[key] not in allowed:
            _err(where, f"{field}.{key}", f"{p[key]!r}: choose {' or '.join(allowed)}")
    p["epochs"] = s["epochs"] if p["epochs"] is None else _int(p["epochs"], where, f"{field}.epochs")
    p["params"] = _params(p, where, field, EXTRACT_PARAMS)
    return p


def _part_inversion(p, where, field, s):
    from ..attacks.exploratory.extraction import check_budgets

    p["budget"] = _int(p["budget"], where, f"{field}.budget")
    if p["classes"] is not None:
        if not isinstance(p["classes"], list) or not p["classes"]:
            _err(where, f"{field}.classes", "expected a list of class indices (or leave it out: all)")
        p["classes"] = [_int(c, where, f"{field}.classes[{i}]", lo=0) for i, c in enumerate(p["classes"])]
    if p["shortcut_budgets"]:
        p["shortcut_budgets"] = _checked(where, f"{field}.shortcut_budgets", check_budgets,
                                         list(p["shortcut_budgets"]))
    p["params"] = _params(p, where, field, INVERT_PARAMS)
    probes = int(p["params"].get("probes", 10))
    if p["budget"] < 2 * probes:
        _err(where, f"{field}.budget", f"one gradient estimate takes {2 * probes} queries (2 x probes); "
                                       f"give a budget of at least {2 * probes}")
    return p
