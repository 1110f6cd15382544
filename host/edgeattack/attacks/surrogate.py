"""A differentiable TensorFlow copy of an int8 .tflite, built from the file itself (issue 8, white-box
on the deployed int8 model).

The forward pass computes what TFLM's reference kernels compute, integer for integer: input
quantization with the shared formula, int32 accumulation (exact float32 sums where they cannot exceed
2^24, float64 where they could), requantization with TFLite's fixed-point multiplier (gemmlowp's
SaturatingRoundingDoublingHighMul then RoundingDivideByPOT, on int64 tensors), the output zero point,
saturation and fused activation clamps, and TFLM's fixed-point int8 softmax.
firmware_models/runtime/*.c (bit-exact with TFLM) is the reference for every formula here.

Gradients: each integer result is glued onto a float "soft" value of the same layer (accumulator x
effective scale + zero point) with a straight-through estimator (the exact value, the soft gradient):
rounding and int8 saturation pass gradients unchanged (BPDA), while the fused activation itself
(ReLU's floor, ReLU6's ceiling) keeps its true gradient.

Public API: Int8Surrogate (see docs/attacks.md, "The int8 surrogate").
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..errors import UsageError
from ..fileid import sha256_bytes
from ..tflite.reader import ModelInfo, OperatorInfo, load_model_bytes, read_model

SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D",
                 "ADD", "MEAN", "PAD", "PADV2", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SOFTMAX",
                 "QUANTIZE", "DEQUANTIZE")

_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1
_EXACT_F32 = 1 << 24  # float32 adds integers exactly while every partial sum stays below this


# ----------------------------------------------------------------------------------------------------
# Quantization parameters, derived as TFLite's quantization_util.cc (Python integers and doubles)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: (significand in [2^30, 2^31), exponent) with m = q * 2^(e - 31)."""
    if m == 0.0:
        return 0, 0
    q, e = math.frexp(m)
    q_fixed = _round_half_away(q * 2147483648.0)
    if q_fixed == 1 << 31:
        q_fixed //= 2
        e += 1
    if e < -31:  # TFLite flushes multipliers below 2^-31 to zero
        return 0, 0
    return q_fixed, e


def _round_half_away(v: float) -> int:
    r = math.floor(abs(v))
    if abs(v) - r >= 0.5:
        r += 1
    return int(math.copysign(r, v))


def _quantize_value(f: float, scale: float, zero_point: int) -> int:
    """TFLite's Quantize helper for activation bounds: zero_point + round(f / scale), in float32."""
    s = np.float32(f) / np.float32(scale)
    return int(zero_point) + _round_half_away(float(s))


# Python-integer copies of the fixed-point primitives (ea_quant.h), used to tabulate the softmax's
# exponentials once per model.

def _wrap(v: int) -> int:
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _srdhm_py(a: int, b: int) -> int:
    if a == b == _I32_MIN:
        return _I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    return int(math.copysign(abs(v) >> 31, v)) if v else 0


