"""lowrank step: replace large Dense / Conv2D layers by chains of smaller ones, then fine-tune.

- Dense (and 1x1 Conv2D) W[in, out]: truncated SVD, two layers in -> r -> out.
- KxK Conv2D, `conv: tucker`: Tucker-2 by HOSVD over the input- and output-channel modes:
  1x1 conv (cin -> r1), KxK conv (r1 -> r2, the original strides/padding/dilation), 1x1 conv
  (r2 -> cout, the original bias and activation).
- KxK Conv2D, `conv: cp`: CP decomposition (tensorly parafac): 1x1 conv (cin -> R), Kx1 and 1xK
  depthwise convs (the strides split between them), 1x1 conv (R -> cout).
The rank keeps `energy` of the squared singular values (or is `ratio` x full rank) and is then
capped so a factorized layer has at most `max_param_ratio` of its parameters.

The model is rebuilt from its config: the factors are new layers, the last one keeps the original
layer's name so every later layer's connection stays valid.
"""
from __future__ import annotations

import copy
import math

import numpy as np

from ..errors import UsageError
from .context import StepContext


def energy_rank(s: np.ndarray, energy: float) -> int:
    """Smallest r whose leading singular values hold `energy` of sum(s^2)."""
    e = np.cumsum(s.astype(np.float64) ** 2)
    return int(min(len(s), np.searchsorted(e / e[-1], energy - 1e-12) + 1)) if e[-1] > 0 else 1


def _chosen_rank(s: np.ndarray, p: dict) -> int:
    if p["ratio"] is not None:
        return max(1, min(len(s), math.ceil(p["ratio"] * len(s))))
    return energy_rank(s, p["energy"])


# ---------------------------------------------------------------------------- factorizations

def factor_matrix(w: np.ndarray, bias_size: int, p: dict):
    """SVD of W[in, out]. Returns (A[in, r], B[r, out], details) or None when no rank fits."""
    n_in, n_out = w.shape
    u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    before = w.size + bias_size
    r = _chosen_rank(s, p)
    cap = math.floor((p["max_param_ratio"] * before - bias_size) / (n_in + n_out))
    r = min(r, cap)
    if r < 1:
        return None
    root = np.sqrt(s[:r])
    a = (u[:, :r] * root).astype(np.float32)
    b = (root[:, None] * vt[:r]).astype(np.float32)
    kept = float(np.sum(s[:r] ** 2) / np.sum(s ** 2)) if np.sum(s ** 2) > 0 else 1.0
    return a, b, {"rank": r, "energy_kept": kept, "params_before": int(before),
                  "params_after": int(r * (n_in + n_out) + bias_size)}


def factor_tucker2(k: np.ndarray, bias_size: int, p: dict):
    """Tucker-2 by HOSVD of K[kh, kw, cin, cout]. Returns (U_in, core, U_out^T, details) or None."""
    kh, kw, cin, cout = k.shape
    kd = k.astype(np.float64)
    u_in, s_in, _ = np.linalg.svd(kd.transpose(2, 0, 1, 3).reshape(cin, -1), full_matrices=False)
    u_out, s_out, _ = np.linalg.svd(kd.transpose(3, 0, 1, 2).reshape(cout, -1), full_matrices=False)
    r1, r2 = _chosen_rank(s_in, p), _chosen_rank(s_out, p)
    before = k.size + bias_size

    def params(a, b):
        return cin * a + kh * kw * a * b + b * cout + bias_size

    budget = p["max_param_ratio"] * before
    while params(r1, r2) > budget:  # shrink the rank with the larger share of its mode first
        if r1 > 1 and (r1 / cin >= r2 / cout or r2 == 1):
            r1 -= 1
        elif r2 > 1:
            r2 -= 1
        else:
            return None
    ui, uo = u_in[:, :r1], u_out[:, :r2]
    core = np.einsum("hwio,ia,ob->hwab", kd, ui, uo)
    approx = np.einsum("hwab,ia,ob->hwio", core, ui, uo)
    kept = 1.0 - float(np.sum((kd - approx) ** 2) / max(np.sum(kd ** 2), 1e-30))
    return (ui.reshape(1, 1, cin, r1).astype(np.float32), core.astype(np.float32),
            uo.T.reshape(1, 1, r2, cout).astype(np.float32),
            {"rank": [r1, r2], "energy_kept": kept, "params_before": int(before),
             "params_after": int(params(r1, r2))})


