"""Wire efficiency measured from the bytes a real Client writes (tools/bench_wire.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_wire", ROOT / "tools" / "bench_wire.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wire_efficiency_of_a_3072_byte_input():
    bench = load_bench()
    ours = bench.efficiency()
    assert ours["load_frames"] == 1
    # Bounded by the frame cost: 3,072 + 12 + 10 + 1 + 13 (LOAD) + 16 (INFER), less one byte per
    # 0x00 in the random data.
    assert 3072 + 12 + 11 + 16 <= ours["wire_bytes"] <= 3124
    assert ours["ratio"] >= 0.97
    db = bench.mlperf_efficiency()
    assert db["wire_bytes"] == len("db load 3072%") + 99 * len("db %") + 99 * 62 + len("db %") + 6
    assert 0.46 < db["ratio"] < 0.48
    assert ours["ratio"] > 2 * db["ratio"]


def test_db_stream_format():
    bench = load_bench()
    assert bench.mlperf_db_stream(bytes(range(33))) == (
        b"db load 33%db " + bytes(range(31)).hex().encode() + b"%db 1f20%")
