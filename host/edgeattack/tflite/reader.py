"""Read a .tflite flatbuffer into plain Python objects (operators, tensors, quantization, buffers).

Field access goes through the flatbuffers schema module that ships inside the tflite-micro wheel
(LiteRT's copy as a fallback). That generated code trusts every offset, so `_Verifier` walks the
parts we read first and checks each offset, vtable and vector against the file's length: a truncated
or corrupt file gives one UsageError line, never a crash, a hang or a huge allocation.

Public API (other modules and engineers call these; keep names stable):
    read_model(path_or_bytes, name=None) -> ModelInfo
    ModelInfo, OperatorInfo, TensorInfo, QuantInfo   (dataclasses; ModelInfo.to_dict() is JSON-able)
    load_model_bytes(path) -> bytes                  (read a file, UsageError when missing)
"""
from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError

FILE_IDENTIFIER = b"TFL3"

# TensorType names -> numpy dtype names. Types numpy lacks keep their lower-cased TFLite name.
_NUMPY_DTYPES = {
    "FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "UINT8": "uint8", "INT64": "int64",
    "BOOL": "bool", "INT16": "int16", "COMPLEX64": "complex64", "INT8": "int8", "FLOAT64": "float64",
    "COMPLEX128": "complex128", "UINT64": "uint64", "UINT32": "uint32", "UINT16": "uint16",
}


def _schema():
    """The generated TFLite schema module (imported lazily: it pulls in numpy and flatbuffers)."""
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb
    except ImportError:  # a LiteRT-only install (e.g. the Pi agent) ships the same schema
        from ai_edge_litert import schema_py_generated as fb
    return fb


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


# ----------------------------------------------------------------------------------------------------
# Result types


@dataclass(frozen=True)
class QuantInfo:
    """Affine quantization of a tensor: real = scale * (q - zero_point). One entry per channel when
    per-channel (along `quantized_dimension`), else one entry."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    def to_dict(self) -> dict:
        return {"scale": list(self.scale), "zero_point": list(self.zero_point),
                "quantized_dimension": self.quantized_dimension, "per_channel": self.per_channel}


@dataclass
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str              # numpy dtype name ("int8"), or the lower-cased TFLite type ("int4")
    type_name: str          # TFLite TensorType name ("INT8")
    buffer: int             # index into ModelInfo.buffers (0 = the empty sentinel buffer)
    is_constant: bool       # has data in the file (weights, biases, shape operands)
    is_variable: bool = False
    quant: QuantInfo | None = None
    shape_signature: tuple[int, ...] | None = None  # -1 marks a dynamic dimension
    sparse: bool = False

    @property
    def size(self) -> int:
        """Number of elements (1 for a scalar)."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int | None:
        """Bytes of one copy of the tensor, None for types without a fixed element size."""
        if self.dtype == "int4":
            return (self.size + 1) // 2
        try:
            return self.size * np.dtype(self.dtype).itemsize
        except TypeError:
            return None

    @property
    def scale(self) -> float | None:
        """The per-tensor scale (first channel's when per-channel); None when not quantized."""
        return self.quant.scale[0] if self.quant else None

    @property
    def zero_point(self) -> int | None:
        return self.quant.zero_point[0] if self.quant else None

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "buffer": self.buffer, "constant": self.is_constant, "variable": self.is_variable,
                "quantization": self.quant.to_dict() if self.quant else None,
                "shape_signature": list(self.shape_signature) if self.shape_signature else None,
                "sparse": self.sparse}


@dataclass
class OperatorInfo:
    index: int
    name: str                      # builtin operator name ("CONV_2D"), or the custom code for CUSTOM
    builtin_code: int
    version: int
    inputs: tuple[int, ...]        # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)  # snake_case builtin options; enums as names
    custom_code: str | None = None

    @property
    def padding(self) -> str | None:
        return self.options.get("padding")

    @property
    def stride(self) -> tuple[int, int] | None:
        """(stride_h, stride_w) for convolutions and pooling."""
        if "stride_h" in self.options:
            return int(self.options["stride_h"]), int(self.options["stride_w"])
        return None

    @property
    def dilation(self) -> tuple[int, int] | None:
        if "dilation_h_factor" in self.options:
            return int(self.options["dilation_h_factor"]), int(self.options["dilation_w_factor"])
        return None

    @property
    def fused_activation(self) -> str | None:
        return self.options.get("fused_activation_function")

    def to_dict(self) -> dict:
        return {"index": self.index, "op": self.name, "version": self.version, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "options": self.options, "custom_code": self.custom_code}


