"""Export a .tflite model as C/C++ sources: for a TFLM application ("tflm") or for the project's own C
firmware ("c"). Both embed the exact 16-byte-aligned model bytes and their SHA-256 (CONVENTIONS:
model identity), so a device can report which model it runs.

fmt "tflm" writes (symbols use NAME, default: the file's stem made into a C identifier):
    model_data.h / model_data.cc   alignas(16) const unsigned char g_NAME_model_data[];
                                   const unsigned int g_NAME_model_data_len;
                                   const char g_NAME_model_sha256[65];   (64 hex digits + NUL)
                                   all declared extern in the header: a namespace-scope const has
                                   internal linkage in C++ (FACTS)
    model_settings.h               namespace NAME_model { constexpr shapes, types, scales, zero-points,
                                   labels, kTensorArenaSize (measured + margin), kModelSha256 }
    op_resolver.h                  NAME_model::OpResolver = tflite::MicroMutableOpResolver<kNumOps> and
                                   RegisterOps(OpResolver&) adding exactly the model's operators
fmt "c" writes (fixed symbols, C11, for firmware_models/):
    model_data.h / model_data.c    _Alignas(16) const unsigned char ea_model_data[];
                                   const unsigned int ea_model_data_len;
                                   const char ea_model_sha256[65];
    model_settings.h               EA_* macros (EA_INPUT_SHAPE, EA_INPUT_SCALE, EA_LABELS, ...)
Both also write model.tflite: the exact bytes embedded (aligned), whose SHA-256 is the one above.

Public API:
    export_model(tflite_path, fmt, out_dir, name=None, force=False, labels=None, arena=None,
                 verbose=False, verify_arena=False) -> dict
    float_compute(info) -> str | None          (why the int8-only firmware cannot run a model)
    TFLM_RESOLVER_METHODS: dict[str, str]   (builtin op name -> MicroMutableOpResolver method)
    c_identifier(text) -> str
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir, check_output
from ..errors import UsageError
from .align import align_16
from .analysis import is_aligned_16
from .reader import ModelInfo, TensorInfo, load_model_bytes, read_model

FORMATS = ("tflm", "c")

# Builtin operator -> tflite::MicroMutableOpResolver method (TFLM's micro_mutable_op_resolver.h).
TFLM_RESOLVER_METHODS = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "ELU": "AddElu", "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish", "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog", "LOG_SOFTMAX": "AddLogSoftmax",
    "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic", "MAX_POOL_2D": "AddMaxPool2D", "MAXIMUM": "AddMaximum", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2",
    "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax", "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear", "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound", "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth", "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def c_identifier(text: str) -> str:
    """A C identifier from a file stem: non-alphanumerics become "_", a leading digit gets "m"."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_").lower() or "model"
    return "m" + ident if ident[0].isdigit() else ident