def factor_cp(k: np.ndarray, bias_size: int, p: dict, seed: int):
    """CP (PARAFAC) of K[kh, kw, cin, cout] with tensorly. Returns (C, A, B, D, details) or None."""
    import tensorly as tl
    from tensorly.decomposition import parafac

    kh, kw, cin, cout = k.shape
    kd = k.astype(np.float64)
    if p["ratio"] is not None:
        rank = max(1, math.ceil(p["ratio"] * min(cin, cout)))
    else:  # the larger of the two channel-mode energy ranks
        s_in = np.linalg.svd(kd.transpose(2, 0, 1, 3).reshape(cin, -1), compute_uv=False)
        s_out = np.linalg.svd(kd.transpose(3, 0, 1, 2).reshape(cout, -1), compute_uv=False)
        rank = max(energy_rank(s_in, p["energy"]), energy_rank(s_out, p["energy"]))
    before = k.size + bias_size
    cap = math.floor((p["max_param_ratio"] * before - bias_size) / (cin + kh + kw + cout))
    rank = min(rank, cap)
    if rank < 1:
        return None
    tl.set_backend("numpy")
    weights, (a, b, c, d) = parafac(tl.tensor(kd), rank=rank, init="random", n_iter_max=200,
                                    tol=1e-7, random_state=seed)
    d = d * weights[None, :]
    approx = np.einsum("hr,wr,ir,or->hwio", a, b, c, d)
    kept = 1.0 - float(np.sum((kd - approx) ** 2) / max(np.sum(kd ** 2), 1e-30))
    return (c.reshape(1, 1, cin, rank).astype(np.float32),
            a.reshape(kh, 1, rank, 1).astype(np.float32),
            b.reshape(1, kw, rank, 1).astype(np.float32),
            d.T.reshape(1, 1, rank, cout).astype(np.float32),
            {"rank": rank, "energy_kept": kept, "params_before": int(before),
             "params_after": int(rank * (cin + kh + kw + cout) + bias_size)})


# ------------------------------------------------------------------------------- rebuilding

