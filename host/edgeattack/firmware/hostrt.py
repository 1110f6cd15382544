"""The firmware's C inference runtime, built for the host (with AddressSanitizer and UBSan) and run here.

It runs exactly the C code and the .tflite bytes a firmware build uses, so the host can predict a
device's outputs and its arena size without a board:

    firmware_arena_bytes(model_bytes) -> int        bytes of tensor arena ea_model_init needs
    prepare_c(model_bytes, out_path) -> dict        the prepared model as C for a firmware build
    host_plan(model_bytes) -> dict                  arena bytes and input/output tensor info
    run_host(model_bytes, inputs) -> np.ndarray     outputs, one per input sample

Each takes `kernels`, the kernel set compiled in (runtime/kernels/README.md: "ref", the default, or
"dsp" or "mve", whose instructions have portable C definitions on the host), so every variant's C code runs here.

The harness (firmware_models/host/ea_host.c) is compiled once per source hash into
~/.cache/edgeattack/hostrt/<hash>/ (never into the source tree).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from .. import children
from ..errors import EdgeAttackError, UsageError
from ..resources import firmware_dir

_TIMEOUT_S = 600
_DTYPES = {"int8": np.int8, "float32": np.float32, "int32": np.int32}
# Any sanitizer report is a failure (exit code != 0), never a warning that scrolls by.
_SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86",
            "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87"}


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgeattack"


def _sources() -> list[Path]:
    fw = firmware_dir()
    files = []
    for layer in ("runtime", "util"):  # the runtime and the layer below it (runtime/sources.mk)
        files += sorted((fw / layer).rglob("*.[ch]")) + sorted((fw / layer).glob("*.mk"))
    files += [fw / "host" / n for n in ("ea_host.c", "ea_prepared_c.c", "ea_prepared_c.h", "Makefile")]
    missing = [str(p) for p in files if not p.is_file()]
    if missing or not (fw / "runtime" / "ea_runtime.h").is_file():
        raise EdgeAttackError(f"firmware runtime sources not found under {fw}: reinstall edgeattack")
    return files


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise EdgeAttackError("no C compiler found: install gcc (apt-get install gcc) or set CC")
    return cc


_compiler_ids: dict[str, bytes] = {}
_known: dict[tuple, Path] = {}  # (compiler, kernels, sources' names/mtimes/sizes) -> built binary, per process
KERNEL_SETS = ("ref", "dsp", "mve")  # the sets with C code the host can compile (runtime/kernels/<set>/)
_plans: dict[bytes, dict] = {}  # sha256(model) -> plan, per process (a plan costs a process launch)


def host_binary(kernels: str = "ref") -> Path:
    """Path of the sanitizer-instrumented ea_host with kernel set `kernels`, building it first if its
    sources changed."""
    if kernels not in KERNEL_SETS:
        raise UsageError(f"kernels={kernels!r}: the host runtime builds the kernel sets {', '.join(KERNEL_SETS)}")
    cc = _compiler()
    sources = _sources()
    stamp = (cc, kernels) + tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sources)
    if stamp in _known and _known[stamp].is_file():
        return _known[stamp]
    h = hashlib.sha256()
    for p in sources:
        h.update(str(p.relative_to(firmware_dir())).encode() + b"\0" + p.read_bytes())
    if cc not in _compiler_ids:
        _compiler_ids[cc] = children.run([cc, "--version"], timeout=60).stdout
    h.update(_compiler_ids[cc])
    h.update(b"kernels=" + kernels.encode())
    final = cache_root() / "hostrt" / h.hexdigest()[:16]
    binary = final / "ea_host"
    if binary.is_file():
        _known[stamp] = binary
        return binary
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    try:
        make = shutil.which("make")
        if not make:
            raise EdgeAttackError("`make` not found: install it (apt-get install make)")
        res = children.run([make, "-s", "-C", str(firmware_dir() / "host"), f"BUILD={tmp}", f"CC={cc}",
                            f"EA_KERNELS={kernels}", f"{tmp}/ea_host"], timeout=_TIMEOUT_S, text=True)
        if res.returncode != 0:
            raise EdgeAttackError(f"building the host runtime failed ({cc}"
                                  f"{', timed out' if res.timed_out else ''}):\n{res.stderr.strip()[-2000:]}")
        try:
            os.replace(tmp, final)
        except OSError:  # another process built it first: use theirs
            if not binary.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _known[stamp] = binary
    return binary


def _as_bytes(model_bytes) -> bytes:
    if not isinstance(model_bytes, (bytes, bytearray, memoryview)):
        raise UsageError(f"model must be the .tflite bytes, got {type(model_bytes).__name__}: read the file first")
    return bytes(model_bytes)


@contextlib.contextmanager
def _model_file(model_bytes: bytes):
    fd, path = tempfile.mkstemp(prefix="ea-model-", suffix=".tflite")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model_bytes)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _harness(binary: Path, *args, stdin: bytes | None = None) -> children.ChildResult:
    """ea_host run to completion under the sanitizers' settings (a child of edgeattack.children)."""
    return children.run([str(binary), *map(str, args)], timeout=_TIMEOUT_S, input=stdin,
                        env=dict(os.environ, **_SAN_ENV))


