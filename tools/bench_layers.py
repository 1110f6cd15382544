#!/usr/bin/env python
"""CMSIS-NN-shaped layers through our kernels: instructions per MAC of each ResNet-8 and DS-CNN layer
on qemu-m4, beside the CMSIS-NN figures issue 13 states.

    nice python tools/bench_layers.py                        # every layer, --kernels ref and dsp
    python tools/bench_layers.py --nets dscnn --kernels dsp --json layers.json

The comparison figures are the ones issue 13 quotes for CMSIS-NN (ARM-software/CMSIS-NN at 99f736a,
GCC 12.2 -mcpu=cortex-m4 -O2, each layer timed on the same QEMU machine by SysTick under -icount
shift=0, minus an empty timed region): 2.20 instructions per MAC over ResNet-8's convolution and fully
connected layers with the DSP path, 3.15 with plain C; on DS-CNN shapes 7.8 for the depthwise 3x3 layer
and 2.1 for the pointwise (the issue does not say which path; -mcpu=cortex-m4 defines
__ARM_FEATURE_DSP, so CMSIS-NN's default build takes the DSP path, and they are set beside our dsp
kernels); about 2.8 for CMSIS-NN's layers weighted by DS-CNN's MACs. This project neither contains nor
downloads CMSIS-NN: nothing of it is built or run here, the figures are the issue's text.

Layers (MLPerf Tiny's shapes, the zoo's resnet8 and dscnn at width 1): each distinct layer shape is a
one-operator Keras model (Conv2D / DepthwiseConv2D with "same" padding and, where the network has one,
a fused ReLU; Dense) converted to int8 by ptq-int8's own conversion (edgeattack.compression.convert,
calibrated on uniform [0, 1) data; instruction counts do not depend on the weights' values). A shape
occurring twice in the network (ResNet-8's first stack, DS-CNN's four blocks) is measured once and
counted with its multiplicity in the totals.

Measurement: the firmware is built for each layer model with --kernels ref and dsp
(build_firmware(kernels=...)) and run on qemu-m4 under -icount shift=0 (tools/bench_fw_qemu.py's
measure: one guest instruction per ns, SysTick at 25 MHz so 1 tick = 40 instructions), median over
--samples random int8 inputs, each INFER running the model R times in one timed window (R chosen so a
window holds at least about 400,000 instructions; per-inference resolution 40 / R instructions), one
request in flight at a time so the next request's bytes do not arrive during a window. The figures
still move a little from run to run with the same inputs (at most 0.21% over three full runs; the
cause was not isolated, interrupts landing at varying points being the likely one).

What is subtracted (the counterpart of CMSIS-NN's empty timed region): the firmware's timed window also
holds the operator-free part of an inference (the window's tick reads and timestamp, the copy of the
input slot into the model's input tensor, the operator dispatch). For each layer the same firmware
measurement is made on a baseline model with the layer's input shape whose only operator is a
STRIDED_SLICE taking one element, with the same R; the layer's instructions are (layer model - baseline)
per inference, plus the baseline slice's own cost, which is measured once per kernel set as the
difference between a two-slice chain (2 elements, then 1) and the baseline on ResNet-8's input shape
(about 290 instructions with either kernel set, the generic STRIDED_SLICE walking its four
dimensions; adding it back keeps the layer from being credited with it). So the layer's figure is its
operator's whole invoke, per-call set-up included as CMSIS-NN's timed call includes its own, plus the
dispatch of one operator (a few instructions), and nothing else.

The inner-loop column is the kernel's inner loop in each layer's ELF (the innermost loop with the most
MACs per iteration; for the dsp 3x3 depthwise that is one pixel's four channels, requantization and
store included), costed by tools/bench_kernels.py's hot_loop: its instructions per MAC (CMSIS-NN's
inner matrix loop: 1.63 by the issue's count), and in parentheses bench_kernels' Cortex-M4
cycle estimate of that loop (an estimate from the TRM's timings, not a measurement). Every comparison
with CMSIS-NN here is in QEMU instructions, not cycles.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

import bench_kernels  # noqa: E402  (tools/: the hot-loop search and the bench_fw_qemu loader)

BOARD = "qemu-m4"
KERNELS = "ref,dsp"
MIN_WINDOW = 400_000  # instructions per timed window: sets R (repeats) for the small layers
# CMSIS-NN's figures as issue 13 states them (instructions per MAC on qemu-m4).
CMSIS = {"resnet8_conv_fc": {"dsp": 2.20, "ref": 3.15}, "dscnn_depthwise": {"dsp": 7.8},
         "dscnn_pointwise": {"dsp": 2.1}, "dscnn_all": {"dsp": 2.8}}


@dataclasses.dataclass(frozen=True)
class Layer:
    net: str
    name: str
    kind: str  # conv | depthwise | dense
    in_shape: tuple  # without the batch
    out_channels: int
    kernel: tuple = (1, 1)
    stride: int = 1
    relu: bool = True
    count: int = 1  # occurrences in the network

    @property
    def out_shape(self) -> tuple:
        if self.kind == "dense":
            return (self.out_channels,)
        h, w, _ = self.in_shape
        return (math.ceil(h / self.stride), math.ceil(w / self.stride), self.out_channels)

    @property
    def macs(self) -> int:
        """MACs as CMSIS-NN and layer_macs count them (padding taps included)."""
        if self.kind == "dense":
            return self.in_shape[0] * self.out_channels
        oh, ow, oc = self.out_shape
        taps = self.kernel[0] * self.kernel[1]
        return oh * ow * oc * taps * (1 if self.kind == "depthwise" else self.in_shape[2])

    @property
    def op(self) -> str:
        return {"conv": "CONV_2D", "depthwise": "DEPTHWISE_CONV_2D", "dense": "FULLY_CONNECTED"}[self.kind]

    def describe(self) -> str:
        ins = "x".join(map(str, self.in_shape))
        if self.kind == "dense":
            return f"{self.in_shape[0]} -> {self.out_channels}"
        k = "x".join(map(str, self.kernel))
        s = f" /{self.stride}" if self.stride > 1 else ""
        return f"{ins} {k}{s} -> {'x'.join(map(str, self.out_shape))}"


# MLPerf Tiny ResNet-8 on 32x32x3 (edgeattack.zoo._resnet8): conv, three stacks of two 3x3 convs
# (16, 32, 64 channels; stacks 2 and 3 stride 2 with a 1x1 stride-2 shortcut conv), dense 64 -> 10.
RESNET8 = (
    Layer("resnet8", "conv1", "conv", (32, 32, 3), 16, (3, 3)),
    Layer("resnet8", "stack1 conv a/b", "conv", (32, 32, 16), 16, (3, 3), count=2),
    Layer("resnet8", "stack2 conv a", "conv", (32, 32, 16), 32, (3, 3), stride=2),
    Layer("resnet8", "stack2 conv b", "conv", (16, 16, 32), 32, (3, 3), relu=False),
    Layer("resnet8", "stack2 shortcut", "conv", (32, 32, 16), 32, (1, 1), stride=2, relu=False),
    Layer("resnet8", "stack3 conv a", "conv", (16, 16, 32), 64, (3, 3), stride=2),
    Layer("resnet8", "stack3 conv b", "conv", (8, 8, 64), 64, (3, 3), relu=False),
    Layer("resnet8", "stack3 shortcut", "conv", (16, 16, 32), 64, (1, 1), stride=2, relu=False),
    Layer("resnet8", "dense", "dense", (64,), 10, relu=False),
)
# MLPerf Tiny KWS DS-CNN on 49x10x1 (edgeattack.zoo._dscnn): 10x4 stride-2 conv to 64 channels, four
# blocks of depthwise 3x3 + pointwise 1x1 64 -> 64, dense 64 -> 12.
DSCNN = (
    Layer("dscnn", "conv1", "conv", (49, 10, 1), 64, (10, 4), stride=2),
    Layer("dscnn", "depthwise", "depthwise", (25, 5, 64), 64, (3, 3), count=4),
    Layer("dscnn", "pointwise", "conv", (25, 5, 64), 64, (1, 1), count=4),
    Layer("dscnn", "dense", "dense", (64,), 12, relu=False),
)
NETS = {"resnet8": RESNET8, "dscnn": DSCNN}


def keras_layer(layer: Layer):
    from edgeattack.tfutil import keras

    k = keras()
    inp = k.Input(layer.in_shape)
    act = "relu" if layer.relu else None
    if layer.kind == "conv":
        out = k.layers.Conv2D(layer.out_channels, layer.kernel, strides=layer.stride, padding="same",
                              activation=act)(inp)
    elif layer.kind == "depthwise":
        out = k.layers.DepthwiseConv2D(layer.kernel, strides=layer.stride, padding="same", activation=act)(inp)
    else:
        out = k.layers.Dense(layer.out_channels, activation=act)(inp)
    return k.Model(inp, out)


def keras_baseline(in_shape: tuple, chained: bool = False):
    """The layer's input and one STRIDED_SLICE of one element (chained: 2 elements, then 1)."""
    from edgeattack.tfutil import keras

    k = keras()
    inp = k.Input(in_shape)
    rest = (slice(0, 1),) * (len(in_shape) - 1)
    # tf_keras turns slicing a symbolic tensor into a TFOpLambda (a STRIDED_SLICE when converted)
    x = inp[(slice(None), slice(0, 2 if chained else 1), *rest)]
    if chained:  # slicing the 2-element tensor again: not an identity, so the converter keeps it
        x = x[(slice(None), slice(0, 1), *rest)]
    return k.Model(inp, x)


