"""Message types, dtype and error codes, and the payload layouts of docs/protocol.md.

Each `pack_*` builds a payload, each `unpack_*` parses one and raises `MalformedPayload` when the
size or a field is wrong. Reserved bytes are written as 0 and ignored when read.
"""
from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass

import numpy as np

# Message types. The reply to request T is T | REPLY, or ERROR.
INFO = 0x01
LOAD = 0x02
INFER = 0x03
RESET = 0x04
ERROR = 0x7F
REPLY = 0x80
REQUEST_TYPES = (INFO, LOAD, INFER, RESET)
# Protocol v2 only (frames of version 2; a v1 frame of these types is BAD_REQUEST).
SLOT_LOAD = 0x11
PATCH = 0x12
SLOT_INFER = 0x13
V2_REQUEST_TYPES = REQUEST_TYPES + (SLOT_LOAD, PATCH, SLOT_INFER)
TYPE_NAMES = {INFO: "INFO", LOAD: "LOAD", INFER: "INFER", RESET: "RESET", ERROR: "ERROR",
              SLOT_LOAD: "SLOT_LOAD", PATCH: "PATCH", SLOT_INFER: "SLOT_INFER"}
PROTOCOLS = (1, 2)  # the versions a v2 device answers

# Error codes.
ERR_BAD_REQUEST = 1
ERR_VERSION = 2
ERR_DTYPE = 3
ERR_SIZE = 4
ERR_OFFSET = 5
ERR_NOT_LOADED = 6
ERR_MODEL = 7
ERR_RUNTIME = 8
ERR_TOO_LARGE = 9
ERR_STALE = 10
ERR_SLOT = 11
ERR_NOT_SYNCED = 12  # v2 device after boot: every request but INFO until an INFO arrives
ERROR_NAMES = {
    ERR_STALE: "STALE", ERR_SLOT: "SLOT", ERR_NOT_SYNCED: "NOT_SYNCED",
    ERR_BAD_REQUEST: "BAD_REQUEST", ERR_VERSION: "VERSION", ERR_DTYPE: "DTYPE", ERR_SIZE: "SIZE",
    ERR_OFFSET: "OFFSET", ERR_NOT_LOADED: "NOT_LOADED", ERR_MODEL: "MODEL", ERR_RUNTIME: "RUNTIME",
    ERR_TOO_LARGE: "TOO_LARGE",
}
MAX_ERROR_MESSAGE = 200  # bytes of UTF-8

# Dtype codes.
DTYPE_INT8 = 1
DTYPE_UINT8 = 2
DTYPE_INT16 = 3
DTYPE_INT32 = 4
DTYPE_FLOAT32 = 5
DTYPE_NAMES = {DTYPE_INT8: "int8", DTYPE_UINT8: "uint8", DTYPE_INT16: "int16", DTYPE_INT32: "int32",
               DTYPE_FLOAT32: "float32"}
_CODE_BY_NAME = {name: code for code, name in DTYPE_NAMES.items()}

LOAD_HEADER = struct.Struct("<B3xII")  # dtype, reserved, total, offset
LOAD_REPLY = struct.Struct("<II")  # received, total
INFER_REQUEST = struct.Struct("<HH")  # repeat, reserved
INFER_REPLY = struct.Struct("<QIB3x")  # ticks, inferences, dtype, reserved
ERROR_HEADER = struct.Struct("<H")
# v2 payloads (docs/protocol.md, "Version 2")
SLOT_LOAD_HEADER = struct.Struct("<BB2xII")  # slot, dtype, reserved, total, offset
SLOT_LOAD_REPLY = struct.Struct("<B3xIII")  # slot, reserved, generation, received, total
PATCH_HEADER = struct.Struct("<BBHIH2x")  # slot, flags, repeat, generation, runs, reserved
PATCH_RUN = struct.Struct("<IH")  # offset, length (then `length` bytes)
PATCH_INFER = 0x01  # flags bit 0: run INFER on the patched slot in the same request
SLOT_INFER_REQUEST = struct.Struct("<BxH")  # slot, reserved, repeat
SLOT_REPLY = struct.Struct("<B3xI")  # slot, reserved, generation (PATCH and SLOT_INFER replies)
INFO_BOOT_ID = struct.Struct("<I")  # v2 INFO request: the host-assigned boot_id (or empty)
MAX_RUN = 0xFFFF


class MalformedPayload(ValueError):
    """A payload does not have the layout its message type requires."""


