"""Basic iterative method (Kurakin et al. 2017): PGD without a random start, Foolbox's defaults."""
from __future__ import annotations

from ..base import Param, register
from .pgd import GradientIteration


@register
class BIM(GradientIteration):
    name = "bim"
    summary = "basic iterative method: PGD from the clean sample (no random start)"
    PARAMS = {
        "steps": Param(10, "gradient steps"),
        "rel_stepsize": Param(0.2, "step size relative to epsilon"),
        "abs_stepsize": Param(None, "absolute step size (overrides rel_stepsize)"),
        "random_start": Param(False, "start from a uniform point of the epsilon ball"),
    }
