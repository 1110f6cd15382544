"""Model extraction through the device: query it, train a replica, measure fidelity per budget.

    res = extract("int8.tflite", board="emu-tflm", dataset="digits", budgets=[100, 300, 1000, 3000],
                  pool="heldout", augment="jacobian", output="labels", out="runs/extract")

The attacker sends its pool (pools.py) to the device in a seeded order. Budgets larger than the pool
are reached by Jacobian-based dataset augmentation (Papernot et al., 2017): each round trains the
replica on everything queried so far and queries x + lam * sign(d replica[c](x) / dx), c being the
device's label of x, for the points queried so far, doubling the set (the last round takes a seeded
subset so the budget is met exactly). With `output="scores"` the replica learns the device's
dequantized scores (soft targets); with "labels" a one-hot of its label.

At every budget a replica is trained from scratch on exactly the first `budget` queries, and scored
on the evaluation half of the test split (pools.evaluation_split), which no attack query ever
contains: fidelity = agreement with the device's labels there, accuracy = agreement with the true
labels. The device's labels of that half are queries too: they are made once, before the attack,
and reported apart (`evaluation_queries`). `device_inferences` comes from the device's own INFO
counter: the inferences run between the start of the attack and the budget being reached.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import UsageError

AUGMENTS = ("jacobian", "none")
OUTPUTS = ("labels", "scores")
MIN_STEPS = 800  # optimizer steps per replica at least: a 100-sample set needs many epochs


def check_budgets(budgets) -> list[int]:
    """Sorted, distinct, positive query budgets (UsageError otherwise)."""
    try:
        values = [int(b) for b in budgets]
    except (TypeError, ValueError):
        raise UsageError(f"--budgets {budgets!r}: give comma-separated query counts, e.g. 100,300,1000") from None
    if not values:
        raise UsageError("--budgets: give at least one query budget, e.g. 100,300,1000")
    for b in values:
        if b < 1:
            raise UsageError(f"--budgets {b}: a query budget must be at least 1 query")
    return sorted(set(values))


@dataclass
class ExtractResult:
    params: dict
    seed: int | None
    target: dict
    n: int
    victim_accuracy: float
    evaluation_queries: int
    evaluation_device_inferences: int | None
    pool_size: int
    rows: list[dict] = field(default_factory=list)
    replicas: dict = field(default_factory=dict)  # budget -> tf_keras model
    queried_x: np.ndarray | None = None
    queried_t: np.ndarray | None = None

    def summary(self, tool_version: str | None = None) -> dict:
        """extract.json: the shared header (CONVENTIONS "Files") and one row per budget."""
        return {
            "schema": 1, "command": "extract", "attack": "extract", "params": self.params,
            "seed": self.seed, "norm": None, "source_model_sha256": None, "target": self.target,
            "n": self.n, "tool_version": tool_version,
            "victim_accuracy": self.victim_accuracy,
            "evaluation_queries": self.evaluation_queries,
            "evaluation_device_inferences": self.evaluation_device_inferences,
            "pool_size": self.pool_size,
            "metrics": self.rows,
        }


def train_replica(x, targets, *, architecture="cnn-digits", width=1.0, epochs=30, batch_size=32,
                  lr=1e-3, seed=0):
    """A fresh zoo model fitted to (x, targets): targets are (N, K) probabilities (one-hot for labels)."""
    from ...tfutil import keras, set_seed
    from ...zoo import build_model

    x = np.asarray(x, np.float32)
    targets = np.asarray(targets, np.float32)
    set_seed(seed)
    k = keras()
    net = build_model(architecture, x.shape[1:], targets.shape[1], width)
    net.compile(optimizer=k.optimizers.Adam(lr), loss="categorical_crossentropy")
    steps = max(1, math.ceil(len(x) / batch_size))
    net.fit(x, targets, epochs=max(int(epochs), math.ceil(MIN_STEPS / steps)), batch_size=batch_size,
            verbose=0, shuffle=True)
    return net


def predict_labels(model, x, batch_size: int = 1024) -> np.ndarray:
    return np.argmax(model.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0), axis=-1)


def jacobian_augment(model, x, labels, lam: float, data_range) -> np.ndarray:
    """Papernot's augmentation step: x + lam * sign(gradient of the replica's logit for `labels`)."""
    from ...tfutil import tf
    from ..targets import logits_model

    t = tf()
    logits = logits_model(model)
    xt = t.constant(np.asarray(x, np.float32))
    with t.GradientTape() as tape:
        tape.watch(xt)
        z = logits(xt, training=False)
        picked = t.gather(z, t.constant(np.asarray(labels, np.int64)), axis=1, batch_dims=1)
    g = tape.gradient(picked, xt).numpy()
    return np.clip(x + lam * np.sign(g), data_range[0], data_range[1]).astype(np.float32)


def _device_of(target):
    return getattr(target, "device", None)


def _inferences(target) -> int | None:
    dev = _device_of(target)
    return int(dev.info()["inferences"]) if dev is not None else None


def extract(model=None, *, board: str | None = None, port: str | None = None, target=None,
            dataset="digits", budgets=(100, 300, 1000, 3000), pool="heldout", augment="jacobian",
            output="labels", replica="cnn-digits", width=1.0, epochs=30, batch_size=32,
            lam=0.1, pool_size=None, seed=0, progress=None) -> ExtractResult:
    """Steal the model a device runs (see the module docstring). Give `model` (the .tflite the
    device runs) with `board`/`port`, or an open `target` (an attacks.targets.DeviceTarget, or any
    target for a host-side dry run). `progress(n)` is called with the queries made."""
    from ...datasets import Dataset, load_dataset
    from ...results import wilson_interval
    from ..targets import open_target
    from .pools import evaluation_split, query_pool

    budgets = check_budgets(budgets)
    if augment not in AUGMENTS:
        raise UsageError(f"--augment {augment}: choose one of {', '.join(AUGMENTS)}")
    if output not in OUTPUTS:
        raise UsageError(f"--output {output}: choose labels or scores")
    if lam <= 0:
        raise UsageError(f"lam {lam}: the augmentation step must be > 0")
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    if target is None and board is None and port is None:
        raise UsageError("extract queries a device: give --board (e.g. emu-tflm) or --port URL")

    # the pool is checked against the dataset before any board starts, then the device against both
    x_pool = query_pool(pool, ds, ds.input_shape, ds.data_range, seed=seed, size=pool_size)
    if augment == "none" and budgets[-1] > len(x_pool):
        raise UsageError(f"--budgets {budgets[-1]}: the pool has {len(x_pool)} samples; give "
                         f"--augment jacobian to query beyond it, or a larger pool")
    with contextlib.ExitStack() as stack:
        if target is None:
            target = stack.enter_context(open_target(model, board=board, port=port, output="scores"))
        shape = tuple(target.input_shape)
        if tuple(ds.input_shape) != shape:
            raise UsageError(f"--dataset {ds.name}: samples of shape {tuple(ds.input_shape)} do not fit "
                             f"the device's input {shape}; give the dataset the victim was made for")
        _, _, x_eval, y_eval = evaluation_split(ds, seed)

        def ask(x):
            s = np.asarray(target.scores(x), np.float32)
            if progress is not None:
                progress(len(x))
            return s

        # The device's view of the evaluation half: queried once, before the attack, reported apart.
        i0 = _inferences(target)
        eval_pred = np.argmax(ask(x_eval), axis=-1)
        i1 = _inferences(target)
        eval_infer = None if i0 is None else i1 - i0
        victim_ok = int((eval_pred == y_eval).sum())

        def soft(scores):
            if output == "scores":
                s = np.clip(scores, 0.0, None)
                total = s.sum(axis=1, keepdims=True)
                # an all-zero int8 softmax row (possible after quantization) falls back to its argmax
                return np.where(total > 0, s / np.where(total > 0, total, 1.0),
                                np.eye(scores.shape[1], dtype=np.float32)[scores.argmax(1)])
            return np.eye(scores.shape[1], dtype=np.float32)[scores.argmax(1)]

        fit = dict(architecture=replica, width=width, epochs=epochs, batch_size=batch_size)
        res = ExtractResult(
            params={"pool": str(pool), "augment": augment, "output": output, "budgets": budgets,
                    "replica": replica, "width": width, "epochs": epochs, "batch_size": batch_size,
                    "lam": lam, "min_steps": MIN_STEPS},
            seed=seed, target=target.describe(), n=len(x_eval),
            victim_accuracy=victim_ok / len(y_eval), evaluation_queries=len(x_eval),
            evaluation_device_inferences=eval_infer, pool_size=len(x_pool))
        res.params["victim_accuracy_ci95"] = wilson_interval(victim_ok, len(y_eval))

        qx = np.zeros((0, *shape), np.float32)
        qt = np.zeros((0, target.num_classes), np.float32)
        used = 0  # pool samples queried
        rounds = 0
        trained: dict[int, object] = {}  # queries -> replica trained on exactly those
        rng = np.random.default_rng(seed + 7)

        def replica_for(n):
            if n not in trained:
                trained[n] = train_replica(qx[:n], soft(qt[:n]), seed=seed + n, **fit)
            return trained[n]

        for budget in budgets:
            while len(qx) < budget:
                need = budget - len(qx)
                if used < len(x_pool):
                    new = x_pool[used: used + need]
                    used += len(new)
                else:
                    # One augmentation round from every point queried so far (or a seeded subset).
                    base = len(qx)
                    pick = np.sort(rng.choice(base, size=min(base, need), replace=False))
                    sign = -1.0 if rounds % 2 else 1.0  # Papernot's periodic step size: tau
                    rounds += 1
                    new = jacobian_augment(replica_for(base), qx[pick], qt[pick].argmax(1),
                                           sign * lam, target.data_range)
                qx = np.concatenate([qx, new])
                qt = np.concatenate([qt, ask(new)])
            inf = _inferences(target)
            net = replica_for(budget)
            rep = predict_labels(net, x_eval)
            agree = int((rep == eval_pred).sum())
            correct = int((rep == y_eval).sum())
            res.rows.append({
                "queries": budget, "pool_queries": min(budget, used),
                "augmented_queries": budget - min(budget, used),
                "fidelity": agree / len(x_eval), "fidelity_ci95": wilson_interval(agree, len(x_eval)),
                "accuracy": correct / len(x_eval), "accuracy_ci95": wilson_interval(correct, len(x_eval)),
                "device_inferences": None if inf is None else inf - i1,
                "evaluation_queries": len(x_eval), "n": len(x_eval),
                "replica": f"replica-{budget}.keras"})
            res.replicas[budget] = net
            # intermediate replicas only serve augmentation from this size on
            for k in [k for k in trained if k < budget]:
                del trained[k]
        res.queried_x, res.queried_t = qx, qt
        return res


def write_extract(res: ExtractResult, out, *, force: bool = False, tool_version: str | None = None) -> Path:
    """OUT/extract.json, OUT/replica-<budget>.keras per budget, OUT/replica.keras (the largest
    budget's, for `transfer --sources`), OUT/queries.npz (what was sent and what came back)."""
    from ...atomic import atomic_dir, write_json

    with atomic_dir(out, force=force) as tmp:
        for budget, net in res.replicas.items():
            net.save(tmp / f"replica-{budget}.keras")
        last = max(res.replicas)
        res.replicas[last].save(tmp / "replica.keras")
        np.savez(tmp / "queries.npz", x=res.queried_x, scores=res.queried_t,
                 y=res.queried_t.argmax(1).astype(np.int64))
        write_json(tmp / "extract.json", res.summary(tool_version))
    return Path(out)
