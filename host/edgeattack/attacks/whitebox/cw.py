"""Carlini & Wagner's L2 attack (2017): minimize ||d||^2 + c * max(z_y - max_{j != y} z_j + kappa, 0)
in tanh space with Adam, and binary-search the constant c per sample. Foolbox's algorithm and names.

A minimization attack. Each binary-search step is one compiled loop over the Adam steps (with
Foolbox's early abort when the loss stops falling); only the per-sample constants are updated on the
host between the (few) binary-search steps.
"""
from __future__ import annotations

import numpy as np

from ..base import Attack, Param, register
from . import graph


def _loop(target, targeted: bool):
    def build():
        tf = graph.tf()

        @tf.function(reduce_retracing=True, autograph=False)
        def loop(x, w0, labels, consts, steps, stepsize, confidence, lo, hi, abort_every):
            nd = x.shape.rank
            axes = list(range(1, nd))
            k = tf.shape(target.logits_tf(x[:1]))[-1]
            onehot = tf.one_hot(labels, k)

            def to_x(w):
                return lo + (tf.tanh(w) + 1.0) * 0.5 * (hi - lo)

            def loss_fn(delta):
                xa = to_x(w0 + delta)
                logits = target.logits_tf(xa)
                own = tf.reduce_sum(onehot * logits, -1)
                other = tf.reduce_max(logits - onehot * 1e9, -1)
                margin = (other - own) if targeted else (own - other)
                adv_loss = tf.maximum(margin + confidence, 0.0)
                sq = tf.reduce_sum(tf.square(xa - x), axis=axes)
                return tf.reduce_sum(sq + consts * adv_loss), xa, logits, sq

            def is_adv(logits):
                z = logits - confidence * onehot if not targeted else logits + confidence * onehot
                pred = tf.argmax(z, -1, output_type=tf.int32)
                return tf.equal(pred, labels) if targeted else tf.not_equal(pred, labels)

            def body(i, delta, m, v, prev, best_x, best_sq, found, go):
                with tf.GradientTape() as tape:
                    tape.watch(delta)
                    loss, xa, logits, sq = loss_fn(delta)
                g = tape.gradient(loss, delta)
                # Adam, as Foolbox's (bias-corrected, beta1 0.9, beta2 0.999, epsilon 1e-8)
                t = tf.cast(i + 1, tf.float32)
                m = 0.9 * m + 0.1 * g
                v = 0.999 * v + 0.001 * tf.square(g)
                mhat = m / (1 - tf.pow(0.9, t))
                vhat = v / (1 - tf.pow(0.999, t))
                delta = delta - stepsize * mhat / (tf.sqrt(vhat) + 1e-8)
                adv = is_adv(logits)
                better = tf.logical_and(adv, sq < best_sq)
                best_x = tf.where(graph.per_sample(better, nd), xa, best_x)
                best_sq = tf.where(better, sq, best_sq)
                check = tf.equal(i % abort_every, 0)
                go = tf.logical_not(tf.logical_and(check, tf.logical_not(loss <= 0.9999 * prev)))
                prev = tf.where(check, loss, prev)
                return i + 1, delta, m, v, prev, best_x, best_sq, tf.logical_or(found, adv), go

            n = tf.shape(x)[0]
            z = tf.zeros_like(x)
            init = (tf.constant(0), z, z, z, tf.constant(np.inf, tf.float32), x,
                    tf.fill([n], np.float32(np.inf)), tf.zeros([n], tf.bool), tf.constant(True))
            out = tf.while_loop(lambda i, *r: tf.logical_and(i < steps, r[-1]), body, init)
            return out[5], out[6], out[7]

        return loop

    return graph.compiled(target, ("cw-l2", targeted), build)


@register
class CarliniWagnerL2(Attack):
    name = "cw-l2"
    summary = "Carlini & Wagner L2 (2017): Adam in tanh space, binary search on the constant"
    minimization = True
    norms = ("l2",)
    PARAMS = {
        "binary_search_steps": Param(9, "binary-search steps on the constant c"),
        "steps": Param(100, "Adam steps per binary-search step"),
        # Foolbox's 0.01 leaves features at the data range's bounds (most pixels of a digit) almost
        # still: tanh saturates there and Adam moves w by about one stepsize per step
        "stepsize": Param(0.05, "Adam learning rate"),
        "confidence": Param(0.0, "logit margin kappa required"),
        "initial_const": Param(1e-3, "initial constant c"),
        "abort_early": Param(True, "stop a binary-search step once the loss stops falling"),
    }

    def check_params(self):
        super().check_params()
        self._positive("stepsize", "initial_const")

    def run(self, target, x, y, eps, rng):
        tf = graph.tf()
        p = self.params
        targeted = self.target_classes is not None
        labels = (self.target_classes if targeted else y).astype(np.int32)
        lo, hi = target.data_range
        steps = int(p["steps"])
        abort_every = max(steps // 10, 1) if p["abort_early"] else steps + 1
        loop = _loop(target, targeted)
        out = x.copy()
        for s in graph.batches(len(x), target.batch_size):
            xs = x[s]
            # arctanh of the sample mapped to (-1, 1), pulled in slightly so it stays finite
            w0 = np.arctanh(np.clip((xs - lo) / (hi - lo) * 2 - 1, -1, 1) * 0.999999).astype(np.float32)
            n = len(xs)
            consts = np.full(n, p["initial_const"], np.float32)
            lower, upper = np.zeros(n, np.float32), np.full(n, np.inf, np.float32)
            best_x, best_sq = xs.copy(), np.full(n, np.inf, np.float32)
            B = int(p["binary_search_steps"])
            for b in range(B):
                if b == B - 1 and B >= 10:  # Foolbox: the last step tries the upper bound
                    consts = np.minimum(upper, 1e10).astype(np.float32)
                bx, bsq, found = (t.numpy() for t in loop(
                    tf.constant(xs), tf.constant(w0), tf.constant(labels[s]), tf.constant(consts),
                    tf.constant(steps), tf.constant(p["stepsize"], tf.float32),
                    tf.constant(p["confidence"], tf.float32), tf.constant(lo, tf.float32),
                    tf.constant(hi, tf.float32), tf.constant(abort_every)))
                better = bsq < best_sq
                best_x[better], best_sq[better] = bx[better], bsq[better]
                upper = np.where(found, np.minimum(upper, consts), upper)
                lower = np.where(found, lower, np.maximum(lower, consts))
                consts = np.where(np.isinf(upper), consts * 10, (lower + upper) / 2).astype(np.float32)
            out[s] = best_x
        return out
