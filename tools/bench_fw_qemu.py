#!/usr/bin/env python
"""Firmware figures on the QEMU boards, per zoo model: instructions per MAC, and flash / RAM.

    python tools/bench_fw_qemu.py                         # qemu-m4, all zoo models, default shapes
    python tools/bench_fw_qemu.py --boards qemu-m4,qemu-m55 --session 200 --json fw_bench.json

Each model is an untrained zoo model (edgeattack.zoo.build_model, default input shape and classes,
--width) converted to int8 (ptq-int8: full-integer TFLite conversion calibrated on synthetic uniform
data; instruction counts do not depend on the weights' values) and 16-byte aligned. For each board the
firmware is built (cached) and run under QEMU with -icount shift=0, where one guest instruction is
1 ns of guest time: instructions = SysTick ticks * 1e9 / tick_hz (x 40 on mps2-an386 at 25 MHz).
The figure is the median over --samples random int8 inputs (the count repeats to within one tick).
MACs come from edgeattack.tflite.analysis.layer_macs. Flash = text + data, RAM = data + bss + the
reserved stack of the linked ELF, broken down (BuildResult.ram_breakdown) into the arena, the receive
buffers (UART ring + frame buffer) and the rest ("other": the issue's budget is 8 KiB), plus the stack's
high-water mark after the run (INFO stack_used).

--footprint adds, per board and model, the flash footprint without running anything: text / data / bss
of the firmware linked with only the model's operators (the default build) and with every operator
(build_firmware(operators="all")), and "code" = text minus the model array (symbol ea_model_data).

--session N also times an N-sample session of resnet8 on qemu-m4 through open_device (board start
included, firmware build excluded: it is built first), the figure the CI budget asks for (< 2 min
for 200 samples).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

ZOO = ["cnn-digits", "cnn-mnist", "resnet8", "dscnn", "mobilenet-tiny"]


def int8_zoo_model(name: str, width: float, out_dir: Path, seed: int = 0) -> Path:
    from edgeattack import tfutil, zoo
    from edgeattack.tflite.align import align_16

    tfutil.set_seed(seed)
    model = zoo.build_model(name, width=width)
    x = np.random.default_rng(seed).random((32, *model.input_shape[1:]), dtype=np.float32)
    from edgeattack.compression.convert import to_tflite

    converted = to_tflite(model, "int8", x)  # ptq-int8's own conversion
    path = out_dir / f"{name}-w{width}.tflite"
    path.write_bytes(align_16(converted))
    return path


def measure(board: str, model: Path, samples: int, kernels: str = "auto", repeat: int = 1,
            inflight: int | None = None) -> dict:
    """One firmware build and run. With repeat > 1 each INFER runs the model `repeat` times inside one
    timed window and "instructions" is per inference (window / repeat): finer than one tick (40
    instructions on qemu-m4), and the window's own fixed cost is spread over the repeats. inflight=1
    sends each request only after the previous reply, so no UART receive interrupt lands inside a
    window (pipelined requests add a few thousand instructions of interrupt handling, run to run)."""
    from edgeattack.firmware.build import build_firmware
    from edgeattack.device.boards.qemu import start_qemu_board
    from edgeattack.link.client import Client
    from edgeattack.link.transport import open_port
    from edgeattack.tflite.analysis import layer_macs

    build = build_firmware(model, board, kernels=kernels)
    macs = sum(row["macs"] for row in layer_macs(model.read_bytes()))
    with start_qemu_board(board, model, build=build) as b:
        info = b.info
        if info.get("error"):
            return {"board": board, "model": model.stem, "error": info["error"]}
        shape = info["input"]["shape"][1:]
        xs = np.random.default_rng(1).integers(-128, 128, size=(samples, *shape), dtype=np.int8)
        with Client(lambda: open_port(b.url), timeout=30.0, total_timeout=300.0) as client:
            client.connect()
            t0 = time.monotonic()
            ticks = [r.ticks for r in client.infer_many(list(xs), inflight=inflight, repeat=repeat)]
            wall = time.monotonic() - t0
            stack_used = client.info().get("stack_used")
    tick_hz = info["tick_hz"]
    instructions = statistics.median(ticks) * 1e9 / tick_hz / repeat
    return {"board": board, "model": model.stem, "macs": macs, "ticks": int(statistics.median(ticks)),
            "ticks_spread": int(max(ticks) - min(ticks)), "tick_hz": tick_hz, "repeat": repeat,
            "instructions": int(round(instructions)) if repeat == 1 else round(instructions, 2),
            "instructions_per_mac": round(instructions / macs, 2) if macs else None,
            "wall_s_per_inference": round(wall / (samples * repeat), 3),
            "text": build.text, "data": build.data, "bss": build.bss, "flash_bytes": build.flash_bytes,
            "ram_bytes": build.ram_bytes, "stack_bytes": build.stack_bytes,
            "arena_bytes": build.arena_bytes, "model_bytes": model.stat().st_size,
            "ram": build.ram_breakdown(), "stack_used": stack_used, "kernels": build.kernels}


def model_array_bytes(elf: Path) -> int:
    """Size of the linked model array (ea_model_data) in an ELF."""
    import subprocess

    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == "ea_model_data":
            return int(parts[1], 16)
    raise RuntimeError(f"{elf}: no ea_model_data symbol")


def footprint(board: str, model: Path) -> dict:
    """text / data / bss and code (text without the model array) with the model's operators and with all."""
    from edgeattack.firmware.build import build_firmware

    row = {"board": board, "model": model.stem}
    for operators in ("model", "all"):
        b = build_firmware(model, board, operators=operators)
        row[f"{operators}_operators"] = {"text": b.text, "data": b.data, "bss": b.bss,
                          "code": b.text - model_array_bytes(b.elf), "kernels": b.kernels}
    return row


