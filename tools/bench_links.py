#!/usr/bin/env python
"""Link figures for the deploy paths: round trip per inference (streamed one at a time, and as single
Client.infer() queries), pipelined throughput, over
  - pty:        an emulated board (emu-litert) through its pseudo-terminal
  - rfc2217:    the same pty exported by ser2net (telnet RFC2217 on 127.0.0.1)
  - tcp:        an agent deployed with flash_pi (sshd on 127.0.0.1 plays the Pi), plain TCP
  - ssh-tunnel: the same agent through the ssh:// URL (its port's own tunnel; connect_s includes
                opening the tunnel)
plus the time to open an ssh:// port (tunnel up, socket connected) and the time of one whole flash.

    python tools/bench_links.py [--model M.tflite] [-n 200] [--json out.json]

Needs /usr/sbin/sshd, ssh, ser2net. Everything runs on loopback, so the figures are the links'
software overhead on this machine, not a real Pi's or a real UART's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the loopback sshd launcher lives with the tests


def tiny_model(path: Path) -> Path:
    """The tests' tiny int8 CNN (8x8x1, 10 classes), trained for 3 epochs on random prototypes."""
    import numpy as np

    import edgeattack.tfutil as tu

    keras = tu.keras()
    tu.set_seed(0)
    rng = np.random.default_rng(0)
    protos = rng.random((10, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 10, 500)
    x = np.clip(protos[y] + 0.15 * rng.standard_normal((500, 8, 8, 1)), 0, 1).astype(np.float32)
    model = keras.Sequential([keras.layers.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                              keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(10),
                              keras.layers.Softmax()])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    from edgeattack.compression.convert import to_tflite

    converted = to_tflite(model, "int8", x[:100])  # ptq-int8's own conversion
    from edgeattack.tflite.align import align_16

    path.write_bytes(align_16(converted))
    return path


def measure(url: str, n: int) -> dict:
    import numpy as np

    from edgeattack.link.client import Client
    from edgeattack.link.transport import open_port

    with Client(lambda: open_port(url), timeout=2.0, total_timeout=30.0) as client:
        t0 = time.perf_counter()
        info = client.connect()
        connect_s = time.perf_counter() - t0
        shape = info["input"]["shape"]
        rng = np.random.default_rng(0)
        xs = [rng.integers(-128, 128, shape, dtype=np.int8) for _ in range(n)]
        list(client.infer_many(xs[:10], inflight=1))  # warm-up
        # one input at a time inside one infer_many: each input's own round trip (rtt_s: first
        # byte sent to INFER reply), no INFO in between
        t = time.perf_counter()
        results = list(client.infer_many(xs, inflight=1))
        sequential = n / (time.perf_counter() - t)
        rtts = [r.rtt_s for r in results]
        ticks = [r.ticks for r in results]
        t = time.perf_counter()
        for _ in client.infer_many(xs, inflight=4):
            pass
        pipelined = n / (time.perf_counter() - t)
        # one query per call, as an adaptive black-box attack asks (Client.infer)
        singles = []
        for x in xs[:50]:
            t = time.perf_counter()
            client.infer(x)
            singles.append(time.perf_counter() - t)
    rtts.sort()
    return {"connect_s": round(connect_s, 4),
            "rtt_ms_p50": round(1e3 * statistics.median(rtts), 3),
            "rtt_ms_p90": round(1e3 * rtts[int(0.9 * (len(rtts) - 1))], 3),
            "device_ms_p50": round(statistics.median(ticks) / info["tick_hz"] * 1e3, 4),
            "sequential_per_s": round(sequential, 1),
            "single_query_ms_p50": round(1e3 * statistics.median(singles), 3),
            "pipelined_per_s": round(pipelined, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path)
    ap.add_argument("-n", type=int, default=200, help="inferences per link (default 200)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    from test_deploy_pi import loopback_sshd

    from edgeattack.deploy import pi, ser2net
    from edgeattack.device.boards.emulator import EmulatedBoard
    from edgeattack.link.transport import close_port, free_local_port, open_port
    from edgeattack.profiles import get_profile

    figures: dict = {"n": args.n}
    with tempfile.TemporaryDirectory(prefix="ea-bench-links-") as tmp:
        tmp = Path(tmp)
        model = args.model or tiny_model(tmp / "tiny.tflite")
        figures["model_bytes"] = model.stat().st_size
        with EmulatedBoard(get_profile("emu-litert"), model) as board:
            figures["pty"] = measure(board.url, args.n)
            with ser2net.export_serial(board.url) as url:
                figures["rfc2217"] = measure(url, args.n)
        with loopback_sshd(tmp / "sshd") as server:
            target = server.target()
            port = free_local_port()
            dep = pi.PiDeploy(target, model, remote_dir=str(tmp / "pi-home"), python=sys.executable,
                              agent_port=f"tcp://127.0.0.1:{port}")
            t = time.perf_counter()
            result = pi.flash_pi(dep, echo=lambda s: None)
            figures["flash_s"] = round(time.perf_counter() - t, 2)
            try:
                figures["tcp"] = measure(f"socket://127.0.0.1:{port}", args.n)
                opens = []
                for _ in range(5):
                    t = time.perf_counter()
                    port = open_port(result.port_url)  # the ssh:// port opens its own tunnel
                    opens.append(time.perf_counter() - t)
                    close_port(port)
                figures["tunnel_open_s_median"] = round(statistics.median(opens), 3)
                figures["ssh-tunnel"] = measure(result.port_url, args.n)
            finally:
                pi.stop_pi(target, dep.remote_dir)

    print(f"{'link':<11} {'connect s':>9} {'rtt p50 ms':>10} {'rtt p90 ms':>10} {'device ms':>9} "
          f"{'seq /s':>8} {'pipelined /s':>12} {'infer() p50 ms':>14}")
    for name in ("pty", "rfc2217", "tcp", "ssh-tunnel"):
        f = figures[name]
        print(f"{name:<11} {f['connect_s']:>9} {f['rtt_ms_p50']:>10} {f['rtt_ms_p90']:>10} {f['device_ms_p50']:>9} "
              f"{f['sequential_per_s']:>8} {f['pipelined_per_s']:>12} {f['single_query_ms_p50']:>14}")
    print(f"flash (sshd on loopback): {figures['flash_s']} s; opening an SSH tunnel: "
          f"{figures['tunnel_open_s_median']} s (median of 5)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    sys.exit(main())
