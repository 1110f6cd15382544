#!/usr/bin/env python3
"""A session through MLPerf Tiny's DUT protocol against edgeattack's own protocol on one board
(docs/mlperf.md; docs/benchmarks.md "MLPerf Tiny protocol").

    python tools/bench_mlperf.py                        # qemu-m4, 200 digits records, unpaced
    python tools/bench_mlperf.py -n 50 --pace-baudrate 115200

Builds an untrained cnn-digits (8x8x1, int8; tools/bench_reboot.py's model), then runs the same
session twice in one invocation: `--protocol mlperf` (the project's MLPerf-mode firmware: hex `db`
loads read back with `db print`, `infer 1 0%`, `results%` twice) and the native protocol (v2). Prints
records/s while streaming for each, their ratio, wire bytes per record, and how many predictions
agree (MLPerf's scores are printed with 3 decimals, so a near tie may break the other way).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reboot import build_model  # noqa: E402 - the same untrained cnn-digits


def session(board: str, model: Path, out: Path, n: int, protocol: str | None,
            pace: int | None) -> tuple[dict, list]:
    from edgeattack.results import read_results
    from edgeattack.session import run_session

    options = {"pace_baudrate": pace} if pace else {}
    summary = run_session(board, model, dataset="digits", n=n, out=out, protocol=protocol,
                          progress=False, energy="off", **options)
    return summary, [r["pred"] for r in read_results(out / "results.jsonl")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("-n", type=int, default=200, help="records (digits test split)")
    ap.add_argument("--pace-baudrate", type=int, default=None)
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "cnn_digits.tflite"
        build_model(model)
        preds = {}
        for name, protocol in (("mlperf", "mlperf"), ("native", None)):
            summary, preds[name] = session(args.board, model, tmp / name, args.n, protocol,
                                           args.pace_baudrate)
            link = summary["link"]
            elapsed = summary["throughput"]["elapsed_s"]
            rows[name] = {"records": len(preds[name]), "elapsed_s": round(elapsed, 2),
                          "records_per_s": round(len(preds[name]) / elapsed, 1),
                          "wire_bytes_per_record": round(link["wire_bytes"] / len(preds[name])),
                          "status": summary["status"]}
    agree = sum(a == b for a, b in zip(preds["mlperf"], preds["native"]))
    print(json.dumps({"board": args.board, "pace_baudrate": args.pace_baudrate, **rows,
                      "mlperf_over_native_rate": round(rows["mlperf"]["records_per_s"]
                                                       / rows["native"]["records_per_s"], 3),
                      "predictions_agree": f"{agree}/{len(preds['native'])}"}))
    return 0 if all(r["status"] == "complete" for r in rows.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
