"""anp: adversarial neural pruning, simplified from Madaan, Shin and Hwang (ICML 2020).

The paper learns Bayesian (beta-Bernoulli) dropout masks over latent features, trained jointly with
the network on an adversarial loss plus a "vulnerability suppression" term, the distortion
E|z(x) - z(x_adv)| of each feature; features whose masks fall to zero are pruned.

This step keeps the paper's criterion and drops the learned masks: it crafts PGD examples (the
project's own white-box PGD, L-inf at `eps`, step 2.5 eps / steps) on `samples` training inputs against the current float
model, measures each channel's vulnerability as its mean absolute activation change between clean
and adversarial inputs, removes the `ratio` most vulnerable channels of every chosen layer in one shot
with prune-channels' rebuild, and fine-tunes. What differs: one-shot pruning by a measured score
instead of masks learned by variational inference; a fixed ratio per layer instead of the sparsity
the mask prior settles on; no vulnerability term in the fine-tuning loss. Fine-tuning trains
adversarially when an `adv-train` step ran before (unless `adversarial: false`), as every
fine-tuning step does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..compression.steps import FLOAT, Param, StepDef, register_step
from ..errors import UsageError

PARAMS = {
    "ratio": Param("float", 0.25, "fraction of each chosen layer's channels removed (the most "
                                  "vulnerable)", min=0, max=1, max_exclusive=True),
    "eps": Param("float", 0.1, "L-inf radius of the PGD examples that measure vulnerability", min=0),
    "steps": Param("int", 10, "PGD steps", min=1),
    "samples": Param("int", 300, "training inputs the vulnerability is measured on", min=1),
    "layers": Param("list[str]?", None, "layers whose channels to prune (default: every prunable "
                                        "Conv2D and Dense)"),
    "epochs": Param("int", 5, "fine-tuning epochs on the training split", min=0),
    "lr": Param("float", 1e-3, "Adam learning rate for fine-tuning", min=0),
    "batch_size": Param("int", 32, "batch size", min=1),
    "adversarial": Param("bool?", None, "fine-tune through an earlier adv-train step's adversarial "
                                        "training (default: yes when one ran before)"),
}


def check(params: dict, where: str) -> None:
    for key in ("ratio", "eps"):
        if params[key] <= 0:
            raise UsageError(f"{where}: parameter {key!r} must be > 0 (got {params[key]!r})")


def vulnerability(model, probes: list[str], x, x_adv) -> dict[str, np.ndarray]:
    """Mean |activation(x_adv) - activation(x)| of each channel of each probe layer."""
    from ..tfutil import keras

    k = keras()
    diffs = {}
    probe = k.Model(model.inputs, [model.get_layer(n).output for n in probes])
    a = probe.predict(x, batch_size=256, verbose=0)
    b = probe.predict(x_adv, batch_size=256, verbose=0)
    a, b = (a, b) if isinstance(a, list) else ([a], [b])
    for n, u, v in zip(probes, a, b):
        diffs[n] = np.abs(v - u).reshape(-1, u.shape[-1]).mean(axis=0)
    return diffs


def anp_prune(model, x, y, *, ratio: float, eps: float, steps: int, data_range=(0.0, 1.0),
              layers=None, seed: int = 0):
    """(pruned model, details) before fine-tuning."""
    from ..attacks import make, target
    from ..compression.channels import channel_spaces, prune_channels
    from .fine_prune import probe_layer

    spaces = [s for s in channel_spaces(model) if not s["blocked"]]
    if layers is not None:
        by_layer = {n: s for s in channel_spaces(model) for n in s["layers"]}
        for n in layers:
            if n not in by_layer or by_layer[n]["blocked"]:
                why = "; ".join(by_layer[n]["blocked"]) if n in by_layer else "no channel space"
                raise UsageError(f"anp: the channels of layer {n!r} cannot be pruned: {why}")
        spaces = list({id(by_layer[n]): by_layer[n] for n in layers}.values())
    if not spaces:
        raise UsageError("anp: the model has no prunable Conv2D or Dense layer")
    # step size 2.5 eps / steps (Madry et al.): the walk can cross the ball whatever the step count
    res = make("pgd", steps=steps, rel_stepsize=2.5 / steps)(target(model, data_range=data_range), x, y, epsilons=[eps],
                                    seed=seed)
    x_adv = np.asarray(res.x_adv[0], np.float32)
    probes = [probe_layer(model, s) for s in spaces]
    vul = vulnerability(model, probes, x, x_adv)
    new, details = prune_channels(model, ratio, {n: -vul[n] for n in probes})
    details["vulnerability"] = {n: [round(float(v), 6) for v in vul[n]] for n in probes}
    details["pgd_success"] = float(np.mean(res.success[0]))
    return new, details


def run(ctx, step) -> dict:
    p = step.params
    n = min(p["samples"], len(ctx.data.y_train))
    idx = np.sort(ctx.rng(71).choice(len(ctx.data.y_train), n, replace=False))
    x, y = ctx.data.x_train[idx], ctx.data.y_train[idx]
    new, details = anp_prune(ctx.model, x, y, ratio=p["ratio"], eps=p["eps"], steps=p["steps"],
                             data_range=tuple(ctx.data.data_range), layers=p["layers"], seed=ctx.seed)
    ctx.echo("  anp: removed the most vulnerable channels of "
             + ", ".join(f"{'+'.join(s['producers'])} {s['channels_before']}->{s['channels_after']}"
                         for s in details["spaces"])
             + f" (PGD eps {p['eps']} on {n} samples, success {details['pgd_success']:.2f}); "
               f"accuracy before fine-tuning {ctx.accuracy(new):.4f}")
    ctx.fit(new, p["epochs"], p["lr"], p["batch_size"], "anp fine-tune")
    ctx.model = new
    return {"samples": n, **details}


STEP = register_step(StepDef(
    name="anp", kind=FLOAT, params=PARAMS, check=check,
    help="adversarial neural pruning (simplified): remove the channels PGD distorts most, fine-tune",
    run="edgeattack.defenses.anp:run",
    recipe=Path(__file__).with_name("recipes") / "anp.yaml"))
