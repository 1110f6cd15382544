"""`edgeattack evaluate`: an evaluation of a (defended) int8 artifact that does not fool itself.

    summary = evaluate("out/adv-train/model.tflite", board="qemu-m4", epsilons=[0.05, 0.1],
                       n=200, out="eval/")

One board is started (or reached at `port`) for the whole evaluation; every attack is judged on it:
- white-box `pgd`, `apgd-ce` and `fgsm` crafted on the model's int8 surrogate (gradients through the
  very integers the device computes);
- `transfer`: PGD crafted on the float parent (`float_model`, else the model.keras that compress
  wrote beside the .tflite, else the source model its manifest.json names), when there is one;
- black-box `square` through the device (`budget` queries per sample);
- `pgd-unbounded`: PGD with epsilon = the width of the data range (any input is reachable: a sound
  model must fall).
Rows (evaluate.json, CONVENTIONS "Files"): one per (attack, eps) with the attack success rate and the
adversarial accuracy (Wilson intervals), and one per eps with attack "all": the robust accuracy, the
fraction of the n samples the device classifies correctly when clean and under every attack at that
eps. `masking_flags` (defenses.masking) lists the gradient-masking signs that fire.

OUT is a folder: evaluate.json and each attack's adversarial .npz (`<attack>.npz`, replayable with
`edgeattack session --adversarial`), written whole or not at all.
"""
from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import numpy as np

from ..errors import UsageError

log = logging.getLogger(__name__)

SUMMARY = "evaluate.json"
WHITEBOX = ("pgd", "apgd-ce", "fgsm")   # crafted on the int8 surrogate
TRANSFER = "transfer"                  # PGD crafted on the float parent
BLACKBOX = "square"                    # through the device
UNBOUNDED = "pgd-unbounded"            # PGD at eps = the data range's width
ATTACKS = WHITEBOX + (TRANSFER, BLACKBOX, UNBOUNDED)
DEFAULT_BUDGET = 200


def parse_attack_sets(items) -> dict:
    """["pgd.steps=20", "square.p_init=0.1"] -> {"pgd": {"steps": "20"}, "square": {...}}."""
    out: dict = {}
    for s in items or ():
        name, sep, value = str(s).partition("=")
        attack, dot, param = name.strip().partition(".")
        if not sep or not dot or not param or attack not in ATTACKS:
            raise UsageError(f"--set {s!r}: give ATTACK.NAME=VALUE with ATTACK one of "
                             f"{', '.join(ATTACKS)}, e.g. --set pgd.steps=20")
        out.setdefault(attack, {})[param.strip()] = value.strip()
    return out


def _manifest(model: Path) -> dict | None:
    """The manifest.json compress wrote beside `model`, when it describes this very file."""
    path = model.with_name("manifest.json")
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("files", {}).get(model.name) == model.stat().st_size:
            return manifest
    except (OSError, ValueError, AttributeError):
        pass
    return None


def float_parent(model: Path, manifest: dict | None) -> Path | None:
    """The float model the artifact was converted from: compress's model.keras beside it (the
    weights right before conversion, after any fine-tuning step), else the source model."""
    if manifest is None:
        return None
    for name in manifest.get("files", {}):
        if name.endswith(".keras") and model.with_name(name).is_file():
            return model.with_name(name)
    src = (manifest.get("source") or {}).get("model")
    return Path(src) if src and Path(src).is_file() else None


def _attacks(epsilons, data_range, shape, budget: int, sets: dict) -> dict:
    """name -> attack instance; every parameter and epsilon checked before anything heavy runs."""
    from ..attacks.run import attack_params

    made = {}
    for name in ATTACKS:
        kind = "pgd" if name in (TRANSFER, UNBOUNDED) else name
        made[name] = attack_params(kind, sets.get(name, {}), "linf",
                                   budget if name == BLACKBOX else None)
    made["pgd"].check_epsilons(epsilons, data_range, shape)
    return made