def session(model: Path, n: int) -> dict:
    from edgeattack.device.api import open_device
    from edgeattack.firmware.build import build_firmware

    build_firmware(model, "qemu-m4")  # cached: the session below does not pay for the build
    xs = np.random.default_rng(2).integers(-128, 128, size=(n, 32, 32, 3), dtype=np.int8)
    t0 = time.monotonic()
    with open_device("qemu-m4", model) as dev:
        before = dev.client.info()["inferences"]
        results = list(dev.infer_many(xs))
        after = dev.client.info()
    wall = time.monotonic() - t0
    return {"model": model.stem, "samples": len(results), "wall_s": round(wall, 1),
            "inferences": after["inferences"] - before, "overruns": after["overruns"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", default="qemu-m4", help="comma-separated QEMU boards (default qemu-m4)")
    ap.add_argument("--models", default=",".join(ZOO), help="comma-separated zoo models")
    ap.add_argument("--width", type=float, default=1.0, help="zoo width multiplier (default 1.0)")
    ap.add_argument("--samples", type=int, default=3, help="inputs per model (default 3)")
    ap.add_argument("--session", type=int, default=0, help="also time an N-sample resnet8 session")
    ap.add_argument("--footprint", action="store_true",
                    help="also build each model with all operators and report text/data/bss and code")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)

    rows, out = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_fw_") as tmp:
        models = {name: int8_zoo_model(name, args.width, Path(tmp)) for name in args.models.split(",")}
        for board in args.boards.split(","):
            for name, path in models.items():
                row = measure(board, path, args.samples)
                rows.append(row)
                if "error" in row:
                    print(f"{board:9s} {name:15s} error: {row['error']}", flush=True)
                    continue
                print(f"{board:9s} {name:15s} MACs {row['macs']:>11,d}  instructions {row['instructions']:>12,d}"
                      f"  instr/MAC {row['instructions_per_mac']:6.2f}  text {row['text']:>8,d}"
                      f"  data {row['data']:>6,d}  bss {row['bss']:>8,d}  ({row['wall_s_per_inference']} s/inf)",
                      flush=True)
                ram = row["ram"]
                print(f"{'':25s} RAM {ram['total']:>8,d} = arena {ram['arena']:>8,d} + receive buffers "
                      f"{ram['rx_buffers']:>6,d} + other {ram['other']:>6,d} (stack {ram['stack']:,d} "
                      f"reserved, {row['stack_used']} used)", flush=True)
        out["models"] = rows
        if args.footprint:
            out["footprint"] = []
            for board in args.boards.split(","):
                for name, path in models.items():
                    f = footprint(board, path)
                    out["footprint"].append(f)
                    own, every = f["model_operators"], f["all_operators"]
                    print(f"{board:9s} {name:15s} model's operators: text {own['text']:>8,d} data {own['data']:,d} "
                          f"bss {own['bss']:>8,d} code {own['code']:>7,d} | all operators: text {every['text']:>8,d} "
                          f"code {every['code']:>7,d} ({own['kernels']})", flush=True)
        if args.session:
            path = models.get("resnet8") or int8_zoo_model("resnet8", args.width, Path(tmp))
            s = session(path, args.session)
            out["session"] = s
            print(f"session: {s['samples']} resnet8 samples on qemu-m4 in {s['wall_s']} s "
                  f"(device inferences {s['inferences']}, overruns {s['overruns']})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
