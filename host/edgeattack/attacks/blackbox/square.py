"""Square Attack (Andriushchenko et al., ECCV 2020), L-inf, score-based.

Each step replaces one random square window of the perturbation by a new +-eps pattern (one sign per
channel) and keeps it when the margin loss does not get worse. The side of the square follows the
authors' schedule for the fraction p of pixels changed, halving p at fixed points of the run; the
schedule is written for 10,000 iterations and is rescaled here to the query budget, as the authors'
code does (`it = int(it / n_iters * 10000)`).

Default p_init = 0.3. The authors use 0.05 on ImageNet (299x299x3: a square of ~67 pixels side)
and larger values on MNIST-sized inputs, where a 0.05 square is one or two pixels and barely moves
the margin. On 8x8 digits (64 pixels) p=0.3 starts with 4x4 squares (a quarter of the image) and
shrinks to 2x2 then 1x1; measured on the ptq-int8 digits model through emu-tflm at eps 0.2 and a
budget of 1,000 (docs/attacks.md), 0.3 needed the fewest queries among 0.05, 0.1, 0.3, 0.5 and 0.8.

Lockstep batching: all still-active samples take their step together and their candidates go to the
target as one pipelined batch. A sample stops as soon as another class scores strictly higher.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import UsageError
from ..base import Param, register
from .budgeted import BudgetedAttack
from .oracle import Oracle, better, margin

# The authors' schedule: (upper end of the iteration range out of 10,000, divisor of p_init).
_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
             (6000, 128), (8000, 256), (10000, 512))


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    """Fraction of pixels in the square at iteration `it` of `n_iters` (the authors' p_selection)."""
    it = int(it / max(n_iters, 1) * 10000)
    for end, div in _SCHEDULE:
        if it <= end:
            return p_init / div
    return p_init / 512


def square_side(p: float, h: int, w: int) -> int:
    """Side of a square covering about a fraction p of the h x w image, between 1 and min(h, w) - 1."""
    s = int(round(math.sqrt(p * h * w)))
    return int(min(max(s, 1), max(min(h, w) - 1, 1)))


def _as_hwc(x: np.ndarray) -> np.ndarray:
    """Samples as (N, H, W, C): 1-D features become (N, 1, F, 1), 2-D (N, H, W, 1)."""
    if x.ndim == 2:
        return x[:, None, :, None]
    if x.ndim == 3:
        return x[..., None]
    if x.ndim == 4:
        return x
    raise ValueError(f"square: inputs of rank {x.ndim - 1} per sample are not supported")


def square_linf(oracle: Oracle, x: np.ndarray, eps: float, data_range, rng: np.random.Generator,
                p_init: float = 0.3, accept_ties: bool = True, progress=None) -> np.ndarray:
    """Run Square L-inf on every sample within the oracle's budget; return the best points found."""
    lo, hi = (float(v) for v in data_range)
    shape = x.shape
    x0 = _as_hwc(np.asarray(x, dtype=np.float32))
    n, h, w, c = x0.shape
    y = oracle.y
    budget = oracle.budget
    all_idx = np.arange(n)

    # Initialization: vertical stripes of +-eps (one sign per column and channel).
    stripes = rng.choice(np.float32([-eps, eps]), size=(n, 1, w, c))
    x_best = np.clip(x0 + stripes, lo, hi).astype(np.float32)
    loss = margin(oracle.scores(x_best.reshape(shape), all_idx), y)
    done = loss < 0
    oracle.finish(all_idx[done])
    if progress is not None:
        progress(1)

    rows = np.arange(h)[None, :, None]
    cols = np.arange(w)[None, None, :]
    for it in range(1, budget):
        act = all_idx[~done & (oracle.remaining() > 0)]
        if len(act) == 0:
            break
        s = square_side(p_selection(p_init, it, budget), h, w)
        m = len(act)
        # Every valid top-left corner (the authors' randint(0, h - s) never reaches the last row).
        r0 = rng.integers(0, h - s + 1, size=m)[:, None, None]
        c0 = rng.integers(0, w - s + 1, size=m)[:, None, None]
        win = ((rows >= r0) & (rows < r0 + s) & (cols >= c0) & (cols < c0 + s))[..., None]
        base, cur = x0[act], x_best[act]
        cand = cur.copy()
        todo = np.ones(m, dtype=bool)
        # Draw a new sign per channel; redraw where the window would not change at all (e.g. the
        # same signs again, or pixels clipped at the data range), as the authors do.
        for _ in range(10):
            k = np.flatnonzero(todo)
            if len(k) == 0:
                break
            signs = rng.choice(np.float32([-eps, eps]), size=(len(k), 1, 1, c))
            trial = np.where(win[k], np.clip(base[k] + signs, lo, hi), cur[k])
            cand[k] = trial
            todo[k] = np.all(np.abs(trial - cur[k]) < 1e-7, axis=(1, 2, 3))
        new_loss = margin(oracle.scores(cand.reshape((m,) + shape[1:]), act), y[act])
        take = better(new_loss, loss[act], accept_ties)
        x_best[act[take]] = cand[take]
        loss[act[take]] = new_loss[take]
        won = act[take & (new_loss < 0)]
        done[won] = True
        oracle.finish(won)
        if progress is not None:
            progress(1)
    oracle.finish(all_idx)
    return x_best.reshape(shape)



@register
class Square(BudgetedAttack):
    name = "square"
    summary = "Square Attack (L-inf, score-based): random +-eps squares kept unless the margin rises"
    norms = ("linf",)
    PARAMS = {
        "p_init": Param(0.3, "initial fraction of pixels in the square (schedule rescaled to the budget)"),
        "accept_ties": Param(True, "keep a candidate whose loss ties the current one (int8 plateaus)"),
    }

    def check_params(self) -> None:
        super().check_params()
        p = self.params["p_init"]
        if p is None or not 0 < p <= 1:
            raise UsageError(f"attack square: parameter p_init={p}: must be in (0, 1]")

    def search(self, oracle, x, eps, data_range, rng):
        return square_linf(oracle, x, eps, data_range, rng, p_init=self.params["p_init"],
                           accept_ties=self.params["accept_ties"])
