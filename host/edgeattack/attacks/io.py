"""Attack outputs (CONVENTIONS "Files"): the adversarial .npz that `session` streams unchanged, and
the `attack.json` summary (a header and one metrics row per epsilon).

.npz: x_adv (E x N x ...), eps (E; an unbounded minimization attack's epsilon, None in Python, is
stored as inf here and as null in every JSON: attack.json rows, results.jsonl records, and the meta's
`unbounded` list says which), x (N x ...), y (N), ids (N, int64), success (E x N bool, judged on the crafting target),
meta (a 0-d string array holding JSON: attack, params, norm, source model SHA-256, target, seed,
library version).
"""
from __future__ import annotations

import io as _io
import json
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import atomic_path, write_json
from ..errors import UsageError
from ..results.stats import wilson_interval
from .base import AttackResult

SCHEMA = 1
SUMMARY = "attack.json"


def eps_values(epsilons) -> np.ndarray:
    return np.asarray([np.inf if e is None else float(e) for e in epsilons], dtype=np.float64)


def meta(result: AttackResult, source_model_sha256: str | None, target: dict) -> dict:
    return {"attack": result.attack, "params": result.params, "norm": result.norm,
            "source_model_sha256": source_model_sha256, "target": target, "seed": result.seed,
            "unbounded": [e is None for e in result.epsilons], "tool_version": __version__}


# Per-example cost arrays a black-box attack may add (E x N each; attacks.blackbox.budgeted.per_sample):
# `session` copies them into each adversarial record of results.jsonl. crafting_energy_j: the
# measured energy of the example's crafting queries (a meter on the board; absent otherwise).
PER_SAMPLE = ("queries", "wire_bytes", "crafting_energy_j")


def save_adversarial(path, result: AttackResult, *, ids=None, source_model_sha256=None,
                     target: dict | None = None, per_sample: dict | None = None) -> Path:
    """Write the adversarial .npz atomically (the caller refuses an existing output without --force).
    per_sample: optional PER_SAMPLE arrays (E x N), written beside x_adv."""
    n = len(result.y)
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    m = meta(result, source_model_sha256, target or {"kind": result.target_kind,
                                                     "model_sha256": result.target_sha256, "board": None})
    extra = {}
    for k, v in (per_sample or {}).items():
        if v is None:
            continue
        if k not in PER_SAMPLE or np.shape(v) != result.success.shape:
            raise ValueError(f"per-sample array {k!r} must be one of {PER_SAMPLE}, E x N")
        extra[k] = np.asarray(v, dtype=np.int64 if k == "queries" else np.float64)
    buf = _io.BytesIO()
    np.savez_compressed(buf, x_adv=result.x_adv.astype(np.float32), eps=eps_values(result.epsilons),
                        x=result.x.astype(np.float32), y=result.y.astype(np.int64), ids=ids,
                        success=result.success.astype(bool), meta=np.array(json.dumps(m, sort_keys=True)),
                        **extra)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


ARRAYS = ("x_adv", "eps", "x", "y", "ids", "success", "meta")


def load_adversarial(path) -> dict:
    """The arrays of an adversarial .npz and its meta as a dict (for tools and tests), read with
    the datasets' npz loader (no pickles; a missing array is a one-line UsageError)."""
    from ..datasets import load_npz

    out = load_npz(path, ARRAYS, "an adversarial .npz", optional=PER_SAMPLE)
    try:
        out["meta"] = json.loads(str(out["meta"].reshape(()).item()))
    except ValueError:
        raise UsageError(f"{path}: 'meta' is not JSON; write the file with "
                         f"edgeattack.attacks.io.save_adversarial") from None
    return out


def metrics_rows(result: AttackResult) -> list[dict]:
    """One row per epsilon: attack success rate (over samples correct when clean) and adversarial
    accuracy (over all samples), each with its Wilson 95% interval; minimization attacks add the
    median perturbation norm of their successes, black-box attacks their query counts."""
    rows = []
    for e, eps in enumerate(result.epsilons):
        k, n_ok = result.attack_success_rate(e)
        a, n = result.adversarial_accuracy(e)
        row = {"eps": eps, "n": n, "clean_correct": n_ok, "successes": k,
               "attack_success_rate": k / n_ok if n_ok else None,
               "attack_success_rate_ci95": wilson_interval(k, n_ok),
               "adversarial_accuracy": a / n, "adversarial_accuracy_ci95": wilson_interval(a, n)}
        ok = result.success[e]
        row["median_norm"] = float(np.median(result.norms[e][ok])) if ok.any() else None
        if result.queries is not None:
            q = result.queries[e]
            row["queries_median"] = float(np.median(q))
            row["queries_mean"] = float(np.mean(q))
        rows.append(row)
    return rows


def summary(result: AttackResult, *, source_model_sha256=None, target: dict | None = None,
            command: str = "attack", extra_rows: list[dict] | None = None, **header) -> dict:
    rows = metrics_rows(result)
    for row, more in zip(rows, extra_rows or []):
        row.update(more)
    return {"schema": SCHEMA, "command": command, "attack": result.attack, "params": result.params,
            "seed": result.seed, "norm": result.norm, "source_model_sha256": source_model_sha256,
            "target": target or {"kind": result.target_kind, "model_sha256": result.target_sha256,
                                 "board": None},
            "n": int(len(result.y)), "tool_version": __version__, **header, "metrics": rows}


def write_summary(path, obj: dict) -> Path:
    write_json(path, obj)
    return Path(path)
