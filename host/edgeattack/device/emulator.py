"""Emulated boards (emu-litert, emu-tflm): the Python agent as a child process behind a real pty.

Wiring: the host creates a pseudo-terminal pair (os.openpty, slave in raw mode) and starts
`python -m edgeattack.agent --port fd://N` with the MASTER fd inherited; the host (and any other
command, via `--port`) talks to the SLAVE device node /dev/pts/M through pyserial, as it would to a
USB serial board. So every byte crosses a real tty, and the board's URL is an ordinary serial path
that can be closed and reopened (the client's reconnect) while the agent keeps its state.
The board object also holds one slave fd open for the pty's lifetime: otherwise the master reads EIO
whenever no client has the slave open.

Lifecycle (CONVENTIONS: Board lifecycle): start() spawns the agent and waits for its INFO; stop()
sends SIGTERM, waits, then SIGKILLs, and always reaps. The child gets PR_SET_DEATHSIG(SIGKILL), so
it dies with the thread that started it even if this process is killed outright, and runs in its own
session so a Ctrl-C in the terminal reaches only the host, which then stops it in order.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

from ..errors import DeviceError, UsageError

_PR_SET_DEATHSIG = 1


def die_with_parent_preexec():
    """A preexec_fn: SIGKILL the child when its parent (thread) dies; exit if it already has."""
    parent = os.getpid()

    def preexec():
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def stop_process(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM, wait up to grace_s, SIGKILL, wait: the process is reaped when this returns."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
        except ProcessLookupError:
            pass
    proc.wait()


class EmulatedBoard:
    """One emulated board: `url` is the pty slave path to open with link.transport.open_port.

    EmulatedBoard(profile, model_path, startup_timeout=60.0, python=sys.executable, agent_args=())
    Use as a context manager, or call start() / stop() (stop is idempotent and always reaps).
    """

    def __init__(self, profile, model_path, startup_timeout: float = 60.0, python: str | None = None,
                 agent_args=()):
        if profile.kind != "emulator":
            raise UsageError(f"board {profile.name} is a {profile.kind} board, not an emulator")
        self.profile = profile
        self.model_path = Path(model_path)
        self.startup_timeout = startup_timeout
        self.python = python or sys.executable
        self.agent_args = list(agent_args)
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.info: dict | None = None
        self._slave_fd: int | None = None
        self._log = None

    # lifecycle ----------------------------------------------------------------------------------

    def __enter__(self) -> "EmulatedBoard":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> "EmulatedBoard":
        if self.proc is not None:
            raise RuntimeError("board already started")
        if not self.model_path.is_file():
            raise UsageError(f"model {self.model_path} does not exist (give an existing .tflite file)")
        try:
            self._spawn()
            self.info = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self) -> None:
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # no echo, no line editing, 8-bit clean, before anyone writes
            self.url = os.ttyname(slave)
            self._log = tempfile.TemporaryFile(prefix="edgeattack-agent-")
            cmd = [self.python, "-m", "edgeattack.agent", "--model", str(self.model_path),
                   "--port", f"fd://{master}", "--runtime", self.profile.runtime,
                   "--board", self.profile.name, *self.agent_args]
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                pass_fds=(master,), env=env, start_new_session=True,
                preexec_fn=die_with_parent_preexec())
        except BaseException:
            os.close(slave)
            raise
        finally:
            os.close(master)  # the agent owns the master now
        self._slave_fd = slave

    def _wait_ready(self) -> dict:
        """Ask for INFO until the agent answers; fail early, with its output, if it exits."""
        from ..link.client import Client
        from ..link.transport import open_port

        deadline = time.monotonic() + self.startup_timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DeviceError(f"board {self.profile.name}: the agent exited with status "
                                  f"{self.proc.returncode} while starting: {self.agent_output()}")
            client = Client(lambda: open_port(self.url), timeout=0.5,
                            total_timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            try:
                return client.connect()
            except DeviceError as exc:
                last_error = exc  # the agent is still importing its runtime: ask again
            finally:
                client.close()
        raise DeviceError(f"board {self.profile.name}: the agent did not answer INFO on {self.url} "
                          f"within {self.startup_timeout:g} s ({last_error}); output: "
                          f"{self.agent_output()}")

    def agent_output(self, limit: int = 600) -> str:
        """The tail of the agent's stdout/stderr, on one line (for error messages)."""
        if self._log is None:
            return "(none)"
        try:
            self._log.seek(0)
            text = self._log.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return "(unavailable)"
        text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
        return (text[-limit:] if text else "(none)")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self) -> str | None:
        """None while the agent runs (or was never started / was stopped); else why it ended."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return (f"board {self.profile.name}: the agent exited with status {self.proc.returncode}: "
                f"{self.agent_output()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        try:
            if proc is not None:
                stop_process(proc)
        finally:
            if self._slave_fd is not None:
                os.close(self._slave_fd)
                self._slave_fd = None
            if self._log is not None:
                self._log.close()
                self._log = None


def start_emulated_board(profile, model_path, **kw) -> EmulatedBoard:
    """Start an emulated board and return it (call .stop(), or use it as a context manager)."""
    return EmulatedBoard(profile, model_path, **kw).start()
