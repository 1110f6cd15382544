"""Measure the smallest TFLM tensor arena a model runs in, by search over child processes.

TFLM's Python interpreter can segfault instead of failing cleanly when the arena is too small
(FACTS), so every try runs in a child process (`_arena_child`). To keep the number of children small,
each child gets a batch of sizes and tries them largest first, stopping at the first failure: one
child narrows the interval [lo, hi] by a factor of batch + 1. The search first finds a size that works
(a generous estimate and its halvings, grown 4x until it runs), then narrows to 16-byte granularity (TFLM aligns
allocations to 16 bytes, so a finer answer means nothing).

Public API:
    find_arena_size(model_bytes, verbose=False, timeout=120.0, name=None)
        -> {"measured", "with_margin", "margin", "children", "seconds"}
    arena_margin(measured) -> int
    try_arena(model_bytes, size, timeout=60.0) -> bool
"""
from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

from ..errors import EdgeAttackError
from ..children import run_python
from .reader import read_model
from .runtimes import default_arena_size

GRANULARITY = 16
MARGIN_FRACTION = 0.10
# Extra bytes on top of the 10%: TFLM aligns the arena's start to 16 bytes and loses up to 15 bytes
# when the firmware's array is not itself 16-aligned.
ALIGNMENT_SLACK = 16
# Sizes one child tries: a child costs ~0.25 s to start, a try a few ms for small models.
BATCH = 15
MAX_ARENA = 256 * 1024 * 1024
_CHILD = "edgeattack.tflite._arena_child"


def arena_margin(measured: int) -> int:
    """Margin added to the measured arena for a device build: 10% rounded up to 16 bytes, plus 16.

    Why: the host measures TFLM's reference kernels; a device build may use optimized kernels (CMSIS-NN)
    whose scratch buffers are larger, and a different TFLM version may allocate a little differently.
    (Persistent structures hold pointers, which are 8 bytes on the host and 4 on a Cortex-M, so that
    part is overestimated here and needs no margin.) The 16 bytes cover an arena array that is not
    16-byte aligned, which TFLM fixes by skipping up to 15 bytes.
    """
    tenth = math.ceil(measured * MARGIN_FRACTION)
    return _ceil16(tenth) + ALIGNMENT_SLACK


def _ceil16(n: int) -> int:
    return (int(n) + GRANULARITY - 1) // GRANULARITY * GRANULARITY


class _Probe:
    """Runs children on one model file and records what they report."""

    def __init__(self, path: Path, label: str, deadline: float):
        self.path, self.label, self.deadline = path, label, deadline
        self.children = 0
        self.last_error = ""

    def run(self, sizes: list[int]) -> tuple[int | None, int | None]:
        """Try `sizes` (descending) in one child -> (smallest size that ran, first size that failed)."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise EdgeAttackError(f"{self.label}: the TFLM arena search ran out of time; pass a larger "
                                  f"timeout or give the arena size yourself")
        self.children += 1
        res = run_python(["-m", _CHILD, str(self.path), *map(str, sizes)], timeout=remaining)
        ok, failed = [], None
        for line in res.stdout.splitlines():
            parts = line.split(maxsplit=3)
            if len(parts) >= 3 and parts[0] == "EA-ARENA":
                if parts[1] == "ok":
                    ok.append(int(parts[2]))
                elif parts[1] == "fail":
                    failed = int(parts[2])
                    self.last_error = parts[3] if len(parts) > 3 else ""
        if res.returncode is None:
            raise EdgeAttackError(f"{self.label}: the TFLM arena search ran out of time; pass a larger "
                                  f"timeout or give the arena size yourself")
        if failed is None and len(ok) < len(sizes):
            if not res.crashed and res.returncode != 0:
                detail = (res.stderr.strip().splitlines() or ["no message"])[-1]
                raise EdgeAttackError(f"{self.label}: the TFLM arena probe failed ({detail}); check the "
                                      f"tflite-micro install")
            failed = sizes[len(ok)]  # the child died (segfault) on this size
            self.last_error = f"crashed with signal {-res.returncode}" if res.crashed else ""
        return (min(ok) if ok else None), failed


def find_arena_size(model_bytes: bytes, verbose: bool = False, timeout: float = 120.0,
                    name: str | None = None) -> dict:
    """Smallest TFLM arena (bytes, multiple of 16) in which the model is built and invoked once on
    zeros, plus the margin a device build should add.

    Returns {"measured": int, "margin": int, "with_margin": measured + margin, "children": number of
    child processes, "seconds": wall time}. Progress goes to stderr (tqdm) when `verbose`.
    Raises UsageError for an invalid model, EdgeAttackError when TFLM cannot run the model at any
    size up to 256 MiB or the search exceeds `timeout` seconds.
    """
    data = bytes(model_bytes)
    label = name or "<bytes>"
    info = read_model(data, name=label)
    t0 = time.monotonic()
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="ea-arena-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        probe = _Probe(path, label, t0 + timeout)
        bar = tqdm(desc="TFLM arena search", unit="child", disable=not verbose, file=sys.stderr, leave=False)
        try:
            lo, hi = 0, None  # lo: largest size known to fail (0: none known); hi: smallest that runs
            size = _ceil16(default_arena_size(info))
            while hi is None:
                # The generous estimate, then halvings below it: one child brackets the answer
                # within a factor of 2 (the estimate is typically far above the need).
                sizes = sorted({size} | {_ceil16(size >> k) for k in range(1, BATCH + 1) if size >> k >= 64},
                               reverse=True)
                ran, failed = probe.run(sizes)
                bar.update(1)
                if ran is not None:
                    hi = ran
                    lo = failed or 0
                else:
                    lo = failed
                    if size >= MAX_ARENA:
                        raise EdgeAttackError(
                            f"{label}: TFLM cannot run this model even with a {size}-byte arena "
                            f"({probe.last_error or 'no message'}); check its operators with `edgeattack inspect`")
                    size = min(size * 4, MAX_ARENA)
            while hi - lo > GRANULARITY:
                steps = (hi - lo) // GRANULARITY  # candidate sizes strictly between lo and hi
                n = min(BATCH, steps - 1)
                sizes = sorted({lo + GRANULARITY * max(1, round(steps * k / (n + 1))) for k in range(1, n + 1)},
                               reverse=True)
                sizes = [s for s in sizes if lo < s < hi]
                ran, failed = probe.run(sizes)
                if ran is not None:
                    hi = ran
                if failed is not None:
                    lo = max(lo, failed)
                bar.update(1)
                bar.set_postfix_str(f"{lo}..{hi} bytes")
        finally:
            bar.close()
    margin = arena_margin(hi)
    return {"measured": hi, "margin": margin, "with_margin": hi + margin, "children": probe.children,
            "seconds": round(time.monotonic() - t0, 3)}


def try_arena(model_bytes: bytes, size: int, timeout: float = 60.0) -> bool:
    """True when TFLM builds and invokes the model once with a `size`-byte arena (in a child process,
    so a segfault on a too-small arena is just False)."""
    data = bytes(model_bytes)
    read_model(data)
    with tempfile.TemporaryDirectory(prefix="ea-arena-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        ran, _ = _Probe(path, "<bytes>", time.monotonic() + timeout).run([int(size)])
    return ran is not None
