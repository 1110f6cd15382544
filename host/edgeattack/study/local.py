"""The local executor: N worker processes (study/worker.py) on this machine.

Cells go to idle workers; a board-bound cell prefers the worker that already has its (board, model)
open, so a board starts once per worker and model. Workers are started with edgeattack.children (they
die with the driver, even on SIGKILL, and take their boards with them) and stopped by close().
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from pathlib import Path

from ..errors import EdgeAttackError


class _Worker:
    def __init__(self, name: str, proc: subprocess.Popen):
        self.name = name
        self.proc = proc
        self.buf = b""
        self.busy: str | None = None     # the hash of the cell it runs
        self.opened: set = set()         # (board, model input hash) it has started
        self.ready = False


class LocalExecutor:
    kind = "local"

    def __init__(self, run: Path, workers: int, threads: int):
        from .. import children

        self.run = Path(run)
        logs = self.run / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.sel = selectors.DefaultSelector()
        self.workers: list[_Worker] = []
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for k in range(max(1, workers)):
            name = f"worker-{k + 1}"
            log = open(logs / f"{name}.log", "ab")
            try:
                proc = children.spawn([sys.executable, "-m", "edgeattack.study.worker", str(self.run),
                                       str(threads), name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=log, env=env)
            finally:
                log.close()
            w = _Worker(name, proc)
            os.set_blocking(proc.stdout.fileno(), False)
            self.sel.register(proc.stdout, selectors.EVENT_READ, w)
            self.workers.append(w)

    def idle(self) -> int:
        return sum(w.busy is None for w in self.workers)

    def submit(self, spec: dict, inputs: dict, affinity=None) -> str:
        """Give the cell to an idle worker (one holding `affinity` open when there is one); returns
        where it runs."""
        idle = [w for w in self.workers if w.busy is None]
        w = next((w for w in idle if affinity is not None and affinity in w.opened), idle[0])
        if affinity is not None:
            w.opened.add(affinity)
        task = {"spec": spec, "inputs": {h: {**i, "dir": str(i["dir"])} for h, i in inputs.items()}}
        try:
            w.proc.stdin.write((json.dumps(task) + "\n").encode())
            w.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise EdgeAttackError(f"study {w.name} died (see {self.run}/logs/{w.name}.log)") from None
        w.busy = spec["hash"]
        return w.name

    def poll(self, timeout: float) -> list[dict]:
        """Replies of finished cells (each {"hash", "ok", "result" | "error", "host", ...})."""
        replies = []
        for key, _ in self.sel.select(timeout):
            w = key.data
            try:
                chunk = os.read(w.proc.stdout.fileno(), 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                self.sel.unregister(w.proc.stdout)
                code = w.proc.wait()
                raise EdgeAttackError(f"study {w.name} exited ({code}) while running a cell (see "
                                      f"{self.run}/logs/{w.name}.log)")
            w.buf += chunk
            while b"\n" in w.buf:
                line, w.buf = w.buf.split(b"\n", 1)
                msg = json.loads(line)
                if "ready" in msg:
                    w.ready = True
                    continue
                w.busy = None
                replies.append(msg)
        return replies

    def close(self) -> None:
        from .. import children

        for w in self.workers:  # closing stdin lets a worker stop its boards and exit by itself
            try:
                self.sel.unregister(w.proc.stdout)
            except (KeyError, ValueError):
                pass
            try:
                w.proc.stdin.close()
            except OSError:
                pass
        for w in self.workers:
            try:
                w.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            children.stop(w.proc, grace_s=5.0)
            if w.proc.stdout:
                w.proc.stdout.close()
        self.sel.close()
