"""Build the C firmware (firmware_models/ + a board port) for one model, cached.

    result = build_firmware("model.tflite", "qemu-m4")
    result.elf, result.text, result.data, result.bss, result.flash_bytes, result.ram_bytes
    result.input_slots, result.slot_bytes, result.ram_breakdown()

The model is exported with `edgeattack.tflite.export.export_model(path, "c", dir)` (16-byte aligned,
SHA-256 embedded) and linked into `make -C firmware_models BOARD=<port> MODEL_DIR=... BUILD_DIR=...`.
Builds are cached (CONVENTIONS: Packaging and builds) under a key made of the model's SHA-256, a hash
of every firmware and port source, the board, the kernel set (resolve_kernels) and the build options; a cached
ELF is returned without running make. Flash and RAM are checked against the board profile before
building (from the model's size and the runtime's arena need) and again on the linked ELF. The
number of protocol-v2 input slots comes from the same budget (`input_slots_for`): RAM = arena +
receive buffers + input slots + the firmware's own few kilobytes.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import children
from . import messages
from ..errors import EdgeAttackError, UsageError
from ..resources import boards_dir, firmware_dir

TOOLCHAIN_HINT = ("apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi "
                  "qemu-system-arm")
CROSS = "arm-none-eabi-"

# QEMU machine -> board port folder under boards/ (a user's own profile for the same machine reuses it).
PORTS_BY_MACHINE = {"mps2-an386": "qemu-m4", "mps3-an547": "qemu-m55"}
# pyOCD target -> board port folder, the same for physical boards (a second NUCLEO-L4R5ZI on the bench is
# one YAML naming target stm32l4r5zitx).
PORTS_BY_TARGET = {"stm32l4r5zitx": "nucleo-l4r5zi", "nrf52840": "nrf52840dk"}

# Protocol buffer sizes (firmware_models/app/ea_config.h): passed explicitly so the host knows them.
MAX_PAYLOAD = 4096
RX_BUFFERS = 2
# Kernel sets (firmware_models/runtime/kernels/README.md) and the cores that can run each: `ref` is plain
# C for any core; `dsp` needs the Armv7E-M DSP extension (SMLAD, SXTB16, SSAT), which Cortex-M4/M7/
# M33/M35P/M55/M85 have and M0/M0+/M3/M23 do not; `mve` (Helium, VMLADAVA) is Cortex-M55/M85 only.
# "auto" picks the best set written for the board's core (profile field `cpu`).
KERNEL_CHOICES = ("auto", "ref", "dsp", "mve")
KERNEL_SETS_WRITTEN = ("ref", "dsp", "mve")
_DSP_CORES = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p", "cortex-m55", "cortex-m85")
_MVE_CORES = ("cortex-m55", "cortex-m85")
# Protocol v2 input slots (EA_INPUT_SLOTS): this many where the board's RAM allows, else fewer.
INPUT_SLOTS = 4

# Pre-build estimate of what the firmware adds to the model (measured on qemu-m4: protocol, runtime,
# board port and libc about 34 KiB of code with only resnet8's operators, 60 KiB with all; beyond the
# arena and the receive buffers about 2.4 KiB of fixed RAM, the reply buffer and cache, the stack).
# The runtime's tensor and operator tables (60 bytes per tensor, 64 per operator) are in the arena.
# Generous on purpose: the linked ELF is checked exactly afterwards.
CODE_ESTIMATE = 96 * 1024
STATIC_RAM_ESTIMATE = 4 * 1024
TENSOR_RAM_ESTIMATE, OP_RAM_ESTIMATE = 96, 80  # table bytes per tensor / operator, for an upper bound
REPLY_FRAMES = 7  # the reply buffer + the 6-slot reply cache (ea_config.h)
SLOT_REPLY_HEADER = 8  # PATCH / SLOT_INFER replies carry slot and generation before the INFER reply
# The stack reserved by the linker (EA_STACK_SIZE): the deepest use measured on qemu-m4 after running
# every zoo model (INFO "stack_used", tests/test_fw_ram.py) is 1,156 bytes since the code off the
# inference path is compiled for size (1,472 before); tests/test_fw_ram.py asserts a 25% margin
# (docs/firmware.md, Memory).
STACK_BYTES = 1792
# "Receive buffers": the UART ring (EA_RX_BUFFERS encoded maximum-size frames, each with its
# delimiter) plus the decoded frame buffer (one maximum-size frame). Mirrors ea_config.h / main.c.
FRAME_OVERHEAD = 10  # EA_FRAME_OVERHEAD: type u8, flags u8, seq u16, length u16, CRC-32


def rx_buffer_bytes(max_payload: int = MAX_PAYLOAD, rx_buffers: int = RX_BUFFERS) -> int:
    frame = max_payload + FRAME_OVERHEAD
    wire = frame + (frame + 253) // 254 + 1  # EA_COBS_MAX_ENCODED plus the 0x00 delimiter
    return (rx_buffers * wire + 1) + frame  # the ring keeps one slot free (RING_SLOTS)


def input_slots_for(ram_bytes: int | None, ram_without_slots: int, input_bytes: int) -> int:
    """Protocol v2 input slots for a board: INPUT_SLOTS where its RAM holds them on top of
    `ram_without_slots` (the firmware without slots), else the most that fit, down to 1 (one slot
    takes no RAM of its own: it is the model's input tensor). A board without a RAM figure gets
    INPUT_SLOTS."""
    if not ram_bytes or input_bytes <= 0:
        return INPUT_SLOTS
    for k in range(INPUT_SLOTS, 1, -1):
        if ram_without_slots + k * input_bytes <= ram_bytes:
            return k
    return 1


def slot_ram_bytes(slots: int, input_bytes: int) -> int:
    """RAM the input slots take (main.c g_input_slots): none for one slot."""
    return slots * input_bytes if slots > 1 else 0


BUILD_FORMAT = 5  # bump when the cache entry layout changes


@dataclass(frozen=True)
class BuildResult:
    """A linked firmware. text/data/bss are the ELF's section sizes (text includes the vector table
    and the model, which lives in flash); flash_bytes = text + data; ram_bytes = data + bss (the stack,
    stack_bytes, comes on top)."""

    elf: Path
    text: int
    data: int
    bss: int
    ram_bytes: int
    flash_bytes: int
    board: str
    port: str
    model_sha256: str
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    stack_bytes: int = STACK_BYTES  # reserved by the linker on top of ram_bytes
    rx_bytes: int = 0        # receive buffers: the UART ring + the frame buffer (rx_buffer_bytes)
    other_ram_bytes: int = 0  # data + bss + stack - arena - receive buffers - input slots (overhead)
    input_slots: int = 1     # protocol v2 input slots (INFO slots)
    slot_bytes: int = 0      # RAM of the input slots (slot_ram_bytes)
    ram_estimate: int = 0    # the pre-build RAM estimate without slots (input_slots_for's budget)
    cached: bool = False
    kernels: str = "ref"     # the kernel set linked in (resolve_kernels)
    # The ELF's GNU build-id, which INFO reports: the key of its error-message texts (messages.py)
    build_id: str | None = None
    # The host prepared the model (its tables in flash, no loader on the device: prepared_plan)
    prepared: bool = False

    @property
    def ram_total(self) -> int:
        """Everything the firmware takes of RAM: data + bss + the reserved stack."""
        return self.ram_bytes + self.stack_bytes

    def ram_breakdown(self) -> dict:
        """RAM by purpose: arena (the linked g_arena, with its alignment slack), receive buffers,
        input slots (protocol v2), other (model tables, protocol state, reply buffer and cache,
        stack; `stack` repeats the stack's part of it)."""
        return {"arena": self.arena_bytes + 16, "rx_buffers": self.rx_bytes,
                "input_slots": self.slot_bytes, "slots": self.input_slots,
                "other": self.other_ram_bytes, "stack": self.stack_bytes, "total": self.ram_total}

    def slots_message(self) -> str | None:
        """One line when the board's RAM holds fewer than INPUT_SLOTS input slots, else None."""
        if self.input_slots >= INPUT_SLOTS:
            return None
        return (f"board {self.board}: RAM for {self.input_slots} protocol-v2 input slot(s) of "
                f"{self.input_bytes} bytes, not {INPUT_SLOTS}: black-box attacks keep at most "
                f"{self.input_slots} sample(s) in flight (a board with more RAM, or a smaller model, "
                f"gives {INPUT_SLOTS})")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["elf"] = str(self.elf)
        return d


def kernel_sets_for(cpu: str | None) -> tuple[str, ...]:
    """Kernel sets a core can run (cpu as in board profiles; cortex-m4f is a Cortex-M4 with an FPU)."""
    core = (cpu or "").lower()
    if core.endswith("f") and core[:-1] in _DSP_CORES:
        core = core[:-1]
    return ("ref",) + (("dsp",) if core in _DSP_CORES else ()) + (("mve",) if core in _MVE_CORES else ())


def resolve_kernels(profile, requested: str | None = "auto") -> str:
    """The kernel set to build for `profile`: `requested` (auto, ref, dsp, mve; None = auto) checked
    against the board's core (profile `cpu`). Raises UsageError, one line naming the board, its core
    and the choices, when the core lacks the instructions or the set is not written yet."""
    requested = (requested or "auto").lower()
    if requested not in KERNEL_CHOICES:
        raise UsageError(f"--kernels {requested}: choose one of {', '.join(KERNEL_CHOICES)}")
    cpu = getattr(profile, "cpu", None) or "unknown"
    available = kernel_sets_for(cpu)
    runnable = [k for k in available if k in KERNEL_SETS_WRITTEN]
    if requested == "auto":
        return runnable[-1]
    choices = ", ".join(["auto", *runnable])
    if requested not in available:
        raise UsageError(f"--kernels {requested}: board {profile.name} has a {cpu} core, which lacks the "
                         f"{requested.upper()} instructions; choose {choices}")
    if requested not in KERNEL_SETS_WRITTEN:
        raise UsageError(f"--kernels {requested}: the {requested} kernel set is not written yet; choose {choices}")
    return requested


def require_toolchain() -> None:
    """One-line error when the ARM toolchain or make is missing."""
    missing = [t for t in (f"{CROSS}gcc", f"{CROSS}size", "make") if shutil.which(t) is None]
    if missing:
        raise EdgeAttackError(f"{', '.join(missing)} not found: building firmware needs the ARM "
                              f"toolchain; install it with `sudo {TOOLCHAIN_HINT}`")


def default_cache_dir() -> Path:
    """$EDGEATTACK_CACHE/firmware, else $XDG_CACHE_HOME/edgeattack/firmware, else ~/.cache/..."""
    root = os.environ.get("EDGEATTACK_CACHE")
    if root:
        return Path(root) / "firmware"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "edgeattack" / "firmware"


def port_for(profile) -> str:
    """The board port folder (boards/<port>/) that builds firmware for this profile."""
    qemu = getattr(profile, "qemu", None) or {}
    machine = qemu.get("machine") if isinstance(qemu, dict) else None
    if (boards_dir() / profile.name / "board.mk").is_file():
        return profile.name
    if machine in PORTS_BY_MACHINE:
        return PORTS_BY_MACHINE[machine]
    deploy = getattr(profile, "deploy", None) or {}
    target = str(deploy.get("target") or "").lower() if isinstance(deploy, dict) else ""
    if target in PORTS_BY_TARGET:
        return PORTS_BY_TARGET[target]
    ports = sorted(p.parent.name for p in boards_dir().glob("*/board.mk"))
    raise UsageError(f"board {profile.name}: no firmware port for it (ports: {', '.join(ports)}; "
                     f"QEMU machines: {', '.join(PORTS_BY_MACHINE)}; pyOCD targets: "
                     f"{', '.join(PORTS_BY_TARGET)})")


def _resolve_profile(board_profile):
    from ..profiles import get_profile

    profile = get_profile(board_profile)
    if profile.runtime != "edgeattack-c":
        raise UsageError(f"board {profile.name} runs {profile.runtime}, not the edgeattack C firmware; "
                         f"build firmware for a qemu-m4 / qemu-m55 style board")
    return profile


def sources_digest(port: str) -> str:
    """SHA-256 over every file the firmware build reads: Makefile, app/, proto/, runtime/, port/, util/,
    host/ (the harness that prepares the model), the port and the shared Cortex-M code (paths and contents, in a stable order)."""
    fw, bd = firmware_dir(), boards_dir()
    roots = [(fw, ["Makefile"], ["app", "proto", "mlperf", "runtime", "port", "util", "host"]),
             (bd, [], [port, "cortex-m"])]
    h = hashlib.sha256()
    for base, files, dirs in roots:
        paths = [base / f for f in files]
        for d in dirs:
            paths += sorted(p for p in (base / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for p in paths:
            if p.suffix in (".pyc", ".o", ".d") or not p.is_file():
                continue
            h.update(str(p.relative_to(base)).encode() + b"\0")
            h.update(p.read_bytes() + b"\0")
    return h.hexdigest()


def _toolchain_version() -> str:
    try:
        return subprocess.run([f"{CROSS}gcc", "-dumpversion"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def prepared_plan(model_bytes: bytes, kernels: str = "ref") -> dict | None:
    """The host runtime's plan (edgeattack.firmware.hostrt.host_plan) when it can prepare the model for
    the firmware, else None: no host C compiler, or the runtime rejects the model (the firmware then
    parses the model itself and its INFO says why it cannot run it)."""
    try:
        from .hostrt import host_plan

        plan = host_plan(model_bytes, kernels)
    except (ImportError, EdgeAttackError):
        return None
    return plan if int(plan.get("arena_bytes", 0)) > 0 else None


def arena_bytes_for(model_bytes: bytes, info, kernels: str = "ref") -> int:
    """Tensor arena for the firmware: the runtime's own planner via edgeattack.firmware.hostrt (exact),
    else an upper bound (every activation tensor without reuse, plus the
    per-channel parameters the runtime keeps in the arena) so the firmware never runs short."""
    try:
        from .hostrt import firmware_arena_bytes

        # the host builds every written set, and each set's scratch is what its firmware asks for
        planned = int(firmware_arena_bytes(model_bytes, kernels))
        if planned > 0:
            return planned
    except (ImportError, EdgeAttackError):
        # No host runtime here, or the runtime rejects the model (an unsupported operator): build
        # anyway with the bound below, so the device itself reports the problem (INFO "error").
        pass
    # the runtime's tensor and operator tables come first in the arena (firmware_models/runtime/ea_runtime.h)
    total = TENSOR_RAM_ESTIMATE * len(info.tensors) + OP_RAM_ESTIMATE * len(info.operators)
    for t in info.tensors:
        if not t.is_constant:
            total += -(-(t.nbytes or 0) // 16) * 16
    for op in info.operators:
        if op.outputs and op.outputs[0] >= 0:
            shape = info.tensors[op.outputs[0]].shape
            # multiplier + shift and the folded bias per output channel (each part 16-byte aligned)
            ch = shape[-1] if shape else 1
            total += -(-8 * ch // 16) * 16 + -(-4 * ch // 16) * 16
    return total + 1024


def runtime_limits(model_bytes: bytes, info) -> dict:
    """The runtime's table sizes for this model (EA_MAX_TENSORS / EA_MAX_OPS / EA_MAX_OPCODES), so
    the firmware's ea_model struct holds exactly this model instead of the generic maxima."""
    from ..tflite.reader import _schema

    fb = _schema()
    opcodes = fb.Model.GetRootAs(bytes(model_bytes), 0).OperatorCodesLength()
    return {"EA_MAX_TENSORS": max(1, len(info.tensors)), "EA_MAX_OPS": max(1, len(info.operators)),
            "EA_MAX_OPCODES": max(1, int(opcodes))}


OPERATOR_CHOICES = ("model", "all")


def model_builtins(info) -> list[str]:
    """Names of the TFLite builtin operators `info` (a read_model ModelInfo) uses, sorted: the
    firmware's operator selection (firmware_models/Makefile EA_OPS, runtime/ea_select.h). Builtins the
    runtime does not run are named too, so the device's "unsupported operator X" message can name X."""
    from ..tflite.reader import _enum_names, _schema

    names = _enum_names(_schema().BuiltinOperator)
    return sorted({names[op.builtin_code] for op in info.operators if op.builtin_code in names})


def _estimate(model_len: int, arena: int, out_bytes: int) -> tuple[int, int]:
    """(flash, RAM) before building, without the input slots."""
    flash = model_len + CODE_ESTIMATE
    reply = max(FRAME_OVERHEAD + SLOT_REPLY_HEADER + 16 + out_bytes, 212)  # a reply with output, or an ERROR
    ram = arena + 16 + rx_buffer_bytes() + REPLY_FRAMES * reply + STATIC_RAM_ESTIMATE  # tables: in the arena
    return flash, ram + STACK_BYTES


def _fit_error(model_path, profile, flash: int, ram: int, what: str) -> UsageError:
    return UsageError(
        f"{model_path}: firmware for board {profile.name} needs {flash} bytes of flash and {ram} bytes "
        f"of RAM ({what}) but the board has {profile.flash_bytes} and {profile.ram_bytes}; use a "
        f"smaller model (e.g. a lower --width) or a board with more memory")


def _elf_sizes(elf: Path) -> tuple[int, int, int]:
    out = subprocess.run([f"{CROSS}size", "-A", "-d", str(elf)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    text = data = bss = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        name, size = parts[0], int(parts[1])
        if name in (".vectors", ".text", ".ARM.exidx"):
            text += size
        elif name == ".data":
            data += size
        elif name == ".bss":
            bss += size
    return text, data, bss


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock so two processes building the same firmware wait for each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


MAKE_TIMEOUT_S = 1800
# A board name becomes a C string (firmware_models/Makefile checks it again); other values are paths
# and numbers. make expands '$' in any variable given on its command line and splits on whitespace, so
# values carrying either (or quotes, '#', backslashes) are refused rather than passed on.
_BOARD_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_MAKE_UNSAFE = re.compile(r"[$\s'\"#\\;`]")


def make_command(directory, variables: dict, *, jobs: int = 2) -> list[str]:
    """argv of `make -C directory VAR=value ...`: run without a shell (edgeattack.children), each
    variable one argument. Empty values are left out. Raises UsageError for a value make or a compile
    command would interpret (a board name outside [a-z0-9][a-z0-9-]*; '$', whitespace, quotes)."""
    name = str(variables.get("BOARD_NAME", ""))
    if "BOARD_NAME" in variables and not _BOARD_NAME.fullmatch(name):
        raise UsageError(f"board name {name!r} cannot name a firmware build: use lowercase letters, digits "
                         f"and '-' (e.g. qemu-m4)")
    args = []
    for key, value in variables.items():
        value = str(value)
        if value == "":
            continue
        if _MAKE_UNSAFE.search(value):
            raise UsageError(f"{key}={value!r}: make cannot take a value containing '$', spaces, quotes or "
                             f"'#': choose a path without them (e.g. another --cache-dir)")
        args.append(f"{key}={value}")
    return ["make", "-C", str(directory), f"-j{max(1, int(jobs))}", *args]


def _export(model_path: Path, out_dir: Path, arena: int) -> str:
    from ..tflite.export import export_model

    result = export_model(model_path, "c", out_dir, arena=arena)
    return result["sha256"]


def build_firmware(model_path, board_profile, cache_dir=None, *, debug_fault: int | None = None,
                   jobs: int = 2, kernels: str | None = "auto", protocol: str = "edgeattack",
                   operators: str = "model", prepare: bool = True) -> BuildResult:
    """Build (or fetch from the cache) the firmware running `model_path` on `board_profile` (a
    BoardProfile, a built-in board name or a profile path).

    debug_fault: test builds only. 1 adds a request type 0x7E that makes the device take a HardFault;
    2 makes it fault at boot, before answering anything; 3 makes it hang at boot.
    kernels: the kernel set (resolve_kernels: auto, ref, dsp, mve), part of the cache key.
    protocol: "edgeattack", or "mlperf" for the MLPerf-mode firmware (docs/mlperf.md: MLPerf Tiny's
    DUT protocol, its benchmark name and input offset from link.mlperf.dut_settings).
    operators: "model" links only the operators the model uses (the default: the smallest
    firmware); "all" links the runtime's whole operator table (footprint comparisons).
    prepare: let the host runtime prepare the model (hostrt.prepare_c: the tables go to flash and
    the firmware links no loader) when it can (prepared_plan); False builds the firmware that parses
    and plans the model at boot, as it does anyway when the host cannot.
    Raises UsageError (bad model, no port for the board, model too large for the board, a kernel
    set the board's core cannot run) and
    EdgeAttackError (toolchain missing, build failed; the message names the log file).
    """
    from ..tflite.reader import load_model_bytes, read_model

    if operators not in OPERATOR_CHOICES:
        raise UsageError(f"operators={operators!r}: choose one of {', '.join(OPERATOR_CHOICES)}")
    profile = _resolve_profile(board_profile)
    port = port_for(profile)
    kernel_set = resolve_kernels(profile, kernels)
    require_toolchain()
    model_path = Path(model_path)
    model_bytes = load_model_bytes(model_path)
    info = read_model(model_bytes, name=str(model_path))
    if not info.input_tensors or not info.output_tensors:
        raise UsageError(f"{model_path}: the model has no input or no output tensor")
    in_bytes = int(info.input_tensors[0].nbytes or 0)
    out_bytes = int(info.output_tensors[0].nbytes or 0)
    plan = None
    if prepare:
        from ..tflite.align import align_16
        from ..tflite.analysis import is_aligned_16

        # the bytes the firmware embeds (export aligns an unaligned model): the tables point into them
        embedded = model_bytes if is_aligned_16(info) else align_16(model_bytes, name=str(model_path))
        plan = prepared_plan(embedded, kernel_set)
    if plan:
        from .hostrt import prepared_arena_bytes

        arena = prepared_arena_bytes(plan)  # the tensor and operator tables are in flash
    else:
        arena = arena_bytes_for(model_bytes, info, kernel_set)

    # Before building: will it fit? (the aligned model can be a few bytes longer: 16 per buffer)
    flash_est, ram_est = _estimate(len(model_bytes) + 16 * len(info.buffers), arena, out_bytes)
    ram_without_slots = ram_est
    # the MLPerf-mode firmware has no input slots: its db buffer is the model's input tensor
    slots = input_slots_for(profile.ram_bytes, ram_est, in_bytes) if protocol != "mlperf" else 1
    slot_bytes = slot_ram_bytes(slots, in_bytes)
    ram_est += slot_bytes
    if (profile.flash_bytes and flash_est > profile.flash_bytes) or \
            (profile.ram_bytes and ram_est > profile.ram_bytes):
        raise _fit_error(model_path, profile, flash_est, ram_est, "estimated before building")

    options = {"EA_ARENA_SIZE": arena + 16, "EA_INPUT_BYTES": max(in_bytes, 1),
               "EA_OUTPUT_BYTES": max(out_bytes, 1), "EA_MAX_PAYLOAD": MAX_PAYLOAD,
               "EA_RX_BUFFERS": RX_BUFFERS, "EA_STACK_SIZE": STACK_BYTES, "EA_KERNELS": kernel_set,
               "EA_INPUT_SLOTS": slots, "EA_PREPARED": 1 if plan else "",
               "EA_OPS": ",".join(model_builtins(info)) if operators == "model" else ""}
    if protocol == "mlperf":
        from ..link.mlperf import dut_settings, takes_float_input

        inp = info.input_tensors[0]
        sample = inp.shape[1:] if len(inp.shape) > 1 and inp.shape[0] == 1 else inp.shape
        name, offset = dut_settings(sample, int(info.output_tensors[0].size),
                                    getattr(profile, "mlperf", None))
        if takes_float_input(name):
            raise UsageError(f"{name}: MLCommons' {name} firmware loads float32 inputs; edgeattack's "
                             f"MLPerf-mode firmware loads int8 bytes only (use --protocol edgeattack, "
                             f"or set mlperf.model in the board profile to another name)")
        options.update({"EA_APP": "mlperf", "MLPERF_MODEL": name, "EA_MLPERF_OFFSET": offset})
    elif protocol != "edgeattack":
        raise UsageError(f"protocol {protocol!r}: choose edgeattack or mlperf")
    limits = runtime_limits(model_bytes, info)
    extra_cflags = f"-DEA_DEBUG_FAULT={int(debug_fault)}" if debug_fault else ""
    shared = {"format": BUILD_FORMAT, "sources": sources_digest(port), "port": port,
              "kernel_path": kernel_set, "max_payload": MAX_PAYLOAD, "rx_buffers": RX_BUFFERS,
              "extra_cflags": extra_cflags, "toolchain": _toolchain_version(), "limits": limits}
    options.update(limits)
    key_material = json.dumps({**shared, "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
                               "board": profile.name, "options": options}, sort_keys=True)
    key = hashlib.sha256(key_material.encode()).hexdigest()[:24]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = cache / f"{profile.name}-{key}"
    # Protocol, runtime and port objects do not depend on the model's bytes: models built for the same
    # port with the same sources, flags and runtime table sizes reuse them. make's dependency files
    # name the sources by absolute path, so objects are shared only within one source tree: another
    # checkout (or a removed one) would otherwise leave prerequisites make cannot find.
    # the MLPerf-mode firmware compiles the shared objects without EA_MSG_CODED (Makefile)
    objs_material = {**shared, "source_root": str(Path(firmware_dir()).resolve()), "app": protocol}
    objs_key = hashlib.sha256(json.dumps(objs_material, sort_keys=True).encode()).hexdigest()[:24]
    objs = cache / f"objs-{port}-{objs_key}"

    with _locked(cache / f".{profile.name}-{key}.lock"):
        cached = _load_entry(entry)
        if cached is not None:
            messages.remember(cache)
            if protocol != "mlperf":  # no slots in MLPerf mode: nothing to say
                _tell_slots(cached)
            return cached
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=cache))
        try:
            sha = _export(model_path, tmp / "model", arena)
            if plan:
                from .hostrt import prepare_c

                prepare_c(embedded, tmp / "model" / "model_prepared.c", kernel_set,
                          selected=operators == "model")
            log = tmp / "build.log"
            variables = {"BOARD": port, "BOARDS_DIR": boards_dir(), "MODEL_DIR": tmp / "model",
                         "BUILD_DIR": tmp / "build", "BOARD_NAME": profile.name, "CROSS": CROSS, **options,
                         "EXTRA_CFLAGS": extra_cflags, "SHARED_OBJ_DIR": objs}
            cmd = make_command(firmware_dir(), variables, jobs=jobs)
            with _locked(cache / f".{objs.name}.lock"):
                res = children.run(cmd, timeout=MAKE_TIMEOUT_S, text=True)
            output = res.stdout + res.stderr
            log.write_text(" ".join(cmd) + "\n" + output)
            if res.returncode != 0:
                if res.timed_out:
                    output += f"\n*** make did not finish within {MAKE_TIMEOUT_S} s"
                _raise_build_failure(output, model_path, profile, flash_est, ram_est, entry, log)
            elf = tmp / "build" / "firmware.elf"
            text, data, bss = _elf_sizes(elf)
            flash, ram = text + data, data + bss
            rx = rx_buffer_bytes()
            if (profile.flash_bytes and flash > profile.flash_bytes) or \
                    (profile.ram_bytes and ram + STACK_BYTES > profile.ram_bytes):
                raise _fit_error(model_path, profile, flash, ram + STACK_BYTES, "linked firmware")
            build_id, texts = messages.extract(elf, f"{CROSS}nm")
            if build_id is not None:
                messages.store(cache, build_id, texts)
            final_elf = tmp / "firmware.elf"
            shutil.copy2(elf, final_elf)
            meta = {"format": BUILD_FORMAT, "board": profile.name, "port": port, "model_sha256": sha,
                    "text": text, "data": data, "bss": bss, "flash_bytes": flash, "ram_bytes": ram,
                    "arena_bytes": arena, "input_bytes": in_bytes, "output_bytes": out_bytes,
                    "stack_bytes": STACK_BYTES, "rx_bytes": rx,
                    "input_slots": slots, "slot_bytes": slot_bytes, "ram_estimate": ram_without_slots,
                    "other_ram_bytes": ram + STACK_BYTES - (arena + 16) - rx - slot_bytes,
                    "kernels": kernel_set, "build_id": build_id, "prepared": bool(plan),
                    "key": json.loads(key_material)}
            (tmp / "build.json").write_text(json.dumps(meta, indent=2) + "\n")
            shutil.rmtree(tmp / "build", ignore_errors=True)  # objects: not needed once linked
            if entry.exists():
                shutil.rmtree(entry)  # a broken earlier entry (no build.json)
            os.replace(tmp, entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    result = _load_entry(entry)
    assert result is not None
    if protocol != "mlperf":
        _tell_slots(result)
    return BuildResult(**{**result.__dict__, "cached": False})


def _tell_slots(result: BuildResult) -> None:
    message = result.slots_message()
    if message:
        logging.getLogger(__name__).warning(message)


def _load_entry(entry: Path) -> BuildResult | None:
    try:
        meta = json.loads((entry / "build.json").read_text())
    except (OSError, ValueError):
        return None
    elf = entry / "firmware.elf"
    if meta.get("format") != BUILD_FORMAT or not elf.is_file():
        return None
    return BuildResult(elf=elf, text=meta["text"], data=meta["data"], bss=meta["bss"],
                       ram_bytes=meta["ram_bytes"], flash_bytes=meta["flash_bytes"],
                       board=meta["board"], port=meta["port"], model_sha256=meta["model_sha256"],
                       arena_bytes=meta["arena_bytes"], input_bytes=meta["input_bytes"],
                       output_bytes=meta["output_bytes"], stack_bytes=meta["stack_bytes"],
                       rx_bytes=meta["rx_bytes"], other_ram_bytes=meta["other_ram_bytes"], cached=True,
                       kernels=meta.get("kernels", "ref"),
                       input_slots=meta["input_slots"], slot_bytes=meta["slot_bytes"],
                       ram_estimate=meta["ram_estimate"], build_id=meta.get("build_id"),
                       prepared=bool(meta.get("prepared")))


_OVERFLOW = re.compile(r"region [`']?(\w+)'? overflowed by (\d+) bytes|RAM overflow")


def _raise_build_failure(output: str, model_path, profile, flash_est, ram_est, entry, log) -> None:
    if _OVERFLOW.search(output):
        raise _fit_error(model_path, profile, flash_est, ram_est, "the linker ran out of memory")
    # Keep the log: move it next to the cache entry so the message can name it.
    kept = entry.with_name(entry.name + ".failed.log")
    try:
        shutil.copy2(log, kept)
    except OSError:
        kept = log
    lines = [ln.strip() for ln in output.splitlines() if not ln.startswith(CROSS)]  # not the commands
    errors = [ln for ln in lines if ": error:" in ln or "undefined reference" in ln or "*** " in ln]
    first = errors[0] if errors else (lines or ["no output"])[-1]
    raise EdgeAttackError(f"firmware build for {model_path} on {profile.name} failed: {first} "
                          f"(full log: {kept})")
