"""BadNets-style triggers (Gu et al. 2017): a square patch or a blended pattern stamped on inputs.

    t = parse_trigger("patch:3", input_shape=(8, 8, 1))      # 3x3 patch, bottom-right corner
    t = parse_trigger("blend:0.1")                           # blend a fixed pattern at alpha 0.1
    x_triggered = t.apply(x)                                 # same shape, clipped to the data range

Pure NumPy (no TensorFlow): the CLI checks a trigger before any model loads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import UsageError

POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "center")
TRIGGER_HELP = "patch:SIZE (a SIZExSIZE square) or blend:ALPHA (a fixed pattern blended in, 0 < ALPHA <= 1)"


@dataclass(frozen=True)
class Trigger:
    kind: str                    # "patch" or "blend"
    size: int = 3                # patch side in pixels
    alpha: float = 0.1           # blend weight of the pattern
    position: str = "bottom-right"
    value: float | None = None   # patch fill; default: the data range's maximum
    seed: int = 0                # the blend pattern's seed (fixed: the same trigger at test time)
    data_range: tuple = (0.0, 1.0)

    def spec(self) -> str:
        return f"patch:{self.size}" if self.kind == "patch" else f"blend:{self.alpha:g}"

    def describe(self) -> dict:
        d = {"trigger": self.spec(), "kind": self.kind, "position": self.position}
        if self.kind == "patch":
            d.update(size=self.size, value=self.fill)
        else:
            d.update(alpha=self.alpha, pattern_seed=self.seed)
        return d

    @property
    def fill(self) -> float:
        return float(self.data_range[1] if self.value is None else self.value)

    def check_fits(self, input_shape) -> None:
        """UsageError when a patch does not fit inside the input's height and width."""
        shape = tuple(input_shape)
        if self.kind != "patch":
            return
        if len(shape) < 2 or self.size > shape[0] or self.size > shape[1]:
            raise UsageError(f"--trigger {self.spec()}: a {self.size}x{self.size} patch is larger than "
                             f"the input {shape}; choose a patch of at most "
                             f"{min(shape[:2]) if len(shape) >= 2 else 0} pixels")

    def _slices(self, shape):
        h, w, s = shape[0], shape[1], self.size
        rows = {"top": slice(0, s), "bottom": slice(h - s, h), "center": slice((h - s) // 2, (h - s) // 2 + s)}
        cols = {"left": slice(0, s), "right": slice(w - s, w), "center": slice((w - s) // 2, (w - s) // 2 + s)}
        if self.position == "center":
            return rows["center"], cols["center"]
        vertical, horizontal = self.position.split("-")
        return rows[vertical], cols[horizontal]

    def mask_and_pattern(self, input_shape) -> tuple[np.ndarray, np.ndarray]:
        """(mask, pattern), both of the input's shape: x_triggered = (1 - mask) * x + mask * pattern."""
        shape = tuple(input_shape)
        self.check_fits(shape)
        lo, hi = self.data_range
        mask = np.zeros(shape, np.float32)
        pattern = np.zeros(shape, np.float32)
        if self.kind == "patch":
            r, c = self._slices(shape)
            mask[r, c] = 1.0
            # A checkerboard of the range's ends, as in BadNets: no clean image holds it.
            yy, xx = np.indices((self.size, self.size))
            board = np.where((yy + xx) % 2 == 0, self.fill, lo).astype(np.float32)
            pattern[r, c] = board.reshape(board.shape + (1,) * (len(shape) - 2))
        else:
            mask[:] = self.alpha
            rng = np.random.default_rng(self.seed)
            pattern[:] = (lo + (hi - lo) * rng.random(shape)).astype(np.float32)
        return mask, pattern

    def apply(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        mask, pattern = self.mask_and_pattern(x.shape[1:])
        lo, hi = self.data_range
        return np.clip((1.0 - mask) * x + mask * pattern, lo, hi).astype(np.float32)


def parse_trigger(spec: str, input_shape=None, *, position: str = "bottom-right", value=None,
                  seed: int = 0, data_range=(0.0, 1.0)) -> Trigger:
    """A Trigger from `patch:SIZE` or `blend:ALPHA`; checked against input_shape when given."""
    if position not in POSITIONS:
        raise UsageError(f"--trigger-position {position}: choose one of {', '.join(POSITIONS)}")
    kind, _, arg = str(spec).partition(":")
    try:
        if kind == "patch":
            size = int(arg or 3)
            if size < 1:
                raise ValueError
            t = Trigger("patch", size=size, position=position, value=value, seed=seed,
                        data_range=tuple(data_range))
        elif kind == "blend":
            alpha = float(arg or 0.1)
            if not 0.0 < alpha <= 1.0:
                raise ValueError
            t = Trigger("blend", alpha=alpha, position=position, value=value, seed=seed,
                        data_range=tuple(data_range))
        else:
            raise ValueError
    except ValueError:
        raise UsageError(f"--trigger {spec}: write {TRIGGER_HELP}") from None
    if input_shape is not None:
        t.check_fits(input_shape)
    return t
