"""TFLM arena search: every try in a child process (a too-small arena may segfault TFLM)."""
from __future__ import annotations

import numpy as np

from edgeattack.tflite.arena import arena_margin, find_arena_size, try_arena
from edgeattack.tflite.runtimes import TFLMRunner


def test_find_arena_size(tiny_tflite):
    model = tiny_tflite.read_bytes()
    res = find_arena_size(model)
    measured = res["measured"]
    assert measured > 0 and measured % 16 == 0
    assert res["with_margin"] == measured + res["margin"] == measured + arena_margin(measured)
    assert res["margin"] >= measured // 10 and res["margin"] % 16 == 0
    assert res["children"] <= 10 and res["seconds"] < 60
    # The measured size runs; anything below it does not (fails cleanly or crashes the child).
    assert try_arena(model, measured)
    assert not try_arena(model, measured - 16)
    assert not try_arena(model, measured // 2)
    assert not try_arena(model, 64)
    # And TFLM in this process gives the same output with the measured arena as with a huge one.
    x = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8, 1)
    np.testing.assert_array_equal(TFLMRunner(model, arena_size=measured).invoke_raw(x),
                                  TFLMRunner(model, arena_size=1 << 20).invoke_raw(x))


def test_margin_rule():
    assert arena_margin(1000) == 112 + 16  # 10% = 100 -> 112 (16-byte multiple), + 16 alignment
    assert arena_margin(2432) == 256 + 16
    assert arena_margin(16) == 16 + 16
