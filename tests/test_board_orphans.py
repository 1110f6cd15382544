"""SIGKILL of the process that started a board leaves no board process behind, for every board kind
that can be started here (emulator and qemu; the linux board's SSH tunnel is covered with deploy).
The board is started through the public API (edgeattack.device.start_board) in a child Python, which
is then killed outright: no stop(), no atexit, no finally runs."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from conftest import require_tool


def _state(pid: int) -> str | None:
    """The process state letter, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _kill_starter_and_wait(board: str, model) -> tuple[int, float]:
    script = textwrap.dedent(f"""
        import time
        from edgeattack.device import start_board
        b = start_board({board!r}, {str(model)!r})
        print(b.pid, flush=True)
        time.sleep(600)
    """)
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = starter.stdout.readline()
        assert line.strip().isdigit(), f"{board} did not start: {line!r}"
        pid = int(line)
        assert _state(pid) not in (None, "Z", "X")
        starter.kill()  # SIGKILL
        starter.wait()
        t0 = time.monotonic()
        while _state(pid) not in (None, "Z", "X") and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        return pid, time.monotonic() - t0
    finally:
        if starter.poll() is None:
            starter.kill()
        starter.wait()
        starter.stdout.close()


@pytest.mark.parametrize("board", ["emu-tflm", "emu-litert"])
def test_sigkill_of_the_parent_leaves_no_agent(board, tiny_tflite):
    pid, waited = _kill_starter_and_wait(board, tiny_tflite)
    assert _state(pid) in (None, "Z", "X"), f"agent {pid} survived its parent ({waited:.1f} s)"


@pytest.mark.qemu
def test_sigkill_of_the_parent_leaves_no_qemu(tiny_tflite):
    require_tool("qemu-system-arm", "arm-none-eabi-gcc")
    pid, waited = _kill_starter_and_wait("qemu-m4", tiny_tflite)
    assert _state(pid) in (None, "Z", "X"), f"QEMU {pid} survived its parent ({waited:.1f} s)"