def _check(res: children.ChildResult, what: str):
    rc, err = res.returncode, res.stderr.decode(errors="replace")
    if rc == 0:
        return
    if rc is None:
        raise EdgeAttackError(f"C runtime {what} did not finish within {_TIMEOUT_S} s")
    msg = err.strip().splitlines()
    line = next((m for m in msg if m.startswith("ea_host: ")), None)
    if rc in (2, 3) and line:
        raise EdgeAttackError(f"C runtime: {line[len('ea_host: '):]}")
    raise EdgeAttackError(f"C runtime {what} failed (exit {rc}): " + "\n".join(msg[-40:]))


def host_plan(model_bytes: bytes, kernels: str = "ref") -> dict:
    """{"arena_bytes", "activation_bytes", "operators", "tensors", "input": {...}, "output": {...}}."""
    model_bytes = _as_bytes(model_bytes)
    binary = host_binary(kernels)
    key = hashlib.sha256(model_bytes).digest() + str(binary).encode()
    if key not in _plans:
        with _model_file(model_bytes) as path:
            res = _harness(binary, "plan", path)
        _check(res, "plan")
        out = res.stdout
        if len(_plans) > 256:
            _plans.clear()
        _plans[key] = json.loads(out)
    return json.loads(json.dumps(_plans[key]))  # a copy: callers may modify it


def firmware_arena_bytes(model_bytes: bytes, kernels: str = "ref") -> int:
    """Tensor arena bytes ea_model_init needs for this model: the tensor and operator tables,
    activations, per-channel data and the kernels' scratch (the firmware that loads the model itself).
    A firmware whose model the host prepared (prepare_c) needs host_plan's "table_bytes" less."""
    return int(host_plan(model_bytes, kernels)["arena_bytes"])


def prepared_arena_bytes(plan: dict) -> int:
    """Arena bytes of a firmware whose model the host prepared (prepare_c), from host_plan's `plan`:
    ea_model_init's arena without the tensor and operator tables, which that firmware keeps in flash."""
    return int(plan["arena_bytes"]) - int(plan["table_bytes"])


def prepare_c(model_bytes: bytes, out_path, kernels: str = "ref", *, selected: bool = True) -> dict:
    """Write `out_path`: the model initialized by the host runtime as C source for a firmware build
    (ea_prepared in runtime/ea_runtime.h; the firmware then skips parsing, planning and every operator's
    prepare). selected: the firmware links only the model's operators (False: all of them). Returns
    {"arena_bytes": the prepared model's arena (no tables: they stay in flash), "table_bytes": the
    tables' size}. Raises EdgeAttackError naming the
    runtime's message when it rejects the model."""
    model_bytes = _as_bytes(model_bytes)
    binary = host_binary(kernels)
    with _model_file(model_bytes) as path:
        res = _harness(binary, "prepare", path, out_path, *([] if selected else ["all"]))
    _check(res, "prepare")
    return json.loads(res.stdout)


def run_host(model_bytes: bytes, inputs, kernels: str = "ref") -> np.ndarray:
    """Run the C runtime on the host. `inputs`: one sample (the input shape) or a batch (N x input shape)
    in the model's input dtype (int8, or float32 for float-input models). Returns the raw outputs in the
    model's output dtype, with the same leading batch axis (none for a single sample)."""
    model_bytes = _as_bytes(model_bytes)
    plan = host_plan(model_bytes, kernels)
    ins, outs = plan["input"], plan["output"]
    in_dtype, out_dtype = _DTYPES.get(ins["dtype"]), _DTYPES.get(outs["dtype"])
    x = np.asarray(inputs)
    if in_dtype is None or x.dtype != in_dtype:
        raise UsageError(f"inputs must be {ins['dtype']} for this model, got {x.dtype}: quantize them first "
                         f"(edgeattack.quant.quantize_input)")
    in_shape = tuple(ins["shape"])
    single = x.shape == in_shape
    if not single and x.shape[1:] != in_shape:
        raise UsageError(f"inputs have shape {x.shape}; the model takes {in_shape} or N x {in_shape}")
    batch = x[None] if single else x
    binary = host_binary(kernels)
    with _model_file(model_bytes) as path:
        res = _harness(binary, "run", path, stdin=np.ascontiguousarray(batch).tobytes())
    _check(res, "run")
    y = np.frombuffer(res.stdout, dtype=out_dtype).reshape((len(batch),) + tuple(outs["shape"]))
    return y[0] if single else y


if __name__ == "__main__":  # python -m edgeattack.firmware.hostrt MODEL.tflite: print the plan
    print(json.dumps(host_plan(Path(sys.argv[1]).read_bytes()), indent=2))