def evaluate(model, *, board: str | None, epsilons, port: str | None = None, n: int = 100,
             float_model=None, dataset=None, seed: int | None = 0, budget: int = DEFAULT_BUDGET,
             params: dict | None = None, data_range=None, out, force: bool = False,
             progress: bool = True, device=None, energy: str = "auto", offset: int = 0) -> dict:
    """Evaluate the int8 `model` on `board` (module docstring); returns the evaluate.json it wrote.

    epsilons: L-inf budgets in the input's units; n: the first n test samples of `dataset` (default:
    the dataset its manifest names, else digits) from index `offset` (a held-out slice when settings
    were chosen on the first samples); params: {attack: {name: value}} hyperparameters
    (attack one of ATTACKS); float_model: the float parent for transfer (default: see float_parent);
    device: an open Device already running `model` (e.g. a study's), used instead of starting one;
    energy: `--energy auto|measured|estimated|off` as `attack` takes it (an estimate puts energy per
    adversarial example into square's rows; a meter measures session windows only, so evaluate
    records none).
    """
    from ..atomic import atomic_dir, check_output, write_json
    from ..attacks.run import check_model_file, facts, resolve_range
    from ..datasets import load_dataset
    from ..fileid import sha256_file

    model = check_model_file(model, "model", (".tflite",))
    if board is None:
        raise UsageError(f"evaluate {model.name}: give --board (the device that judges every attack, "
                         f"e.g. --board emu-tflm)")
    from ..profiles import get_profile

    from ..session import energy_use

    get_profile(board)  # an unknown board fails here, before anything heavy
    use = energy_use(board, energy)  # so does a bad --energy
    epsilons = [float(e) if e is not None else None for e in epsilons]
    if any(e is None for e in epsilons):
        raise UsageError("--eps: evaluate takes finite epsilons (pgd-unbounded is run for you)")
    check_output(out, force)
    manifest = _manifest(model)
    if float_model is not None:
        float_model = check_model_file(float_model, "--model", (".keras", ".h5"))
    else:
        float_model = float_parent(model, manifest)
    if dataset is None:
        dataset = ((manifest or {}).get("dataset") or {}).get("name") or "digits"
    ds = load_dataset(dataset)
    total = len(ds.x_test)
    if offset < 0 or offset >= total:
        raise UsageError(f"--offset {offset}: the test split of {ds.name} has {total} samples; "
                         f"give 0..{total - 1}")
    if n < 1 or offset + n > total:
        raise UsageError(f"-n {n}: the test split of {ds.name} has {total - offset} samples from "
                         f"index {offset}; give 1..{total - offset}")
    x = ds.x_test[offset:offset + n].astype(np.float32)
    y = ds.y_test[offset:offset + n].astype(np.int64)

    art = facts(model)
    rng_range, range_from, warning = resolve_range(data_range, art, ds)
    attacks = _attacks(epsilons, rng_range, art.input_shape, budget, params or {})
    attacks["pgd"].check_inputs(x, y, art.input_shape, art.classes)
    width = float(rng_range[1] - rng_range[0])

    from ..attacks.targets import FloatTarget, SurrogateTarget, open_target
    from ..tfutil import set_seed

    try:
        surrogate = SurrogateTarget(model, data_range=rng_range)
    except UsageError as e:
        raise UsageError(f"evaluate {model.name}: the evaluation needs gradients, but {e}") from None
    source = None
    if float_model is not None:
        from ..attacks.run import keras_facts

        parent = keras_facts(float_model)
        if tuple(parent.input_shape) != tuple(art.input_shape):
            raise UsageError(f"--model {float_model} takes inputs of shape {parent.input_shape}, "
                             f"{model.name} takes {art.input_shape}: give the float model it was made from")
        source = FloatTarget(parent.keras_model, data_range=rng_range)
    if warning:
        log.warning(warning)

    set_seed(seed)
    runs: dict[str, tuple] = {}  # row name -> (judged AttackResult, epsilons it ran at)
    with contextlib.ExitStack() as stack:
        if device is not None:
            from ..attacks.targets import DeviceTarget

            dev = DeviceTarget(device, data_range=rng_range)
        else:
            dev = stack.enter_context(open_target(model, board=board, port=port, data_range=rng_range))
        use.attach(dev.device)
        tmp = stack.enter_context(atomic_dir(out, force=force))
        info0 = dev.device.info()["inferences"]
        clean = dev.predict(x)

        def on_device(name, crafting, eps_list):
            from ..attacks import io
            from ..attacks.base import judged

            res = attacks[name](crafting, x, y, epsilons=eps_list, seed=seed, progress=progress)
            # the .npz as `attack` writes it (success as judged on the crafting target)
            io.save_adversarial(tmp / f"{name}.npz", res, source_model_sha256=(
                sha256_file(float_model) if crafting is source else dev.model_sha256),
                target=crafting.describe())
            if crafting is not dev:  # judged where it is deployed, against the same clean answers
                res = judged(res, clean, np.stack([dev.predict(xa) for xa in res.x_adv]), "board",
                             dev.model_sha256)
            runs[name] = res

        for name in WHITEBOX:
            on_device(name, surrogate, epsilons)
        if source is not None:
            on_device(TRANSFER, source, epsilons)
        on_device(BLACKBOX, dev, epsilons)
        on_device(UNBOUNDED, surrogate, [width])
        device_inferences = int(dev.device.info()["inferences"] - info0)

        summary = _summary(runs, clean, y, epsilons, attacks, offset)
        from ..attacks.blackbox.budgeted import cost_rows

        # square's cost per adversarial example: queries, wire bytes, device time, energy
        square_rows = [r for r in summary["rows"] if r["attack"] == BLACKBOX]
        for row, cost in zip(square_rows, cost_rows(attacks[BLACKBOX], runs[BLACKBOX], device_inferences)):
            row.update(cost)
        from .. import __version__
        from .masking import masking_flags

        summary = {
            "schema": 1, "command": "evaluate", "attack": "all", "params": {
                name: dict(a.params) for name, a in attacks.items() if name in runs},
            "seed": seed, "norm": "linf", "source_model_sha256": sha256_file(model),
            "target": {"kind": "board", "model_sha256": dev.model_sha256, "board": dev.device.board},
            "n": int(n), "offset": int(offset), "tool_version": __version__,
            "model": str(model), "float_model": None if float_model is None else str(float_model),
            "dataset": ds.name, "data_range": list(rng_range), "data_range_from": range_from,
            "epsilons": epsilons, "unbounded_eps": width, "attacks": list(runs),
            "clean_accuracy": summary["clean_accuracy"], "clean_accuracy_ci95": summary["clean_accuracy_ci95"],
            # which samples (test-split indices) the device got right when clean: paired comparisons
            "clean_ids": [offset + int(i) for i in np.flatnonzero(np.asarray(clean) == y)],
            "device_inferences": device_inferences,
            "metrics": summary["rows"],
        }
        summary["masking_flags"] = masking_flags(summary["metrics"])
        summary["files"] = {name: str(Path(out) / f"{name}.npz") for name in runs}
        write_json(tmp / SUMMARY, summary)
    return summary