def _rdbypot_py(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def _sat_shl_py(x: int, e: int) -> int:
    threshold = (1 << (31 - e)) - 1
    if x > threshold:
        return _I32_MAX
    if x < -threshold:
        return _I32_MIN
    return _wrap(x << e)


def _exp_on_negative_values_py(a: int) -> int:
    """gemmlowp exp(a) for a <= 0 in Q5.26, result in Q0.31 (softmax_s8.c)."""
    one_quarter = 1 << 24
    mask = one_quarter - 1
    a_mod = (a & mask) - one_quarter
    x = _wrap(_sat_shl_py(a_mod, 5) + (1 << 28))
    x2 = _srdhm_py(x, x)
    x3 = _srdhm_py(x2, x)
    x4 = _srdhm_py(x2, x2)
    poly = _rdbypot_py(_wrap(_srdhm_py(_wrap(_rdbypot_py(x4, 2) + x3), 715827883) + x2), 1)
    result = _wrap(1895147668 + _srdhm_py(1895147668, _wrap(x + poly)))
    remainder = _wrap(a_mod - a)
    for k, mult in zip(range(-2, 5), (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)):
        if remainder & (1 << (26 + k)):
            result = _srdhm_py(result, mult)
    return _I32_MAX if a == 0 else result


# ----------------------------------------------------------------------------------------------------
# The same primitives on int64 TensorFlow tensors holding int32 values


def _tf():
    from ..tfutil import tf

    return tf()


def _i64(tf, v):
    return tf.constant(np.asarray(v, dtype=np.int64))


def _wrap_tf(tf, x):
    return tf.bitwise.bitwise_and(x + (1 << 31), 0xFFFFFFFF) - (1 << 31)


def _srdhm_tf(tf, a, b):
    """round(a * b / 2^31) as gemmlowp (a, b int64 tensors or ints in int32 range)."""
    ab = a * b
    nudge = tf.where(ab >= 0, tf.constant(1 << 30, tf.int64), tf.constant(1 - (1 << 30), tf.int64))
    out = tf.truncatediv(ab + nudge, tf.constant(1 << 31, tf.int64))
    return tf.where((a == _I32_MIN) & (b == _I32_MIN), tf.constant(_I32_MAX, tf.int64), out)


def _rdbypot_tf(tf, x, exponent):
    """x / 2^exponent, rounded to nearest with ties away from zero (exponent a tensor or array)."""
    exponent = tf.convert_to_tensor(exponent, tf.int64)
    mask = tf.bitwise.left_shift(tf.ones_like(exponent), exponent) - 1
    remainder = tf.bitwise.bitwise_and(x, mask)
    threshold = tf.bitwise.right_shift(mask, tf.ones_like(mask)) + tf.cast(x < 0, tf.int64)
    return tf.bitwise.right_shift(x, exponent) + tf.cast(remainder > threshold, tf.int64)


def _sat_shl_tf(tf, x, e: int):
    threshold = (1 << (31 - e)) - 1
    return tf.where(x > threshold, tf.constant(_I32_MAX, tf.int64),
                    tf.where(x < -threshold, tf.constant(_I32_MIN, tf.int64), _wrap_tf(tf, x * (1 << e))))


def _mbqm_tf(tf, x, mult, shift):
    """TFLite MultiplyByQuantizedMultiplier (double rounding, TFLM's build) of int64 tensor `x`;
    mult/shift are numpy arrays broadcasting against x's last axis (or scalars)."""
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    if np.any(left):
        x = _wrap_tf(tf, x * _i64(tf, np.left_shift(1, left)))
    x = _srdhm_tf(tf, x, _i64(tf, mult))
    if np.any(right):
        x = _rdbypot_tf(tf, x, _i64(tf, right))
    return x


# ----------------------------------------------------------------------------------------------------
# Operators


class _Act:
    """A fused activation on an int8 output: the integer clamp [lo, hi] (activation and int8 range),
    and the bounds the activation itself imposes (None where only int8 saturation clips)."""

    def __init__(self, act: str | None, scale: float, zero_point: int, where: str):
        act = act or "NONE"
        self.lo, self.hi, self.soft_lo, self.soft_hi = -128, 127, None, None
        if act == "NONE":
            return
        if act not in ("RELU", "RELU6", "RELU_N1_TO_1"):
            raise UsageError(f"{where}: fused activation {act} cannot be reproduced by the int8 surrogate; "
                             f"it reproduces NONE, RELU, RELU6 and RELU_N1_TO_1")
        low, high = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}[act]
        q = _quantize_value(low, scale, zero_point)
        self.lo = max(q, -128)
        self.soft_lo = float(self.lo)
        if high is not None:
            q = _quantize_value(high, scale, zero_point)
            self.hi = min(q, 127)
            self.soft_hi = float(self.hi)

    def finish(self, tf, soft, exact):
        """The layer's output: the exact clamped integers, with the soft value's gradient."""
        if self.soft_lo is not None:
            soft = tf.maximum(soft, self.soft_lo)
        if self.soft_hi is not None:
            soft = tf.minimum(soft, self.soft_hi)
        return _ste(tf, soft, tf.clip_by_value(exact, self.lo, self.hi))


def _ste(tf, soft, exact):
    """The value of `exact` with the gradient of `soft`. Not `soft + stop_gradient(exact - soft)`: in
    a tf.function Grappler regroups such sums, and the float result is then not always the integer."""
    exact = tf.cast(exact, tf.float32)
    return tf.grad_pass_through(lambda _: exact)(soft)


class _Op:
    """One prepared operator: validated at construction (no TensorFlow), run by `apply`."""

    def __init__(self, s: "Int8Surrogate", op: OperatorInfo):
        self.s, self.op = s, op
        self.where = f"{s.name}: {op.name} at op {op.index}"
        self.inputs = [i for i in op.inputs]
        self.output = op.outputs[0]

    def tensor(self, k):
        idx = self.inputs[k] if k < len(self.inputs) else -1
        return None if idx < 0 else self.s.info.tensors[idx]

    def need_int8(self, t, role):
        if t is None:
            raise UsageError(f"{self.where}: the {role} tensor is missing; the model is malformed")
        if t.dtype != "int8":
            raise UsageError(f"{self.where}: the {role} tensor is {t.dtype}, not int8: the surrogate reproduces "
                             f"full-integer int8 models (ptq-int8 and the QAT recipes), not dynamic-range or "
                             f"float16 ones")
        if t.quant is None or not t.scale or t.scale <= 0:
            raise UsageError(f"{self.where}: the {role} tensor has no quantization scale; the model is not "
                             f"a full-integer int8 model")
        return t

    def const(self, t, role):
        data = self.s.info.tensor_data(t.index)
        if data is None or data.dtype == np.uint8 and t.dtype != "uint8":
            raise UsageError(f"{self.where}: the {role} is not a constant {t.dtype} tensor the surrogate can read")
        return np.asarray(data)

    def batched(self, shape, role="output"):
        return self.s.batched_shape(shape, f"{self.where}: {role}")

    def build(self, tf):  # create TensorFlow constants (once, eagerly)
        pass

    def value(self, vals, k, tf):
        """Input k as a float32 tensor of integer values (constants included)."""
        idx = self.inputs[k]
        if idx in vals:
            return vals[idx]
        t = self.s.info.tensors[idx]
        return tf.constant(self.const(t, f"input {k}").astype(np.float32))


