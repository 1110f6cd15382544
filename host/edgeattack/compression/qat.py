"""Quantization-aware training steps: qat, and the collaborative ones pqat, cqat, pcqat.

The QAT model (fake-quantized, tfmot wrappers) is what ptq-int8 converts. The float model written as
model.keras is that model with the fake quantization removed: the original architecture carrying the
QAT-trained weights (a tf_keras QAT model does not round-trip through .keras, and a plain float model
is what attacks and inspection want).
"""
from __future__ import annotations

import logging

from .context import StepContext, log
from .recipe import qat_preserve
from .sparsity import _tfmot, cluster, kernel_distinct, kernel_sparsity, prune, tfmot_error


def quantize(model, preserve: str):
    """Wrap a float model for QAT. preserve: none | sparsity | clusters | sparsity+clusters."""
    tfmot = _tfmot()
    qk = tfmot.quantization.keras
    try:
        if preserve == "none":
            qat = qk.quantize_model(model)
        else:
            combine = tfmot.experimental.combine
            if preserve == "sparsity":
                scheme = combine.Default8BitPrunePreserveQuantizeScheme()
            elif preserve == "clusters":
                scheme = combine.Default8BitClusterPreserveQuantizeScheme()
            else:
                scheme = combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
            with qk.quantize_scope():
                qat = qk.quantize_apply(qk.quantize_annotate_model(model), scheme)
    except Exception as e:
        raise tfmot_error("quantization-aware training", e) from None
    # A layer the model froze (dkd's fixed soft vote, I/N) stays frozen: tfmot's wrapper lists every
    # weight it quantizes among its own trainable weights, whatever the layer says.
    frozen = {layer.name for layer in model.layers if not layer.trainable}
    for w in qat.layers:
        inner = getattr(w, "layer", None)
        if inner is not None and inner.name in frozen:
            # (the wrapped layer no longer lists them itself: matched by the variables' names)
            mine = [v for v in w._trainable_weights if v.name.startswith(f"{inner.name}/")]
            w._trainable_weights[:] = [v for v in w._trainable_weights if all(v is not x for x in mine)]
            w._non_trainable_weights.extend(mine)
    return qat


def strip_quantization(qat_model, float_model):
    """The float architecture of `float_model` with the weights the QAT model trained.

    tfmot wraps each layer one to one (QuantizeWrapperV2 named quant_<layer>, holding the layer's
    own variables, e.g. conv2d/kernel:0); cluster-preserving QAT writes the clustered kernel back
    into that variable. Weights are matched by layer name and variable name."""
    from ..tfutil import keras

    k = keras()
    clone = k.models.clone_model(float_model)
    clone.set_weights(float_model.get_weights())
    inner = {}
    for layer in qat_model.layers:
        wrapped = getattr(layer, "layer", None)
        inner[wrapped.name if wrapped is not None else layer.name] = layer
    for layer in clone.layers:
        if not layer.weights:
            continue
        source = inner.get(layer.name)
        if source is None:
            raise AssertionError(f"QAT model has no layer for {layer.name}")
        by_name = {tuple(v.name.split("/")[-2:]): v for v in source.weights}
        values = []
        for w in layer.weights:
            key = (layer.name, w.name.split("/")[-1])
            if key not in by_name:
                raise AssertionError(f"QAT layer {source.name} has no variable {key}")
            values.append(by_name[key].numpy())
        layer.set_weights(values)
    return clone


RANGE_SAMPLES = 256
# the variables of tfmot's moving-average activation quantizers (a layer's output, after its activation)
_RANGE_VARS = {"post_activation_min": min, "post_activation_max": max, "output_min": min, "output_max": max}