def int8_model(model, path: Path, seed: int = 0) -> Path:
    """ptq-int8's own conversion, calibrated on uniform [0, 1) data, 16-byte aligned."""
    from edgeattack.compression.convert import to_tflite
    from edgeattack.tflite.align import align_16

    x = np.random.default_rng(seed).random((16, *model.input_shape[1:]), dtype=np.float32)
    path.write_bytes(align_16(to_tflite(model, "int8", x)))
    return path


def layer_model(layer: Layer, out_dir: Path) -> Path:
    from edgeattack import tfutil

    tfutil.set_seed(0)
    safe = f"{layer.net}-{layer.name}".replace(" ", "_").replace("/", "")
    return int8_model(keras_layer(layer), out_dir / f"{safe}.tflite")


def baseline_model(in_shape: tuple, out_dir: Path, chained: bool = False) -> Path:
    name = "x".join(map(str, in_shape)) + ("-chain" if chained else "")
    path = out_dir / f"baseline-{name}.tflite"
    return path if path.exists() else int8_model(keras_baseline(in_shape, chained), path)


def model_ops(path: Path) -> list[tuple[str, int]]:
    """[(operator, MACs)] of a converted model (edgeattack.tflite.analysis.layer_macs)."""
    from edgeattack.tflite.analysis import layer_macs

    return [(r["op"], int(r["macs"])) for r in layer_macs(path.read_bytes())]


