"""A local study worker: `python -m edgeattack.study.worker RUN THREADS NAME`.

Reads one JSON task per line on stdin ({"spec": cell spec, "inputs": {...}}), runs the cell into
RUN/cells/<hash>/ and answers one JSON line on its protocol pipe (the original stdout; anything else
the libraries print goes to stderr, the worker's log). Boards it starts stay open for its later cells
(execute.DevicePool) and stop when stdin closes. The driver started it with edgeattack.children, so
it dies with the driver.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path


def _protocol_pipe():
    """The original stdout for answers; fd 1 then points at stderr so prints cannot corrupt them."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", buffering=1, encoding="utf-8")


def serve(run: Path, threads: int, name: str, stdin, answers) -> None:
    from ..errors import EdgeAttackError
    from . import cache
    from .execute import DevicePool, fix_threads, run_cell

    fix_threads(threads)
    pool = DevicePool()
    host = f"{cache.hostname()}/{name}"
    answers.write(json.dumps({"ready": name}) + "\n")
    try:
        for line in stdin:
            if not line.strip():
                continue
            task = json.loads(line)
            spec = task["spec"]
            inputs = {h: {**i, "dir": Path(i["dir"])} for h, i in task["inputs"].items()}
            started = cache.now()
            reply = {"hash": spec["hash"], "host": host, "started": started}
            try:
                d = cache.fresh(run, spec["hash"])
                reply["result"] = run_cell(spec, d, inputs, pool)
                reply["ok"] = True
            except EdgeAttackError as e:
                reply.update(ok=False, error=str(e))
                if spec.get("board"):
                    pool.drop(spec["board"])
            except Exception as e:  # noqa: BLE001 - reported as the cell's failure, the worker goes on
                traceback.print_exc()
                reply.update(ok=False, error=f"{type(e).__name__}: {e}")
                if spec.get("board"):
                    pool.drop(spec["board"])
            reply["finished"] = cache.now()
            answers.write(json.dumps(reply, default=str) + "\n")
    finally:
        pool.close()


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    run, threads, name = Path(args[0]), int(args[1]), args[2]
    answers = _protocol_pipe()
    serve(run, threads, name, sys.stdin, answers)  # its boards are stopped when it returns
    answers.close()
    sys.stderr.flush()
    os._exit(0)  # skip TensorFlow's slow interpreter teardown: nothing is left to clean up


if __name__ == "__main__":
    sys.exit(main())