class _Quantize(_Op):
    def __init__(self, s, op):
        super().__init__(s, op)
        src = self.tensor(0)
        out = self.need_int8(s.info.tensors[self.output], "output")
        if len(out.quant.scale) != 1:
            raise UsageError(f"{self.where}: per-channel output quantization is not supported")
        self.out_scale, self.out_zp = out.scale, out.zero_point
        self.shape = self.batched(out.shape)
        if src.dtype == "float32":
            self.kind = "float"
        else:
            self.need_int8(src, "input")
            self.kind = "requant"
            self.in_zp = src.zero_point
            self.ratio = src.scale / out.scale
            self.mult, self.shift = quantize_multiplier(float(np.float64(src.scale) / np.float64(out.scale)))

    def apply(self, tf, vals):
        x = vals[self.inputs[0]]
        if self.kind == "float":
            return self.s.quantize_tf(tf, x, self.out_scale, self.out_zp)
        xi = tf.cast(x, tf.int64) - self.in_zp
        exact = tf.clip_by_value(_mbqm_tf(tf, xi, self.mult, self.shift) + self.out_zp, -128, 127)
        soft = (x - self.in_zp) * np.float32(self.ratio) + self.out_zp
        return _ste(tf, soft, exact)


class _Dequantize(_Op):
    def __init__(self, s, op):
        super().__init__(s, op)
        src = self.need_int8(self.tensor(0), "input")
        out = s.info.tensors[self.output]
        if out.dtype != "float32":
            raise UsageError(f"{self.where}: only int8 -> float32 is supported")
        self.scale, self.zp = np.float32(src.scale), src.zero_point

    def apply(self, tf, vals):
        return self.scale * (vals[self.inputs[0]] - self.zp)