class ProtocolError(Exception):
    """Raised by a device-side handler to answer with ERROR `error_code` and this message.

    Any exception with an integer `error_code` attribute works the same way (e.g. a ModelError
    with error_code = ERR_MODEL); other exceptions are answered with ERR_RUNTIME.
    """

    def __init__(self, error_code: int, message: str):
        super().__init__(message)
        self.error_code = error_code


_CODE_BY_DTYPE = {np.dtype(name): code for code, name in DTYPE_NAMES.items()}  # native order
_WIRE_DTYPES = {code: np.dtype(name).newbyteorder("<") for code, name in DTYPE_NAMES.items()}
_NATIVE_DTYPES = {code: np.dtype(name) for code, name in DTYPE_NAMES.items()}
_LITTLE = sys.byteorder == "little"


def dtype_code(dtype) -> int:
    """Wire code of a NumPy dtype (byte order ignored: the wire is little-endian)."""
    dtype = np.dtype(dtype)
    code = _CODE_BY_DTYPE.get(dtype)  # the usual case, without building the dtype's name
    if code is not None:
        return code
    name = dtype.name
    try:
        return _CODE_BY_NAME[name]
    except KeyError:
        raise ValueError(f"dtype {name} has no wire code (supported: {', '.join(_CODE_BY_NAME)})") \
            from None


def dtype_from_code(code: int) -> np.dtype:
    """Little-endian NumPy dtype of a wire code."""
    try:
        return _WIRE_DTYPES[code]
    except (KeyError, TypeError):
        raise MalformedPayload(f"unknown dtype code {code}") from None


def native_dtype(code: int) -> np.dtype:
    """Native-byte-order NumPy dtype of a wire code (what received tensors are converted to)."""
    try:
        return _NATIVE_DTYPES[code]
    except (KeyError, TypeError):
        raise MalformedPayload(f"unknown dtype code {code}") from None


def to_wire_bytes(array: np.ndarray) -> tuple[int, bytes]:
    """(dtype code, little-endian C-order bytes) of an array."""
    array = np.asarray(array)
    dtype = array.dtype
    code = dtype_code(dtype)
    if _LITTLE and dtype.byteorder != ">":
        return code, array.tobytes()  # tobytes() is C order whatever the array's layout
    return code, np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).tobytes()


# LOAD -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadRequest:
    dtype: int
    total: int
    offset: int
    data: bytes


def pack_load(dtype: int, total: int, offset: int, data: bytes) -> bytes:
    return LOAD_HEADER.pack(dtype, total, offset) + bytes(data)


def unpack_load(payload: bytes) -> LoadRequest:
    if len(payload) < LOAD_HEADER.size:
        raise MalformedPayload(f"LOAD payload has {len(payload)} bytes, needs at least "
                               f"{LOAD_HEADER.size}")
    dtype, total, offset = LOAD_HEADER.unpack_from(payload)
    return LoadRequest(dtype, total, offset, bytes(payload[LOAD_HEADER.size:]))


def pack_load_reply(received: int, total: int) -> bytes:
    return LOAD_REPLY.pack(received, total)


def unpack_load_reply(payload: bytes) -> tuple[int, int]:
    """(received, total)"""
    if len(payload) != LOAD_REPLY.size:
        raise MalformedPayload(f"LOAD reply has {len(payload)} bytes, expected {LOAD_REPLY.size}")
    return LOAD_REPLY.unpack(payload)


# INFER ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InferReply:
    ticks: int
    inferences: int
    dtype: int
    output: bytes


def pack_infer(repeat: int = 1) -> bytes:
    if not 0 <= repeat <= 0xFFFF:
        raise ValueError(f"repeat {repeat} is outside 1..65535")
    return INFER_REQUEST.pack(repeat, 0)


def unpack_infer(payload: bytes) -> int:
    """The repeat count (0 on the wire means 1)."""
    if len(payload) != INFER_REQUEST.size:
        raise MalformedPayload(f"INFER payload has {len(payload)} bytes, expected "
                               f"{INFER_REQUEST.size}")
    repeat, _ = INFER_REQUEST.unpack(payload)
    return repeat or 1


def pack_infer_reply(ticks: int, inferences: int, dtype: int, output: bytes) -> bytes:
    return INFER_REPLY.pack(ticks, inferences & 0xFFFFFFFF, dtype) + bytes(output)


def unpack_infer_reply(payload: bytes) -> InferReply:
    return InferReply(*infer_reply_fields(payload))


