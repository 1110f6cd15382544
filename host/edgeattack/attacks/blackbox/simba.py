"""SimBA (Guo et al., ICML 2019): simple black-box attack, score-based, pixel or DCT basis.

It walks through orthonormal directions q in random order (pixels; or 2-D DCT basis images, low
frequencies first: SimBA-DCT), tries x - step*q, then x + step*q, and keeps the first that does not
raise the margin loss. Pixel basis is the default.

Norms: L-inf (default): the pixel step is eps, so each visited pixel moves to the edge of the ball;
a DCT direction is scaled so its largest pixel change is eps and the point is clipped back into the
ball. L2: the step is `rel_stepsize` x eps along the unit direction and the point is projected back
onto the L2 ball. When every direction has been tried, a new random order starts, while budget lasts.

Ties (int8 scores, rounded scores) are accepted like Square's: see oracle.better. A candidate that
equals the current point after clipping (a dark pixel pushed below 0) is not sent: it would spend a
query on a known answer.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import UsageError
from ..base import Param, register
from .budgeted import BudgetedAttack
from .oracle import Oracle, better, margin


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (rows are basis vectors)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def _dct_order(h: int, w: int, c: int, rng) -> np.ndarray:
    """Flat (u, v, channel) indices, low frequencies first: rings max(u, v) = 0, 1, 2, ...,
    random order inside each ring (SimBA-DCT's low-frequency order)."""
    u, v, ch = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    ring = np.maximum(u, v).reshape(-1)
    key = ring + rng.random(ring.shape)  # random inside a ring
    return np.argsort(key, kind="stable")


class _Basis:
    """Direction k of a sample as an image (pixel: one coordinate; dct: a basis image)."""

    def __init__(self, shape, kind: str):
        self.shape = tuple(shape)
        self.kind = kind
        hwc = {3: self.shape, 2: self.shape + (1,), 1: (1,) + self.shape + (1,)}.get(len(self.shape))
        if hwc is None:
            raise ValueError(f"simba: inputs of rank {len(self.shape)} per sample are not supported")
        self.h, self.w, self.c = hwc
        if kind == "dct":
            self.dh, self.dw = _dct_matrix(self.h), _dct_matrix(self.w)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def order(self, rng) -> np.ndarray:
        if self.kind == "pixel":
            return rng.permutation(self.size)
        return _dct_order(self.h, self.w, self.c, rng)

    def images(self, ks: np.ndarray) -> np.ndarray:
        """(m,) direction indices -> (m, *shape) unit-L2 directions."""
        m = len(ks)
        out = np.zeros((m, self.h, self.w, self.c), dtype=np.float32)
        if self.kind == "pixel":
            out.reshape(m, -1)[np.arange(m), ks] = 1.0
        else:
            u, rest = np.divmod(ks, self.w * self.c)
            v, ch = np.divmod(rest, self.c)
            # basis image = outer(dh[u], dw[v]) in channel ch (orthonormal: unit L2 norm)
            out[np.arange(m), :, :, ch] = self.dh[u][:, :, None] * self.dw[v][:, None, :]
        return out.reshape((m,) + self.shape)


def _project(x0, cand, eps, norm, lo, hi):
    if norm == "linf":
        cand = np.clip(cand, x0 - eps, x0 + eps)
    else:
        d = (cand - x0).reshape(len(cand), -1)
        n = np.sqrt((d.astype(np.float64) ** 2).sum(axis=1))
        f = np.minimum(1.0, eps / np.maximum(n, 1e-12)).astype(np.float32)
        cand = x0 + (d * f[:, None]).reshape(cand.shape)
    return np.clip(cand, lo, hi).astype(np.float32)


def simba(oracle: Oracle, x: np.ndarray, eps: float, data_range, rng: np.random.Generator,
          basis: str = "pixel", norm: str = "linf", rel_stepsize: float = 0.2,
          accept_ties: bool = True, progress=None) -> np.ndarray:
    """Run SimBA on every sample within the oracle's budget; return the best points found."""
    if basis not in ("pixel", "dct"):
        raise ValueError(f"simba: basis {basis!r} (use pixel or dct)")
    if norm not in ("linf", "l2"):
        raise ValueError(f"simba: norm {norm!r} (use linf or l2)")
    lo, hi = (float(v) for v in data_range)
    x0 = np.asarray(x, dtype=np.float32)
    n = len(x0)
    y = oracle.y
    B = _Basis(x0.shape[1:], basis)
    all_idx = np.arange(n)

    x_best = x0.copy()
    loss = margin(oracle.scores(x_best, all_idx), y)
    done = loss < 0
    oracle.finish(all_idx[done])
    orders = np.stack([B.order(rng) for _ in range(n)])
    pos = np.zeros(n, dtype=np.int64)
    while True:
        act = all_idx[~done & (oracle.remaining() > 0)]
        if len(act) == 0:
            break
        wrap = act[pos[act] >= B.size]
        for i in wrap:  # every direction tried: start a new random order
            orders[i] = B.order(rng)
            pos[i] = 0
        q = B.images(orders[act, pos[act]])
        pos[act] += 1
        if norm == "linf":
            peak = np.abs(q).reshape(len(q), -1).max(axis=1)
            step = (eps / peak)[:, None]
        else:
            step = np.full((len(q), 1), rel_stepsize * eps, dtype=np.float32)
        step = step.reshape((-1,) + (1,) * (q.ndim - 1)).astype(np.float32)
        moved = np.zeros(len(act), dtype=bool)
        for sign in (-1.0, 1.0):
            live = np.flatnonzero(~moved & (oracle.remaining(act) > 0))
            if len(live) == 0:
                break
            i = act[live]
            cand = _project(x0[i], x_best[i] + sign * step[live] * q[live], eps, norm, lo, hi)
            changed = np.any(np.abs(cand - x_best[i]).reshape(len(i), -1) > 0, axis=1)
            live, i, cand = live[changed], i[changed], cand[changed]
            if len(i) == 0:
                continue
            new_loss = margin(oracle.scores(cand, i), y[i])
            take = better(new_loss, loss[i], accept_ties)
            x_best[i[take]] = cand[take]
            loss[i[take]] = new_loss[take]
            moved[live[take]] = True
            won = i[take & (new_loss < 0)]
            done[won] = True
            oracle.finish(won)
        if progress is not None:
            progress(1)
    oracle.finish(all_idx)
    return x_best


@register
class SimBA(BudgetedAttack):
    name = "simba"
    summary = "SimBA (score-based): one basis direction at a time, pixel (default) or low-frequency DCT"
    norms = ("linf", "l2")
    PARAMS = {
        "basis": Param("pixel", "directions tried: pixel or dct", ("pixel", "dct")),
        "rel_stepsize": Param(0.2, "L2 only: step along a direction, as a fraction of eps"),
        "accept_ties": Param(True, "keep a candidate whose loss ties the current one (int8 plateaus)"),
    }

    def check_params(self) -> None:
        super().check_params()
        self._positive("rel_stepsize")

    def search(self, oracle, x, eps, data_range, rng):
        p = self.params
        return simba(oracle, x, eps, data_range, rng, basis=p["basis"], norm=self.norm,
                     rel_stepsize=p["rel_stepsize"], accept_ties=p["accept_ties"])