class _Conv(_Op):
    """CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: an integer dot product, bias, requantization."""

    def __init__(self, s, op):
        super().__init__(s, op)
        kind = op.name
        inp = self.need_int8(self.tensor(0), "input")
        out = self.need_int8(s.info.tensors[self.output], "output")
        f = self.tensor(1)
        if f is None or f.dtype != "int8" or not f.is_constant or f.quant is None:
            raise UsageError(f"{self.where}: the filter must be a constant int8 tensor with quantization "
                             f"(got {f.dtype if f else 'none'}); hybrid or float layers are not reproduced")
        w = self.const(f, "filter").astype(np.int64)
        b, bias = self.tensor(2), None
        if b is not None:
            if b.dtype != "int32":
                raise UsageError(f"{self.where}: the bias is {b.dtype}; only int32 biases (int8 models) are "
                                 f"reproduced")
            bias = self.const(b, "bias").astype(np.int64).reshape(-1)
        self.in_zp, self.out_zp = inp.zero_point, out.zero_point
        self.out_shape = self.batched(out.shape)
        scales = np.asarray(f.quant.scale, dtype=np.float32)
        self.kind = kind
        if kind == "FULLY_CONNECTED":
            if op.options.get("weights_format", "DEFAULT") not in ("DEFAULT", 0):
                raise UsageError(f"{self.where}: only the DEFAULT weights format is supported")
            if w.ndim != 2:
                raise UsageError(f"{self.where}: the filter must be 2-D")
            units, accum = w.shape
            if inp.size % accum or out.shape[-1] != units:
                raise UsageError(f"{self.where}: input and filter shapes do not match")
            self.accum, self.channels = accum, units
            self.rows_per_sample = inp.size // accum
            if len(scales) > 1:
                eff = [float(np.float64(inp.scale) * np.float64(sc) / np.float64(out.scale)) for sc in scales]
                f_off = 0
            else:
                # GetQuantizedConvolutionMultipler: the scale product in float32, the division in double
                eff = [float(np.float64(np.float32(inp.scale) * np.float32(scales[0])) / np.float64(out.scale))]
                f_off = -int(f.zero_point)
            self.w = (w + f_off).T  # (accum, units)
        else:
            if len(inp.shape) != 4 or w.ndim != 4 or len(out.shape) != 4:
                raise UsageError(f"{self.where}: input, filter and output must be 4-D")
            stride, dil = op.stride or (1, 1), op.dilation or (1, 1)
            self.strides, self.dilations = stride, dil
            self.padding = op.padding or "SAME"
            if self.padding not in ("SAME", "VALID"):
                raise UsageError(f"{self.where}: padding {self.padding} is not supported")
            self.channels = out.shape[3]
            if kind == "DEPTHWISE_CONV_2D":
                dm = int(op.options.get("depth_multiplier", 1) or 1)
                if w.shape[0] != 1 or w.shape[3] != self.channels or inp.shape[3] * dm != self.channels:
                    # TFLite allows depth_multiplier 0 meaning "derive it": fall back to the shapes
                    dm = self.channels // inp.shape[3] if inp.shape[3] and self.channels % inp.shape[3] == 0 else 0
                    if w.shape[0] != 1 or w.shape[3] != self.channels or dm < 1:
                        raise UsageError(f"{self.where}: filter shape {list(w.shape)} does not match the output")
                # TF's depthwise kernel takes neither unequal strides nor strides with dilation: run
                # those at stride 1 with TFLM's explicit padding and keep every stride-th output.
                self.subsample = stride[0] != stride[1] or (stride != (1, 1) and dil != (1, 1))
                if self.subsample:
                    pads = [_same_or_valid(inp.shape[1 + d], w.shape[1 + d], stride[d], dil[d], self.padding)
                            for d in (0, 1)]
                    if (pads[0][0], pads[1][0]) != tuple(out.shape[1:3]):
                        raise UsageError(f"{self.where}: output size does not match the window arithmetic")
                    self.explicit = [[0, 0], *[[p, (o - 1) * st + (f - 1) * dl + 1 - sz - p]
                                               for (o, p), st, dl, f, sz in zip(pads, stride, dil, w.shape[1:3],
                                                                                 inp.shape[1:3])], [0, 0]]
                    self.explicit = [[a, max(b, 0)] for a, b in self.explicit]
                self.w = w.reshape(w.shape[1], w.shape[2], inp.shape[3], dm)  # [H, W, C, dm]
                self.groups = 1
                per_out = np.abs(w.reshape(-1, self.channels)).sum(axis=0)
            else:
                if w.shape[0] != self.channels or inp.shape[3] % w.shape[3]:
                    raise UsageError(f"{self.where}: filter shape {list(w.shape)} does not match the input "
                                     f"and output")
                self.groups = inp.shape[3] // w.shape[3]
                self.w = w.transpose(1, 2, 3, 0)  # [H, W, I, O]
                per_out = np.abs(w.reshape(self.channels, -1)).sum(axis=1)
            eff = [float(np.float64(inp.scale) * np.float64(sc) / np.float64(out.scale)) for sc in scales]
        if kind == "FULLY_CONNECTED":
            per_out = np.abs(self.w).sum(axis=0)
        if len(scales) not in (1, self.channels):
            raise UsageError(f"{self.where}: {len(scales)} filter scales for {self.channels} output channels")
        self.bias = bias
        if self.bias is not None and self.bias.size != self.channels:
            raise UsageError(f"{self.where}: bias size does not match the output channels")
        ms = [quantize_multiplier(e) for e in eff]
        self.mult = np.array([m for m, _ in ms], dtype=np.int64)
        self.shift = np.array([sh for _, sh in ms], dtype=np.int64)
        if np.any(self.shift > 30):
            raise UsageError(f"{self.where}: effective output scale out of range")
        self.eff = np.asarray(eff, dtype=np.float32)
        self.act = _Act(op.fused_activation, out.scale, out.zero_point, self.where)
        # |input + offset| <= 255 (int8 minus an int8 zero point): the largest |accumulator| bounds
        # whether float32 sums stay exact.
        span = max(127 - self.in_zp, self.in_zp + 128)
        self.dtype_name = "float32" if float(per_out.max(initial=0)) * span < _EXACT_F32 else "float64"

    def build(self, tf):
        dt = getattr(tf, self.dtype_name)
        self.w_tf = tf.constant(self.w, dtype=dt)
        self.bias_i = None if self.bias is None else _i64(tf, self.bias)
        self.bias_f = None if self.bias is None else tf.constant(self.bias.astype(np.float32))

    def _dot(self, tf, x):
        if self.kind == "FULLY_CONNECTED":
            return tf.matmul(tf.reshape(x, (-1, self.accum)), self.w_tf)
        strides = [1, *self.strides, 1]
        if self.kind == "DEPTHWISE_CONV_2D":
            if self.subsample:
                y = tf.nn.depthwise_conv2d(x, self.w_tf, [1, 1, 1, 1], self.explicit,
                                           dilations=list(self.dilations))
                return y[:, ::self.strides[0], ::self.strides[1], :][:, :self.out_shape[1], :self.out_shape[2], :]
            return tf.nn.depthwise_conv2d(x, self.w_tf, strides, self.padding, dilations=list(self.dilations))
        if self.groups == 1:
            return tf.nn.conv2d(x, self.w_tf, strides, self.padding, dilations=list(self.dilations))
        xs = tf.split(x, self.groups, axis=-1)
        ws = tf.split(self.w_tf, self.groups, axis=-1)
        return tf.concat([tf.nn.conv2d(a, b, strides, self.padding, dilations=list(self.dilations))
                          for a, b in zip(xs, ws)], axis=-1)

    def apply(self, tf, vals):
        x = vals[self.inputs[0]] - self.in_zp
        dt = getattr(tf, self.dtype_name)
        acc_f = self._dot(tf, tf.cast(x, dt) if dt != tf.float32 else x)
        acc = tf.cast(acc_f, tf.int64)  # exact integers: see dtype_name
        soft = tf.cast(acc_f, tf.float32)
        if self.bias is not None:
            acc = acc + self.bias_i
            soft = soft + self.bias_f
        exact = _mbqm_tf(tf, acc, self.mult, self.shift) + self.out_zp
        soft = soft * self.eff + self.out_zp
        y = self.act.finish(tf, soft, exact)
        return tf.reshape(y, self.out_shape) if self.kind == "FULLY_CONNECTED" else y


