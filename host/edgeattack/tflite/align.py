"""Re-pack a .tflite so every weight buffer starts on a 16-byte boundary (converter output is aligned
only to 4; TFLM and SIMD kernels want 16). Uses TFLM's own tflite_flatbuffer_align tool.

Public API:
    align_16(model_bytes, name=None, timeout=120.0) -> bytes
    same_graph(a, b) -> str | None      (None when two models compute the same thing, else why not)
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import EdgeAttackError
from ..children import run_python
from .analysis import is_aligned_16
from .reader import ModelInfo, read_model

# FACTS: the launcher script installed next to the module fails; the module itself works.
ALIGN_MODULE = "tflite_micro.tensorflow.lite.micro.tools.tflite_flatbuffer_align"


def align_16(model_bytes: bytes, name: str | None = None, timeout: float = 120.0) -> bytes:
    """Return the model with every buffer 16-byte aligned.

    An already aligned model is returned unchanged (so its SHA-256 stays what the device reports).
    Otherwise TFLM's align tool runs in a child process (it segfaults on malformed input, so the
    model is validated first and the tool never runs in our process), and the result is checked to
    hold the same operators, tensors, quantization and constant data as the input, i.e. it computes
    exactly the same outputs. Raises UsageError for an invalid model, EdgeAttackError if the tool
    fails or changes the graph.
    """
    data = bytes(model_bytes)
    label = name or "<bytes>"
    before = read_model(data, name=label)
    if is_aligned_16(before):
        return data
    with tempfile.TemporaryDirectory(prefix="ea-align-") as tmp:
        src, dst = Path(tmp) / "in.tflite", Path(tmp) / "out.tflite"
        src.write_bytes(data)
        res = run_python(["-m", ALIGN_MODULE, str(src), str(dst)], timeout=timeout)
        if res.returncode != 0 or not dst.is_file():
            why = ("timed out" if res.returncode is None else
                   f"crashed with signal {-res.returncode}" if res.crashed else f"exit {res.returncode}")
            detail = (res.stderr.strip().splitlines() or [""])[-1]
            raise EdgeAttackError(f"{label}: TFLM's flatbuffer align tool failed ({why}{': ' + detail if detail else ''}); "
                                  f"check the tflite-micro install (`python -m {ALIGN_MODULE}`)")
        out = dst.read_bytes()
    after = read_model(out, name=f"{label} (aligned)")
    problem = same_graph(before, after) or (None if is_aligned_16(after) else "buffers still unaligned")
    if problem:
        raise EdgeAttackError(f"{label}: aligning changed the model ({problem}); report this with the model file")
    return out


def same_graph(a: ModelInfo, b: ModelInfo) -> str | None:
    """None when `a` and `b` hold the same subgraphs, operators (with options), tensors (shape, type,
    quantization) and constant data, i.e. compute the same outputs; else the first difference."""
    if len(a.subgraphs) != len(b.subgraphs):
        return "subgraph count differs"
    for s, (sa, sb) in enumerate(zip(a.subgraphs, b.subgraphs)):
        if (sa.inputs, sa.outputs) != (sb.inputs, sb.outputs):
            return f"subgraph {s} inputs/outputs differ"
        if len(sa.operators) != len(sb.operators) or len(sa.tensors) != len(sb.tensors):
            return f"subgraph {s} operator or tensor count differs"
        for oa, ob in zip(sa.operators, sb.operators):
            if (oa.name, oa.version, oa.inputs, oa.outputs, oa.options) != (
                    ob.name, ob.version, ob.inputs, ob.outputs, ob.options):
                return f"operator {oa.index} ({oa.name}) differs"
        for ta, tb in zip(sa.tensors, sb.tensors):
            if (ta.shape, ta.type_name, ta.quant, ta.is_constant, ta.is_variable) != (
                    tb.shape, tb.type_name, tb.quant, tb.is_constant, tb.is_variable):
                return f"tensor {ta.index} ({ta.name}) differs"
            if ta.is_constant and a.buffers[ta.buffer].tobytes() != b.buffers[tb.buffer].tobytes():
                return f"tensor {ta.index} ({ta.name}) data differs"
    return None
