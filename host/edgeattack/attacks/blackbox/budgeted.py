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

    def oracle(self, target, y) -> Oracle:
        return Oracle(target, y, self.params["budget"])

    def record_run(self, oracle: Oracle) -> None:
        self.runs.append(oracle.costs())

    def run(self, target, x, y, eps, rng):
        oracle = self.oracle(target, y)
        x_adv = self.search(oracle, np.asarray(x, dtype=np.float32), eps, target.data_range, rng)
        self.record_run(oracle)
        return x_adv, oracle.queries

    def search(self, oracle: Oracle, x, eps, data_range, rng):  # pragma: no cover - abstract
        raise NotImplementedError
