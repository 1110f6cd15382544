"""The masking check: Athalye, Carlini and Wagner's (ICML 2018) signs that an apparent robustness is
gradient masking, each a named flag with a statistical rule, read from evaluate.json's rows.

A row is {"attack", "eps", "attack_success_rate", "attack_success_rate_ci95", ...} (the attack
success rate over the samples the device classified correctly when clean, with its Wilson interval).
Intervals are closed: two intervals are disjoint only when one's lower bound is strictly above the
other's upper bound.

- `blackbox-stronger`: at some epsilon, Square (through the device) or transfer from the float parent
  succeeds more often than white-box PGD, intervals disjoint.
- `one-step-stronger`: at some epsilon, FGSM succeeds more often than PGD, intervals disjoint.
- `unbounded-fails`: PGD with epsilon = the whole data range (row attack `pgd-unbounded`): the lower
  bound of its success interval is below 0.95. (So it also fires when too few samples were run to
  show success: with every sample fooled, the bound reaches 0.95 only from 73 samples up.)
- `eps-flat`: PGD's success at the largest epsilon is below 0.95 and its interval overlaps the one at
  the smallest epsilon (success does not rise with the budget). Needs two epsilons or more.

Each flag is {"sign", "evidence"}; the evidence holds the rule and every comparison that fired, with
the rates and intervals used. Only the signs that fire are listed. No TensorFlow here.
"""
from __future__ import annotations

SIGNS = ("blackbox-stronger", "one-step-stronger", "unbounded-fails", "eps-flat")
UNBOUNDED = "pgd-unbounded"  # the row name of PGD with epsilon = the data range
THRESHOLD = 0.95

RULES = {
    "blackbox-stronger": "square or transfer succeeds more often than pgd at the same eps, Wilson "
                         "95% intervals disjoint",
    "one-step-stronger": "fgsm succeeds more often than pgd at the same eps, Wilson 95% intervals "
                         "disjoint",
    "unbounded-fails": "pgd with eps = the data range: the lower bound of its success interval is "
                       "below 0.95",
    "eps-flat": "pgd's success at the largest eps is below 0.95 and its interval overlaps the one at "
                "the smallest eps",
}


def _stat(row) -> dict | None:
    """The rate and interval of a row, or None when it has none (no sample correct when clean)."""
    if row is None or row.get("attack_success_rate") is None or not row.get("attack_success_rate_ci95"):
        return None
    return {"attack": row["attack"], "eps": row["eps"], "attack_success_rate": row["attack_success_rate"],
            "attack_success_rate_ci95": list(row["attack_success_rate_ci95"]),
            "successes": row.get("successes"), "clean_correct": row.get("clean_correct")}


def _above(a: dict, b: dict) -> bool:
    """a's interval lies strictly above b's."""
    return a["attack_success_rate_ci95"][0] > b["attack_success_rate_ci95"][1]


def _overlap(a: dict, b: dict) -> bool:
    (alo, ahi), (blo, bhi) = a["attack_success_rate_ci95"], b["attack_success_rate_ci95"]
    return alo <= bhi and blo <= ahi


def _stronger_than_pgd(rows, attacks) -> list[dict]:
    by = {(r["attack"], r["eps"]): r for r in rows}
    cases = []
    for (attack, eps), row in sorted(by.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        if attack not in attacks:
            continue
        other, pgd = _stat(row), _stat(by.get(("pgd", eps)))
        if other is not None and pgd is not None and _above(other, pgd):
            cases.append({"eps": eps, "attack": other, "pgd": pgd})
    return cases


def blackbox_stronger(rows) -> list[dict]:
    return _stronger_than_pgd(rows, ("square", "transfer"))


def one_step_stronger(rows) -> list[dict]:
    return _stronger_than_pgd(rows, ("fgsm",))


def unbounded_fails(rows) -> list[dict]:
    cases = []
    for row in rows:
        s = _stat(row) if row["attack"] == UNBOUNDED else None
        if s is not None and s["attack_success_rate_ci95"][0] < THRESHOLD:
            cases.append({"eps": row["eps"], "pgd_unbounded": s})
    return cases


def eps_flat(rows) -> list[dict]:
    pgd = sorted((r for r in rows if r["attack"] == "pgd" and r["eps"] is not None), key=lambda r: r["eps"])
    if len(pgd) < 2:
        return []
    small, large = _stat(pgd[0]), _stat(pgd[-1])
    if small is None or large is None:
        return []
    if large["attack_success_rate"] < THRESHOLD and _overlap(small, large):
        return [{"smallest": small, "largest": large}]
    return []


CHECKS = {"blackbox-stronger": blackbox_stronger, "one-step-stronger": one_step_stronger,
          "unbounded-fails": unbounded_fails, "eps-flat": eps_flat}


def masking_flags(rows) -> list[dict]:
    """The signs that fire on evaluate.json's per-attack rows: [{"sign", "evidence"}, ...]."""
    flags = []
    for sign in SIGNS:
        cases = CHECKS[sign](rows)
        if cases:
            flags.append({"sign": sign, "evidence": {"rule": RULES[sign], "cases": cases}})
    return flags