def start_ranges_from_data(qat_model, float_model, x) -> int:
    """Start each activation quantizer's range at the range the float layer's output takes on `x`.

    tfmot starts every such range at [-6, 6] and moves it by an EMA with decay 0.999, so a fine-tuning
    of a few hundred steps leaves it near [-6, 6]: harmless for a hidden ReLU, ruinous for an output
    that is not a softmax (whose int8 range is fixed), e.g. dkd's soft vote, probabilities in [0, 1]
    quantized in steps of 0.045 after a one-epoch pqat (ties at the top for most inputs). Layers are
    matched by name (QuantizeWrapperV2 wraps the float layer of the same name); one tfmot fuses or
    renames is left as tfmot starts it. Returns how many ranges were set."""
    from ..tfutil import keras

    k = keras()
    names = {layer.name for layer in float_model.layers}
    wrappers = [w for w in qat_model.layers
                if getattr(w, "layer", None) is not None and w.layer.name in names
                and any(v.name.split("/")[-1].split(":")[0] in _RANGE_VARS for v in w.weights)]
    if not wrappers:
        return 0
    # a fresh clone: its layers have one node each, on its own input (a pruned or stripped model's
    # layers can carry nodes of the model they were cloned from)
    clone = k.models.clone_model(float_model)
    clone.set_weights(float_model.get_weights())
    probe = k.Model(clone.inputs, [clone.get_layer(w.layer.name).output for w in wrappers])
    outs = probe.predict(x, batch_size=256, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    set_ = 0
    for w, out in zip(wrappers, outs):
        lo, hi = min(float(out.min()), 0.0), max(float(out.max()), 0.0)  # the range must hold 0
        hi = max(hi, lo + 1e-6)  # a layer silent on x: a tiny, not an empty, range
        for v in w.weights:
            which = v.name.split("/")[-1].split(":")[0]
            if which in _RANGE_VARS and v.shape.rank == 0:
                v.assign(lo if _RANGE_VARS[which] is min else hi)
                set_ += 1
    return set_


def run(ctx: StepContext, step) -> dict:
    p = step.params
    details: dict = {}
    base = ctx.model
    if step.name in ("pqat", "pcqat"):
        base, details["prune"] = prune(ctx, base, p, p["prune_epochs"], p["prune_lr"])
        details["prune"]["accuracy"] = ctx.accuracy(base)
        ctx.echo(f"  pruned: accuracy {details['prune']['accuracy']:.4f}")
    if step.name in ("cqat", "pcqat"):
        base, details["cluster"] = cluster(ctx, base, p, p["cluster_epochs"], p["cluster_lr"],
                                           preserve_sparsity=step.name == "pcqat")
        details["cluster"]["accuracy"] = ctx.accuracy(base)
        ctx.echo(f"  clustered: accuracy {details['cluster']['accuracy']:.4f}")
    return {**details, **train_qat(ctx, base, qat_preserve(ctx.recipe_steps, step), p,
                                   f"{step.name} (QAT)")}


def train_qat(ctx: StepContext, base, preserve: str, p: dict, desc: str, prepare=None,
              hook=None) -> dict:
    """Wrap `base` for QAT, let `prepare(qat_model)` add to it (a regulariser), fine-tune with
    p's epochs/lr/batch_size, and leave the QAT model and its stripped float twin on ctx."""
    qat_model = quantize(base, preserve)
    start_ranges_from_data(qat_model, base, ctx.data.x_train[:RANGE_SAMPLES])
    if prepare is not None:
        prepare(qat_model)
    tf_log = logging.getLogger("tensorflow")
    level = tf_log.level
    if "clusters" in preserve and not log.isEnabledFor(logging.DEBUG):
        # Cluster-preserving QAT trains centroids, not kernels: tfmot's scheme makes Keras warn
        # "Gradients do not exist for variables ..." on every batch, by design (FACTS).
        tf_log.setLevel(logging.ERROR)
    try:
        ctx.fit(qat_model, p["epochs"], p["lr"], p["batch_size"], desc, hook=hook)
    finally:
        tf_log.setLevel(level)
    ctx.qat_model = qat_model
    ctx.model = strip_quantization(qat_model, base)
    details = {"preserve": preserve, "qat_accuracy": ctx.accuracy(qat_model),
               "float_accuracy": ctx.accuracy(ctx.model)}
    if "sparsity" in preserve:
        details["kernel_sparsity"] = kernel_sparsity(ctx.model)
    if "clusters" in preserve:
        details["kernel_distinct_values"] = kernel_distinct(ctx.model)
    return details
