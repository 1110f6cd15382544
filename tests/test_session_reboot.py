"""Sessions that survive device reboots with queries in flight (docs/protocol.md "Reboots"):
emu-tflm (the agent killed with SIGKILL and started again on the same pty) and qemu-m4 (QEMU's
`system_reset` through its monitor). The full figure (5 resets in 500 records) is
tools/bench_reboot.py's; this is the same code at a reduced scale.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from edgeattack.device import start_board
from test_session_runner import no_orphans  # noqa: F401 - the autouse orphan check

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_reboot", ROOT / "tools" / "bench_reboot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def setup(tiny_tflite, tiny_dataset, tmp_path):
    model = tmp_path / "model.tflite"
    shutil.copy(tiny_tflite, model)
    _, _, x_test, y_test = tiny_dataset
    inputs = tmp_path / "in.npz"
    np.savez(inputs, x=x_test[:100], y=y_test[:100], ids=np.arange(100, dtype=np.int64))
    return model, inputs


def run_with_resets(board_name, model, inputs, tmp_path, resets):
    bench = load_bench()
    board = start_board(board_name, model)
    try:
        bench.session_with_resets(board, model, inputs, tmp_path / "ref", inflight=8)
        summary = bench.session_with_resets(board, model, inputs, tmp_path / "resets",
                                            bench.reset_points(100, resets), inflight=8)
    finally:
        board.stop()
    row = bench.check(tmp_path / "ref", tmp_path / "resets", summary, resets)
    assert row["identical"] and row["each_once"], row  # same answers, every record exactly once
    assert row["reboots_seen"] == resets, row
    assert row["inferences_run"] == row["records"] == 100, row  # summed over the boots
    # queries were on the wire when the resets hit (one reset may fall between an answer and the
    # next query's INFER: its count is 0)
    assert len(row["in_flight_at_resets"]) == resets and sum(row["in_flight_at_resets"]) > 0, row
    # only queries already sent when a reset hit can have run unseen (counting every request
    # unanswered when the host noticed the restart also took those sent to the dead device)
    assert row["inferences_unobserved"] <= sum(row["in_flight_at_resets"]), row
    assert summary["status"] == "complete" and summary["link"]["reboots"] == resets
    return row


def test_emu_tflm_session_survives_agent_kills(setup, tmp_path):
    model, inputs = setup
    run_with_resets("emu-tflm", model, inputs, tmp_path, resets=2)


@pytest.mark.qemu
def test_qemu_m4_session_survives_system_reset(setup, tmp_path):
    require_tool("qemu-system-arm", "arm-none-eabi-gcc")
    model, inputs = setup
    run_with_resets("qemu-m4", model, inputs, tmp_path, resets=3)
