"""compare_outputs: argmax agreement that does not hinge on near-ties (tflite/agreement.py)."""
from __future__ import annotations

import numpy as np

from edgeattack.tflite.agreement import compare_outputs, top1_margin


def test_near_ties_are_excluded_and_counted():
    # 6 inputs whose top two classes tie exactly (a barely trained model), 4 with a clear winner.
    tflm = np.full((10, 4), -100, np.int8)
    tflm[:6, 1] = tflm[:6, 2] = 20          # ties: argmax 1
    tflm[6:, 3] = 90
    # Another runtime rounding one LSB apart, as XNNPACK does on some CPUs: every tie flips.
    other = tflm.copy()
    other[:6, 2] += 1
    other[6:, 3] -= 1
    c = compare_outputs(tflm, other)
    assert c["n"] == 10 and c["max_lsb_diff"] == 1
    assert c["agree"] == 0.4             # what a plain argmax comparison reports
    assert (c["decided"], c["excluded"]) == (4, 6)
    assert c["agree_decided"] == 1.0     # where the prediction does not hinge on a tie
    np.testing.assert_array_equal(top1_margin(tflm), [0] * 6 + [190] * 4)


def test_decided_disagreement_is_reported_and_empty_cases():
    tflm = np.array([[10, 0, 0], [0, 10, 0]], np.int8)
    other = np.array([[0, 10, 0], [0, 10, 0]], np.int8)  # a real divergence on input 0
    c = compare_outputs(tflm, other)
    assert c["max_lsb_diff"] == 10 and c["decided"] == 0 and c["agree_decided"] is None
    assert c["agree"] == 0.5
    assert compare_outputs(np.zeros((0, 3), np.int8), np.zeros((0, 3), np.int8))["agree"] is None
    ok = compare_outputs(tflm, tflm)
    assert ok["max_lsb_diff"] == 0 and ok["decided"] == 2 and ok["agree_decided"] == 1.0
