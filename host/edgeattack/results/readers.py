"""The results.jsonl and session.json files of a run folder (CONVENTIONS "Files") and their readers."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError

SCHEMA = 1
RESULTS = "results.jsonl"
SUMMARY = "session.json"
# A record's fields, in the order the session writes them (readers ignore fields they do not know).
RESULT_FIELDS = ("schema", "id", "source", "eps", "label", "model_sha256", "board", "pred",
                 "output_raw", "output", "device_ticks", "device_time_s", "rtt_s", "retries",
                 "warmup", "device_instructions", "time_estimated", "time_source", "energy_j",
                 "energy_source")


def record_key(rec: dict):
    """The identity of a non-warm-up record: (id, source, eps)."""
    eps = rec["eps"]
    return int(rec["id"]), str(rec["source"]), None if eps is None else float(eps)


def torn_tail(data: bytes) -> int:
    """Where a results file's complete lines end: anything after the last newline is a torn write
    (a crash mid-record)."""
    return data.rfind(b"\n") + 1


def read_results(path) -> list[dict]:
    """Records of a results.jsonl (a folder is taken to hold one); [] when there is none. A torn
    last line is ignored; any other bad line is a UsageError naming the line."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    if not path.exists():
        return []
    data = path.read_bytes()
    records = []
    for number, line in enumerate(data[:torn_tail(data)].splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or rec.get("schema") != SCHEMA:
                raise ValueError("not a schema 1 record")
        except ValueError as exc:
            raise UsageError(f"{path}: line {number} is not a valid record ({exc}); the file is "
                             f"damaged: move it away and start a new run") from None
        records.append(rec)
    return records


def read_summary(path) -> dict:
    """A run's session.json (a folder is taken to hold one)."""
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: is it a session's run folder?") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc})") from None