def repeats_for(macs: int) -> int:
    """Repeats per timed window: at least about MIN_WINDOW instructions (assuming >= 1 per MAC)."""
    return max(1, min(1000, math.ceil(MIN_WINDOW / max(macs, 1))))


def _run(fw, path: Path, kernels: str, samples: int, repeat: int) -> dict:
    row = fw.measure(BOARD, path, samples, kernels, repeat=repeat, inflight=1)
    if "error" in row:
        raise RuntimeError(f"{path.name} ({kernels}) on {BOARD}: {row['error']}")
    return row


def slice_cost(fw, out_dir: Path, kernels: str, samples: int, in_shape=(32, 32, 3), repeat: int = 200) -> float:
    """Instructions of the baseline's own STRIDED_SLICE: chained (two slices) minus single."""
    one = _run(fw, baseline_model(in_shape, out_dir), kernels, samples, repeat)["instructions"]
    two = _run(fw, baseline_model(in_shape, out_dir, chained=True), kernels, samples, repeat)["instructions"]
    return float(two) - float(one)


def inner_loop(elf: Path) -> dict | None:
    """The kernel's inner loop in a one-layer ELF: over its functions, bench_kernels.hot_loop's innermost
    loop with the most MACs per iteration (pick="macs")."""
    best = None
    for name, insns in bench_kernels._functions(elf).items():
        lp = bench_kernels.hot_loop(insns, pick="macs")
        if lp and (best is None or (lp["macs"], -lp["instructions"]) > (best["macs"], -best["instructions"])):
            best = dict(lp, function=name)
    return best


