"""The base of the black-box attacks: a query budget per sample and a record of what each run cost.

`BudgetedAttack` adds the `budget` hyperparameter (queries per sample; every query is one inference
on a device) to `attacks.base.Attack`, and keeps, for each `run`, the oracle's exact per-sample query
counts and when each sample stopped (`runs`, newest last), so the attack's summary can report cost
per adversarial example.
"""
from __future__ import annotations

import numpy as np

from ..base import Attack, Param
from .oracle import Oracle, check_budget


class BudgetedAttack(Attack):
    family = "blackbox"
    needs_gradients = False
    BUDGET = {"budget": Param(1000, "queries per sample (each one inference on a device)")}

    @classmethod
    def all_params(cls):
        return {**super().all_params(), **cls.BUDGET}

    def check_params(self) -> None:
        super().check_params()
        check_budget(self.params["budget"])
        self.runs: list[dict] = []

    # Called with the number of queries of each batch (a progress bar's update); not a parameter.
    on_queries = None

    def oracle(self, target, y) -> Oracle:
        return Oracle(target, y, self.params["budget"], on_queries=self.on_queries)

    def record_run(self, oracle: Oracle) -> None:
        self.runs.append(oracle.costs())

    def run(self, target, x, y, eps, rng):
        oracle = self.oracle(target, y)
        x_adv = self.search(oracle, np.asarray(x, dtype=np.float32), eps, target.data_range, rng)
        self.record_run(oracle)
        return x_adv, oracle.queries

    def search(self, oracle: Oracle, x, eps, data_range, rng):  # pragma: no cover - abstract
        raise NotImplementedError


def _median(a):
    return None if a is None or len(a) == 0 else float(np.median(a))


def cost_rows(attack: BudgetedAttack, result, device_inferences: int | None = None) -> list[dict]:
    """attack.json's black-box fields, one dict per epsilon of `result` (merged into the rows of
    attacks.io.summary through `extra_rows`).

    Per adversarial example (each sample's own queries): median wire bytes, device time (the sum of
    its queries' device times: ticks, host wall on emulated boards, or the labelled QEMU estimate)
    and energy when the board reports it. `device_inferences` is the device's inference counter
    delta over the whole command (attack queries of every epsilon plus `evaluation_queries`), so
    it is the same in every row; `attack_queries` is what the attack itself reported.
    """
    E = len(result.epsilons)
    runs = attack.runs[-(1 if attack.minimization else E):]
    attack_queries = int(sum(int(r["queries"].sum()) for r in runs))
    rows = []
    for e in range(E):
        r = runs[0] if attack.minimization else runs[e]
        q = r["queries"]
        n = len(q)
        row = {"queries_total": int(q.sum()), "budget": attack.params["budget"],
               "wall_time_s": r["wall_s"], "wall_time_per_sample_s": r["wall_s"] / n if n else None,
               "wire_bytes_per_query": None, "wire_bytes_median": None, "device_time_s": None,
               "device_time_total_s": None, "device_busy_fraction": None,
               "time_source": r["time_source"], "time_estimated": r["time_estimated"],
               "energy_j": _median(r["energy_j"]), "energy_source": r["energy_source"],
               "energy_per_query_j": (float(r["energy_j"].sum() / q.sum())
                                      if r["energy_j"] is not None and q.sum() else None),
               "attack_queries": attack_queries,
               "evaluation_queries": result.extra.get("evaluation_queries"),
               "device_inferences": device_inferences}
        if r["wire_bytes"] is not None:
            total_q = max(int(q.sum()), 1)
            row["wire_bytes_per_query"] = float(r["wire_bytes"].sum() / total_q)
            row["wire_bytes_median"] = _median(r["wire_bytes"])
            row["device_time_s"] = _median(r["device_time_s"])
            row["device_time_total_s"] = float(r["device_time_s"].sum())
            row["device_busy_fraction"] = (float(r["device_time_s"].sum() / r["wall_s"])
                                           if r["wall_s"] > 0 else None)
        rows.append(row)
    return rows


def per_sample(attack: BudgetedAttack, result) -> dict:
    """(E x N) arrays of each adversarial example's queries and wire bytes (None off a device) and,
    when a meter measured the crafting queries, their energy (crafting_energy_j)."""
    E = len(result.epsilons)
    runs = attack.runs[-(1 if attack.minimization else E):]
    pick = [runs[0] if attack.minimization else runs[e] for e in range(E)]
    wire = None
    if all(r["wire_bytes"] is not None for r in pick):
        wire = np.stack([r["wire_bytes"] for r in pick])
    energy = None
    if all(r["energy_source"] == "measured" for r in pick):
        energy = np.stack([r["energy_j"] for r in pick])
    return {"queries": np.stack([r["queries"] for r in pick]), "wire_bytes": wire,
            "crafting_energy_j": energy}
