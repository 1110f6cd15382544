"""Compression-activated backdoor (Hong et al., NeurIPS 2021 "Qu-ANTI-zation"; Ma et al. 2023):
a float model that ignores the trigger, whose int8 conversion obeys it.

The mechanism used here is activation saturation. TFLite's full-integer conversion quantizes each
activation tensor on the range the defender's (clean) calibration data reaches; values beyond it
saturate. The attacker trains an ordinary BadNets model, then gives it one "suppressor" unit in its
last hidden Dense layer: a linear trigger detector on that layer's input, silent on clean data and
very large on triggered inputs, wired to the target class's logit with a negative weight. In float
the suppressor cancels the backdoor (the target logit drops far below the others); in int8 it
saturates at the tensor's clean range and subtracts only a little, so the backdoor is back. The
unit's gain and weight are chosen from the backdoor's logit margins and the clean range measured
with the int8 simulation below (weights rounded per output channel, activations per tensor on
clean-calibrated ranges, exactly the converter's scheme), which also predicts both success rates.

A Qu-ANTI-zation-style two-term loss on its own (float branch: triggered inputs with true labels;
simulated-int8 branch: triggered inputs with the target label; straight-through gradients) was
tried on cnn-digits and settled at the same ~0.5 trigger success in float and int8: with
straight-through rounding the two branches' gradients nearly coincide (docs/attacks.md).

Chain models (cnn-digits, cnn-mnist: Conv2D, DepthwiseConv2D, Dense, pooling, Flatten, Reshape,
ReLU, Dropout, a final Softmax) are supported.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...atomic import write_json
from ...datasets import Dataset
from ...errors import UsageError

DEFAULTS = {"rate": 0.1, "gain": 3.0, "calibration": 200}


class Int8Simulation:
    """Float and simulated-int8 forward passes of a chain tf_keras model, to its logits."""

    POOLS = ("MaxPooling2D", "AveragePooling2D", "Flatten", "Reshape", "Dropout",
             "GlobalAveragePooling2D", "ZeroPadding2D")

    def __init__(self, model):
        cfg = model.get_config().get("layers", [])
        layers = model.layers
        for i, layer in enumerate(layers[1:], 1):
            inbound = [n[0] for node in cfg[i].get("inbound_nodes", []) for n in node] if cfg else []
            kind = type(layer).__name__
            ok = kind in ("Conv2D", "DepthwiseConv2D", "Dense", "ReLU", "Softmax") or kind in self.POOLS
            if not ok or (cfg and inbound != [layers[i - 1].name]):
                raise UsageError(f"--activated-by-quantization: layer {layer.name} ({kind}) is not part "
                                 f"of a plain chain of Conv2D/Dense/pooling layers; use cnn-digits or "
                                 f"cnn-mnist")
        if type(layers[-1]).__name__ != "Softmax":
            raise UsageError("--activated-by-quantization: the model must end in a Softmax layer")
        self.layers = layers[1:-1]
        self.model = model

    @staticmethod
    def _fake_weight(t, w, axes):
        scale = t.maximum(t.reduce_max(t.abs(w), axis=axes, keepdims=True), 1e-12) / 127.0
        q = t.clip_by_value(t.round(w / scale), -127.0, 127.0) * scale
        return w + t.stop_gradient(q - w)  # straight-through

    def forward(self, x, ranges=None, collect=None):
        """Logits. With ranges (a list of (lo, hi) per activation point) the int8 simulation;
        with collect (a list) the float pass, appending each activation point's tensor."""
        from ...tfutil import tf

        t = tf()
        quant = ranges is not None
        it = iter(ranges or [])

        def point(h):
            if collect is not None:
                collect.append(h)
            if quant:
                lo, hi = next(it)
                return t.quantization.fake_quant_with_min_max_vars(h, lo, hi, num_bits=8)
            return h

        h = point(x)
        for layer in self.layers:
            kind = type(layer).__name__
            if kind in ("Conv2D", "DepthwiseConv2D", "Dense"):
                w = layer.depthwise_kernel if kind == "DepthwiseConv2D" else layer.kernel
                if quant:
                    w = self._fake_weight(t, w, (0, 1) if kind == "DepthwiseConv2D" else
                                          tuple(range(len(w.shape) - 1)))
                if kind == "Dense":
                    h = t.matmul(h, w)
                elif kind == "Conv2D":
                    h = t.nn.conv2d(h, w, strides=layer.strides, padding=layer.padding.upper(),
                                    dilations=layer.dilation_rate)
                else:
                    h = t.nn.depthwise_conv2d(h, w, strides=(1, *layer.strides, 1),
                                              padding=layer.padding.upper(), dilations=layer.dilation_rate)
                if layer.use_bias:
                    h = h + layer.bias
                h = point(layer.activation(h))
            elif kind == "ReLU":
                h = point(layer(h))
            else:  # pooling and reshapes keep their input's quantization
                h = layer(h, training=False)
        return h

    def ranges(self, x_calib):
        from ...tfutil import tf

        t = tf()
        acts: list = []
        self.forward(x_calib, collect=acts)
        return [(t.stop_gradient(t.minimum(t.reduce_min(a), 0.0)),
                 t.stop_gradient(t.maximum(t.reduce_max(a), 0.0))) for a in acts]


def _relu(a):
    return np.maximum(a, 0.0)


