"""adv-train: PGD adversarial training (Madry et al. 2018) and its TRADES variant (Zhang et al. 2019).

The step fine-tunes the current float model on adversarial examples crafted on the fly, every batch,
by the project's own PGD loop (attacks.whitebox.pgd.ascend) against the model being trained, then
leaves its training hook on the run: the fine-tuning steps after it (prune, qat, ...) train the same
way unless they say `adversarial: false`.

- pgd: loss = (1 - clean_weight) * L(x_adv) + clean_weight * L(x), x_adv = PGD on the cross-entropy
  of the logits from a uniform random start in the eps-ball.
- trades: loss = L(x) + beta * KL(p(x) || p(x_adv)), x_adv = PGD on that KL from x + 0.001 N(0, I).

L is the loss the fine-tuning step compiled (cross-entropy, distillation, plus any regulariser the
model carries), so the hook works under every step. The attack runs in inference mode (batch
statistics and masks frozen), the update in training mode.
"""
from __future__ import annotations

from pathlib import Path

from ..compression.steps import FLOAT, Param, StepDef, register_step
from ..errors import UsageError

MODES = ("pgd", "trades")
LR_SCHEDULES = ("constant", "cosine")

# The settings of the adversary; dq's `adversarial: true` without an earlier adv-train uses these
# defaults.
ADVERSARY = {
    "eps": Param("float", 0.1, "L-infinity radius of the training perturbations, in the units of "
                               "the input (at most the data range)", min=0),
    "steps": Param("int", 10, "PGD steps per batch", min=1, max=1000),
    "rel_stepsize": Param("float", 0.25, "PGD step size relative to eps (2.5 / steps, Madry)",
                          min=0),
    "abs_stepsize": Param("float?", None, "absolute PGD step size (overrides rel_stepsize)", min=0),
    "random_start": Param("bool", True, "start PGD from a uniform point of the eps-ball (pgd mode)"),
    "norm": Param("str", "linf", "perturbation norm", choices=("linf",)),
    "mode": Param("str", "pgd", "pgd: train on adversarial examples (Madry); trades: clean loss "
                                "plus beta x KL to the adversarial prediction", choices=MODES),
    "beta": Param("float", 6.0, "TRADES weight of the KL term (trades mode)", min=0),
    "clean_weight": Param("float", 0.0, "weight of the clean loss in pgd mode (0: adversarial "
                                        "examples only, as Madry)", min=0, max=1),
}

PARAMS = {
    **ADVERSARY,
    "epochs": Param("int", 10, "adversarial training epochs on the training split", min=1),
    "lr": Param("float", 1e-3, "Adam learning rate for adversarial training", min=0),
    "lr_schedule": Param("str", "constant", "learning rate over the epochs: constant, or cosine "
                                            "(lr x (1 + cos(pi x epoch / epochs)) / 2)",
                         choices=LR_SCHEDULES),
    "batch_size": Param("int", 32, "batch size", min=1),
    "eval_samples": Param("int", 200, "test samples on which the step records the float model's "
                                      "accuracy under its own PGD (0: skip)", min=0),
}


def check(params: dict, where: str) -> None:
    for key in ("eps", "rel_stepsize", "abs_stepsize"):
        if params.get(key) is not None and params[key] <= 0:
            raise UsageError(f"{where}: parameter {key!r} must be > 0 (got {params[key]!r})")
    if params["lr"] <= 0:
        raise UsageError(f"{where}: parameter 'lr' must be > 0 (got {params['lr']!r})")