def _same_or_valid(size, filt, stride, dilation, padding):
    """TFLM's output size and leading padding for one spatial dimension (ComputePaddingWithOffset)."""
    eff = (filt - 1) * dilation + 1
    out = (size + stride - 1) // stride if padding == "SAME" else (size + stride - eff) // stride
    return out, max((out - 1) * stride + eff - size, 0) // 2


def _window_counts(size, filt, stride, padding, out_size):
    out, pad = _same_or_valid(size, filt, stride, 1, padding)
    if out != out_size:
        return None
    starts = np.arange(out) * stride - pad
    return np.minimum(filt, size - starts) - np.maximum(0, -starts)


class _Pool(_Op):
    def __init__(self, s, op):
        super().__init__(s, op)
        inp = self.need_int8(self.tensor(0), "input")
        out = self.need_int8(s.info.tensors[self.output], "output")
        if len(inp.shape) != 4 or len(out.shape) != 4:
            raise UsageError(f"{self.where}: input and output must be 4-D")
        if abs(float(inp.scale) - float(out.scale)) > 1e-6 or inp.zero_point != out.zero_point:
            raise UsageError(f"{self.where}: input and output quantization differ (TFLM refuses this too)")
        o = op.options
        self.ksize = [1, int(o["filter_height"]), int(o["filter_width"]), 1]
        self.strides = [1, *(op.stride or (1, 1)), 1]
        self.padding = op.padding or "VALID"
        self.act = _Act(op.fused_activation, out.scale, out.zero_point, self.where)
        self.max = op.name == "MAX_POOL_2D"
        # Elements in each window clipped to the input: TFLM's divisor (TF's avg_pool uses it too).
        rows = _window_counts(inp.shape[1], self.ksize[1], self.strides[1], self.padding, out.shape[1])
        cols = _window_counts(inp.shape[2], self.ksize[2], self.strides[2], self.padding, out.shape[2])
        if rows is None or cols is None:
            raise UsageError(f"{self.where}: output size does not match the window arithmetic")
        self.counts = np.outer(rows, cols).astype(np.int64)[None, :, :, None]
        if np.any(self.counts == 0):
            raise UsageError(f"{self.where}: a pooling window covers no input")

    def build(self, tf):
        self.count = _i64(tf, self.counts)
        self.count_f = tf.constant(self.counts.astype(np.float64))

    def apply(self, tf, vals):
        x = vals[self.inputs[0]]
        if self.max:
            y = tf.nn.max_pool2d(x, self.ksize, self.strides, self.padding)
            return self.act.finish(tf, y, tf.cast(y, tf.int64))
        soft = tf.nn.avg_pool2d(x, self.ksize, self.strides, self.padding)
        total = tf.cast(tf.round(tf.nn.avg_pool2d(tf.cast(x, tf.float64), self.ksize, self.strides,
                                                  self.padding) * self.count_f), tf.int64)
        half = self.count // 2
        exact = tf.truncatediv(tf.where(total > 0, total + half, total - half), self.count)
        return self.act.finish(tf, soft, exact)


class _Add(_Op):
    def __init__(self, s, op):
        super().__init__(s, op)
        a = self.need_int8(self.tensor(0), "first input")
        b = self.need_int8(self.tensor(1), "second input")
        out = self.need_int8(s.info.tensors[self.output], "output")
        for t, role in ((a, "first input"), (b, "second input")):
            if t.is_constant:
                self.const(t, role)
        self.out_shape = self.batched(out.shape)
        twice_max = 2.0 * max(float(a.scale), float(b.scale))
        ro = twice_max / ((1 << 20) * float(out.scale))
        if not ro < 1.0:
            raise UsageError(f"{self.where}: output scale too small for the input scales")
        self.m1 = quantize_multiplier(float(a.scale) / twice_max)
        self.m2 = quantize_multiplier(float(b.scale) / twice_max)
        self.mo = quantize_multiplier(ro)
        self.zp1, self.zp2, self.zpo = a.zero_point, b.zero_point, out.zero_point
        self.r1 = np.float32(float(a.scale) / float(out.scale))
        self.r2 = np.float32(float(b.scale) / float(out.scale))
        self.act = _Act(op.fused_activation, out.scale, out.zero_point, self.where)

    def apply(self, tf, vals):
        x, y = self.value(vals, 0, tf), self.value(vals, 1, tf)
        xa = (tf.cast(x, tf.int64) - self.zp1) * (1 << 20)
        ya = (tf.cast(y, tf.int64) - self.zp2) * (1 << 20)
        total = _mbqm_tf(tf, xa, *self.m1) + _mbqm_tf(tf, ya, *self.m2)
        exact = _mbqm_tf(tf, total, *self.mo) + self.zpo
        soft = (x - self.zp1) * self.r1 + (y - self.zp2) * self.r2 + self.zpo
        return self.act.finish(tf, soft, exact)


