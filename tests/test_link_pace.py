"""True-to-baud links: a paced port costs 10 bit times per byte in both directions (8N1), the
option reaches open_device and the CLI, and a baud rate of 0 is one usage-error line."""
from __future__ import annotations

import time

import pytest

from conftest import run_cli
from edgeattack.errors import UsageError
from edgeattack.link.client import Client
from edgeattack.link.pace import PacedPort, check_pace_baudrate
from edgeattack.link.transport import open_port
from test_link_client_server import SumHandler, device_factory, inputs  # noqa: F401 - fixture


def _run(url, baud, xs):
    def factory():
        port = open_port(url)
        return PacedPort(port, baud) if baud else port

    with Client(factory, timeout=2.0, total_timeout=10, protocol=1) as client:
        client.connect()
        s = client.stats
        sent0, received0 = s.wire_bytes_sent, s.wire_bytes_received
        t0 = time.monotonic()
        for x in xs:
            client.infer(x)
        elapsed = time.monotonic() - t0
        return elapsed, s.wire_bytes_sent - sent0, s.wire_bytes_received - received0


def test_paced_link_costs_ten_bit_times_per_byte_both_ways(device_factory):
    dev = device_factory(SumHandler(nbytes=200))
    xs = inputs(12, nbytes=200)
    fast, _, _ = _run(dev.url, None, xs)
    baud = 38400
    slow, sent, received = _run(dev.url, baud, xs)
    # One query at a time: its request and its reply cross the line one after the other.
    line_s = (sent + received) * 10 / baud
    print(f"unpaced {fast:.3f} s, paced {slow:.3f} s, line time of the bytes {line_s:.3f} s")
    assert 0.97 * line_s <= slow <= 1.25 * line_s + 0.1
    assert fast < 0.25 * slow


def test_pace_baudrate_zero_is_one_usage_line(tmp_path):
    with pytest.raises(UsageError, match=r"^--pace-baudrate 0: give a positive baud rate"):
        check_pace_baudrate(0)
    assert check_pace_baudrate(None) is None and check_pace_baudrate(115200) == 115200
    proc = run_cli("session", "--board", "emu-tflm", "--model", str(tmp_path / "m.tflite"),
                   "--dataset", "digits", "-o", str(tmp_path / "run"), "--pace-baudrate", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "edgeattack: error: --pace-baudrate 0: give a positive baud rate (e.g. 115200), or leave it "
        "out for an unpaced link"]


def test_pace_applies_only_to_emulated_and_qemu_boards(tmp_path):
    from edgeattack.device.api import open_device

    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    with pytest.raises(UsageError, match="applies to boards this host starts .*; pi4 is a linux board"):
        with open_device("pi4", model, port="socket://127.0.0.1:9", pace_baudrate=115200):
            pass
