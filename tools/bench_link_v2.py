#!/usr/bin/env python3
"""Protocol v2 against v1 full loads under black-box attacks on emu-tflm (docs/benchmarks.md, "Link v2").

    python tools/bench_link_v2.py                       # Square 1,000 queries, unpaced, then paced
    python tools/bench_link_v2.py --samples 10 --budget 100 --pace-baudrate 115200

Builds an untrained resnet8 (width 0.25, 32x32x3, int8), starts one emu-tflm board, and runs each
attack over v2 and over v1 with the same seed: results and queries must be identical. Prints the
median (over samples) wire bytes per attack query, their ratio, and the wall times.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def build_model(path: Path) -> None:
    from edgeattack.compression.convert import to_tflite
    from edgeattack.tfutil import set_seed
    from edgeattack.zoo import build_model as zoo

    set_seed(0)
    model = zoo("resnet8", input_shape=(32, 32, 3), classes=10, width=0.25)
    calib = np.random.default_rng(0).random((16, 32, 32, 3), dtype=np.float32)
    path.write_bytes(to_tflite(model, "int8", calib))


def run(url, model, name, params, samples, budget, eps, protocol, pace):
    from edgeattack.attacks import make
    from edgeattack.attacks.targets import DeviceTarget
    from edgeattack.device import open_device

    x = np.random.default_rng(1).random((samples, 32, 32, 3), dtype=np.float32)
    with open_device("emu-tflm", model, port=url, link_protocol=protocol, pace_baudrate=pace) as dev:
        t = DeviceTarget(dev)
        y = t.predict(x)
        attack = make(name, budget=budget, **params)
        t0 = time.perf_counter()
        res = attack(t, x, y, epsilons=[eps], seed=0)
        wall = time.perf_counter() - t0
        r = attack.runs[-1]
        return {"wall_s": wall, "x_adv": res.x_adv, "queries": res.queries,
                "wire_per_query": r["wire_bytes"] / np.maximum(r["queries"], 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attacks", default="square,simba,hopskipjump")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--eps", type=float, default=0.05)
    ap.add_argument("--pace-baudrate", type=int, default=None)
    args = ap.parse_args()
    from edgeattack.device import start_board

    params = {"square": {"p_init": 0.05}, "simba": {}, "hopskipjump": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "resnet8_w025.tflite"
        build_model(model)
        board = start_board("emu-tflm", model)
        try:
            for name in args.attacks.split(","):
                v2 = run(board.url, model, name, params[name], args.samples, args.budget, args.eps, 2,
                         args.pace_baudrate)
                v1 = run(board.url, model, name, params[name], args.samples, args.budget, args.eps, 1,
                         args.pace_baudrate)
                same = bool(np.array_equal(v2["x_adv"], v1["x_adv"])
                            and np.array_equal(v2["queries"], v1["queries"]))
                print(json.dumps({
                    "attack": name, "samples": args.samples, "budget": args.budget,
                    "pace_baudrate": args.pace_baudrate, "identical": same,
                    "queries": int(v2["queries"].sum()),
                    "v2_wire_per_query_median": float(np.median(v2["wire_per_query"])),
                    "v1_wire_per_query_median": float(np.median(v1["wire_per_query"])),
                    "ratio_median": float(np.median(v2["wire_per_query"] / v1["wire_per_query"])),
                    "v2_wall_s": round(v2["wall_s"], 2), "v1_wall_s": round(v1["wall_s"], 2),
                    "wall_ratio": round(v2["wall_s"] / v1["wall_s"], 3)}), flush=True)
        finally:
            board.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