class _Mean(_Op):
    def __init__(self, s, op):
        super().__init__(s, op)
        inp = self.need_int8(self.tensor(0), "input")
        out = self.need_int8(s.info.tensors[self.output], "output")
        ax_t = self.tensor(1)
        if ax_t is None or not ax_t.is_constant or ax_t.dtype != "int32":
            raise UsageError(f"{self.where}: the axis must be a constant int32 tensor")
        rank = len(inp.shape)
        axes = sorted({int(a) + rank if a < 0 else int(a) for a in self.const(ax_t, "axis").reshape(-1)})
        if not axes or axes[0] < 1 or axes[-1] >= rank:
            raise UsageError(f"{self.where}: axes {axes} reduce the batch axis or lie outside the input")
        self.axes = axes
        self.n = int(np.prod([inp.shape[a] for a in axes]))
        self.in_zp, self.out_zp = inp.zero_point, out.zero_point
        mult, shift = quantize_multiplier(float(np.float64(inp.scale) / np.float64(out.scale)))
        if shift > 30:
            raise UsageError(f"{self.where}: input/output scale ratio out of range")
        k = min(self.n.bit_length() - 1, 32, 31 + shift)
        self.mult, self.shift = (mult << k) // self.n, shift - k
        self.ratio = np.float32(float(inp.scale) / float(out.scale))
        self.out_shape = self.batched(out.shape)

    def apply(self, tf, vals):
        x = vals[self.inputs[0]]
        total = tf.reduce_sum(tf.cast(x, tf.int64), axis=self.axes) - self.in_zp * self.n
        exact = tf.clip_by_value(_mbqm_tf(tf, total, self.mult, self.shift) + self.out_zp, -128, 127)
        soft = tf.reduce_mean(x - self.in_zp, axis=self.axes) * self.ratio + self.out_zp
        return tf.reshape(_ste(tf, soft, exact), self.out_shape)


class _Pad(_Op):
    def __init__(self, s, op):
        super().__init__(s, op)
        inp = self.need_int8(self.tensor(0), "input")
        out = self.need_int8(s.info.tensors[self.output], "output")
        pt = self.tensor(1)
        if pt is None or not pt.is_constant or pt.dtype not in ("int32", "int64"):
            raise UsageError(f"{self.where}: the paddings must be a constant int32/int64 tensor")
        pads = self.const(pt, "paddings").astype(np.int64).reshape(-1, 2)
        if pads.shape[0] != len(inp.shape) or np.any(pads < 0) or np.any(pads[0] != 0):
            raise UsageError(f"{self.where}: paddings {pads.tolist()} must be non-negative, one pair per "
                             f"input dimension, and leave the batch axis alone")
        self.pads = pads.tolist()
        self.value = out.zero_point
        cv = self.tensor(2) if op.name == "PADV2" else None
        if cv is not None:
            if not cv.is_constant or cv.dtype != "int8" or cv.size != 1:
                raise UsageError(f"{self.where}: constant_values must be one constant int8")
            self.value = int(self.const(cv, "constant_values").reshape(-1)[0])

    def apply(self, tf, vals):
        return tf.pad(vals[self.inputs[0]], self.pads, constant_values=float(self.value))


class _Reshape(_Op):
    def __init__(self, s, op):
        super().__init__(s, op)
        inp, out = self.tensor(0), s.info.tensors[self.output]
        if inp is None or inp.size != out.size or inp.dtype != out.dtype:
            raise UsageError(f"{self.where}: input and output sizes or types differ")
        self.out_shape = self.batched(out.shape)

    def apply(self, tf, vals):
        return tf.reshape(vals[self.inputs[0]], self.out_shape)


class _Softmax(_Op):
    def __init__(self, s, op):
        super().__init__(s, op)
        inp = self.need_int8(self.tensor(0), "input")
        out = self.need_int8(s.info.tensors[self.output], "output")
        if out.zero_point != -128 or np.float32(out.scale) != np.float32(1.0 / 256):
            raise UsageError(f"{self.where}: the output must have scale 1/256 and zero point -128")
        beta = float(op.options.get("beta", 1.0))
        real = min(beta * float(inp.scale) * float(1 << 26), 2147483647.0)
        if not real > 1.0:
            raise UsageError(f"{self.where}: beta x input scale is too small")
        mult, left = quantize_multiplier(real)
        if not 0 <= left <= 31:
            raise UsageError(f"{self.where}: invalid input scale")
        self.diff_min = -int(31.0 * float(1 << 26) / float(1 << left))
        self.in_zp, self.in_scale, self.beta = inp.zero_point, np.float32(inp.scale), beta
        # exp(diff) for every int8 difference from the row maximum, in Q0.31
        self.exp_table = np.array([_exp_on_negative_values_py(_srdhm_py(_wrap(d << left), mult))
                                   if d >= self.diff_min else 0 for d in range(-255, 1)], dtype=np.int64)

    def build(self, tf):
        self.exp_tf = _i64(tf, self.exp_table)
        self.pow2 = _i64(tf, [1 << k for k in range(32)])

    def apply(self, tf, vals):
        x = vals[self.inputs[0]]
        q = tf.cast(x, tf.int64)
        diff = q - tf.reduce_max(q, axis=-1, keepdims=True)
        used = diff >= self.diff_min
        e = tf.gather(self.exp_tf, diff + 255)
        sum_of_exps = tf.reduce_sum(tf.where(used, _rdbypot_tf(tf, e, tf.constant(12, tf.int64)), 0),
                                    axis=-1, keepdims=True)  # Q12.19
        bits = tf.reduce_sum(tf.cast(sum_of_exps[..., None] >= self.pow2, tf.int64), axis=-1)
        headroom = 32 - bits
        shifted = tf.bitwise.left_shift(sum_of_exps, headroom) - (1 << 31)
        scale = self._one_over_one_plus_x(tf, shifted)
        exponent = tf.clip_by_value(12 - headroom + 31 - 8, 0, 31)
        unsat = _rdbypot_tf(tf, _srdhm_tf(tf, scale, e), exponent)
        exact = tf.where(used, tf.clip_by_value(unsat - 128, -128, 127), tf.constant(-128, tf.int64))
        soft = tf.nn.softmax((x - self.in_zp) * (self.in_scale * np.float32(self.beta))) * 256.0 - 128.0
        return _ste(tf, soft, exact)

    @staticmethod
    def _one_over_one_plus_x(tf, a):
        half_den = tf.truncatediv(a + _I32_MAX + 1, tf.constant(2, tf.int64))
        x = _wrap_tf(tf, 1515870810 + _srdhm_tf(tf, half_den, tf.constant(-1010580540, tf.int64)))
        for _ in range(3):
            one_minus = _wrap_tf(tf, (1 << 29) - _srdhm_tf(tf, half_den, x))
            x = _wrap_tf(tf, x + _sat_shl_tf(tf, _srdhm_tf(tf, x, one_minus), 2))
        return _sat_shl_tf(tf, x, 1)


