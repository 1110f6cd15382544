"""dkd: Diverse Knowledge Distillation (Mirzaeian et al., ISQED 2021): distil the model into an
ensemble of N students trained together, with a penalty on how similar their latent features are, so
that an adversarial example crafted on one model does not fool every member the same way.

Each student is a zoo model (the teacher's own unless `student` says otherwise) at `width`; its
latent features are the input of its classifier (the last Dense). The students train jointly on
    mean_i KD_i + diversity x mean_{i<j} sim(f_i, f_j)
where KD_i is the distill step's Hinton loss for student i (compression/distill.py) and sim is, on
each batch, linear CKA (Kornblith et al., ICML 2019: ||F_i^T F_j||_F^2 / (||F_i^T F_i||_F
||F_j^T F_j||_F) on column-centred features; invariant to rotations and rescalings of the feature
space, so students cannot dodge it by permuting units) or, with `similarity: cosine`, the mean cosine
of the two students' feature vectors per input (the simpler reading of the paper; it compares unit i
with unit i only).

The step leaves ONE float model: the students' layers side by side on one input, their softmax
outputs averaged (a soft vote; it converts to ADD and FULLY_CONNECTED, which the firmware
runs and the int8 surrogate reproduces), so ptq-int8 turns
it into one int8 .tflite. The hard vote (majority of the students' top-1, ties broken by the soft
vote) cannot be one graph of int8 operators the firmware runs, so the step records its accuracy
from the students' own float outputs, beside each student's and the soft vote's.

What differs from the paper: it adds members one at a time, a "reverse knowledge distillation" term
pushing each new member's latent space away from the (frozen) earlier members'; here the students
train at once with a symmetric pairwise similarity penalty.
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

from ..compression.steps import FLOAT, Param, StepDef, register_step
from ..errors import UsageError

SIMILARITIES = ("cka", "cosine")

PARAMS = {
    "students": Param("int", 3, "ensemble members (at least 2)", min=2),
    "width": Param("float", 0.5, "each student's zoo width multiplier", min=0),
    "student": Param("str?", None, "zoo model of the students (default: the teacher's, from "
                                   "train.json)"),
    "diversity": Param("float", 1.0, "weight of the latent-similarity penalty (0: plain "
                                     "distillation of N independent students)", min=0),
    "similarity": Param("str", "cka", "similarity of two students' latent features: cka (linear "
                                      "CKA) or cosine (per-input cosine)", choices=SIMILARITIES),
    "temperature": Param("float", 4.0, "softmax temperature of the soft targets", min=0),
    "alpha": Param("float", 0.1, "weight of the hard-label loss (1 - alpha: soft targets)",
                   min=0, max=1),
    "epochs": Param("int", 30, "distillation epochs on the training split", min=1),
    "lr": Param("float", 2e-3, "Adam learning rate for distillation", min=0),
    "batch_size": Param("int", 32, "batch size (at least 2: the similarity is taken over a batch)",
                        min=2),
    "adversarial": Param("bool?", None, "must be false (or absent) after adv-train: the ensemble "
                                        "does not train adversarially"),
}


def check(params: dict, where: str) -> None:
    if params["students"] < 2:
        raise UsageError(f"{where}: an ensemble needs at least 2 students (students: "
                         f"{params['students']}); for one student use the distill step")
    for key in ("width", "temperature", "lr"):
        if params[key] <= 0:
            raise UsageError(f"{where}: parameter {key!r} must be > 0 (got {params[key]!r})")


# ------------------------------------------------------------------------------------ similarity
def similarity(kind: str, a, b):
    """sim(a, b) of two batches of features (B x F tensors), a TensorFlow scalar in [0, 1] for the
    non-negative (ReLU) features of the zoo models."""
    from ..tfutil import tf as _tf

    tf = _tf()
    eps = 1e-8
    if kind == "cosine":
        a_n = tf.math.l2_normalize(a, axis=-1, epsilon=eps)
        b_n = tf.math.l2_normalize(b, axis=-1, epsilon=eps)
        return tf.reduce_mean(tf.reduce_sum(a_n * b_n, axis=-1))
    a = a - tf.reduce_mean(a, axis=0, keepdims=True)
    b = b - tf.reduce_mean(b, axis=0, keepdims=True)
    hsic = tf.reduce_sum(tf.square(tf.matmul(a, b, transpose_a=True)))
    norm_a = tf.norm(tf.matmul(a, a, transpose_a=True))
    norm_b = tf.norm(tf.matmul(b, b, transpose_a=True))
    return hsic / (norm_a * norm_b + eps)


def mean_similarity(kind: str, features: list):
    """Mean of sim over every pair of students."""
    pairs = list(combinations(range(len(features)), 2))
    return sum(similarity(kind, features[i], features[j]) for i, j in pairs) / len(pairs)


# -------------------------------------------------------------------------------------- ensemble
def side_by_side(students: list, input_shape):
    """(input, per-student probabilities, logits, features) with every student's layers rebuilt on
    one shared input (names prefixed s0_, s1_, ...), so the ensemble is one flat functional model
    that pruning, QAT and the converter handle like any other."""
    from ..compression.distill import logits_model
    from ..tfutil import keras

    k = keras()
    inp = k.Input(tuple(input_shape))
    probs, logits, feats = [], [], []
    for i, s in enumerate(students):
        logits_model(s)  # the same "ends in Softmax" requirement, and error, as distill
        clone = k.models.clone_model(
            s, input_tensors=inp,
            clone_function=lambda layer, i=i: layer.__class__.from_config(
                {**layer.get_config(), "name": f"s{i}_{layer.name}"}))
        softmax = clone.layers[-1]
        head = next((layer for layer in clone.layers if layer.output is softmax.input), None)
        if not isinstance(head, k.layers.Dense):
            raise UsageError(f"dkd: student {s.name} does not end in Dense then Softmax; its latent "
                             f"features (the classifier's input) are undefined")
        f = head.input
        if len(f.shape) > 2:
            f = k.layers.Flatten(name=f"s{i}_latent")(f)
        probs.append(clone.outputs[0])
        logits.append(softmax.input)
        feats.append(f)
    return inp, probs, logits, feats


def soft_vote(probs: list):
    """The ensemble's output: the mean of the students' softmax outputs, as their sum (Add) times 1/N
    (a fixed, non-trainable Dense with kernel I/N): ADD and FULLY_CONNECTED in TFLite, which the
    firmware runs and the int8 surrogate (white-box evaluation) reproduces. Not keras' Average
    (quantization-aware training, e.g. a later pqat step, does not know it) nor a concatenation (the
    surrogate has no CONCATENATION) nor Reshape plus pooling (a Reshape keeping the batch dimension
    converts to SHAPE/PACK, which the firmware does not run)."""
    from ..tfutil import keras

    k = keras()
    n, classes = len(probs), int(probs[0].shape[-1])
    vote = k.layers.Dense(classes, use_bias=False, trainable=False, name="soft_vote")
    out = vote(k.layers.Add(name="votes")(probs))
    vote.set_weights([np.eye(classes, dtype=np.float32) / n])
    return out


def hard_vote(member_probs: np.ndarray) -> np.ndarray:
    """Majority of the students' top-1 classes (member_probs: N x B x C); ties go to the tied class
    with the highest soft vote."""
    n, _, classes = member_probs.shape
    votes = np.eye(classes)[member_probs.argmax(axis=-1)].sum(axis=0)       # B x C
    soft = member_probs.mean(axis=0)
    return np.where(votes == votes.max(axis=-1, keepdims=True), soft, -1.0).argmax(axis=-1)


def _report(members, x, y, kind: str) -> dict:
    """Accuracies (each student, soft vote, hard vote), pairwise disagreement and similarity."""
    from ..tfutil import tf as _tf

    out = members.predict(x, batch_size=256, verbose=0)
    probs, feats = np.stack(out[:len(out) // 2]), out[len(out) // 2:]
    top = probs.argmax(axis=-1)
    pairs = list(combinations(range(len(probs)), 2))
    tf = _tf()
    return {
        "student_accuracy": [float(np.mean(t == y)) for t in top],
        "soft_vote_accuracy": float(np.mean(probs.mean(axis=0).argmax(axis=-1) == y)),
        "hard_vote_accuracy": float(np.mean(hard_vote(probs) == y)),
        "disagreement": float(np.mean([np.mean(top[i] != top[j]) for i, j in pairs])),
        "similarity": float(mean_similarity(kind, [tf.constant(f, tf.float32) for f in feats])),
        "n": int(len(y)),
    }


def run(ctx, step) -> dict:
    from ..compression.distill import kd_loss, kd_targets, student_name
    from ..tfutil import keras
    from ..tfutil import tf as _tf
    from ..zoo import build_model

    p = step.params
    if ctx.train_hook is not None and p["adversarial"] is not False:
        raise UsageError("dkd: the ensemble does not train adversarially; after adv-train give the "
                         "dkd step `adversarial: false` (its students then distil plainly)")
    k, tf = keras(), _tf()
    name = student_name(ctx, p, "dkd")
    n, classes, kind, lam = p["students"], ctx.data.classes, p["similarity"], float(p["diversity"])
    students = [build_model(name, ctx.data.input_shape, classes, p["width"]) for _ in range(n)]
    inp, probs, logits, feats = side_by_side(students, ctx.data.input_shape)
    dims = [int(f.shape[-1]) for f in feats]
    # One output for the loss: every student's logits, then every student's latent features.
    trainer = k.Model(inp, k.layers.Concatenate(name="dkd_train")(logits + feats))
    members = k.Model(inp, probs + feats)
    before = _report(members, ctx.data.x_test, ctx.data.y_test, kind)

    kd = kd_loss(classes, p["temperature"], p["alpha"])
    starts = np.cumsum([0, *([classes] * n), *dims])

    @tf.autograph.experimental.do_not_convert  # plain tensor code; autograph only warns about it
    def loss(y_true, out):
        parts = [out[:, starts[j]:starts[j + 1]] for j in range(len(starts) - 1)]
        task = tf.add_n([kd(y_true, z) for z in parts[:n]]) / n
        return task + lam * mean_similarity(kind, parts[n:]) if lam > 0 else task

    packed = kd_targets(ctx, ctx.model, p["temperature"], "dkd")
    ctx.fit(trainer, p["epochs"], p["lr"], p["batch_size"], f"dkd {n} x {name} x{p['width']:g}",
            y=packed, loss=loss)
    after = _report(members, ctx.data.x_test, ctx.data.y_test, kind)

    teacher_params = int(ctx.model.count_params())
    ctx.model = k.Model(inp, soft_vote(probs), name=f"dkd_{n}x_{name.replace('-', '_')}")
    ctx.zoo_name = ctx.zoo_width = None  # an ensemble is no zoo model
    ctx.echo(f"  dkd {n} students: accuracy {', '.join(f'{a:.4f}' for a in after['student_accuracy'])}; "
             f"soft vote {after['soft_vote_accuracy']:.4f}, hard vote "
             f"{after['hard_vote_accuracy']:.4f}; {kind} similarity {before['similarity']:.3f} -> "
             f"{after['similarity']:.3f}")
    return {"students": n, "student": name, "width": p["width"], "similarity_measure": kind,
            "diversity": lam, "teacher_params": teacher_params,
            "student_params": int(students[0].count_params()),
            "ensemble_params": int(ctx.model.count_params()),
            "before": before, "after": after, **{k_: after[k_] for k_ in (
                "student_accuracy", "soft_vote_accuracy", "hard_vote_accuracy")}}


STEP = register_step(StepDef(
    "dkd", FLOAT, PARAMS,
    "Diverse Knowledge Distillation: N students with dissimilar latent features, one soft-vote model",
    run=f"{__name__}:run", check=check, recipe=Path(__file__).with_name("recipes") / "dkd.yaml"))
