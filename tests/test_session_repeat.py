"""INFER with a repeat count: every board kind gives the same outputs for repeat 1 and repeat N.

TFLM may reuse the input tensor's memory for later layers (FACTS "Known TFLM gotcha"), so a device
that sets the input once and invokes N times answers garbage from the second invoke on. This runs
the whole stack (session -> link -> agent or firmware) on each board kind this machine can start.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import require_tool
from edgeattack.results import read_results
from edgeattack.session import run_session

from test_session_runner import identity, no_orphans  # noqa: F401 - the autouse orphan check

BOARDS = [
    "emu-tflm",
    "emu-litert",
    pytest.param("qemu-m4", marks=pytest.mark.qemu),
]


@pytest.mark.parametrize("board", BOARDS)
def test_repeat_n_gives_the_outputs_of_repeat_1(board, tiny_tflite, tiny_dataset, tmp_path):
    if board.startswith("qemu"):
        require_tool("qemu-system-arm", "arm-none-eabi-gcc")
    model = tmp_path / "model.tflite"
    shutil.copy(tiny_tflite, model)
    _, _, x_test, y_test = tiny_dataset
    inputs = tmp_path / "in.npz"
    np.savez(inputs, x=x_test[:12], y=y_test[:12])
    once = run_session(board, model, inputs, out=tmp_path / "R1", progress=False)
    many = run_session(board, model, inputs, out=tmp_path / "R4", repeat=4, progress=False)
    r1 = read_results(tmp_path / "R1" / "results.jsonl")
    r4 = read_results(tmp_path / "R4" / "results.jsonl")
    assert len(r1) == len(r4) == 12
    assert identity(r4) == identity(r1)  # same pred and output_raw for every sample
    assert many["device"]["inferences_run"] == 4 * 12 and once["device"]["inferences_run"] == 12
    assert len({tuple(r["output_raw"]) for r in r1}) > 6  # outputs depend on the input
