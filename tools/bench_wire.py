#!/usr/bin/env python3
"""Wire efficiency and pipelining of the edgeattack protocol, measured from real bytes.

    python tools/bench_wire.py                 # efficiency for a 3,072-byte input + pipelining
    python tools/bench_wire.py --no-pipeline   # efficiency only (under a second)

Efficiency: a real Client sends one 3,072-byte int8 input (32x32x3, MLPerf Tiny's image size) to a
real ProtocolServer over a socketpair; every byte the Client writes for that input (its LOAD and INFER
frames) is counted. payload / wire must be >= 0.97. For comparison the same 3,072 bytes as MLPerf
Tiny's `db` text commands (`db load 3072%`, then `db <hex>%` with 31 bytes each) are built and counted.

Pipelining: inputs per second with 1 input in flight and with several, over a link that delays every
byte by a fixed latency in each direction (link.faults delay line) to a device that takes a fixed time
per inference.
"""
from __future__ import annotations

import argparse
import socket
import sys
import threading
import time

import numpy as np

from edgeattack.link import messages as m
from edgeattack.link.client import Client
from edgeattack.link.faults import FaultInjector
from edgeattack.link.server import ProtocolServer
from edgeattack.link.transport import SocketPort

INPUT_BYTES = 3072
BAUD = 115200  # MLPerf Tiny's performance-mode rate; 10 bits per byte on a UART


class CountingPort:
    """Counts the bytes written through a port (what goes on the wire)."""

    def __init__(self, port):
        self._port = port
        self.written = 0
        self.name = getattr(port, "name", "counting")

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return self._port.write(data)

    def read_some(self, limit: int = 65536) -> bytes:
        return self._port.read_some(limit)

    def __getattr__(self, name):
        return getattr(self._port, name)

    @property
    def timeout(self):
        return self._port.timeout

    @timeout.setter
    def timeout(self, value):
        self._port.timeout = value


class SleepHandler:
    """A model stand-in with a fixed input size and a fixed compute time."""

    def __init__(self, nbytes: int = INPUT_BYTES, compute_s: float = 0.0):
        self.nbytes = nbytes
        self.compute_s = compute_s
        self.runs = 0

    def info(self):
        return {"board": "bench", "tick_hz": 1_000_000,
                "input": {"shape": [1, self.nbytes], "dtype": "int8"},
                "output": {"shape": [1, 10], "dtype": "int8"}}

    def input_spec(self):
        return m.DTYPE_INT8, self.nbytes

    def infer(self, data, repeat):
        if self.compute_s:
            time.sleep(self.compute_s * repeat)
        self.runs += repeat
        return bytes(10), m.DTYPE_INT8, int(self.compute_s * 1e6) * repeat

    def reset(self):
        self.runs = 0


class Link:
    """Client and ProtocolServer joined by a real socketpair; the server runs in a thread."""

    def __init__(self, handler, max_payload: int = 4096, rx_buffers: int = 4, reply_cache: int = 8,
                 delay_s: float = 0.0, max_inflight=None):
        host_sock, dev_sock = socket.socketpair()
        delay = FaultInjector(delay=delay_s) if delay_s else None
        dev_port = SocketPort(dev_sock, name="device", timeout=0.005)
        self.server = ProtocolServer(delay.wrap(dev_port) if delay else dev_port, handler,
                                     max_payload=max_payload, rx_buffers=rx_buffers,
                                     reply_cache=reply_cache)
        host_port = SocketPort(host_sock, name="socketpair")
        self.port = CountingPort(delay.wrap(host_port) if delay else host_port)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.server.serve_forever, args=(self._stop,))
        self._thread.start()
        opened = []

        def factory():
            if opened:
                raise OSError("a socketpair cannot be reopened")
            opened.append(1)
            return self.port

        self.client = Client(factory, timeout=2.0, total_timeout=20.0, max_inflight=max_inflight)

    def close(self):
        self.client.close()
        self._stop.set()
        self._thread.join(10)
        self.server.port.close()


