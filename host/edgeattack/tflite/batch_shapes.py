"""Give the tensors inside a lowered dilated convolution the batch size their data has.

A Keras model whose Input has no batch size (the usual way to write one) makes the TFLite converter
lower a dilated convolution to SPACE_TO_BATCH_ND -> CONV_2D / DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND.
Between the two, the data has input_batch * block_h * block_w batches, but the converter stores batch
1 in those tensors' shapes (their shape_signature says -1, "resized at run time"). LiteRT resizes them
when it prepares; TFLM and the firmware take stored shapes as they are, so TFLM writes past the tensors
and the firmware's loader refuses the model. This module writes the real batch into the stored shapes,
in place (same length, same offsets, so alignment and everything else stay as they were).

Public API:
    fix_space_to_batch_shapes(model_bytes) -> (bytes, patched_tensor_indices)
"""
from __future__ import annotations

import numpy as np

from .reader import _schema, read_model

_SPACE_TO_BATCH, _BATCH_TO_SPACE = "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"


def _batched_tensors(info) -> dict[int, int]:
    """{tensor index: real batch} for the tensors between each SPACE_TO_BATCH_ND and the
    BATCH_TO_SPACE_ND that ends it, where the stored batch is 1 but the signature is dynamic."""
    tensors, ops = info.tensors, info.operators
    batch: dict[int, int] = {}
    for i, op in enumerate(ops):
        if op.name != _SPACE_TO_BATCH or len(op.inputs) < 2:
            continue
        block = info.tensor_data(op.inputs[1])
        if block is None:  # a block shape computed at run time: nothing to know statically
            continue
        inner = int(tensors[op.inputs[0]].shape[0]) * int(np.prod(block))
        batch[op.outputs[0]] = inner
        # Operators after it (in execution order) that read a batched tensor produce one, until the
        # BATCH_TO_SPACE_ND that folds the blocks back.
        for later in ops[i + 1:]:
            if later.name == _BATCH_TO_SPACE or not any(t in batch for t in later.inputs if t >= 0):
                continue
            for t in later.outputs:
                batch[t] = inner
    out = {}
    for t, n in batch.items():
        tensor = tensors[t]
        sig = tensor.shape_signature
        if (len(tensor.shape) >= 1 and int(tensor.shape[0]) == 1 and n != 1
                and sig is not None and len(sig) >= 1 and int(sig[0]) == -1):
            out[t] = n
    return out


def fix_space_to_batch_shapes(model_bytes: bytes) -> tuple[bytes, list[int]]:
    """The model with the real batch written into the stored shapes of the tensors between
    SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND (see the module doc), and the indices patched. A model
    without such tensors comes back unchanged (the same bytes)."""
    data = bytes(model_bytes)
    info = read_model(data)
    if _SPACE_TO_BATCH not in info.distinct_ops:
        return data, []
    wanted = _batched_tensors(info)
    if not wanted:
        return data, []
    fb = _schema()
    buf = bytearray(data)
    graph = fb.Model.GetRootAs(buf, 0).Subgraphs(0)
    for t, n in wanted.items():
        shape = graph.Tensors(t).ShapeAsNumpy()  # a writable view into buf
        shape[0] = n
    return bytes(buf), sorted(wanted)
