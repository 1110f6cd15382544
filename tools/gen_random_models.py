#!/usr/bin/env python3
"""Generate random small int8 TFLite models and their TFLM reference outputs (the C runtime's oracle).

    python tools/gen_random_models.py --count 330 --seed 7 --mutants 5 --jobs 2 --out DIR

For model i it writes DIR/model_<i>.tflite (16-byte aligned by TFLM's own aligner, as a device gets it)
and DIR/model_<i>.npz with `inputs` (N x input shape, in the model's input dtype) and `expected` (what
tflite-micro's interpreter outputs for them). DIR/manifest.json describes every model (layers, options,
mutations) so that a mismatch can be reproduced; DIR/rejected/ keeps mutants TFLM refused to prepare.

Converted models are single operators and short chains built with tf_keras and converted full-integer
(TFLITE_BUILTINS_INT8, int8 in/out, or float in/out for QUANTIZE/DEQUANTIZE): random shapes, non-square
kernels/strides/dilations, SAME/VALID padding, grouped convs, channel counts, depth multipliers, fused
activations, biases on and off, scaled (saturating) weights, residual and broadcast adds, pads, pools,
means, softmax, per-tensor and per-channel dense layers. Conversion is the slow part (0.3-2 s per model),
so each converted model also yields `--mutants` cheap variants with the same graph: random weights (often
at the rails), biases, filter scales, activation quantization, fused activations (incl. RELU_N1_TO_1),
MEAN with equal input/output quantization, PAD turned into PADV2, an appended int8->int8 QUANTIZE. Inputs
include the rails (-128, 127) and random values; float inputs include exact half-steps of the grid.
`--jobs` worker processes share the work; TFLM and the aligner run in a forked child per model, so a
native crash skips that model instead of killing the run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

TFLM_ARENA = 8 << 20  # generous: TFLM's Python interpreter can crash on a too-small arena


# ------------------------------------------------------------------------------------------ layers

def _act(rng):
    return rng.choice(["linear", "relu", "relu6", "linear"])


def _activation_layer(keras, name):
    # relu6 as ReLU(max_value=6) so that the converter fuses it into the previous op.
    if name == "relu6":
        return keras.layers.ReLU(max_value=6.0)
    if name == "relu":
        return keras.layers.ReLU()
    return None


def _window(rng, h, w, kmax, dil_choices, stride_choices):
    """Kernel, dilation and stride per axis (often non-square, to catch height/width mix-ups)."""
    k = [int(rng.integers(1, min(kmax, max(h, w)) + 1)) for _ in range(2)]
    if rng.random() < 0.6:
        k[1] = k[0]
    dil = [int(rng.choice(dil_choices)) if kk > 1 else 1 for kk in k]
    if max(dil) > 1:
        stride = [1, 1]  # Keras: no stride > 1 together with dilation > 1
    else:
        stride = [int(rng.choice(stride_choices)) for _ in range(2)]
        if rng.random() < 0.6:
            stride[1] = stride[0]
    padding = str(rng.choice(["same", "valid"]))
    if padding == "valid" and ((k[0] - 1) * dil[0] + 1 > h or (k[1] - 1) * dil[1] + 1 > w):
        padding = "same"
    return tuple(k), tuple(dil), tuple(stride), padding


def _conv(keras, rng, shape, desc):
    h, w, c = shape
    k, dil, stride, padding = _window(rng, h, w, 4, [1, 1, 1, 2], [1, 1, 2, 3])
    filters = int(rng.integers(1, 9))
    groups = 1
    if c > 1 and rng.random() < 0.15:  # grouped convolution
        groups = int(rng.choice([g for g in range(2, c + 1) if c % g == 0]))
        filters = groups * int(rng.integers(1, 4))
    act = _act(rng)
    use_bias = bool(rng.random() < 0.8)
    layer = keras.layers.Conv2D(filters, k, strides=stride, padding=padding, dilation_rate=dil, use_bias=use_bias,
                                groups=groups, activation="relu" if act == "relu" else None)
    desc.append(dict(op="conv", k=k, stride=stride, dil=dil, padding=padding, filters=filters, groups=groups,
                     act=act, bias=use_bias))
    return layer, act if act == "relu6" else None


def _dwconv(keras, rng, shape, desc):
    h, w, c = shape
    k, dil, stride, padding = _window(rng, h, w, 4, [1, 1, 2], [1, 1, 2])
    dm = int(rng.choice([1, 1, 2, 3]))
    act = _act(rng)
    use_bias = bool(rng.random() < 0.8)
    layer = keras.layers.DepthwiseConv2D(k, strides=stride, padding=padding, depth_multiplier=dm, dilation_rate=dil,
                                         use_bias=use_bias, activation="relu" if act == "relu" else None)
    desc.append(dict(op="dwconv", k=k, stride=stride, dil=dil, padding=padding, dm=dm, act=act, bias=use_bias))
    return layer, act if act == "relu6" else None


def _pool(keras, rng, shape, desc):
    h, w, c = shape
    p, _, stride, padding = _window(rng, h, w, 3, [1], [1, 2, 3])
    kind = str(rng.choice(["max", "avg"]))
    cls = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
    desc.append(dict(op=kind + "pool", pool=p, stride=stride, padding=padding))
    return cls(p, strides=stride, padding=padding), None


def _scale_weights(model, rng, desc):
    """Multiply weights by random factors: large ones saturate accumulators and outputs."""
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        f = float(10 ** rng.uniform(-1.5, 1.5))
        bias_f = float(10 ** rng.uniform(-1, 1.5))
        layer.set_weights([w * (f if w.ndim > 1 else bias_f) for w in ws])
        desc.append(dict(op="scale_weights", layer=layer.name, factor=round(f, 4)))


# ------------------------------------------------------------------------------------------ models

def build_model(keras, tf, rng):
    """A random small model: returns (keras model, description list, input float range)."""
    global tu_tf
    tu_tf = tf
    desc = []
    kind = str(rng.choice(["conv", "dwconv", "dense", "pool", "add", "pad", "mean", "softmax", "chain", "chain",
                           "chain", "chain"]))
    h, w, c = int(rng.integers(1, 11)), int(rng.integers(1, 11)), int(rng.integers(1, 7))
    inp = keras.layers.Input((h, w, c), batch_size=1)
    x = inp
    shape = (h, w, c)
    desc.append(dict(op="input", shape=[h, w, c], kind=kind))

    def apply(layer_fn):
        nonlocal x, shape
        layer, post = layer_fn(keras, rng, shape, desc)
        x = layer(x)
        if post:
            x = _activation_layer(keras, post)(x)
        shape = tuple(int(d) for d in x.shape[1:])

    def dense_head(softmax=False):
        nonlocal x, shape
        keep = bool(rng.random() < 0.25) and not softmax
        if keep:
            units = int(rng.integers(1, 9))
            act = _act(rng)
            x = keras.layers.Dense(units, activation="relu" if act == "relu" else None,
                                   use_bias=bool(rng.random() < 0.8))(x)  # rank-4 input: keep_num_dims
            if act == "relu6":
                x = _activation_layer(keras, "relu6")(x)
            desc.append(dict(op="dense_keepdims", units=units, act=act))
        else:
            x = keras.layers.Flatten()(x)
            units = int(rng.integers(1, 12))
            act = "linear" if softmax else _act(rng)
            x = keras.layers.Dense(units, activation="relu" if act == "relu" else None,
                                   use_bias=bool(rng.random() < 0.8))(x)
            if act == "relu6":
                x = _activation_layer(keras, "relu6")(x)
            desc.append(dict(op="dense", units=units, act=act))
            if softmax:
                beta = float(rng.choice([1.0, 1.0, 0.5, 2.0]))
                if beta != 1.0:
                    x = keras.layers.Lambda(lambda t, b=beta: t * b)(x)
                x = keras.layers.Softmax()(x)
                desc.append(dict(op="softmax", beta=beta))
        shape = tuple(int(d) for d in x.shape[1:])

    def residual():
        nonlocal x, shape
        y = keras.layers.Conv2D(shape[-1], int(rng.choice([1, 3])), padding="same")(x)
        if rng.random() < 0.5:
            y = keras.layers.ReLU()(y)
        x = keras.layers.Add()([x, y])
        if rng.random() < 0.4:
            x = keras.layers.ReLU()(x)
        desc.append(dict(op="residual_add"))

    def broadcast_add():
        nonlocal x
        const = rng.normal(0, float(rng.choice([0.1, 1.0, 5.0])), size=(1, 1, 1, shape[-1])).astype(np.float32)
        x = keras.layers.Lambda(lambda t, k=const: t + k)(x)
        desc.append(dict(op="broadcast_add"))

    def pad():
        nonlocal x, shape
        p = ((int(rng.integers(0, 3)), int(rng.integers(0, 3))), (int(rng.integers(0, 3)), int(rng.integers(0, 3))))
        if sum(map(sum, p)) == 0:
            p = ((1, 0), (0, 1))
        x = keras.layers.ZeroPadding2D(p)(x)
        shape = tuple(int(d) for d in x.shape[1:])
        desc.append(dict(op="pad", pads=p))

    def mean(keepdims=None):
        nonlocal x, shape
        keepdims = bool(rng.random() < 0.5) if keepdims is None else keepdims
        x = keras.layers.GlobalAveragePooling2D(keepdims=keepdims)(x)
        shape = tuple(int(d) for d in x.shape[1:])
        desc.append(dict(op="mean", keepdims=keepdims))

    if kind == "conv":
        apply(_conv)
    elif kind == "dwconv":
        apply(_dwconv)
    elif kind == "pool":
        apply(_pool)
    elif kind == "dense":
        dense_head()
    elif kind == "softmax":
        dense_head(softmax=True)
    elif kind == "add":
        if rng.random() < 0.6:
            residual()
        else:
            broadcast_add()
    elif kind == "pad":
        pad()
        if rng.random() < 0.5:
            apply(_conv)
    elif kind == "mean":
        if rng.random() < 0.5:
            apply(_conv)
        mean()
    else:  # chain of 2-5 steps
        for _ in range(int(rng.integers(2, 6))):
            if len(shape) != 3:
                break
            step = str(rng.choice(["conv", "dwconv", "pool", "pad", "residual", "badd", "conv"]))
            if step == "conv":
                apply(_conv)
            elif step == "dwconv":
                apply(_dwconv)
            elif step == "pool":
                apply(_pool)
            elif step == "pad":
                pad()
            elif step == "residual":
                residual()
            else:
                broadcast_add()
        if len(shape) == 3:
            tail = str(rng.choice(["none", "mean", "dense", "softmax", "mean_dense", "softmax4d", "mean_channels"]))
            if tail == "mean":
                mean()
            elif tail == "softmax4d":  # softmax over the channels of a feature map
                x = keras.layers.Softmax()(x)
                desc.append(dict(op="softmax", beta=1.0, rank=4))
            elif tail == "mean_channels":  # MEAN over the last axis, keep_dims
                x = keras.layers.Lambda(lambda t: tu_tf.reduce_mean(t, axis=-1, keepdims=True))(x)
                desc.append(dict(op="mean", axis=-1))
            elif tail == "dense":
                dense_head()
            elif tail == "softmax":
                dense_head(softmax=True)
            elif tail == "mean_dense":
                mean(keepdims=False)
                x = keras.layers.Dense(int(rng.integers(2, 10)))(x)
                desc.append(dict(op="dense"))
                if rng.random() < 0.5:
                    x = keras.layers.Softmax()(x)
                    desc.append(dict(op="softmax", beta=1.0))
    model = keras.Model(inp, x)
    _scale_weights(model, rng, desc)
    lo = float(rng.choice([-1.0, 0.0, -5.0, -0.1]))
    hi = float(rng.choice([1.0, 6.0, 0.1, 3.0]))
    return model, desc, (lo, hi)


# ------------------------------------------------------------------------------------------ the newer operators

def build_ops_model(keras, tf, rng, turn=0):
    """A random small model built around the operators added after the first twelve (family "ops"):
    RELU, RELU6, LEAKY_RELU, CONCATENATION (up to 5 inputs, any axis), MUL, SUB, MAXIMUM, MINIMUM (same
    shape and broadcast), LOGISTIC, TANH, HARD_SWISH, PADV2, STRIDED_SLICE, SPACE_TO_BATCH_ND /
    BATCH_TO_SPACE_ND, ARG_MAX and TRANSPOSE_CONV, in chains of three to six steps, often after a
    convolution so that activations carry non-trivial quantization. `turn` rotates the steps every
    model must have."""
    global tu_tf
    tu_tf = tf
    L = keras.layers
    desc = []
    h, w, c = int(rng.integers(2, 9)), int(rng.integers(2, 9)), int(rng.integers(1, 5))
    # A fixed batch size: without one the converter lowers a dilated convolution to SPACE_TO_BATCH_ND,
    # CONV_2D, BATCH_TO_SPACE_ND whose stored shapes keep batch 1 where the data has block x block
    # batches; TFLM then writes past those tensors (the C runtime refuses such a model).
    # Three steps in turn (so that every operator gets its share of the few conversions) plus up to three
    # drawn ones. RELU and RELU6 go first, on the model input: after a convolution, MUL or SUB the
    # converter fuses them; they are never drawn together.
    steps = ["relu", "concat", "mul", "sub", "maximum", "minimum", "sigmoid", "relu6", "tanh", "hard_swish",
             "padv2", "strided_slice", "space_batch", "tconv", "se", "leaky"]
    chosen = [steps[(3 * turn + j) % len(steps)] for j in range(3)]
    extra = [str(st) for st in rng.choice(steps, size=int(rng.integers(0, 4)), replace=False)]
    chosen += [st for st in extra if st not in chosen]
    first = ([st for st in chosen[:3] if st in ("relu", "relu6")] or [st for st in chosen if st in ("relu", "relu6")])[:1]
    chosen = first + [st for st in chosen if st not in ("relu", "relu6")]
    inp = L.Input((h, w, c), batch_size=1)
    desc.append(dict(op="input", shape=[h, w, c], kind="ops"))
    x = inp

    def shape_of(t):
        return tuple(int(d) for d in t.shape[1:])

    def conv(t, filters=None, k=None):
        filters = filters or int(rng.integers(1, 6))
        k = k or int(rng.choice([1, 3]))
        return L.Conv2D(filters, k, padding="same")(t)

    def const_like(t, full):
        shp = (1,) + (shape_of(t) if full else (1, 1, shape_of(t)[-1]))
        return rng.normal(0, float(rng.choice([0.3, 1.0, 3.0])), size=shp).astype(np.float32)

    for step in chosen:
        if step not in ("relu", "relu6") and rng.random() < 0.4:  # a convolution first: its own quantization
            x = conv(x)
        shp = shape_of(x)
        if step == "relu":
            x = L.ReLU()(x)
        elif step == "relu6":
            x = L.ReLU(max_value=6.0)(x)
        elif step == "leaky":
            alpha = float(rng.choice([0.01, 0.1, 0.2, 0.3, 0.5]))
            x = L.LeakyReLU(alpha)(x)
            desc.append(dict(op="leaky_relu", alpha=alpha))
            continue
        elif step == "concat":
            axis = int(rng.choice([-1, -1, 1, 2]))
            n = int(rng.integers(2, 6))
            same = shp[-1] if axis != -1 else None
            branches = [x] + [conv(x, filters=same) for _ in range(n - 1)]
            rng.shuffle(branches)
            x = L.Concatenate(axis=axis)(branches)
            desc.append(dict(op="concat", axis=axis, inputs=n))
            continue
        elif step in ("mul", "sub", "maximum", "minimum"):
            kind = str(rng.choice(["tensor", "const", "broadcast"]))
            fn = {"mul": lambda a, b: a * b, "sub": lambda a, b: a - b,
                  "maximum": lambda a, b: tu_tf.maximum(a, b), "minimum": lambda a, b: tu_tf.minimum(a, b)}[step]
            if kind == "tensor":
                layer = {"mul": L.Multiply, "sub": L.Subtract, "maximum": L.Maximum, "minimum": L.Minimum}[step]
                x = layer()([x, conv(x, filters=shp[-1])])
            else:
                k = const_like(x, kind == "const")
                first = bool(rng.random() < 0.5)
                x = L.Lambda(lambda t, k=k, f=fn, first=first: f(t, k) if first else f(k, t))(x)
            desc.append(dict(op=step, kind=kind))
            continue
        elif step == "sigmoid":
            x = L.Activation("sigmoid")(x)
        elif step == "tanh":
            x = L.Activation("tanh")(x)
        elif step == "hard_swish":
            x = L.Lambda(lambda t: t * tu_tf.nn.relu6(t + 3.0) * (1.0 / 6.0))(x)
        elif step == "padv2":
            pads = [[0, 0], [int(rng.integers(0, 3)), int(rng.integers(0, 3))],
                    [int(rng.integers(0, 3)), int(rng.integers(0, 3))], [0, int(rng.integers(0, 2))]]
            value = float(rng.choice([0.5, -1.0, 2.0, 0.25]))
            x = L.Lambda(lambda t, p=pads, v=value: tu_tf.pad(t, p, constant_values=v))(x)
            desc.append(dict(op="padv2", pads=pads, value=value))
            continue
        elif step == "strided_slice":
            sl = []
            for d in shp:
                b = int(rng.integers(0, d))
                e = int(rng.integers(b + 1, d + 1))
                st = int(rng.choice([1, 1, 2, 3]))
                if rng.random() < 0.2:
                    b, e, st = e - 1, (b - 1 if b > 0 else None), -st  # backwards
                sl.append((b, e, st))
            shrink = bool(rng.random() < 0.2) and shp[0] > 0
            x = L.Lambda(lambda t, sl=sl, shrink=shrink: t[(slice(None),) + ((sl[0][0],) if shrink else
                                                                             (slice(*sl[0]),))
                                                        + tuple(slice(*q) for q in sl[1:])])(x)
            desc.append(dict(op="strided_slice", slices=sl, shrink=shrink))
            if shrink:  # back to rank 4 for the next step
                x = L.Reshape((1,) + shape_of(x))(x)
            continue
        elif step == "space_batch":
            # Unpadded SPACE_TO_BATCH_ND only (blocks that divide the size): TFLM pads with an offset it
            # never initialises (see ops/space_to_batch_nd.c). BATCH_TO_SPACE_ND crops are exact.
            bh = int(rng.choice([b for b in (1, 2, 3) if shp[0] % b == 0]))
            bw = int(rng.choice([b for b in (1, 2, 3) if shp[1] % b == 0]))
            crops = [[int(rng.integers(0, 2)), 0], [0, int(rng.integers(0, 2))]]
            crops = [[min(c0, shp[i] - 1), c1 if shp[i] - c0 - c1 >= 1 else 0] for i, (c0, c1) in enumerate(crops)]
            mid = str(rng.choice(["relu", "scale", "none"]))

            def stb(t, b=(bh, bw), crops=crops, mid=mid):
                y = tu_tf.space_to_batch_nd(t, b, [[0, 0], [0, 0]])
                y = tu_tf.nn.relu(y) if mid == "relu" else (y * 1.5 - 0.25 if mid == "scale" else y)
                return tu_tf.batch_to_space(y, b, crops)

            x = L.Lambda(stb)(x)
            desc.append(dict(op="space_batch", block=[bh, bw], crops=crops, mid=mid))
            continue
        elif step == "tconv":
            k = int(rng.integers(1, 4))
            stride = int(rng.choice([1, 2, 2, 3]))
            padding = str(rng.choice(["same", "valid"]))
            act = _act(rng)
            x = L.Conv2DTranspose(int(rng.integers(1, 5)), k, strides=stride, padding=padding,
                                  use_bias=bool(rng.random() < 0.7),
                                  activation="relu" if act == "relu" else None)(x)
            if act == "relu6":
                x = L.ReLU(max_value=6.0)(x)
            desc.append(dict(op="tconv", k=k, stride=stride, padding=padding, act=act))
            continue
        else:  # squeeze-and-excitation: MEAN, FULLY_CONNECTED, LOGISTIC or HARD_SWISH, broadcast MUL
            s_ = L.GlobalAveragePooling2D(keepdims=True)(x)
            s_ = L.Dense(shp[-1])(s_)
            s_ = L.Activation("sigmoid")(s_) if rng.random() < 0.6 else L.Lambda(
                lambda t: t * tu_tf.nn.relu6(t + 3.0) * (1.0 / 6.0))(s_)
            x = L.Multiply()([x, s_])
        desc.append(dict(op=step))
    if rng.random() < 0.3:
        x = L.Lambda(lambda t: tu_tf.argmax(t, axis=-1, output_type=tu_tf.int32))(x)
        desc.append(dict(op="argmax"))
    model = keras.Model(inp, x)
    _scale_weights(model, rng, desc)
    lo = float(rng.choice([-1.0, 0.0, -5.0, -0.1]))
    hi = float(rng.choice([1.0, 6.0, 0.1, 3.0]))
    return model, desc, (lo, hi)


def builtin_names(tfl: bytes) -> list[str]:
    """The operators of a .tflite, in order, by builtin name."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(bytearray(tfl), 0)
    codes = [max(oc.deprecatedBuiltinCode, oc.builtinCode) for oc in model.operatorCodes]
    return [names.get(codes[op.opcodeIndex], str(codes[op.opcodeIndex])) for op in model.subgraphs[0].operators]


