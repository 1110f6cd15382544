"""Board profiles: load and validate the YAML files describing each board (docs/boards.md).

A profile says what a board has (cpu, clock, memory, default port, tick rate, energy meter or
constants) and which driver runs it (`kind`, deploy method, runtime, QEMU machine, latency model).
How a board of each kind is driven lives in edgeattack.device.boards (one driver module per kind).
Built-in profiles ship as package data (edgeattack.resources.boards_dir()); `--board path.yaml`
takes a user's own file.

This module is ground level (CONVENTIONS "Package layout"): anything may import it, it imports no
other edgeattack package but errors, resources and yamlload (strict YAML: a repeated key is an error).
"""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

from .errors import UsageError
from .resources import boards_dir
from .yamlload import load_yaml

# What a profile of each kind must have (the driver's needs, written as data so this ground module
# stays free of drivers): deploy methods, runtimes, fields that must not be null.
KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "emulator": {"deploy": ("spawn",), "runtimes": ("litert", "tflm"), "required": ()},
    "qemu": {"deploy": ("qemu",), "runtimes": ("edgeattack-c",),
             "required": ("qemu", "model_clock_hz", "model_cpi")},
    "linux": {"deploy": ("ssh",), "runtimes": ("litert", "tflm"), "required": ()},
    "mcu": {"deploy": ("pyocd",), "runtimes": ("edgeattack-c",), "required": ()},
}
RUNTIMES = ("litert", "tflm", "edgeattack-c")
PROTOCOLS = ("edgeattack", "mlperf")
# A board name becomes part of cache folders and build defines: keep it a plain word.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
_ENERGY_CONSTANTS = ("active_power_w", "idle_power_w", "source")
# an estimate may also cite the published figures its power comes from (docs/energy.md)
_ESTIMATE_KEYS = (*_ENERGY_CONSTANTS, "reference_energy_j", "reference_time_s")


@dataclasses.dataclass(frozen=True)
class BoardProfile:
    name: str
    kind: str
    description: str
    cpu: str
    clock_hz: int | None
    flash_bytes: int | None
    ram_bytes: int | None
    port: str | None
    baudrate: int | None
    deploy: dict
    runtime: str
    tick_hz: int
    model_chip: str | None
    model_clock_hz: int | None
    model_cpi: float | None
    energy: dict | None
    qemu: dict | None
    # optional fields (CONVENTIONS "Board lifecycle"): absent in older profiles
    pace_baudrate: int | None = None
    protocol: str = "edgeattack"
    mlperf: dict | None = None  # --protocol mlperf: {model: NAME, input_offset: N} overrides
    path: Path | None = None  # the file it was read from

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("path")
        return d


# Checkers return True when the value is fine.
def _int_pos(v):
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _num_pos(v):
    # YAML's .inf and .nan are floats: a clock or CPI of infinity is no number
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _str(v):
    return isinstance(v, str) and v.strip() != ""


def _name(v):
    return isinstance(v, str) and NAME_PATTERN.fullmatch(v) is not None


def _opt(check):
    return lambda v: v is None or check(v)


