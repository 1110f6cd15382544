"""build_summary: a run folder's numbers as tables, figure data and findings (docs/report.md).

Cells are grouped by their labels (recipe, attack, board, crafted_on), never by paths. Every rate
carries its Wilson interval; every difference its paired interval. Pure NumPy: no matplotlib here.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .. import __version__
from ..results import metrics, wilson_interval
from .findings import compare_robustness, compare_latency, findings_from
from .folder import RunFolder, load_run

SCHEMA = 1
RECORD_KINDS = ("session", "blackbox")   # cells whose results.jsonl the device wrote

# What a record's time is, in the words the report shows (CONVENTIONS "Measurement units").
TIME_KINDS = {"device": "device time", "qemu-instructions": "estimated from QEMU instructions",
              "host-wall": "host wall time (emulator, not microcontroller latency)"}

FIGURES = [  # id, title: the order of the report
    ("robust-accuracy", "Robust accuracy against epsilon, per compression"),
    ("latency", "Inference time, clean against attacked"),
    ("energy", "Energy per inference, per compression and board"),
    ("transfer", "Transfer of adversarial examples (attack success rate)"),
    ("queries", "Queries to success (black-box attacks)"),
    ("backdoor", "Backdoor survival per compression"),
    ("poisoning", "Poisoning success and clean accuracy per compression"),
    ("extraction", "Extraction fidelity against queries"),
    ("inversion", "Model inversion quality per compression"),
    ("cross-board", "Cross-board disagreement on the same inputs"),
]


def build_summary(run_dir) -> dict:
    """The summary of a run folder (docs/report.md "summary.json"). Reads only; writes nothing."""
    run = load_run(run_dir)
    return summarize(run)


def summarize(run: RunFolder) -> dict:
    ev = _evasion(run)
    tables = {
        "cells": _cells_table(run),
        "compression": _compression_table(run),
        "accuracy": _accuracy_table(run),
        "robust_accuracy": [p for s in ev["series"] for p in s["points"]],
        "latency": [],
        "energy": [],
        "transfer": [],
        "blackbox": _blackbox_table(run),
        "backdoor": [],
        "poisoning": _command_rows(run, "poison", "poison.json"),
        "extraction": [],
        "inversion": _command_rows(run, "invert", "invert.json"),
        "cross_board": [],
        "defenses": [],
        "masking_flags": [],
        "comparisons": [],
    }
    figures = {}
    figures["robust-accuracy"] = _robust_figure(ev["series"])
    lat_fig, tables["latency"] = _latency(run)
    figures["latency"] = lat_fig
    figures["energy"], tables["energy"] = _energy(run)
    figures["transfer"], tables["transfer"] = _transfer(run)
    figures["queries"] = _queries(run)
    figures["backdoor"], tables["backdoor"] = _backdoor(run)
    figures["poisoning"] = _poisoning_figure(tables["poisoning"], run)
    figures["extraction"], tables["extraction"] = _extraction(run)
    figures["inversion"] = _inversion_figure(run)
    figures["cross-board"], tables["cross_board"] = _cross_board(run)
    tables["defenses"], tables["masking_flags"] = _defenses(run)

    comparisons = compare_robustness(ev["outcomes"]) + compare_latency(tables["latency"])
    tables["comparisons"] = comparisons
    study = run.study
    return {
        "schema": SCHEMA,
        "study": {"name": study.get("name"), "description": study.get("description"),
                  "dataset": study.get("dataset"), "model": study.get("model"), "seed": study.get("seed")},
        "tool_version": __version__,
        "cells": [{"hash": c.hash, "kind": c.kind, "labels": c.labels, "status": c.meta.get("status"),
                   "model_sha256": c.meta.get("model_sha256")} for c in run.cells],
        "tables": {k: v for k, v in tables.items()},
        "figures": [{"id": fid, "title": title, "data": figures[fid]}
                    for fid, title in FIGURES if figures.get(fid) is not None],
        "omitted_figures": [{"id": fid, "title": title, "reason": _why_absent(fid)}
                            for fid, title in FIGURES if figures.get(fid) is None],
        "findings": findings_from(comparisons),
        "comparisons": len(comparisons),
    }


def _why_absent(fid: str) -> str:
    return {
        "robust-accuracy": "no session or black-box cell with device records",
        "latency": "no records with device time",
        "energy": "no record has an energy figure (no meter, no profile estimate, or --energy off)",
        "transfer": "no transfer cell",
        "queries": "no black-box cell with per-example query counts",
        "backdoor": "no backdoor cell",
        "poisoning": "no poisoning cell with a judged artifact",
        "extraction": "no extraction cell",
        "inversion": "no inversion cell with scored reconstructions",
        "cross-board": "no adversarial inputs were judged on two or more boards",
    }[fid]


# helpers -----------------------------------------------------------------------------------------

def _ci(k: int, n: int):
    return wilson_interval(k, n) if n else None


def _eps_key(eps):
    return None if eps is None else float(eps)


def _describe(c, *names) -> dict:
    return {n: c.labels.get(n) for n in names}


def _correct_maps(records: list[dict]):
    """{id: correct} of the clean records and {(source, eps): {id: correct}} of the others."""
    clean, adv = {}, defaultdict(dict)
    for r in records:
        ok = r["pred"] == r["label"]
        if r["source"] == "clean":
            clean[int(r["id"])] = ok
        else:
            adv[(r["source"], _eps_key(r["eps"]))][int(r["id"])] = ok
    return clean, adv


def _round(v, digits=6):
    return None if v is None else round(float(v), digits)


# tables from cell files ----------------------------------------------------------------------------

def _cells_table(run: RunFolder) -> list[dict]:
    return [{"hash": c.hash, "kind": c.kind, "part": c.meta.get("part"), "status": c.meta.get("status"),
             **_describe(c, "recipe", "attack", "board", "crafted_on"),
             "host": c.meta.get("host"), "model_sha256": c.meta.get("model_sha256"),
             "device_inferences": c.meta.get("device_inferences"), "error": c.meta.get("error")}
            for c in run.cells]


def _compression_table(run: RunFolder) -> list[dict]:
    rows = []
    for c in run.of_kind("compress"):
        m = c.json("summary", "manifest.json")
        if not m:
            continue
        acc = m.get("accuracy") or {}
        rows.append({"recipe": c.label("recipe", (m.get("recipe") or {}).get("name")),
                     "model_sha256": m.get("model_sha256"), "tflite_bytes": m.get("tflite_bytes"),
                     "weight_buffer_bytes": m.get("weight_buffer_bytes"),
                     "weight_buffer_gzip_bytes": m.get("weight_buffer_gzip_bytes"),
                     "sparsity": m.get("sparsity"), "tflm_arena_bytes": m.get("tflm_arena_bytes"),
                     "macs": m.get("macs"), "accuracy_float": acc.get("float"),
                     "accuracy_litert": acc.get("litert"), "accuracy_tflm": acc.get("tflm"),
                     "max_lsb_diff": m.get("max_lsb_diff")})
    return sorted(rows, key=lambda r: str(r["recipe"]))


def _accuracy_table(run: RunFolder) -> list[dict]:
    from ..results import summarize_records

    rows = []
    for c in run.of_kind(*RECORD_KINDS):
        for m in summarize_records(c.records()):
            rows.append({"cell": c.hash, **_describe(c, "recipe", "board", "crafted_on"),
                         "source": m["source"], "eps": m["eps"], "n": m["n"],
                         "accuracy": m["accuracy"], "accuracy_ci95": m["accuracy_ci95"],
                         "attack_success_rate": m.get("attack_success_rate"),
                         "attack_success_rate_ci95": m.get("attack_success_ci95"),
                         "clean_correct": m.get("clean_correct"), "time_source": m.get("time_source")})
    return rows


def _blackbox_table(run: RunFolder) -> list[dict]:
    rows = []
    for c in run.of_kind("blackbox"):
        s = c.json("summary", "attack.json") or {}
        for m in s.get("metrics", []):
            rows.append({"cell": c.hash, **_describe(c, "recipe", "attack", "board"), **m})
    return rows


# robust accuracy -------------------------------------------------------------------------------------

def _evasion(run: RunFolder) -> dict:
    """Per (recipe, board, attack, crafted_on): robust accuracy at each eps (eps 0 is clean accuracy)
    and, per (recipe, board) with several of them, against the whole set; plus the per-sample
    outcomes the paired comparisons use."""
    groups: dict = {}
    for c in run.of_kind(*RECORD_KINDS):
        clean, adv = _correct_maps(c.records())
        if not clean or not adv:
            continue
        recipe, board = c.label("recipe", "?"), c.label("board", "?")
        crafted = c.label("crafted_on", "board" if c.kind == "blackbox" else "?")
        for (source, eps), correct in adv.items():
            key = (recipe, board, source, crafted)
            g = groups.setdefault(key, {"clean": {}, "eps": {}})
            g["clean"].update(clean)
            g["eps"].setdefault(eps, {}).update(correct)

    series, outcomes = [], []
    by_model = defaultdict(list)
    for (recipe, board, attack, crafted), g in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        by_model[(recipe, board)].append(((attack, crafted), g))
        series.append(_series(recipe, board, attack, crafted, g["clean"],
                              {e: {f"{attack}@{crafted}": m} for e, m in g["eps"].items()}))
        for eps, correct in g["eps"].items():
            outcomes.append({"recipe": recipe, "board": board, "attack": attack, "crafted_on": crafted,
                             "eps": eps, "clean": g["clean"], "adversarial": correct})
    for (recipe, board), members in sorted(by_model.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if len(members) < 2:
            continue
        clean = {}
        for _, g in members:
            clean.update(g["clean"])
        common = set.intersection(*(set(g["eps"]) for _, g in members))
        per_eps = {e: {f"{a}@{c}": g["eps"][e] for (a, c), g in members} for e in common}
        if per_eps:
            series.append(_series(recipe, board, "all", "all", clean, per_eps))
            for eps, sets in per_eps.items():
                together = {}
                ids = set.intersection(*(set(m) for m in sets.values()))
                for i in ids:
                    together[i] = all(m[i] for m in sets.values())
                outcomes.append({"recipe": recipe, "board": board, "attack": "all", "crafted_on": "all",
                                 "eps": eps, "clean": clean, "adversarial": together})
    return {"series": series, "outcomes": outcomes}


def _series(recipe, board, attack, crafted, clean: dict, per_eps: dict) -> dict:
    points = []
    k = sum(clean.values())
    n = len(clean)
    points.append({"recipe": recipe, "board": board, "attack": attack, "crafted_on": crafted, "eps": 0.0,
                   "robust_accuracy": k / n, "robust_accuracy_ci95": _ci(k, n), "n": n,
                   "attacks": []})
    for eps in sorted(per_eps):
        ra = metrics.robust_accuracy(per_eps[eps], clean)
        points.append({"recipe": recipe, "board": board, "attack": attack, "crafted_on": crafted,
                       "eps": eps, "robust_accuracy": ra["robust_accuracy"],
                       "robust_accuracy_ci95": ra["robust_accuracy_ci95"], "n": ra["n"],
                       "attacks": ra["attacks"]})
    label = f"{recipe} · {attack}" + ("" if crafted in ("all",) else f" on {crafted}") + f" · {board}"
    return {"label": label, "recipe": recipe, "board": board, "attack": attack, "crafted_on": crafted,
            "points": points}


def _robust_figure(series: list[dict]):
    if not series:
        return None
    out = []
    for s in series:
        pts = [p for p in s["points"] if p["robust_accuracy"] is not None]
        out.append({"label": s["label"], "recipe": s["recipe"], "board": s["board"], "attack": s["attack"],
                    "crafted_on": s["crafted_on"],
                    "x": [p["eps"] for p in pts], "y": [p["robust_accuracy"] for p in pts],
                    "lo": [p["robust_accuracy_ci95"][0] for p in pts],
                    "hi": [p["robust_accuracy_ci95"][1] for p in pts], "n": [p["n"] for p in pts]})
    return {"x_label": "epsilon (input units; 0 = clean accuracy)", "y_label": "robust accuracy",
            "band": "Wilson 95% interval", "series": out}


# latency -----------------------------------------------------------------------------------------------

def _time_kind(records: list[dict]) -> str | None:
    sources = {r.get("time_source") for r in records if r.get("device_time_s") is not None}
    if any(r.get("time_estimated") for r in records):
        sources.add("qemu-instructions")
        sources.discard("device")
    sources.discard(None)
    if not sources:
        return None
    return sorted(sources)[0] if len(sources) == 1 else "mixed"


def _box(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    p1, p25, p50, p75, p99 = (float(v) for v in np.percentile(arr, [1, 25, 50, 75, 99]))
    return {"n": int(arr.size), "p1": p1, "p25": p25, "p50": p50, "p75": p75, "p99": p99,
            "mean": float(arr.mean())}


def _latency(run: RunFolder):
    """Device time per (recipe, board, source, eps, crafted_on), pooled over the cells that share
    them; clean records are pooled per (recipe, board): the same model on the same board."""
    clean = defaultdict(list)
    attacked = defaultdict(list)
    kinds = defaultdict(set)
    for c in run.of_kind(*RECORD_KINDS):
        recs = [r for r in c.records() if r.get("device_time_s") is not None]
        if not recs:
            continue
        recipe, board = c.label("recipe", "?"), c.label("board", "?")
        crafted = c.label("crafted_on", "board" if c.kind == "blackbox" else "?")
        kind = _time_kind(recs)
        kinds[(recipe, board)].add(kind)
        seen_clean = set()
        for r in recs:
            if r["source"] == "clean":
                key = (int(r["id"]), c.hash)
                if key not in seen_clean:
                    seen_clean.add(key)
                    clean[(recipe, board)].append(r["device_time_s"])
            else:
                attacked[(recipe, board, r["source"], crafted, _eps_key(r["eps"]))].append(r["device_time_s"])
    if not clean and not attacked:
        return None, []
    rows, panels = [], {}
    for (recipe, board) in sorted(set(clean) | {k[:2] for k in attacked}, key=lambda k: tuple(map(str, k))):
        ks = kinds[(recipe, board)]
        kind = ks.pop() if len(ks) == 1 else "mixed"
        panel = panels.setdefault((board, kind), {"board": board, "time_kind": kind,
                                                  "time_label": TIME_KINDS.get(kind, kind), "boxes": []})
        base = clean.get((recipe, board), [])
        if base:
            b = _box(base)
            panel["boxes"].append({"label": f"{recipe} clean", "recipe": recipe, "source": "clean",
                                   "eps": None, "crafted_on": None, **b})
            rows.append({"recipe": recipe, "board": board, "source": "clean", "eps": None,
                         "crafted_on": None, "time_kind": kind, **b, "difference_s": None,
                         "difference_ci95": None})
        for key in sorted((k for k in attacked if k[:2] == (recipe, board)), key=lambda k: tuple(map(str, k))):
            _, _, source, crafted, eps = key
            b = _box(attacked[key])
            panel["boxes"].append({"label": f"{recipe} {source} {eps:g} ({crafted})" if eps is not None
                                   else f"{recipe} {source} ({crafted})",
                                   "recipe": recipe, "source": source, "eps": eps, "crafted_on": crafted, **b})
            d = metrics.latency_difference(attacked[key], base) if base else {"difference_s": None,
                                                                               "ci95": None}
            rows.append({"recipe": recipe, "board": board, "source": source, "eps": eps,
                         "crafted_on": crafted, "time_kind": kind, **b,
                         "difference_s": d["difference_s"], "difference_ci95": d["ci95"]})
    fig = {"y_label": "seconds per inference", "whiskers": "1st and 99th percentiles",
           "box": "25th, 50th, 75th percentiles", "panels": list(panels.values())}
    return fig, rows


# energy --------------------------------------------------------------------------------------------------

def _energy(run: RunFolder):
    """Median energy per inference (over records; MLPerf Tiny's median over windows when the session
    repeats inferences) per (recipe, board, energy_source): measured and estimated kept apart."""
    values = defaultdict(list)
    for c in run.of_kind(*RECORD_KINDS):
        for r in c.records():
            if r.get("energy_j") is not None:
                values[(c.label("recipe", "?"), c.label("board", "?"), r.get("energy_source") or "unknown")
                       ].append(r["energy_j"])
    if not values:
        return None, []
    bars = []
    for (recipe, board, source), v in sorted(values.items(), key=lambda kv: tuple(map(str, kv[0]))):
        bars.append({"recipe": recipe, "board": board, "energy_source": source,
                     "energy_j": metrics.window_median(v), "n": len(v),
                     "label": f"{recipe} · {board}" + (" (estimated)" if source == "estimated" else "")})
    return {"y_label": "joules per inference (median)", "bars": bars}, [dict(b) for b in bars]


# transfer --------------------------------------------------------------------------------------------------

def _transfer(run: RunFolder):
    panels, rows = [], []
    for c in run.of_kind("transfer"):
        s = c.json("summary", "transfer.json") or {}
        metrics_rows = s.get("metrics") or []
        board = (s.get("target") or {}).get("board") or c.label("board")
        for r in metrics_rows:
            rows.append({"cell": c.hash, "attack": s.get("attack"), "board": board, **r})
        sources = [x.get("name") for x in s.get("sources", [])]
        targets = [t.get("name") for t in s.get("targets", [])]
        for eps in sorted({r["eps"] for r in metrics_rows if r.get("eps") is not None}):
            cell = {(r["source"], r["target"]): r for r in metrics_rows if r.get("eps") == eps}

            def grid(field, i=None):
                out = []
                for src in sources:
                    line = []
                    for tgt in targets:
                        v = (cell.get((src, tgt)) or {}).get(field)
                        line.append(v if i is None or v is None else v[i])
                    out.append(line)
                return out

            panels.append({"attack": s.get("attack"), "board": board, "eps": eps, "sources": sources,
                           "targets": targets, "asr": grid("attack_success_rate"),
                           "lo": grid("attack_success_rate_ci95", 0), "hi": grid("attack_success_rate_ci95", 1)})
    if not panels:
        return None, rows
    return {"value": "attack success rate on the target", "panels": panels}, rows


# queries to success -------------------------------------------------------------------------------------

def _queries(run: RunFolder):
    series = []
    for c in run.of_kind("blackbox"):
        recs = c.records()
        clean, _ = _correct_maps(recs)
        params = c.meta.get("params") or {}
        groups = defaultdict(list)
        for r in recs:
            if r["source"] != "clean" and r.get("queries") is not None and clean.get(int(r["id"])):
                groups[(r["source"], _eps_key(r["eps"]))].append(r)
        for (source, eps), rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
            n = len(rs)
            q = sorted(int(r["queries"]) for r in rs if r["pred"] != r["label"])
            xs = sorted(set(q))
            ys = [sum(v <= x for v in q) / n for x in xs]
            series.append({"label": f"{c.label('recipe', '?')} · {source} eps {eps:g} · {c.label('board', '?')}"
                           if eps is not None else f"{c.label('recipe', '?')} · {source} · {c.label('board', '?')}",
                           "recipe": c.label("recipe"), "board": c.label("board"), "attack": source,
                           "eps": eps, "budget": params.get("budget"), "n": n, "successes": len(q),
                           "x": xs, "y": ys})
    if not series:
        return None
    return {"x_label": "queries to the device", "y_label": "fraction of clean-correct samples fooled",
            "series": series}


# backdoor -------------------------------------------------------------------------------------------------

def _backdoor(run: RunFolder):
    panels, rows = [], []
    for c in run.of_kind("backdoor"):
        s = c.json("summary", "backdoor.json") or {}
        bars = []
        for r in s.get("metrics") or []:
            rows.append({"cell": c.hash, "attack": s.get("attack"), **r})
            asr, clean = r.get("attack_success_rate"), r.get("clean_accuracy")
            if asr is None and clean is None:
                continue
            ci = r.get("attack_success_rate_ci95") or [None, None]
            cci = r.get("clean_accuracy_ci95") or [None, None]
            bars.append({"artifact": r.get("artifact"), "board": r.get("board"),
                         "attack_success_rate": asr, "lo": ci[0], "hi": ci[1],
                         "clean_accuracy": clean, "clean_lo": cci[0], "clean_hi": cci[1], "n": r.get("n")})
        if bars:
            panels.append({"attack": s.get("attack"), "board": c.label("board"),
                           "trigger": (s.get("params") or {}).get("trigger"), "bars": bars})
    if not panels:
        return None, rows
    return {"y_label": "rate", "panels": panels}, rows


def _command_rows(run: RunFolder, kind: str, name: str) -> list[dict]:
    """The metrics rows of every `kind` cell's <command>.json (poison, invert), with the cell's labels."""
    rows = []
    for c in run.of_kind(kind):
        s = c.json("summary", name) or {}
        for r in s.get("metrics") or []:
            rows.append({"cell": c.hash, **_describe(c, "recipe", "board"), "attack": s.get("attack"),
                         **{k: v for k, v in r.items() if not isinstance(v, (dict, list)) or k.endswith("_ci95")}})
    return rows


# poisoning ------------------------------------------------------------------------------------------------

def _rate_point(r: dict) -> dict:
    """One judged artifact's two rates with their Wilson intervals (None where a rate is undefined:
    untargeted label flips have no attack success rate)."""
    ci = r.get("attack_success_rate_ci95") or [None, None]
    cci = r.get("clean_accuracy_ci95") or [None, None]
    return {"attack_success_rate": r.get("attack_success_rate"), "lo": ci[0], "hi": ci[1],
            "clean_accuracy": r.get("clean_accuracy"), "clean_lo": cci[0], "clean_hi": cci[1],
            "n": r.get("n")}


def _poisoning_figure(rows: list[dict], run: RunFolder):
    """The poisoning part's figure, from poison.json rows as they are:
    - `bars`: per poison cell, success and clean accuracy per artifact (float, each recipe);
    - `epochs`: the pruning-and-poisoning experiment (rows with prune_ratio and epoch), success and
      clean accuracy against poisoned fine-tuning epochs, one line per artifact and prune ratio;
    - `rates`: where cells of the same kind and board poisoned at two or more rates, success and
      clean accuracy against the poison rate per artifact."""
    cells = {c.hash: c for c in run.of_kind("poison")}
    params = {h: (c.json("summary", "poison.json") or {}).get("params") or {} for h, c in cells.items()}
    panels, by_rate = [], defaultdict(dict)
    for h in sorted({r["cell"] for r in rows}):
        mine = [r for r in rows if r["cell"] == h]
        p = params.get(h, {})
        head = {"cell": h, "kind": p.get("kind") or mine[0].get("attack"), "rate": p.get("rate"),
                "board": cells[h].label("board") if h in cells else None}
        staged = [r for r in mine if r.get("prune_ratio") is not None and r.get("epoch") is not None]
        if staged:
            series = []
            for artifact, ratio in sorted({(r["artifact"], r["prune_ratio"]) for r in staged}, key=str):
                pts = sorted((r for r in staged if (r["artifact"], r["prune_ratio"]) == (artifact, ratio)),
                             key=lambda r: r["epoch"])
                series.append({"label": f"{artifact} · prune {ratio:g}", "artifact": artifact,
                               "prune_ratio": ratio, "x": [r["epoch"] for r in pts],
                               "points": [_rate_point(r) for r in pts]})
            panels.append({**head, "type": "epochs", "x_label": "poisoned fine-tuning epochs after pruning",
                           "series": series})
            continue
        bars = [{"artifact": r.get("artifact"), "board": r.get("board"), **_rate_point(r)} for r in mine
                if r.get("attack_success_rate") is not None or r.get("clean_accuracy") is not None]
        if bars:
            panels.append({**head, "type": "bars", "bars": bars})
            if head["rate"] is not None:
                for b in bars:
                    by_rate[(head["kind"], head["board"], b["artifact"])][head["rate"]] = b
    curves = []
    for (kind, board, artifact), points in sorted(by_rate.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if len(points) >= 2:
            xs = sorted(points)
            curves.append({"label": f"{artifact} · {kind} · {board}", "artifact": artifact, "kind": kind,
                           "board": board, "x": xs, "points": [points[x] for x in xs]})
    if curves:
        panels.append({"type": "rates", "x_label": "poison rate (fraction of the training set)",
                       "series": curves})
    if not panels:
        return None
    return {"y_label": "rate", "bars": "Wilson 95% intervals", "panels": panels}


# inversion ------------------------------------------------------------------------------------------------

def _inversion_figure(run: RunFolder):
    """Per inversion cell (recipe and board): each class's reconstruction scored by SSIM to the
    class mean and by an independent model's confidence, per route (device queries, or a replica
    extracted with b queries then inverted white-box), and the device route's mean scores against
    the queries spent."""
    panels = []
    for c in run.of_kind("invert"):
        s = c.json("summary", "invert.json") or {}
        rows = [r for r in s.get("metrics") or [] if r.get("ssim_to_class_mean") is not None]
        if not rows:
            continue
        routes = sorted({r["route"] for r in rows}, key=lambda x: (x != "device", str(x)))
        classes = sorted({r["class"] for r in rows})
        cell = {(r["route"], r["class"]): r for r in rows}

        def grid(field):
            return [[(cell.get((route, k)) or {}).get(field) for k in classes] for route in routes]

        curve = [p for p in s.get("curve") or [] if p.get("mean_ssim") is not None]
        panels.append({"recipe": c.label("recipe"), "board": c.label("board"),
                       "label": f"{c.label('recipe', '?')} · {c.label('board', '?')}",
                       "routes": routes, "classes": classes, "ssim": grid("ssim_to_class_mean"),
                       "ssim_start": grid("ssim_start"),
                       "confidence": grid("independent_model_confidence"),
                       "queries": grid("queries"),
                       "curve": {"x": [p["queries"] for p in curve], "mean_ssim": [p["mean_ssim"] for p in curve],
                                 "mean_confidence": [p.get("mean_independent_confidence") for p in curve]}})
    if not panels:
        return None
    return {"ssim_label": "SSIM to the class mean", "confidence_label": "independent model's confidence",
            "panels": panels}


# extraction -----------------------------------------------------------------------------------------------

def _extraction(run: RunFolder):
    series, rows = [], []
    for c in run.of_kind("extract"):
        s = c.json("summary", "extract.json") or {}
        pts = sorted((r for r in s.get("metrics") or [] if r.get("queries") is not None
                      and r.get("fidelity") is not None), key=lambda r: r["queries"])
        for r in s.get("metrics") or []:
            rows.append({"cell": c.hash, **_describe(c, "recipe", "board"), **r})
        if not pts:
            continue
        series.append({"label": f"{c.label('recipe', '?')} · {c.label('board', '?')}",
                       "recipe": c.label("recipe"), "board": c.label("board"),
                       "x": [r["queries"] for r in pts], "fidelity": [r["fidelity"] for r in pts],
                       "lo": [(r.get("fidelity_ci95") or [r["fidelity"]] * 2)[0] for r in pts],
                       "hi": [(r.get("fidelity_ci95") or [r["fidelity"]] * 2)[1] for r in pts],
                       "accuracy": [r.get("accuracy") for r in pts]})
    if not series:
        return None, rows
    return {"x_label": "queries spent", "y_label": "fidelity (agreement with the device)", "series": series}, rows


# defenses ------------------------------------------------------------------------------------------------

def _defenses(run: RunFolder):
    """One row per evaluated artifact and board (the defenses part): clean and robust accuracy per
    eps with intervals, masking flags, int8 size, clean latency and energy on that board; and one row
    per masking flag with its evidence."""
    rows, flags = [], []
    for c in run.of_kind("evaluate"):
        s = c.json("summary", "evaluate.json") or {}
        inputs = c.meta.get("inputs") or []
        comp = run.by_hash(inputs[0]) if inputs else None
        m = (comp.json("summary", "manifest.json") if comp is not None else None) or {}
        lat = c.json("session", "session.json") or {}
        clean = next((r for r in lat.get("metrics") or [] if r.get("source") == "clean"), {})
        row = {"recipe": c.label("recipe"), "defense": c.label("defense"), "chain": c.label("chain"),
               "board": c.label("board"), "n": s.get("n"), "clean_accuracy": s.get("clean_accuracy"),
               "clean_accuracy_ci95": s.get("clean_accuracy_ci95")}
        for r in s.get("metrics") or []:
            if r.get("attack") == "all":
                row[f"robust_accuracy@{r['eps']:g}"] = r["robust_accuracy"]
                row[f"robust_accuracy@{r['eps']:g}_ci95"] = r["robust_accuracy_ci95"]
        row["masking_flags"] = ", ".join(f["sign"] for f in s.get("masking_flags") or []) or "none"
        row["tflite_bytes"] = m.get("tflite_bytes")
        row["latency_p50_s"] = (clean.get("latency_s") or {}).get("p50")
        row["time_source"] = lat.get("time_source")
        row["energy_j"] = (lat.get("energy") or {}).get("energy_j")
        row["energy_source"] = (lat.get("energy") or {}).get("source")
        rows.append(row)
        for f in s.get("masking_flags") or []:
            for case in f["evidence"]["cases"]:
                flags.append({"recipe": row["recipe"], "board": row["board"], "sign": f["sign"],
                              "evidence": _case_text(case)})
    return sorted(rows, key=lambda r: (str(r["recipe"]), str(r["board"]))), flags


def _case_text(case: dict) -> str:
    """A masking flag's comparison in one line: each rate with its interval."""
    parts = []
    for key, v in case.items():
        if isinstance(v, dict) and "attack_success_rate" in v:
            lo, hi = v["attack_success_rate_ci95"]
            parts.append(f"{v['attack']} eps {v['eps']:g}: {v['attack_success_rate']:.3f} [{lo:.3f}, {hi:.3f}]")
    return "; ".join(parts)


