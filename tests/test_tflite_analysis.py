"""Static model figures, checked on a model built here with known weights: half the conv weights zero,
fully-connected weights with 4 levels per output unit."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from edgeattack.tflite import analysis
from edgeattack.tflite.reader import read_model


@pytest.fixture(scope="module")
def crafted(tiny_dataset):
    """(tflite bytes, facts computed from the Keras model) for PAD, CONV_2D (stride 2), DEPTHWISE_CONV_2D,
    ADD, RESHAPE, FULLY_CONNECTED, SOFTMAX."""
    import edgeattack.tfutil as tu

    keras = tu.keras()
    tu.set_seed(0)
    x_train = tiny_dataset[0]
    inp = keras.layers.Input((8, 8, 1))
    h = keras.layers.ZeroPadding2D(1)(inp)
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu6", name="conv")(h)
    d = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = keras.layers.Add()([h, d])
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(10, activation="softmax", name="fc")(h)
    model = keras.Model(inp, out)

    rng = np.random.default_rng(0)
    # Magnitudes in [0.5, 1] so no non-zero weight quantizes to 0 (per-channel scale = max / 127).
    def nonzero(shape):
        return (rng.uniform(0.5, 1.0, shape) * rng.choice([-1, 1], shape)).astype(np.float32)

    conv_k = nonzero((3, 3, 1, 8))
    conv_k[rng.random(conv_k.shape) < 0.5] = 0.0
    conv_k[0, 0, 0, :] = 1.0  # keep every channel non-empty
    dw_k = nonzero((3, 3, 8, 1))
    levels = np.array([-1.0, -0.5, 0.5, 1.0], np.float32)
    unit_scale = rng.uniform(0.5, 2, 10).astype(np.float32)
    choice = rng.integers(0, 4, (128, 10))
    choice[:4] = np.arange(4)[:, None]  # each unit uses all 4 levels
    fc_k = levels[choice] * unit_scale
    model.get_layer("conv").set_weights([conv_k, rng.normal(0, 0.1, 8).astype(np.float32)])
    model.get_layer("dw").set_weights([dw_k, rng.normal(0, 0.1, 8).astype(np.float32)])
    model.get_layer("fc").set_weights([fc_k, rng.normal(0, 0.1, 10).astype(np.float32)])

    from edgeattack.compression.convert import to_tflite

    converted = to_tflite(model, "int8", x_train[:50])  # ptq-int8's own conversion
    facts = {
        "params": model.count_params(),
        "conv_zeros": int((conv_k == 0).sum()),
        "weights": conv_k.size + dw_k.size + fc_k.size,
        # MACs from the Keras layer shapes: conv 4x4x8 outputs x 3x3x1, depthwise 4x4x8 x 3x3, dense 128 x 10.
        "macs": {"CONV_2D": 4 * 4 * 8 * 3 * 3 * 1, "DEPTHWISE_CONV_2D": 4 * 4 * 8 * 3 * 3,
                 "FULLY_CONNECTED": 128 * 10},
    }
    return converted, facts


def test_summary_of_crafted_model(crafted):
    data, facts = crafted
    s = analysis.summarize(data)
    json.dumps(s)
    assert s["operators"] == ["PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert s["distinct_operators"] == s["operators"]
    assert s["size_bytes"] == len(data)

    macs = {r["op"]: r["macs"] for r in s["macs"]["per_layer"]}
    for op, expected in facts["macs"].items():
        assert macs[op] == expected
    assert macs["ADD"] == macs["PAD"] == macs["RESHAPE"] == macs["SOFTMAX"] == 0
    add = next(r for r in s["macs"]["per_layer"] if r["op"] == "ADD")
    assert add["elements"] == 4 * 4 * 8
    assert s["macs"]["total"] == sum(facts["macs"].values())

    assert s["param_count"] == facts["params"]

    sp = s["sparsity"]
    assert sp["elements"] == facts["weights"]
    assert sp["zeros"] == facts["conv_zeros"]
    assert sp["overall"] == pytest.approx(facts["conv_zeros"] / facts["weights"])
    by_op = {r["op"]: r for r in sp["per_tensor"]}
    assert by_op["CONV_2D"]["fraction"] == pytest.approx(facts["conv_zeros"] / 72)
    assert by_op["DEPTHWISE_CONV_2D"]["zeros"] == 0

    distinct = {r["op"]: r for r in s["distinct_values_per_channel"]}
    assert distinct["FULLY_CONNECTED"]["max"] == 4 and distinct["FULLY_CONNECTED"]["channels"] == 10
    assert distinct["DEPTHWISE_CONV_2D"]["channels"] == 8 and distinct["DEPTHWISE_CONV_2D"]["max"] <= 9
    assert s["max_distinct_values_per_channel"] == max(r["max"] for r in distinct.values())

    (inp,), (out,) = s["inputs"], s["outputs"]
    assert inp["shape"] == [1, 8, 8, 1] and inp["dtype"] == "int8" and inp["zero_point"] == -128
    assert out["shape"] == [1, 10] and out["dtype"] == "int8"


def test_weight_bytes_and_gzip(crafted):
    data, _ = crafted
    info = read_model(data)
    consts = {t.buffer: info.buffers[t.buffer].tobytes() for t in info.tensors if t.is_constant}
    assert analysis.weight_buffer_bytes(info) == sum(len(b) for b in consts.values())
    # The 1,280 four-level FC weights dominate and compress well.
    gz = analysis.weight_buffer_gzip_bytes(info)
    assert gz < 0.7 * analysis.weight_buffer_bytes(info)
    assert gz == len(gzip.compress(b"".join(consts[i] for i in sorted(consts)), 9, mtime=0))


def test_alignment_check(tiny_tflite):
    from edgeattack.tflite.align import align_16

    raw = tiny_tflite.read_bytes()
    assert not analysis.is_aligned_16(raw)  # converter output: 4-byte alignment only
    assert analysis.is_aligned_16(align_16(raw))
