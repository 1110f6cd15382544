"""DeepFool (Moosavi-Dezfooli et al. 2016), l2 and linf, on the logits: step to the nearest boundary
of the linearized classifier among the `candidates` most likely classes, with an overshoot.

A minimization attack: it runs unbounded once and the base projects onto each epsilon.
One compiled loop: per step the gradients of the candidate logit differences (one backward pass per
candidate), the closest linearized boundary per sample, and the update of the still-correct samples.
"""
from __future__ import annotations

import numpy as np

from ...errors import UsageError
from ..base import Attack, Param, register
from . import graph


def _loop(target, norm: str, candidates: int):
    def build():
        tf = graph.tf()

        @tf.function(reduce_retracing=True, autograph=False)
        def loop(x, labels, classes, steps, overshoot, lo, hi):
            nd = x.shape.rank
            rows = tf.range(tf.shape(x)[0])

            def body(i, xa, ptotal, active):
                with tf.GradientTape(persistent=True) as tape:
                    tape.watch(xa)
                    logits = target.logits_tf(xa)
                    l0 = tf.gather(logits, labels, batch_dims=1)
                    diffs = [tf.gather(logits, classes[:, k], batch_dims=1) - l0
                             for k in range(1, candidates)]
                grads = tf.stack([tape.gradient(d, xa) for d in diffs], 1)  # N x (C-1) x ...
                del tape
                losses = tf.stack(diffs, 1)  # N x (C-1), negative while correct
                # the linearization on the box: a feature at a bound cannot move outward, so its
                # gradient does not count (else the steps converge on the boundary without crossing)
                xe = tf.expand_dims(xa, 1)
                grads = tf.where(tf.logical_or(tf.logical_and(xe <= lo, grads < 0),
                                               tf.logical_and(xe >= hi, grads > 0)), 0.0, grads)
                gflat = tf.reshape(grads, [tf.shape(x)[0], candidates - 1, -1])
                gnorm = (tf.norm(gflat, axis=-1) if norm == "l2" else
                         tf.reduce_sum(tf.abs(gflat), axis=-1))
                dist = tf.abs(losses) / (gnorm + 1e-8)
                best = tf.argmin(dist, axis=1, output_type=tf.int32)
                idx = tf.stack([rows, best], 1)
                d_best = tf.gather_nd(dist, idx)
                g_best = tf.gather_nd(grads, idx)
                if norm == "l2":
                    p = graph.per_sample(d_best / (tf.gather_nd(gnorm, idx) + 1e-8), nd) * g_best
                else:
                    p = graph.per_sample(d_best, nd) * tf.sign(g_best)
                still = tf.logical_and(active, tf.argmax(logits, -1, output_type=tf.int32) == labels)
                ptotal = ptotal + tf.where(graph.per_sample(still, nd), p, tf.zeros_like(p))
                xa = tf.clip_by_value(x + (1.0 + overshoot) * ptotal, lo, hi)
                return i + 1, xa, ptotal, still

            n = tf.shape(x)[0]
            _, xa, _, _ = tf.while_loop(
                lambda i, xa, pt, active: tf.logical_and(i < steps, tf.reduce_any(active)), body,
                (tf.constant(0), x, tf.zeros_like(x), tf.ones([n], tf.bool)))
            return xa

        return loop

    return graph.compiled(target, ("deepfool", norm, candidates), build)


@register
class DeepFool(Attack):
    name = "deepfool"
    summary = "DeepFool (Moosavi-Dezfooli et al. 2016): nearest linearized boundary, l2 or linf"
    minimization = True
    norms = ("l2", "linf")
    PARAMS = {
        "steps": Param(50, "maximum iterations"),
        "candidates": Param(10, "classes considered (the most likely ones when clean)"),
        "overshoot": Param(0.02, "relative overshoot past the boundary"),
    }

    def check_params(self):
        super().check_params()
        if self.params["candidates"] < 2:
            raise UsageError(f"attack {self.name}: parameter candidates={self.params['candidates']}: "
                             f"must be at least 2")
        if self.params["overshoot"] < 0:
            raise UsageError(f"attack {self.name}: parameter overshoot: must be >= 0")

    def run(self, target, x, y, eps, rng):
        tf = graph.tf()
        c = min(int(self.params["candidates"]), target.num_classes)
        logits = target.logits(x)
        # the true class first, then the most likely other classes
        order = np.argsort(-logits, axis=1, kind="stable")
        classes = np.empty((len(x), c), np.int32)
        for i in range(len(x)):
            others = order[i][order[i] != y[i]]
            classes[i] = np.concatenate([[y[i]], others[:c - 1]])
        loop = _loop(target, self.norm, c)
        lo, hi = target.data_range
        out = np.empty_like(x)
        for s in graph.batches(len(x), target.batch_size):
            out[s] = loop(tf.constant(x[s]), tf.constant(y[s].astype(np.int32)), tf.constant(classes[s]),
                          tf.constant(int(self.params["steps"])),
                          tf.constant(self.params["overshoot"], tf.float32),
                          tf.constant(lo, tf.float32), tf.constant(hi, tf.float32)).numpy()
        return out
