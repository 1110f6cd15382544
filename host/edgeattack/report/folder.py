"""A study run folder as the report sees it: RUN/study.yaml and the cells under RUN/cells/<hash>/.

Only cells whose cell.json says "done" contribute numbers; failed cells are listed in the report.
A folder without study.yaml, or without a single cell, is refused with one line naming it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

STUDY_FILE = "study.yaml"
CELLS = "cells"
CELL_FILE = "cell.json"


@dataclass
class Cell:
    """One cell folder: its cell.json and where its files are."""

    dir: Path
    meta: dict
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def hash(self) -> str:
        return self.meta.get("hash") or self.dir.name

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "")

    @property
    def labels(self) -> dict:
        return self.meta.get("labels") or {}

    @property
    def done(self) -> bool:
        return self.meta.get("status") == "done"

    def label(self, name: str, default=None):
        value = self.labels.get(name)
        return default if value is None else value

    def output(self, role: str, default_name: str) -> Path | None:
        """A file of the cell: by its role in cell.json "outputs", else by its standard name."""
        rel = (self.meta.get("outputs") or {}).get(role)
        for cand in ([self.dir / rel] if rel else []) + [self.dir / default_name]:
            if cand.is_file():
                return cand
        found = sorted(self.dir.rglob(default_name))  # e.g. backdoor/backdoor.json
        return found[0] if found else None

    def json(self, role: str, default_name: str) -> dict | None:
        key = ("json", role, default_name)
        if key not in self._cache:
            path = self.output(role, default_name)
            self._cache[key] = _read_json(path) if path else None
        return self._cache[key]

    def records(self) -> list[dict]:
        """The cell's non-warm-up results.jsonl records ([] when it has none)."""
        if "records" not in self._cache:
            from ..results import read_results

            path = self.output("records", "results.jsonl")
            self._cache["records"] = [r for r in read_results(path) if not r.get("warmup")] if path else []
        return self._cache["records"]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not readable JSON ({exc}); the run folder is damaged: rerun the "
                         f"study with --resume to recompute that cell") from None


@dataclass
class RunFolder:
    path: Path
    study: dict
    cells: list[Cell]

    @property
    def done(self) -> list[Cell]:
        return [c for c in self.cells if c.done]

    def of_kind(self, *kinds: str) -> list[Cell]:
        return [c for c in self.done if c.kind in kinds]

    def by_hash(self, h: str) -> Cell | None:
        for c in self.cells:
            if c.hash == h:
                return c
        return None


def load_run(run_dir) -> RunFolder:
    """Read a run folder's study.yaml and cell.json files (a UsageError when it is not one)."""
    from ..yamlload import load_yaml

    path = Path(run_dir)
    if not path.is_dir():
        raise UsageError(f"{path}: no such folder; give the -o folder of `edgeattack study`")
    study_file = path / STUDY_FILE
    if not study_file.is_file():
        raise UsageError(f"{path}: not a study run folder (no {STUDY_FILE}); give the -o folder of "
                         f"`edgeattack study`")
    study = load_yaml(study_file) or {}
    if not isinstance(study, dict):
        raise UsageError(f"{study_file}: not a study (expected a mapping)")
    cells = []
    for cell_json in sorted((path / CELLS).glob(f"*/{CELL_FILE}")):
        cells.append(Cell(cell_json.parent, _read_json(cell_json)))
    if not cells:
        raise UsageError(f"{path}: the run has no cells ({CELLS}/<hash>/{CELL_FILE}); run "
                         f"`edgeattack study ... -o {path}` (or --resume it) first")
    return RunFolder(path, study, cells)
