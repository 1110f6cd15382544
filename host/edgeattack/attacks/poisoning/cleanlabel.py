"""Clean-label poisoning, two ways. Gradient matching (gradmatch.py, Geiping et al. 2021), the
default: poisons aimed at chosen target test inputs, for a victim trained from scratch. Feature
collision (Shafahi et al. 2018, "Poison Frogs"): poisons are
target-class training samples nudged, within an L-inf budget, until an attacker's own clean model
sees them with the features of source-class samples. They keep their true (target-class) labels, so
a label audit finds nothing; a victim trained on them learns "source-class features -> target".

    p = clean_label(data, rate=0.5, source_class=1, target_class=7, eps=0.1, feature_model=m)

The attacker's feature extractor is its model up to the input of the final Dense layer (zoo models
end in Dense + Softmax). Projected sign-gradient descent on ||phi(p) - phi(s)||^2.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ...datasets import Dataset
from ...errors import UsageError
from .data import Poisoned, _choose, check_pair

METHODS = ("gradient-matching", "feature-collision")


def check_eps(eps: float, data_range) -> float:
    eps = float(eps)
    lo, hi = data_range
    if not 0.0 < eps <= (hi - lo):
        raise UsageError(f"--eps {eps:g}: the clean-label budget is an L-inf size in (0, {hi - lo:g}] "
                         f"in the input's units (e.g. 0.1)")
    return eps


def feature_extractor(model):
    """The model up to the input of its final Dense layer (the penultimate features)."""
    from ...tfutil import keras

    k = keras()
    dense = [layer for layer in model.layers if isinstance(layer, k.layers.Dense)]
    if not dense:
        raise UsageError(f"clean-label: model {model.name} has no final Dense layer to take "
                         f"features before")
    return k.Model(model.inputs, dense[-1].input)


def collide(phi, x_base: np.ndarray, x_target: np.ndarray, eps: float, steps: int,
            step_size: float, data_range) -> np.ndarray:
    """Poisons within eps (L-inf) of x_base whose features approach those of x_target."""
    from ...tfutil import tf

    t = tf()
    lo, hi = (float(v) for v in data_range)
    base = t.constant(x_base, t.float32)
    goal = phi(t.constant(x_target, t.float32), training=False)
    p = t.Variable(base)
    for _ in range(steps):
        with t.GradientTape() as tape:
            loss = t.reduce_sum(t.square(phi(p, training=False) - goal))
        g = tape.gradient(loss, p)
        stepped = p - step_size * t.sign(g)
        p.assign(t.clip_by_value(t.clip_by_value(stepped, base - eps, base + eps), lo, hi))
    return p.numpy().astype(np.float32)


def clean_label(data: Dataset, rate: float, source_class: int, target_class: int, eps: float,
                feature_model, seed: int = 0, steps: int = 100,
                step_size: float | None = None) -> Poisoned:
    """A fraction `rate` of the target class's training samples become feature-collision poisons
    (labels unchanged), each aimed at a random source-class training sample."""
    check_pair(data, rate, source_class, target_class)
    eps = check_eps(eps, data.data_range)
    rng = np.random.default_rng([seed, 14])
    bases = np.flatnonzero(data.y_train == target_class)
    sources = np.flatnonzero(data.y_train == source_class)
    if not len(bases) or not len(sources):
        raise UsageError(f"--source-class {source_class} / --target-class {target_class}: the "
                         f"training split lacks samples of one of them")
    idx = _choose(rng, bases, rate, len(bases))
    aims = rng.choice(sources, size=len(idx), replace=True)
    x = data.x_train.copy()
    x[idx] = collide(feature_extractor(feature_model), x[idx], data.x_train[aims], eps,
                     int(steps), float(step_size or eps / 10), data.data_range)
    mask = np.zeros(len(x), bool)
    mask[idx] = True
    linf = float(np.max(np.abs(x[idx] - data.x_train[idx]))) if len(idx) else 0.0
    poisoned = dataclasses.replace(data, name=f"{data.name}+clean-label", x_train=x,
                                   y_train=data.y_train.copy())
    return Poisoned(poisoned, mask, {"poison": "clean-label", "method": "feature-collision",
                                     "rate": rate, "eps": eps,
                                     "source_class": source_class, "target_class": target_class,
                                     "steps": int(steps), "max_linf": linf,
                                     "poisoned_samples": int(len(idx))})


PICKS = ("random", "boundary")
# pick=boundary draws from this fraction of the source-class test inputs, the ones the attacker's
# surrogates place closest to the adversarial class (a seeded draw, so seeds give different targets)
BOUNDARY_POOL = 0.25


def check_pick(pick: str) -> str:
    if pick not in PICKS:
        raise UsageError(f"--set pick={pick}: choose random (any source-class test input) or "
                         f"boundary (among those the attacker's surrogates place closest to the "
                         f"adversarial class)")
    return pick


def choose_targets(data: Dataset, source_class: int, count: int, seed: int, pick: str = "random",
                   models=(), adversarial_class: int | None = None) -> np.ndarray:
    """`count` seeded source-class test inputs: the ones the attacker wants classified otherwise.
    pick="boundary": drawn from the quarter (at least `count`) of source-class test inputs with the
    smallest margin log p(source) - log p(adversarial) averaged over `models` (the attacker's own
    surrogates: an attacker option, recorded in poison.json, never a selection on the victim)."""
    pool = np.flatnonzero(data.y_test == source_class)
    if not 1 <= count <= len(pool):
        raise UsageError(f"--set targets={count}: the test split has {len(pool)} samples of "
                         f"--source-class {source_class}; choose 1..{len(pool)}")
    check_pick(pick)
    if pick == "boundary" and models:
        logp = np.mean([np.log(m.predict(data.x_test[pool], verbose=0) + 1e-12) for m in models], 0)
        margin = logp[:, source_class] - logp[:, int(adversarial_class)]
        keep = max(int(count), int(np.ceil(BOUNDARY_POOL * len(pool))))
        pool = pool[np.argsort(margin, kind="stable")[:keep]]
    return np.sort(np.random.default_rng([seed, 17]).choice(pool, size=count, replace=False))


def gradient_matching(data: Dataset, rate: float, source_class: int, target_class: int, eps: float,
                      surrogates, seed: int = 0, targets: int = 1, steps: int = 240,
                      restarts: int = 2, lr: float = 0.1, augment: bool = True,
                      pick: str = "random", pick_models=None, retrain=None,
                      retrain_rounds: int = 0) -> Poisoned:
    """A fraction `rate` of the target class's training samples become gradient-matching poisons
    (labels unchanged) aimed at `targets` seeded source-class test inputs (pick: choose_targets;
    pick_models, default the last surrogate, rank them for pick="boundary"), which a victim trained
    on them should classify as target_class. info["targets"]: those test indices. retrain (a
    function of a training set returning fresh surrogates) is called retrain_rounds times, evenly
    spaced over the steps, on the training set holding the current poisons."""
    from .gradmatch import brew

    check_pair(data, rate, source_class, target_class)
    eps = check_eps(eps, data.data_range)
    models = list(pick_models) if pick_models else list(surrogates or [])[-1:]
    chosen = choose_targets(data, source_class, int(targets), seed, pick, models, target_class)
    bases = np.flatnonzero(data.y_train == target_class)
    if not len(bases):
        raise UsageError(f"--target-class {target_class}: the training split has no sample of it")
    idx = _choose(np.random.default_rng([seed, 14]), bases, rate, len(bases))
    x = data.x_train.copy()

    def retrain_on(poisons):
        x_now = data.x_train.copy()
        x_now[idx] = poisons
        return retrain(dataclasses.replace(data, x_train=x_now))

    rounds = int(retrain_rounds) if retrain else 0
    x[idx], brewed = brew(surrogates, x[idx], data.y_train[idx], data.x_test[chosen], target_class,
                          eps, data.data_range, steps=int(steps), restarts=int(restarts),
                          lr=float(lr), augment=bool(augment), seed=seed,
                          retrain=retrain_on if rounds else None,
                          retrain_at=[int(steps) * (r + 1) // (rounds + 1) for r in range(rounds)])
    mask = np.zeros(len(x), bool)
    mask[idx] = True
    linf = float(np.max(np.abs(x[idx] - data.x_train[idx])))
    poisoned = dataclasses.replace(data, name=f"{data.name}+clean-label", x_train=x,
                                   y_train=data.y_train.copy())
    return Poisoned(poisoned, mask, {"poison": "clean-label", "method": "gradient-matching",
                                     "rate": rate, "eps": eps, "source_class": source_class,
                                     "target_class": target_class, "targets": chosen.tolist(),
                                     "pick": pick, "retrain_rounds": rounds,
                                     "steps": int(steps), "restarts": int(restarts),
                                     "augment": bool(augment), "max_linf": linf,
                                     "surrogate_snapshots": len(surrogates), **brewed,
                                     "poisoned_samples": int(len(idx))})
