"""The MLPerf-mode firmware's DUT engine (firmware_models/mlperf) and its score formatting, compiled for
the host with ASan/UBSan (tests/fw_mlperf_host.c): its replies are exactly the transcript in
tests/vectors/mlperf_dut.json ("firmware"), the host client drives it over a real pty (including the
one-line errors for a db buffer smaller than the input and a device expecting another input size),
and scores print as C's printf prints them. test_mlperf_qemu.py runs the same engine on qemu-m4."""
from __future__ import annotations

import json
import os
import random
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from edgeattack import children
from edgeattack.errors import DeviceError
from edgeattack.link.mlperf import DutExpectation, MlperfClient
from edgeattack.link.transport import open_pty
from edgeattack.resources import firmware_dir

HERE = Path(__file__).parent
VECTORS = json.loads((HERE / "vectors" / "mlperf_dut.json").read_text())["firmware"]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    require_tool("gcc")
    out = tmp_path_factory.mktemp("fwmlperf") / "mlperf_host"
    mlperf, util = firmware_dir() / "mlperf", firmware_dir() / "util"
    cmd = ["gcc", "-std=c11", "-D_DEFAULT_SOURCE", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all", f"-I{mlperf}", f"-I{util}",
           "-o", str(out), str(HERE / "fw_mlperf_host.c"), str(mlperf / "ea_dut.c"), str(util / "ea_strbuf.c")]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


def test_engine_answers_the_transcript(harness):
    model = VECTORS["model"]
    stream = "".join(e["tx"] for e in VECTORS["exchanges"]).encode()
    res = children.run([str(harness), "dut", model["mlperf_model"], str(model["input_offset"])],
                       input=stream, timeout=30)
    assert res.returncode == 0, res.stderr
    got = res.stdout if isinstance(res.stdout, str) else res.stdout.decode()
    replies = got.split("m-ready\r\n")
    assert len(replies) == len(VECTORS["exchanges"]) + 1 and replies[-1] == ""
    for e, reply in zip(VECTORS["exchanges"], replies):
        assert reply + "m-ready\r\n" == e["rx"], f"reply to {e['tx'][:40]!r}"


def _drive(harness, input_bytes, fn):
    """Run fn(client) against the engine on a pty (the engine's model: ic01, 8 input bytes)."""
    master, path, slave = open_pty(timeout=0.02)
    proc = children.spawn([str(harness), "dut", "ic01", "128", path], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    expect = DutExpectation(model="ic01", input_bytes=input_bytes, outputs=3, input_offset=128,
                            sha256="5f" * 32)
    ports = iter([master])

    def factory():
        return next(ports)

    factory.url = path
    client = MlperfClient(factory, expect, timeout=5.0, total_timeout=10.0, command_timeout=3.0)
    try:
        return fn(client)
    finally:
        client.close()
        os.close(slave)
        children.stop(proc)
        err = proc.stderr.read().decode()
        proc.stderr.close()
        assert "ERROR" not in err and "runtime error" not in err, err  # ASan / UBSan


def test_client_drives_the_engine(harness):
    q = np.array([-128, -1, 0, 1, 2, 127, 5, -5], dtype=np.int8)

    def session(client):
        info = client.connect()
        assert info["model_sha256"] == "5f" * 32 and info["mlperf_model"] == "ic01"
        r = client.infer(q)
        return r, client

    r, client = _drive(harness, 8, session)
    # the tensor holds q: the stand-in model's scores are (q + 128) / 256, printed %0.3f
    np.testing.assert_array_equal(r.output_raw, np.array([0.0, 0.496, 0.5], np.float32))
    assert r.ticks == 2500 and r.inferences == 1 and client.loads_verified == 1 and client.stats.retries == 0


@pytest.mark.parametrize("input_bytes, message", [
    (12, "its db buffer holds 8 bytes, the model's input needs 12"),
    (4, "expects 8 input bytes, the model given takes 4"),
])
def test_engine_errors_are_one_line(harness, input_bytes, message):
    def session(client):
        client.connect()
        with pytest.raises(DeviceError) as err:
            client.infer(np.zeros(input_bytes, np.int8))
        return str(err.value)

    text = _drive(harness, input_bytes, session)
    assert message in text and "\n" not in text


def test_scores_print_as_c_printf(harness, tmp_path):
    rng = random.Random(1)
    patterns = [rng.getrandbits(32) for _ in range(20000)]
    specials = [0.0625, 0.1875, -0.0, 0.0005, 0.0015, 0.9995, 1e30, 3.4e38, 1e-45, float("inf"), float("nan")]
    patterns += [struct.unpack("<I", struct.pack("<f", v))[0] for v in specials]
    patterns += [struct.unpack("<I", struct.pack("<f", k / 256))[0] for k in range(256)]
    text = "".join(f"{p:08x}\n" for p in patterns)
    for decimals in (3, 0, 6):
        res = children.run([str(harness), "fmt", str(decimals)], input=text, timeout=60, text=True)
        assert res.returncode == 0 and "ok" in res.stdout, res.stdout + res.stderr
