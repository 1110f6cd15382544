"""Run a helper Python process that may crash (TFLM segfaults on a too-small arena, the align tool on a
bad file) and make sure it is reaped: it dies with us (PR_SET_DEATHSIG) and is killed on timeout."""
from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from dataclasses import dataclass

_PR_SET_DEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the explicit kill in run_python still reaps it


@dataclass
class ChildResult:
    returncode: int | None   # None: killed after the timeout; negative: killed by that signal
    stdout: str
    stderr: str

    @property
    def crashed(self) -> bool:
        return self.returncode is not None and self.returncode < 0


def run_python(args: list[str], timeout: float) -> ChildResult:
    """Run `sys.executable args...`; wait at most `timeout` seconds; always reap the child."""
    proc = subprocess.Popen([sys.executable, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
            return ChildResult(proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return ChildResult(None, out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
