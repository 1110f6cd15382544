"""Writing results.jsonl: one record per device answer (CONVENTIONS "Files"), appended and flushed
as it comes, with a torn last line (a crash mid-write) cut off before a resumed run appends."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..results.readers import SCHEMA, torn_tail


def make_record(*, id: int, source: str, eps, label: int, model_sha256, board: str, result,
                warmup: bool) -> dict:
    """The record of one device answer (edgeattack.device.api.Result), fields in RESULT_FIELDS order."""
    r = result
    return {
        "schema": SCHEMA, "id": int(id), "source": source, "eps": eps, "label": int(label),
        "model_sha256": model_sha256, "board": board, "pred": int(r.pred),
        "output_raw": r.output_raw.tolist(),  # Python ints for integer outputs, floats otherwise
        "output": r.output.tolist(),
        "device_ticks": int(r.device_ticks), "device_time_s": float(r.device_time_s),
        "rtt_s": float(r.rtt_s), "retries": int(r.retries), "warmup": bool(warmup),
        "device_instructions": r.device_instructions, "time_estimated": bool(r.time_estimated),
        "time_source": r.time_source, "energy_j": r.energy_j, "energy_source": r.energy_source,
    }


def repair(path: Path) -> None:
    """Cut a torn last line off a results file, so appending continues on a clean line."""
    if not path.exists():
        return
    data = path.read_bytes()
    end = torn_tail(data)
    if end != len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())


def record_encoder():
    """A function giving exactly json.dumps(obj) for a results record, in about half the time.

    json.dumps builds a new C encoder (and a closure) for every call: at thousands of records per
    second that is a visible share of the host's time per record. This builds json.dumps' own C
    encoder once, with json.dumps' default settings, so the text is the same; only the circular-
    reference check is off (a record has no cycles). json.dumps itself where the C accelerator is
    missing.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.dumps
    default = json.JSONEncoder().default  # TypeError for what JSON cannot hold, as json.dumps
    encoder = make(None, default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False,
                   False, True)
    return lambda obj: "".join(encoder(obj, 0))