@dataclass
class SubgraphInfo:
    name: str
    tensors: list[TensorInfo]
    operators: list[OperatorInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass
class ModelInfo:
    """A parsed model. `operators`, `tensors`, `inputs`, `outputs` are the primary subgraph's (0);
    `subgraphs` holds all of them (control-flow models have more than one)."""

    source: str                      # the path, or "<bytes>"
    size: int                        # file size in bytes
    version: int
    description: str
    subgraphs: list[SubgraphInfo]
    buffers: list[np.ndarray]        # read-only uint8 views into the model bytes (empty for buffer 0)
    buffer_offsets: list[int | None]  # file offset of each buffer's data (None when empty)
    metadata: dict[str, int] = field(default_factory=dict)  # metadata name -> buffer index

    @property
    def operators(self) -> list[OperatorInfo]:
        return self.subgraphs[0].operators

    @property
    def tensors(self) -> list[TensorInfo]:
        return self.subgraphs[0].tensors

    @property
    def inputs(self) -> tuple[int, ...]:
        return self.subgraphs[0].inputs

    @property
    def outputs(self) -> tuple[int, ...]:
        return self.subgraphs[0].outputs

    @property
    def input_tensors(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.outputs]

    @property
    def op_names(self) -> list[str]:
        """Operator names of every subgraph, in order (with repeats)."""
        return [op.name for sg in self.subgraphs for op in sg.operators]

    @property
    def distinct_ops(self) -> list[str]:
        """Distinct operator names in order of first use (what an op resolver must register)."""
        return list(dict.fromkeys(self.op_names))

    def tensor_data(self, index: int, subgraph: int = 0) -> np.ndarray | None:
        """A constant tensor's values as a typed, shaped read-only array (None if not constant)."""
        t = self.subgraphs[subgraph].tensors[index]
        if not t.is_constant:
            return None
        raw = self.buffers[t.buffer]
        if t.dtype not in _NUMPY_DTYPES.values() or t.sparse:
            return raw  # packed int4, strings, sparse: callers get the raw bytes
        dt = np.dtype(t.dtype).newbyteorder("<")
        if raw.size != t.size * dt.itemsize:
            return raw
        return raw.view(dt).reshape(t.shape)

    def to_dict(self) -> dict:
        sg = self.subgraphs[0]
        return {"source": self.source, "size": self.size, "version": self.version,
                "description": self.description, "subgraphs": len(self.subgraphs),
                "inputs": list(sg.inputs), "outputs": list(sg.outputs),
                "operators": [op.to_dict() for op in sg.operators],
                "tensors": [t.to_dict() for t in sg.tensors],
                "buffers": [int(b.size) for b in self.buffers]}


# ----------------------------------------------------------------------------------------------------
# Bounds checking


class _Invalid(Exception):
    """Internal: the reason a file is not a valid model (becomes the UsageError's parenthesis)."""


_U8, _U16, _I32, _U32, _U64 = (struct.Struct(f"<{c}") for c in "BHiIQ")

# The fields we read, by vtable slot (4 + 2 * field id in schema.fbs). Kinds: ("s", size) scalar,
# "str" string, ("v", elem size) scalar vector, ("vt", table) table vector, ("t", table) table,
# "u" union value (checked as a generic table). Slots not listed are not read and not checked.
_TABLES = {
    "Model": {4: ("s", 4), 6: ("vt", "OperatorCode"), 8: ("vt", "SubGraph"), 10: "str",
              12: ("vt", "Buffer"), 14: ("v", 4), 16: ("vt", "Metadata")},
    "OperatorCode": {4: ("s", 1), 6: "str", 8: ("s", 4), 10: ("s", 4)},
    "SubGraph": {4: ("vt", "Tensor"), 6: ("v", 4), 8: ("v", 4), 10: ("vt", "Operator"), 12: "str"},
    "Tensor": {4: ("v", 4), 6: ("s", 1), 8: ("s", 4), 10: "str", 12: ("t", "QuantizationParameters"),
               14: ("s", 1), 16: "u", 18: ("v", 4)},
    "QuantizationParameters": {4: ("v", 4), 6: ("v", 4), 8: ("v", 4), 10: ("v", 8), 12: ("s", 1),
                               14: "u", 16: ("s", 4)},
    "Operator": {4: ("s", 4), 6: ("v", 4), 8: ("v", 4), 10: ("s", 1), 12: "u", 14: ("v", 1)},
    "Buffer": {4: ("v", 1), 6: ("s", 8), 8: ("s", 8)},
    "Metadata": {4: "str", 6: ("s", 4)},
}

# A vector longer than this many elements cannot be a real model's and would only cost time.
_MAX_VECTOR = 1 << 28


class _Verifier:
    def __init__(self, buf: memoryview):
        self.buf = buf
        self.n = len(buf)

    def need(self, off: int, size: int, what: str) -> None:
        if off < 0 or size < 0 or off + size > self.n:
            raise _Invalid(f"{what} at offset {off} (+{size} bytes) lies outside the file's {self.n} bytes; "
                           f"the file is truncated or corrupt")

    def u32(self, off, what):
        self.need(off, 4, what)
        return _U32.unpack_from(self.buf, off)[0]

    def table(self, pos: int, kind: str, depth: int = 0) -> None:
        self.need(pos, 4, f"{kind} table")
        vt = pos - _I32.unpack_from(self.buf, pos)[0]
        self.need(vt, 4, f"{kind} vtable")
        vt_size, t_size = _U16.unpack_from(self.buf, vt)[0], _U16.unpack_from(self.buf, vt + 2)[0]
        if vt_size < 4 or vt_size % 2:
            raise _Invalid(f"{kind} vtable at offset {vt} has a bad size {vt_size}")
        self.need(vt, vt_size, f"{kind} vtable")
        self.need(pos, max(t_size, 4), f"{kind} table")
        spec = _TABLES.get(kind, {})
        for slot in range(4, vt_size, 2):
            fo = _U16.unpack_from(self.buf, vt + slot)[0]
            if fo == 0:
                continue
            kind_f = spec.get(slot)
            size = kind_f[1] if isinstance(kind_f, tuple) and kind_f[0] == "s" else (1 if kind_f is None else 4)
            if fo + size > t_size:
                raise _Invalid(f"{kind} field at vtable slot {slot} lies outside its table")
            if kind_f is None:
                continue
            at = pos + fo
            if kind_f == "str":
                self.vector(at, 1, f"{kind} string", extra=1)
            elif kind_f == "u":
                # Union tables (builtin options, sparsity, custom quantization): structure only.
                self.table(self.deref(at, f"{kind} union"), "union")
            elif kind_f[0] == "v":
                self.vector(at, kind_f[1], f"{kind} vector")
            elif kind_f[0] == "t":
                self.table(self.deref(at, kind), kind_f[1], depth + 1)
            elif kind_f[0] == "vt":
                start, length = self.vector(at, 4, f"{kind} vector")
                for i in range(length):
                    self.table(self.deref(start + 4 * i, kind_f[1]), kind_f[1], depth + 1)

    def deref(self, at: int, what: str) -> int:
        """Follow the unsigned offset stored at `at`; the target must start inside the file."""
        target = at + self.u32(at, what)
        self.need(target, 4, what)
        return target

    def vector(self, at: int, elem: int, what: str, extra: int = 0) -> tuple[int, int]:
        start = self.deref(at, what)
        length = _U32.unpack_from(self.buf, start)[0]
        if length > _MAX_VECTOR:
            raise _Invalid(f"{what} at offset {start} claims {length} elements")
        self.need(start + 4, length * elem + extra, what)
        return start + 4, length


# ----------------------------------------------------------------------------------------------------
# Reading


def _bad(source: str, reason: str) -> UsageError:
    return UsageError(f"{source}: not a valid .tflite model ({reason}); give a model written by "
                      f"`edgeattack compress` or the TFLite converter")


def load_model_bytes(path: str | os.PathLike) -> bytes:
    """Read a model file; a missing or unreadable file is a UsageError naming it."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such model file; give the path of a .tflite model")
    try:
        return p.read_bytes()
    except OSError as e:
        raise UsageError(f"{p}: cannot read the model file ({e.strerror}); check its permissions") from e


def read_model(path_or_bytes, name: str | None = None) -> ModelInfo:
    """Parse and validate a .tflite model given as a path or as bytes.

    `name` names the model in error messages when bytes are given (default "<bytes>"). Raises
    edgeattack.errors.UsageError with one line for anything that is not a valid TFLite flatbuffer.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        source = name or "<bytes>"
    else:
        data = load_model_bytes(path_or_bytes)
        source = name or str(path_or_bytes)
    try:
        _verify(data)
        return _parse(data, source)
    except _Invalid as e:
        raise _bad(source, str(e)) from None
    except (struct.error, IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError) as e:
        # The verifier covers what we read; this is the backstop for union contents it only
        # structure-checks (e.g. an option vector pointing past the end).
        raise _bad(source, f"corrupt data: {type(e).__name__}: {e}") from None


def _verify(data: bytes) -> None:
    n = len(data)
    if n < 8:
        raise _Invalid(f"only {n} bytes, too short to be a flatbuffer")
    ident = data[4:8]
    if ident != FILE_IDENTIFIER:
        shown = ident.decode("ascii", "replace") if all(32 <= b < 127 for b in ident) else ident.hex()
        raise _Invalid(f"file identifier is {shown!r}, expected 'TFL3'; not a TFLite flatbuffer")
    v = _Verifier(memoryview(data))
    root = v.u32(0, "root table offset")
    v.table(root, "Model")


def _parse(data: bytes, source: str) -> ModelInfo:
    fb = _schema()
    op_names = _enum_names(fb.BuiltinOperator)
    type_names = _enum_names(fb.TensorType)
    n = len(data)
    model = fb.Model.GetRootAs(data, 0)

    buffers: list[np.ndarray] = []
    offsets: list[int | None] = []
    whole = np.frombuffer(data, dtype=np.uint8)
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        ext_off, ext_size = b.Offset(), b.Size()
        if ext_off > 1:
            # Models over 2 GB keep buffers after the flatbuffer, addressed by file offset.
            if ext_off + ext_size > n:
                raise _Invalid(f"buffer {i} at offset {ext_off} (+{ext_size} bytes) lies outside the file's "
                               f"{n} bytes; the file is truncated or corrupt")
            buffers.append(whole[ext_off:ext_off + ext_size])
            offsets.append(ext_off if ext_size else None)
        elif b.DataLength():
            start = b._tab.Vector(b._tab.Offset(4))
            buffers.append(whole[start:start + b.DataLength()])
            offsets.append(start)
        else:
            buffers.append(whole[:0])
            offsets.append(None)

    opcodes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())  # as TFLM: the larger is real
        custom = oc.CustomCode()
        opcodes.append((code, op_names.get(code, f"BUILTIN_{code}"), oc.Version(),
                        custom.decode("utf-8", "replace") if custom is not None else None))

    metadata = {}
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        metadata[(md.Name() or b"").decode("utf-8", "replace")] = md.Buffer()

    if model.SubgraphsLength() == 0:
        raise _Invalid("it has no subgraph")
    subgraphs = []
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        tensors = [_tensor(sg.Tensors(i), i, len(buffers), buffers, type_names, fb)
                   for i in range(sg.TensorsLength())]
        nt = len(tensors)
        ops = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            oi = op.OpcodeIndex()
            if oi >= len(opcodes):
                raise _Invalid(f"operator {i} uses opcode {oi} of {len(opcodes)}")
            code, opname, version, custom = opcodes[oi]
            ins, outs = _ints(op, "Inputs"), _ints(op, "Outputs")
            for t in ins + outs:
                if t < -1 or t >= nt:
                    raise _Invalid(f"operator {i} ({opname}) refers to tensor {t} of {nt}")
            ops.append(OperatorInfo(index=i, name=custom if opname == "CUSTOM" and custom else opname,
                                    builtin_code=code, version=version, inputs=ins, outputs=outs,
                                    options=_options(op, fb), custom_code=custom))
        ins, outs = _ints(sg, "Inputs"), _ints(sg, "Outputs")
        for t in ins + outs:
            if t < 0 or t >= nt:
                raise _Invalid(f"subgraph {s} input/output refers to tensor {t} of {nt}")
        name = sg.Name()
        subgraphs.append(SubgraphInfo(name=name.decode("utf-8", "replace") if name else "",
                                      tensors=tensors, operators=ops, inputs=ins, outputs=outs))
    desc = model.Description()
    return ModelInfo(source=source, size=n, version=model.Version(),
                     description=desc.decode("utf-8", "replace") if desc else "",
                     subgraphs=subgraphs, buffers=buffers, buffer_offsets=offsets, metadata=metadata)


