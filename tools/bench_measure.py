#!/usr/bin/env python
"""Latency and energy of resnet8 on qemu-m4 through a session, beside MLPerf Tiny's published figures.

    python tools/bench_measure.py                  # 8 clean samples + 8 sign-noise samples, --repeat 3
    python tools/bench_measure.py -n 20 --repeat 5 --json measure.json

The model is the full-size resnet8 zoo model (32x32x3, width 1), untrained, int8 (instruction counts do
not depend on the weights' values). The session runs clean inputs and the same inputs with sign noise at
--eps (a stand-in for an attack: the kernels see other data), one INFER window of --repeat inferences per
record, after --warmup windows. Latency is qemu-m4's labelled estimate (instructions x model_cpi /
model_clock_hz, the STM32L4R5 at 120 MHz) and energy its estimate (that time x the profile's cited
power); both are printed next to MLPerf Tiny v0.5's reference figures for the NUCLEO-L4R5ZI (plain
TFLM: 704.2 ms, 29,207 uJ) with their ratio. The gap is the speed of this project's kernels compared
with TFLM's reference build on the real chip (and the CPI estimate's error), not a calibration target.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

PUBLISHED_TIME_S = 0.7042
PUBLISHED_ENERGY_J = 29_207.010e-6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=8, help="clean samples (and as many noisy ones)")
    ap.add_argument("--repeat", type=int, default=3, help="inferences per INFER window")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--eps", type=float, default=0.03)
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    from bench_fw_qemu import int8_zoo_model
    from edgeattack.firmware.build import build_firmware
    from edgeattack.profiles import get_profile
    from edgeattack.session import run_session

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = int8_zoo_model("resnet8", 1.0, tmp)
        build_firmware(model, get_profile("qemu-m4"))  # not part of the timing
        rng = np.random.default_rng(0)
        x = rng.random((args.n, 32, 32, 3), dtype=np.float32)
        y = rng.integers(0, 10, args.n)
        ids = np.arange(args.n, dtype=np.int64)
        np.savez(tmp / "clean.npz", x=x, y=y, ids=ids)
        sign = np.sign(rng.standard_normal(x.shape)).astype(np.float32)
        x_adv = np.clip(x + args.eps * sign, 0, 0.999)[None]  # inside the int8 input range
        meta = json.dumps({"attack": "signnoise", "norm": "linf", "seed": 0})
        np.savez(tmp / "adv.npz", x_adv=x_adv, eps=np.array([args.eps], np.float32), x=x, y=y, ids=ids,
                 success=np.zeros((1, args.n), bool), meta=np.array(meta))
        t0 = time.monotonic()
        s = run_session("qemu-m4", model, tmp / "clean.npz", adversarial=[tmp / "adv.npz"],
                        out=tmp / "run", warmup=args.warmup, repeat=args.repeat, progress=False)
        wall = time.monotonic() - t0

    clean = next(m for m in s["metrics"] if m["source"] == "clean")
    noisy = next(m for m in s["metrics"] if m["source"] != "clean")
    t, e = clean["latency_s"]["p50"], clean["energy_j"]
    out = {"board": "qemu-m4", "model": "resnet8 (32x32x3, width 1, int8)", "windows": clean["n"],
           "repeat": args.repeat, "time_source": clean["time_source"],
           "time_estimated": clean["time_estimated"], "latency_p50_s": t, "latency": clean["latency_s"],
           "energy_j": e, "energy_source": clean["energy_source"],
           "published_time_s": PUBLISHED_TIME_S, "published_energy_j": PUBLISHED_ENERGY_J,
           "time_ratio": t / PUBLISHED_TIME_S, "energy_ratio": e / PUBLISHED_ENERGY_J,
           "noise_eps": args.eps, "latency_difference_s": noisy["latency_difference_s"],
           "inferences_run": s["device"]["inferences_run"], "session_wall_s": wall}
    print(f"resnet8 on qemu-m4 ({out['windows']} windows x {args.repeat}): latency p50 {t * 1e3:.1f} ms "
          f"(estimated) vs published {PUBLISHED_TIME_S * 1e3:.1f} ms: x{out['time_ratio']:.2f}; energy "
          f"{e * 1e6:,.0f} uJ ({clean['energy_source']}) vs published {PUBLISHED_ENERGY_J * 1e6:,.0f} uJ: "
          f"x{out['energy_ratio']:.2f}")
    d = noisy["latency_difference_s"]
    print(f"sign noise eps {args.eps} vs clean: {d['difference_s'] * 1e6:+.2f} us "
          f"(95% CI {d['ci95'][0] * 1e6:+.2f} to {d['ci95'][1] * 1e6:+.2f} us); session {wall:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
