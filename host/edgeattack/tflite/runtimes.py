"""Run .tflite models on the host with LiteRT or with TFLM's own interpreter (the reference for what a
microcontroller computes; FACTS: the two differ by 1-2 LSB on FULLY_CONNECTED).

Neither runtime is imported at module level: importing this module stays cheap for the CLI. Nor is
TensorFlow imported anywhere here: the device agent (edgeattack.agent, which runs on the Pi) serves
models through these same runners. Float inputs are quantized only through
edgeattack.quant.quantize_input.

Public API:
    IODetails                                   (name, tensor, shape, dtype, scale, zero_point)
    LiteRTRunner(model_bytes, resolver="auto")
    TFLMRunner(model_bytes, arena_size=None)
        .input_details / .output_details -> IODetails (input 0 / output 0; .describe() -> INFO dict)
        .run(tensor, repeat=1) -> np.ndarray     (the exact input tensor, invoked `repeat` times)
        .reset()                                 (variables back to their initial values)
        .invoke_raw(x_one_sample) -> np.ndarray  (raw output 0, batch axis dropped)
        .predict_raw(batch) -> np.ndarray        (N x raw output)
        .predict(batch) -> np.ndarray            (N x dequantized float32 output)
    compare_runtimes(model_bytes, x_float, arena_size=None, resolver="auto")
        -> {"n", "agree", "max_lsb_diff"}
    default_arena_size(info) -> int             (generous TFLM arena when none is given)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import EdgeAttackError, UsageError
from ..quant import dequantize, quantize_input
from .reader import ModelInfo, TensorInfo, read_model


@dataclass(frozen=True)
class IODetails:
    name: str
    tensor: int                 # tensor index in the model
    shape: tuple[int, ...]      # with the batch axis, as in the model
    dtype: np.dtype
    scale: float | None         # None for float tensors
    zero_point: int | None

    @property
    def quantized(self) -> bool:
        return self.scale is not None and np.issubdtype(self.dtype, np.integer)

    def describe(self) -> dict:
        """The tensor as the wire protocol's INFO reports it (docs/protocol.md)."""
        q = self.quantized and float(self.scale) != 0.0
        return {"shape": [int(d) for d in self.shape], "dtype": self.dtype.name,
                "scale": float(self.scale) if q else None,
                "zero_point": int(self.zero_point) if q else None}

    @classmethod
    def of(cls, t: TensorInfo) -> "IODetails":
        return cls(name=t.name, tensor=t.index, shape=tuple(t.shape), dtype=np.dtype(t.dtype),
                   scale=t.scale, zero_point=t.zero_point)


def default_arena_size(info: ModelInfo) -> int:
    """A TFLM arena size that is comfortably enough, for when nobody measured one (arena.py does).

    TFLM packs activations (reusing memory), so all non-constant tensors side by side bound the
    non-persistent part; persistent data (tensor and node structs, per-channel quantization
    multipliers) is bounded by a per-tensor/per-op allowance. Doubled plus 64 KiB of slack: TFLM
    segfaults instead of failing cleanly when the arena is too small (FACTS), so never cut it fine.
    """
    activations = sum(t.nbytes or 0 for sg in info.subgraphs for t in sg.tensors if not t.is_constant)
    n_tensors = sum(len(sg.tensors) for sg in info.subgraphs)
    n_ops = sum(len(sg.operators) for sg in info.subgraphs)
    channels = sum(len(t.quant.scale) for sg in info.subgraphs for t in sg.tensors if t.quant)
    persistent = 256 * n_tensors + 1024 * n_ops + 16 * channels
    return int(2 * (activations + persistent) + 64 * 1024 + 15) // 16 * 16


