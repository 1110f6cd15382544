"""The dsp kernel set's special paths against TFLM on the host, on shapes the randomized suite
(tests/test_fwrt_bitexact.py: filters of 1-8 channels, kernels of 1-4 taps a side) rarely draws:
depthwise 3x3 over channels in multiples of 4 (the tap-table-free path, interior windows and edge
patches, strides 1 and 2), the packed four-output requantization after narrow 1x1 and 3x3
convolutions (odd and even channel counts), fused ReLU6 and no activation, and MEAN over the spatial
axes. Each model is converted full-integer and run by TFLM and by the C runtime built with the ref and
the dsp set; outputs must be byte-identical."""
from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import require_tool

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# (height, width, channels, depthwise stride, padding, conv filters, activation)
CASES = [
    (9, 9, 8, "1", "same", 6, "relu6"),
    (10, 10, 4, "2", "valid", 5, None),
    (7, 6, 12, "1", "same", 16, None),
    (9, 8, 16, "2", "same", 3, "relu6"),
    (3, 3, 8, "1", "same", 8, None),
]


def _model(case, seed):
    import tf_keras as keras

    h, w, c, stride, padding, filters, act = case
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((h, w, c), batch_size=1)
    x = keras.layers.Conv2D(c, 3, padding="same")(x)  # a 3x3 convolution of narrow depth
    x = keras.layers.DepthwiseConv2D(3, strides=int(stride), padding=padding)(x)
    if act:
        x = keras.layers.ReLU(max_value=6.0)(x)
    x = keras.layers.Conv2D(filters, 1)(x)  # pointwise, even or odd channel count
    if act:
        x = keras.layers.ReLU(max_value=6.0)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)  # MEAN over height and width
    model = keras.Model(inp, x)
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # weights and biases of varied size, so the scales vary per channel
        ws = layer.get_weights()
        if ws:
            layer.set_weights([v * rng.uniform(0.2, 3.0, size=v.shape[-1:]).astype(np.float32) for v in ws])
    return model


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}x{c[2]}-s{c[3]}-{c[4]}-f{c[5]}" for c in CASES])
def test_dsp_paths_match_tflm(case):
    require_tool("cc", "make")
    from tflite_micro.python.tflite_micro import runtime

    from edgeattack.compression.convert import to_tflite
    from edgeattack.firmware.hostrt import run_host
    from edgeattack.tflite.align import align_16

    model = _model(case, seed=sum(case[:3]))
    rng = np.random.default_rng(1)
    calib = rng.normal(0.0, 1.0, size=(32, *model.input_shape[1:])).astype(np.float32)
    data = align_16(to_tflite(model, "int8", calib))
    xs = rng.integers(-128, 128, size=(6, 1, *model.input_shape[1:]), dtype=np.int8)
    interp = runtime.Interpreter.from_bytes(data, arena_size=256 * 1024)
    expected = []
    for x in xs:
        interp.set_input(x, 0)
        interp.invoke()
        expected.append(interp.get_output(0).copy())
    expected = np.concatenate(expected)
    assert len(np.unique(expected)) > 3  # not a degenerate, saturated output
    for kernels in ("ref", "dsp"):
        got = run_host(data, xs, kernels).reshape(expected.shape)
        assert got.tobytes() == expected.tobytes(), (kernels, np.abs(got.astype(int) - expected).max())
