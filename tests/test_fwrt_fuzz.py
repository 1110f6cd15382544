"""A short libFuzzer run of the C runtime's flatbuffer reader / model loader (ASan + UBSan): no crash,
no sanitizer report. The long run (>= 1,000,000 executions) is tools/fuzz_fwrt.sh."""
from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import require_tool

REPO = Path(__file__).resolve().parent.parent


def test_fuzz_model_loader_short_run():
    require_tool("clang", "make")
    p = subprocess.run([str(REPO / "tools" / "fuzz_fwrt.sh"), "50000"], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr[-4000:]
    assert "fuzz_fwrt: OK:" in p.stdout, p.stdout
    execs = int(p.stdout.split("OK:")[1].split()[0])
    assert execs >= 50000, p.stdout
