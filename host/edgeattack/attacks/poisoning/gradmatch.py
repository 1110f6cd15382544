"""Clean-label poisoning by gradient matching (Geiping et al. 2021, "Witches' Brew"): poisons are
adversarial-class training samples nudged, within an L-inf budget, until the training-loss gradient
they produce on the attacker's clean surrogate points the same way (cosine) as the gradient that
would make the chosen target input classified as the adversarial class. Training from scratch on
them then walks the weights toward that misclassification, while every poison keeps its true label.

    x_poisons, info = brew(surrogates, x_base, y_base, x_target, adversarial_class, eps=0.1)

Signed Adam steps on the perturbation, a few random restarts (the one with the lowest alignment
loss is kept), optional differentiable augmentation (random one-pixel shifts, so the poisons work
for a victim that sees the images slightly moved) and an ensemble of surrogates (the alignment
loss averaged over them, so the poisons do not depend on one set of weights).
"""
from __future__ import annotations

import numpy as np

def train_surrogates(model: str, data, epochs: int, checkpoints, seed: int, progress: bool):
    """The attacker's clean surrogate, snapshotted after each epoch in `checkpoints` (and after the
    last): matching at early checkpoints too is what lets the poisons act on a victim that trains
    from scratch, whose weights pass through those stages (a converged model alone is not enough)."""
    from ...tfutil import keras
    from ...train import train_model

    k = keras()
    marks = sorted({int(c) for c in checkpoints if 0 < int(c) < epochs} | {int(epochs)})
    snaps = []

    class Snapshot(k.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 in marks:
                copy = k.models.clone_model(self.model)
                copy.set_weights(self.model.get_weights())
                snaps.append(copy)

    train_model(model, data, None, epochs=int(epochs), seed=seed, progress=progress,
                callbacks=[Snapshot()])
    return snaps, marks


def _flat_grad(t, model, x, y):
    """The gradient of the summed cross-entropy over the model's trainable weights, as a list."""
    with t.GradientTape() as tape:
        loss = t.reduce_sum(_sce(t, y, model(x, training=False)))
    return tape.gradient(loss, model.trainable_variables)


def _sce(t, y, p):
    p = t.clip_by_value(p, 1e-7, 1.0)
    return -t.math.log(t.gather(p, y, axis=1, batch_dims=1))


def _shift(t, x, rng_seed):
    """A random shift of the whole batch by -1..1 pixels in each direction (differentiable)."""
    s = t.random.stateless_uniform([2], seed=rng_seed, minval=-1, maxval=2, dtype=t.int32)
    return t.roll(x, shift=s, axis=[1, 2])


def brew(surrogates, x_base: np.ndarray, y_base: np.ndarray, x_target: np.ndarray,
         adversarial_class: int, eps: float, data_range=(0.0, 1.0), steps: int = 240,
         restarts: int = 2, lr: float = 0.1, augment: bool = True, seed: int = 0,
         retrain=None, retrain_at=()):
    """(poisons, info): x_base perturbed within eps (L-inf, clipped to data_range) so that the
    surrogates' training gradient on (poisons, y_base) aligns with their gradient of the loss of
    x_target labelled adversarial_class. lr is the signed-Adam step as a fraction of eps, decayed
    tenfold at 3/8, 5/8 and 7/8 of the steps. info: the alignment loss (1 - cosine) of the kept
    restart, averaged over surrogates, and of every restart.

    retrain (Witches' Brew's retraining variant): a function of the current poisons returning new
    surrogates (trained on the data with those poisons in), called at each step in retrain_at, so
    later steps match on models that have already seen the poisons, as the victim will have."""
    from ...tfutil import tf

    t = tf()
    lo, hi = (float(v) for v in data_range)
    x0 = t.constant(x_base, t.float32)
    y0 = t.constant(np.asarray(y_base, np.int64))
    xt = t.constant(x_target, t.float32)
    yt = t.constant(np.full(len(x_target), int(adversarial_class), np.int64))

    def make(models):
        """The alignment loss, one signed-Adam step and the final loss on these surrogates."""
        goals = []
        for m in models:
            g = _flat_grad(t, m, xt, yt)
            norm = t.sqrt(t.add_n([t.reduce_sum(v * v) for v in g]))
            goals.append((g, norm))

        def alignment(delta, shift_seed, use_aug):
            xp = x0 + delta
            if use_aug:
                xp = _shift(t, xp, shift_seed)
            losses = []
            for m, (goal, goal_norm) in zip(models, goals):
                with t.GradientTape() as inner:
                    loss = t.reduce_sum(_sce(t, y0, m(xp, training=False)))
                g = inner.gradient(loss, m.trainable_variables)
                dot = t.add_n([t.reduce_sum(a * b) for a, b in zip(g, goal)])
                norm = t.sqrt(t.add_n([t.reduce_sum(a * a) for a in g]))
                losses.append(1.0 - dot / (norm * goal_norm + 1e-12))
            return t.add_n(losses) / len(losses)

        @t.function(reduce_retracing=True)
        def step(delta, m1, m2, k, size, shift_seed):
            with t.GradientTape() as tape:
                tape.watch(delta)
                loss = alignment(delta, shift_seed, augment)
            g = t.sign(tape.gradient(loss, delta))
            # Adam on the sign of the gradient (Witches' Brew's "signAdam"), then projection
            m1 = 0.9 * m1 + 0.1 * g
            m2 = 0.999 * m2 + 0.001 * g * g
            kf = t.cast(k, t.float32)
            mh = m1 / (1 - 0.9 ** kf)
            vh = m2 / (1 - 0.999 ** kf)
            delta = delta - size * mh / (t.sqrt(vh) + 1e-8)
            delta = t.clip_by_value(delta, -eps, eps)
            delta = t.clip_by_value(x0 + delta, lo, hi) - x0
            return delta, m1, m2, loss

        @t.function(reduce_retracing=True)
        def final(delta):
            return alignment(delta, t.constant([0, 0], t.int32), False)

        return step, final

    step0, final0 = make(list(surrogates))
    rng = np.random.default_rng([seed, 16])
    best, best_loss, losses = None, np.inf, []
    milestones = [int(steps * f) for f in (3 / 8, 5 / 8, 7 / 8)]
    retrain_at = sorted({int(k) for k in retrain_at if 0 < int(k) < steps}) if retrain else []
    for _ in range(max(1, int(restarts))):
        step, final = step0, final0
        d0 = rng.uniform(-eps, eps, size=x_base.shape).astype(np.float32)
        delta = t.constant(np.clip(x_base + d0, lo, hi) - x_base, t.float32)
        m1 = t.zeros_like(delta)
        m2 = t.zeros_like(delta)
        size = lr * eps
        for k in range(1, int(steps) + 1):
            if k - 1 in milestones:
                size /= 10
            if k - 1 in retrain_at:
                step, final = make(list(retrain(np.clip(x_base + delta.numpy(), lo, hi))))
            shift_seed = t.constant(rng.integers(0, 2**31 - 1, size=2), t.int32)
            delta, m1, m2, _ = step(delta, m1, m2, t.constant(k), t.constant(size, t.float32),
                                    shift_seed)
        # restarts are compared on the clean surrogates (retrained ones differ between restarts)
        loss = float(final0(delta))
        losses.append(loss)
        if loss < best_loss:
            best, best_loss = delta.numpy(), loss
    poisons = np.clip(x_base + best, lo, hi).astype(np.float32)
    return poisons, {"alignment_loss": best_loss, "restart_losses": losses}
