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
        lite_raw = runtimes.LiteRTRunner(aligned, name="model.tflite").predict_raw(x)
    litert_acc = _accuracy(lite_raw, y)
    tflm_acc, exact, xnnpack = None, None, None
    if tflm:
        from ..tflite.agreement import compare_outputs

        tflm_raw = runtimes.TFLMRunner(aligned, arena_size=arena_info["with_margin"],
                                       name="model.tflite").predict_raw(x)
        tflm_acc = _accuracy(tflm_raw, y)
        # Exactness against LiteRT's reference kernels (the same on every CPU); the default XNNPACK
        # kernels (what the Pi runs) only on inputs that are not near-ties (tflite/agreement.py).
        ref_raw = runtimes.LiteRTRunner(aligned, resolver="reference", name="model.tflite").predict_raw(x)
        exact = compare_outputs(tflm_raw, ref_raw)
        c = compare_outputs(tflm_raw, lite_raw)
        xnnpack = {"agreement": c["agree_decided"], "max_lsb_diff": c["max_lsb_diff"],
                   "decided": c["decided"], "excluded": c["excluded"], "agreement_all": c["agree"]}

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
        "agreement": exact["agree"] if exact else None,
        "max_lsb_diff": exact["max_lsb_diff"] if exact else None,
        "xnnpack": xnnpack,
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