def _ints(obj, field_name: str) -> tuple[int, ...]:
    if getattr(obj, f"{field_name}Length")() == 0:
        return ()
    return tuple(int(v) for v in getattr(obj, f"{field_name}AsNumpy")())


def _tensor(t, index, n_buffers, buffers, type_names, fb) -> TensorInfo:
    type_name = type_names.get(t.Type(), f"TYPE_{t.Type()}")
    buf = t.Buffer()
    if buf >= n_buffers:
        raise _Invalid(f"tensor {index} uses buffer {buf} of {n_buffers}")
    shape = _ints(t, "Shape")
    if any(d < 0 for d in shape):
        raise _Invalid(f"tensor {index} has a negative dimension {list(shape)}")
    quant = None
    q = t.Quantization()
    if q is not None and q.ScaleLength() > 0:
        scales = tuple(float(s) for s in q.ScaleAsNumpy())
        zps = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else (0,) * len(scales)
        quant = QuantInfo(scale=scales, zero_point=zps, quantized_dimension=int(q.QuantizedDimension()))
    sig = _ints(t, "ShapeSignature") or None
    name = t.Name()
    return TensorInfo(index=index, name=name.decode("utf-8", "replace") if name else "",
                      shape=shape, dtype=_NUMPY_DTYPES.get(type_name, type_name.lower()), type_name=type_name,
                      buffer=buf, is_constant=buf > 0 and buffers[buf].size > 0, is_variable=bool(t.IsVariable()),
                      quant=quant, shape_signature=sig, sparse=t.Sparsity() is not None)


