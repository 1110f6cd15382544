"""Figures of a compressed model for the manifest: accuracy of the float model and of the .tflite on
LiteRT and TFLM, their agreement, and the static analysis of the 16-byte-aligned flatbuffer.
The analysis, alignment, runtimes and arena search are edgeattack.tflite's; this module only
assembles them."""
from __future__ import annotations

import numpy as np

from .context import StepContext, native_stderr_quiet


def _accuracy(outputs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(outputs.reshape(len(y), -1).argmax(axis=1) == y)) if len(y) else float("nan")


def measure(ctx: StepContext, float_baseline: bool = False) -> dict:
    from ..tflite import align, analysis, arena, runtimes
    from .convert import to_tflite

    aligned = align.align_16(ctx.tflite, name="model.tflite")
    ctx.aligned = aligned
    tflm = ctx.conversion == "int8"  # TFLM has no hybrid (dynamic-range) or float16 kernels
    x, y = ctx.data.x_test, ctx.data.y_test
    arena_info = arena.find_arena_size(aligned, name="model.tflite") if tflm else None
    summary = analysis.summarize(aligned, arena=arena_info)
    with native_stderr_quiet():  # LiteRT announces its XNNPACK delegate on stderr
        lite = runtimes.LiteRTRunner(aligned, name="model.tflite")
    litert_acc = _accuracy(lite.predict_raw(x), y)
    tflm_acc, cmp = None, None
    if tflm:
        size = arena_info["with_margin"]
        tflm_acc = _accuracy(runtimes.TFLMRunner(aligned, arena_size=size,
                                                 name="model.tflite").predict_raw(x), y)
        with native_stderr_quiet():
            cmp = runtimes.compare_runtimes(aligned, x, arena_size=size)

    params = int(ctx.model.count_params())
    float_model = {"params": params, "float32_weight_bytes": 4 * params}
    if float_baseline:
        # The float model as a float32 .tflite: the like-for-like baseline for weight bytes
        # (BatchNorm folded as in the int8 model) and whole-file size. Costs one more conversion.
        with native_stderr_quiet():
            fs = analysis.summarize(to_tflite(ctx.model, "float32"))
        float_model["tflite_float32"] = {k: fs[k] for k in ("size_bytes", "weight_buffer_bytes",
                                                            "weight_buffer_gzip_bytes")}
    inputs, outputs = summary["inputs"], summary["outputs"]
    return {
        "conversion": ctx.conversion,
        "tflm_runnable": tflm,
        "accuracy": {"float": ctx.accuracy(), "litert": litert_acc, "tflm": tflm_acc,
                     "test_samples": int(len(y))},
        "agreement": cmp["agree"] if cmp else None,
        "max_lsb_diff": cmp["max_lsb_diff"] if cmp else None,
        "model_sha256": summary["sha256"],
        "float_model": float_model,
        "tflite_bytes": summary["size_bytes"],
        "weight_buffer_bytes": summary["weight_buffer_bytes"],
        "weight_buffer_gzip_bytes": summary["weight_buffer_gzip_bytes"],
        "sparsity": summary["sparsity"]["overall"],
        "max_distinct_values_per_channel": summary["max_distinct_values_per_channel"],
        "input": inputs[0] if inputs else None,
        "output": outputs[0] if outputs else None,
        "operators": summary["distinct_operators"],
        "macs": summary["macs"]["total"],
        "params": summary["param_count"],
        "tflm_arena_bytes": arena_info["measured"] if arena_info else None,
        "tflite": summary,
    }
