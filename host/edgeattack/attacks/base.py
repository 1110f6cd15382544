"""What every evasion attack shares: hyperparameters, the epsilon loop, projection per norm, clipping
to the data range, the success check on the target, the seed, and the registry of attacks.

An attack is a small class: `PARAMS` declares its keyword-only hyperparameters (named as in Foolbox)
with defaults and one-line help; `run(target, x, y, eps, rng)` returns the adversarial batch for one
epsilon (black-box attacks return `(x_adv, queries)`). `Attack.__call__` is final: subclasses never
see the epsilon loop, the projection, the clipping or the judging, so no attack can get them wrong.

This module imports no TensorFlow: listing attacks (`edgeattack attacks`) stays fast.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError

NORMS = ("linf", "l2")  # l0 only for JSMA (features changed)


@dataclass(frozen=True)
class Param:
    default: object
    help: str
    choices: tuple | None = None


@dataclass
class AttackResult:
    """One attack call. E epsilons x N samples.

    success[e, i]: sample i was classified correctly when clean and the target misclassifies its
    adversarial example (untargeted) or classifies it as target_classes[i] (targeted), judged ON
    THE TARGET (an int8 target after the shared input quantization).
    """

    attack: str
    params: dict
    norm: str
    epsilons: list
    x: np.ndarray
    y: np.ndarray
    x_adv: np.ndarray          # E x N x ...
    success: np.ndarray        # E x N bool
    norms: np.ndarray          # E x N float
    pred: np.ndarray           # E x N int: the target's classes for x_adv
    clean_pred: np.ndarray     # N int
    seed: int | None
    target_kind: str
    target_sha256: str | None
    queries: np.ndarray | None = None       # E x N (black-box)
    target_classes: np.ndarray | None = None  # N (targeted attacks)
    extra: dict = field(default_factory=dict)

    @property
    def clean_correct(self) -> np.ndarray:
        return self.clean_pred == self.y

    def attack_success_rate(self, e: int) -> tuple[int, int]:
        """(successes, samples classified correctly when clean): CONVENTIONS' attack success rate."""
        return int(self.success[e].sum()), int(self.clean_correct.sum())

    def adversarial_accuracy(self, e: int) -> tuple[int, int]:
        return int((self.pred[e] == self.y).sum()), int(len(self.y))


def judge(result: AttackResult, target) -> AttackResult:
    """The same adversarial examples judged on another target (e.g. the device running the int8
    model the examples were crafted against): predictions and success recomputed there."""
    clean_pred = np.asarray(target.predict(result.x))
    pred = np.stack([np.asarray(target.predict(xa)) for xa in result.x_adv])
    return judged(result, clean_pred, pred, target.kind, target.model_sha256)


def judged(result: AttackResult, clean_pred, pred, kind: str, model_sha256) -> AttackResult:
    """`result` with another judge's classes: clean_pred (N) and pred (E x N), e.g. read back from a
    device's records. Success is recomputed by CONVENTIONS' rule (correct when clean, then
    misclassified, or classified as the target class for a targeted attack)."""
    import dataclasses

    clean_pred, pred = np.asarray(clean_pred), np.asarray(pred)
    tc = result.target_classes
    hit = (pred == tc[None]) if tc is not None else (pred != result.y[None])
    return dataclasses.replace(result, pred=pred, clean_pred=clean_pred,
                               success=hit & (clean_pred == result.y)[None],
                               target_kind=kind, target_sha256=model_sha256,
                               extra=dict(result.extra))


# registry -------------------------------------------------------------------------------------------

_REGISTRY: dict[str, type] = {}
_DISCOVERED = False


def register(cls):
    """Class decorator: make the attack available by its `name` (CONVENTIONS names)."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise RuntimeError(f"attack {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    """Import every module of whitebox/ and blackbox/: each registers its attacks (no TensorFlow)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    for family in ("whitebox", "blackbox"):
        try:
            pkg = importlib.import_module(f"{__package__}.{family}")
        except ImportError:
            continue
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg.__name__}.{mod.name}")
    _DISCOVERED = True


def attack_class(name: str) -> type:
    _discover()
    if name not in _REGISTRY:
        raise UsageError(f"unknown attack {name!r}; choose one of {', '.join(sorted(_REGISTRY))} "
                         f"(`edgeattack attacks` lists them)")
    return _REGISTRY[name]