def convert(tf, model, rng, rep_range, float_io, per_channel_dense):
    lo, hi = rep_range
    shape = (1,) + tuple(int(d) for d in model.inputs[0].shape[1:])
    rep = [rng.uniform(lo, hi, size=shape).astype(np.float32) for _ in range(8)]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([r] for r in rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.float32 if float_io else tf.int8
    conv.inference_output_type = tf.float32 if float_io else tf.int8
    if hasattr(conv, "_experimental_disable_per_channel_quantization_for_dense_layers"):
        conv._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel_dense
    return conv.convert()


def align16(model_bytes: bytes, tmpdir: Path) -> bytes:
    """Re-pack with TFLM's own aligner (16-byte aligned buffers), as the device gets it."""
    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper as aligner

    src, dst = tmpdir / "in.tflite", tmpdir / "out.tflite"
    src.write_bytes(model_bytes)
    aligner.align_tflite_model(str(src), str(dst))
    return dst.read_bytes()


def make_inputs(rng, details, n_random=4):
    shape = tuple(details["shape"])
    dtype = details["dtype"]
    if dtype == np.int8:
        xs = [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]
        xs.append(rng.choice(np.array([-128, 127], np.int8), size=shape))
        xs += [rng.integers(-128, 128, size=shape).astype(np.int8) for _ in range(n_random)]
        return np.stack(xs)
    q = details["quantization_parameters"]
    scale = float(q["scales"][0]) if len(q["scales"]) else 1.0
    zp = int(q["zero_points"][0]) if len(q["zero_points"]) else 0
    grid = (rng.integers(-140, 140, size=shape) - zp).astype(np.float32)
    xs = [(grid + 0.5).astype(np.float32) * np.float32(scale),      # exact ties of the rounding
          (grid - 0.5).astype(np.float32) * np.float32(scale),
          np.full(shape, 1e6, np.float32), np.full(shape, -1e6, np.float32)]
    xs += [rng.normal(0, 3, size=shape).astype(np.float32) for _ in range(n_random)]
    return np.stack(xs)


def tflm_outputs(model_bytes, inputs):
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=TFLM_ARENA)
    outs = []
    for x in inputs:
        interp.set_input(x[None] if x.shape != tuple(interp.get_input_details(0)["shape"]) else x, 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)))
    return np.stack(outs)