def infer_reply_fields(payload: bytes) -> tuple[int, int, int, bytes]:
    """unpack_infer_reply as a plain tuple (ticks, inferences, dtype, output): the host's per-input
    path, without building the dataclass."""
    if len(payload) < INFER_REPLY.size:
        raise MalformedPayload(f"INFER reply has {len(payload)} bytes, needs at least "
                               f"{INFER_REPLY.size}")
    ticks, inferences, dtype = INFER_REPLY.unpack_from(payload)
    return ticks, inferences, dtype, bytes(payload[INFER_REPLY.size:])


# ERROR ------------------------------------------------------------------------------------------

def truncate_utf8(text: str, limit: int = MAX_ERROR_MESSAGE) -> bytes:
    """UTF-8 of `text`, cut to at most `limit` bytes at a character boundary."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode("utf-8", "ignore").encode("utf-8")


def pack_error(code: int, message: str) -> bytes:
    return ERROR_HEADER.pack(code) + truncate_utf8(message)


def unpack_error(payload: bytes) -> tuple[int, str]:
    """(code, message); invalid UTF-8 in the message is replaced, not an error."""
    if len(payload) < ERROR_HEADER.size:
        raise MalformedPayload(f"ERROR payload has {len(payload)} bytes, needs at least 2")
    (code,) = ERROR_HEADER.unpack_from(payload)
    return code, bytes(payload[ERROR_HEADER.size:]).decode("utf-8", "replace")


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"code {code}")


# INFO -------------------------------------------------------------------------------------------

def pack_info(info: dict) -> bytes:
    return json.dumps(info, separators=(",", ":"), sort_keys=False).encode("utf-8")


def unpack_info(payload: bytes) -> dict:
    try:
        info = json.loads(bytes(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPayload(f"INFO reply is not UTF-8 JSON: {exc}") from None
    if not isinstance(info, dict):
        raise MalformedPayload("INFO reply is not a JSON object")
    return info


def pack_info_request(boot_id: int | None = None) -> bytes:
    """INFO's request payload: empty, or (v2 frames) the boot_id the host assigns."""
    return b"" if boot_id is None else INFO_BOOT_ID.pack(boot_id & 0xFFFFFFFF)


def unpack_info_request(payload: bytes, version: int) -> int | None:
    """The boot_id an INFO request assigns, or None. v1 INFO is empty; v2 INFO is empty or 4 bytes."""
    if not payload:
        return None
    if version >= 2 and len(payload) == INFO_BOOT_ID.size:
        return INFO_BOOT_ID.unpack(payload)[0]
    raise MalformedPayload(f"INFO payload has {len(payload)} bytes, expected 0"
                           + (" or 4 (boot_id)" if version >= 2 else ""))


def check_empty(payload: bytes, name: str) -> None:
    if payload:
        raise MalformedPayload(f"{name} payload must be empty, has {len(payload)} bytes")


# Version 2: input slots and patches ---------------------------------------------------------------

@dataclass(frozen=True)
class SlotLoad:
    slot: int
    dtype: int
    total: int
    offset: int
    data: bytes


def pack_slot_load(slot: int, dtype: int, total: int, offset: int, data: bytes) -> bytes:
    return SLOT_LOAD_HEADER.pack(slot, dtype, total, offset) + bytes(data)


def unpack_slot_load(payload: bytes) -> SlotLoad:
    if len(payload) < SLOT_LOAD_HEADER.size:
        raise MalformedPayload(f"SLOT_LOAD payload has {len(payload)} bytes, needs at least "
                               f"{SLOT_LOAD_HEADER.size}")
    slot, dtype, total, offset = SLOT_LOAD_HEADER.unpack_from(payload)
    return SlotLoad(slot, dtype, total, offset, bytes(payload[SLOT_LOAD_HEADER.size:]))


def pack_slot_load_reply(slot: int, generation: int, received: int, total: int) -> bytes:
    return SLOT_LOAD_REPLY.pack(slot, generation & 0xFFFFFFFF, received, total)


def unpack_slot_load_reply(payload: bytes) -> tuple[int, int, int, int]:
    """(slot, generation, received, total)"""
    if len(payload) != SLOT_LOAD_REPLY.size:
        raise MalformedPayload(f"SLOT_LOAD reply has {len(payload)} bytes, expected "
                               f"{SLOT_LOAD_REPLY.size}")
    return SLOT_LOAD_REPLY.unpack(payload)


@dataclass(frozen=True)
class Patch:
    slot: int
    infer: bool
    repeat: int  # as on the wire (0 means 1)
    generation: int
    runs: tuple  # of (offset, bytes)


