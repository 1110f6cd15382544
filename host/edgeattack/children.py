"""The one child-process helper: every process edgeattack starts dies with it, is stopped politely
then killed, and is always reaped.

- `spawn(argv, ...)` is `subprocess.Popen` plus PR_SET_DEATHSIG (Linux): the kernel signals the child
  when the thread that started it exits, so a crashed or SIGKILLed edgeattack leaves no QEMU, agent,
  ssh or ser2net behind. The child is also remembered until it is reaped, and `stop_all()` (run at
  interpreter exit) stops whatever is left.
- `stop(proc)` closes its stdin, sends SIGTERM, waits up to `grace_s`, then SIGKILLs; it returns the
  exit code once the process is reaped.
- `run(argv, timeout=...)` runs a child to completion and reaps it on timeout or on any exception.
- `running(argv, ...)` is a context manager around spawn/stop.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Iterator

_PR_SET_DEATHSIG = 1
_live: "weakref.WeakSet[subprocess.Popen]" = weakref.WeakSet()
_live_lock = threading.Lock()


def die_with_parent(sig: int = signal.SIGKILL):
    """A preexec_fn: deliver `sig` to the child when its parent thread exits; if the parent is
    already gone when this runs (it died between fork and prctl), exit at once."""
    parent = os.getpid()

    def preexec() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DEATHSIG, int(sig), 0, 0, 0)
        except (OSError, AttributeError):  # not Linux: stop() and stop_all() still reap it
            return
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def spawn(argv, *, deathsig: int = signal.SIGKILL, **popen_kwargs) -> subprocess.Popen:
    """Start `argv` like subprocess.Popen, tied to this process's lifetime (see the module doc).

    `deathsig` is the signal the child gets when we die: SIGKILL by default; SIGTERM for programs
    that must clean up (ssh closes its forwards)."""
    if sys.platform.startswith("linux"):
        popen_kwargs.setdefault("preexec_fn", die_with_parent(deathsig))
    proc = subprocess.Popen(argv, **popen_kwargs)
    with _live_lock:
        _live.add(proc)
    return proc


def stop(proc: subprocess.Popen | None, grace_s: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
    """Stop `proc` (close stdin, `sig`, wait `grace_s`, SIGKILL) and reap it. Idempotent.

    Returns the exit code (negative: the signal that ended it), None for no process."""
    if proc is None:
        return None
    if proc.stdin is not None:
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    proc.wait()
    with _live_lock:
        _live.discard(proc)
    return proc.returncode


@contextlib.contextmanager
def running(argv, *, grace_s: float = 5.0, **spawn_kwargs) -> Iterator[subprocess.Popen]:
    """spawn() on entry, stop() on exit (also on exceptions and KeyboardInterrupt)."""
    proc = spawn(argv, **spawn_kwargs)
    try:
        yield proc
    finally:
        stop(proc, grace_s=grace_s)


@dataclass
class ChildResult:
    returncode: int | None  # None: killed after the timeout; negative: killed by that signal
    stdout: str | bytes
    stderr: str | bytes

    @property
    def crashed(self) -> bool:
        return self.returncode is not None and self.returncode < 0

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def run(argv, *, timeout: float, input: bytes | str | None = None, env: dict | None = None,
        text: bool = False, cwd=None) -> ChildResult:
    """Run `argv` to completion, capturing stdout and stderr; on timeout kill it (returncode None).
    The child is reaped on every path, exceptions and KeyboardInterrupt included."""
    kwargs = dict(stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    if text:
        kwargs.update(text=True, errors="replace")
    proc = spawn(argv, **kwargs)
    try:
        try:
            out, err = proc.communicate(input, timeout=timeout)
            return ChildResult(proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return ChildResult(None, out, err)
    finally:
        stop(proc, grace_s=0.0, sig=signal.SIGKILL)


def run_python(args: list[str], timeout: float) -> ChildResult:
    """`run([sys.executable, *args])` with text output: helper processes that may crash (TFLM
    segfaults on a too-small arena)."""
    return run([sys.executable, *args], timeout=timeout, text=True)


def live() -> list[subprocess.Popen]:
    """Children spawned here and not yet reaped (for tests and diagnostics)."""
    with _live_lock:
        return [p for p in _live if p.poll() is None]


@atexit.register
def stop_all(grace_s: float = 2.0) -> None:
    """Stop every child still running (interpreter exit; PR_SET_DEATHSIG covers crashes)."""
    with _live_lock:
        procs = list(_live)
    for p in procs:
        stop(p, grace_s=grace_s)
