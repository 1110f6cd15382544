"""16-byte alignment with TFLM's tool: aligned buffers, same graph, identical TFLM outputs."""
from __future__ import annotations

import numpy as np
import pytest

from edgeattack.errors import UsageError
from edgeattack.tflite.align import align_16, same_graph
from edgeattack.tflite.analysis import is_aligned_16
from edgeattack.tflite.reader import read_model
from edgeattack.tflite.runtimes import TFLMRunner


def test_align_repacks_without_changing_results(tiny_tflite, tiny_dataset):
    raw = tiny_tflite.read_bytes()
    info = read_model(raw)
    assert any(off % 16 for off in info.buffer_offsets if off is not None)
    aligned = align_16(raw, name="tiny")
    assert aligned != raw
    a_info = read_model(aligned)
    assert all(off % 16 == 0 for off in a_info.buffer_offsets if off is not None)
    assert same_graph(info, a_info) is None
    # Run both in TFLM: identical raw outputs on real samples and on extremes.
    x = np.concatenate([tiny_dataset[2][:20], np.zeros((1, 8, 8, 1), np.float32), np.ones((1, 8, 8, 1), np.float32)])
    before, after = TFLMRunner(raw), TFLMRunner(aligned)
    np.testing.assert_array_equal(before.predict_raw(x), after.predict_raw(x))
    # Aligning an aligned model returns it unchanged (its SHA-256 stays the device's).
    assert align_16(aligned) == aligned


def test_same_graph_reports_a_change(tiny_tflite):
    raw = bytearray(tiny_tflite.read_bytes())
    info = read_model(bytes(raw))
    w = info.tensors[info.operators[0].inputs[1]]
    raw[info.buffer_offsets[w.buffer]] ^= 0x01  # flip one weight bit
    assert "data differs" in same_graph(info, read_model(bytes(raw)))


def test_align_refuses_invalid_input_before_running_the_tool(tiny_tflite):
    # The tool segfaults on such input; it must never get it.
    with pytest.raises(UsageError, match="not a valid .tflite model"):
        align_16(tiny_tflite.read_bytes()[:1000], name="cut.tflite")
    with pytest.raises(UsageError, match="not a valid .tflite model"):
        align_16(b"hello world, not a model", name="hello.txt")


def test_aligned_fixture_flag(tiny_tflite):
    assert not is_aligned_16(tiny_tflite.read_bytes())
