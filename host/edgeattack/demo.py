"""The main job on the embedded default: train on the bundled digits data, compress with several
recipes, export each int8 model as C, run every model on emulated boards (the TFLM interpreter behind
a pty, and our firmware on a QEMU Cortex-M4), and tabulate accuracy, size and on-device cost.
Fully offline. `edgeattack demo` is the CLI; `run_demo()` the API.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from .atomic import atomic_path, check_output, write_json, write_text
from .errors import UsageError

DEFAULT_RECIPES = ("ptq-int8", "prune", "cluster", "pqat", "cqat", "distill", "lowrank")
DEFAULT_BOARDS = ("emu-tflm", "qemu-m4")


def _say(msg: str) -> None:
    import click

    click.echo(msg, err=True)


def _write_inputs(path: Path, data, samples: int) -> Path:
    n = min(samples, len(data.x_test))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, x=data.x_test[:n], y=data.y_test[:n], ids=np.arange(n, dtype=np.int64))
    return path


def _board_available(board: str) -> str | None:
    """None when the board can run here, else why not (the table says so instead of failing)."""
    from .device import board_for

    driver = board_for(board)
    if not driver.started_by_host:
        return f"{board} is a physical board: use `edgeattack flash` and --port"
    missing = [t for t in driver.host_tools if shutil.which(t) is None]
    if missing:
        return f"needs {' and '.join(missing)} (make demo installs them)"
    return None


def run_demo(out="runs/demo", *, recipes=DEFAULT_RECIPES, boards=DEFAULT_BOARDS, samples: int = 200,
             epochs: int = 30, seed: int = 0, force: bool = False) -> dict:
    from .compression import compress, load_recipe
    from .datasets import load_dataset
    from .session import run_session
    from .tflite.export import export_model
    from .train import train_model

    out = Path(out)
    check_output(out, force)
    for r in recipes:
        load_recipe(r)  # fail on a bad recipe name before any training
    if samples < 1:
        raise UsageError(f"--samples {samples}: must be at least 1")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.time()
    data = load_dataset("digits")
    _say(f"[1/4] train cnn-digits on digits ({epochs} epochs)")
    trained = train_model("cnn-digits", data, out / "train", epochs=epochs, seed=seed, force=True)
    _say(f"      float test accuracy {trained.test_accuracy:.4f}")

    rows = []
    for i, recipe in enumerate(recipes, 1):
        _say(f"[2/4] compress {i}/{len(recipes)}: {recipe}")
        res = compress(trained.model_path, recipe, out / recipe, dataset=data, seed=seed, force=True)
        m = res.manifest
        row = {"recipe": recipe, "float_accuracy": m["accuracy"]["float"],
               "litert_accuracy": m["accuracy"]["litert"], "tflm_accuracy": m["accuracy"]["tflm"],
               "tflite_bytes": m["tflite_bytes"], "weight_bytes": m["weight_buffer_bytes"],
               "weight_gzip_bytes": m["weight_buffer_gzip_bytes"], "sparsity": m["sparsity"],
               "params": m["params"], "tflm_arena_bytes": m["tflm_arena_bytes"],
               "tflm_runnable": m["tflm_runnable"], "model": str(res.tflite_path), "boards": {}}
        if m["tflm_runnable"]:
            _say(f"[3/4] export {recipe} as C")
            export_model(res.tflite_path, "c", out / recipe / "c", force=True,
                         arena=m["tflm_arena_bytes"])
        rows.append(row)

    inputs = _write_inputs(out / "inputs.npz", data, samples)
    for board in boards:
        why_not = _board_available(board)
        for row in rows:
            if why_not or not row["tflm_runnable"]:
                row["boards"][board] = {"skipped": why_not or "not runnable on TFLM"}
                continue
            _say(f"[4/4] session {row['recipe']} on {board} ({samples} samples)")
            s = run_session(board, row["model"], inputs, out=out / "sessions" / board / row["recipe"],
                            warmup=1, progress=True)
            clean = next(mt for mt in s["metrics"] if mt["source"] == "clean")
            lat = clean["latency_s"] or {}
            row["boards"][board] = {"accuracy": clean["accuracy"], "accuracy_ci95": clean["accuracy_ci95"],
                                    "latency_p50_s": lat.get("p50"),
                                    "time_estimated": clean["time_estimated"],
                                    "inferences_run": s["device"]["inferences_run"],
                                    "records_per_s": s["throughput"]["records_per_s"]}
    summary = {"dataset": data.describe(), "seed": seed, "samples": samples, "epochs": epochs,
               "float_test_accuracy": trained.test_accuracy, "recipes": rows, "boards": list(boards),
               "seconds": time.time() - t0}
    write_json(out / "summary.json", summary)
    table = format_table(summary)
    write_text(out / "summary.md", table + "\n")
    return summary


def format_table(summary: dict) -> str:
    boards = summary["boards"]
    head = ["recipe", "float acc", "int8 acc (TFLM)", ".tflite B", "weights B", "gzip B", "sparsity",
            "arena B"]
    for b in boards:
        head += [f"{b} acc", f"{b} latency"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    for r in summary["recipes"]:
        cells = [r["recipe"], pct(r["float_accuracy"]), pct(r["tflm_accuracy"] if r["tflm_runnable"]
                                                              else r["litert_accuracy"]),
                 str(r["tflite_bytes"]), str(r["weight_bytes"]), str(r["weight_gzip_bytes"]),
                 pct(r["sparsity"]), str(r["tflm_arena_bytes"] or "-")]
        for b in boards:
            d = r["boards"].get(b, {})
            if "skipped" in d:
                cells += ["skipped", d["skipped"]]
                continue
            lat = d.get("latency_p50_s")
            lat_s = "-" if lat is None else f"{lat * 1e3:.3f} ms" + (" (est.)" if d.get("time_estimated") else "")
            cells += [pct(d.get("accuracy")), lat_s]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_summary(out) -> dict:
    return json.loads((Path(out) / "summary.json").read_text())
