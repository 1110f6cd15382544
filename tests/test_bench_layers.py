"""tools/bench_layers.py (issue 13, the per-layer comparison with CMSIS-NN's figures): its layers are
exactly the zoo's ResNet-8 and DS-CNN layers, convert to one operator of the stated MACs, and one layer
is measured on qemu-m4 with the baseline subtracted."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bl():
    sys.path.insert(0, str(ROOT / "tools"))  # tools/ is not a package; bench_layers imports bench_kernels
    import bench_layers

    return bench_layers


def _zoo_layers(name):
    """(kind, input shape, output channels, kernel, stride) of every MAC layer of the Keras zoo model."""
    from edgeattack import zoo

    model = zoo.build_model(name)
    found = []
    for layer in model.layers:
        kind = {"Conv2D": "conv", "DepthwiseConv2D": "depthwise", "Dense": "dense"}.get(type(layer).__name__)
        if kind is None:
            continue
        shape = tuple(int(d) for d in layer.input.shape[1:])
        if kind == "dense":
            found.append((kind, shape, layer.units, (1, 1), 1))
        else:
            out = shape[-1] if kind == "depthwise" else layer.filters
            found.append((kind, shape, out, tuple(layer.kernel_size), layer.strides[0]))
    return Counter(found)


@pytest.mark.parametrize("net, macs", [("resnet8", 12_501_632), ("dscnn", 2_656_768)])
def test_layers_are_the_zoo_networks_layers(bl, net, macs):
    """Every layer of the zoo network, with its multiplicity, and nothing else; the MACs add up to the
    whole network's (docs/benchmarks.md, Kernels)."""
    ours = Counter()
    for layer in bl.NETS[net]:
        ours[(layer.kind, layer.in_shape, layer.out_channels, layer.kernel, layer.stride)] += layer.count
    assert ours == _zoo_layers(net)
    assert sum(layer.macs * layer.count for layer in bl.NETS[net]) == macs


def test_converted_layers_have_the_stated_operator_shape_and_macs(bl, tmp_path):
    from edgeattack.tflite.analysis import layer_macs

    for layer in (bl.DSCNN[1], bl.RESNET8[7], bl.RESNET8[8]):  # depthwise, 1x1 stride-2 conv, dense
        rows = layer_macs(bl.layer_model(layer, tmp_path).read_bytes())
        assert [(r["op"], r["macs"]) for r in rows] == [(layer.op, layer.macs)]
        assert tuple(rows[0]["output_shape"][1:]) == layer.out_shape
    assert bl.DSCNN[1].macs == 25 * 5 * 64 * 9 and bl.RESNET8[7].macs == 8 * 8 * 64 * 32
    ops = [r["op"] for r in layer_macs(bl.baseline_model((25, 5, 64), tmp_path).read_bytes())]
    assert ops == ["STRIDED_SLICE"]


def test_totals_weight_by_macs_and_multiplicity(bl):
    rows = [{"net": "dscnn", "layer": "depthwise", "kernels": "dsp", "macs": 100, "count": 4, "instructions": 700.0},
            {"net": "dscnn", "layer": "pointwise", "kernels": "dsp", "macs": 300, "count": 4, "instructions": 600.0}]
    sums = {s["group"]: s for s in bl.totals(rows)}
    assert sums["dscnn_depthwise"]["dsp"]["instructions_per_mac"] == 7.0
    assert sums["dscnn_all"]["dsp"]["instructions_per_mac"] == pytest.approx((4 * 700 + 4 * 600) / 1600, abs=1e-3)
    assert sums["dscnn_pointwise"]["cmsis_nn"] == {"dsp": 2.1}


def test_unknown_net_is_one_clear_error(bl, capsys):
    with pytest.raises(SystemExit) as e:
        bl.main(["--nets", "resnet9"])
    assert e.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--nets resnet9" in err and "resnet8" in err


@pytest.mark.qemu
def test_one_layer_measured_on_qemu_m4(bl, tmp_path):
    """DS-CNN's depthwise layer with the dsp kernels: the layer is the inference minus the baseline
    (same input, same repeats), and its instructions per MAC lie in a plausible band (the full figure is
    docs/benchmarks.md's: 6.5)."""
    require_tool("arm-none-eabi-gcc", "qemu-system-arm", "make")
    import bench_kernels

    fw = bench_kernels._bench_fw_qemu()
    layer = bl.DSCNN[1]
    row = bl.measure_layer(fw, layer, "dsp", tmp_path, samples=1, slice_instr=0.0)
    assert row["macs"] == 72_000 and row["repeat"] == bl.repeats_for(72_000) > 1
    assert 0 < row["baseline_instructions"] < row["inference_instructions"]
    assert row["instructions"] == pytest.approx(row["inference_instructions"] - row["baseline_instructions"], abs=0.1)
    assert 3.0 < row["instructions_per_mac"] < 12.0, row
    assert row["inner_loop"]["macs"] >= 2