class _Runner:
    """Shared input handling: shape check, quantization of float inputs, batch axis."""

    def __init__(self, model_bytes: bytes, name: str | None = None):
        self.model_bytes = bytes(model_bytes)
        self.info = read_model(self.model_bytes, name=name)
        self.name = self.info.source
        if len(self.info.inputs) != 1 or len(self.info.outputs) < 1:
            raise UsageError(f"{self.name}: has {len(self.info.inputs)} inputs; the host runners take "
                             f"models with exactly one input")
        self.input_details = IODetails.of(self.info.input_tensors[0])
        self.output_details = IODetails.of(self.info.output_tensors[0])

    def prepare(self, x) -> np.ndarray:
        """One sample (with or without its batch axis of 1) -> the input tensor, quantized if needed."""
        d = self.input_details
        x = np.asarray(x)
        if x.size != int(np.prod(d.shape)):
            raise UsageError(f"{self.name}: input of shape {list(x.shape)} does not fit the model's input "
                             f"{list(d.shape)}; give one sample in the model's input shape")
        x = x.reshape(d.shape)
        if np.issubdtype(d.dtype, np.integer):
            if np.issubdtype(x.dtype, np.floating):
                if d.scale is None:
                    raise UsageError(f"{self.name}: integer input without quantization parameters; give "
                                     f"{d.dtype} inputs")
                return quantize_input(x, d.scale, d.zero_point, dtype=d.dtype)
            if x.dtype != d.dtype:
                info = np.iinfo(d.dtype)
                if x.size and (x.min() < info.min or x.max() > info.max):
                    raise UsageError(f"{self.name}: integer input values outside {d.dtype}; give {d.dtype} "
                                     f"inputs or floats in the model's input domain")
                x = x.astype(d.dtype)
            return x
        return x.astype(d.dtype)

    # The interpreter's own steps; run() is what callers use.
    def _set_input(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def _invoke(self) -> None:
        raise NotImplementedError

    def _get_output(self) -> np.ndarray:
        raise NotImplementedError

    def reset(self) -> None:
        """Variable tensors back to their initial values (stateful models)."""
        raise NotImplementedError

    def run(self, x: np.ndarray, repeat: int = 1) -> np.ndarray:
        """Invoke the model `repeat` times on the input tensor `x` (exact shape and dtype: see
        prepare) and return output 0 of the last invoke, batch axis included.

        The input is set again before every invoke: TFLM may reuse the input tensor's memory for
        later layers (FACTS "Known TFLM gotcha"), so a second invoke would read garbage."""
        for _ in range(repeat):
            self._set_input(x)
            self._invoke()
        return self._get_output()

    def invoke_raw(self, x) -> np.ndarray:
        """Run one sample; return output 0 as the model stores it (int8 for int8 models), without
        the leading batch axis when that axis is 1."""
        out = np.array(self.run(self.prepare(x)), copy=True)
        return out[0] if out.ndim > 1 and out.shape[0] == 1 else out

    def predict_raw(self, batch) -> np.ndarray:
        """Run every sample of `batch` (first axis = samples) one at a time; stack the raw outputs."""
        return np.stack([self.invoke_raw(x) for x in batch]) if len(batch) else np.empty((0,))

    def predict(self, batch) -> np.ndarray:
        """As predict_raw, dequantized to float32 for quantized outputs."""
        raw = self.predict_raw(batch)
        d = self.output_details
        return dequantize(raw, d.scale, d.zero_point) if d.quantized else raw.astype(np.float32)


_RESOLVERS = {"auto": "AUTO", "builtin": "BUILTIN", "reference": "BUILTIN_REF"}


class LiteRTRunner(_Runner):
    """LiteRT (ai_edge_litert) interpreter, one thread.

    resolver: "auto" (LiteRT's default, XNNPACK where it applies: what a Pi agent runs), "builtin"
    (optimized kernels, no delegates) or "reference" (reference kernels: matches TFLM exactly except
    FULLY_CONNECTED rounding).
    """

    def __init__(self, model_bytes: bytes, resolver: str = "auto", name: str | None = None):
        super().__init__(model_bytes, name)
        if resolver not in _RESOLVERS:
            raise UsageError(f"unknown LiteRT resolver {resolver!r}; choose one of {', '.join(_RESOLVERS)}")
        from ai_edge_litert import interpreter as litert

        try:
            self._interp = litert.Interpreter(
                model_content=self.model_bytes, num_threads=1,
                experimental_op_resolver_type=getattr(litert.OpResolverType, _RESOLVERS[resolver]))
            self._interp.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise EdgeAttackError(f"{self.name}: LiteRT cannot load the model ({str(e).strip().splitlines()[-1]}); "
                                  f"check that it was written by the TFLite converter") from e
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]

    def _set_input(self, x):
        self._interp.set_tensor(self._in, x)

    def _invoke(self):
        self._interp.invoke()

    def _get_output(self):
        return self._interp.get_tensor(self._out)

    def reset(self) -> None:
        self._interp.reset_all_variables()


class TFLMRunner(_Runner):
    """TFLM's Python interpreter (reference kernels). `arena_size` defaults to default_arena_size();
    a too-small arena can segfault this process (FACTS): use arena.find_arena_size to measure one."""

    def __init__(self, model_bytes: bytes, arena_size: int | None = None, name: str | None = None):
        super().__init__(model_bytes, name)
        from tflite_micro.python.tflite_micro import runtime

        self.arena_size = int(arena_size) if arena_size else default_arena_size(self.info)
        try:
            self._interp = runtime.Interpreter.from_bytes(self.model_bytes, arena_size=self.arena_size)
        except (RuntimeError, ValueError) as e:
            raise EdgeAttackError(f"{self.name}: TFLM cannot load the model with a {self.arena_size}-byte arena "
                                  f"({e}); check its operators with `edgeattack inspect`") from e

    def _set_input(self, x):
        self._interp.set_input(x, 0)

    def _invoke(self):
        self._interp.invoke()

    def _get_output(self):
        return self._interp.get_output(0)

    def reset(self) -> None:
        self._interp.reset()


def compare_runtimes(model_bytes: bytes, x_float, arena_size: int | None = None, resolver: str = "auto") -> dict:
    """Run the samples `x_float` (model input domain) through LiteRT and TFLM (the reference).

    Returns agreement.compare_outputs' fields: "n", "agree" (argmax of output 0 equal, all inputs),
    "max_lsb_diff" (largest raw difference, integer steps for quantized outputs), and "decided",
    "excluded", "agree_decided" (only inputs whose TFLM top-1 margin exceeds max_lsb_diff: XNNPACK's
    rounding differs per CPU, so only those say the same thing on every machine).
    """
    from .agreement import compare_outputs

    lite = LiteRTRunner(model_bytes, resolver=resolver)
    micro = TFLMRunner(model_bytes, arena_size=arena_size)
    return compare_outputs(micro.predict_raw(x_float), lite.predict_raw(x_float))