def pack_patch(slot: int, generation: int, runs, infer: bool = False, repeat: int = 1) -> bytes:
    """runs: (offset, bytes) pairs, each at most MAX_RUN bytes."""
    if not 0 <= repeat <= 0xFFFF:
        raise ValueError(f"repeat {repeat} is outside 1..65535")
    parts = [PATCH_HEADER.pack(slot, PATCH_INFER if infer else 0, repeat if infer else 0,
                               generation & 0xFFFFFFFF, len(runs))]
    for offset, data in runs:
        parts.append(PATCH_RUN.pack(offset, len(data)))
        parts.append(bytes(data))
    return b"".join(parts)


def unpack_patch(payload: bytes) -> Patch:
    """Parse a PATCH; the runs must fill the payload exactly (else MalformedPayload)."""
    if len(payload) < PATCH_HEADER.size:
        raise MalformedPayload(f"PATCH payload has {len(payload)} bytes, needs at least "
                               f"{PATCH_HEADER.size}")
    slot, flags, repeat, generation, count = PATCH_HEADER.unpack_from(payload)
    if flags & ~PATCH_INFER:
        raise MalformedPayload(f"PATCH flags 0x{flags:02x} has unknown bits")
    pos = PATCH_HEADER.size
    runs = []
    for i in range(count):
        if pos + PATCH_RUN.size > len(payload):
            raise MalformedPayload(f"PATCH run {i} of {count} starts past the payload's end")
        offset, length = PATCH_RUN.unpack_from(payload, pos)
        pos += PATCH_RUN.size
        if pos + length > len(payload):
            raise MalformedPayload(f"PATCH run {i} of {length} bytes runs past the payload's end")
        runs.append((offset, bytes(payload[pos:pos + length])))
        pos += length
    if pos != len(payload):
        raise MalformedPayload(f"PATCH has {len(payload) - pos} bytes after its {count} runs")
    return Patch(slot, bool(flags & PATCH_INFER), repeat, generation, tuple(runs))


def pack_slot_infer(slot: int, repeat: int = 1) -> bytes:
    if not 0 <= repeat <= 0xFFFF:
        raise ValueError(f"repeat {repeat} is outside 1..65535")
    return SLOT_INFER_REQUEST.pack(slot, repeat)


def unpack_slot_infer(payload: bytes) -> tuple[int, int]:
    """(slot, repeat as on the wire)"""
    if len(payload) != SLOT_INFER_REQUEST.size:
        raise MalformedPayload(f"SLOT_INFER payload has {len(payload)} bytes, expected "
                               f"{SLOT_INFER_REQUEST.size}")
    return SLOT_INFER_REQUEST.unpack(payload)


def pack_slot_reply(slot: int, generation: int, infer_reply: bytes = b"") -> bytes:
    """PATCH and SLOT_INFER replies: slot, generation, then (when it ran) an INFER reply payload."""
    return SLOT_REPLY.pack(slot, generation & 0xFFFFFFFF) + infer_reply


def unpack_slot_reply(payload: bytes) -> tuple[int, int, bytes]:
    """(slot, generation, rest): rest is an INFER reply payload, or empty."""
    if len(payload) < SLOT_REPLY.size:
        raise MalformedPayload(f"slot reply has {len(payload)} bytes, needs at least "
                               f"{SLOT_REPLY.size}")
    slot, generation = SLOT_REPLY.unpack_from(payload)
    return slot, generation, bytes(payload[SLOT_REPLY.size:])


def patch_runs(old: bytes, new: bytes, max_gap: int = PATCH_RUN.size) -> list:
    """The runs (offset, bytes) that turn `old` into `new` (same length). Runs closer than
    `max_gap` unchanged bytes are merged: a run header costs PATCH_RUN.size bytes."""
    a = np.frombuffer(old, np.uint8)
    b = np.frombuffer(new, np.uint8)
    diff = np.flatnonzero(a != b)
    if diff.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(diff) > max_gap + 1)
    starts = np.concatenate(([diff[0]], diff[breaks + 1]))
    ends = np.concatenate((diff[breaks], [diff[-1]])) + 1
    runs = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        while e - s > MAX_RUN:
            runs.append((s, new[s:s + MAX_RUN]))
            s += MAX_RUN
        runs.append((s, new[s:e]))
    return runs


def patch_size(runs) -> int:
    return PATCH_HEADER.size + sum(PATCH_RUN.size + len(d) for _, d in runs)
