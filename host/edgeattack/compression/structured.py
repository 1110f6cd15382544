"""structured step: Dense layers constrained to structured matrices, trained in their place, then
expanded back into plain Dense layers for conversion.

A Dense layer computes y = x K + b with K[in, out]. Two structures replace K:

- `circulant` (block-circulant, CirCNN; one block = Cheng et al.'s circulant projection): x is
  zero-padded to P*B inputs, the output cut to `out` of Q*B; each BxB block (p, q) is circulant with
  first row c[p, q]: K[p*B + j, q*B + i] = c[p, q, (i - j) mod B]. The forward pass is an FFT
  product per block (y_q = sum_p irfft(rfft(c_pq) * rfft(x_p))). Parameters P*Q*B (default one block,
  B = max(in, out): B parameters).
- `hadamard` (Fastfood/ACDC-like: diagonal matrices around a fixed transform, here Walsh-Hadamard):
  x is zero-padded to n = the power of two >= max(in, out), then F factors each apply the orthonormal
  Walsh-Hadamard transform H (a fast transform, log2 n butterfly stages) and a learned diagonal D_k,
  with a fixed random permutation P_k between factors (Fastfood's Pi: without it H D H is only a
  dyadic convolution); the output is cut to `out`. K = (H D_1 P_1 H D_2 ... P_{F-1} H D_F)[:in, :out].
  Parameters F*n. Unlike Fastfood there is no Gaussian scaling or random-sign matrix B outside the
  learned diagonals (the first F-1 diagonals start as random signs, which plays B's part), and unlike
  ACDC the transform is Hadamard, not the DCT.

Both start from the least-squares projection of the trained dense kernel onto the structure
(circulant: each block diagonal's mean; hadamard: the last diagonal fitted with the others fixed), so
fine-tuning starts near the dense layer; the step details record how far (relative error).

TFLM has no FFT or Hadamard kernel, so after fine-tuning each structured layer becomes a Dense layer
holding its expanded matrix (same name, activation and bias) and ptq-int8 converts that: the int8
artifact is as large as the dense one; the gain is in trained parameters, not device bytes.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import UsageError
from .context import StepContext

KINDS = ("circulant", "hadamard")
DEVICE_NOTE = ("the int8 artifact stores each structured layer's expanded dense matrix (TFLM has no "
               "FFT or Hadamard kernel): the saving is in trained parameters, not device bytes")


# ------------------------------------------------------------------------------ the structures

def circulant_shape(n_in: int, n_out: int, block: int | None) -> tuple[int, int, int]:
    """(P, Q, B): blocks along the input and the output, and the block size."""
    b = block or max(n_in, n_out)
    return -(-n_in // b), -(-n_out // b), b


def circulant_index(n_in: int, n_out: int, block: int | None) -> np.ndarray:
    """index[j, i] = the flat position in c[P, Q, B] that K[j, i] takes its value from."""
    p_, q_, b = circulant_shape(n_in, n_out, block)
    j, i = np.arange(n_in)[:, None], np.arange(n_out)[None, :]
    return ((j // b) * q_ + i // b) * b + (i % b - j % b) % b


def expand_circulant(c: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """K[in, out] of block-circulant parameters c[P, Q, B]."""
    return np.asarray(c).reshape(-1)[circulant_index(n_in, n_out, c.shape[-1])]


def project_circulant(kernel: np.ndarray, block: int | None) -> np.ndarray:
    """The block-circulant c nearest to `kernel` (least squares: each entry of c is the mean of the
    kernel entries it would fill; 0 where it fills none)."""
    n_in, n_out = kernel.shape
    shape = circulant_shape(n_in, n_out, block)
    idx = circulant_index(n_in, n_out, block).reshape(-1)
    total = np.bincount(idx, weights=kernel.reshape(-1).astype(np.float64), minlength=math.prod(shape))
    count = np.bincount(idx, minlength=math.prod(shape))
    return (total / np.maximum(count, 1)).reshape(shape).astype(np.float32)


def hadamard_size(n_in: int, n_out: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n_in, n_out))))


def hadamard_matrix(n: int) -> np.ndarray:
    """The orthonormal Walsh-Hadamard matrix in Sylvester order (symmetric, its own inverse)."""
    h = np.ones((1, 1))
    while len(h) < n:
        h = np.block([[h, h], [h, -h]])
    return h / math.sqrt(n)


def expand_hadamard(diags: np.ndarray, perms: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """K[in, out] = (H D_1 P_1 H D_2 ... P_{F-1} H D_F)[:in, :out], diags[F, n], perms[F-1, n]
    (column i of P_k picks column perms[k, i])."""
    n = diags.shape[1]
    h = hadamard_matrix(n)
    m = np.eye(n)
    for k, d in enumerate(diags):
        m = (m @ h) * d[None, :]
        if k < len(perms):
            m = m[:, perms[k]]
    return m[:n_in, :n_out].astype(np.float32)


def project_hadamard(kernel: np.ndarray, factors: int, rng: np.random.Generator):
    """(diags[F, n], perms[F-1, n]): random permutations, random-sign diagonals but the last, and
    the last diagonal fitted to `kernel` by least squares (column by column)."""
    n_in, n_out = kernel.shape
    n = hadamard_size(n_in, n_out)
    perms = np.stack([rng.permutation(n) for _ in range(factors - 1)]) if factors > 1 \
        else np.zeros((0, n), dtype=np.int64)
    diags = np.ones((factors, n))
    diags[:-1] = rng.choice([-1.0, 1.0], size=(factors - 1, n))
    a = expand_hadamard(np.vstack([diags[:-1], np.ones((1, n))]), perms, n_in, n)  # K with D_F = I
    norm = np.sum(a[:, :n_out].astype(np.float64) ** 2, axis=0)
    fit = np.sum(a[:, :n_out] * kernel, axis=0) / np.maximum(norm, 1e-30)
    diags[-1] = 0.0
    diags[-1, :n_out] = np.where(norm > 0, fit, 0.0)
    return diags.astype(np.float32), perms.astype(np.int64)


def relative_error(kernel: np.ndarray, approx: np.ndarray) -> float:
    return float(np.linalg.norm(kernel - approx) / max(np.linalg.norm(kernel), 1e-30))


# ------------------------------------------------------------------------------ the Keras layer

@functools.lru_cache(maxsize=None)
def layer_class():
    """StructuredDense (built on first use: defining a Keras layer needs TensorFlow)."""
    import tensorflow as tf

    from ..tfutil import keras

    k = keras()

    def fwht(z, n: int):
        """Orthonormal Walsh-Hadamard transform of z[batch, n] in log2(n) butterfly stages."""
        h = 1
        while h < n:
            z = tf.reshape(z, (-1, n // (2 * h), 2, h))
            a, b = z[:, :, 0, :], z[:, :, 1, :]
            z = tf.stack([a + b, a - b], axis=2)
            h *= 2
        return tf.reshape(z, (-1, n)) / math.sqrt(n)

    class StructuredDense(k.layers.Layer):
        """y = activation(x K + b) with K circulant or Hadamard-diagonal, computed in its fast form
        (FFT products, or butterflies and diagonals) without ever forming K."""

        def __init__(self, units, input_dim, kind, block=None, factors=1, perms=None,
                     activation=None, use_bias=True, **kwargs):
            super().__init__(**kwargs)
            self.units, self.input_dim, self.kind = int(units), int(input_dim), kind
            self.block, self.factors = block, int(factors)
            self.activation = k.activations.get(activation)
            self.use_bias = bool(use_bias)
            if kind == "circulant":
                self.shape3 = circulant_shape(self.input_dim, self.units, block)
            else:
                self.n = hadamard_size(self.input_dim, self.units)
                self.perms = np.asarray(perms if perms is not None
                                        else np.zeros((self.factors - 1, self.n)), dtype=np.int64)

        def build(self, input_shape):
            shape = self.shape3 if self.kind == "circulant" else (self.factors, self.n)
            self.structure = self.add_weight("structure", shape=shape, initializer="zeros")
            if self.use_bias:
                self.bias = self.add_weight("bias", shape=(self.units,), initializer="zeros")
            super().build(input_shape)

        def call(self, x):
            if self.kind == "circulant":
                p_, q_, b = self.shape3
                z = tf.pad(x, [[0, 0], [0, p_ * b - self.input_dim]])
                spec = tf.signal.rfft(tf.reshape(z, (-1, p_, b)), fft_length=[b])
                y = tf.einsum("bpf,pqf->bqf", spec,
                              tf.signal.rfft(self.structure, fft_length=[b]))
                y = tf.reshape(tf.signal.irfft(y, fft_length=[b]), (-1, q_ * b))
            else:
                y = tf.pad(x, [[0, 0], [0, self.n - self.input_dim]])
                for i in range(self.factors):
                    y = fwht(y, self.n) * self.structure[i]
                    if i < self.factors - 1:
                        y = tf.gather(y, self.perms[i], axis=1)
            y = y[:, :self.units]
            if self.use_bias:
                y = y + self.bias
            return self.activation(y)

        def expanded_kernel(self) -> np.ndarray:
            """K[in, out], computed from the parameters by the definition (not the fast path)."""
            s = self.structure.numpy()
            if self.kind == "circulant":
                return expand_circulant(s, self.input_dim, self.units)
            return expand_hadamard(s, self.perms, self.input_dim, self.units)

        def structured_params(self) -> int:
            return int(self.structure.shape.num_elements()) + (self.units if self.use_bias else 0)

        def get_config(self):
            return {**super().get_config(), "units": self.units, "input_dim": self.input_dim,
                    "kind": self.kind, "block": self.block, "factors": self.factors,
                    "perms": self.perms.tolist() if self.kind == "hadamard" else None,
                    "activation": k.activations.serialize(self.activation),
                    "use_bias": self.use_bias}

    return StructuredDense


# ------------------------------------------------------------------------------------ the step

def _chosen(model, names) -> list:
    """The Dense layers to constrain: `names`, else every Dense but the classifier (the last)."""
    from ..tfutil import keras

    k = keras()
    dense = [l for l in model.layers if type(l) is k.layers.Dense]
    if names is None:
        chosen = dense[:-1]
        if not chosen:
            raise UsageError("structured: the model has no Dense layer besides its classifier; name "
                             "the layers to constrain with `layers: [NAME]`")
    else:
        by_name = {l.name: l for l in model.layers}
        chosen = []
        for n in names:
            if n not in by_name:
                raise UsageError(f"structured: no layer named {n!r} in the model; layers are "
                                 f"{', '.join(by_name)}")
            if type(by_name[n]) is not k.layers.Dense:
                raise UsageError(f"structured: layer {n!r} is a {type(by_name[n]).__name__}; only "
                                 f"Dense layers can be made structured")
            chosen.append(by_name[n])
    for layer in chosen:
        if len(layer.input_shape) != 2:
            raise UsageError(f"structured: layer {layer.name!r} takes input of shape "
                             f"{layer.input_shape}; only Dense layers on flat (batch, features) "
                             f"inputs can be made structured")
    return chosen


def replace_layers(model, make: dict):
    """A copy of `model` whose layer named N is make[N]() (keeping N and its connections); every
    other layer keeps its weights."""
    from ..tfutil import keras

    k = keras()

    def clone(layer):
        if layer.name in make:
            return make[layer.name]()
        return layer.__class__.from_config(layer.get_config())

    new = k.models.clone_model(model, clone_function=clone)
    for layer in new.layers:
        if layer.name not in make and layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return new


def structure(model, layers, kind: str, block: int | None, factors: int, rng):
    """(model with the chosen Dense layers replaced by StructuredDense projections of them,
    per-layer details)."""
    cls = layer_class()
    made, weights, details = {}, {}, []
    for layer in layers:
        kernel = layer.get_weights()[0]
        n_in, n_out = kernel.shape
        if kind == "circulant":
            s, perms = project_circulant(kernel, block), None
            approx = expand_circulant(s, n_in, n_out)
        else:
            s, perms = project_hadamard(kernel, factors, rng)
            approx = expand_hadamard(s, perms, n_in, n_out)
        bias = [layer.get_weights()[1]] if layer.use_bias else []
        n_bias = n_out if layer.use_bias else 0
        weights[layer.name] = [s] + bias
        made[layer.name] = functools.partial(
            cls, units=n_out, input_dim=n_in, kind=kind, block=block, factors=factors, perms=perms,
            activation=layer.get_config()["activation"], use_bias=layer.use_bias, name=layer.name)
        row = {"layer": layer.name, "shape": [int(n_in), int(n_out)], "kind": kind,
               "params_dense": int(kernel.size + n_bias), "params_structured": int(s.size + n_bias),
               "projection_error": relative_error(kernel, approx)}
        row.update({"block": int(s.shape[-1]), "blocks": [int(s.shape[0]), int(s.shape[1])]}
                   if kind == "circulant" else {"n": int(s.shape[1]), "factors": int(factors)})
        details.append(row)
    new = replace_layers(model, made)
    for name, w in weights.items():
        new.get_layer(name).set_weights(w)
    return new, details


def expand(model):
    """A copy with each StructuredDense replaced by a plain Dense holding its expanded matrix."""
    from ..tfutil import keras

    k = keras()
    cls = layer_class()
    found = {l.name: l for l in model.layers if isinstance(l, cls)}
    made = {name: functools.partial(k.layers.Dense, l.units, activation=l.activation,
                                    use_bias=l.use_bias, name=name) for name, l in found.items()}
    new = replace_layers(model, made)
    for name, l in found.items():
        new.get_layer(name).set_weights([l.expanded_kernel()]
                                        + ([l.bias.numpy()] if l.use_bias else []))
    return new


def run(ctx: StepContext, step) -> dict:
    p = step.params
    before = int(ctx.model.count_params())
    layers = _chosen(ctx.model, p["layers"])
    structured, rows = structure(ctx.model, layers, p["kind"], p["block"], p["factors"] or 1,
                                 ctx.rng(12))
    projected = ctx.accuracy(structured)
    ctx.echo(f"  structured ({p['kind']}): "
             + ", ".join(f"{r['layer']} {r['params_dense']}->{r['params_structured']}" for r in rows)
             + f"; accuracy before fine-tuning {projected:.4f}")
    ctx.fit(structured, p["epochs"], p["lr"], p["batch_size"], "structured fine-tune")
    trained_params = int(structured.count_params())
    ctx.model = expand(structured)
    x = ctx.data.x_test[:64]
    gap = float(np.abs(structured.predict(x, verbose=0) - ctx.model.predict(x, verbose=0)).max())
    return {
        "kind": p["kind"], "layers": rows, "accuracy_projected": projected,
        "structured_params_dense": int(sum(r["params_dense"] for r in rows)),
        "structured_params": int(sum(r["params_structured"] for r in rows)),
        "model_params_before": before, "model_params_trained": trained_params,
        "model_params_after": int(ctx.model.count_params()),
        "expansion_max_abs_diff": gap,  # structured model vs the expanded Dense model, 64 test inputs
        "note": DEVICE_NOTE,
    }