def _summary(runs: dict, clean, y, epsilons, attacks, offset: int = 0) -> dict:
    """The rows: one per (attack, eps), then one "all" row per eps (robust accuracy)."""
    from ..attacks.io import metrics_rows
    from ..results import wilson_interval
    from ..results.metrics import robust_accuracy

    rows = []
    for name, res in runs.items():
        for row in metrics_rows(res):
            row = {"attack": name, **row}
            if name == TRANSFER:
                row["crafted_on"] = "float"
            elif name == BLACKBOX:
                row["crafted_on"] = "board"
            else:
                row["crafted_on"] = "surrogate"
            rows.append(row)
    n = len(y)
    correct = np.asarray(clean) == y
    for eps in epsilons:
        names = [name for name in runs if name != UNBOUNDED]
        correct_by = {name: runs[name].pred[runs[name].epsilons.index(eps)] == y for name in names}
        r = robust_accuracy(correct_by, correct)
        robust = np.logical_and.reduce([correct, *correct_by.values()])
        rows.append({"attack": "all", "eps": eps, "n": n, "attacks": names, "robust": r["correct"],
                     "robust_accuracy": r["robust_accuracy"], "robust_accuracy_ci95": r["robust_accuracy_ci95"],
                     "clean_correct": int(correct.sum()),
                     # which samples (test-split indices) survived: paired comparisons between models
                     "robust_ids": [offset + int(i) for i in np.flatnonzero(robust)]})
    k = int(correct.sum())
    return {"rows": rows, "clean_accuracy": k / n, "clean_accuracy_ci95": wilson_interval(k, n)}
