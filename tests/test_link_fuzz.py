"""CI-sized run of tools/fuzz_frames.py (the full run is 100,000 inputs per target)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_frames", ROOT / "tools" / "fuzz_frames.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzz_decoder_and_server_2000_inputs():
    fuzz = load_fuzzer()
    counts = fuzz.run(examples=1000, seed_value=1234, verbose=False)
    assert counts == {"decoder": 1000, "server": 1000}
    reached = fuzz.COVERAGE
    # The inputs must actually reach what they are meant to test, or the run proves nothing.
    for key in ("decoder.frames", "decoder.drop.oversize", "decoder.drop.cobs", "decoder.drop.crc",
                "decoder.drop.length", "server.reply.INFER", "server.reply.LOAD", "server.replays",
                "server.gaps", "server.error.OFFSET", "server.error.NOT_LOADED",
                "server.error.VERSION", "server.error.BAD_REQUEST", "server.reply.SLOT_LOAD",
                "server.reply.PATCH", "server.reply.SLOT_INFER", "server.error.STALE",
                "server.error.SLOT", "server.error.SIZE", "server.error.NOT_SYNCED",
                "server.reply.INFO"):
        assert reached.get(key, 0) > 0, (key, reached)
