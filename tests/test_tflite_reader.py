"""The .tflite reader: real converter output in, operators/tensors/quantization out; bad files are one
UsageError line and never crash or hang."""
from __future__ import annotations

import json
import struct
import time

import numpy as np
import pytest

from edgeattack.errors import UsageError
from edgeattack.tflite.reader import read_model


def test_reads_operators_tensors_and_quantization(tiny_tflite):
    info = read_model(tiny_tflite)
    assert info.source == str(tiny_tflite)
    assert [op.name for op in info.operators] == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]

    conv = info.operators[0]
    assert conv.padding == "SAME" and conv.stride == (1, 1) and conv.dilation == (1, 1)
    assert conv.fused_activation == "RELU"
    pool = info.operators[1]
    assert pool.padding == "VALID" and pool.stride == (2, 2)
    assert (pool.options["filter_height"], pool.options["filter_width"]) == (2, 2)
    assert info.operators[3].fused_activation == "NONE"

    (inp,) = info.input_tensors
    (out,) = info.output_tensors
    assert inp.shape == (1, 8, 8, 1) and inp.dtype == "int8" and not inp.is_constant
    assert out.shape == (1, 10) and out.dtype == "int8"
    # Input in [0, 1] quantized to int8: scale 1/255, zero point -128 (what the converter picks).
    assert inp.scale == pytest.approx(1 / 255, rel=1e-6) and inp.zero_point == -128

    # Conv weights: [O, H, W, I] = [4, 3, 3, 1], int8, per-channel along axis 0, zero-points 0.
    w = info.tensors[conv.inputs[1]]
    assert w.shape == (4, 3, 3, 1) and w.dtype == "int8" and w.is_constant
    assert w.quant.per_channel and len(w.quant.scale) == 4 and w.quant.quantized_dimension == 0
    assert set(w.quant.zero_point) == {0}
    data = info.tensor_data(w.index)
    assert data.shape == (4, 3, 3, 1) and data.dtype == np.int8
    assert info.buffers[w.buffer].size == 36
    # Per-channel int8 weights use the full range in each channel: max |q| is 127.
    assert np.abs(data.astype(int)).reshape(4, -1).max(axis=1).tolist() == [127] * 4
    bias = info.tensors[conv.inputs[2]]
    assert bias.dtype == "int32" and bias.shape == (4,)

    # Activation tensors carry no data; every op's outputs feed the next op.
    for a, b in zip(info.operators, info.operators[1:]):
        assert a.outputs[0] in b.inputs
        assert not info.tensors[a.outputs[0]].is_constant
    assert info.operators[-1].outputs == info.outputs
    json.dumps(info.to_dict())  # JSON-able


def test_bytes_and_path_give_the_same_model(tiny_tflite):
    a, b = read_model(tiny_tflite), read_model(tiny_tflite.read_bytes(), name="m")
    assert b.source == "m"
    assert a.to_dict()["operators"] == b.to_dict()["operators"]
    assert a.to_dict()["tensors"] == b.to_dict()["tensors"]
    # Buffers are views of the file's bytes, at the recorded offsets.
    raw = tiny_tflite.read_bytes()
    for buf, off in zip(b.buffers, b.buffer_offsets):
        if off is not None:
            assert raw[off:off + buf.size] == buf.tobytes()


def _one_line_usage_error(data, name="m.tflite"):
    with pytest.raises(UsageError) as e:
        read_model(data, name=name)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{name}: not a valid .tflite model (")
    assert msg.endswith("give a model written by `edgeattack compress` or the TFLite converter")
    return msg


def test_not_a_model(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is a text file, not a flatbuffer at all\n")
    with pytest.raises(UsageError, match=r"notes\.txt: not a valid \.tflite model \(file identifier"):
        read_model(text)
    assert "too short" in _one_line_usage_error(b"abc")
    with pytest.raises(UsageError, match="no such model file"):
        read_model(tmp_path / "missing.tflite")


def test_wrong_file_identifier(tiny_tflite):
    data = bytearray(tiny_tflite.read_bytes())
    data[4:8] = b"TFL2"
    assert "file identifier is 'TFL2', expected 'TFL3'" in _one_line_usage_error(bytes(data))


def test_every_truncation_is_rejected_cleanly(tiny_tflite):
    data = tiny_tflite.read_bytes()
    t0 = time.monotonic()
    for n in list(range(0, 64)) + list(range(64, len(data), 13)):
        _one_line_usage_error(data[:n])
    assert time.monotonic() - t0 < 20


def test_offsets_pointing_outside_the_file(tiny_tflite):
    data = bytearray(tiny_tflite.read_bytes())
    data[0:4] = struct.pack("<I", len(data) + 100)  # root table offset past the end
    assert "outside the file" in _one_line_usage_error(bytes(data))

    # A vector that claims more elements than the file holds (the subgraphs vector's length).
    data = bytearray(tiny_tflite.read_bytes())
    root = struct.unpack_from("<I", data, 0)[0]
    vtable = root - struct.unpack_from("<i", data, root)[0]
    field = struct.unpack_from("<H", data, vtable + 8)[0]  # Model.subgraphs (slot 8)
    vec = root + field + struct.unpack_from("<I", data, root + field)[0]
    struct.pack_into("<I", data, vec, 1_000_000)
    assert "outside the file" in _one_line_usage_error(bytes(data))


def test_random_corruption_never_escapes_as_another_error(tiny_tflite):
    data = tiny_tflite.read_bytes()
    rng = np.random.default_rng(1234)
    t0 = time.monotonic()
    accepted = 0
    for _ in range(400):
        b = bytearray(data)
        for i in rng.integers(0, len(b), size=rng.integers(1, 8)):
            b[i] = int(rng.integers(0, 256))
        try:
            read_model(bytes(b))  # corrupting weight bytes leaves a valid model: fine
            accepted += 1
        except UsageError as e:
            assert "\n" not in str(e)
    assert 0 < accepted < 400
    assert time.monotonic() - t0 < 30
