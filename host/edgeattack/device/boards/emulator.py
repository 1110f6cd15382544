"""Emulated boards (emu-litert, emu-tflm): the Python agent as a child process behind a real pty.

Wiring: the host creates a pseudo-terminal pair (os.openpty, slave in raw mode) and starts
`python -m edgeattack.agent --port fd://N` with the MASTER fd inherited; the host (and any other
command, via `--port`) talks to the SLAVE device node /dev/pts/M through pyserial, as it would to a
USB serial board. So every byte crosses a real tty, and the board's URL is an ordinary serial path
that can be closed and reopened (the client's reconnect) while the agent keeps its state.
The board object also holds one slave fd open for the pty's lifetime: otherwise the master reads EIO
whenever no client has the slave open.

Lifecycle (CONVENTIONS: Board lifecycle): start() spawns the agent (edgeattack.children: it dies
with the thread that started it even if this process is killed outright) and waits for its INFO;
stop() sends SIGTERM, waits, then SIGKILLs, and always reaps. The agent runs in its own session so a
Ctrl-C in the terminal reaches only the host, which then stops it in order.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import tty

from ... import children
from ...errors import DeviceError, UsageError
from ..board import BoardDriver, LinkTimeouts


class EmulatedBoard(BoardDriver):
    """The emulator driver: `url` is the pty slave path to open with link.transport.open_port.

    EmulatedBoard(profile, model_path, startup_timeout=60.0, python=sys.executable, agent_args=())
    Use as a context manager (it starts the board), or call start() / stop() (stop is idempotent
    and always reaps).
    """

    kind = "emulator"
    started_by_host = True
    link_timeouts = LinkTimeouts(1.0, 10.0)
    time_source = "host-wall"  # the agent times inferences with the host's clock: never MCU latency

    def __init__(self, profile, model_path=None, startup_timeout: float = 60.0, python: str | None = None,
                 agent_args=()):
        super().__init__(profile, model_path)
        if self.profile.kind != self.kind:
            raise UsageError(f"board {self.name} is a {self.profile.kind} board, not an emulator")
        self.startup_timeout = startup_timeout
        self.python = python or sys.executable
        self.agent_args = list(agent_args)
        self.proc: subprocess.Popen | None = None
        self._url: str | None = None
        self._slave_fd: int | None = None
        self._master_fd: int | None = None  # kept so a restarted agent serves the same pty
        self._log = None

    # lifecycle ----------------------------------------------------------------------------------

    def __enter__(self) -> "EmulatedBoard":
        if self.proc is None:
            self.start()
        return self

    @property
    def url(self) -> str | None:
        return self._url

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def prepare(self) -> None:
        """Check the model before the agent starts: a corrupt file is one line naming it (the
        agent would otherwise start and report the flatbuffer parser's own error)."""
        from ...tflite.reader import read_model

        read_model(self._model())

    def start(self, startup_timeout: float | None = None) -> "EmulatedBoard":
        if self.proc is not None:
            raise RuntimeError("board already started")
        if startup_timeout is not None:
            self.startup_timeout = startup_timeout
        if self.model_path is None or not self.model_path.is_file():
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
            self._url = os.ttyname(slave)
            self._log = tempfile.TemporaryFile(prefix="edgeattack-agent-")
            self._spawn_agent(master)
        except BaseException:
            os.close(slave)
            os.close(master)
            raise
        # This process keeps the master too (never reading it), so the pty outlives an agent that
        # dies: reboot() starts another on it, as a board reboots behind its USB serial port.
        self._master_fd = master
        self._slave_fd = slave

    def _spawn_agent(self, master: int) -> None:
        cmd = [self.python, "-m", "edgeattack.agent", "--model", str(self.model_path),
               "--port", f"fd://{master}", "--runtime", self.profile.runtime,
               "--board", self.profile.name, *self.agent_args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = children.spawn(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            pass_fds=(master,), env=env, start_new_session=True)

    def reboot(self) -> None:
        """Kill the agent outright (SIGKILL: a crash, a power cut) and start a fresh one on the same
        pty, without waiting for it: the device reboots with everything forgotten while the host's
        port stays open, and the host finds out from the protocol (ERROR NOT_SYNCED). Bytes the host
        writes meanwhile wait in the pty for the new agent."""
        if self.proc is None or self._master_fd is None:
            raise RuntimeError("board not started")
        proc, self.proc = self.proc, None
        children.stop(proc, grace_s=0.0, sig=signal.SIGKILL)
        self._spawn_agent(self._master_fd)

    def _wait_ready(self) -> dict:
        """Ask for INFO until the agent answers; fail early, with its output, if it exits."""
        from ...link.client import Client
        from ...link.transport import open_port

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

    def flash(self, *, dry_run: bool = False, echo=print, **options) -> dict:
        raise UsageError(f"board {self.name} is an emulator: nothing to flash; session/attack start it "
                         f"themselves (or keep one up with `edgeattack up --board {self.name} MODEL`)")

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
                children.stop(proc)
        finally:
            if self._slave_fd is not None:
                os.close(self._slave_fd)
                self._slave_fd = None
            if self._master_fd is not None:
                os.close(self._master_fd)
                self._master_fd = None
            if self._log is not None:
                self._log.close()
                self._log = None


DRIVER = EmulatedBoard
