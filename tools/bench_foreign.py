#!/usr/bin/env python
"""Instructions per MAC on foreign models: networks this project did not design, converted to int8 by
TensorFlow's own converter (not edgeattack's recipes), run on the QEMU firmware with each kernel set.

    python tools/bench_foreign.py                       # qemu-m4 ref and dsp, every model below
    python tools/bench_foreign.py --runs qemu-m4:ref,qemu-m4:dsp,qemu-m55:mve --json foreign.json

Models (untrained: instruction counts do not depend on the weights' values; Keras Applications are
built with weights=None, so nothing is downloaded, and without the final softmax: untrained, their
logits span so little that the softmax's beta x input scale is below 2^-26, which TFLM's softmax
preparation rejects too, and the runtime refuses it naming SOFTMAX):
  mobilenetv2-0.35   keras.applications.MobileNetV2(alpha=0.35) on 96x96x3, 10 classes
  mobilenetv3-small  keras.applications.MobileNetV3Small(alpha=0.75, minimalistic=False) on 96x96x3,
                     10 classes: hard-swish, squeeze-and-excitation (MUL), residual ADDs
Each is converted with tf.lite.TFLiteConverter (Optimize.DEFAULT, a representative dataset of 16
uniform random inputs, TFLITE_BUILTINS_INT8, int8 input and output) and 16-byte aligned. For each run
the firmware is built and its outputs on three random inputs are compared with TFLM's (byte-identical
or the row says not), then instructions per inference come from the firmware's SysTick under
-icount shift=0 (tools/bench_fw_qemu.py measure); MACs from edgeattack.tflite.analysis.layer_macs.
The table gives each run's instructions per MAC and its ratio to the first run (the generic path).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fw_qemu import measure  # noqa: E402

MODELS = ("mobilenetv2-0.35", "mobilenetv3-small")


def build(name: str):
    from edgeattack.tfutil import keras, set_seed

    set_seed(0)
    k = keras()
    if name == "mobilenetv2-0.35":
        return k.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10,
                                          classifier_activation=None)
    if name == "mobilenetv3-small":
        return k.applications.MobileNetV3Small(input_shape=(96, 96, 3), alpha=0.75, minimalistic=False,
                                               weights=None, classes=10, classifier_activation=None)
    raise SystemExit(f"unknown model {name!r}: choose from {', '.join(MODELS)}")


def convert(model, path: Path) -> Path:
    """TensorFlow's own full-integer conversion (what a user outside this project would run)."""
    from edgeattack.tflite.align import align_16
    from edgeattack.tfutil import tf

    t = tf()
    conv = t.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [t.lite.Optimize.DEFAULT]
    x = np.random.default_rng(0).random((16, *model.input_shape[1:]), dtype=np.float32)
    conv.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    conv.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = t.int8
    path.write_bytes(align_16(bytes(conv.convert())))
    return path


def identical_to_tflm(board: str, model: Path, kernels: str) -> bool:
    """Three random inputs through the firmware and through TFLM: every output byte the same."""
    from edgeattack.device.boards.qemu import start_qemu_board
    from edgeattack.firmware.build import build_firmware
    from edgeattack.link.client import Client
    from edgeattack.link.transport import open_port
    from edgeattack.tflite.runtimes import TFLMRunner

    build = build_firmware(model, board, kernels=kernels)
    with start_qemu_board(board, model, build=build) as b:
        if b.info.get("error"):
            return False
        shape = b.info["input"]["shape"][1:]
        xs = np.random.default_rng(2).integers(-128, 128, size=(3, *shape), dtype=np.int8)
        with Client(lambda: open_port(b.url), timeout=60.0, total_timeout=600.0) as client:
            client.connect()
            got = [np.asarray(r.output_raw).reshape(-1) for r in client.infer_many(list(xs))]
    runner = TFLMRunner(model.read_bytes())
    want = [np.asarray(runner.invoke_raw(x[None])).reshape(-1) for x in xs]
    return all(np.array_equal(g.view(np.int8), w.view(np.int8)) for g, w in zip(got, want))


def main(argv=None) -> int:
    from edgeattack.errors import UsageError

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="qemu-m4:ref,qemu-m4:dsp",
                    help="comma-separated board:kernels (default qemu-m4:ref,qemu-m4:dsp; the first is the baseline)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated models")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    runs = [tuple(r.split(":", 1)) for r in args.runs.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_foreign_") as tmp:
        for name in args.models.split(","):
            path = convert(build(name), Path(tmp) / f"{name}.tflite")
            from edgeattack.tflite.reader import read_model

            ops = sorted(read_model(path.read_bytes()).distinct_ops)
            base = None
            for board, kernels in runs:
                try:
                    row = measure(board, path, 1, kernels=kernels)
                except UsageError as e:  # e.g. the model does not fit the board's flash
                    row = {"board": board, "error": str(e)}
                row.update(model=name, kernels=kernels, operators=ops)
                if "error" not in row:
                    row["identical_to_tflm"] = identical_to_tflm(board, path, kernels)
                if "error" in row:
                    print(f"{name:18s} {board}:{kernels:4s} error: {row['error']}", flush=True)
                    rows.append(row)
                    continue
                base = base or row["instructions"]
                row["ratio_to_first"] = round(base / row["instructions"], 2)
                rows.append(row)
                print(f"{name:18s} {board}:{kernels:4s} MACs {row['macs']:>11,d}  instructions "
                      f"{row['instructions']:>12,d}  instr/MAC {row['instructions_per_mac']:6.2f}  "
                      f"x{row['ratio_to_first']:.2f}  identical to TFLM: {row['identical_to_tflm']}", flush=True)
            print(f"{name:18s} operators: {', '.join(ops)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
