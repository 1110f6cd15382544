"""write_report: RUN/summary.json, RUN/tables/*.csv and RUN/report.html from a run folder.

Everything is computed and drawn in memory first; only then are the files written, each atomically
(tables/ as a whole folder), so a failure leaves the previous report, never half of a new one.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..atomic import atomic_dir, json_text, write_text
from .folder import load_run
from .summary import summarize

SUMMARY = "summary.json"
TABLES = "tables"
REPORT = "report.html"


def _flat(row: dict) -> dict:
    """A CSV row: an interval [lo, hi] becomes two columns, other lists and mappings JSON text."""
    out = {}
    for k, v in row.items():
        if k.endswith("ci95") and (v is None or (isinstance(v, list) and len(v) == 2)):
            out[f"{k}_lo"], out[f"{k}_hi"] = (v if v is not None else (None, None))
        elif isinstance(v, (list, dict)):
            out[k] = json.dumps(v, sort_keys=True)
        else:
            out[k] = v
    return out


def csv_text(rows: list[dict]) -> str:
    flat = [_flat(r) for r in rows]
    columns = list(dict.fromkeys(k for r in flat for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in flat:
        w.writerow({k: "" if r.get(k) is None else r[k] for k in columns})
    return buf.getvalue()


def write_report(run_dir) -> Path:
    """Write the run's summary.json, tables/*.csv (one per non-empty table) and report.html; returns
    the report's path. A folder that is not a run (no study.yaml, no cells) is a UsageError and
    nothing is written."""
    from . import figures, page

    run = load_run(run_dir)
    summary = summarize(run)
    pngs = {f["id"]: figures.draw(f) for f in summary["figures"]}
    report = page.render(summary, pngs)
    tables = {name: csv_text(rows) for name, rows in summary["tables"].items() if rows}
    summary_text = json_text(summary) + "\n"

    with atomic_dir(run.path / TABLES, force=True) as tmp:
        for name, text in tables.items():
            (tmp / f"{name}.csv").write_text(text)
    write_text(run.path / SUMMARY, summary_text)
    write_text(run.path / REPORT, report)
    return run.path / REPORT
