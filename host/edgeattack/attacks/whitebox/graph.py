"""The compiled pieces gradient attacks share: a per-target cache of tf.functions, the cross-entropy
gradient on logits, the steepest-ascent direction and the projection per norm, in TensorFlow.

Every attack compiles its whole loop over steps into one graph (tf.while_loop inside tf.function)
over the whole batch; the cache keeps one graph per (attack, options) on the target, so a second
epsilon or a second call never retraces. Randomness comes from NumPy generators seeded by the base,
never from TensorFlow's, so a seed fixes the result.
"""
from __future__ import annotations

import numpy as np

from ...tfutil import tf as _tf

TINY = 1e-12


def tf():
    return _tf()


def compiled(target, key, build):
    """The tf.function `build()` returns, built once per target and key."""
    fn = target._fn_cache.get(key)
    if fn is None:
        fn = target._fn_cache[key] = build()
    return fn


def per_sample(v, ndim: int):
    """A (N,) tensor broadcastable against a batch of rank ndim."""
    t = tf()
    return t.reshape(v, t.concat([t.shape(v), t.ones([ndim - 1], t.int32)], 0))


def l2norm(d):
    """Per-sample L2 norm of a batch, shaped to broadcast against it."""
    t = tf()
    axes = list(range(1, d.shape.rank))
    return t.sqrt(t.reduce_sum(t.square(d), axis=axes, keepdims=True))


def ce_loss(logits, labels):
    """Per-sample cross-entropy on logits."""
    return tf().nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def ce_gradient(logits_fn, x, labels):
    """(per-sample CE loss, its gradient w.r.t. x, logits): one forward and one backward pass."""
    t = tf()
    with t.GradientTape() as tape:
        tape.watch(x)
        logits = logits_fn(x)
        loss = ce_loss(logits, labels)
    return loss, tape.gradient(loss, x), logits


def direction(g, norm: str):
    """The steepest-ascent direction of a unit step: sign(g) for linf, g / ||g||_2 for l2."""
    t = tf()
    if norm == "linf":
        return t.sign(g)
    return g / t.maximum(l2norm(g), TINY)


def project(d, eps, norm: str):
    """Project perturbations d onto the eps-ball (eps a scalar or a per-sample tensor shaped to d)."""
    t = tf()
    if norm == "linf":
        return t.clip_by_value(d, -eps, eps)
    return d * t.minimum(1.0, eps / t.maximum(l2norm(d), TINY))


def random_start(rng: np.random.Generator, x: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """A uniform point of the eps-ball around each sample (NumPy, from the base's seeded rng)."""
    if norm == "linf":
        return (x + rng.uniform(-eps, eps, x.shape)).astype(np.float32)
    n, d = len(x), int(np.prod(x.shape[1:]))
    v = rng.standard_normal((n, d))
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), TINY)
    r = rng.uniform(0, 1, (n, 1)) ** (1.0 / d)
    return (x + (eps * r * v).reshape(x.shape)).astype(np.float32)


def batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))
