"""Board profiles: load and validate the YAML files describing each board (docs/boards.md).

A profile says what a board has (cpu, clock, memory, default port, tick rate) and how to use it (how to
deploy, which runtime, QEMU machine, latency and energy model). Built-in profiles ship as package data
(edgeattack.resources.boards_dir()); `--board path.yaml` takes a user's own file.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..resources import boards_dir

KINDS = ("emulator", "qemu", "linux", "mcu")
RUNTIMES = ("litert", "tflm", "edgeattack-c")
DEPLOY_METHODS = {"emulator": ("spawn",), "qemu": ("qemu",), "linux": ("ssh",), "mcu": ("pyocd",)}


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
    path: Path | None = None  # the file it was read from

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("path")
        return d

    @property
    def estimates_time(self) -> bool:
        """True when device time is derived from an instruction count (QEMU boards)."""
        return self.kind == "qemu"


# field -> (checker, description of what is expected). Checkers return True when the value is fine.
def _int_pos(v):
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _num_pos(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _str(v):
    return isinstance(v, str) and v.strip() != ""


def _opt(check):
    return lambda v: v is None or check(v)


_FIELDS: dict[str, tuple[Any, str]] = {
    "name": (_str, "a non-empty string"),
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
    "model_cpi": (_opt(_num_pos), "a positive number or null"),
    "energy": (_opt(lambda v: isinstance(v, dict)), "a mapping (active_power_w, idle_power_w, source) or null"),
    "qemu": (_opt(lambda v: isinstance(v, dict)), "a mapping (machine, cpu) or null"),
}


def _bad(path, field, expected, value) -> UsageError:
    return UsageError(f"board profile {path}: field '{field}' must be {expected}, got {value!r} "
                      f"(fix the file; see docs/boards.md)")


def validate(data: Any, path: Path | str) -> BoardProfile:
    """Check a parsed profile mapping; UsageError names the file and the first bad field."""
    if not isinstance(data, dict):
        raise UsageError(f"board profile {path}: expected a YAML mapping of fields, got "
                         f"{type(data).__name__} (see docs/boards.md)")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise UsageError(f"board profile {path}: unknown field '{unknown[0]}' (known fields: "
                         f"{', '.join(_FIELDS)}; see docs/boards.md)")
    for field, (check, expected) in _FIELDS.items():
        if field not in data:
            raise UsageError(f"board profile {path}: field '{field}' is missing (it must be {expected}; "
                             f"write null when unknown)")
        if not check(data[field]):
            raise _bad(path, field, expected, data[field])
    kind = data["kind"]
    method = data["deploy"]["method"]
    if method not in DEPLOY_METHODS[kind]:
        raise _bad(path, "deploy.method", f"{' or '.join(DEPLOY_METHODS[kind])} for kind {kind}", method)
    if kind == "emulator" and data["runtime"] not in ("litert", "tflm"):
        raise _bad(path, "runtime", "litert or tflm for an emulator", data["runtime"])
    if kind == "qemu":
        q = data["qemu"]
        if q is None:
            raise _bad(path, "qemu", "a mapping with machine and cpu for kind qemu", q)
        for key in ("machine", "cpu"):
            if not _str(q.get(key)):
                raise _bad(path, f"qemu.{key}", "a non-empty string", q.get(key))
        for key, expected in (("model_clock_hz", "a positive integer (Hz)"),
                              ("model_cpi", "a positive number")):
            if data[key] is None:
                raise _bad(path, key, f"{expected} for kind qemu (the latency estimate needs it)", None)
    energy = data["energy"]
    if energy is not None:
        for key in ("active_power_w", "idle_power_w"):
            if key in energy and not _opt(_num_pos)(energy[key]):
                raise _bad(path, f"energy.{key}", "a positive number (W) or null", energy[key])
    return BoardProfile(**data, path=Path(path))


def _load_file(path: Path) -> BoardProfile:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"board profile {path}: cannot read it ({e.strerror or e})") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"board profile {path}:{where} is not valid YAML "
                         f"({getattr(e, 'problem', None) or e})") from e
    return validate(data, path)


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
