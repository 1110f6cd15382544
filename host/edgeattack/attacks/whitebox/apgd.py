"""Auto-PGD with the cross-entropy loss (Croce & Hein 2020), linf and l2: PGD with momentum whose
step size halves at checkpoints where the loss stopped rising, restarting from the best point.

The whole schedule runs in one compiled loop; per-sample step sizes, best points and the
checkpoint tests are tensors, so no sample waits on the host.
"""
from __future__ import annotations

import math

import numpy as np

from ..base import Attack, Param, register
from . import graph


def _loop(target, norm: str):
    def build():
        tf = graph.tf()

        @tf.function(reduce_retracing=True, autograph=False)
        def loop(x_start, x, labels, eps, steps, first, decr, minimum, rho, lo, hi):
            nd = x.shape.rank

            def proj(xa):
                return tf.clip_by_value(x + graph.project(xa - x, eps, norm), lo, hi)

            loss0, g0, logits0 = graph.ce_gradient(target.logits_tf, x_start, labels)
            n = tf.shape(x)[0]
            step = graph.per_sample(tf.fill([n], 2.0) * eps, nd)
            adv0 = tf.argmax(logits0, -1, output_type=tf.int32) != labels
            state = dict(i=tf.constant(0), xa=x_start, xold=x_start, g=g0, loss=loss0,
                         xbest=x_start, gbest=g0, lbest=loss0, xadv=x_start, found=adv0,
                         step=step, k=first, count=tf.constant(0), incr=tf.zeros([n]),
                         reduced=tf.ones([n], tf.bool), lcheck=loss0)

            def body(s):
                a = tf.where(s["i"] > 0, 0.75, 1.0)
                z = proj(s["xa"] + s["step"] * graph.direction(s["g"], norm))
                xn = proj(s["xa"] + a * (z - s["xa"]) + (1 - a) * (s["xa"] - s["xold"]))
                loss, g, logits = graph.ce_gradient(target.logits_tf, xn, labels)
                adv = tf.argmax(logits, -1, output_type=tf.int32) != labels
                m = graph.per_sample(adv, nd)
                xadv = tf.where(m, xn, s["xadv"])
                better = loss > s["lbest"]
                mb = graph.per_sample(better, nd)
                xbest = tf.where(mb, xn, s["xbest"])
                gbest = tf.where(mb, g, s["gbest"])
                lbest = tf.maximum(loss, s["lbest"])
                incr = s["incr"] + tf.cast(loss > s["loss"], tf.float32)
                count = s["count"] + 1
                at_check = tf.equal(count, s["k"])
                # checkpoint: halve the step where the loss rose in too few steps, or where the
                # previous check did not halve and the best loss has not improved since
                oscil = incr <= tf.cast(s["k"], tf.float32) * rho
                no_impr = tf.logical_and(tf.logical_not(s["reduced"]), s["lcheck"] >= lbest)
                halve = tf.logical_and(at_check, tf.logical_or(oscil, no_impr))
                mh = graph.per_sample(halve, nd)
                out = dict(
                    i=s["i"] + 1, xold=s["xa"], loss=loss, xbest=xbest, gbest=gbest, lbest=lbest,
                    xadv=xadv, found=tf.logical_or(s["found"], adv),
                    step=tf.where(mh, s["step"] / 2.0, s["step"]),
                    xa=tf.where(mh, xbest, xn), g=tf.where(mh, gbest, g),
                    reduced=tf.where(at_check, halve, s["reduced"]),
                    lcheck=tf.where(at_check, lbest, s["lcheck"]),
                    incr=tf.where(at_check, tf.zeros_like(incr), incr),
                    count=tf.where(at_check, 0, count),
                    k=tf.where(at_check, tf.maximum(s["k"] - decr, minimum), s["k"]))
                return (out,)

            (s,) = tf.while_loop(lambda s: s["i"] < steps, body, (state,))
            # the adversarial point where one was found, else the highest-loss point
            return tf.where(graph.per_sample(s["found"], nd), s["xadv"], s["xbest"]), s["found"]

        return loop

    return graph.compiled(target, ("apgd-ce", norm), build)


@register
class APGDCE(Attack):
    name = "apgd-ce"
    summary = "Auto-PGD on the cross-entropy (Croce & Hein 2020), linf or l2"
    PARAMS = {
        "steps": Param(100, "iterations per restart"),
        "n_restarts": Param(1, "restarts from random points (samples already fooled keep theirs)"),
        "rho": Param(0.75, "checkpoint: halve the step if the loss rose in fewer than rho of the steps"),
        "random_start": Param(True, "start from a uniform point of the epsilon ball"),
    }

    def check_params(self):
        super().check_params()
        self._positive("rho")

    def run(self, target, x, y, eps, rng):
        tf = graph.tf()
        steps = int(self.params["steps"])
        first = max(int(math.ceil(0.22 * steps)), 1)
        decr, minimum = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
        lo, hi = target.data_range
        labels = y.astype(np.int32)
        loop = _loop(target, self.norm)
        out = x.copy()
        done = np.zeros(len(x), bool)
        for restart in range(int(self.params["n_restarts"])):
            todo = np.flatnonzero(~done)
            if not len(todo):
                break
            xs = x[todo]
            x0 = graph.random_start(rng, xs, eps, self.norm) if self.params["random_start"] else xs
            x0 = np.clip(x0, lo, hi).astype(np.float32)
            for s in graph.batches(len(todo), target.batch_size):
                xa, found = loop(*(tf.constant(v) for v in (x0[s], xs[s], labels[todo[s]])),
                                 tf.constant(eps, tf.float32), tf.constant(steps), tf.constant(first),
                                 tf.constant(decr), tf.constant(minimum),
                                 tf.constant(self.params["rho"], tf.float32),
                                 tf.constant(lo, tf.float32), tf.constant(hi, tf.float32))
                idx = todo[s]
                xa, found = xa.numpy(), found.numpy()
                keep = found | (restart == 0)  # later restarts replace only with a success
                out[idx] = np.where(keep.reshape((-1,) + (1,) * (x.ndim - 1)), xa, out[idx])
                done[idx] |= found
        return out
