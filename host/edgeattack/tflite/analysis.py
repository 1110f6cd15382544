"""Static figures of a .tflite model: weight bytes and their gzip size, sparsity, distinct weight values
per output channel, MACs per layer, parameter count, input/output quantization.

The compress manifest (CONVENTIONS: manifest.json) is built from `summarize`; keep its keys stable.

Public API:
    summarize(model_bytes, arena=None) -> dict        (JSON-able; keys documented on the function)
    weight_buffer_bytes(info) -> int
    weight_buffer_gzip_bytes(info) -> int
    weight_sparsity(info) -> dict
    distinct_values_per_channel(info) -> list[dict]
    layer_macs(info) -> list[dict]
    param_count(info) -> int
    io_details(info) -> {"inputs": [...], "outputs": [...]}
    is_aligned_16(info) -> bool
where `info` is a reader.ModelInfo (or model bytes / a path: each function accepts those too).
"""
from __future__ import annotations

import gzip
import hashlib

import numpy as np

from .reader import ModelInfo, TensorInfo, read_model

# Operators whose input 1 is a weight tensor (and input 2 the bias), with the weight's output-channel
# axis as TFLite lays it out: conv [O, H, W, I], depthwise [1, H, W, O], fully connected [O, I].
WEIGHT_OPS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}