def measure_layer(fw, layer: Layer, kernels: str, out_dir: Path, samples: int, slice_instr: float) -> dict:
    from edgeattack.firmware.build import build_firmware

    path = layer_model(layer, out_dir)
    ops = model_ops(path)
    if [op for op, _ in ops] != [layer.op] or ops[0][1] != layer.macs:
        raise RuntimeError(f"{path.name}: converted to {ops}, expected one {layer.op} of {layer.macs} MACs")
    repeat = repeats_for(layer.macs)
    full = _run(fw, path, kernels, samples, repeat)
    base = _run(fw, baseline_model(layer.in_shape, out_dir), kernels, samples, repeat)
    instr = float(full["instructions"]) - float(base["instructions"]) + slice_instr
    loop = inner_loop(build_firmware(path, BOARD, kernels=kernels).elf)
    return {"net": layer.net, "layer": layer.name, "op": layer.op, "shape": layer.describe(), "count": layer.count,
            "macs": layer.macs, "kernels": kernels, "repeat": repeat, "inference_instructions": full["instructions"],
            "baseline_instructions": base["instructions"], "slice_instructions": round(slice_instr, 2),
            "instructions": round(instr, 1), "instructions_per_mac": round(instr / layer.macs, 3),
            "ticks_spread": full["ticks_spread"],
            "inner_loop": None if loop is None else {k: loop[k] for k in ("function", "instructions", "macs",
                                                                           "instructions_per_mac", "cycles_per_mac")}}


def totals(rows: list[dict]) -> list[dict]:
    """MAC-weighted figures (sum of instructions / sum of MACs, multiplicity counted) beside CMSIS-NN's."""
    groups = {"resnet8_conv_fc": ("ResNet-8 conv + FC layers", lambda r: r["net"] == "resnet8"),
              "dscnn_depthwise": ("DS-CNN depthwise 3x3", lambda r: r["net"] == "dscnn" and r["layer"] == "depthwise"),
              "dscnn_pointwise": ("DS-CNN pointwise 1x1", lambda r: r["net"] == "dscnn" and r["layer"] == "pointwise"),
              "dscnn_all": ("DS-CNN all layers", lambda r: r["net"] == "dscnn")}
    out = []
    for key, (label, pick) in groups.items():
        entry = {"group": key, "label": label}
        for kernels in sorted({r["kernels"] for r in rows}):
            sel = [r for r in rows if r["kernels"] == kernels and pick(r)]
            if not sel:
                continue
            macs = sum(r["macs"] * r["count"] for r in sel)
            instr = sum(r["instructions"] * r["count"] for r in sel)
            entry[kernels] = {"macs": macs, "instructions": round(instr),
                              "instructions_per_mac": round(instr / macs, 3)}
        if len(entry) > 2:
            entry["cmsis_nn"] = CMSIS.get(key, {})
            out.append(entry)
    return out


def _ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}x" if ours is not None and theirs else "-"