# field -> (checker, what is expected)
_FIELDS: dict[str, tuple[Any, str]] = {
    "name": (_name, "a board name of lowercase letters, digits and dashes ([a-z0-9][a-z0-9-]*)"),
    "kind": (lambda v: v in KINDS, f"one of {', '.join(KINDS)}"),
    "description": (_str, "a non-empty string"),
    "cpu": (_str, "a non-empty string (e.g. cortex-m4f)"),
    "clock_hz": (_opt(_int_pos), "a positive integer (Hz) or null"),
    "flash_bytes": (_opt(_int_pos), "a positive integer (bytes) or null"),
    "ram_bytes": (_opt(_int_pos), "a positive integer (bytes) or null"),
    "port": (_opt(_str), "a port URL string or null"),
    "baudrate": (_opt(_int_pos), "a positive integer or null"),
    "deploy": (lambda v: isinstance(v, dict) and _str(v.get("method")), "a mapping with a `method`"),
    "runtime": (lambda v: v in RUNTIMES, f"one of {', '.join(RUNTIMES)}"),
    "tick_hz": (_int_pos, "a positive integer (ticks per second)"),
    "model_chip": (_opt(_str), "a string or null"),
    "model_clock_hz": (_opt(_int_pos), "a positive integer (Hz) or null"),
    "model_cpi": (_opt(_num_pos), "a positive finite number or null"),
    "energy": (_opt(lambda v: isinstance(v, dict)),
               "a mapping ({meter: NAME, options: {...}} or {estimate: {...}}) or null"),
    "qemu": (_opt(lambda v: isinstance(v, dict)), "a mapping (machine, cpu) or null"),
}
_OPTIONAL: dict[str, tuple[Any, str]] = {
    "pace_baudrate": (_opt(_int_pos), "a positive integer (baud) or null"),
    "protocol": (lambda v: v in PROTOCOLS, f"one of {', '.join(PROTOCOLS)}"),
    "mlperf": (_opt(lambda v: isinstance(v, dict) and set(v) <= {"model", "input_offset"}
                    and _opt(_name)(v.get("model"))
                    and (v.get("input_offset") is None or (isinstance(v["input_offset"], int)
                                                           and 0 <= v["input_offset"] <= 255))),
               "a mapping with optional model (ic01, kws01, vww01, ad01, ...) and input_offset (0..255)"),
}


def _bad(path, field, expected, value) -> UsageError:
    return UsageError(f"board profile {path}: field '{field}' must be {expected}, got {value!r} "
                      f"(fix the file; see docs/boards.md)")


def _check_energy_constants(path, prefix: str, consts: dict) -> None:
    for key in ("active_power_w", "idle_power_w", "reference_energy_j", "reference_time_s"):
        if key in consts and not _opt(_num_pos)(consts[key]):
            unit = {"reference_energy_j": "J", "reference_time_s": "s"}.get(key, "W")
            raise _bad(path, f"{prefix}{key}", f"a positive finite number ({unit}) or null", consts[key])
    ref_e, ref_t = consts.get("reference_energy_j"), consts.get("reference_time_s")
    if (ref_e is None) != (ref_t is None):
        key = "reference_time_s" if ref_t is None else "reference_energy_j"
        raise _bad(path, f"{prefix}{key}", "given together with the other reference figure", None)
    power = consts.get("active_power_w")
    if ref_e is not None and power is not None and abs(power - ref_e / ref_t) > 0.01 * ref_e / ref_t:
        raise _bad(path, f"{prefix}active_power_w", f"reference_energy_j / reference_time_s = "
                   f"{ref_e / ref_t:.6g} W within 1%", power)
    if "source" in consts and not _opt(_str)(consts["source"]):
        raise _bad(path, f"{prefix}source", "a string citing where the figures come from",
                   consts["source"])


def _check_energy(path, energy: dict) -> None:
    """Two forms (CONVENTIONS "Board lifecycle") plus the flat constants older profiles use:
    {meter: NAME, options: {...}} a meter attached to the board; {estimate: {active_power_w, ...}}
    cited constants; {active_power_w, idle_power_w, source} (older form of the estimate)."""
    new_keys = {"meter", "options", "estimate"}
    unknown = sorted(set(energy) - new_keys - set(_ENERGY_CONSTANTS))
    if unknown or (set(energy) & new_keys and set(energy) & set(_ENERGY_CONSTANTS)):
        key = unknown[0] if unknown else sorted(set(energy) & set(_ENERGY_CONSTANTS))[0]
        raise _bad(path, f"energy.{key}", "absent: energy takes meter/options or estimate", energy[key])
    if "meter" in energy and not _name(energy["meter"]):
        raise _bad(path, "energy.meter", "a meter name (joulescope, ppk2, lpm01a, ina219, ina260)",
                   energy["meter"])
    if "options" in energy:
        if "meter" not in energy:
            raise _bad(path, "energy.options", "given only with energy.meter", energy["options"])
        if not isinstance(energy["options"], dict):
            raise _bad(path, "energy.options", "a mapping of the meter's options", energy["options"])
    if "estimate" in energy:
        est = energy["estimate"]
        if not isinstance(est, dict) or set(est) - set(_ESTIMATE_KEYS):
            raise _bad(path, "energy.estimate", f"a mapping of {', '.join(_ESTIMATE_KEYS)}", est)
        _check_energy_constants(path, "energy.estimate.", est)
    _check_energy_constants(path, "energy.", energy)


