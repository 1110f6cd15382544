"""Studies: a YAML file of parts (evasion, blackbox, transfer, backdoor, ...) run as a cached graph of
cells (train -> compress -> attack -> session) on local worker processes or a Ray cluster.

    from edgeattack.study import run_study, load_study, list_studies
    run_study("ci", "runs/ci")                 # RUN/study.yaml, RUN/cells/<hash>/cell.json

    spec      study files: schema, validation, defaults, built-in studies (builtin/*.yaml)
    graph     cells and their hashes
    cache     RUN/cells/<hash>/ and cell.json
    execute   running one cell (and the per-worker board pool)
    local     worker processes; worker: the worker's main
    ray_exec  Ray tasks
    run       run_study: the scheduler and the progress display

docs/studies.md documents the file format. Importing this package imports no TensorFlow.
"""
from __future__ import annotations

_LAZY = {"run_study": "run", "check_failures": "run", "load_study": "spec", "list_studies": "spec",
         "resolve": "spec", "build_cells": "graph", "read_cell": "cache", "is_done": "cache"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeattack.study' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_LAZY)
