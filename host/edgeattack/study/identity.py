""""The same summary" (CONVENTIONS "Files"): what two runs of a study must agree on, cell by cell.

Per done cell: its model_sha256, the SHA-256 of its adversarial .npz bytes, its records' identity
(results.readers.record_key with pred and output_raw; timing and host fields excluded), and the
model identities and metrics rows of transfer.json / backdoor.json. Resume and Ray runs are checked
against an uninterrupted local run with `run_identity(a) == run_identity(b)`.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import cache

# fields of transfer/backdoor rows that depend on timing or where a cell ran
_VOLATILE = {"wall_time_s", "wall_time_per_sample_s", "device_time_s", "device_time_total_s",
             "device_busy_fraction", "rtt_s", "energy_j"}


def _rows(path: Path) -> list:
    obj = json.loads(path.read_text())
    return [{k: v for k, v in r.items() if k not in _VOLATILE} for r in obj.get("metrics", [])]


def cell_identity(run: Path, h: str) -> dict:
    from ..fileid import sha256_file
    from ..results import read_results, record_key

    c = cache.read_cell(run, h)
    d = cache.cell_dir(run, h)
    out = {"kind": c["kind"], "labels": c["labels"], "model_sha256": c.get("model_sha256")}
    files = c.get("outputs") or {}
    if "adversarial" in files:
        out["adversarial_sha256"] = sha256_file(d / files["adversarial"])
    if "records" in files:
        recs = [r for r in read_results(d / files["records"]) if not r.get("warmup")]
        out["records"] = sorted((record_key(r), r["pred"], r["output_raw"], r["model_sha256"]) for r in recs)
    if c["kind"] in ("transfer", "backdoor", "evaluate"):
        out["rows"] = _rows(d / files["summary"])
    return out


def run_identity(run) -> dict:
    """{hash: cell identity} over every done cell of a run folder."""
    run = Path(run)
    return {d.name: cell_identity(run, d.name) for d in sorted(cache.cells_dir(run).iterdir())
            if cache.is_done(run, d.name)}