_OPS = {"CONV_2D": _Conv, "DEPTHWISE_CONV_2D": _Conv, "FULLY_CONNECTED": _Conv, "MAX_POOL_2D": _Pool,
        "AVERAGE_POOL_2D": _Pool, "ADD": _Add, "MEAN": _Mean, "PAD": _Pad, "PADV2": _Pad, "RESHAPE": _Reshape,
        "SQUEEZE": _Reshape, "EXPAND_DIMS": _Reshape, "SOFTMAX": _Softmax, "QUANTIZE": _Quantize,
        "DEQUANTIZE": _Dequantize}


# ----------------------------------------------------------------------------------------------------
# The surrogate


class Int8Surrogate:
    """A differentiable TensorFlow reproduction of an int8 .tflite (path or bytes).

    Raises edgeattack.errors.UsageError naming the first operator it cannot reproduce.
    """

    def __init__(self, model: str | os.PathLike | bytes, *, name: str | None = None):
        if isinstance(model, (bytes, bytearray, memoryview)):
            data = bytes(model)
            self.name = name or "<bytes>"
        else:
            data = load_model_bytes(model)
            self.name = name or os.fspath(model)
        self.model_sha256 = sha256_bytes(data)
        self.info: ModelInfo = read_model(data, name=self.name)
        info = self.info
        if len(info.subgraphs) != 1 or len(info.inputs) != 1 or len(info.outputs) != 1:
            raise UsageError(f"{self.name}: the int8 surrogate takes models with one subgraph, one input and "
                             f"one output (this one has {len(info.subgraphs)}, {len(info.inputs)}, "
                             f"{len(info.outputs)})")
        for op in info.operators:
            if op.name not in _OPS:
                raise UsageError(f"{self.name}: operator {op.name} (op {op.index}) cannot be reproduced by the "
                                 f"int8 surrogate; it reproduces {', '.join(SUPPORTED_OPS)}")
        producer = {o: op for op in info.operators for o in op.outputs}

        # The int8 tensor the user quantizes into: the model input, or what its QUANTIZE produces.
        inp = info.tensors[info.inputs[0]]
        qin = inp
        if inp.dtype == "float32":
            users = [op for op in info.operators if inp.index in op.inputs]
            if len(users) != 1 or users[0].name != "QUANTIZE":
                raise UsageError(f"{self.name}: its input is float32 and not quantized by a QUANTIZE "
                                 f"operator: the surrogate reproduces full-integer int8 models (ptq-int8 and "
                                 f"the QAT recipes), not dynamic-range or float16 ones")
            qin = info.tensors[users[0].outputs[0]]
        elif inp.dtype != "int8" or inp.quant is None:
            raise UsageError(f"{self.name}: its input is {inp.dtype}; the surrogate takes int8 (or float32 "
                             f"quantized by QUANTIZE) inputs")
        self.input_shape = tuple(int(d) for d in inp.shape[1:])
        if not inp.shape or inp.shape[0] != 1:
            raise UsageError(f"{self.name}: input shape {list(inp.shape)} has no batch axis of 1")
        self.input_scale, self.input_zero_point = float(qin.scale), int(qin.zero_point)
        self.data_range = (float(np.float32(self.input_scale) * np.float32(-128 - self.input_zero_point)),
                           float(np.float32(self.input_scale) * np.float32(127 - self.input_zero_point)))

        # The int8 output (before a final DEQUANTIZE) and the logits tensor (a final SOFTMAX's input).
        out_idx = info.outputs[0]
        last = producer.get(out_idx)
        if last is not None and last.name == "DEQUANTIZE":
            out_idx = last.inputs[0]
            last = producer.get(out_idx)
        out = info.tensors[out_idx]
        if out.dtype != "int8" or out.quant is None:
            raise UsageError(f"{self.name}: its output is {out.dtype}, not int8: the surrogate reproduces "
                             f"full-integer int8 models (ptq-int8 and the QAT recipes), not dynamic-range or "
                             f"float16 ones")
        self.output_tensor = out_idx
        self.output_scale, self.output_zero_point = float(out.scale), int(out.zero_point)
        self.num_classes = int(out.shape[-1])
        if last is not None and last.name == "SOFTMAX":
            self.logits_tensor = last.inputs[0]
        else:
            self.logits_tensor = out_idx
        lt = info.tensors[self.logits_tensor]
        self.logits_scale, self.logits_zero_point = np.float32(lt.scale), int(lt.zero_point)
        self.ends_in_softmax = self.logits_tensor != out_idx

        self._ops = [_OPS[op.name](self, op) for op in info.operators]
        self._plans = {t: self._plan(t) for t in {self.output_tensor, self.logits_tensor}}
        tf = _tf()
        for o in self._ops:
            o.build(tf)
        self._int8_fn = None

    # -- shapes and the plan

    def batched_shape(self, shape, where: str) -> list[int]:
        shape = list(shape)
        if not shape or shape[0] != 1:
            raise UsageError(f"{where} tensor of shape {shape} has no leading batch axis of 1; the surrogate "
                             f"runs such models one sample per batch row only")
        return [-1, *shape[1:]]

    def _plan(self, target: int) -> list[_Op]:
        """The operators `target` depends on, in model order."""
        need, plan = {target}, []
        for o in reversed(self._ops):
            if o.output in need:
                plan.append(o)
                need.update(i for i in o.inputs if i >= 0)
        return plan[::-1]

    # -- forward

    def quantize_tf(self, tf, x, scale, zero_point):
        """edgeattack.quant.quantize_input on a TF tensor (float32 divide, round half away from zero,
        add the zero point, saturate), with a straight-through gradient."""
        # DivNoNan, not `/`: inside tf.function, Grappler turns division by a constant into
        # multiplication by its reciprocal, which misrounds some quotients.
        scaled = tf.math.divide_no_nan(x, tf.constant(np.float32(scale)))
        whole = tf.sign(scaled) * tf.floor(tf.abs(scaled))
        rounded = whole + tf.sign(scaled) * tf.cast(tf.abs(scaled - whole) >= 0.5, tf.float32)
        exact = tf.clip_by_value(rounded + float(zero_point), -128.0, 127.0)
        return _ste(tf, scaled + float(zero_point), exact)

    def _forward(self, x, target: int, quantized: bool = False):
        tf = _tf()
        info = self.info
        inp = info.tensors[info.inputs[0]]
        vals = {}
        if quantized or inp.dtype == "int8":
            x = tf.cast(x, tf.float32) if quantized else tf.convert_to_tensor(x, tf.float32)
            vals[inp.index] = x if quantized else self.quantize_tf(tf, x, self.input_scale, self.input_zero_point)
        else:
            vals[inp.index] = tf.convert_to_tensor(x, tf.float32)
        for o in self._plans[target]:
            if quantized and o.op.name == "QUANTIZE" and o.inputs[0] == inp.index:
                vals[o.output] = vals[inp.index]
                continue
            vals[o.output] = o.apply(tf, vals)
        return vals[target]

    def logits(self, x):
        """(N, K) float32 logits of a float batch (N, *input_shape): the dequantized input of a final
        SOFTMAX, else the dequantized output. Differentiable (straight-through where integer
        arithmetic rounds and saturates); usable inside tf.function."""
        tf = _tf()
        q = self._forward(x, self.logits_tensor)
        y = (q - self.logits_zero_point) * self.logits_scale
        return tf.reshape(y, (-1, self.num_classes))

    def int8_output(self, x, batch_size: int = 256) -> np.ndarray:
        """(N, K) int8 outputs as TFLM computes them. x: float batch in the model's input domain, or an
        int8 batch already quantized (sent as it is)."""
        tf = _tf()
        x = np.asarray(x)
        quantized = x.dtype == np.int8
        if x.shape[1:] != self.input_shape:
            raise UsageError(f"{self.name}: inputs of shape {list(x.shape[1:])} do not fit the model's input "
                             f"{list(self.input_shape)}")
        if self._int8_fn is None:
            spec = tf.TensorSpec((None, *self.input_shape), tf.float32)
            self._int8_fn = {
                q: tf.function(lambda b, q=q: tf.cast(tf.reshape(self._forward(b, self.output_tensor, q),
                                                                 (-1, self.num_classes)), tf.int8),
                               input_signature=[spec], autograph=False)
                for q in (False, True)}
        fn = self._int8_fn[quantized]
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")  # each surrogate traces its own function: TF's retracing warning is noise
        try:
            parts = [fn(tf.constant(x[i:i + batch_size].astype(np.float32))).numpy()
                     for i in range(0, len(x), batch_size)]
        finally:
            logger.setLevel(level)
        return np.concatenate(parts) if parts else np.empty((0, self.num_classes), np.int8)

    def predict(self, x) -> np.ndarray:
        """(N,) class ids: the argmax of int8_output (first maximum, as NumPy on TFLM's output)."""
        return self.int8_output(x).argmax(axis=1)
