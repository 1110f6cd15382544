"""The poisoning commands' summaries (`poison.json`, `backdoor.json`, `detox.json`: CONVENTIONS
"Files") and their run folder, which is either complete or absent."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator

from ... import __version__
from ...atomic import check_output
from ..io import SCHEMA, write_summary


def summary(command: str, attack: str, params: dict, seed, source_model_sha256, target: dict,
            n: int, rows: list[dict], **extra) -> dict:
    """CONVENTIONS header, then `extra` (e.g. `data`: which data each step used), then `metrics`."""
    return {"schema": SCHEMA, "command": command, "attack": attack, "params": params, "seed": seed,
            "norm": None, "source_model_sha256": source_model_sha256, "target": target, "n": int(n),
            "tool_version": __version__, **extra, "metrics": rows}


def write(folder, command: str, obj: dict) -> Path:
    return write_summary(Path(folder) / f"{command}.json", obj)


@contextlib.contextmanager
def run_folder(out, force: bool) -> Iterator[Path]:
    """The command's output folder, written in place (models inside record their final paths);
    removed again if anything fails, so a run leaves either everything or nothing."""
    out = check_output(out, force)
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    out.mkdir(parents=True)
    try:
        yield out
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