def export_model(tflite_path, fmt: str, out_dir, name: str | None = None, force: bool = False,
                 labels: list[str] | None = None, arena: dict | int | None = None,
                 verbose: bool = False, verify_arena: bool = False) -> dict:
    """Write the C/C++ sources for `tflite_path` into `out_dir` (atomically; an existing non-empty
    `out_dir` needs force=True).

    fmt: "tflm" or "c" (see the module docstring for files and symbols). name: symbol stem for
    "tflm" (default from the file name). labels: one per class of output 0 (default "0".."N-1").
    arena: a find_arena_size() result or a byte count to embed; None measures it (child processes).
    verify_arena: TFLM must run in the given byte count (a user's --arena-size; a UsageError names
    the size needed). fmt "c" refuses a model that computes in float.
    An unaligned model is aligned first; everything embedded and hashed is the aligned bytes.

    Returns {"out_dir", "format", "name", "files", "sha256", "size", "aligned_by_export", "arena",
    "symbols"}. Raises UsageError for a bad model, format, name, labels or existing output.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose --format tflm or --format c")
    src = Path(tflite_path)
    if name is None:
        name = c_identifier(src.stem)
    elif not _IDENT.match(name):
        raise UsageError(f"--name {name!r} is not a C identifier; use letters, digits and _ (not first a digit)")
    out = check_output(out_dir, force)  # fail before the slow steps
    data = load_model_bytes(src)
    info = read_model(data, name=str(src))
    aligned_by_export = not is_aligned_16(info)
    if aligned_by_export:
        data = align_16(data, name=str(src))
        info = read_model(data, name=str(src))
    if fmt == "tflm":
        missing = sorted({op for op in info.distinct_ops if op not in TFLM_RESOLVER_METHODS})
        if missing:
            raise UsageError(f"{src}: operator(s) {', '.join(missing)} have no TFLM MicroMutableOpResolver "
                             f"method; export --format c, or change the model")
    if fmt == "c":
        float_op = float_compute(info)
        if float_op:
            raise UsageError(f"{src}: {float_op}; the edgeattack firmware runs int8 models only: "
                             f"compress with an int8 recipe (e.g. ptq-int8), or export --format tflm")
    labels = _labels(info, labels, src)
    if arena is None:
        from .arena import find_arena_size

        arena = find_arena_size(data, verbose=verbose, name=str(src))
    elif isinstance(arena, int):
        from .arena import arena_margin

        if verify_arena:
            _check_arena(data, arena, src, verbose)
        arena = {"measured": arena, "margin": arena_margin(arena), "with_margin": arena + arena_margin(arena)}
    sha = hashlib.sha256(data).hexdigest()

    if fmt == "tflm":
        files = _tflm_files(info, data, sha, name, labels, arena)
        symbols = {"data": f"g_{name}_model_data", "len": f"g_{name}_model_data_len",
                   "sha256": f"g_{name}_model_sha256", "namespace": f"{name}_model"}
    else:
        files = _c_files(info, data, sha, labels, arena)
        symbols = {"data": "ea_model_data", "len": "ea_model_data_len", "sha256": "ea_model_sha256"}
    with atomic_dir(out, force=force) as tmp:
        for fname, text in files.items():
            (tmp / fname).write_text(text)
        (tmp / "model.tflite").write_bytes(data)
    return {"out_dir": str(out), "format": fmt, "name": name, "files": sorted([*files, "model.tflite"]),
            "sha256": sha, "size": len(data), "aligned_by_export": aligned_by_export, "arena": arena,
            "symbols": symbols}


# ----------------------------------------------------------------------------------------------------
# Shared pieces


def float_compute(info: ModelInfo) -> str | None:
    """Why the project's firmware cannot run this model, or None: its kernels compute in int8, so
    every tensor an operator reads or writes must be int8 (constants: int8 weights, int32 biases and
    shapes), except a QUANTIZE from float32 input and a DEQUANTIZE to float32 output."""
    for sg in info.subgraphs:
        for op in sg.operators:
            for role, indices in (("reads", op.inputs), ("writes", op.outputs)):
                for i in indices:
                    if i < 0:
                        continue
                    t = sg.tensors[i]
                    if t.dtype == "int8" or t.is_constant and t.dtype == "int32" and op.name != "DEQUANTIZE":
                        continue
                    if (op.name, role, t.dtype) in (("QUANTIZE", "reads", "float32"),
                                                    ("DEQUANTIZE", "writes", "float32")):
                        continue
                    kind = "constant" if t.is_constant else "tensor"
                    name = t.name if len(t.name) <= 60 else t.name[:57] + "..."
                    return f"a float model ({op.name} {role} {t.dtype} {kind} {name!r})"
    return None


def _check_arena(data: bytes, size: int, src, verbose: bool) -> None:
    """A given arena size must be enough: TFLM is tried with it once (a child process). When it is
    too small, the search says how much is needed."""
    from .arena import find_arena_size, try_arena

    if try_arena(data, size):
        return
    need = find_arena_size(data, verbose=verbose, name=str(src))["measured"]
    raise UsageError(f"--arena-size {size}: too small for {src}, which needs {need} bytes (measured, "
                     f"as `edgeattack inspect` does); give at least {need} or omit --arena-size")


def _labels(info: ModelInfo, labels, src) -> list[str]:
    out = info.output_tensors[0]
    n = out.shape[-1] if out.shape else 1
    if labels is None:
        return [str(i) for i in range(n)]
    labels = [str(x) for x in labels]
    if len(labels) != n:
        raise UsageError(f"{len(labels)} labels given but {src} has {n} outputs; give one label per class")
    return labels


def _c_string(s: str) -> str:
    """A C string literal; non-printable and non-ASCII bytes as 3-digit octal escapes (a hex escape
    would swallow following hex digits)."""
    parts = []
    for b in s.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\':
            parts.append("\\" + ch)
        elif 32 <= b < 127 and ch != "?":  # "?" escaped: no trigraphs in C11 mode
            parts.append(ch)
        else:
            parts.append(f"\\{b:03o}")
    return '"' + "".join(parts) + '"'


def _c_float(x: float) -> str:
    """A float literal that compiles back to exactly this float32."""
    r = repr(float(np.float32(x)))
    return (r if ("." in r or "e" in r or "inf" in r or "nan" in r) else r + ".0") + "f"


def _byte_rows(data: bytes, per_row: int = 12) -> str:
    rows = []
    for i in range(0, len(data), per_row):
        rows.append("    " + ", ".join(f"0x{b:02x}" for b in data[i:i + per_row]) + ",")
    return "\n".join(rows)


def _type_code(t: TensorInfo) -> int:
    from .reader import _schema

    return int(getattr(_schema().TensorType, t.type_name, -1))


def _header(what: str, info: ModelInfo, sha: str, size: int) -> str:
    return (f"// {what}\n"
            f"// Generated by `edgeattack export` from {Path(info.source).name} ({size} bytes, 16-byte aligned).\n"
            f"// model SHA-256: {sha}\n"
            f"// Do not edit: re-export instead.\n")


def _io_macros(prefix: str, t: TensorInfo) -> list[str]:
    """C macros describing one input/output tensor."""
    dims = list(t.shape)
    lines = [
        f"#define {prefix}_DIMS {len(dims)}",
        f"#define {prefix}_SHAPE {{{', '.join(map(str, dims))}}}",
        f"#define {prefix}_SIZE {t.size}  /* elements */",
        f"#define {prefix}_BYTES {t.nbytes or 0}",
        f"#define {prefix}_TYPE {_type_code(t)}  /* TFLite TensorType {t.type_name} */",
        f"#define {prefix}_DTYPE {_c_string(t.dtype)}",
    ]
    if t.quant:
        lines += [f"#define {prefix}_SCALE {_c_float(t.quant.scale[0])}",
                  f"#define {prefix}_ZERO_POINT ({t.quant.zero_point[0]})"]  # parenthesized: x-(-128)
    else:
        lines += [f"#define {prefix}_SCALE 0.0f  /* not quantized */", f"#define {prefix}_ZERO_POINT 0"]
    return lines


def _io_constexpr(prefix: str, t: TensorInfo) -> list[str]:
    """C++ constants describing one input/output tensor."""
    dims = list(t.shape)
    scale, zp = (t.quant.scale[0], t.quant.zero_point[0]) if t.quant else (0.0, 0)
    return [
        f"constexpr int k{prefix}Dims = {len(dims)};",
        f"constexpr int k{prefix}Shape[k{prefix}Dims] = {{{', '.join(map(str, dims))}}};",
        f"constexpr int k{prefix}Size = {t.size};  // elements",
        f"constexpr int k{prefix}Bytes = {t.nbytes or 0};",
        f"constexpr int k{prefix}Type = {_type_code(t)};  // TFLite TensorType {t.type_name} (kTfLite{_tflite_type(t)})",
        f"constexpr char k{prefix}Dtype[] = {_c_string(t.dtype)};",
        f"constexpr float k{prefix}Scale = {_c_float(scale)};{'' if t.quant else '  // not quantized'}",
        f"constexpr int k{prefix}ZeroPoint = {zp};",
    ]


def _tflite_type(t: TensorInfo) -> str:
    """TFLM's TfLiteType enumerator suffix: INT8 -> Int8, UINT8 -> UInt8, FLOAT32 -> Float32."""
    n = t.type_name
    if n.startswith("UINT"):
        return "UInt" + n[4:]
    if n == "BFLOAT16":
        return "BFloat16"
    return n[0] + n[1:].lower()


