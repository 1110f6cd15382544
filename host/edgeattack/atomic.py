"""Write outputs under a temporary name and rename, so a failure never leaves a half-written file.

Files and folders written here get the permissions any other program's would (0666 / 0777 minus the
umask), not the private 0600 / 0700 of Python's tempfile: a model shared with a group stays readable.

JSON is written strict (RFC 8259): NaN and infinities are not JSON, so a non-finite float is written
as null ("undefined", e.g. an accuracy over no samples), never as a bare NaN other parsers reject.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from .errors import UsageError


def check_output(path: str | os.PathLike, force: bool) -> Path:
    """Refuse to overwrite an existing output unless --force was given, and refuse an output that
    could not be written (read-only folder, a file where a folder should be): checked before any
    work, so a long run never fails at its very end."""
    p = Path(path)
    try:
        if p.exists() and not force and (p.is_file() or any(p.iterdir())):
            raise UsageError(f"{p}: output already exists; pass --force to overwrite it or choose "
                             f"another -o")
        _check_writable(p)
    except PermissionError as e:  # a folder on the way that may not be entered or listed
        raise UsageError(f"{p}: cannot reach the output ({e.strerror}: {e.filename}); choose "
                         f"another -o") from None
    return p


def _check_writable(p: Path) -> None:
    """Create and remove a probe folder where the output will be created (its nearest existing
    ancestor: missing parents are made only when the output is written)."""
    where = p.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise UsageError(f"{p}: cannot create the output, {where} is a file, not a folder; choose "
                         f"another -o")
    try:
        _temp_beside(where / f"{p.name}.probe", lambda t: t.mkdir(0o700)).rmdir()
    except OSError as e:
        raise UsageError(f"{p}: cannot write in {where} ({e.strerror or e}); choose another -o") from None


def _temp_beside(final: Path, make) -> Path:
    """A new hidden `.NAME.XXXXXXXX.tmp` beside `final`, created by make(path) (which must fail with
    FileExistsError when the name is taken). Created with the umask applied, unlike tempfile's."""
    for _ in range(100):
        tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
        try:
            make(tmp)
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{final.parent}: no free temporary name for {final.name}")


def _new_file(p: Path) -> None:
    os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on failure remove it."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _temp_beside(final, _new_file)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json_text(obj) + "\n")


def json_text(obj, indent: int | None = 2) -> str:
    """Strict JSON for `obj`: NumPy values and paths converted, non-finite floats as null."""
    return json.dumps(_strict(obj), indent=indent, sort_keys=False, allow_nan=False)


def _strict(o):
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _strict(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_strict(v) for v in o]
    if isinstance(o, (str, int, bool)) or o is None:
        return o
    if isinstance(o, Path):
        return str(o)
    import numpy as np

    if isinstance(o, (np.generic, np.ndarray)):
        return _strict(o.tolist())
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Build an output folder under a temporary name; on success it replaces `path` whole."""
    final = check_output(path, force)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(final, lambda p: p.mkdir(0o777))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
