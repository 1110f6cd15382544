"""What an attack attacks: a float Keras model, the int8 surrogate of a .tflite, or a device.

    target(obj, board=None, port=None, **options) -> FloatTarget | SurrogateTarget | DeviceTarget

Every target has `kind` ("float", "surrogate", "board"), `input_shape` (one sample), `num_classes`,
`data_range`, `has_gradients`, `model_sha256` (None for a float model), `queries` (per-sample
predictions and score requests made through it: device inferences for a board), and
`predict(x) -> (N,) int`, `scores(x) -> (N, K) float32`. Gradient targets add `logits_tf(x_tf)`.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import UsageError

log = logging.getLogger(__name__)


class Target:
    kind = ""
    has_gradients = False
    model_sha256: str | None = None

    def __init__(self):
        self.queries = 0
        self._fn_cache: dict = {}  # compiled attack graphs, per attack and shape (whitebox.graph)

    def predict(self, x) -> np.ndarray:
        return np.argmax(self.scores(x), axis=-1).astype(np.int64)

    def scores(self, x) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        return {"kind": self.kind, "model_sha256": self.model_sha256, "board": None}

    def _batch(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise UsageError(f"samples of shape {tuple(x.shape[1:])} do not fit the {self.kind} "
                             f"target's input {tuple(self.input_shape)}")
        return x


class _GradientTarget(Target):
    """A target with differentiable logits: predictions and scores come from one compiled graph."""

    has_gradients = True
    batch_size = 4096

    def logits_tf(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def _logits_np(self, x) -> np.ndarray:
        from ..tfutil import tf

        t = tf()
        fn = self._fn_cache.get("logits")
        if fn is None:
            fn = self._fn_cache["logits"] = t.function(self.logits_tf, reduce_retracing=True, autograph=False)
        x = self._batch(x)
        out = [fn(t.constant(x[i:i + self.batch_size])).numpy() for i in range(0, len(x), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), np.float32)

    def logits(self, x) -> np.ndarray:
        """(N, K) float32 logits as numpy (no query counted: a host-side model)."""
        return self._logits_np(x)


class FloatTarget(_GradientTarget):
    """A tf_keras classifier. Its logits are the input of a final softmax (a Softmax layer or a
    layer with a softmax activation), else its output as it is."""

    kind = "float"

    def __init__(self, model, data_range=(0.0, 1.0)):
        super().__init__()
        self.model = model
        self.logits_model = logits_model(model)
        self.input_shape = tuple(int(d) for d in model.input_shape[1:])
        self.num_classes = int(self.logits_model.output_shape[-1])
        self.data_range = (float(data_range[0]), float(data_range[1]))
        self.model_sha256 = None

    def logits_tf(self, x):
        return self.logits_model(x, training=False)

    def scores(self, x) -> np.ndarray:
        """The model's own output (probabilities for a model ending in softmax)."""
        from ..tfutil import tf

        logits = self._logits_np(x)
        self.queries += len(logits)
        return tf().nn.softmax(logits).numpy() if self.logits_model is not self.model else logits

    def predict(self, x) -> np.ndarray:
        logits = self._logits_np(x)
        self.queries += len(logits)
        return np.argmax(logits, axis=-1).astype(np.int64)


def logits_model(model):
    """The sub-model producing the input of `model`'s final softmax (or `model` if it has none)."""
    from ..tfutil import keras

    k = keras()
    last = model.layers[-1]
    inner = getattr(last, "layer", last)  # tfmot's QAT and pruning wrappers hold the layer they wrap
    act = getattr(inner, "activation", None)
    is_softmax = isinstance(inner, k.layers.Softmax) or (
        act is not None and getattr(act, "__name__", "") == "softmax")
    if not is_softmax:
        return model
    if isinstance(inner, (k.layers.Softmax, k.layers.Activation)):
        return k.Model(model.inputs, last.input, name=f"{model.name}_logits")
    if inner is not last:
        raise UsageError(f"{model.name}: its last layer {last.name} wraps a {type(inner).__name__} "
                         f"with a softmax activation; gradients need the logits, so end the model "
                         f"in a separate Softmax layer (the zoo models do)")
    # a layer with a softmax activation: the same layer, linear, sharing the weights
    cfg = last.get_config()
    cfg["activation"] = "linear"
    linear = last.__class__.from_config(cfg)
    out = linear(last.input)
    linear.set_weights(last.get_weights())
    return k.Model(model.inputs, out, name=f"{model.name}_logits")


