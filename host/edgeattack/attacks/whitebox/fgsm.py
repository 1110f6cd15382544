"""Fast gradient sign method (Goodfellow et al. 2015): one full step of size epsilon (linf); with
norm l2 it is the fast gradient method. A special case of the PGD loop (pgd.py)."""
from __future__ import annotations

from ..base import Param, register
from .pgd import GradientIteration


@register
class FGSM(GradientIteration):
    name = "fgsm"
    summary = "fast gradient sign method: one step of size epsilon (fast gradient method for l2)"
    PARAMS = {
        "rel_stepsize": Param(1.0, "step size relative to epsilon"),
        "abs_stepsize": Param(None, "absolute step size (overrides rel_stepsize)"),
    }