# Element-wise or data-movement operators: zero MACs (their element count is still reported).
_ELEMENTWISE = {"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "RELU", "RELU6",
                "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "PRELU", "QUANTIZE", "DEQUANTIZE"}


def _info(model) -> ModelInfo:
    return model if isinstance(model, ModelInfo) else read_model(model)


def _constant_buffers(info: ModelInfo) -> dict[int, np.ndarray]:
    """Buffer index -> bytes for every buffer a constant tensor uses (each buffer counted once)."""
    out = {}
    for sg in info.subgraphs:
        for t in sg.tensors:
            if t.is_constant:
                out[t.buffer] = info.buffers[t.buffer]
    return out


def weight_buffer_bytes(model) -> int:
    """Sum of the sizes of all constant tensors' buffers (weights, biases, shape operands)."""
    return int(sum(b.size for b in _constant_buffers(_info(model)).values()))


def weight_buffer_gzip_bytes(model) -> int:
    """gzip -9 size of the constant buffers concatenated in buffer order: what pruning and clustering
    gain shows as (FACTS: they do not shrink the .tflite itself). mtime=0 keeps it reproducible."""
    bufs = _constant_buffers(_info(model))
    blob = b"".join(bufs[i].tobytes() for i in sorted(bufs))
    return len(gzip.compress(blob, compresslevel=9, mtime=0))


def _weight_tensors(info: ModelInfo):
    """(operator, weight tensor, output-channel axis) for each constant weight of WEIGHT_OPS."""
    seen = set()
    for op in info.operators:
        axis = WEIGHT_OPS.get(op.name)
        if axis is None or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        t = info.tensors[op.inputs[1]]
        if not t.is_constant or t.index in seen:
            continue
        seen.add(t.index)
        if t.quant and t.quant.per_channel:
            axis = t.quant.quantized_dimension
        yield op, t, axis


def _int_values(info: ModelInfo, t: TensorInfo) -> np.ndarray | None:
    data = info.tensor_data(t.index)
    if data is None or data.dtype.kind not in "iuf" or data.shape != t.shape:
        return None
    return data


def weight_sparsity(model) -> dict:
    """Fraction of zero weights in the int8 weight tensors of CONV_2D / DEPTHWISE_CONV_2D /
    FULLY_CONNECTED. A quantized weight is zero when it equals its (per-channel) zero-point.

    Returns {"overall": float|None, "zeros": int, "elements": int, "per_tensor": [{"tensor", "name",
    "op", "op_index", "zeros", "elements", "fraction"}]}; overall is None when there is no such tensor.
    """
    info = _info(model)
    rows, zeros_all, total = [], 0, 0
    for op, t, axis in _weight_tensors(info):
        data = _int_values(info, t)
        if data is None or t.dtype != "int8":
            continue
        zp = np.zeros(data.shape[axis], dtype=np.int64)
        if t.quant:  # weights are symmetric (zero-point 0) in practice; honour a non-zero one anyway
            zp[:] = t.quant.zero_point if len(t.quant.zero_point) == zp.size else t.quant.zero_point[0]
        shape = [1] * data.ndim
        shape[axis] = -1
        zeros = int(np.count_nonzero(data.astype(np.int64) == zp.reshape(shape)))
        rows.append({"tensor": t.index, "name": t.name, "op": op.name, "op_index": op.index, "zeros": zeros,
                     "elements": int(data.size), "fraction": zeros / data.size if data.size else 0.0})
        zeros_all += zeros
        total += data.size
    return {"overall": zeros_all / total if total else None, "zeros": zeros_all, "elements": int(total),
            "per_tensor": rows}


def distinct_values_per_channel(model) -> list[dict]:
    """For each weight tensor of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: the number of distinct
    stored values in each output channel, as max and mean over channels (clustering to k centroids
    shows as max <= k). Returns [{"tensor", "name", "op", "op_index", "channels", "max", "mean"}]."""
    info = _info(model)
    rows = []
    for op, t, axis in _weight_tensors(info):
        data = _int_values(info, t)
        if data is None or data.ndim == 0:
            continue
        per_ch = np.moveaxis(data, axis, 0).reshape(data.shape[axis], -1)
        counts = [len(np.unique(ch)) for ch in per_ch]
        rows.append({"tensor": t.index, "name": t.name, "op": op.name, "op_index": op.index,
                     "channels": len(counts), "max": int(max(counts)) if counts else 0,
                     "mean": float(np.mean(counts)) if counts else 0.0})
    return rows


def layer_macs(model) -> list[dict]:
    """Multiply-accumulates per operator of the primary subgraph, for one inference (batch as in the
    model, normally 1). CONV_2D: output elements x kh x kw x filter input channels; DEPTHWISE_CONV_2D:
    output elements x kh x kw; FULLY_CONNECTED: output elements x input features; TRANSPOSE_CONV: input
    elements x kh x kw x output channels; BATCH_MATMUL: output elements x the contracted dimension.
    Everything else (ADD, pooling, MEAN, reshapes, activations) counts 0 MACs; element-wise operators
    report their output element count in "elements".

    Returns [{"index", "op", "macs", "elements", "output_shape"}].
    """
    info = _info(model)
    rows = []
    for op in info.operators:
        out = info.tensors[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
        out_elems = out.size if out is not None else 0
        w = info.tensors[op.inputs[1]] if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
        macs = 0
        if op.name == "CONV_2D" and w is not None and len(w.shape) == 4:
            macs = out_elems * w.shape[1] * w.shape[2] * w.shape[3]
        elif op.name == "DEPTHWISE_CONV_2D" and w is not None and len(w.shape) == 4:
            macs = out_elems * w.shape[1] * w.shape[2]
        elif op.name == "FULLY_CONNECTED" and w is not None and len(w.shape) == 2:
            macs = out_elems * w.shape[1]
        elif op.name == "TRANSPOSE_CONV" and w is not None and len(w.shape) == 4 and len(op.inputs) > 2:
            x = info.tensors[op.inputs[2]]
            macs = x.size * w.shape[0] * w.shape[1] * w.shape[2]
        elif op.name == "BATCH_MATMUL" and len(op.inputs) >= 2:
            a = info.tensors[op.inputs[0]]
            if a.shape:
                adj_x = bool(op.options.get("adj_x"))
                k = a.shape[-2] if adj_x and len(a.shape) >= 2 else a.shape[-1]
                macs = out_elems * k
        rows.append({"index": op.index, "op": op.name, "macs": int(macs),
                     "elements": int(out_elems) if op.name in _ELEMENTWISE else 0,
                     "output_shape": list(out.shape) if out is not None else []})
    return rows


def param_count(model) -> int:
    """Number of model parameters: elements of every constant tensor except integer operands that are
    not biases (RESHAPE shapes, PAD paddings, MEAN axes). Comparable to Keras' count_params()."""
    info = _info(model)
    bias_like = set()
    for op in info.operators:
        if op.name in WEIGHT_OPS and len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias_like.add(op.inputs[2])
        if op.name == "TRANSPOSE_CONV" and len(op.inputs) > 3 and op.inputs[3] >= 0:
            bias_like.add(op.inputs[3])
    total = 0
    for t in info.tensors:
        if not t.is_constant:
            continue
        if t.dtype in ("int32", "int64") and t.index not in bias_like:
            continue
        total += t.size
    return int(total)


def _io_row(t: TensorInfo) -> dict:
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
            "scale": t.scale, "zero_point": t.zero_point,
            "per_channel": bool(t.quant and t.quant.per_channel)}


def io_details(model) -> dict:
    """{"inputs": [...], "outputs": [...]}, each {"name", "shape", "dtype", "scale", "zero_point",
    "per_channel"}; scale and zero_point are None for float tensors."""
    info = _info(model)
    return {"inputs": [_io_row(t) for t in info.input_tensors],
            "outputs": [_io_row(t) for t in info.output_tensors]}


def is_aligned_16(model) -> bool:
    """True when every non-empty buffer starts at a multiple of 16 bytes from the file's start (what
    TFLM needs for an array declared alignas(16))."""
    info = _info(model)
    return all(off % 16 == 0 for off in info.buffer_offsets if off is not None)


def summarize(model_bytes, arena: dict | None = None) -> dict:
    """Everything static about a model, as a JSON-able dict (used by the compress manifest and by
    `edgeattack inspect --json`). `model_bytes` is the model's bytes (a path works too; given a
    ModelInfo, sha256 is None). `arena` (a find_arena_size result) is copied in when given.

    Keys: size_bytes, sha256, aligned_16, operators (names in order), operator_counts,
    distinct_operators, inputs / outputs (io_details rows), weight_buffer_bytes,
    weight_buffer_gzip_bytes, sparsity (weight_sparsity), distinct_values_per_channel (rows),
    max_distinct_values_per_channel (max over tensors, None without weights), macs
    ({"total", "per_layer"}), param_count, tensor_count, subgraph_count, tflm_arena (arena or None).
    """
    if isinstance(model_bytes, ModelInfo):
        info, data = model_bytes, None
    else:
        if not isinstance(model_bytes, (bytes, bytearray, memoryview)):
            from .reader import load_model_bytes
            data = load_model_bytes(model_bytes)
            info = read_model(data, name=str(model_bytes))
        else:
            data = bytes(model_bytes)
            info = read_model(data)
    ops = info.op_names
    counts: dict[str, int] = {}
    for name in ops:
        counts[name] = counts.get(name, 0) + 1
    per_layer = layer_macs(info)
    distinct = distinct_values_per_channel(info)
    io = io_details(info)
    return {
        "size_bytes": info.size,
        "sha256": hashlib.sha256(data).hexdigest() if data is not None else None,
        "aligned_16": is_aligned_16(info),
        "operators": ops,
        "operator_counts": counts,
        "distinct_operators": info.distinct_ops,
        "inputs": io["inputs"],
        "outputs": io["outputs"],
        "weight_buffer_bytes": weight_buffer_bytes(info),
        "weight_buffer_gzip_bytes": weight_buffer_gzip_bytes(info),
        "sparsity": weight_sparsity(info),
        "distinct_values_per_channel": distinct,
        "max_distinct_values_per_channel": max((d["max"] for d in distinct), default=None),
        "macs": {"total": int(sum(r["macs"] for r in per_layer)), "per_layer": per_layer},
        "param_count": param_count(info),
        "tensor_count": len(info.tensors),
        "subgraph_count": len(info.subgraphs),
        "tflm_arena": dict(arena) if arena else None,
    }
