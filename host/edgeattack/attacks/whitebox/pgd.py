"""Projected gradient descent (Madry et al. 2018) and the attacks that are special cases of it:
FGSM is one full step without a random start (fgsm.py), BIM is PGD without a random start (bim.py).

One compiled loop serves all three and both norms: x <- clip(x + P(x + a * dir(grad CE)))
with dir = sign (linf) or g/||g|| (l2), P the projection onto the eps-ball, clip to the data range.
"""
from __future__ import annotations

import numpy as np

from ..base import Attack, Param, register
from . import graph


def ascend(gradient, x_start, x, eps, stepsize, steps, lo, hi, norm: str):
    """The PGD iteration, in TensorFlow (to be traced inside a tf.function): `steps` times
    x_a <- clip(x + P(x_a + stepsize * dir(gradient(x_a)) - x)). `gradient(x_a)` is the gradient
    of the loss to increase. The attacks below and adversarial training (edgeattack.defenses)
    both run this loop, each with its own loss."""
    tf = graph.tf()

    def body(i, xa):
        xa = xa + stepsize * graph.direction(gradient(xa), norm)
        xa = x + graph.project(xa - x, eps, norm)
        return i + 1, tf.clip_by_value(xa, lo, hi)

    _, xa = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), x_start))
    return xa


def gradient_loop(target, norm: str, targeted: bool):
    """The compiled PGD loop for one target, norm and direction (cached on the target)."""

    def build():
        tf = graph.tf()
        sign = -1.0 if targeted else 1.0  # targeted: descend the CE of the target class

        @tf.function(reduce_retracing=True, autograph=False)
        def loop(x_start, x, labels, eps, stepsize, steps, lo, hi):
            def gradient(xa):
                return graph.ce_gradient(target.logits_tf, xa, labels)[1]

            return ascend(gradient, x_start, x, eps, sign * stepsize, steps, lo, hi, norm)

        return loop

    return graph.compiled(target, ("pgd", norm, targeted), build)


class GradientIteration(Attack):
    """Shared by fgsm, bim and pgd: they differ only in their defaults."""

    summary = "projected gradient descent on the cross-entropy of the logits"
    PARAMS = {
        "steps": Param(40, "gradient steps"),
        "rel_stepsize": Param(0.01 / 0.3, "step size relative to epsilon"),
        "abs_stepsize": Param(None, "absolute step size (overrides rel_stepsize)"),
        "random_start": Param(True, "start from a uniform point of the epsilon ball"),
    }

    def check_params(self):
        super().check_params()
        self._positive("rel_stepsize", "abs_stepsize")

    def stepsize(self, eps: float) -> float:
        p = self.params
        return float(p["abs_stepsize"]) if p["abs_stepsize"] is not None else float(p["rel_stepsize"]) * eps

    def run(self, target, x, y, eps, rng):
        tf = graph.tf()
        targeted = self.target_classes is not None
        labels = (self.target_classes if targeted else y).astype(np.int32)
        # FGSM declares neither: one step from the clean sample
        steps, rand = int(self.params.get("steps", 1)), bool(self.params.get("random_start", False))
        x0 = graph.random_start(rng, x, eps, self.norm) if rand else x
        lo, hi = target.data_range
        x0 = np.clip(x0, lo, hi)
        loop = gradient_loop(target, self.norm, targeted)
        out = np.empty_like(x)
        args = [tf.constant(v, tf.float32) for v in (eps, self.stepsize(eps))]
        for s in graph.batches(len(x), target.batch_size):
            out[s] = loop(tf.constant(x0[s]), tf.constant(x[s]), tf.constant(labels[s]), *args,
                          tf.constant(steps), tf.constant(lo, tf.float32),
                          tf.constant(hi, tf.float32)).numpy()
        return out


@register
class PGD(GradientIteration):
    name = "pgd"
    summary = "projected gradient descent (Madry et al. 2018), linf or l2"

    def __init__(self, **params):
        # Foolbox's defaults differ per norm: L2PGD uses rel_stepsize 0.025 and 50 steps
        if params.get("norm") == "l2":
            params = {"rel_stepsize": 0.025, "steps": 50, **params}
        super().__init__(**params)

