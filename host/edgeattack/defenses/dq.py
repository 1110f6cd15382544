"""dq: Defensive Quantization (Lin, Gan, Han, ICLR 2019): quantization-aware training with a
Lipschitz (orthogonality) regulariser, so that the quantized network does not amplify a small input
perturbation layer after layer.

Loss = task loss + beta * sum over conv/dense kernels of ||G - I||_F^2, where W is the kernel
reshaped to 2-D (rows = fan-in, columns = output channels; a depthwise kernel: rows = taps, columns
= channels) and G is the Gram matrix of its smaller side (W^T W when there are at least as many rows
as columns, else W W^T: a wide W cannot have orthonormal columns). The two sides' penalties differ
by a constant (|rows - cols|; both are sum (s_i^2 - 1)^2 over W's singular values plus the count of
missing ones), so the gradient, and the training, are the paper's either way: all singular values
pulled to 1, each layer's Lipschitz constant (of the reshaped kernel) towards 1. The QAT itself is compression's
(`qat` step: quantize_model, or the sparsity/cluster-preserving schemes after prune/cluster steps).
`adversarial: true` also trains adversarially: with an earlier adv-train step's settings, else with
adv-train's defaults.
"""
from __future__ import annotations

from pathlib import Path

from ..compression.steps import QAT, Param, StepDef, register_step
from ..errors import UsageError

PARAMS = {
    "beta": Param("float", 0.1, "weight of the orthogonality penalty beta x ||W^T W - I||^2 "
                                 "summed over conv/dense kernels", min=0),
    "preserve": Param("str", "auto", "what QAT keeps (as the qat step): auto follows the recipe's "
                                     "earlier prune/cluster steps",
                      choices=("auto", "none", "sparsity", "clusters", "sparsity+clusters")),
    "adversarial": Param("bool", False, "also train adversarially (an earlier adv-train step's "
                                        "settings, else adv-train's defaults)"),
    "epochs": Param("int", 10, "quantization-aware training epochs on the training split", min=0),
    "lr": Param("float", 0.002, "Adam learning rate for quantization-aware training", min=0),
    "batch_size": Param("int", 32, "batch size", min=1),
}


def check(params: dict, where: str) -> None:
    if params["lr"] <= 0:
        raise UsageError(f"{where}: parameter 'lr' must be > 0 (got {params['lr']!r})")


def kernels(model) -> list:
    """The conv/dense kernel variables of a model. Read from the weights, not the layer attribute:
    inside a QAT wrapper `layer.kernel` is the fake-quantized tensor of the wrapper's own graph."""
    found, seen = [], set()
    for layer in model.layers:
        for v in layer.weights:
            base = v.name.rsplit("/", 1)[-1].split(":")[0]
            if base in ("kernel", "depthwise_kernel") and len(v.shape) >= 2 and id(v) not in seen:
                seen.add(id(v))
                found.append(v)
    return found


def orthogonality_gap(w):
    """||G - I||_F^2 for one kernel (TensorFlow), G the Gram matrix of its smaller side."""
    from ..tfutil import tf as _tf

    tf = _tf()
    cols = w.shape[-2] * w.shape[-1] if "depthwise_kernel" in w.name else w.shape[-1]
    w2 = tf.reshape(w, [-1, cols])
    rows, cols = int(w2.shape[0]), int(w2.shape[1])
    gram = tf.matmul(w2, w2, transpose_a=True) if rows >= cols else tf.matmul(w2, w2, transpose_b=True)
    return tf.reduce_sum(tf.square(gram - tf.eye(min(rows, cols))))


def gaps(model) -> dict:
    """Per-kernel ||G - I||_F (NumPy floats), for the manifest and the tests."""
    return {v.name: float(orthogonality_gap(v).numpy()) ** 0.5 for v in kernels(model)}


def run(ctx, step) -> dict:
    from ..compression.qat import train_qat
    from ..compression.recipe import qat_preserve
    from .adv_train import ADVERSARY, hook_from

    p = step.params
    beta = float(p["beta"])

    def prepare(qat_model):
        ks = kernels(qat_model)
        if not ks:
            raise UsageError("dq: the model has no conv or dense kernel to regularise")
        if beta > 0:
            qat_model.add_loss(lambda: beta * sum(orthogonality_gap(v) for v in ks))

    hook = None
    if p["adversarial"]:
        hook = ctx.train_hook or hook_from({k: q.default for k, q in ADVERSARY.items()}, ctx.data)
    before = gaps(ctx.model)
    details = train_qat(ctx, ctx.model, qat_preserve(ctx.recipe_steps, step), p, "dq (QAT)",
                        prepare=prepare, hook=hook)
    after = gaps(ctx.model)
    details["beta"] = beta
    details["orthogonality_gap"] = {"before": before, "after": after,
                                    "total_before": sum(before.values()),
                                    "total_after": sum(after.values())}
    ctx.echo(f"  ||W^T W - I|| summed over {len(after)} kernels: "
             f"{details['orthogonality_gap']['total_before']:.2f} -> "
             f"{details['orthogonality_gap']['total_after']:.2f}")
    return details


STEP = register_step(StepDef(
    "dq", QAT, PARAMS,
    "Defensive Quantization: QAT with an orthogonality (Lipschitz) penalty on each kernel",
    run=f"{__name__}:run", check=check, recipe=Path(__file__).with_name("recipes") / "dq.yaml"))
