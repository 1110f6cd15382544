"""fine-prune: the backdoor defense of Liu, Dolan-Gavitt and Garg (Fine-Pruning, RAID 2018).

A backdoor tends to live in neurons the clean inputs leave dormant: they fire on the trigger only.
The defender runs their own clean data through the suspect model, ranks the channels of the late
layers by their mean activation on it, removes the least active with prune-channels' rebuild
(so the narrower model is also smaller on the device), then fine-tunes on the clean data, which
erases much of what pruning missed.

What differs from the paper, and why:
- The paper prunes the last convolutional layer until the clean validation accuracy falls by a set
  margin. Here `ratio` (the fraction removed per chosen layer) is given, and by default the chosen
  layers are the last prunable Conv2D and the prunable Dense layers after it: in a small CNN such as
  cnn-digits the hidden Dense layer carries the backdoor too (pruning the last conv alone at 0.5 and
  fine-tuning left the BadNets trigger 64% of its success on digits; with the Dense layer, 26%).
- Clean data without labels (an .npz with only `x`) is labelled by the suspect model itself, which is
  right on clean inputs about as often as its clean accuracy.

The defender's clean data (`clean_data`, or `--clean-data` on the command line, like `detox`): a
fraction of the training split the recipe runs on (labels included), or an .npz with `x` (and
optionally `y`) or `x_train` (and `y_train`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..compression.steps import FLOAT, Param, StepDef, register_step
from ..errors import UsageError

PARAMS = {
    "clean_data": Param("fraction|path?", None, "the defender's clean data: a fraction in (0, 1) of "
                                                "the training split, or an .npz with x (and y) or "
                                                "x_train (and y_train); required (or --clean-data)"),
    "ratio": Param("float", 0.5, "fraction of each chosen layer's channels removed (the least "
                                 "active on the clean data)", min=0, max=1, max_exclusive=True),
    "layers": Param("list[str]?", None, "layers whose channels to prune (default: the last prunable "
                                        "Conv2D and the prunable Dense layers after it)"),
    "epochs": Param("int", 40, "fine-tuning epochs on the clean data", min=0),
    "lr": Param("float", 1e-3, "Adam learning rate for fine-tuning", min=0),
    "batch_size": Param("int", 32, "batch size", min=1),
    "adversarial": Param("bool?", None, "fine-tune through an earlier adv-train step's adversarial "
                                        "training (default: yes when one ran before)"),
}

# where the activation of a channel space is read: its last activation, else BatchNorm, else the
# layer that makes it (whose own activation, e.g. Conv2D(activation="relu"), is then included)
_ACTIVATIONS = ("Activation", "ReLU", "LeakyReLU", "ELU")


def check(params: dict, where: str) -> None:
    if params["ratio"] <= 0:
        raise UsageError(f"{where}: parameter 'ratio' must be in (0, 1) (got {params['ratio']!r}); "
                         f"it is the fraction of each layer's channels removed")
    spec = params["clean_data"]
    if isinstance(spec, (int, float)) and not 0 < spec < 1:
        raise UsageError(f"{where}: parameter 'clean_data' {spec!r}: give a fraction strictly "
                         f"between 0 and 1 of the training split, or an .npz path")


def clean_data(spec, data, model, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(x, y, description) of the defender's clean data; y from the data when it has labels, else
    the model's own predictions."""
    if spec is None:
        raise UsageError("fine-prune needs the defender's clean data: pass --clean-data FRACTION|NPZ "
                         "or set the step's clean_data (e.g. clean_data: 0.3)")
    if isinstance(spec, (int, float)):
        n = len(data.y_train)
        take = np.sort(np.random.default_rng([seed, 61]).choice(n, max(1, int(round(spec * n))),
                                                                 replace=False))
        return data.x_train[take], data.y_train[take].astype(np.int64), {
            "clean_data": f"{spec:g} of the training split", "samples": int(len(take)),
            "labels": "the training split's"}
    from ..datasets import load_npz

    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"fine-prune: clean_data {spec}: no such file; give a fraction (e.g. 0.3) "
                         f"or an .npz with x")
    try:
        arrays = load_npz(path, ("x",), "an inputs .npz", optional=("y",))
        x, y = arrays["x"], arrays.get("y")
    except UsageError:
        arrays = load_npz(path, ("x_train",), "an inputs .npz (x) or a dataset .npz (x_train)",
                          optional=("y_train",))
        x, y = arrays["x_train"], arrays.get("y_train")
    x = np.asarray(x, np.float32)
    if tuple(x.shape[1:]) != tuple(model.input_shape[1:]):
        raise UsageError(f"fine-prune: clean_data {spec}: inputs of shape {tuple(x.shape[1:])} but "
                         f"the model takes {tuple(model.input_shape[1:])}")
    if y is not None and len(y) == len(x):
        return x, np.asarray(y, np.int64).reshape(-1), {"clean_data": str(spec), "samples": len(x),
                                                        "labels": "the file's"}
    y = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1).astype(np.int64)
    return x, y, {"clean_data": str(spec), "samples": len(x),
                  "labels": "the suspect model's predictions (the file has none)"}


