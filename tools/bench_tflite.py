"""Measure the .tflite tooling on the zoo's int8 models (untrained weights, random calibration: the
figures below depend on shapes, not on accuracy).

    /work/venv/bin/python tools/bench_tflite.py [--models cnn-digits,resnet8,dscnn,mobilenet-tiny]
        [--samples 20] [--json out.json]

Per model: file size, MACs, parameters, reader and summarize time, 16-byte align time, TFLM arena
(measured, with margin, child processes, seconds), TFLM host inference time, and LiteRT vs TFLM
(argmax agreement, max raw LSB difference) for LiteRT's default and reference kernels.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def convert(model, x_cal) -> bytes:
    from edgeattack.compression.convert import to_tflite

    return to_tflite(model, "int8", x_cal)  # ptq-int8's own conversion


def timed(fn, repeat=1):
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return out, (time.perf_counter() - t0) / repeat


def bench(name: str, samples: int) -> dict:
    import edgeattack.tfutil as tu
    from edgeattack.tflite.align import align_16
    from edgeattack.tflite.analysis import summarize
    from edgeattack.tflite.arena import find_arena_size
    from edgeattack.tflite.reader import read_model
    from edgeattack.tflite.runtimes import TFLMRunner, compare_runtimes
    from edgeattack.zoo import build_model

    tu.set_seed(0)
    model = build_model(name)
    shape = model.input_shape[1:]
    rng = np.random.default_rng(0)
    x = rng.random((max(samples, 32), *shape), dtype=np.float32)
    raw = convert(model, x[:32])
    _, t_read = timed(lambda: read_model(raw), repeat=5)
    summary, t_sum = timed(lambda: summarize(raw))
    aligned, t_align = timed(lambda: align_16(raw))
    arena = find_arena_size(aligned)
    runner = TFLMRunner(aligned, arena_size=arena["measured"])
    runner.invoke_raw(x[0])
    _, t_inf = timed(lambda: runner.invoke_raw(x[1]), repeat=5)
    auto = compare_runtimes(aligned, x[:samples])
    ref = compare_runtimes(aligned, x[:samples], resolver="reference")
    return {"model": name, "bytes": len(raw), "macs": summary["macs"]["total"], "params": summary["param_count"],
            "ops": len(summary["operators"]), "read_ms": t_read * 1e3, "summarize_ms": t_sum * 1e3,
            "align_ms": t_align * 1e3, "arena_measured": arena["measured"], "arena_with_margin": arena["with_margin"],
            "arena_children": arena["children"], "arena_s": arena["seconds"], "tflm_infer_ms": t_inf * 1e3,
            "agree_auto": auto["agree"], "lsb_auto": auto["max_lsb_diff"],
            "agree_ref": ref["agree"], "lsb_ref": ref["max_lsb_diff"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="cnn-digits,resnet8,dscnn,mobilenet-tiny")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = [bench(m, args.samples) for m in args.models.split(",")]
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) and v > 2 else
                                 f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
