#!/usr/bin/env python
"""Link overhead: session throughput on emu-tflm (agent behind a pty) vs the same TFLM runtime in-process.

    /work/venv/bin/python tools/bench_link_overhead.py [--models resnet8,cnn-digits] [--rounds 3]
                                                       [--inflight N]   (default: the session's)

For each model shape (zoo models, random weights, int8 via the converter with random calibration
data: throughput does not depend on training) it measures, in one run:
  - in-process: TFLM's interpreter (same arena as the agent), set_input + invoke + get_output per sample;
  - session:    edgeattack.run_session on emu-tflm (every byte through a real pty, LOAD + INFER per
                record, results.jsonl written and flushed per record), records/s while streaming;
and prints ratio = session / in-process (1.0 = the link costs nothing). Targets: resnet8 >= 0.8,
cnn-digits goal >= 0.5. Each figure is the best of --rounds (the machine is shared: best-of is the
least disturbed measurement).

It also reports CPU time per record of the host process and of the agent (from /proc), and the
in-process CPU time per inference: on a loaded machine the wall-clock ratio mostly measures how often
the two processes get a core; `cpu_bound_ratio` = in-process CPU per inference / the larger of host
and agent CPU per record is the ratio the pipelined link reaches when both have a core of their own.
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

SHAPES = {"resnet8": (32, 32, 3), "cnn-digits": (8, 8, 1), "cnn-mnist": (28, 28, 1), "dscnn": (49, 10, 1),
          "mobilenet-tiny": (32, 32, 3)}


def build_int8(name: str, shape, path: Path, width: float) -> None:
    import edgeattack.tfutil as tu
    from edgeattack.zoo import build_model

    tu.set_seed(0)
    model = build_model(name, shape, 10, width)
    rep = np.random.default_rng(0).random((64,) + tuple(shape)).astype(np.float32)
    from edgeattack.compression.convert import to_tflite

    converted = to_tflite(model, "int8", rep)  # ptq-int8's own conversion
    path.write_bytes(converted)


def _cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process_rate(model: Path, x: np.ndarray) -> tuple[float, float]:
    from tflite_micro.python.tflite_micro import runtime

    from edgeattack.agent import DEFAULT_TFLM_ARENA
    from edgeattack.quant import quantize_input

    interp = runtime.Interpreter.from_bytes(model.read_bytes(), arena_size=DEFAULT_TFLM_ARENA)
    q = interp.get_input_details(0)["quantization_parameters"]
    xq = quantize_input(x, q["scales"][0], q["zero_points"][0])
    start, cpu = time.perf_counter(), time.process_time()
    for sample in xq:
        interp.set_input(sample[None], 0)
        interp.invoke()
        interp.get_output(0)
    return len(xq) / (time.perf_counter() - start), (time.process_time() - cpu) / len(xq)


def session_rate(model: Path, inputs: Path, out: Path, inflight: int) -> dict:
    from edgeattack.device.api import open_device
    from edgeattack.session import Session, load_clean

    sets = [load_clean(inputs)]
    with open_device("emu-tflm", model) as dev:
        agent = dev.handle.pid
        agent0, host0 = _cpu_s(agent), time.process_time()
        s = Session(dev, out, inflight=inflight, progress=False, model_path=model).run(sets)
        agent_cpu, host_cpu = _cpu_s(agent) - agent0, time.process_time() - host0
    n = s["counts"]["records"]
    assert s["device"]["inferences_run"] == n
    return {"records_per_s": s["throughput"]["records_per_s"], "retries": s["link"]["retries"],
            "agent_cpu_per_record": agent_cpu / n, "host_cpu_per_record": host_cpu / n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet8,cnn-digits")
    ap.add_argument("--samples", default="resnet8=40,cnn-digits=2000",
                    help="samples per model (default 40 for others)")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--inflight", type=int, default=None,
                    help="inputs in flight (default: the session's default, DEFAULT_INFLIGHT)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    if args.inflight is None:
        from edgeattack.session import DEFAULT_INFLIGHT

        args.inflight = DEFAULT_INFLIGHT
    counts = dict(item.split("=") for item in args.samples.split(",") if item)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-link-") as tmp:
        tmp = Path(tmp)
        for name in args.models.split(","):
            shape = SHAPES[name]
            model = tmp / f"{name}.tflite"
            build_int8(name, shape, model, args.width)
            n = int(counts.get(name, 40))
            x = np.random.default_rng(1).random((n,) + shape).astype(np.float32)
            inputs = tmp / f"{name}.npz"
            np.savez(inputs, x=x, y=np.zeros(n, np.int64))
            best_in, best_sess, retries = 0.0, 0.0, 0
            in_cpu, agent_cpu, host_cpu = [], [], []
            for r in range(args.rounds):
                rate, cpu = in_process_rate(model, x)
                best_in = max(best_in, rate)
                in_cpu.append(cpu)
                got = session_rate(model, inputs, tmp / f"{name}-run{r}", args.inflight)
                best_sess = max(best_sess, got["records_per_s"])
                retries += got["retries"]
                agent_cpu.append(got["agent_cpu_per_record"])
                host_cpu.append(got["host_cpu_per_record"])
            cpu_ratio = min(in_cpu) / max(min(agent_cpu), min(host_cpu))
            figures[name] = {"input_shape": list(shape), "samples": n, "inflight": args.inflight,
                             "in_process_per_s": round(best_in, 1), "session_per_s": round(best_sess, 1),
                             "in_process_ms": round(1e3 / best_in, 3), "session_ms": round(1e3 / best_sess, 3),
                             "ratio": round(best_sess / best_in, 3), "retries": retries,
                             "in_process_cpu_ms": round(min(in_cpu) * 1e3, 3),
                             "agent_cpu_ms_per_record": round(min(agent_cpu) * 1e3, 3),
                             "host_cpu_ms_per_record": round(min(host_cpu) * 1e3, 3),
                             "cpu_bound_ratio": round(cpu_ratio, 3)}
            print(f"{name:<12} in-process {best_in:9.1f}/s  session(emu-tflm, pty, inflight "
                  f"{args.inflight}) {best_sess:9.1f}/s  ratio {best_sess / best_in:.3f}  "
                  f"(cpu-bound ratio {cpu_ratio:.3f})", flush=True)
    figures["load_average"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
