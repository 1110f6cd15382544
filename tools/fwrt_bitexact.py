#!/usr/bin/env python3
"""Bit-exactness of the firmware's C runtime against TFLM on random int8 models (the figure and its test).

    python tools/fwrt_bitexact.py [--count 330] [--seed 7] [--mutants 5] [--jobs 2]

Generates (or reuses from ~/.cache/edgeattack/random_models/<key>, key = generator source, TensorFlow and
tflite-micro versions, parameters) the random models of tools/gen_random_models.py with their TFLM outputs,
runs every model on the host build of the C runtime (ASan + UBSan) with the same inputs, and prints the
number of models, inputs and byte-exact matches. Exit status 1 if any output differs or any run fails.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

GENERATOR = Path(__file__).resolve().parent / "gen_random_models.py"


def _versions() -> str:
    out = []
    for dist in ("tensorflow", "tf-keras", "tflite-micro", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out.append(f"{dist}={metadata.version(dist)}")
    return ",".join(out)


def ensure_models(count: int, seed: int, mutants: int, jobs: int, timeout: float = 3600, family: str = "base") -> Path:
    """Directory of generated models with TFLM outputs, generating them on first use (atomically).
    family: the generator's model mix (base: the first twelve operators; ops: the newer ones)."""
    from edgeattack.children import run
    from edgeattack.firmware.hostrt import cache_root

    key = hashlib.sha256(GENERATOR.read_bytes() + f"|{_versions()}|{count}|{seed}|{mutants}|{family}".encode()).hexdigest()[:16]
    final = cache_root() / "random_models" / key
    if (final / "manifest.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=final.parent))
    try:
        res = run([sys.executable, str(GENERATOR), "--count", str(count), "--seed", str(seed),
                   "--mutants", str(mutants), "--jobs", str(jobs), "--family", family, "--out", str(tmp)], timeout=timeout, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"model generation failed (exit {res.returncode}, None = timed out):\n"
                               f"{res.stderr[-3000:]}")
        with contextlib.suppress(OSError):
            os.replace(tmp, final)
        if not (final / "manifest.json").is_file():
            raise RuntimeError(f"model generation left no manifest in {final}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def compare(models_dir: Path, kernels: str = "ref") -> dict:
    """Runs every model on the C runtime built with kernel set `kernels` (hostrt.KERNEL_SETS); returns
    counts and the list of mismatching/failing models."""
    from edgeattack.errors import EdgeAttackError
    from edgeattack.firmware.hostrt import run_host

    manifest = json.loads((models_dir / "manifest.json").read_text())
    res = dict(models=0, inputs=0, matching_models=0, matching_outputs=0, failures=[])
    for entry in manifest["models"]:
        name = entry["name"]
        data = np.load(models_dir / f"{name}.npz")
        x, expected = data["inputs"], data["expected"]
        res["models"] += 1
        res["inputs"] += len(x)
        try:
            got = run_host((models_dir / f"{name}.tflite").read_bytes(), x, kernels)
        except EdgeAttackError as e:
            res["failures"].append(dict(name=name, error=str(e)[:500], layers=entry["layers"]))
            continue
        same = [g.tobytes() == e.tobytes() for g, e in zip(got.reshape(len(x), -1), expected.reshape(len(x), -1))]
        res["matching_outputs"] += sum(same)
        if all(same) and got.dtype == expected.dtype:
            res["matching_models"] += 1
        else:
            diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
            res["failures"].append(dict(name=name, max_abs_diff=float(diff.max()), layers=entry["layers"],
                                        mutations=entry.get("mutations")))
    # Models TFLM refused to prepare must be refused by the C runtime as well.
    res["tflm_rejected"], res["both_rejected"] = 0, 0
    for path in sorted((models_dir / "rejected").glob("*.tflite")):
        res["tflm_rejected"] += 1
        try:
            run_host(path.read_bytes(), np.zeros(0, np.int8), kernels)
        except EdgeAttackError as e:
            if str(e).startswith("C runtime: "):
                res["both_rejected"] += 1
                continue
        except Exception:
            pass
        res["failures"].append(dict(name=path.name, error="TFLM rejects this model but the C runtime loads it"))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=330)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--mutants", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--kernels", default="ref", help="kernel set compiled into the host runtime: ref, dsp or mve")
    ap.add_argument("--family", choices=("base", "ops"), default="base")
    args = ap.parse_args(argv)
    t0 = time.time()
    d = ensure_models(args.count, args.seed, args.mutants, args.jobs, family=args.family)
    t1 = time.time()
    res = compare(d, args.kernels)
    t2 = time.time()
    print(f"kernels {args.kernels}: models: {res['models']}, inputs: {res['inputs']}, byte-exact models: {res['matching_models']} "
          f"({100.0 * res['matching_models'] / max(1, res['models']):.1f}%), byte-exact outputs: "
          f"{res['matching_outputs']}/{res['inputs']}; rejected by TFLM: {res['tflm_rejected']}, also by the C runtime: "
          f"{res['both_rejected']}; generation {t1 - t0:.0f} s, comparison {t2 - t1:.0f} s")
    for f in res["failures"][:20]:
        print(json.dumps(f)[:600])
    return 0 if not res["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