def make(name: str, **params) -> "Attack":
    """The attack `name` with hyperparameters `params` (unknown names are a UsageError)."""
    return attack_class(name)(**params)


def list_attacks() -> list[dict]:
    """Every registered attack: name, family, norms, whether it minimizes, and its parameters."""
    _discover()
    return [_REGISTRY[n].describe() for n in sorted(_REGISTRY)]


# the base ---------------------------------------------------------------------------------------------

class Attack:
    name: str = ""
    family: str = "whitebox"          # "whitebox" | "blackbox"
    summary: str = ""
    norms: tuple = NORMS              # norms the attack defines
    minimization: bool = False        # C&W, DeepFool, HopSkipJump: run unbounded, project per eps
    targeted: bool = False            # JSMA: needs target classes (default (y + 1) mod K)
    needs_gradients: bool = True
    PARAMS: dict[str, Param] = {}
    _tc = None
    _epsilons: list = []

    def __init__(self, **params):
        allowed = self.all_params()
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise UsageError(f"attack {self.name}: unknown parameter {unknown[0]!r}; it takes "
                             f"{', '.join(sorted(allowed))}")
        self.params = {k: p.default for k, p in allowed.items()}
        for k, v in params.items():
            self.params[k] = self._coerce(k, v, allowed[k])
        self.norm = self.params.get("norm", self.norms[0])
        self.check_params()

    # parameters -----------------------------------------------------------------------------------

    @classmethod
    def all_params(cls) -> dict[str, Param]:
        p = {}
        if len(cls.norms) > 1:
            p["norm"] = Param(cls.norms[0], "perturbation norm", cls.norms)
        elif cls.norms:
            p["norm"] = Param(cls.norms[0], "perturbation norm (the only one this attack defines)",
                              cls.norms)
        p.update(cls.PARAMS)
        return p

    @classmethod
    def describe(cls) -> dict:
        return {"name": cls.name, "family": cls.family, "summary": cls.summary,
                "norms": list(cls.norms), "minimization": cls.minimization, "targeted": cls.targeted,
                "needs_gradients": cls.needs_gradients,
                "params": [{"name": k, "default": p.default, "help": p.help,
                            **({"choices": list(p.choices)} if p.choices else {})}
                           for k, p in cls.all_params().items()]}

    def _coerce(self, key: str, value, p: Param):
        """Accept Python values and the strings of `--set NAME=VALUE`, typed by the default."""
        what = f"attack {self.name}: parameter {key}={value!r}"
        d = p.default
        try:
            if isinstance(value, str) and not isinstance(d, str):
                low = value.strip().lower()
                if low in ("none", "null"):
                    value = None
                elif isinstance(d, bool):
                    if low not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError
                    value = low in ("true", "1", "yes")
                elif isinstance(d, int):
                    value = int(value)
                else:
                    value = float(value)
            elif isinstance(d, bool) and not isinstance(value, (bool, np.bool_)):
                raise ValueError
            elif isinstance(d, int) and not isinstance(d, bool) and value is not None:
                if float(value) != int(value):
                    raise ValueError
                value = int(value)
            elif isinstance(d, float) and value is not None:
                value = float(value)
        except (TypeError, ValueError):
            kind = type(d).__name__ if d is not None else "a number"
            raise UsageError(f"{what}: expected {kind}") from None
        if p.choices and value not in p.choices:
            raise UsageError(f"{what}: choose one of {', '.join(map(str, p.choices))}")
        if isinstance(value, float) and not np.isfinite(value):
            raise UsageError(f"{what}: must be finite")
        return value

    def check_params(self) -> None:
        """Subclasses refuse out-of-range hyperparameters here (UsageError naming the parameter)."""
        for k, v in self.params.items():
            if k in ("steps", "max_iter", "binary_search_steps", "candidates", "n_restarts") and \
                    v is not None and v < 1:
                raise UsageError(f"attack {self.name}: parameter {k}={v}: must be at least 1")

    def _positive(self, *keys) -> None:
        for k in keys:
            v = self.params.get(k)
            if v is not None and v <= 0:
                raise UsageError(f"attack {self.name}: parameter {k}={v}: must be > 0")

    # the call -------------------------------------------------------------------------------------

    def __call__(self, target, x, y, *, epsilons, seed: int | None = None, target_classes=None,
                 progress: bool = False) -> AttackResult:
        """Attack `target` on samples x (N x ...) with labels y for every epsilon. Final."""
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y)
        self._check_inputs(target, x, y)
        eps_list = self._check_epsilons(target, epsilons)
        if self.needs_gradients and not target.has_gradients:
            raise UsageError(f"attack {self.name} needs gradients, but the target is a {target.kind} "
                             f"(queries only); attack its .tflite surrogate or a float model, or use "
                             f"a black-box attack")
        tc = None
        if self.targeted:
            tc = (np.asarray(target_classes, dtype=np.int64) if target_classes is not None
                  else (y.astype(np.int64) + 1) % target.num_classes)
            if tc.shape != y.shape or tc.min(initial=0) < 0 or tc.max(initial=0) >= target.num_classes:
                raise UsageError(f"target classes must be {len(y)} labels in 0..{target.num_classes - 1}")
        elif target_classes is not None:
            raise UsageError(f"attack {self.name} is untargeted: it takes no target classes")
        from ..tfutil import set_seed

        set_seed(seed)
        q0 = target.queries
        clean_pred = np.asarray(target.predict(x))
        clean_queries = target.queries - q0
        self._tc = tc
        self._epsilons = list(eps_list)
        lo, hi = target.data_range

        n = len(x)
        E = len(eps_list)
        x_adv = np.empty((E,) + x.shape, np.float32)
        queries = np.zeros((E, n), np.int64) if self.family == "blackbox" else None
        bar = _bar(progress, E, f"{self.name}")
        unbounded = None
        for e, eps in enumerate(eps_list):
            rng = np.random.default_rng(None if seed is None else [seed, e])
            if self.minimization:
                if unbounded is None:  # one minimization serves every epsilon
                    unbounded = self._run(target, x, y, None, rng)
                out, q = unbounded
                if eps is not None:
                    out = self.point_within(out, x, eps)
            else:
                out, q = self._run(target, x, y, eps, rng)
            xa = np.asarray(out, dtype=np.float32)
            if eps is not None:
                xa = project(xa, x, eps, self.norm)
            x_adv[e] = np.clip(xa, lo, hi)
            if queries is not None and q is not None:
                queries[e] = q
            bar.update(1)
        bar.close()
        q1 = target.queries
        pred = np.stack([np.asarray(target.predict(x_adv[e])) for e in range(E)])
        judge_queries = target.queries - q1
        hit = (pred == tc[None]) if tc is not None else (pred != y[None])
        success = hit & (clean_pred == y)[None]
        res = AttackResult(
            attack=self.name, params=dict(self.params), norm=self.norm, epsilons=eps_list, x=x, y=y,
            x_adv=x_adv, success=success, norms=perturbation_norms(x_adv, x, self.norm), pred=pred,
            clean_pred=clean_pred, seed=seed, target_kind=target.kind,
            target_sha256=target.model_sha256, queries=queries, target_classes=tc)
        # queries made to judge (clean + adversarial predictions), beside the attack's own
        res.extra["evaluation_queries"] = int(clean_queries + judge_queries)
        return res

    def _run(self, target, x, y, eps, rng):
        out = self.run(target, x, y, eps, rng)
        if self.family == "blackbox":
            x_adv, q = out
            return x_adv, np.asarray(q, dtype=np.int64)
        return out, None

    def run(self, target, x, y, eps, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def target_classes(self):
        """Inside run(): the target classes of a targeted attack (N,), else None."""
        return self._tc

    @property
    def epsilons(self) -> list:
        """Inside run(): every epsilon of this call (a minimization attack runs once for all)."""
        return self._epsilons

    def point_within(self, x_adv, x, eps):
        """A minimization attack's result for one epsilon, from its unbounded run's x_adv: by default
        x_adv itself, which the caller projects onto the eps-ball. An attack that found a better point
        inside that ball during its run returns it here."""
        return x_adv

    # checks ---------------------------------------------------------------------------------------

    def _check_inputs(self, target, x, y) -> None:
        self.check_inputs(x, y, target.input_shape, target.num_classes)

    def check_inputs(self, x, y, input_shape, num_classes: int) -> None:
        """UsageError for samples that do not fit a target of this input shape and class count
        (public: a command checks its data before it loads a model or starts a board)."""
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim < 2 or len(x) == 0:
            raise UsageError(f"attack {self.name}: x must be a batch N x {tuple(input_shape)}, got {x.shape}")
        if tuple(x.shape[1:]) != tuple(input_shape):
            raise UsageError(f"attack {self.name}: samples of shape {tuple(x.shape[1:])} do not fit the "
                             f"target's input {tuple(input_shape)} (give data made for this model)")
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise UsageError(f"attack {self.name}: y must be {len(x)} integer labels, got {y.shape} {y.dtype}")
        bad = (y < 0) | (y >= num_classes)
        if bad.any():
            raise UsageError(f"attack {self.name}: label {int(y[bad][0])} is outside the model's "
                             f"{num_classes} classes (0..{num_classes - 1}); give labels "
                             f"for this model")
        if self.norm not in self.norms:
            raise UsageError(f"attack {self.name} defines norms {', '.join(self.norms)}, not {self.norm}")

    def _check_epsilons(self, target, epsilons) -> list:
        return self.check_epsilons(epsilons, target.data_range, target.input_shape)

    def check_epsilons(self, epsilons, data_range, input_shape) -> list:
        """The epsilons as a list, or a UsageError for one <= 0 or beyond the data range."""
        eps_list = list(epsilons) if isinstance(epsilons, (list, tuple, np.ndarray)) else [epsilons]
        if not eps_list:
            raise UsageError(f"attack {self.name}: give at least one epsilon")
        lo, hi = data_range
        dim = int(np.prod(input_shape))
        top = {"linf": hi - lo, "l2": (hi - lo) * np.sqrt(dim), "l0": dim}[self.norm]
        out = []
        for eps in eps_list:
            if eps is None:
                if not self.minimization:
                    raise UsageError(f"attack {self.name} needs a finite epsilon (only minimization "
                                     f"attacks take None for unbounded)")
                out.append(None)
                continue
            eps = float(eps)
            if not np.isfinite(eps) or eps <= 0:
                raise UsageError(f"epsilon {eps:g}: must be > 0 (in the units of the input domain "
                                 f"{lo:g}..{hi:g})")
            if eps > top:
                raise UsageError(f"epsilon {eps:g}: beyond the data range {lo:g}..{hi:g} (the largest "
                                 f"{self.norm} perturbation is {top:g}); give a smaller --eps or the "
                                 f"right --range")
            out.append(eps)
        if len(set(out)) != len(out):
            raise UsageError(f"epsilons {out}: repeated values")
        return out


# norms ------------------------------------------------------------------------------------------------

def perturbation_norms(x_adv: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    """Per-sample size of x_adv - x (any leading axes before the sample axes of x)."""
    d = (np.asarray(x_adv, np.float64) - np.asarray(x, np.float64))
    d = d.reshape(d.shape[:d.ndim - x.ndim + 1] + (-1,))
    if norm == "l0":
        return (d != 0).sum(-1).astype(np.float64)
    return np.abs(d).max(-1) if norm == "linf" else np.sqrt((d * d).sum(-1))


def project(x_adv: np.ndarray, x: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """Project x_adv onto the eps-ball around x (linf: clip; l2: rescale longer perturbations; l0:
    the clean sample where more than eps features changed)."""
    d = x_adv.astype(np.float32) - x
    if norm == "l0":  # no projection onto an L0 ball: an example changing too many features is dropped
        keep = perturbation_norms(x_adv, x, "l0") <= eps
        return np.where(keep.reshape((-1,) + (1,) * (x.ndim - 1)), x_adv, x)
    if norm == "linf":
        d = np.clip(d, -eps, eps)
    else:
        n = np.sqrt((d.reshape(len(d), -1).astype(np.float64) ** 2).sum(-1))
        factor = np.minimum(1.0, eps / np.maximum(n, 1e-12)).astype(np.float32)
        d = d * factor.reshape((-1,) + (1,) * (d.ndim - 1))
    return x + d


def _bar(enabled: bool, total: int, desc: str):
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="eps", leave=False)

    class _Null:
        def update(self, n):
            pass

        def close(self):
            pass

    return _Null()
