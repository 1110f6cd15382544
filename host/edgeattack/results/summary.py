"""Metrics of a session's records: accuracy and attack success rate per (source, eps) with Wilson
intervals; device time and host round-trip time kept apart (p50/p90/p99/mean), the device-time
difference of each attacked row against clean with its interval; energy per inference as the median
over windows (docs/session.md, docs/measurement.md)."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from .metrics import latency_difference, latency_summary, window_median
from .stats import wilson_interval


def time_source_of(records: Iterable[dict]):
    """What the records' times are (CONVENTIONS time_source): the one value they share, a sorted
    list when they differ, None without records (or for records written before the field)."""
    sources = sorted({r["time_source"] for r in records if r.get("time_source")})
    return sources[0] if len(sources) == 1 else (sources or None)


def energy_source_of(records: Iterable[dict]):
    """"measured", "estimated" or None for records whose energy_j is known (a sorted list when
    they differ: never mixed silently)."""
    sources = sorted({r["energy_source"] for r in records
                      if r.get("energy_j") is not None and r.get("energy_source")})
    return sources[0] if len(sources) == 1 else (sources or None)


def _latency(values) -> dict | None:
    summary = latency_summary(values)
    return summary if summary["n"] else None


def summarize_records(records: Iterable[dict]) -> list[dict]:
    """Metrics per (source, eps) from non-warm-up records (see docs/session.md)."""
    groups: dict = {}
    for rec in records:
        if rec.get("warmup"):
            continue
        groups.setdefault((rec["source"], rec["eps"]), []).append(rec)
    clean_correct = {int(r["id"]): r["pred"] == r["label"] for r in groups.get(("clean", None), [])}
    clean_times = [r["device_time_s"] for r in groups.get(("clean", None), [])]
    rows = []
    for (source, eps), recs in sorted(groups.items(),
                                      key=lambda kv: (kv[0][0] != "clean", kv[0][0], kv[0][1] or 0.0)):
        n = len(recs)
        correct = sum(r["pred"] == r["label"] for r in recs)
        row = {"source": source, "eps": eps, "n": n, "correct": correct, "accuracy": correct / n,
               "accuracy_ci95": wilson_interval(correct, n)}
        if source != "clean":
            # CONVENTIONS: success rate over samples the device got right when clean (untargeted).
            eligible = [r for r in recs if clean_correct.get(int(r["id"]))]
            successes = sum(r["pred"] != r["label"] for r in eligible)
            row.update({"clean_correct": len(eligible), "successes": successes,
                        "attack_success_rate": successes / len(eligible) if eligible else None,
                        "attack_success_ci95": wilson_interval(successes, len(eligible)),
                        "without_clean_record": sum(int(r["id"]) not in clean_correct for r in recs)})
        energies = [r["energy_j"] for r in recs if r.get("energy_j") is not None]
        times = [r["device_time_s"] for r in recs]
        # Each record is one INFER window (--repeat iterations): device_time_s and energy_j are per
        # inference already, so medians over records are MLPerf Tiny's medians over windows.
        row.update({"latency_s": _latency(times),
                    "rtt_s": _latency(r["rtt_s"] for r in recs),
                    "time_estimated": any(r.get("time_estimated") for r in recs),
                    "time_source": time_source_of(recs),
                    "energy_j": window_median(energies),
                    "energy_source": energy_source_of(recs),
                    "energy_j_mean": float(np.mean(energies)) if energies else None})
        if source != "clean":
            # stated even when zero: int8 kernels do the same work whatever the input
            row["latency_difference_s"] = latency_difference(times, clean_times)
        rows.append(row)
    return rows