# ----------------------------------------------------------------------------------------------------
# fmt "tflm"


def _tflm_files(info: ModelInfo, data: bytes, sha: str, name: str, labels, arena) -> dict[str, str]:
    guard = name.upper()
    inp, out = info.input_tensors[0], info.output_tensors[0]
    data_h = "\n".join([
        _header("The model as a C++ array for TFLM.", info, sha, len(data)),
        f"#ifndef EA_{guard}_MODEL_DATA_H_",
        f"#define EA_{guard}_MODEL_DATA_H_",
        "",
        "// extern: a namespace-scope const has internal linkage in C++, so without it the .cc's",
        "// definitions would be invisible to other files.",
        f"extern const unsigned char g_{name}_model_data[];  // 16-byte aligned",
        f"extern const unsigned int g_{name}_model_data_len;",
        f"extern const char g_{name}_model_sha256[65];  // SHA-256 of the array, 64 hex digits",
        "",
        f"#endif  // EA_{guard}_MODEL_DATA_H_",
        ""])
    data_cc = "\n".join([
        _header("The model as a C++ array for TFLM.", info, sha, len(data)),
        '#include "model_data.h"',
        "",
        "// TFLM reads weights in place: 16-byte alignment lets SIMD kernels load them directly.",
        f"alignas(16) const unsigned char g_{name}_model_data[] = {{",
        _byte_rows(data),
        "};",
        f"const unsigned int g_{name}_model_data_len = {len(data)};",
        f'const char g_{name}_model_sha256[65] = "{sha}";',
        ""])
    ns = f"{name}_model"
    settings = [
        _header("Model settings for TFLM: input/output layout, labels, arena size.", info, sha, len(data)),
        f"#ifndef EA_{guard}_MODEL_SETTINGS_H_",
        f"#define EA_{guard}_MODEL_SETTINGS_H_",
        "",
        f"namespace {ns} {{",
        "",
        f"constexpr int kNumInputs = {len(info.inputs)};  // input 0 is described below",
        f"constexpr int kNumOutputs = {len(info.outputs)};  // output 0 is described below",
        *_io_constexpr("Input", inp),
        *_io_constexpr("Output", out),
        "",
        f"constexpr int kNumClasses = {len(labels)};",
        f"constexpr const char* kLabels[kNumClasses] = {{{', '.join(_c_string(l) for l in labels)}}};",
        "",
        f"// TFLM arena: {arena['measured']} bytes measured on the host (reference kernels) plus a margin",
        f"// of {arena['margin']} (10% for optimized-kernel scratch buffers, +16 for arena alignment).",
        f"constexpr int kTensorArenaMeasured = {arena['measured']};",
        f"constexpr int kTensorArenaSize = {arena['with_margin']};",
        "",
        f"constexpr int kModelDataLen = {len(data)};",
        f'constexpr char kModelSha256[] = "{sha}";',
        "",
        f"}}  // namespace {ns}",
        "",
        f"#endif  // EA_{guard}_MODEL_SETTINGS_H_",
        ""]
    ops = info.distinct_ops
    resolver = [
        _header("The TFLM op resolver with exactly this model's operators.", info, sha, len(data)),
        f"#ifndef EA_{guard}_OP_RESOLVER_H_",
        f"#define EA_{guard}_OP_RESOLVER_H_",
        "",
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
        "",
        f"namespace {ns} {{",
        "",
        f"constexpr unsigned int kNumOps = {len(ops)};  // {', '.join(ops)}",
        "using OpResolver = tflite::MicroMutableOpResolver<kNumOps>;",
        "",
        "// Registers the model's operators; returns kTfLiteError if any registration fails.",
        "inline TfLiteStatus RegisterOps(OpResolver& resolver) {",
        *[f"  if (resolver.{TFLM_RESOLVER_METHODS[op]}() != kTfLiteOk) return kTfLiteError;  // {op}" for op in ops],
        "  return kTfLiteOk;",
        "}",
        "",
        f"}}  // namespace {ns}",
        "",
        f"#endif  // EA_{guard}_OP_RESOLVER_H_",
        ""]
    return {"model_data.h": data_h, "model_data.cc": data_cc, "model_settings.h": "\n".join(settings),
            "op_resolver.h": "\n".join(resolver)}


