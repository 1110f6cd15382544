#!/usr/bin/env python
"""Pipelining: session throughput with inflight=2 vs inflight=1 over a link whose latency equals the
inference time.

    /work/venv/bin/python tools/bench_link_pipelining.py [--model resnet8] [--samples 30] [--rounds 2]

The model (a zoo shape, random weights, int8) runs on emu-tflm behind a real pty. The link latency
is simulated on the host side with link.faults' delay line (`delay=S`: every byte the host reads
becomes available S seconds after it arrived), S = the model's in-process TFLM inference time.
With one input in flight each record costs about inference + latency; with two, the device computes
the next input while the previous reply is still on the line, so the ratio approaches 2.
Target: ratio >= 1.8. Each figure is the best of --rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_link_overhead import SHAPES, build_int8  # noqa: E402


def inference_time(model: Path, x: np.ndarray) -> float:
    """Median in-process TFLM time for one inference (what the agent spends per input)."""
    from tflite_micro.python.tflite_micro import runtime

    from edgeattack.agent import DEFAULT_TFLM_ARENA
    from edgeattack.quant import quantize_input

    interp = runtime.Interpreter.from_bytes(model.read_bytes(), arena_size=DEFAULT_TFLM_ARENA)
    q = interp.get_input_details(0)["quantization_parameters"]
    times = []
    for sample in quantize_input(x, q["scales"][0], q["zero_points"][0]):
        t = time.perf_counter()
        interp.set_input(sample[None], 0)
        interp.invoke()
        interp.get_output(0)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet8", choices=sorted(SHAPES))
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--delay", type=float, help="link latency in s (default: the inference time)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    from edgeattack.session import run_session

    shape = SHAPES[args.model]
    with tempfile.TemporaryDirectory(prefix="bench-pipe-") as tmp:
        tmp = Path(tmp)
        model = tmp / "model.tflite"
        build_int8(args.model, shape, model, args.width)
        x = np.random.default_rng(1).random((args.samples,) + shape).astype(np.float32)
        inputs = tmp / "in.npz"
        np.savez(inputs, x=x, y=np.zeros(len(x), np.int64))
        t_inf = inference_time(model, x)
        delay = args.delay if args.delay is not None else t_inf
        best = {1: 0.0, 2: 0.0}
        for r in range(args.rounds):
            for inflight in (1, 2):
                s = run_session("emu-tflm", model, inputs, out=tmp / f"run-{r}-{inflight}", inflight=inflight,
                                faults=f"delay={delay:.6f}", timeout=max(1.0, 20 * delay), progress=False)
                assert s["device"]["inferences_run"] == args.samples
                best[inflight] = max(best[inflight], s["throughput"]["records_per_s"])
    ratio = best[2] / best[1]
    figures = {"model": args.model, "input_shape": list(shape), "samples": args.samples,
               "inference_ms": round(t_inf * 1e3, 3), "link_delay_ms": round(delay * 1e3, 3),
               "inflight1_per_s": round(best[1], 2), "inflight2_per_s": round(best[2], 2),
               "ratio": round(ratio, 3), "load_average": os.getloadavg()}
    print(f"{args.model}: inference {t_inf * 1e3:.1f} ms, link delay {delay * 1e3:.1f} ms: inflight 1 "
          f"{best[1]:.2f}/s, inflight 2 {best[2]:.2f}/s, ratio {ratio:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
