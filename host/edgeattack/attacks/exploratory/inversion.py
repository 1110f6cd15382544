"""Model inversion from a device's scores (MIFace, Fredrikson et al. 2015), without gradients.

    res = invert("int8.tflite", board="emu-tflm", dataset="digits", budget=2000)

For each class c the attacker starts from a flat image and climbs the device's score margin
m_c(x) = score_c(x) - max_{j != c} score_j(x). The device gives no gradients, so each step estimates
one from antithetic Gaussian probes (NES): g = sum_i (m(x + s u_i) - m(x - s u_i)) u_i / (2 s P),
2P queries per step, then steps x += lr * sign(g) inside the data range.

What int8 does to the estimate: the device's softmax output is int8 with scale 1/256, so a probe
changes m only when it moves a score across a quantization step; far from class c every score but
one reads exactly 0 or 1 and most differences are exactly zero. The margin (rather than score_c
alone) keeps a signal whenever any score moves, and `zero_difference_fraction` reports how many
probe pairs saw no change at all. Input quantization adds a floor: probes smaller than half the
input scale vanish before they reach the model.

Scoring never uses the victim (its confidence is what inversion maximises): each reconstruction is
compared with the mean of class c over the evaluation half of the test split (SSIM; the attacker never
queries it), and classified by an independent model trained on the pool half of the test split
(`independent_model_confidence` = its probability of class c).

The literature's shortcut (`shortcut_budgets`): extract a replica with that many queries
(extraction.py), invert the replica white-box (gradient ascent on its logit margin), score the same
way; `comparison` then gives the device queries each route needs to reach the other's score.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import UsageError

CHECKPOINTS = 5  # score the device route this many times along its budget (the query curve)


@dataclass
class InvertResult:
    params: dict
    seed: int | None
    target: dict
    n: int
    classes: list[int]
    rows: list[dict] = field(default_factory=list)
    curve: list[dict] = field(default_factory=list)  # device route: mean scores per queries spent
    shortcut: list[dict] = field(default_factory=list)  # replica route: mean scores per budget
    comparison: dict | None = None
    device_inferences: int | None = None  # both routes (the device's INFO counter)
    device_route_inferences: int | None = None
    images: dict = field(default_factory=dict)  # (route, class) -> reconstruction
    references: dict = field(default_factory=dict)  # class -> class mean of the evaluation half
    baselines: dict = field(default_factory=dict)
    data_range: tuple = (0.0, 1.0)

    def summary(self, tool_version: str | None = None) -> dict:
        """invert.json: the shared header (CONVENTIONS "Files") and one row per (route, class)."""
        return {
            "schema": 1, "command": "invert", "attack": "miface", "params": self.params,
            "seed": self.seed, "norm": None, "source_model_sha256": None, "target": self.target,
            "n": self.n, "tool_version": tool_version, "classes": self.classes,
            "device_inferences": self.device_inferences,
            "device_route_inferences": self.device_route_inferences, "baselines": self.baselines,
            "curve": self.curve, "shortcut": self.shortcut, "comparison": self.comparison,
            "metrics": self.rows,
        }


def ssim(a, b, data_range) -> float:
    """SSIM of two images (Wang et al. 2004; Gaussian window of 11, sigma 1.5, shrunk to fit
    images smaller than 11 pixels so 8x8 digits get a 7x7 window)."""
    from ...tfutil import tf

    t = tf()
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    size = int(min(11, a.shape[0], a.shape[1]))
    size = size if size % 2 else size - 1
    size = max(size, 1)
    sigma = 1.5 * size / 11
    return float(t.image.ssim(t.constant(a), t.constant(b), max_val=float(data_range[1] - data_range[0]),
                              filter_size=size, filter_sigma=sigma).numpy())


def class_means(x, y, classes) -> dict:
    means = {}
    for c in classes:
        sel = x[y == c]
        if len(sel) == 0:
            raise UsageError(f"class {c} has no sample in the evaluation half of the test split: "
                             f"inversion cannot be scored for it")
        means[c] = sel.mean(axis=0)
    return means


def _margin(scores, c) -> np.ndarray:
    s = np.asarray(scores, np.float32)
    others = np.delete(s, c, axis=1).max(axis=1)
    return s[:, c] - others


def invert_device(target, c: int, x0, *, budget: int, probes: int, sigma: float, lr: float,
                  data_range, rng, checkpoints=(), progress=None):
    """Gradient-free MIFace for class c against `target` (anything with scores(x)): returns the
    reconstruction, the images at the query counts in `checkpoints`, and the fraction of probe
    pairs whose margins were exactly equal."""
    lo, hi = data_range
    x = np.asarray(x0, np.float32).copy()
    per_step = 2 * probes
    steps = budget // per_step
    snaps, zero, pairs, spent = {}, 0, 0, 0
    marks = sorted(int(q) for q in checkpoints)
    for _ in range(steps):
        u = rng.standard_normal((probes, *x.shape)).astype(np.float32)
        batch = np.clip(np.concatenate([x + sigma * u, x - sigma * u]), lo, hi)
        m = _margin(target.scores(batch), c)
        spent += len(batch)
        if progress is not None:
            progress(len(batch))
        diff = m[:probes] - m[probes:]
        zero += int((diff == 0).sum())
        pairs += probes
        g = np.tensordot(diff, u, axes=1) / (2 * sigma * probes)
        x = np.clip(x + lr * np.sign(g), lo, hi).astype(np.float32)
        for q in marks:
            if spent >= q and q not in snaps:
                snaps[q] = x.copy()
    for q in marks:  # budgets too small for one step keep the start
        snaps.setdefault(q, x.copy())
    return x, snaps, (zero / pairs if pairs else None), spent


def invert_whitebox(model, c: int, x0, *, steps: int, lr: float, data_range):
    """MIFace on a host model with gradients: ascend its logit margin for class c (signed steps)."""
    from ...tfutil import tf
    from ..targets import logits_model

    t = tf()
    logits = logits_model(model)
    lo, hi = data_range
    x = np.asarray(x0, np.float32)[None].copy()
    k = int(logits.output_shape[-1])
    mask = t.constant(np.eye(k, dtype=np.float32)[c][None])

    @t.function(autograph=False, reduce_retracing=True)
    def grad(xt):
        with t.GradientTape() as tape:
            tape.watch(xt)
            z = logits(xt, training=False)
            own = t.reduce_sum(z * mask, axis=1)
            other = t.reduce_max(z - 1e9 * mask, axis=1)
            m = own - other
        return tape.gradient(m, xt)

    for _ in range(steps):
        g = grad(t.constant(x)).numpy()
        x = np.clip(x + lr * np.sign(g), lo, hi).astype(np.float32)
    return x[0]


def train_independent(x, y, classes: int, *, architecture="cnn-digits", width=1.0, epochs=60, seed=0):
    """The independent judge: a zoo model trained on data the victim never saw (the pool half)."""
    from .extraction import train_replica

    return train_replica(x, np.eye(classes, dtype=np.float32)[y], architecture=architecture,
                         width=width, epochs=epochs, seed=seed)


def _score(images: dict, means: dict, judge, data_range) -> dict:
    """(class -> (ssim to the class mean, independent model's probability of the class))."""
    cs = sorted(images)
    probs = judge.predict(np.stack([images[c] for c in cs]), verbose=0)
    return {c: (ssim(images[c], means[c], data_range), float(probs[i, c])) for i, c in enumerate(cs)}


def _mean_scores(scored: dict) -> tuple[float, float]:
    return (float(np.mean([v[0] for v in scored.values()])), float(np.mean([v[1] for v in scored.values()])))


def invert(model=None, *, board: str | None = None, port: str | None = None, target=None,
           dataset="digits", classes=None, budget: int = 2000, probes: int = 10, sigma: float = 0.1,
           lr: float = 0.02, init: float | None = None, judge_model="cnn-digits", judge_epochs: int = 60,
           shortcut_budgets=(), shortcut_output="scores", whitebox_steps: int = 200, seed=0,
           progress=None) -> InvertResult:
    """Invert the model a device runs (see the module docstring). `budget`: device queries per
    class (2 * probes per step). `init`: the flat start value (default the middle of the range).
    `shortcut_budgets`: extraction budgets for the replica route (empty: device route only)."""
    from ...datasets import Dataset, load_dataset
    from ...results import wilson_interval
    from ..targets import open_target
    from .extraction import check_budgets, extract
    from .pools import evaluation_split

    if budget < 1:
        raise UsageError(f"--budget {budget}: the query budget per class must be at least 1")
    if probes < 1:
        raise UsageError(f"probes {probes}: at least one probe pair per step")
    if budget < 2 * probes:
        raise UsageError(f"--budget {budget}: one gradient estimate takes {2 * probes} queries "
                         f"(2 x probes); give a budget of at least {2 * probes}")
    if sigma <= 0 or lr <= 0:
        raise UsageError("sigma and lr must be > 0")
    shortcut_budgets = check_budgets(shortcut_budgets) if shortcut_budgets else []
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    if target is None and board is None and port is None:
        raise UsageError("invert queries a device: give --board (e.g. emu-tflm) or --port URL")

    for c in classes or ():
        if not 0 <= int(c) < ds.classes:
            raise UsageError(f"--classes {c}: the model has classes 0..{ds.classes - 1}")
    with contextlib.ExitStack() as stack:
        if target is None:
            target = stack.enter_context(open_target(model, board=board, port=port, output="scores"))
        if getattr(target, "output", "scores") != "scores":
            raise UsageError("inversion needs the device's scores, not labels only")
        shape = tuple(target.input_shape)
        if tuple(ds.input_shape) != shape:
            raise UsageError(f"--dataset {ds.name}: samples of shape {tuple(ds.input_shape)} do not fit "
                             f"the device's input {shape}; give the dataset the victim was made for")
        k = int(target.num_classes)
        cls = list(range(k)) if classes is None else sorted({int(c) for c in classes})
        for c in cls:
            if not 0 <= c < k:
                raise UsageError(f"--classes {c}: the model has classes 0..{k - 1}")
        lo, hi = target.data_range
        x_pool, y_pool, x_eval, y_eval = evaluation_split(ds, seed)
        means = class_means(x_eval, y_eval, cls)
        judge = train_independent(x_pool, y_pool, k, architecture=judge_model, epochs=judge_epochs,
                                  seed=seed + 1)
        judge_ok = int((np.argmax(judge.predict(x_eval, verbose=0), 1) == y_eval).sum())
        start = np.full(shape, (lo + hi) / 2 if init is None else init, np.float32)
        res = InvertResult(
            params={"budget": budget, "probes": probes, "sigma": sigma, "lr": lr,
                    "init": float(start.flat[0]), "judge_model": judge_model, "judge_epochs": judge_epochs,
                    "shortcut_budgets": shortcut_budgets, "shortcut_output": shortcut_output,
                    "whitebox_steps": whitebox_steps},
            seed=seed, target=target.describe(), n=len(x_eval), classes=cls, data_range=(lo, hi))
        res.references = means
        start_scores = _score({c: start for c in cls}, means, judge, (lo, hi))
        res.baselines = {
            "independent_model_accuracy": judge_ok / len(y_eval),
            "independent_model_accuracy_ci95": wilson_interval(judge_ok, len(y_eval)),
            "start_mean_ssim": _mean_scores(start_scores)[0],
            "start_mean_independent_confidence": _mean_scores(start_scores)[1]}

        # Route 1: the device's scores only.
        marks = sorted({max(2 * probes, budget * (i + 1) // CHECKPOINTS) for i in range(CHECKPOINTS)})
        dev = getattr(target, "device", None)
        i0 = dev.info()["inferences"] if dev is not None else None
        rng = np.random.default_rng(seed)
        snaps_by_class, finals = {}, {}
        for c in cls:
            x, snaps, zero, spent = invert_device(target, c, start, budget=budget, probes=probes,
                                                  sigma=sigma, lr=lr, data_range=(lo, hi), rng=rng,
                                                  checkpoints=marks, progress=progress)
            finals[c] = (x, zero, spent)
            snaps_by_class[c] = snaps
        if dev is not None:
            res.device_route_inferences = int(dev.info()["inferences"] - i0)
        final_scores = _score({c: finals[c][0] for c in cls}, means, judge, (lo, hi))
        for c in cls:
            x, zero, spent = finals[c]
            s, conf = final_scores[c]
            res.images[("device", c)] = x
            res.rows.append({"route": "device", "class": c, "image": f"class-{c}.png",
                             "ssim_to_class_mean": s, "ssim_start": start_scores[c][0],
                             "independent_model_confidence": conf,
                             "independent_model_label": None, "queries": spent,
                             "zero_difference_fraction": zero})
        labels = np.argmax(judge.predict(np.stack([finals[c][0] for c in cls]), verbose=0), 1)
        for row, lab in zip(res.rows, labels):
            row["independent_model_label"] = int(lab)
        for q in marks:
            sc = _score({c: snaps_by_class[c][q] for c in cls}, means, judge, (lo, hi))
            m_ssim, m_conf = _mean_scores(sc)
            res.curve.append({"queries_per_class": q, "queries": q * len(cls), "mean_ssim": m_ssim,
                              "mean_independent_confidence": m_conf})

        # Route 2: extract a replica, invert it white-box.
        if shortcut_budgets:
            ext = extract(target=target, dataset=ds, budgets=shortcut_budgets, pool="heldout",
                          output=shortcut_output, seed=seed)
            for row in ext.rows:
                b = row["queries"]
                imgs = {c: invert_whitebox(ext.replicas[b], c, start, steps=whitebox_steps, lr=lr,
                                           data_range=(lo, hi)) for c in cls}
                sc = _score(imgs, means, judge, (lo, hi))
                for c in cls:
                    res.images[(f"replica-{b}", c)] = imgs[c]
                    res.rows.append({"route": f"replica-{b}", "class": c,
                                     "image": f"replica-{b}/class-{c}.png",
                                     "ssim_to_class_mean": sc[c][0], "ssim_start": start_scores[c][0],
                                     "independent_model_confidence": sc[c][1], "queries": b,
                                     "zero_difference_fraction": None})
                m_ssim, m_conf = _mean_scores(sc)
                res.shortcut.append({"extraction_queries": b, "fidelity": row["fidelity"],
                                     "fidelity_ci95": row["fidelity_ci95"],
                                     "device_inferences": row["device_inferences"],
                                     "evaluation_queries": ext.evaluation_queries,
                                     "mean_ssim": m_ssim, "mean_independent_confidence": m_conf})
            res.comparison = compare_routes(res.curve, res.shortcut)
        if dev is not None:
            res.device_inferences = int(dev.info()["inferences"] - i0)
        return res


def compare_routes(curve: list[dict], shortcut: list[dict]) -> dict:
    """Device queries each route needs to reach the other route's best mean independent confidence
    (None: it never gets there within its budgets). Extraction's evaluation queries are not counted
    in the shortcut's figure (they only measure fidelity); they are reported beside it."""
    def first(points, key, goal):
        for p in points:
            if p["mean_independent_confidence"] >= goal:
                return p[key]
        return None

    best_dev = max(p["mean_independent_confidence"] for p in curve)
    best_rep = max(p["mean_independent_confidence"] for p in shortcut)
    goal = min(best_dev, best_rep)  # a score both routes reach
    return {"score": "mean_independent_confidence", "equal_score": goal,
            "device_route_queries": first(curve, "queries", goal),
            "shortcut_route_queries": first(shortcut, "extraction_queries", goal),
            "device_route_best": best_dev, "shortcut_route_best": best_rep}


def write_png(path: Path, image, data_range, min_size: int = 64) -> None:
    """A grey (or RGB) PNG, scaled up by whole pixels to at least `min_size` so small inputs show."""
    from PIL import Image

    lo, hi = data_range
    a = np.clip((np.asarray(image, np.float32) - lo) / (hi - lo), 0, 1)
    a = (a * 255 + 0.5).astype(np.uint8)
    a = a[..., 0] if a.shape[-1] == 1 else a
    f = max(1, math.ceil(min_size / min(a.shape[0], a.shape[1])))
    a = np.repeat(np.repeat(a, f, axis=0), f, axis=1)
    Image.fromarray(a).save(path)


def write_invert(res: InvertResult, out, *, force: bool = False,
                 tool_version: str | None = None) -> Path:
    """OUT/invert.json, OUT/class-<c>.png (device route), OUT/replica-<B>/class-<c>.png (shortcut),
    OUT/class-means/class-<c>.png (the references) and OUT/reconstructions.npz."""
    from ...atomic import atomic_dir, write_json

    data_range = res.data_range
    with atomic_dir(out, force=force) as tmp:
        for (route, c), img in res.images.items():
            folder = tmp if route == "device" else tmp / route
            folder.mkdir(exist_ok=True)
            write_png(folder / f"class-{c}.png", img, data_range)
        (tmp / "class-means").mkdir()
        for c, img in res.references.items():
            write_png(tmp / "class-means" / f"class-{c}.png", img, data_range)
        np.savez(tmp / "reconstructions.npz", x=np.stack([res.images[("device", c)] for c in res.classes]),
                 y=np.asarray(res.classes, np.int64))
        write_json(tmp / "invert.json", res.summary(tool_version))
    return Path(out)