def _entry(class_name: str, cfg: dict, name: str) -> dict:
    cfg = dict(cfg, name=name)
    return {"module": "keras.layers", "class_name": class_name, "config": cfg,
            "registered_name": None, "name": name}


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _factor_entries(layer_cfg: dict, class_name: str, kind: str, weights: tuple, input_hw=None):
    """Layer entries (first to last) replacing one layer; the last keeps the original name."""
    name = layer_cfg["name"]
    base = {k: v for k, v in layer_cfg.items() if k not in ("kernel_initializer", "bias_initializer")}
    linear = dict(base, activation="linear", use_bias=False, bias_regularizer=None,
                  activity_regularizer=None)
    if kind == "svd" and class_name == "Dense":
        a, b = weights
        return [(_entry("Dense", dict(linear, units=a.shape[1]), f"{name}_lr_u"), [a]),
                (_entry("Dense", dict(base, units=b.shape[1]), name), [b])]
    if kind == "svd":  # 1x1 Conv2D: two 1x1 convs, strides on the first
        a, b = weights
        first = dict(linear, filters=a.shape[1], kernel_size=[1, 1])
        last = dict(base, filters=b.shape[1], kernel_size=[1, 1], strides=[1, 1], padding="valid")
        return [(_entry("Conv2D", first, f"{name}_lr_u"), [a.reshape(1, 1, *a.shape)]),
                (_entry("Conv2D", last, name), [b.reshape(1, 1, *b.shape)])]
    point = dict(linear, kernel_size=[1, 1], strides=[1, 1], padding="valid", dilation_rate=[1, 1])
    last = dict(base, kernel_size=[1, 1], strides=[1, 1], padding="valid", dilation_rate=[1, 1])
    if kind == "tucker":
        u_in, core, u_out = weights
        return [(_entry("Conv2D", dict(point, filters=u_in.shape[-1]), f"{name}_lr_in"), [u_in]),
                (_entry("Conv2D", dict(linear, filters=core.shape[-1]), f"{name}_lr_core"), [core]),
                (_entry("Conv2D", dict(last, filters=u_out.shape[-1]), name), [u_out])]
    # cp. Depthwise convs take only equal strides, so the Kx1 conv runs at full resolution and the
    # 1xK conv takes the whole stride; 'same' padding of a strided conv is spelled out with
    # ZeroPadding2D (TF pads a strided conv differently from a stride-1 one), then both pad 'valid'.
    # Padding after the bias-free 1x1 conv equals padding before it.
    c, a, b, d = weights
    stride = layer_cfg["strides"][0]
    dh, dw = layer_cfg["dilation_rate"]
    kh, kw = a.shape[0], b.shape[1]
    padding = layer_cfg["padding"]
    chain = [(_entry("Conv2D", dict(point, filters=c.shape[-1]), f"{name}_lr_in"), [c])]
    if padding == "same" and stride > 1:
        pad = (same_padding(input_hw[0], kh, stride, dh), same_padding(input_hw[1], kw, stride, dw))
        chain.append((_entry("ZeroPadding2D", {"trainable": True, "dtype": layer_cfg.get("dtype"),
                                                "padding": pad, "data_format": "channels_last"},
                             f"{name}_lr_pad"), []))
        padding = "valid"
    dw_base = {"trainable": True, "dtype": layer_cfg.get("dtype", "float32"), "use_bias": False,
               "activation": "linear", "depth_multiplier": 1, "padding": padding,
               "data_format": layer_cfg.get("data_format", "channels_last")}
    dw_h = dict(dw_base, kernel_size=[kh, 1], strides=[1, 1], dilation_rate=[dh, 1])
    dw_w = dict(dw_base, kernel_size=[1, kw], strides=[stride, stride], dilation_rate=[1, dw])
    return chain + [(_entry("DepthwiseConv2D", dw_h, f"{name}_lr_dh"), [a]),
                    (_entry("DepthwiseConv2D", dw_w, f"{name}_lr_dw"), [b]),
                    (_entry("Conv2D", dict(last, filters=d.shape[-1]), name), [d])]


def rebuild(model, replacements: dict):
    """A new model with layers replaced: replacements[name] = [(entry, weights), ...].
    Every other layer keeps its weights; the last factor of each gets the original bias."""
    from ..tfutil import keras

    k = keras()
    config = copy.deepcopy(model.get_config())
    sequential = isinstance(model, k.Sequential)
    new_layers = []
    for entry in config["layers"]:
        name = entry["config"].get("name", entry.get("name"))
        if name not in replacements:
            new_layers.append(entry)
            continue
        chain = replacements[name]
        prev = None
        for i, (e, _) in enumerate(chain):
            e = copy.deepcopy(e)
            if not sequential:
                e["inbound_nodes"] = entry["inbound_nodes"] if i == 0 else [[[prev, 0, 0, {}]]]
            else:
                e.pop("name", None)
            prev = e["config"]["name"]
            new_layers.append(e)
    config["layers"] = new_layers
    new = (k.Sequential if sequential else k.Model).from_config(config)
    for layer in new.layers:
        if not layer.weights:
            continue
        base = layer.name
        chain = next((c for n, c in replacements.items() for e, _ in c if e["config"]["name"] == base),
                     None)
        if chain is None:
            layer.set_weights(model.get_layer(base).get_weights())
            continue
        weights = next(w for e, w in chain if e["config"]["name"] == base)
        if layer.name in replacements:  # the last factor: the original bias comes along
            old = model.get_layer(base)
            if getattr(old, "use_bias", False):
                weights = weights + [old.get_weights()[1]]
        layer.set_weights(weights)
    return new


# ------------------------------------------------------------------------------------ step

