"""Short libFuzzer runs of the firmware's flatbuffer reader / model loader and of its protocol engine
(ASan + UBSan): no crash, no sanitizer report. The long run (>= 1,000,000 executions) is tools/fuzz_fwrt.sh."""
from __future__ import annotations

import os
import subprocess

import pytest
from pathlib import Path

from conftest import require_tool

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("target", ["model", "frame"])
def test_fuzz_short_run(target):
    """model: the flatbuffer reader / model loader; frame: the protocol engine (receiver to replies)."""
    require_tool("clang", "make")
    p = subprocess.run([str(REPO / "tools" / "fuzz_fwrt.sh"), "50000"], capture_output=True, text=True,
                       timeout=900, env=dict(os.environ, TARGET=target))
    assert p.returncode == 0, p.stdout + p.stderr[-4000:]
    assert f"fuzz_fwrt: {target} OK:" in p.stdout, p.stdout
    execs = int(p.stdout.split("OK:")[1].split()[0])
    assert execs >= 50000, p.stdout


def test_fuzzer_findings_load_under_the_sanitizers():
    """Inputs the long fuzz runs found (kept in the seed corpus as found_*.tflite, so every fuzz run
    replays them): the sanitizer-built loader must take each without a report. The first: an operator
    with a scalar output (RESHAPE to shape []) made the per-channel pass read dims[-1]."""
    require_tool("cc", "make")
    from edgeattack.firmware.hostrt import host_plan

    found = sorted((REPO / "firmware_models" / "fuzz" / "corpus_model").glob("found_*.tflite"))
    assert found
    plan = host_plan(found[0].read_bytes())
    assert plan["output"]["shape"] == [] and plan["operators"] == 8
