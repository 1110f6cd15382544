"""Host runtimes: LiteRT and TFLM on the same int8 model; shared input quantization."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgeattack.errors import UsageError
from edgeattack.quant import quantize_input
from edgeattack.tflite.runtimes import LiteRTRunner, TFLMRunner, compare_runtimes


def test_input_details_and_quantized_inputs(tiny_tflite, tiny_dataset):
    model = tiny_tflite.read_bytes()
    x = tiny_dataset[2][:10]
    for runner in (TFLMRunner(model), LiteRTRunner(model)):
        d = runner.input_details
        assert d.shape == (1, 8, 8, 1) and d.dtype == np.int8 and d.quantized
        assert d.scale == pytest.approx(1 / 255, rel=1e-6) and d.zero_point == -128
        out = runner.invoke_raw(x[0])
        assert out.shape == (10,) and out.dtype == np.int8
        # A float sample is quantized exactly as quantize_input does it.
        q = quantize_input(x[0], d.scale, d.zero_point)
        np.testing.assert_array_equal(runner.invoke_raw(q), out)
        np.testing.assert_array_equal(runner.invoke_raw(x[0][None]), out)  # batch axis accepted
        raw = runner.predict_raw(x)
        assert raw.shape == (10, 10)
        np.testing.assert_array_equal(raw[0], out)
        probs = runner.predict(x)
        assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=1), 1.0, atol=0.05)


def test_tflm_matches_litert_reference_kernels(tiny_tflite, tiny_dataset):
    model = tiny_tflite.read_bytes()
    x = tiny_dataset[2][:40]
    a = TFLMRunner(model).predict_raw(x).astype(int)
    b = LiteRTRunner(model, resolver="reference").predict_raw(x).astype(int)
    assert len({tuple(r) for r in a}) > 10  # outputs depend on the input
    # FACTS: only FULLY_CONNECTED's double rounding separates them: at most a couple of LSB.
    assert np.abs(a - b).max() <= 2


def test_compare_runtimes_reference_kernels_match_tflm(tiny_tflite, tiny_dataset):
    """LiteRT's reference kernels are plain C on every CPU: the comparison that must be (nearly) exact."""
    model = tiny_tflite.read_bytes()
    x = tiny_dataset[2][:50]
    res = compare_runtimes(model, x, resolver="reference")
    assert res["n"] == 50
    assert 0 <= res["max_lsb_diff"] <= 2  # FACTS: FULLY_CONNECTED rounding differs by at most an LSB or two
    assert res["agree_decided"] == 1.0 and res["decided"] + res["excluded"] == 50
    # Independently: the largest raw difference between the two runtimes.
    a = LiteRTRunner(model, resolver="reference").predict_raw(x).astype(int)
    b = TFLMRunner(model).predict_raw(x).astype(int)
    assert res["max_lsb_diff"] == np.abs(a - b).max()


def test_compare_runtimes_xnnpack_counts_only_decided_inputs(tiny_tflite, tiny_dataset):
    """XNNPACK rounds per instruction set: agreement is asserted only where TFLM's top-1 margin exceeds
    the measured LSB difference, which holds on any x86-64 CPU; near-ties are counted, not judged."""
    model = tiny_tflite.read_bytes()
    x = tiny_dataset[2][:50]
    res = compare_runtimes(model, x)  # "auto": XNNPACK where it applies
    b = TFLMRunner(model).predict_raw(x).astype(int)
    a = LiteRTRunner(model).predict_raw(x).astype(int)
    diff = np.abs(a - b).max()
    assert res["max_lsb_diff"] == diff
    top2 = np.sort(b.reshape(50, -1), axis=1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) > diff
    assert res["decided"] == decided.sum() and res["excluded"] == 50 - decided.sum()
    if decided.any():
        same = a.reshape(50, -1).argmax(1) == b.reshape(50, -1).argmax(1)
        assert res["agree_decided"] == same[decided].mean()
        # a decided input can flip only if both top-2 outputs move by the full difference
        assert same[(top2[:, 1] - top2[:, 0]) > 2 * diff].all()


def test_bad_inputs(tiny_tflite):
    runner = TFLMRunner(tiny_tflite.read_bytes())
    with pytest.raises(UsageError, match="does not fit the model's input"):
        runner.invoke_raw(np.zeros((8, 9), np.float32))
    with pytest.raises(UsageError, match="outside int8"):
        runner.invoke_raw(np.full((8, 8, 1), 300, np.int32))
    with pytest.raises(UsageError, match="unknown LiteRT resolver"):
        LiteRTRunner(tiny_tflite.read_bytes(), resolver="fast")


def test_runtimes_are_not_imported_with_the_module():
    code = ("import sys, edgeattack.tflite.runtimes, edgeattack.tflite.export, edgeattack.tflite.arena,"
            " edgeattack.cli.export, edgeattack.cli.inspect;"
            "bad = [m for m in ('tensorflow', 'ai_edge_litert', 'tflite_micro') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("make", [TFLMRunner, LiteRTRunner])
def test_run_with_repeat_sets_the_input_before_every_invoke(make, tiny_tflite, tiny_dataset):
    """TFLM reuses the input tensor's memory for later layers (FACTS): a repeat that set the input
    once answered garbage. The agent serves INFER's repeat count through run()."""
    runner = make(tiny_tflite.read_bytes())
    for x in tiny_dataset[2][:5]:
        q = runner.prepare(x)
        once = np.array(runner.run(q), copy=True)
        np.testing.assert_array_equal(runner.run(q, repeat=3), once)