def efficiency(max_payload: int = 4096) -> dict:
    """Wire bytes the Client writes for one 3,072-byte input (LOAD frames + INFER)."""
    link = Link(SleepHandler(), max_payload=max_payload)
    try:
        link.client.connect()
        x = np.random.default_rng(0).integers(-128, 128, INPUT_BYTES, dtype=np.int8)
        before = link.port.written
        result = link.client.infer(x)
        wire = link.port.written - before
        assert result.inferences == 1
    finally:
        link.close()
    chunk = max_payload - m.LOAD_HEADER.size
    return {"max_payload": max_payload, "payload_bytes": INPUT_BYTES, "wire_bytes": wire,
            "load_frames": -(-INPUT_BYTES // chunk), "ratio": INPUT_BYTES / wire,
            "uart_s": wire * 10 / BAUD}


def mlperf_db_stream(data: bytes) -> bytes:
    """MLPerf Tiny's text upload of `data`: `db load N%`, then `db <hex>%` per 31 bytes."""
    out = [f"db load {len(data)}%".encode()]
    for i in range(0, len(data), 31):
        out.append(b"db " + data[i:i + 31].hex().encode() + b"%")
    return b"".join(out)


def mlperf_efficiency() -> dict:
    data = bytes(np.random.default_rng(0).integers(0, 256, INPUT_BYTES, dtype=np.uint8))
    stream = mlperf_db_stream(data)
    with_infer = len(stream) + len(b"infer 1 0%")
    return {"payload_bytes": INPUT_BYTES, "wire_bytes": len(stream), "ratio": INPUT_BYTES / len(stream),
            "wire_bytes_with_infer": with_infer, "ratio_with_infer": INPUT_BYTES / with_infer,
            "uart_s": with_infer * 10 / BAUD}


def pipelining(n: int = 40, delay_s: float = 0.005, compute_s: float = 0.002,
               inflight=(1, 2, 4)) -> list[dict]:
    """Inputs per second over a link with `delay_s` latency each way, `compute_s` per inference."""
    rows = []
    xs = [np.full(INPUT_BYTES, i % 100, np.int8) for i in range(n)]
    for k in inflight:
        handler = SleepHandler(compute_s=compute_s)
        link = Link(handler, delay_s=delay_s)
        try:
            link.client.connect()
            t0 = time.perf_counter()
            results = list(link.client.infer_many(xs, inflight=k))
            elapsed = time.perf_counter() - t0
            assert len(results) == n and handler.runs == n
            rows.append({"inflight": k, "inputs": n, "seconds": elapsed, "per_s": n / elapsed,
                         "retries": link.client.stats.retries})
        finally:
            link.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-pipeline", action="store_true", help="skip the pipelining measurement")
    ap.add_argument("--delay", type=float, default=0.005, help="link latency each way (s)")
    ap.add_argument("--compute", type=float, default=0.002, help="device time per inference (s)")
    args = ap.parse_args()
    ours = efficiency()
    print(f"edgeattack v1, 3,072-byte input, max_payload 4096: {ours['wire_bytes']} wire bytes "
          f"({ours['load_frames']} LOAD + INFER), payload/wire = {ours['ratio']:.4f}, "
          f"{ours['uart_s']:.3f} s at {BAUD} baud")
    small = efficiency(256)
    print(f"edgeattack v1, same input, max_payload 256 ({small['load_frames']} LOADs): "
          f"{small['wire_bytes']} wire bytes, payload/wire = {small['ratio']:.4f}")
    db = mlperf_efficiency()
    print(f"MLPerf Tiny db hex commands (31 bytes each): {db['wire_bytes']} wire bytes, "
          f"payload/wire = {db['ratio']:.4f}; with `infer 1 0%`: {db['wire_bytes_with_infer']} "
          f"bytes, {db['ratio_with_infer']:.4f}, {db['uart_s']:.3f} s at {BAUD} baud")
    ok = ours["ratio"] >= 0.97
    if not args.no_pipeline:
        print(f"pipelining: {args.delay * 1e3:g} ms link latency each way, "
              f"{args.compute * 1e3:g} ms per inference, 3,072-byte inputs")
        for row in pipelining(delay_s=args.delay, compute_s=args.compute):
            print(f"  inflight {row['inflight']}: {row['per_s']:.1f} inputs/s "
                  f"({row['inputs']} in {row['seconds']:.2f} s, {row['retries']} retries)")
    if not ok:
        print(f"FAIL: payload/wire {ours['ratio']:.4f} < 0.97", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
