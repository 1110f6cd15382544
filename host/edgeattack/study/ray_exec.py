"""The Ray executor (`study --ray ADDRESS`): every cell a Ray task on an existing cluster.

A board-bound cell asks for the custom resource `board:<name>` (one unit), so it runs only on a node
that declares that board and never two at once per unit declared. A task gets its input cells'
output files as bytes, runs the cell in a temporary folder on its node with the same code as a local
worker (execute.run_cell), and returns its output files; the driver writes them into RUN/cells/<hash>/
and writes cell.json last, exactly as the local executor does, so the cache is one and the same.
"""
from __future__ import annotations

import socket
from pathlib import Path

from ..errors import UsageError

CONNECT_TIMEOUT_S = 5.0


def check_reachable(address: str) -> tuple[str, int]:
    """HOST:PORT of a Ray cluster's head (GCS), checked with a TCP connect: an unreachable address
    is one line, not Ray's minutes of retries."""
    host, sep, port = address.rpartition(":")
    if address.startswith("ray://"):
        raise UsageError(f"--ray {address}: give the cluster's GCS address HOST:PORT (as `ray start "
                         f"--head` prints it), not a Ray Client ray:// URL")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--ray {address}: give the Ray cluster's address as HOST:PORT (e.g. 127.0.0.1:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        raise UsageError(f"--ray {address}: no Ray cluster reachable there ({e.strerror or e}); start one "
                         f"with `ray start --head --port {port}` or check the address") from None
    return host, int(port)


_POOL = None  # this Ray worker process's open boards, kept across its tasks (see _worker_pool)


def _worker_pool():
    """The DevicePool of this Ray worker process: a board the host starts (emulated, QEMU) stays
    open for the worker's later cells on the same board and model, as in a local worker, instead of
    starting once per cell. Its boards die with the worker (they are started with
    edgeattack.children) and are stopped at the worker's exit."""
    global _POOL
    if _POOL is None:
        import atexit

        from .execute import DevicePool

        _POOL = DevicePool()
        atexit.register(_POOL.close)
    return _POOL


def _files(folder: Path, rels) -> dict:
    return {rel: (folder / rel).read_bytes() for rel in rels}


def _task(spec: dict, inputs: dict, threads: int) -> dict:
    """Runs on a Ray worker: unpack inputs, run the cell, return its files."""
    import os
    import tempfile
    import traceback

    import ray

    from ..device import board_for
    from ..errors import EdgeAttackError as _E
    from . import cache
    from .execute import fix_threads, run_cell

    fix_threads(threads)
    node = ray.get_runtime_context().get_node_id()
    started = cache.now()
    reply = {"hash": spec["hash"], "node_id": node, "host": f"ray:{node[:12]}/{socket.gethostname()}/"
                                                            f"pid{os.getpid()}", "started": started}
    with tempfile.TemporaryDirectory(prefix="edgeattack-cell-") as tmp:
        run = Path(tmp)
        local_inputs = {}
        for h, i in inputs.items():
            d = cache.cell_dir(run, h)
            for rel, data in i["files"].items():
                (d / rel).parent.mkdir(parents=True, exist_ok=True)
                (d / rel).write_bytes(data)
            local_inputs[h] = {"dir": d, "outputs": i["outputs"], "labels": i["labels"]}
        pool = _worker_pool()
        board = spec.get("board")
        try:
            d = cache.fresh(run, spec["hash"])
            result = run_cell(spec, d, local_inputs, pool)
            reply.update(ok=True, result=result, files=_files(d, result["outputs"].values()))
        except _E as e:
            reply.update(ok=False, error=str(e))
            if board:
                pool.drop(board)
        except Exception as e:  # noqa: BLE001 - the cell's failure, reported to the driver
            reply.update(ok=False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            if board:
                pool.drop(board)
        finally:
            if board and not board_for(board).started_by_host:
                pool.drop(board)  # a physical board's port is free for the next task, wherever it runs
    reply["finished"] = cache.now()
    return reply


class RayExecutor:
    kind = "ray"

    def __init__(self, run: Path, address: str, threads: int, boards_needed=()):
        check_reachable(address)
        try:
            import ray
        except ImportError:
            raise UsageError("--ray needs Ray: pip install 'edgeattack[ray]'") from None
        self.ray = ray
        self.run = Path(run)
        self.threads = threads
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR",
                     include_dashboard=False, configure_logging=True)
        except Exception as e:  # noqa: BLE001 - Ray's own exception types vary by version
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UsageError(f"--ray {address}: cannot join the Ray cluster ({first})") from None
        self.nodes = {n["NodeID"]: sorted(k for k in n.get("Resources", {}) if k.startswith("board:"))
                      for n in ray.nodes() if n.get("Alive")}
        have = set(ray.cluster_resources())
        for b in boards_needed:
            if f"board:{b}" not in have:
                self.close()
                raise UsageError(f"--ray {address}: no node declares board {b} (start a node with "
                                 f"`ray start --address {address} --resources '{{\"board:{b}\": 1}}'`)")
        self.remote = ray.remote(max_retries=0)(_task)
        self.pending: dict = {}  # ObjectRef -> hash
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def idle(self) -> int:
        return max(0, self.capacity - len(self.pending))

    def submit(self, spec: dict, inputs: dict, affinity=None) -> str:
        payload = {h: {"outputs": i["outputs"], "labels": i["labels"],
                       "files": _files(Path(i["dir"]), set(i["outputs"].values()))}
                   for h, i in inputs.items()}
        resources = {f"board:{spec['board']}": 1} if spec.get("board") else {}
        ref = self.remote.options(num_cpus=1, resources=resources).remote(spec, payload, self.threads)
        self.pending[ref] = spec["hash"]
        return "ray" + (f" (board:{spec['board']})" if spec.get("board") else "")

    def poll(self, timeout: float) -> list[dict]:
        if not self.pending:
            return []
        ready, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=timeout)
        replies = []
        for ref in ready:
            h = self.pending.pop(ref)
            try:
                reply = self.ray.get(ref)
            except Exception as e:  # noqa: BLE001 - a worker or node lost
                reply = {"hash": h, "ok": False, "error": f"Ray task failed: {str(e).splitlines()[0]}",
                         "host": "ray", "started": None, "finished": None}
            if reply.get("ok"):
                d = self._unpack(h, reply.pop("files"))
                reply["dir"] = str(d)
            reply["node_resources"] = self.nodes.get(reply.get("node_id"), [])
            replies.append(reply)
        return replies

    def _unpack(self, h: str, files: dict) -> Path:
        from . import cache

        d = cache.fresh(self.run, h)
        for rel, data in files.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_bytes(data)
        return d

    def close(self) -> None:
        for ref in list(self.pending):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
        self.pending.clear()
        try:
            self.ray.shutdown()
        except Exception:  # noqa: BLE001
            pass
