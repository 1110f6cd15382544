"""Conversion steps: a Keras model (float or quantization-aware) to .tflite bytes.

ptq-int8 is full-integer (int8 weights, activations, input and output: what TFLM runs).
dynamic-range and float16 keep float input/output and compute and are for LiteRT (the Pi) only.
"""
from __future__ import annotations

import warnings

from ..errors import EdgeAttackError
from ..tflite.batch_shapes import fix_space_to_batch_shapes
from .context import StepContext, native_stderr_quiet


def representative_indices(ctx: StepContext, samples: int):
    """Which training samples calibrate: a seeded draw, so the same seed gives the same model."""
    n = len(ctx.data.x_train)
    take = min(samples, n)
    return ctx.rng(salt=1).choice(n, size=take, replace=False)


def to_tflite(model, kind: str, x_calibration=None, progress: bool = False) -> bytes:
    """Convert with the TFLite converter. kind: int8 | dynamic-range | float16 | float32."""
    import numpy as np

    from ..tfutil import tf

    t = tf()
    conv = t.lite.TFLiteConverter.from_keras_model(model)
    if kind != "float32":
        conv.optimizations = [t.lite.Optimize.DEFAULT]
    if kind == "float16":
        conv.target_spec.supported_types = [t.float16]
    with native_stderr_quiet() as err:
        if kind == "int8":
            x = np.asarray(x_calibration, dtype=np.float32)

            def representative():
                from tqdm.auto import tqdm

                for i in tqdm(range(len(x)), desc="calibrate", unit="sample", leave=False,
                              file=err, disable=not progress):
                    yield [x[i:i + 1]]

            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = t.int8
            conv.inference_output_type = t.int8
        try:
            with warnings.catch_warnings():
                # "Statistics for quantized inputs were expected": harmless for int8 in/out
                warnings.simplefilter("ignore", UserWarning)
                converted = bytes(conv.convert())
        except Exception as e:  # the converter's errors are long; keep the first line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise EdgeAttackError(f"TFLite conversion ({kind}) failed: {first}; the model may use "
                                  f"an operator TFLite's {kind} path does not support") from None
    # A batch-free Keras model's dilated convolutions come out as SPACE_TO_BATCH_ND ... BATCH_TO_SPACE_ND
    # with batch 1 stored where the data has block_h * block_w batches; TFLM and the firmware trust stored
    # shapes, so write the real batch in (tflite/batch_shapes.py).
    return fix_space_to_batch_shapes(converted)[0]


def run(ctx: StepContext, step) -> dict:
    """The conversion step: sets ctx.tflite and ctx.conversion."""
    if step.name == "ptq-int8":
        idx = representative_indices(ctx, step.params["samples"])
        source = ctx.qat_model if ctx.qat_model is not None else ctx.model
        ctx.tflite = to_tflite(source, "int8", ctx.data.x_train[idx], ctx.progress)
        ctx.conversion = "int8"
        return {"calibration_samples": int(len(idx)),
                "from": "quantization-aware model" if ctx.qat_model is not None else "float model"}
    kind = {"dynamic-range": "dynamic-range", "float16": "float16"}[step.name]
    ctx.tflite = to_tflite(ctx.model, kind)
    ctx.conversion = kind
    return {}