def validate(data: Any, path: Path | str) -> BoardProfile:
    """Check a parsed profile mapping; UsageError names the file and the first bad field."""
    if not isinstance(data, dict):
        raise UsageError(f"board profile {path}: expected a YAML mapping of fields, got "
                         f"{type(data).__name__} (see docs/boards.md)")
    unknown = sorted(set(data) - set(_FIELDS) - set(_OPTIONAL))
    if unknown:
        raise UsageError(f"board profile {path}: unknown field '{unknown[0]}' (known fields: "
                         f"{', '.join([*_FIELDS, *_OPTIONAL])}; see docs/boards.md)")
    for field, (check, expected) in _FIELDS.items():
        if field not in data:
            raise UsageError(f"board profile {path}: field '{field}' is missing (it must be {expected}; "
                             f"write null when unknown)")
        if not check(data[field]):
            raise _bad(path, field, expected, data[field])
    for field, (check, expected) in _OPTIONAL.items():
        if field in data and not check(data[field]):
            raise _bad(path, field, expected, data[field])
    rules = KINDS[data["kind"]]
    kind, method = data["kind"], data["deploy"]["method"]
    if method not in rules["deploy"]:
        raise _bad(path, "deploy.method", f"{' or '.join(rules['deploy'])} for kind {kind}", method)
    if data["runtime"] not in rules["runtimes"]:
        raise _bad(path, "runtime", f"{' or '.join(rules['runtimes'])} for kind {kind}", data["runtime"])
    for key in rules["required"]:
        if data[key] is None:
            raise _bad(path, key, f"given for kind {kind} ({_FIELDS[key][1].replace(' or null', '')})",
                       None)
    if data["qemu"] is not None:
        for key in ("machine", "cpu"):
            if not _str(data["qemu"].get(key)):
                raise _bad(path, f"qemu.{key}", "a non-empty string", data["qemu"].get(key))
    if data["energy"] is not None:
        _check_energy(path, data["energy"])
    return BoardProfile(**data, path=Path(path))


def _load_file(path: Path) -> BoardProfile:
    return validate(load_yaml(path, shown=f"board profile {path}"), path)


def builtin_paths() -> dict[str, Path]:
    return {p.stem: p for p in sorted(boards_dir().glob("*.yaml"))}


def list_profiles() -> list[BoardProfile]:
    """Every built-in board profile, sorted by name."""
    return [_load_file(p) for p in builtin_paths().values()]


def get_profile(name_or_path) -> BoardProfile:
    """A built-in board by name (`qemu-m4`), or a user's profile file (`path/to/board.yaml`)."""
    if isinstance(name_or_path, BoardProfile):
        return name_or_path
    text = str(name_or_path)
    builtins = builtin_paths()
    if text in builtins:
        return _load_file(builtins[text])
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or "/" in text or path.is_file():
        if not path.is_file():
            raise UsageError(f"board profile file {path} does not exist (give a board name: "
                             f"{', '.join(builtins)}, or an existing .yaml file)")
        return _load_file(path)
    raise UsageError(f"unknown board '{text}' (known boards: {', '.join(builtins)}; or give a "
                     f"profile file path.yaml)")