# ------------------------------------------------------------------------------------------ mutants

# TFLite builtin codes used below.
_CONV, _DW, _FC, _ADD, _MEAN, _SOFTMAX, _DEQUANTIZE, _PAD, _PADV2 = 3, 4, 9, 0, 40, 25, 6, 34, 60
_MUL, _SUB, _MAXIMUM, _MINIMUM, _LOGISTIC, _TANH, _HARD_SWISH, _RELU, _RELU6, _LEAKY_RELU, _ARG_MAX, _TCONV = (
    18, 41, 55, 57, 14, 28, 117, 19, 21, 98, 56, 67)
# Consumers that accept any input quantization (no equality or bias-scale check on their input).
_FREE_CONSUMERS = {_CONV, _DW, _ADD, _MEAN, _SOFTMAX, _DEQUANTIZE, _MUL, _SUB, _MAXIMUM, _MINIMUM, _LOGISTIC, _TANH,
                   _HARD_SWISH, _RELU, _RELU6, _LEAKY_RELU, _ARG_MAX, _TCONV}
# Producers whose output quantization is free (they requantize into it).
_FREE_PRODUCERS = {_CONV, _DW, _ADD, _MUL, _SUB, _RELU, _LEAKY_RELU, _TCONV}


def mutate(tfl: bytes, rng) -> tuple[bytes, list]:
    """A numerically different model with the same graph: random weights (often at the rails), biases,
    filter scales and activation quantization. Cheap (milliseconds), so most test models are mutants of
    a smaller number of converted ones; both runtimes run the very same mutated bytes."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(tfl), 0)
    sg = model.subgraphs[0]
    codes = [max(oc.deprecatedBuiltinCode, oc.builtinCode) for oc in model.operatorCodes]
    notes = []
    consumers: dict[int, set] = {}
    for op in sg.operators:
        for t in op.inputs:
            consumers.setdefault(int(t), set()).add(codes[op.opcodeIndex])
    users: dict[int, int] = {}
    for t in sg.tensors:
        users[t.buffer] = users.get(t.buffer, 0) + 1

    def own_buffer(t):
        """t's buffer, copied first if other tensors share it: the converter stores identical constants
        once (a zero bias and zero crops), and rewriting one must not rewrite the other."""
        if t.buffer and users.get(t.buffer, 0) > 1:
            users[t.buffer] -= 1
            copy = schema.BufferT()
            old = model.buffers[t.buffer].data
            copy.data = None if old is None else np.array(old, np.uint8).copy()
            model.buffers.append(copy)
            t.buffer = len(model.buffers) - 1
            users[t.buffer] = 1
        return model.buffers[t.buffer]

    for op in sg.operators:
        code = codes[op.opcodeIndex]
        if code not in (_CONV, _DW, _FC, _TCONV):
            continue
        f = sg.tensors[op.inputs[1]]
        buf = own_buffer(f)
        if buf.data is None or len(buf.data) == 0:
            continue
        n = len(buf.data)
        mode = str(rng.choice(["rails", "uniform", "sparse", "keep"]))
        if mode == "rails":
            w = rng.choice(np.array([-127, 127, -128, 0, 1, -1], np.int8), size=n)
        elif mode == "uniform":
            w = rng.integers(-128, 128, size=n).astype(np.int8)
        elif mode == "sparse":
            w = np.where(rng.random(n) < 0.8, 0, rng.integers(-128, 128, size=n)).astype(np.int8)
        else:
            w = np.frombuffer(bytes(bytearray(buf.data)), np.int8)
        buf.data = w.view(np.uint8).copy()
        if code != _FC and f.quantization is not None and f.quantization.scale is not None:
            sc = np.asarray(f.quantization.scale, np.float32)
            f.quantization.scale = (sc * (10 ** rng.uniform(-1, 1, size=sc.shape))).astype(np.float32).tolist()
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = sg.tensors[op.inputs[2]]
            bb = own_buffer(b)
            if bb.data is not None and len(bb.data):
                lim = int(2 ** rng.integers(4, 24))
                bias = rng.integers(-lim, lim, size=len(bb.data) // 4).astype("<i4")
                bb.data = bias.view(np.uint8).copy()
        notes.append(dict(op=int(code), weights=mode))
    # Activation quantization of tensors whose every consumer accepts any quantization.
    produced_by = {int(op.outputs[0]): codes[op.opcodeIndex] for op in sg.operators}
    outputs = {int(t) for t in sg.outputs}
    for ti, t in enumerate(sg.tensors):
        if produced_by.get(ti) not in _FREE_PRODUCERS or t.type != 9 or t.quantization is None:
            continue
        if not consumers.get(ti, set()) <= _FREE_CONSUMERS or (not consumers.get(ti) and ti not in outputs):
            continue
        if rng.random() < 0.5:
            sc = np.asarray(t.quantization.scale, np.float32) * np.float32(10 ** rng.uniform(-0.7, 0.7))
            t.quantization.scale = sc.astype(np.float32).tolist()
            if rng.random() < 0.5:
                t.quantization.zeroPoint = [int(rng.integers(-128, 128))]
            notes.append(dict(tensor=ti, requant=True))
    # MEAN with identical input and output quantization (TFLM then averages raw values) and PAD turned
    # into PADV2 with a random constant: paths the converter rarely emits.
    for op in list(sg.operators):
        code = codes[op.opcodeIndex]
        if code == _MEAN and rng.random() < 0.5:
            src, dst = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
            if consumers.get(int(op.outputs[0]), set()) <= _FREE_CONSUMERS:
                dst.quantization.scale = list(src.quantization.scale)
                dst.quantization.zeroPoint = list(src.quantization.zeroPoint)
                notes.append(dict(op=code, same_quantization=True))
        elif code == _PAD and rng.random() < 0.5:
            outq = sg.tensors[op.outputs[0]].quantization
            cbuf = schema.BufferT()
            cbuf.data = np.array([int(rng.integers(-128, 128))], np.int8).view(np.uint8)
            model.buffers.append(cbuf)
            ct = schema.TensorT()
            ct.shape, ct.type, ct.buffer, ct.name = [], 9, len(model.buffers) - 1, b"pad_value"
            cq = schema.QuantizationParametersT()
            cq.scale, cq.zeroPoint = list(outq.scale), list(outq.zeroPoint)
            ct.quantization = cq
            sg.tensors.append(ct)
            oc = schema.OperatorCodeT()
            oc.builtinCode = oc.deprecatedBuiltinCode = _PADV2
            oc.version = 1
            model.operatorCodes.append(oc)
            op.opcodeIndex = len(model.operatorCodes) - 1
            op.inputs = list(op.inputs[:2]) + [len(sg.tensors) - 1]
            op.builtinOptionsType, op.builtinOptions = 0, None
            notes.append(dict(op=code, to_padv2=True))
    # Fused activations the Keras layers never produce (RELU_N1_TO_1), on any op that has the field.
    for op in sg.operators:
        o = op.builtinOptions
        if o is not None and hasattr(o, "fusedActivationFunction") and rng.random() < 0.3:
            o.fusedActivationFunction = int(rng.integers(0, 4))
            notes.append(dict(op=int(codes[op.opcodeIndex]), activation=o.fusedActivationFunction))
    # An int8 -> int8 QUANTIZE (requantization) appended at the output: converters emit it rarely.
    out_t = sg.tensors[sg.outputs[0]]
    if out_t.type == 9 and rng.random() < 0.35:
        new_t = schema.TensorT()
        new_t.shape = list(out_t.shape)
        new_t.type = 9
        new_t.buffer = 0
        new_t.name = b"requantized_output"
        q = schema.QuantizationParametersT()
        q.scale = [float(np.float32(out_t.quantization.scale[0] * 10 ** rng.uniform(-1, 1)))]
        q.zeroPoint = [int(rng.integers(-128, 128))]
        new_t.quantization = q
        sg.tensors.append(new_t)
        oc = schema.OperatorCodeT()
        oc.builtinCode = 114
        oc.deprecatedBuiltinCode = 114
        oc.version = 1
        model.operatorCodes.append(oc)
        qop = schema.OperatorT()
        qop.opcodeIndex = len(model.operatorCodes) - 1
        qop.inputs = [int(sg.outputs[0])]
        qop.outputs = [len(sg.tensors) - 1]
        sg.operators.append(qop)
        sg.outputs = [len(sg.tensors) - 1]
        notes.append(dict(appended="requantize"))
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), notes


def generate(count, seed, out: Path, mutants: int, worker: int = 0, jobs: int = 1, family: str = "base"):
    """Models worker, worker + jobs, ... of `count` (so that jobs processes can share the work)."""
    import edgeattack.tfutil as tu
    from tflite_micro.python.tflite_micro import runtime

    tf, keras = tu.tf(), tu.keras()
    tf.get_logger().setLevel("ERROR")
    rng = np.random.default_rng([seed, worker])
    tf.random.set_seed(seed * 1000 + worker)
    tmp = out / f".align{worker}"
    tmp.mkdir(parents=True, exist_ok=True)
    entries, failures = [], 0
    mine = list(range(worker, count, jobs))
    k = conversions = 0
    while k < len(mine):
        if family == "ops":
            model, desc, rep_range = build_ops_model(keras, tf, rng, turn=5 * worker + conversions)
        else:
            model, desc, rep_range = build_model(keras, tf, rng)
        conversions += 1
        float_io = bool(rng.random() < 0.12)
        per_channel_dense = bool(rng.random() < 0.3)
        try:
            base = convert(tf, model, rng, rep_range, float_io, per_channel_dense)
        except Exception as e:  # a random architecture the converter rejects: draw another
            failures += 1
            print(f"skip (converter): {type(e).__name__}: {str(e)[:120]}", file=sys.stderr)
            continue
        keras.backend.clear_session()
        for v in range(mutants + 1):
            if k >= len(mine):
                break
            tfl, notes = (base, []) if v == 0 else mutate(base, rng)
            name = f"model_{mine[k]:04d}"
            # Aligner and TFLM are native code that can crash on odd models: run them in a forked child,
            # so that a crash skips one model instead of killing the generator.
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    aligned = align16(tfl, tmp)
                    details = runtime.Interpreter.from_bytes(aligned, arena_size=TFLM_ARENA).get_input_details(0)
                    inputs = make_inputs(np.random.default_rng([seed, mine[k]]), details)
                    expected = tflm_outputs(aligned, inputs)
                    (out / f"{name}.tflite").write_bytes(aligned)
                    np.savez(out / f"{name}.npz", inputs=inputs, expected=expected)
                    code = 0
                except BaseException as e:
                    print(f"{name}: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
                    # Kept: a model TFLM refuses should be refused by the C runtime too.
                    (out / "rejected").mkdir(exist_ok=True)
                    (out / "rejected" / f"{name}_{v}.tflite").write_bytes(tfl)
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            if status != 0:
                failures += 1
                print(f"skip ({name}: TFLM or the aligner failed, wait status {status})", file=sys.stderr)
                continue
            entries.append(dict(name=name, float_io=float_io, per_channel_dense=per_channel_dense, layers=desc,
                                mutant=v, mutations=notes, builtins=builtin_names(tfl)))
            k += 1
    return entries, failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=320, help="models to write")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mutants", type=int, default=2, help="mutated variants per converted model")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (each imports TensorFlow)")
    ap.add_argument("--family", choices=("base", "ops"), default="base",
                    help="base: the first twelve operators' model mix; ops: models built around the newer ones")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.worker is not None:  # one share of the work, its entries in a partial manifest
        entries, failures = generate(args.count, args.seed, out, args.mutants, args.worker, args.jobs, args.family)
        (out / f".part{args.worker}.json").write_text(json.dumps(dict(models=entries, failures=failures)))
        return
    t0 = time.time()
    import ctypes
    import signal
    import subprocess

    def deathsig():
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # workers die with this process

    procs = [subprocess.Popen([sys.executable, __file__, "--count", str(args.count), "--seed", str(args.seed),
                               "--mutants", str(args.mutants), "--jobs", str(args.jobs), "--worker", str(w),
                               "--family", args.family,
                               "--out", str(out)], preexec_fn=deathsig) for w in range(args.jobs)]
    try:
        codes = [p.wait() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(codes):
        sys.exit(f"gen_random_models: a worker failed (exit codes {codes})")
    parts = [json.loads((out / f".part{w}.json").read_text()) for w in range(args.jobs)]
    entries = sorted((e for p in parts for e in p["models"]), key=lambda e: e["name"])
    failures = sum(p["failures"] for p in parts)
    (out / "manifest.json").write_text(json.dumps(dict(seed=args.seed, count=args.count, mutants=args.mutants,
                                                       jobs=args.jobs, models=entries), indent=1))
    print(f"generated {len(entries)} models in {time.time() - t0:.1f} s ({failures} skipped)", file=sys.stderr)


if __name__ == "__main__":
    main()