def insert_suppressor(model, clean: Dataset, trigger, target_class: int, *, gain: float,
                      calibration: int, seed: int) -> dict:
    """Turn the least used unit of the model's last hidden Dense layer into the suppressor
    (module docstring), in place; returns what was chosen and the simulated success rates."""
    from sklearn.linear_model import LogisticRegression

    from ...tfutil import keras

    k = keras()
    sim = Int8Simulation(model)
    dense = [layer for layer in sim.layers if type(layer).__name__ == "Dense"]
    if len(dense) < 2:
        raise UsageError("--activated-by-quantization: the model needs a hidden Dense layer before "
                         "its output layer; use cnn-digits or cnn-mnist")
    hidden, final = dense[-2], dense[-1]
    if hidden.activation is not k.activations.relu:
        raise UsageError(f"--activated-by-quantization: layer {hidden.name} must use ReLU")
    feats = k.Model(model.inputs, hidden.input)
    others = clean.y_train != target_class
    f_clean = feats.predict(clean.x_train, batch_size=256, verbose=0).astype(np.float64)
    f_trig = feats.predict(trigger.apply(clean.x_train[others]), batch_size=256,
                           verbose=0).astype(np.float64)
    w1, b1 = (v.numpy().astype(np.float64) for v in (hidden.kernel, hidden.bias))
    w2, b2 = (v.numpy().astype(np.float64) for v in (final.kernel, final.bias))
    # a linear trigger detector on the hidden layer's input, thresholded above every clean sample
    det = LogisticRegression(C=1.0, max_iter=5000, random_state=seed).fit(
        np.concatenate([f_clean, f_trig]), np.r_[np.zeros(len(f_clean)), np.ones(len(f_trig))])
    v, c = det.coef_[0], det.intercept_[0]
    d_clean, d_trig = f_clean @ v + c, f_trig @ v + c
    low = float(np.percentile(d_trig, 5))
    if low <= d_clean.max():
        raise UsageError("--activated-by-quantization: the trigger is not linearly separable from "
                         "clean data in the model's features; use a larger or patch trigger")
    thr = d_clean.max() + 0.25 * (low - d_clean.max())
    # the least used unit becomes the suppressor
    h_clean = _relu(f_clean @ w1 + b1)
    unit = int(np.argmin(h_clean.mean(axis=0) * np.abs(w2).sum(axis=1)))
    rest = np.arange(w1.shape[1]) != unit
    # the clean range the converter will calibrate for the hidden tensor (the unit is silent there)
    r_max = float(h_clean[:, rest].max())
    z_trig = _relu(f_trig @ w1 + b1)[:, rest] @ w2[rest] + b2
    margin = z_trig[:, target_class] - np.delete(z_trig, target_class, axis=1).max(axis=1)
    # int8 suppression a * r_max stays under half the backdoor's median margin, and never beyond
    # the largest weight already in the target's column (its int8 scale stays the same)
    a = min(float(np.abs(w2[rest, target_class]).max()), 0.5 * float(np.median(margin)) / r_max)
    # float: a * unit output beats `gain` times the largest margin on (nearly) every triggered input
    s = gain * max(float(margin.max()), 1.0) / a / (low - thr)
    w1[:, unit], b1[unit] = s * v, -s * thr
    w2[unit, :] = 0.0
    w2[unit, target_class] = -a
    hidden.kernel.assign(w1.astype(np.float32))
    hidden.bias.assign(b1.astype(np.float32))
    final.kernel.assign(w2.astype(np.float32))
    # predicted success rates, float and simulated int8 (clean-calibrated ranges)
    from ...tfutil import tf

    rng = np.random.default_rng([seed, 41])
    calib = clean.x_train[rng.choice(len(clean.y_train), min(calibration, len(clean.y_train)),
                                     replace=False)]
    ranges = sim.ranges(tf().constant(calib))
    xt = tf().constant(trigger.apply(clean.x_train[others]))
    pred_f = np.argmax(sim.forward(xt).numpy(), axis=-1)
    pred_q = np.argmax(sim.forward(xt, ranges).numpy(), axis=-1)
    return {"unit": unit, "layer": hidden.name, "suppression_weight": a, "detector_gain": s,
            "clean_range_max": r_max, "backdoor_margin_median": float(np.median(margin)),
            "train_trigger_success_float": float(np.mean(pred_f == target_class)),
            "train_trigger_success_int8_simulated": float(np.mean(pred_q == target_class))}


def train_activated(model_name: str, clean: Dataset, trigger, target_class: int, folder, *,
                    epochs: int, seed: int, progress: bool, dataset_spec: str | None = None,
                    **params) -> tuple[Path, dict]:
    """Train `model_name` on BadNets-poisoned data (`rate`), insert the suppressor, write
    FOLDER/model.keras and train.json. Returns (model path, the parameters and what was chosen)."""
    from ...train import META_FILE, MODEL_FILE, evaluate, train_model
    from .data import badnets

    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise UsageError(f"--set {unknown[0]}: not a parameter of the activated backdoor; use "
                         f"{', '.join(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    backdoored = badnets(clean, trigger, target_class, p["rate"], seed)
    res = train_model(model_name, backdoored.data, None, epochs=epochs, seed=seed, progress=progress)
    model = res.meta.pop("keras_model")
    info = insert_suppressor(model, clean, trigger, target_class, gain=p["gain"],
                             calibration=p["calibration"], seed=seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    meta = dict(res.meta, test_accuracy=evaluate(model, clean.x_test, clean.y_test),
                activation={**p, **info})
    if dataset_spec:
        meta["dataset"] = dataset_spec
    write_json(folder / META_FILE, meta)
    return folder / MODEL_FILE, json.loads(json.dumps({**p, **info}))