_OPTION_CACHE: dict = {}


def _option_fields(cls):
    """(scalar getters, vector getters) of a generated options class, as (snake_name, method name)."""
    if cls not in _OPTION_CACHE:
        names = [k for k, v in vars(cls).items() if callable(v) and not k.startswith("_")]
        vectors = {k[:-len("AsNumpy")] for k in names if k.endswith("AsNumpy")}
        scalars = []
        for k in names:
            if k in ("Init", "GetRootAs") or k.startswith("GetRootAs") or k.endswith(
                    ("BufferHasIdentifier", "AsNumpy", "Length", "IsNone")) or k in vectors:
                continue
            if vars(cls)[k].__code__.co_argcount == 1:
                scalars.append((_snake(k), k))
        _OPTION_CACHE[cls] = (scalars, [(_snake(k), k) for k in sorted(vectors)])
    return _OPTION_CACHE[cls]


def _snake(name: str) -> str:
    # "DilationWFactor" -> "dilation_w_factor", "PotScaleInt16" -> "pot_scale_int16"
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def _options(op, fb) -> dict:
    kind = op.BuiltinOptionsType()
    if kind == 0:
        return {}
    cls_name = _enum_names(fb.BuiltinOptions).get(kind)
    cls = getattr(fb, cls_name, None) if cls_name else None
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return {}
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    scalars, vectors = _option_fields(cls)
    out = {}
    for key, meth in scalars:
        value = getattr(opts, meth)()
        if isinstance(value, (bool, int, float)):
            out[key] = value
    for key, meth in vectors:
        arr = getattr(opts, meth + "AsNumpy")()
        if isinstance(arr, np.ndarray):
            out[key] = arr.tolist()
    # Enums as names: readable in inspect output and stable in JSON.
    if "padding" in out:
        out["padding"] = _enum_names(fb.Padding).get(out["padding"], out["padding"])
    if "fused_activation_function" in out:
        out["fused_activation_function"] = _enum_names(fb.ActivationFunctionType).get(
            out["fused_activation_function"], out["fused_activation_function"])
    return out
