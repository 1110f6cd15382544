"""distill step: knowledge distillation from the current model into a narrower zoo model.

Loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * CE(softmax(teacher_logits / T),
softmax(student_logits / T)) (Hinton et al.; cross-entropy with soft targets has the KL gradient).
The teacher's logits are log(probabilities): softmax(log p / T) equals softmax(z / T) for any
model ending in softmax, so the teacher needs no surgery. An optional chain of teacher assistants
(Mirzadeh et al.) distils teacher -> assistant(s) -> student, each from the previous one.
"""
from __future__ import annotations

import numpy as np

from ..errors import EdgeAttackError, UsageError
from .context import StepContext


def soft_targets(teacher, x, temperature: float) -> np.ndarray:
    """softmax(teacher_logits / T) over x, from the teacher's probabilities (or logits)."""
    out = teacher.predict(x, batch_size=256, verbose=0).astype(np.float64)
    is_prob = np.all(out >= 0) and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3)
    logits = np.log(np.clip(out, 1e-12, None)) if is_prob else out
    z = logits / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def logits_model(student):
    """The student up to its final Softmax layer (zoo models end in one)."""
    from ..tfutil import keras

    k = keras()
    last = student.layers[-1]
    if not isinstance(last, k.layers.Softmax):
        raise EdgeAttackError(f"distill: student {student.name} does not end in a Softmax layer")
    return k.Model(student.inputs, last.input)


def kd_targets(ctx: StepContext, teacher, temperature: float, what: str = "distill") -> np.ndarray:
    """One y array for distillation: the one-hot labels, then the teacher's soft targets."""
    classes = ctx.data.classes
    soft = soft_targets(teacher, ctx.data.x_train, temperature)
    if soft.shape[-1] != classes:
        raise UsageError(f"{what}: the teacher has {soft.shape[-1]} outputs but the dataset "
                         f"{ctx.data.name} has {classes} classes")
    hard = np.eye(classes, dtype=np.float32)[ctx.data.y_train]
    return np.concatenate([hard, soft], axis=1)


def kd_loss(classes: int, temperature: float, alpha: float):
    """loss(packed y, student logits) per sample: the Hinton loss of the module docstring."""
    from ..tfutil import keras

    ce, t = keras().losses.categorical_crossentropy, temperature

    def loss(y_true, logits):
        hard_loss = ce(y_true[:, :classes], logits, from_logits=True)
        soft_loss = ce(y_true[:, classes:], logits / t, from_logits=True)
        return alpha * hard_loss + (1.0 - alpha) * (t * t) * soft_loss

    return loss


def distill_into(ctx: StepContext, teacher, student, p: dict, desc: str) -> None:
    packed = kd_targets(ctx, teacher, p["temperature"])
    loss = kd_loss(ctx.data.classes, p["temperature"], p["alpha"])
    ctx.fit(logits_model(student), p["epochs"], p["lr"], p["batch_size"], desc, y=packed, loss=loss)


def student_name(ctx: StepContext, p: dict, what: str = "distill") -> str:
    """The zoo model a student is built from: the step's `student`, else the teacher's own."""
    from ..zoo import ZOO

    name = p["student"] or ctx.zoo_name
    if name is None:
        raise UsageError(f"{what}: the model has no train.json naming its zoo model, so the "
                         f"student is unknown; add `student: NAME` to the {what} step "
                         f"(one of {', '.join(ZOO)})")
    if name not in ZOO:
        raise UsageError(f"{what}: student {name!r} is not a zoo model; use one of {', '.join(ZOO)}")
    return name


def run(ctx: StepContext, step) -> dict:
    from ..zoo import build_model

    p = step.params
    name = student_name(ctx, p)
    teacher = ctx.model
    chain = []
    for width in [*p["assistants"], p["width"]]:
        student = build_model(name, ctx.data.input_shape, ctx.data.classes, width)
        role = "student" if len(chain) == len(p["assistants"]) else "assistant"
        distill_into(ctx, teacher, student, p, f"distill {role} x{width:g}")
        acc = ctx.accuracy(student)
        chain.append({"role": role, "model": name, "width": width,
                      "params": int(student.count_params()), "accuracy": acc})
        if role == "assistant":
            ctx.echo(f"  assistant {name} x{width:g}: {chain[-1]['params']} params, "
                     f"accuracy {acc:.4f}")
        teacher = student
    details = {"teacher_params": int(ctx.model.count_params()),
               "student_params": chain[-1]["params"], "chain": chain}
    ctx.model = student
    ctx.zoo_name, ctx.zoo_width = name, p["width"]
    return details
