"""The one place where meter samples become energy per window (every driver feeds a Trace).

A driver appends what its meter delivers, converted to SI units on the meter's own clock: sample
times (s), power (W; NaN marks a sample the meter reported lost) and timestamp events. Windows are
then cut between timestamp events, MLPerf Tiny's way: the energy between a window's two timestamp
events, divided by the window's iterations; the median over windows is the figure reported.

Integration rules:
- "trapezoid": P(t) is piecewise linear between samples (current/voltage meters sampling an
  instant: Joulescope, PPK2, INA2xx); the window's ends are interpolated at the event times.
- "rectangle": sample i holds P_i over [t_i, t_i + dt) (meters that report the energy of each
  sample period, the LPM01A in `output energy` mode); a window sums the periods it covers.
Zero-mean noise averages out in both; lost samples are filled by linear interpolation between
their neighbours, counted per window, and a window missing more than `max_dropped` of its
samples is an error (its energy would be guessed, not measured).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import DeviceError

TIMESTAMP_MODES = ("high", "falling")


class MeterError(DeviceError):
    """An energy meter failed or delivered data that cannot give an honest figure."""


@dataclass(frozen=True)
class Window:
    """One measurement window: the samples between two timestamp events."""
    index: int                 # 1-based, in acquisition order
    start_s: float             # on the meter's clock, from the start of acquisition
    end_s: float
    energy_j: float
    samples: int               # samples inside the window (dropped ones included)
    dropped: int               # samples the meter lost inside the window (filled by interpolation)
    iterations: int | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def energy_per_iteration_j(self) -> float | None:
        return self.energy_j / self.iterations if self.iterations else None

    @property
    def time_per_iteration_s(self) -> float | None:
        return self.duration_s / self.iterations if self.iterations else None

    @property
    def power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else float("nan")


def per_inference(windows: Sequence[Window]) -> dict:
    """MLPerf Tiny's figure: the median over windows of energy (and time) per iteration."""
    if not windows:
        raise MeterError("no measurement windows to summarize")
    if any(w.iterations is None for w in windows):
        raise MeterError("windows have no iteration counts: pass iterations= to windows()")
    return {"energy_j": float(np.median([w.energy_per_iteration_j for w in windows])),
            "time_s": float(np.median([w.time_per_iteration_s for w in windows])),
            "power_w": float(np.median([w.power_w for w in windows])),
            "windows": len(windows), "dropped": int(sum(w.dropped for w in windows)),
            "energy_source": "measured"}


