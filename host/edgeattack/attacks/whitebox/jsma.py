"""Jacobian-based saliency map attack (Papernot et al. 2016), targeted: repeatedly raise by `theta`
the two features whose gradient most increases the target class's logit, until the target class
wins or a fraction `gamma` of the features has been changed. ART's variant of the saliency map
(the target-class gradient) and its parameter names (theta, gamma); the target classes default to
(y + 1) mod K.

Not bounded by a norm (an L0 attack): epsilons=[None]. One compiled loop for the whole batch.
"""
from __future__ import annotations

import numpy as np

from ...errors import UsageError
from ..base import Attack, Param, register
from . import graph


def _loop(target):
    def build():
        tf = graph.tf()

        @tf.function(reduce_retracing=True, autograph=False)
        def loop(x, tc, theta, max_changed, lo, hi):
            shape = tf.shape(x)
            n = shape[0]
            flat = tf.reshape(x, [n, -1])
            d = tf.shape(flat)[1]

            def predict(f):
                return tf.argmax(target.logits_tf(tf.reshape(f, shape)), -1, output_type=tf.int32)

            def body(f, space, changed, active):
                with tf.GradientTape() as tape:
                    tape.watch(f)
                    logits = target.logits_tf(tf.reshape(f, shape))
                    z = tf.reduce_sum(tf.gather(logits, tc, batch_dims=1))
                g = tape.gradient(z, f)
                g = tf.where(space, g, -np.inf)
                _, ind = tf.math.top_k(g, 2)
                hit = tf.reduce_sum(tf.one_hot(ind, d), 1) > 0  # N x D, the two chosen features
                hit = tf.logical_and(hit, active[:, None])
                step = tf.clip_by_value(f + theta, lo, hi)
                f = tf.where(hit, step, f)
                changed = tf.logical_or(changed, hit)
                space = tf.logical_and(space, tf.logical_not(tf.equal(f, hi)))
                frac = tf.reduce_sum(tf.cast(changed, tf.float32), 1) / tf.cast(d, tf.float32)
                active = tf.logical_and(active, tf.not_equal(predict(f), tc))
                active = tf.logical_and(active, frac <= max_changed)
                active = tf.logical_and(active, tf.reduce_any(space, 1))
                return f, space, changed, active

            space = flat < hi
            active = tf.logical_and(tf.not_equal(predict(flat), tc), tf.reduce_any(space, 1))
            f, _, _, _ = tf.while_loop(
                lambda f, s, c, a: tf.reduce_any(a), body,
                (flat, space, tf.zeros_like(space), active))
            return tf.reshape(f, shape)

        return loop

    return graph.compiled(target, ("jsma",), build)


@register
class JSMA(Attack):
    name = "jsma"
    summary = "Jacobian saliency map attack (Papernot et al. 2016), targeted, L0"
    minimization = True
    targeted = True
    norms = ("l0",)
    PARAMS = {
        "theta": Param(0.1, "amount added to each chosen feature (of the data range's width)"),
        "gamma": Param(1.0, "largest fraction of features changed"),
    }

    def check_params(self):
        super().check_params()
        if not 0 < self.params["gamma"] <= 1:
            raise UsageError(f"attack {self.name}: parameter gamma={self.params['gamma']}: must be in (0, 1]")
        if self.params["theta"] <= 0:
            raise UsageError(f"attack {self.name}: parameter theta={self.params['theta']}: must be > 0 "
                             f"(this implementation raises features)")

    def run(self, target, x, y, eps, rng):
        tf = graph.tf()
        lo, hi = target.data_range
        loop = _loop(target)
        out = np.empty_like(x)
        theta = self.params["theta"] * (hi - lo)
        for s in graph.batches(len(x), target.batch_size):
            out[s] = loop(tf.constant(x[s]), tf.constant(self.target_classes[s].astype(np.int32)),
                          tf.constant(theta, tf.float32),
                          tf.constant(self.params["gamma"], tf.float32),
                          tf.constant(lo, tf.float32), tf.constant(hi, tf.float32)).numpy()
        return out
