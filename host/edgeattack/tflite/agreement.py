"""How far two runtimes' raw outputs for the same inputs agree, honestly about near-ties.

TFLM is the reference (what a microcontroller computes). LiteRT's reference kernels are plain integer
C with no per-CPU code path, so comparing them with TFLM gives the same answer on every machine: it is
the comparison where exactness is the point. LiteRT's default XNNPACK kernels round requantization
differently per instruction set (SSE, AVX2, AVX-512 ...), so their outputs move by an LSB or so from
one CPU to the next; on an input whose top two classes are within that much of each other (a near-tie:
common for a barely trained model), the predicted class then depends on the CPU. Such inputs say
nothing about the model and are excluded from the XNNPACK agreement, and counted.

Public API:
    compare_outputs(reference_raw, other_raw) -> dict
        {"n", "agree" (all inputs), "max_lsb_diff", "decided" (inputs whose reference top-1 margin
         exceeds max_lsb_diff), "excluded" (n - decided), "agree_decided" (over decided; None if none)}
    top1_margin(raw) -> np.ndarray   (per input: top-1 minus runner-up, in output steps)
"""
from __future__ import annotations

import numpy as np


def top1_margin(raw) -> np.ndarray:
    """Per input (first axis), the gap between the largest and second-largest output, in raw steps
    (LSB for quantized outputs)."""
    flat = np.asarray(raw).reshape(len(raw), -1).astype(np.float64)
    if flat.shape[1] < 2:
        return np.full(len(flat), np.inf)
    top2 = np.partition(flat, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def compare_outputs(reference_raw, other_raw) -> dict:
    """Compare raw outputs (N x ...) of the reference runtime (TFLM) and another one."""
    a, b = np.asarray(reference_raw), np.asarray(other_raw)
    if a.shape != b.shape:
        raise ValueError(f"outputs of shapes {a.shape} and {b.shape} cannot be compared")
    n = len(a)
    if n == 0:
        return {"n": 0, "agree": None, "max_lsb_diff": None, "decided": 0, "excluded": 0,
                "agree_decided": None}
    fa, fb = a.reshape(n, -1), b.reshape(n, -1)
    same = fa.argmax(axis=1) == fb.argmax(axis=1)
    if np.issubdtype(a.dtype, np.integer):
        diff = int(np.abs(fa.astype(np.int64) - fb.astype(np.int64)).max())
    else:
        diff = float(np.abs(fa.astype(np.float64) - fb.astype(np.float64)).max())
    decided = top1_margin(fa) > diff
    k = int(decided.sum())
    return {"n": n, "agree": float(same.mean()), "max_lsb_diff": diff, "decided": k,
            "excluded": n - k, "agree_decided": float(same[decided].mean()) if k else None}