class SurrogateTarget(_GradientTarget):
    """The int8 surrogate of a .tflite (attacks/surrogate.py): gradients through the integer
    model, predictions as the integer model computes them (input quantized with the shared function)."""

    kind = "surrogate"

    def __init__(self, model, data_range=None, name: str | None = None):
        super().__init__()
        from .surrogate import Int8Surrogate

        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            if not path.is_file():
                raise UsageError(f"model {path} does not exist (give an int8 .tflite)")
            name = name or str(path)
        self.surrogate = model if hasattr(model, "logits") else Int8Surrogate(model, name=name)
        s = self.surrogate
        self.input_shape = tuple(int(d) for d in s.input_shape)
        self.num_classes = int(s.num_classes)
        self.data_range = tuple(float(v) for v in (data_range if data_range is not None else s.data_range))
        self.model_sha256 = s.model_sha256

    def logits_tf(self, x):
        return self.surrogate.logits(x)

    def scores(self, x) -> np.ndarray:
        from ..quant import dequantize

        x = self._batch(x)
        self.queries += len(x)
        out = np.asarray(self.surrogate.int8_output(x))
        return dequantize(out, self.surrogate.output_scale, self.surrogate.output_zero_point)

    def predict(self, x) -> np.ndarray:
        x = self._batch(x)
        self.queries += len(x)
        return np.asarray(self.surrogate.predict(x)).astype(np.int64)


class DeviceTarget(Target):
    """An open edgeattack.device.api.Device: one on-device inference per sample, pipelined.

    output="scores" returns the dequantized outputs; "labels" only a one-hot of the device's label
    (decision-based attacks); `decimals` rounds scores (3 mimics MLPerf Tiny's %0.3f replies).
    """

    kind = "board"

    def __init__(self, device, data_range=None, output: str = "scores", decimals: int | None = None,
                 inflight: int | None = None):
        super().__init__()
        if output not in ("scores", "labels"):
            raise UsageError(f"target output {output!r}: choose scores or labels")
        if getattr(device, "attackable", True) is False:
            raise UsageError(f"board {device.board}: {device.why_not_attackable}")
        self.device = device
        self.output = output
        self.decimals = decimals
        self.inflight = inflight
        self.input_shape = tuple(device.sample_shape)
        self.num_classes = int(np.prod(device.output_shape))
        if data_range is None:
            data_range = input_range(device.input_scale, device.input_zero_point, device.input_dtype)
        self.data_range = (float(data_range[0]), float(data_range[1]))
        self.model_sha256 = device.model_sha256
        self.results: list = []  # the device's Result of every query (timing, wire cost, energy)
        self.keep_results = False
        # Sample keys of the next scores() batch (set by the black-box Oracle): sample k's queries
        # go to input slot k mod slots, so each is a patch of that sample's previous query.
        self.sample_keys = None

    def describe(self) -> dict:
        return {"kind": self.kind, "model_sha256": self.model_sha256, "board": self.device.board}

    def close(self) -> None:
        """Disconnect (and stop the board) when this target opened the device itself."""
        stack, self._stack = getattr(self, "_stack", None), None
        if stack is not None:
            stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def scores(self, x) -> np.ndarray:
        x = self._batch(x)
        out = np.empty((len(x), self.num_classes), np.float32)
        keys, inflight = self.sample_keys, self.inflight
        slots = getattr(self.device, "slots", 1)
        if keys is not None and len(keys) == len(x) and slots > 1:
            keys = [int(k) for k in keys]
            inflight = min(inflight or slots, slots)  # at most K (= slots) queries in flight
        else:
            keys = None
        for i, r in enumerate(self.device.infer_many(iter(x), inflight=inflight, slots=keys)):
            self.queries += 1
            if self.keep_results:
                self.results.append(r)
            if self.output == "labels":
                out[i] = 0.0
                out[i, r.pred] = 1.0
            else:
                out[i] = r.output
        if self.decimals is not None and self.output == "scores":
            out = printed(out, self.decimals)
        return out