# cross-board disagreement ------------------------------------------------------------------------------

def _cross_board(run: RunFolder):
    """Sessions of the same recipe fed the same adversarial cell on different boards."""
    groups = defaultdict(dict)
    for c in run.of_kind("session"):
        inputs = c.meta.get("inputs") or []
        adv_input = inputs[1] if len(inputs) > 1 else None
        key = (c.label("recipe", "?"), c.label("attack", "?"), c.label("crafted_on", "?"), adv_input)
        groups[key][c.label("board", "?")] = c
    bars, rows, clean_seen = [], [], set()
    for (recipe, attack, crafted, _), cells in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if len(cells) < 2:
            continue
        preds = {}
        for board, c in cells.items():
            for r in c.records():
                preds.setdefault((r["source"], _eps_key(r["eps"])), {}).setdefault(board, {})[int(r["id"])] = r["pred"]
        for (source, eps), by_board in sorted(preds.items(), key=lambda kv: (kv[0][0] != "clean", str(kv[0]))):
            if len(by_board) < 2:
                continue
            if source == "clean":  # every group of the same model repeats its clean inputs: once
                if (recipe, tuple(sorted(by_board))) in clean_seen:
                    continue
                clean_seen.add((recipe, tuple(sorted(by_board))))
            ids = sorted(set.intersection(*(set(m) for m in by_board.values())))
            if not ids:
                continue
            d = metrics.cross_board_disagreement({b: [m[i] for i in ids] for b, m in by_board.items()})
            label = f"{recipe} · {source}" + (f" {eps:g}" if eps is not None else "") + (
                f" ({crafted})" if source != "clean" else "")
            bars.append({"label": label, "recipe": recipe, "attack": attack, "crafted_on": crafted,
                         "source": source, "eps": eps, "boards": d["boards"],
                         "disagreement": d["disagreement"], "lo": d["disagreement_ci95"][0],
                         "hi": d["disagreement_ci95"][1], "n": d["n"]})
            for p in d["pairs"]:
                rows.append({"recipe": recipe, "attack": attack, "crafted_on": crafted, "source": source,
                             "eps": eps, "boards": " vs ".join(p["boards"]), "disagreement": p["disagreement"],
                             "disagreement_ci95": p["disagreement_ci95"], "differ": p["differ"], "n": p["n"]})
    if not bars:
        return None, rows
    return {"y_label": "fraction of inputs where the boards' predictions differ", "bars": bars}, rows
