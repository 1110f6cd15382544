"""prune and cluster steps (tensorflow_model_optimization, tf_keras): wrap, fine-tune, strip.

Both return a plain float model again, so any later step (another float step, QAT, conversion)
sees ordinary Keras layers.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import EdgeAttackError
from .context import StepContext

_CENTROID_INIT = {"kmeans++": "KMEANS_PLUS_PLUS", "linear": "LINEAR", "random": "RANDOM",
                  "density": "DENSITY_BASED"}


def _tfmot():
    from ..tfutil import tf

    tf()
    import warnings

    with warnings.catch_warnings():  # tfmot checks versions with the deprecated distutils
        warnings.simplefilter("ignore", DeprecationWarning)
        import tensorflow_model_optimization as tfmot

    return tfmot


def tfmot_error(what: str, e: Exception) -> EdgeAttackError:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    return EdgeAttackError(f"{what} failed: {first}; tfmot supports Sequential/Functional tf_keras "
                           f"models of built-in layers")


def pruning_schedule(ctx: StepContext, p: dict, epochs: int, batch_size: int) -> tuple[int, int]:
    """(begin_step, end_step) of the PolynomialDecay schedule, in optimizer steps.

    end_step is moved onto a mask-update step (tfmot updates only when (step - begin) % frequency
    == 0) and inside the training run, so the target sparsity is really reached."""
    steps_per_epoch = math.ceil(len(ctx.data.x_train) / batch_size)
    total = steps_per_epoch * epochs
    begin = p["begin_step"] if p["begin_step"] is not None else \
        round(p["begin_epoch"] * steps_per_epoch) if p["begin_epoch"] is not None else 0
    if p["end_step"] is not None:
        end = p["end_step"]
    elif p["end_epoch"] is not None:
        end = round(p["end_epoch"] * steps_per_epoch)
    else:
        end = begin + max(1, (total - begin) * 2 // 3)
    freq = p["frequency"]
    end = min(end, total - 1)
    end = begin + max(0, (end - begin) // freq * freq)
    if end <= begin:
        end = begin + freq if begin + freq < total else begin + 1
    if begin >= total:
        raise EdgeAttackError(f"prune: pruning begins at step {begin} but training runs only {total} "
                              f"steps ({epochs} epochs x {steps_per_epoch}); lower begin_step/"
                              f"begin_epoch or raise the epochs")
    return begin, end


def kernel_sparsity(model) -> dict[str, float]:
    """Fraction of zeros in each conv/dense kernel of a float model, by layer name."""
    out = {}
    for layer in model.layers:
        for w in layer.weights:
            short = w.name.split("/")[-1]
            if short.startswith(("kernel", "depthwise_kernel")):
                v = w.numpy()
                out[layer.name] = float(np.mean(v == 0))
    return out


def kernel_distinct(model) -> dict[str, int]:
    out = {}
    for layer in model.layers:
        for w in layer.weights:
            if w.name.split("/")[-1].startswith(("kernel", "depthwise_kernel")):
                out[layer.name] = int(len(np.unique(w.numpy())))
    return out


def prune(ctx: StepContext, model, p: dict, epochs: int, lr: float):
    """Magnitude pruning with PolynomialDecay, fine-tuned, stripped. Returns (model, details)."""
    tfmot = _tfmot()
    sp = tfmot.sparsity.keras
    batch = p["batch_size"]
    begin, end = pruning_schedule(ctx, p, epochs, batch)
    sched = sp.PolynomialDecay(initial_sparsity=p["initial_sparsity"],
                               final_sparsity=p["target_sparsity"], begin_step=begin, end_step=end,
                               frequency=p["frequency"])
    try:
        wrapped = sp.prune_low_magnitude(model, pruning_schedule=sched)
    except Exception as e:
        raise tfmot_error("prune", e) from None
    ctx.fit(wrapped, epochs, lr, batch, "prune", callbacks=[sp.UpdatePruningStep()])
    stripped = sp.strip_pruning(wrapped)
    per_layer = kernel_sparsity(stripped)
    details = {"begin_step": begin, "end_step": end, "kernel_sparsity": per_layer}
    short = [n for n, s in per_layer.items() if s < p["target_sparsity"] - 0.01]
    if short:
        details["warning"] = (f"layers below target sparsity: {', '.join(short)} (end_step beyond "
                              f"the training run?)")
    return stripped, details


def cluster(ctx: StepContext, model, p: dict, epochs: int, lr: float, preserve_sparsity: bool):
    """Weight clustering (cluster_weights), fine-tuned, stripped. Returns (model, details)."""
    tfmot = _tfmot()
    cl = tfmot.clustering.keras
    init = getattr(cl.CentroidInitialization, _CENTROID_INIT[p["init"]])
    kwargs = {"preserve_sparsity": True} if preserve_sparsity else {}
    try:
        wrapped = cl.cluster_weights(model, number_of_clusters=p["clusters"],
                                     cluster_centroids_init=init, **kwargs)
    except Exception as e:
        raise tfmot_error("cluster", e) from None
    ctx.fit(wrapped, epochs, lr, p["batch_size"], "cluster")
    stripped = cl.strip_clustering(wrapped)
    return stripped, {"kernel_distinct_values": kernel_distinct(stripped),
                      "kernel_sparsity": kernel_sparsity(stripped) if preserve_sparsity else None}


def run(ctx: StepContext, step) -> dict:
    p = step.params
    if step.name == "prune":
        ctx.model, details = prune(ctx, ctx.model, p, p["epochs"], p["lr"])
        return details
    if step.name == "cluster":
        keep = p["preserve_sparsity"]
        if keep is None:
            keep = any(name in ("prune", "pqat") for name in ctx.done)
        ctx.model, details = cluster(ctx, ctx.model, p, p["epochs"], p["lr"], keep)
        details["preserve_sparsity"] = keep
        return details
    raise AssertionError(step.name)
