#!/usr/bin/env python3
"""Reboot recovery under a session (docs/protocol.md "Reboots"; docs/benchmarks.md "Reboots").

    python tools/bench_reboot.py                                  # emu-tflm and qemu-m4, 500 records, 5 resets
    python tools/bench_reboot.py --boards qemu-m4 --records 100 --resets 2

Builds an untrained cnn-digits (8x8x1, int8), starts each board once, runs an uninterrupted session
as the reference, then the same session restarting the device `--resets` times with queries in
flight (emu-tflm: the agent killed with SIGKILL and started again on the same pty; qemu-m4: QEMU's
`system_reset` through its monitor). Checks and prints: results identical to the reference, every
record once, inferences run (summed over boots) == records, and inferences_unobserved <= the
queries in flight at the resets (model-running requests sent and unanswered when each reset hits,
`Client.inferences_in_flight`). The link is paced at 115200 baud (a real UART), so queries are on
the wire when each reset hits. tests/test_session_reboot.py runs `session_with_resets` at a
reduced scale.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Link timers for a device that reboots: the host notices a silent device after `timeout` seconds
# (then resends, meets NOT_SYNCED and recovers); a rebooting agent must load its runtime within
# `total_timeout`.
TIMEOUTS = {"emu-tflm": (0.5, 20.0), "qemu-m4": (0.5, 20.0)}
PACE = 115200  # baud: a real UART's pace, so queries are in flight when the device resets


def build_model(path: Path) -> None:
    from edgeattack.compression.convert import to_tflite
    from edgeattack.tfutil import set_seed
    from edgeattack.zoo import build_model as zoo

    set_seed(0)
    model = zoo("cnn-digits", input_shape=(8, 8, 1), classes=10)
    calib = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    path.write_bytes(to_tflite(model, "int8", calib))


def write_inputs(path: Path, n: int, shape=(8, 8, 1), seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.random((n, *shape), dtype=np.float32), y=rng.integers(0, 10, n))
    return path


def reset_points(records: int, resets: int) -> list[int]:
    """After which record each reset happens: spread evenly, none at the very start or end."""
    return [round(records * (k + 1) / (resets + 1)) for k in range(resets)]


def session_with_resets(board, model, inputs, out, resets_at=(), inflight: int = 8,
                        pace_baudrate: int | None = PACE) -> dict:
    """Run a session on a started `board` (emulator or qemu driver), calling board.reboot() right
    after the k-th record arrives for each k in `resets_at`. Returns the summary (session.json)
    with `in_flight_at_resets`: the queries in flight at each reset (Client.inferences_in_flight:
    model-running requests sent and unanswered; queued ones cannot have run). The link is
    paced like a UART (`pace_baudrate`) so that later queries are still on the wire when a result
    arrives: unpaced, a fast device has answered everything in flight by then."""
    from edgeattack.device import open_device
    from edgeattack.session import Session, load_clean

    timeout, total = TIMEOUTS.get(board.profile.name, (0.5, 20.0))
    at = set(resets_at)
    in_flight = []
    with open_device(board.profile.name, model, port=board.url, timeout=timeout,
                     total_timeout=total, pace_baudrate=pace_baudrate) as dev:
        inner = dev.infer_many

        def infer_many(*args, **kwargs):
            for k, result in enumerate(inner(*args, **kwargs), 1):
                yield result
                if k in at:
                    in_flight.append(dev.client.inferences_in_flight)
                    board.reboot()

        dev.infer_many = infer_many
        session = Session(dev, out, inflight=inflight, progress=False, model_path=model)
        summary = session.run([load_clean(inputs)])
    summary["in_flight_at_resets"] = in_flight
    return summary


def identity(path: Path) -> list:
    from edgeattack.results import read_results

    return sorted((r["id"], r["source"], r["eps"], r["pred"], r["output_raw"])
                  for r in read_results(path / "results.jsonl"))


def check(ref_dir: Path, run_dir: Path, summary: dict, resets: int) -> dict:
    """The figures of one run with resets, and whether they hold.

    The host counts as unobserved the model-running requests of which the restarted device did not
    answer every copy sent (docs/protocol.md "Reboots"): only queries already sent when the reset
    hit can be among them, so the bound checked is the sum of `in_flight_at_resets`."""
    from edgeattack.results import read_results

    records = read_results(run_dir / "results.jsonl")
    keys = [(r["id"], r["source"], r["eps"]) for r in records]
    dev = summary["device"]
    row = {"records": len(records), "resets": resets, "reboots_seen": dev["reboots"],
           "in_flight_at_resets": summary["in_flight_at_resets"],
           "inferences_run": dev["inferences_run"],
           "inferences_unobserved": dev["inferences_unobserved"],
           "unobserved_bound": sum(summary["in_flight_at_resets"]),
           "identical": identity(run_dir) == identity(ref_dir),
           "each_once": len(keys) == len(set(keys)) == summary["counts"]["planned"],
           "elapsed_s": round(summary["throughput"]["elapsed_s"], 2)}
    row["ok"] = (row["identical"] and row["each_once"] and row["reboots_seen"] == resets
                 and row["inferences_run"] == len(records)
                 and row["inferences_unobserved"] <= row["unobserved_bound"])
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", default="emu-tflm,qemu-m4")
    ap.add_argument("--records", type=int, default=500)
    ap.add_argument("--resets", type=int, default=5)
    ap.add_argument("--inflight", type=int, default=8)
    ap.add_argument("--model", type=Path, help="an int8 8x8x1 .tflite (default: build cnn-digits)")
    args = ap.parse_args()
    from edgeattack.device import start_board

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            model = tmp / "cnn_digits.tflite"
            build_model(model)
        inputs = write_inputs(tmp / "in.npz", args.records)
        for name in args.boards.split(","):
            board = start_board(name, model)
            try:
                t0 = time.monotonic()
                session_with_resets(board, model, inputs, tmp / f"{name}-ref", inflight=args.inflight)
                ref_s = time.monotonic() - t0
                summary = session_with_resets(board, model, inputs, tmp / f"{name}-resets",
                                              reset_points(args.records, args.resets), args.inflight)
            finally:
                board.stop()
            rows[name] = check(tmp / f"{name}-ref", tmp / f"{name}-resets", summary, args.resets)
            rows[name]["reference_elapsed_s"] = round(ref_s, 2)
            print(name, json.dumps(rows[name]), flush=True)
    return 0 if all(r["ok"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