def markdown(rows: list[dict], sums: list[dict], kernel_sets: list[str]) -> str:
    by = {(r["net"], r["layer"], r["kernels"]): r for r in rows}
    layers = list(dict.fromkeys((r["net"], r["layer"]) for r in rows))
    lines = ["| net | layer | op | shape | x | MACs | " + " | ".join(f"{k} instr/MAC" for k in kernel_sets)
             + f" | inner loop instr/MAC (est. cycles/MAC), {' / '.join(kernel_sets)} | CMSIS-NN dsp (issue)"
             + " | ours dsp / CMSIS-NN |",
             "|---|---|---|---|---:|---:|" + "---:|" * len(kernel_sets) + "---:|---:|---:|"]
    for net, name in layers:
        first = next(r for r in rows if (r["net"], r["layer"]) == (net, name))
        cells = [f"{by[(net, name, k)]['instructions_per_mac']:.2f}" if (net, name, k) in by else "-"
                 for k in kernel_sets]
        dsp = by.get((net, name, "dsp"))
        loops = [by[(net, name, k)]["inner_loop"] for k in kernel_sets if (net, name, k) in by]
        loop = " / ".join(f"{lp['instructions_per_mac']:.2f} ({lp['cycles_per_mac']:.2f})" if lp else "-"
                          for lp in loops)
        theirs = CMSIS.get(f"{net}_{name}", {}).get("dsp")
        ratio = _ratio(dsp["instructions_per_mac"] if dsp else None, theirs)
        lines.append(f"| {net} | {name} | {first['op']} | {first['shape']} | {first['count']} | {first['macs']:,} | "
                     + " | ".join(cells) + f" | {loop} | {theirs if theirs else '-'} | {ratio} |")
    lines += ["", "| MAC-weighted total | MACs | " + " | ".join(f"{k} instr/MAC" for k in kernel_sets)
              + " | CMSIS-NN dsp | ours dsp / CMSIS-NN | CMSIS-NN C | ours ref / CMSIS-NN C |",
              "|---|---:|" + "---:|" * len(kernel_sets) + "---:|---:|---:|---:|"]
    for s in sums:
        macs = next(s[k]["macs"] for k in kernel_sets if k in s)
        cells = [f"{s[k]['instructions_per_mac']:.2f}" if k in s else "-" for k in kernel_sets]
        c = s["cmsis_nn"]
        dsp_ratio = _ratio(s.get("dsp", {}).get("instructions_per_mac"), c.get("dsp"))
        ref_ratio = _ratio(s.get("ref", {}).get("instructions_per_mac"), c.get("ref"))
        approx = "about " if s["group"] == "dscnn_all" else ""
        theirs = approx + str(c["dsp"]) if "dsp" in c else "-"
        lines.append(f"| {s['label']} | {macs:,} | " + " | ".join(cells)
                     + f" | {theirs} | {dsp_ratio} | {c.get('ref', '-')} | {ref_ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default="resnet8,dscnn", help="comma-separated: resnet8, dscnn (default both)")
    ap.add_argument("--kernels", default=KERNELS, help=f"comma-separated kernel sets (default {KERNELS})")
    ap.add_argument("--layers", default="", help="only these layer names (comma-separated), e.g. depthwise")
    ap.add_argument("--samples", type=int, default=3, help="random inputs per measurement (default 3)")
    ap.add_argument("--json", type=Path, help="write the rows and totals as JSON here")
    args = ap.parse_args(argv)
    nets = [n for n in args.nets.split(",") if n]
    bad = [n for n in nets if n not in NETS]
    if bad:
        ap.error(f"--nets {','.join(bad)}: unknown; choose from {', '.join(NETS)}")
    kernel_sets = [k for k in args.kernels.split(",") if k]
    if not set(kernel_sets) <= {"ref", "dsp"}:
        ap.error(f"--kernels {args.kernels}: qemu-m4 runs ref and dsp; choose from those")
    only = {n for n in args.layers.split(",") if n}
    layers = [l for n in nets for l in NETS[n] if not only or l.name in only]
    if not layers:
        ap.error(f"--layers {args.layers}: no such layer in {', '.join(nets)}")
    if args.samples < 1:
        ap.error("--samples must be >= 1")
    fw = bench_kernels._bench_fw_qemu()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_layers_") as tmp:
        out_dir = Path(tmp)
        for kernels in kernel_sets:
            s = slice_cost(fw, out_dir, kernels, args.samples)
            print(f"{kernels}: the baseline's STRIDED_SLICE costs {s:.1f} instructions (added back)", flush=True)
            for layer in layers:
                row = measure_layer(fw, layer, kernels, out_dir, args.samples, s)
                rows.append(row)
                print(f"{kernels:4s} {layer.net:8s} {layer.name:16s} {row['shape']:26s} MACs {row['macs']:>10,d} "
                      f"R {row['repeat']:4d}  layer {row['instructions']:>12,.1f} instr "
                      f"(inference {row['inference_instructions']:,} - baseline {row['baseline_instructions']:,})"
                      f"  {row['instructions_per_mac']:.3f} instr/MAC", flush=True)
    sums = totals(rows)
    print()
    print(markdown(rows, sums, kernel_sets))
    if args.json:
        tmp_json = args.json.with_name(args.json.name + ".tmp")
        tmp_json.write_text(json.dumps({"board": BOARD, "rows": rows, "totals": sums, "cmsis_nn_figures": CMSIS},
                                       indent=2) + "\n")
        tmp_json.replace(args.json)  # nothing half-written
    return 0


if __name__ == "__main__":
    sys.exit(main())
