"""The run folder's cell cache: RUN/cells/<hash>/ with cell.json written LAST and atomically.

A cell is done only when its cell.json says "done" (and names outputs that exist); anything else in
a cell folder (a crash, a SIGKILL, a failure) is stale and the folder is emptied before the cell
runs again. No TensorFlow here.
"""
from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

from ..atomic import write_json

CELL_FILE = "cell.json"
SCHEMA = 1


def cells_dir(run: Path) -> Path:
    return Path(run) / "cells"


def cell_dir(run: Path, h: str) -> Path:
    return cells_dir(run) / h


def read_cell(run: Path, h: str) -> dict | None:
    try:
        return json.loads((cell_dir(run, h) / CELL_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_done(run: Path, h: str) -> bool:
    c = read_cell(run, h)
    if not c or c.get("status") != "done" or c.get("hash") != h:
        return False
    d = cell_dir(run, h)
    return all((d / rel).exists() for rel in (c.get("outputs") or {}).values())


def fresh(run: Path, h: str) -> Path:
    """An empty folder for the cell (whatever a previous attempt left is removed)."""
    d = cell_dir(run, h)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


def write_cell(run: Path, spec: dict, *, status: str, host: str, started: str, finished: str,
               result: dict | None = None, error: str | None = None, extra: dict | None = None) -> dict:
    """cell.json (CONVENTIONS / STUDY_CONTRACT): the last file a cell writes."""
    result = result or {}
    obj = {"schema": SCHEMA, "hash": spec["hash"], "kind": spec["kind"], "part": spec["part"],
           "labels": spec["labels"], "params": spec["params"], "inputs": spec["inputs"],
           "board": spec.get("board"), "status": status, "host": host, "started": started,
           "finished": finished, "outputs": result.get("outputs", {}),
           "model_sha256": result.get("model_sha256"),
           "device_inferences": result.get("device_inferences")}
    if error:
        obj["error"] = error
    obj.update(extra or {})  # e.g. node_resources: the custom resources of the Ray node that ran it
    d = cell_dir(run, spec["hash"])
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / CELL_FILE, obj)
    return obj


def hostname() -> str:
    return socket.gethostname()