class Trace:
    """Samples and timestamp events of one acquisition; thread-safe appends, one reader at the end."""

    def __init__(self, meter: str, rule: str = "trapezoid", timestamp: str = "high",
                 max_dropped: float = 0.01, nominal_dt: float | None = None):
        if rule not in ("trapezoid", "rectangle"):
            raise ValueError(f"unknown integration rule {rule!r}")
        if timestamp not in TIMESTAMP_MODES:
            raise MeterError(f"energy meter {meter}: option timestamp must be one of "
                             f"{', '.join(TIMESTAMP_MODES)}, got {timestamp!r}")
        self.meter, self.rule, self.timestamp, self.max_dropped = meter, rule, timestamp, max_dropped
        self.nominal_dt = nominal_dt  # polled meters: holes > 5x this in the time axis are lost samples
        self._lock = threading.Lock()
        self._t: list[np.ndarray] = []
        self._p: list[np.ndarray] = []
        self.events: list[tuple[float, str]] = []   # (time s, "rise" | "fall")
        self._level: int | None = None              # last logic level seen (edge detection across chunks)
        self._initial_high = False                   # the line was high at the first sample
        self.dropped = 0                             # samples reported lost, whole acquisition
        self.last_data = time.monotonic()            # host time of the last chunk (stall detection)
        self.stalled: str | None = None              # why the stream stopped early, if it did
        self.failure: str | None = None              # an error raised inside a reader thread

    # appending ----------------------------------------------------------------------------------

    def add(self, t, power_w, logic=None) -> None:
        """Append samples: times (s), power (W, NaN = lost), optional logic level per sample (0/1)."""
        t = np.asarray(t, dtype=np.float64)
        p = np.asarray(power_w, dtype=np.float64)
        if t.shape != p.shape:
            raise ValueError("times and power differ in length")
        if not len(t):
            return
        with self._lock:
            self._t.append(t)
            self._p.append(p)
            self.dropped += int(np.isnan(p).sum())
            if logic is not None:
                level = np.asarray(logic).astype(bool).astype(np.int8)
                lost = np.isnan(p)
                if lost.any():  # a lost sample's logic level is unknown: hold the last known one
                    idx = np.where(lost, 0, np.arange(len(level)))
                    np.maximum.accumulate(idx, out=idx)
                    first = self._level if self._level is not None else 0
                    level = np.where(lost & (idx == 0) & lost[0], first, level[idx]).astype(np.int8)
                self._edges(t, level)
            self.last_data = time.monotonic()

    def _edges(self, t: np.ndarray, level: np.ndarray) -> None:
        prev = self._level if self._level is not None else int(level[0])
        changes = np.flatnonzero(np.diff(np.concatenate(([prev], level))))
        for i in changes:  # an edge lies between samples i-1 and i: it is dated at sample i
            self.events.append((float(t[i]), "rise" if level[i] else "fall"))
        if self._level is None and level[0]:
            self._initial_high = True
        self._level = int(level[-1])

    def event(self, t: float, kind: str) -> None:
        """A timestamp event the meter reported itself (a line on its serial port, a software mark)."""
        with self._lock:
            self.events.append((float(t), kind))
            self.last_data = time.monotonic()

    def mark_stalled(self, why: str) -> None:
        with self._lock:
            self.stalled = self.stalled or why

    def fail(self, why: str) -> None:
        with self._lock:
            self.failure = self.failure or why

    def check_stall(self, stall_s: float) -> None:
        """Called at stop(): no data for stall_s seconds means the meter stopped streaming."""
        idle = time.monotonic() - self.last_data
        if idle > stall_s:
            self.mark_stalled(f"no samples for the last {idle:.1f} s before stop")

    # reading ------------------------------------------------------------------------------------

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if not self._t:
                return np.zeros(0), np.zeros(0)
            return np.concatenate(self._t), np.concatenate(self._p)

    def _pairs(self, t_end: float, expected: int | None = None) -> list[tuple[float, float]]:
        """(start, end) times of each window, or a one-line error for a missing or doubled event."""
        who = f"energy meter {self.meter}"
        ev = sorted(self.events, key=lambda e: e[0])
        pairs: list[tuple[float, float]] = []
        if self.timestamp == "high":   # window = the timestamp line high (rise starts, fall ends)
            start = None
            if self._initial_high:
                raise MeterError(f"{who}: the timestamp line was already high when acquisition "
                                 f"began (a window's start event is missing): start the meter "
                                 f"before the inference")
            for t, kind in ev:
                if kind == "rise":
                    if start is not None:
                        raise MeterError(f"{who}: doubled timestamp event: window {len(pairs) + 1} "
                                         f"started at {start:.6f} s and again at {t:.6f} s")
                    start = t
                else:
                    if start is None:
                        raise MeterError(f"{who}: missing timestamp event: a window ended at "
                                         f"{t:.6f} s without a start")
                    pairs.append((start, t))
                    start = None
            if start is not None:
                self._open_window(len(pairs) + 1, start, t_end)
        else:                          # falling: each event is one timestamp; pairs bound windows
            marks = [t for t, kind in ev if kind in ("fall", "mark")]
            for a, b in zip(marks[0::2], marks[1::2]):
                pairs.append((a, b))
            if expected is not None and len(marks) > 2 * expected:
                raise MeterError(f"{who}: doubled timestamp event: {len(marks)} events seen, "
                                 f"{2 * expected} expected for {expected} windows")
            if len(marks) % 2:
                self._open_window(len(pairs) + 1, marks[-1], t_end)
        return pairs

    def _open_window(self, n: int, start: float, t_end: float) -> None:
        who = f"energy meter {self.meter}"
        if self.stalled or self.failure:
            raise MeterError(f"{who} stopped streaming mid-window ({self.stalled or self.failure}): "
                             f"window {n} started at {start:.6f} s, last sample at {t_end:.6f} s; "
                             f"check the meter's connection")
        raise MeterError(f"{who}: missing timestamp event: window {n} started at {start:.6f} s "
                         f"and has no end event (last sample at {t_end:.6f} s)")

    def windows(self, iterations: int | Sequence[int] | None = None) -> list[Window]:
        """Every window of the acquisition. `iterations`: one count for all windows, or one per
        expected window (then the number of windows must match: fewer is a missing timestamp
        event, more a doubled one)."""
        who = f"energy meter {self.meter}"
        if self.failure:
            raise MeterError(f"{who} failed: {self.failure}")
        t, p = self.samples()
        if not len(t):
            raise MeterError(f"{who} delivered no samples (is it connected and powered?)")
        expected = None if iterations is None or isinstance(iterations, int) else list(iterations)
        pairs = self._pairs(float(t[-1]), None if expected is None else len(expected))
        if expected is not None and len(pairs) != len(expected):
            if len(pairs) < len(expected) and self.stalled:
                raise MeterError(f"{who} stopped streaming ({self.stalled}) after {len(pairs)} of "
                                 f"{len(expected)} windows; check the meter's connection")
            what = "missing" if len(pairs) < len(expected) else "doubled"
            raise MeterError(f"{who}: {what} timestamp event: {len(pairs)} windows seen, "
                             f"{len(expected)} expected")
        lost = np.isnan(p)
        if lost.all():
            raise MeterError(f"{who}: every sample was lost")
        if lost.any():  # fill by linear interpolation between the neighbours that were measured
            p = p.copy()
            p[lost] = np.interp(t[lost], t[~lost], p[~lost])
        out = []
        for i, (a, b) in enumerate(pairs):
            if b <= a:
                raise MeterError(f"{who}: doubled timestamp event: window {i + 1} has zero length "
                                 f"at {a:.6f} s")
            if a < t[0] or b > self._end_time(t):
                raise MeterError(f"{who}: window {i + 1} ({a:.6f}-{b:.6f} s) lies outside the "
                                 f"samples ({t[0]:.6f}-{t[-1]:.6f} s)")
            inside = (t >= a) & (t < b)
            n = int(inside.sum())
            dropped = int(lost[inside].sum()) + self._gap_samples(t, a, b)
            if n + dropped and dropped / max(n, 1) > self.max_dropped:
                raise MeterError(f"{who}: window {i + 1} lost {dropped} of {n} samples "
                                 f"(more than {self.max_dropped:.0%}): its energy would be guessed; "
                                 f"lower the sampling rate or the host load")
            it = iterations if isinstance(iterations, int) else (expected[i] if expected else None)
            out.append(Window(i + 1, a, b, self._integrate(t, p, a, b), n, dropped, it))
        return out

    def _end_time(self, t: np.ndarray) -> float:
        if self.rule == "rectangle" and len(t) > 1:
            return float(t[-1] + np.median(np.diff(t)))
        return float(t[-1])

    def _gap_samples(self, t: np.ndarray, a: float, b: float) -> int:
        """Samples missing as holes in the time axis (meters polled by the host, e.g. INA2xx,
        every nominal_dt seconds): a hole of more than 5 periods lost round(hole / period) - 1."""
        if not self.nominal_dt:
            return 0
        sel = t[(t >= a) & (t <= b)]
        d = np.diff(np.concatenate(([a], sel, [b])))
        big = d > 5 * self.nominal_dt
        return int(np.sum(np.round(d[big] / self.nominal_dt) - 1))

    def _integrate(self, t: np.ndarray, p: np.ndarray, a: float, b: float) -> float:
        if self.rule == "trapezoid":
            inside = (t > a) & (t < b)
            tt = np.concatenate(([a], t[inside], [b]))
            pp = np.concatenate(([np.interp(a, t, p)], p[inside], [np.interp(b, t, p)]))
            return float(np.sum((pp[1:] + pp[:-1]) * np.diff(tt)) / 2)
        # rectangle: sample i holds p_i over [t_i, t_{i+1})
        ends = np.concatenate((t[1:], [t[-1] + (np.median(np.diff(t)) if len(t) > 1 else 0)]))
        overlap = np.clip(np.minimum(ends, b) - np.maximum(t, a), 0, None)
        return float(np.sum(p * overlap))