def default_spaces(model, spaces: list[dict]) -> list[dict]:
    """The last prunable Conv2D's space and the prunable Dense spaces after it."""
    order = {l.name: i for i, l in enumerate(model.layers)}
    kind = {l.name: type(l).__name__ for l in model.layers}
    ok = [s for s in spaces if not s["blocked"]]
    convs = [s for s in ok if any(kind[p] == "Conv2D" for p in s["producers"])]
    start = max((max(order[p] for p in s["producers"]) for s in convs), default=-1)
    chosen = [s for s in convs if max(order[p] for p in s["producers"]) == start]
    chosen += [s for s in ok if all(kind[p] == "Dense" for p in s["producers"])
               and min(order[p] for p in s["producers"]) > start]
    if not chosen:
        raise UsageError("fine-prune: the model has no prunable Conv2D or hidden Dense layer")
    return chosen


def probe_layer(model, space: dict) -> str:
    order = {l.name: i for i, l in enumerate(model.layers)}
    kind = {l.name: type(l).__name__ for l in model.layers}
    for kinds in (_ACTIVATIONS, ("BatchNormalization",)):
        found = [n for n in space["layers"] if kind[n] in kinds]
        if found:
            return max(found, key=order.__getitem__)
    return max(space["producers"], key=order.__getitem__)


def mean_activations(model, names: list[str], x) -> dict[str, np.ndarray]:
    """Mean activation of each channel of each named layer over x (samples and positions)."""
    from ..tfutil import keras

    k = keras()
    probe = k.Model(model.inputs, [model.get_layer(n).output for n in names])
    outs = probe.predict(x, batch_size=256, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    return {n: o.reshape(-1, o.shape[-1]).mean(axis=0) for n, o in zip(names, outs)}


def fine_prune(model, x, y, *, ratio: float = 0.5, layers=None, fit=None):
    """(pruned model, details) before fine-tuning: the chosen layers lose their `ratio` least
    active channels on x. `fit(model)` fine-tunes (the step passes ctx.fit on the clean data)."""
    from ..compression.channels import channel_spaces, prune_channels

    spaces = channel_spaces(model)
    if layers is None:
        chosen = default_spaces(model, spaces)
    else:
        by_layer = {n: s for s in spaces for n in s["layers"]}
        for n in layers:
            if n not in by_layer:
                raise UsageError(f"fine-prune: layer {n!r} has no channel space to prune (layers "
                                 f"with one: {', '.join(sorted(by_layer))})")
            if by_layer[n]["blocked"]:
                raise UsageError(f"fine-prune: the channels of layer {n!r} cannot be pruned: "
                                 f"{'; '.join(by_layer[n]['blocked'])}")
        chosen = list({id(by_layer[n]): by_layer[n] for n in layers}.values())
    probes = [probe_layer(model, s) for s in chosen]
    acts = mean_activations(model, probes, x)
    new, details = prune_channels(model, ratio, {n: acts[n] for n in probes})
    details["probes"] = {n: [round(float(v), 6) for v in acts[n]] for n in probes}
    if fit is not None:
        fit(new)
    return new, details


def run(ctx, step) -> dict:
    p = step.params
    x, y, about = clean_data(p["clean_data"], ctx.data, ctx.model, ctx.seed)
    before = ctx.accuracy()
    new, details = fine_prune(ctx.model, x, y, ratio=p["ratio"], layers=p["layers"])
    pruned_acc = ctx.accuracy(new)
    ctx.echo(f"  fine-prune: removed the least active channels of "
             + ", ".join(f"{'+'.join(s['producers'])} {s['channels_before']}->{s['channels_after']}"
                         for s in details["spaces"])
             + f" on {about['samples']} clean samples; accuracy {before:.4f} -> {pruned_acc:.4f} "
               f"before fine-tuning")
    ctx.fit(new, p["epochs"], p["lr"], p["batch_size"], "fine-prune fine-tune", x=x, y=y)
    ctx.model = new
    return {**about, "accuracy_pruned": pruned_acc, **details}


STEP = register_step(StepDef(
    name="fine-prune", kind=FLOAT, params=PARAMS, check=check,
    help="backdoor defense: prune the channels dormant on the defender's clean data, fine-tune on it",
    run="edgeattack.defenses.fine_prune:run",
    recipe=Path(__file__).with_name("recipes") / "fine-prune.yaml"))
