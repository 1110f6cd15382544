"""run_study: resolve a study, build its cell graph and run what is missing on an executor.

    run_study("ci", "runs/ci")                        # local worker processes
    run_study("default", "runs/d", resume=True)       # only what is missing or stale
    run_study("study.yaml", "runs/x", ray="127.0.0.1:6379")

RUN/study.yaml is the resolved study. Cells are cached in RUN/cells/<hash>/ (cache.py); a cell whose
inputs failed is not run ("blocked"). Cell folders no longer in the study's graph are removed on
--resume (the report reads every cell folder). No TensorFlow in this process: cells run in workers.
The report is written by the caller (cli/study.py), which sits above both study/ and report/.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import EdgeAttackError, UsageError
from . import cache
from .graph import build_cells, context_for
from .spec import load_study

STUDY_FILE = "study.yaml"
# Ready cells start longest first (training runs, then what unblocks the most cells), so a long cell
# does not end up alone on the critical path.
FIRST = ("train", "backdoor", "poison", "compress", "extract", "invert", "transfer", "evaluate", "blackbox",
         "attack", "session")


def dataset_sha256(spec: str) -> str:
    """SHA-256 of a dataset file as given, or of a named dataset's arrays (shape, dtype and bytes of
    x_train, y_train, x_test, y_test in that order)."""
    from ..datasets import is_named, load_dataset
    from ..fileid import sha256_file

    p = Path(spec)
    if not is_named(spec) and p.is_file():
        return sha256_file(p)
    data = load_dataset(spec)
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_test, data.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class Progress:
    """One line on stderr per change: cells done / running (where) / left."""

    def __init__(self, total: int, enabled: bool = True, stream=None):
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()

    def show(self, done: int, running: dict, failed: int, event: str = "") -> None:
        if not self.enabled:
            return
        left = self.total - done - len(running) - failed
        where = ", ".join(f"{what} @ {host}" for what, host in running.values())
        line = (f"[study {time.monotonic() - self.t0:5.0f}s] {done}/{self.total} done, {len(running)} "
                f"running, {left} left" + (f", {failed} failed" if failed else "")
                + (f" | {event}" if event else "") + (f" | running: {where}" if where else ""))
        if len(line) > 400:
            line = line[:397] + "..."

        print(line, file=self.stream, flush=True)


def describe_cell(spec: dict) -> str:
    lab = spec["labels"]
    bits = [spec["kind"]] + [str(lab[k]) for k in ("recipe", "attack", "crafted_on", "board")
                             if lab.get(k) not in (None, "")]
    return " ".join(bits)


def _write_study(run: Path, study: dict) -> None:
    import yaml

    from ..atomic import write_text

    write_text(run / STUDY_FILE, yaml.safe_dump(study, sort_keys=False, default_flow_style=None))


def prepare_run(study_ref, out, *, resume: bool, force: bool, energy: str | None) -> tuple[dict, Path, bool]:
    """(resolved study, run folder, whether to empty it first); checks only, writes nothing."""
    study = load_study(study_ref, energy=energy)
    run = Path(out)
    if run.exists() and not run.is_dir():
        raise UsageError(f"{run} is a file; give a folder for the study's run (-o RUN/)")
    used = run.is_dir() and any(run.iterdir())
    if used and not resume and not force:
        what = "holds a study run" if (run / STUDY_FILE).exists() else "is not empty"
        raise UsageError(f"{run} {what}: pass --resume to continue it (only missing or stale cells "
                         f"run), --force to start over, or choose another -o")
    if used and resume and not (run / STUDY_FILE).exists():
        raise UsageError(f"{run} is not a study run folder (no {STUDY_FILE}): nothing to resume")
    if not used:
        from ..atomic import check_output

        check_output(run, True)  # a folder we may create
    return study, run, used and force and not resume


def run_study(study_ref, out, *, resume: bool = False, force: bool = False, ray: str | None = None,
              workers: int | None = None, energy: str | None = None, progress: bool = True) -> dict:
    """Run a study (a built-in name or a YAML file) into `out`; returns a summary of the run:
    {"run", "study", "cells", "computed", "cached", "failed": [...], "blocked", "seconds"}.
    The report is the caller's (the CLI calls edgeattack.report.write_report(RUN) after this)."""
    from .execute import check_runnable

    t0 = time.monotonic()
    if ray is not None:
        from .ray_exec import check_reachable

        check_reachable(ray)  # before anything is written
    study, run, wipe = prepare_run(study_ref, out, resume=resume, force=force, energy=energy)
    boards = sorted({b for p in study["parts"].values() for b in p["boards"]})
    if ray is None:
        for b in boards:
            check_runnable(b)
    context = context_for(study, dataset_sha256(study["dataset"]))
    cells = build_cells(study, context)
    executor = None
    if ray is not None:
        from .ray_exec import RayExecutor

        executor = RayExecutor(run, ray, study["threads"], boards_needed=boards)
    try:
        if wipe:
            shutil.rmtree(run)
        run.mkdir(parents=True, exist_ok=True)
        _write_study(run, study)
    except BaseException:
        if executor is not None:
            executor.close()
        raise
    # cell folders that are no longer part of this study (an edited study, a new tool version)
    keep = {c.hash for c in cells}
    for d in (cache.cells_dir(run).iterdir() if cache.cells_dir(run).is_dir() else []):
        if d.name not in keep:
            shutil.rmtree(d, ignore_errors=True)

    specs = {c.hash: c.spec() for c in cells}
    order = [c.hash for c in cells]
    done = {h for h in order if cache.is_done(run, h)}
    cached = len(done)
    prog = Progress(len(order), progress)
    if executor is None:
        from .local import LocalExecutor

        n = workers or min(4, os.cpu_count() or 1)
        todo = len(order) - cached
        executor = LocalExecutor(run, min(n, max(1, todo)), study["threads"]) if todo else None
    physical = _physical_boards(boards)
    running: dict = {}      # hash -> (description, where)
    failed: dict = {}       # hash -> error
    blocked: set = set()
    computed = 0
    prog.show(len(done), running, 0, f"{cached} cached" if cached else "start")
    try:
        while True:
            for h in order:
                if h in done or h in failed or h in blocked or h in running:
                    continue
                if any(i in failed or i in blocked for i in specs[h]["inputs"]):
                    blocked.add(h)
            ready = [h for h in order if h not in done and h not in failed and h not in blocked
                     and h not in running and all(i in done for i in specs[h]["inputs"])]
            ready.sort(key=lambda h: FIRST.index(specs[h]["kind"]) if specs[h]["kind"] in FIRST else len(FIRST))
            if not ready and not running:
                break
            for h in ready:
                if executor is None or executor.idle() <= 0:
                    break
                spec = specs[h]
                b = spec.get("board")
                if b in physical and any(specs[r].get("board") == b for r in running):
                    continue  # a physical board runs one cell at a time
                inputs = {i: {"dir": str(cache.cell_dir(run, i)),
                              "outputs": cache.read_cell(run, i)["outputs"],
                              "labels": specs[i]["labels"]} for i in spec["inputs"]}
                affinity = (b, spec["inputs"][0]) if b and spec["inputs"] else None
                where = executor.submit(spec, inputs, affinity)
                running[h] = (describe_cell(spec), where)
                prog.show(len(done), running, len(failed), f"start: {running[h][0]}")
            for reply in executor.poll(1.0):
                h = reply["hash"]
                spec = specs[h]
                desc, _ = running.pop(h)
                if reply.get("ok"):
                    extra = {"node_resources": reply["node_resources"]} if "node_resources" in reply else {}
                    cache.write_cell(run, spec, status="done", host=reply["host"],
                                     started=reply["started"], finished=reply["finished"],
                                     result=reply["result"], extra=extra)
                    done.add(h)
                    computed += 1
                    prog.show(len(done), running, len(failed), f"done: {desc}")
                else:
                    cache.write_cell(run, spec, status="failed", host=reply.get("host", "?"),
                                     started=reply.get("started"), finished=reply.get("finished"),
                                     error=reply.get("error"))
                    failed[h] = reply.get("error")
                    prog.show(len(done), running, len(failed), f"FAILED: {desc}: {reply.get('error')}")
    finally:
        if executor is not None:
            executor.close()
    summary = {"run": str(run), "study": study["name"], "cells": len(order), "computed": computed,
               "cached": cached, "failed": [{"hash": h, "cell": describe_cell(specs[h]), "error": e}
                                            for h, e in failed.items()],
               "blocked": len(blocked), "seconds": time.monotonic() - t0}
    return summary


def _physical_boards(boards) -> set:
    from ..device import board_for

    return {b for b in boards if not board_for(b).started_by_host}


def check_failures(summary: dict) -> None:
    """A study with failed cells ends in one error line (after its report is written)."""
    if summary["failed"]:
        f = summary["failed"][0]
        more = f" (and {len(summary['failed']) - 1} more)" if len(summary["failed"]) > 1 else ""
        raise EdgeAttackError(f"study {summary['study']}: cell {f['hash']} ({f['cell']}) failed: "
                              f"{f['error']}{more}; {summary['blocked']} cells blocked; fix it and rerun "
                              f"with --resume (see {summary['run']}/cells/{f['hash']}/cell.json)")