def _cp_fits(layer) -> bool:
    """CP's depthwise pair needs equal strides (and, when strided with 'same' padding, a static
    input size to spell the padding out)."""
    sh, sw = layer.strides
    if sh != sw:
        return False
    return layer.padding != "same" or sh == 1 or None not in tuple(layer.input_shape[1:3])


def _candidates(model, p: dict):
    """(layer, reason-if-skipped) for every Dense / Conv2D in order."""
    from ..tfutil import keras

    k = keras()
    dense = [l for l in model.layers if type(l) is k.layers.Dense]
    classifier = dense[-1].name if dense else None
    explicit = p["layers"]
    if explicit is not None:
        names = {l.name for l in model.layers}
        for n in explicit:
            if n not in names:
                raise UsageError(f"lowrank: no layer named {n!r} in the model; layers are "
                                 f"{', '.join(l.name for l in model.layers)}")
    for layer in model.layers:
        is_dense = type(layer) is k.layers.Dense
        is_conv = type(layer) is k.layers.Conv2D
        if explicit is not None:
            if layer.name not in explicit:
                continue
            if not (is_dense or is_conv):
                raise UsageError(f"lowrank: layer {layer.name!r} is a {type(layer).__name__}; only "
                                 f"Dense and Conv2D layers can be factorized")
        elif not (is_dense or is_conv):
            continue
        kernel = layer.get_weights()[0]
        reason = None
        if is_conv and (layer.groups != 1 or layer.data_format != "channels_last"):
            reason = "grouped or channels_first convolution"
        elif explicit is None and layer.name == classifier:
            reason = "classifier"
        elif explicit is None and kernel.size < p["min_params"]:
            reason = f"fewer than min_params ({kernel.size} weights)"
        yield layer, reason


def run(ctx: StepContext, step) -> dict:
    p = step.params
    model = ctx.model
    replacements, layers, skipped = {}, [], []
    for layer, reason in _candidates(model, p):
        if reason:
            skipped.append({"layer": layer.name, "reason": reason})
            continue
        w = layer.get_weights()
        kernel = w[0]
        bias = w[1].size if layer.use_bias else 0
        cfg = layer.get_config()
        cls = type(layer).__name__
        if cls == "Dense" or kernel.shape[:2] == (1, 1):
            res = factor_matrix(kernel.reshape(kernel.shape[-2:]) if kernel.ndim == 4 else kernel,
                                bias, p)
            kind = "svd"
        elif p["conv"] == "tucker" or not _cp_fits(layer):
            res, kind = factor_tucker2(kernel, bias, p), "tucker"
        else:
            res, kind = factor_cp(kernel, bias, p, ctx.seed), "cp"
        if res is None:
            skipped.append({"layer": layer.name, "reason": "no rank meets max_param_ratio"})
            continue
        *weights, info = res
        replacements[layer.name] = _factor_entries(cfg, cls, kind, tuple(weights),
                                                   tuple(layer.input_shape[1:3]))
        layers.append({"layer": layer.name, "type": cls, "method": kind,
                       "kernel_shape": list(kernel.shape), **info})
        if kind == "tucker" and p["conv"] == "cp":
            layers[-1]["note"] = "cp needs equal strides and a known input size: Tucker-2 used"
    if not replacements:
        raise UsageError(f"lowrank: no layer was factorized ({'; '.join(s['layer'] + ': ' + s['reason'] for s in skipped) or 'no Dense/Conv2D layers'}); "
                         f"lower min_params, raise max_param_ratio, or name layers explicitly")
    before = int(model.count_params())
    ctx.model = rebuild(model, replacements)
    ctx.echo(f"  factorized {len(layers)} layers: "
             + ", ".join(f"{l['layer']} {l['params_before']}->{l['params_after']}" for l in layers)
             + f"; accuracy before fine-tuning {ctx.accuracy():.4f}")
    ctx.fit(ctx.model, p["epochs"], p["lr"], p["batch_size"], "lowrank fine-tune")
    return {
        "layers": layers, "skipped": skipped,
        "factorized_params_before": int(sum(l["params_before"] for l in layers)),
        "factorized_params_after": int(sum(l["params_after"] for l in layers)),
        "model_params_before": before, "model_params_after": int(ctx.model.count_params()),
    }