def printed(scores: np.ndarray, decimals: int) -> np.ndarray:
    """Scores as a firmware printing them with C's "%.{decimals}f" reports them (the exact binary
    value rounded half to even, as MLPerf Tiny's %0.3f replies), read back as float32."""
    flat = [float("%.*f" % (decimals, v)) for v in np.asarray(scores, np.float32).reshape(-1).tolist()]
    return np.array(flat, dtype=np.float32).reshape(np.shape(scores))


def input_range(scale, zero_point, dtype=np.int8) -> tuple[float, float]:
    """The float range an integer input quantization represents (CONVENTIONS: foreign models)."""
    if scale is None:
        raise UsageError("the model's input is not quantized: give the data range with --range LO,HI")
    info = np.iinfo(np.dtype(dtype))
    return (float(scale) * (info.min - int(zero_point)), float(scale) * (info.max - int(zero_point)))


def target(obj, board=None, port=None, *, data_range=None, **options):
    """Wrap what is attacked (see the module docstring).

    obj: a tf_keras model (or a .keras/.h5 path), a .tflite path or bytes (its int8 surrogate), or an
    open Device. With `board` (and optionally `port`), obj is the .tflite the device runs and the
    result is a DeviceTarget that owns the device: use it in a `with` block (or call close()).
    """
    if board is not None or port is not None:
        return open_target(obj, board=board, port=port, data_range=data_range, **options)
    if hasattr(obj, "infer_many") and hasattr(obj, "sample_shape"):
        return DeviceTarget(obj, data_range=data_range, **options)
    if isinstance(obj, Target):
        return obj
    if options:
        raise UsageError(f"target options {sorted(options)} apply only to a device target")
    if isinstance(obj, (bytes, bytearray)) or hasattr(obj, "int8_output"):
        return SurrogateTarget(obj, data_range=data_range)
    if isinstance(obj, (str, os.PathLike)):
        p = Path(obj)
        if p.suffix == ".tflite":
            return SurrogateTarget(p, data_range=data_range)
        if not p.exists():
            raise UsageError(f"model {p} does not exist")
        from ..keras_io import load_model

        return FloatTarget(load_model(p), data_range=data_range or (0.0, 1.0))
    if hasattr(obj, "layers") and hasattr(obj, "input_shape"):
        return FloatTarget(obj, data_range=data_range or (0.0, 1.0))
    raise UsageError(f"cannot attack a {type(obj).__name__}: give a tf_keras model, a .tflite path "
                     f"or an open Device")


def open_target(model, board=None, port=None, *, data_range=None, device_options=None,
                **options) -> "DeviceTarget":
    """A DeviceTarget over `open_device(board, model, port, **device_options)` that owns the device:
    close() (or leaving its `with` block) disconnects and stops a board it started."""
    from ..device.api import open_device

    if board is None:
        raise UsageError("a device target needs --board (the profile of the device at --port)")
    stack = contextlib.ExitStack()
    try:
        dev = stack.enter_context(open_device(board, model, port=port, **(device_options or {})))
        t = DeviceTarget(dev, data_range=data_range, **options)
    except BaseException:
        stack.close()
        raise
    t._stack = stack
    return t