class AdversarialTraining:
    """The training hook: hook(model) makes model.fit train adversarially (returns the undo)."""

    def __init__(self, params: dict, data_range):
        self.params = {k: params[k] for k in ADVERSARY}
        self.lo, self.hi = float(data_range[0]), float(data_range[1])
        if self.params["eps"] > self.hi - self.lo:
            raise UsageError(f"adv-train: eps {self.params['eps']:g} exceeds the data range "
                             f"[{self.lo:g}, {self.hi:g}]; give an eps in the input's units")

    @property
    def stepsize(self) -> float:
        p = self.params
        return float(p["abs_stepsize"] if p["abs_stepsize"] is not None
                     else p["rel_stepsize"] * p["eps"])

    def describe(self) -> dict:
        return {**self.params, "stepsize": self.stepsize, "data_range": [self.lo, self.hi]}

    def __call__(self, model):
        from ..attacks.targets import logits_model
        from ..attacks.whitebox import graph
        from ..attacks.whitebox.pgd import ascend
        from ..tfutil import keras
        from ..tfutil import tf as _tf

        tf = _tf()
        p = self.params
        logits = logits_model(model)
        classes = int(logits.output_shape[-1])
        eps, steps, stepsize = float(p["eps"]), int(p["steps"]), self.stepsize
        lo, hi, norm, trades = self.lo, self.hi, p["norm"], p["mode"] == "trades"
        beta, clean_weight = float(p["beta"]), float(p["clean_weight"])

        def labels_of(y):
            # integer labels, or (distillation) a packed y whose first `classes` columns are one-hot
            if y.shape.rank == 1 or (y.shape.rank == 2 and y.shape[-1] == 1):
                return tf.cast(tf.reshape(y, [-1]), tf.int32)
            return tf.cast(tf.argmax(y[:, :classes], axis=-1), tf.int32)

        def kl(p_clean, logits_adv):
            """Per-sample KL(p_clean || softmax(logits_adv))."""
            log_q = tf.nn.log_softmax(logits_adv)
            return tf.reduce_sum(p_clean * (tf.math.log(tf.maximum(p_clean, 1e-12)) - log_q), -1)

        def adversary(x, y):
            if trades:
                p_clean = tf.stop_gradient(tf.nn.softmax(logits(x, training=False)))

                def gradient(xa):
                    with tf.GradientTape() as tape:
                        tape.watch(xa)
                        loss = kl(p_clean, logits(xa, training=False))
                    return tape.gradient(loss, xa)

                start = x + 0.001 * tf.random.normal(tf.shape(x))
            else:
                labels = labels_of(y)

                def gradient(xa):
                    return graph.ce_gradient(lambda v: logits(v, training=False), xa, labels)[1]

                start = x + tf.random.uniform(tf.shape(x), -eps, eps) if p["random_start"] else x
            start = tf.clip_by_value(start, lo, hi)
            return tf.stop_gradient(ascend(gradient, start, x, eps, stepsize, steps, lo, hi, norm))

        unpack = keras().utils.unpack_x_y_sample_weight

        def train_step(data):
            x, y, sw = unpack(data)
            x_adv = adversary(x, y)
            with tf.GradientTape() as tape:
                if trades:
                    y_pred = model(x, training=True)
                    p_clean = tf.nn.softmax(logits(x, training=True))
                    robust = tf.reduce_mean(kl(p_clean, logits(x_adv, training=True)))
                    loss = model.compute_loss(x, y, y_pred, sw) + beta * robust
                else:
                    y_pred = model(x_adv, training=True)
                    loss = model.compute_loss(x_adv, y, y_pred, sw)
                    if clean_weight > 0:
                        clean = model.compute_loss(x, y, model(x, training=True), sw)
                        loss = (1.0 - clean_weight) * loss + clean_weight * clean
            model.optimizer.minimize(loss, model.trainable_variables, tape=tape)
            return model.compute_metrics(x_adv if not trades else x, y, y_pred, sw)

        model.train_step = train_step
        model.train_function = None

        def undo():
            model.__dict__.pop("train_step", None)
            model.train_function = None

        return undo


def hook_from(params: dict, data) -> AdversarialTraining:
    return AdversarialTraining(params, data.data_range)


def robust_accuracy(model, data, params: dict, n: int, seed: int) -> dict:
    """The float model's accuracy on n test samples, clean and under the project's PGD with the
    step's own settings (a sanity figure for the manifest; `edgeattack evaluate` is the real test)."""
    from .. import attacks
    from ..results.stats import wilson_interval

    x, y = data.x_test[:n], data.y_test[:n]
    pgd = attacks.make("pgd", steps=params["steps"], rel_stepsize=params["rel_stepsize"],
                       abs_stepsize=params["abs_stepsize"], random_start=params["random_start"])
    res = pgd(attacks.target(model, data_range=data.data_range), x, y,
              epsilons=[params["eps"]], seed=seed)
    clean = int(res.clean_correct.sum())
    adv = int(((res.pred[0] == y) & res.clean_correct).sum())
    return {"n": int(len(y)), "eps": params["eps"], "clean_accuracy": clean / len(y),
            "robust_accuracy": adv / len(y), "robust_accuracy_ci95": wilson_interval(adv, len(y))}


def lr_callbacks(lr: float, schedule: str, epochs: int) -> list:
    """Keras callbacks that set the learning rate of each epoch (none for a constant rate)."""
    if schedule == "constant":
        return []
    import math

    from ..tfutil import keras

    return [keras().callbacks.LearningRateScheduler(
        lambda epoch, _: lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)))]


def run(ctx, step) -> dict:
    p = step.params
    hook = hook_from(p, ctx.data)
    ctx.fit(ctx.model, p["epochs"], p["lr"], p["batch_size"], f"adv-train ({p['mode']})",
            hook=hook, callbacks=lr_callbacks(p["lr"], p["lr_schedule"], p["epochs"]))
    ctx.train_hook = hook
    details = {"adversary": hook.describe()}
    if p["eval_samples"]:
        details["pgd"] = robust_accuracy(ctx.model, ctx.data, p, p["eval_samples"], ctx.seed)
        ctx.echo(f"  float model under its PGD (eps {p['eps']:g}, n {details['pgd']['n']}): "
                 f"accuracy {details['pgd']['robust_accuracy']:.3f}")
    return details


STEP = register_step(StepDef(
    "adv-train", FLOAT, PARAMS,
    "PGD adversarial training (Madry) or TRADES; later fine-tuning steps train adversarially too",
    run=f"{__name__}:run", check=check, recipe=Path(__file__).with_name("recipes") / "adv-train.yaml",
    sets_train_hook=True))