# ----------------------------------------------------------------------------------------------------
# fmt "c"


def _c_files(info: ModelInfo, data: bytes, sha: str, labels, arena) -> dict[str, str]:
    inp, out = info.input_tensors[0], info.output_tensors[0]
    data_h = "\n".join([
        _header("The model as a C11 array for the edgeattack firmware.", info, sha, len(data)),
        "#ifndef EA_MODEL_DATA_H_",
        "#define EA_MODEL_DATA_H_",
        "",
        "extern const unsigned char ea_model_data[];  /* 16-byte aligned */",
        "extern const unsigned int ea_model_data_len;",
        "extern const char ea_model_sha256[65];  /* SHA-256 of the array: 64 hex digits + NUL */",
        "",
        "#endif  /* EA_MODEL_DATA_H_ */",
        ""])
    data_c = "\n".join([
        _header("The model as a C11 array for the edgeattack firmware.", info, sha, len(data)),
        '#include "model_data.h"',
        "",
        "/* Weights are read in place: 16-byte alignment lets SIMD kernels load them directly. */",
        "_Alignas(16) const unsigned char ea_model_data[] = {",
        _byte_rows(data),
        "};",
        f"const unsigned int ea_model_data_len = {len(data)}u;",
        f'const char ea_model_sha256[65] = "{sha}";',
        ""])
    settings = [
        _header("Model settings for the edgeattack firmware (macros only: no unused-variable warnings).",
                info, sha, len(data)),
        "#ifndef EA_MODEL_SETTINGS_H_",
        "#define EA_MODEL_SETTINGS_H_",
        "",
        f"#define EA_NUM_INPUTS {len(info.inputs)}  /* input 0 is described below */",
        f"#define EA_NUM_OUTPUTS {len(info.outputs)}  /* output 0 is described below */",
        *_io_macros("EA_INPUT", inp),
        *_io_macros("EA_OUTPUT", out),
        "",
        f"#define EA_NUM_CLASSES {len(labels)}",
        f"#define EA_LABELS {{{', '.join(_c_string(l) for l in labels)}}}",
        "",
        f"/* TFLM arena: {arena['measured']} bytes measured on the host (reference kernels) plus a margin",
        f"   of {arena['margin']} (10% for optimized-kernel scratch buffers, +16 for arena alignment). */",
        f"#define EA_TFLM_ARENA_MEASURED {arena['measured']}",
        f"#define EA_TFLM_ARENA_SIZE {arena['with_margin']}",
        "",
        f"#define EA_MODEL_DATA_LEN {len(data)}",
        f'#define EA_MODEL_SHA256 "{sha}"',
        "",
        "#endif  /* EA_MODEL_SETTINGS_H_ */",
        ""]
    return {"model_data.h": data_h, "model_data.c": data_c, "model_settings.h": "\n".join(settings)}
