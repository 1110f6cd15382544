"""Comparisons between configurations and the findings stated from them (docs/report.md "Findings").

Every comparison is made with a paired interval: two recipes' robust accuracy on the same samples
(results.metrics.paired_difference, Newcombe's paired score interval), and latency under attack
against clean (results.metrics.latency_difference, a seeded bootstrap). A finding is stated only
where the 95% interval excludes zero, and the text says how many comparisons were made, so a reader
can weigh one interval that misses zero among many (no multiplicity correction is applied).
"""
from __future__ import annotations

import itertools
from collections import defaultdict

from ..results import metrics

# Reference recipes, most preferred first: a comparison reads "X ... against <reference>".
REFERENCES = ("ptq-int8", "float")


def _order(a: str, b: str) -> tuple[str, str]:
    """(compared, reference) for a pair of recipes."""
    for ref in REFERENCES:
        if a == ref:
            return b, a
        if b == ref:
            return a, b
    return (b, a) if str(a) < str(b) else (a, b)


def compare_robustness(outcomes: list[dict]) -> list[dict]:
    """Every pair of recipes judged with the same attack, crafting origin, board and eps: the paired
    difference of robust accuracy (correct when clean and under attack) on their common samples."""
    groups = defaultdict(dict)
    for o in outcomes:
        robust = {i: bool(o["clean"].get(i)) and ok for i, ok in o["adversarial"].items() if i in o["clean"]}
        groups[(o["board"], o["attack"], o["crafted_on"], o["eps"])][o["recipe"]] = robust
    rows = []
    for (board, attack, crafted, eps), by_recipe in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        for a, b in itertools.combinations(sorted(by_recipe, key=str), 2):
            x, ref = _order(a, b)
            common = set(by_recipe[x]) & set(by_recipe[ref])
            if not common:
                continue
            d = metrics.paired_difference({i: by_recipe[x][i] for i in common},
                                          {i: by_recipe[ref][i] for i in common})
            rows.append({"what": "robust_accuracy", "recipe": x, "reference": ref, "board": board,
                         "attack": attack, "crafted_on": crafted, "eps": eps, "n": d["n"],
                         "difference": d["difference"], "ci95": d["ci95"]})
    return rows


def compare_latency(latency_rows: list[dict]) -> list[dict]:
    """Median device time under attack against clean, per recipe, board, attack and eps. Host wall
    time of emulated boards is not microcontroller latency: it is tabulated, never compared."""
    rows = []
    for r in latency_rows:
        if r["source"] == "clean" or r.get("difference_ci95") is None:
            continue
        if r["time_kind"] not in ("device", "qemu-instructions"):
            continue
        rows.append({"what": "latency", "recipe": r["recipe"], "reference": "clean", "board": r["board"],
                     "attack": r["source"], "crafted_on": r["crafted_on"], "eps": r["eps"], "n": r["n"],
                     "difference": r["difference_s"], "ci95": r["difference_ci95"],
                     "time_kind": r["time_kind"]})
    return rows


def excludes_zero(ci) -> bool:
    return ci is not None and (ci[0] > 0 or ci[1] < 0)


def _attack_name(attack: str, crafted: str) -> str:
    if attack == "all":
        return "robust accuracy against all attacks"
    origin = {"float": "crafted on the float model", "surrogate": "crafted on its int8 surrogate",
              "board": "through the board"}.get(crafted, f"crafted on {crafted}")
    return f"{attack.upper()} robust accuracy ({origin})"


def _eps(eps) -> str:
    return "unbounded" if eps is None else f"{eps:g}"


def _text(c: dict, total: int) -> str:
    d, (lo, hi) = c["difference"], c["ci95"]
    verb = "raises" if d > 0 else "lowers"
    if d < 0:
        lo, hi = -hi, -lo
    if c["what"] == "robust_accuracy":
        return (f"{c['recipe']} {verb} {_attack_name(c['attack'], c['crafted_on'])} at eps {_eps(c['eps'])} "
                f"on {c['board']} by {abs(d) * 100:.0f} points (95% CI {lo * 100:.0f}-{hi * 100:.0f}) "
                f"against {c['reference']}; n={c['n']}; {total} comparisons")
    scale, unit = (1e6, "us") if max(abs(lo), abs(hi)) < 1e-3 else (1e3, "ms")
    kind = "estimated " if c.get("time_kind") == "qemu-instructions" else ""
    verb = "slows" if d > 0 else "speeds up"
    return (f"{c['attack']} at eps {_eps(c['eps'])} {verb} {c['recipe']}'s median {kind}device time on "
            f"{c['board']} by {abs(d) * scale:.3g} {unit} (95% CI {lo * scale:.3g}-{hi * scale:.3g}) against "
            f"clean inputs; {total} comparisons")


def findings_from(comparisons: list[dict]) -> list[dict]:
    """The comparisons whose 95% interval excludes zero, each with a sentence."""
    total = len(comparisons)
    out = []
    for c in comparisons:
        if c["difference"] is None or not excludes_zero(c["ci95"]):
            continue
        out.append({"text": _text(c, total), **c})
    return out
