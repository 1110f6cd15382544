"""The MLPerf Tiny DUT client against the transcripts in tests/vectors/mlperf_dut.json.

A scripted device on a real pty plays each transcript: it checks that the host writes exactly each
`tx` command and answers with exactly its `rx`. The error forms (a db buffer smaller than the input,
the "Input db has ..." complaint, a damaged readback) are ones reference firmware prints; edgeattack's
own MLPerf-mode firmware is checked against real QEMU in test_mlperf_qemu.py.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from edgeattack.errors import DeviceError
from edgeattack.link.mlperf import (DutExpectation, MlperfClient, encode_float_input, encode_input,
                                    format_score, model_name_for, parse_scores, takes_float_input)
from edgeattack.link.transport import open_port, open_pty

VECTORS = json.loads((Path(__file__).parent / "vectors" / "mlperf_dut.json").read_text())


class ScriptedDut:
    """Plays one transcript on the device end of a pty, in a thread."""

    def __init__(self, exchanges):
        self.exchanges = list(exchanges)
        self.master, self.path, self.slave_fd = open_pty(timeout=0.02)
        self.error: str | None = None
        self.done = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buf = b""
        while not self._stop.is_set():
            try:
                buf += self.master.read_some(4096)
            except Exception:  # noqa: BLE001 - host side closed
                return
            while b"%" in buf:
                cmd, buf = buf.split(b"%", 1)
                cmd = cmd.decode("latin-1") + "%"
                if self.done >= len(self.exchanges):
                    self.error = f"unexpected extra command {cmd!r}"
                    return
                want = self.exchanges[self.done]
                if cmd != want["tx"]:
                    self.error = f"exchange {self.done}: host sent {cmd!r}, transcript says {want['tx']!r}"
                    return
                self.done += 1  # before replying: the host may finish on this reply
                self.master.write(want["rx"].encode("latin-1"))

    def close(self):
        self._stop.set()
        self.thread.join(timeout=2)
        self.master.close()
        import os

        os.close(self.slave_fd)


def _client(dut, case):
    model = {**VECTORS["model"], **case.get("model", {})}
    expect = DutExpectation(model=model["mlperf_model"], input_bytes=case.get("input_bytes", model["input_bytes"]),
                            outputs=model["outputs"], input_offset=model["input_offset"],
                            sha256=case.get("sha256"),
                            input_float=tuple(model["input_float"]) if model.get("input_float") else None)

    def factory():
        return open_port(dut.path)

    factory.url = dut.path
    # generous timers: a loaded machine must not turn a slow reply into a retry the transcript lacks
    return MlperfClient(factory, expect, timeout=5.0, total_timeout=10.0, command_timeout=3.0)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_transcript(case):
    dut = ScriptedDut(case["exchanges"])
    client = _client(dut, case)
    expect = case["expect"]
    q = np.array(case.get("input_q", VECTORS["model"]["input_q"]), dtype=np.int8)
    try:
        if "error" in expect:
            with pytest.raises(DeviceError) as err:
                client.connect()
                client.infer(q)
            assert expect["error"] in str(err.value)
            assert "\n" not in str(err.value)
        else:
            info = client.connect()
            for key in ("mlperf_model", "model_sha256"):
                if key in expect:
                    assert info[key] == expect[key]
            if not expect.get("connect_only"):
                r = client.infer(q)
                assert r.output_raw.dtype == np.float32
                np.testing.assert_array_equal(r.output_raw, np.array(expect["scores"], dtype=np.float32))
                if "ticks" in expect:
                    assert r.ticks == expect["ticks"]
                if "inferences" in expect:
                    assert r.inferences == expect["inferences"]
                for key in ("load_mismatches", "retries"):
                    if key in expect:
                        value = client.load_mismatches if key == "load_mismatches" else client.stats.retries
                        assert value == expect[key]
                assert client.loads_verified == 1
        assert dut.error is None, dut.error
        assert dut.done == len(case["exchanges"]), f"transcript stopped at {dut.done}: {dut.error}"
    finally:
        client.close()
        dut.close()


def test_sha_mismatch_is_one_line():
    case = next(c for c in VECTORS["cases"] if c["name"] == "sha256_in_name")
    dut = ScriptedDut(case["exchanges"])
    client = _client(dut, {**case, "sha256": "0" * 64})
    try:
        with pytest.raises(DeviceError, match="reports model sha256 5f5f.* in name%, but the model given"):
            client.connect()
    finally:
        client.close()
        dut.close()


def test_float_input_quantizes_back_to_q():
    """ad01's reference firmware quantizes the float32 values it loads (round(x / scale) + zero
    point, clamped): the values sent must come back as exactly q for every int8 q."""
    q = np.arange(-128, 128, dtype=np.int8)
    for scale, zp in ((0.5, 0), (0.0039215689, -128), (0.1234567, 7), (3.3e-05, -3), (17.0, 100)):
        x = np.frombuffer(encode_float_input(q, scale, zp), dtype="<f4")
        back = np.clip(np.round(x / np.float32(scale)) + zp, -128, 127).astype(np.int8)
        np.testing.assert_array_equal(back, q)
    assert takes_float_input("ad01") and not takes_float_input("ic01")


def test_ad01_float_input_expected_and_own_firmware_refused(tiny_tflite, tmp_path):
    """A device named ad01 gets float32 input (4 bytes a value, the model's input scale); edgeattack's
    MLPerf-mode firmware loads int8 bytes only, so building it as ad01 is one line naming the way
    out, before anything is built."""
    from edgeattack.device.mlperf import expectation
    from edgeattack.errors import UsageError
    from edgeattack.firmware.build import build_firmware
    from edgeattack.profiles import get_profile

    base = get_profile("qemu-m4")
    text = Path(base.path).read_text() + "mlperf: {model: ad01}\n"
    (tmp_path / "ad.yaml").write_text(text.replace("name: qemu-m4", "name: ad"))
    ad = get_profile(str(tmp_path / "ad.yaml"))
    expect, _ = expectation(ad, tiny_tflite, None)
    assert expect.model == "ad01" and expect.input_bytes == 4 * 64 and expect.input_float is not None
    with pytest.raises(UsageError, match="ad01 firmware loads float32 inputs.*--protocol edgeattack"):
        build_firmware(tiny_tflite, ad, tmp_path / "cache", protocol="mlperf")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.elf"))


def test_input_bytes_follow_the_reference_conventions():
    q = np.array([-128, -1, 0, 127], dtype=np.int8)
    assert encode_input(q, 128) == bytes([0, 127, 128, 255])  # ic01 / vww01: uint8 = q + 128
    assert encode_input(q, 0) == q.tobytes()                  # kws01: the int8 bytes themselves
    assert model_name_for((32, 32, 3), 10) == "ic01"
    assert model_name_for((49, 10, 1), 12) == "kws01"
    assert model_name_for((96, 96, 3), 2) == "vww01"
    assert model_name_for((8, 8, 1), 10) == "ea-custom"


def test_scores_round_like_c_printf():
    # exact binary ties round to even, as glibc's and newlib's %0.3f do
    assert format_score(0.0625) == "0.062"
    assert format_score(0.1875) == "0.188"
    assert format_score(np.float32(1 / 256) * 3) == "0.012"
    assert format_score(-0.0001) == "-0.000"
    assert parse_scores("0.062, 0.938,-0.000") is not None
    assert parse_scores("0.062,0.9x8") is None


def test_anomaly_detection_is_recorded_not_attacked():
    """An ad01 device's one score goes into a Result (sessions record it); attacks refuse it."""
    from edgeattack.attacks.targets import DeviceTarget
    from edgeattack.device.mlperf import MlperfDevice
    from edgeattack.errors import UsageError
    from edgeattack.profiles import get_profile

    case = next(c for c in VECTORS["cases"] if c["name"] == "anomaly_detection")
    dut = ScriptedDut(case["exchanges"])
    client = _client(dut, case)
    try:
        got = client.connect()
        info = {**got, "input": {"shape": [1, 8], "dtype": "int8", "scale": 0.5, "zero_point": 0},
                "output": {"shape": [1], "dtype": "float32", "scale": None, "zero_point": None},
                "tick_hz": 1_000_000}
        dev = MlperfDevice(client, get_profile("nucleo-l4r5zi"), info)
        r = dev.infer(np.arange(8, dtype=np.int8))
        assert r.output.tolist() == [12.375] and r.device_time_s == pytest.approx(0.004)
        with pytest.raises(UsageError, match="ad01 .anomaly detection.: it answers one anomaly score"):
            DeviceTarget(dev)
    finally:
        client.close()
        dut.close()


def test_profile_name_check_and_profile_overrides(tiny_tflite, tmp_path):
    """Firmware that reports no SHA-256 is confirmed by its profile% name only (model_check
    "profile-name", records carry the model file's hash); a profile's `mlperf` section overrides the
    benchmark name and the input offset; a bad one is one line naming the field."""
    from edgeattack.device.mlperf import connect_mlperf, expectation
    from edgeattack.errors import UsageError
    from edgeattack.fileid import sha256_file
    from edgeattack.profiles import get_profile

    R = "\r\n"
    name = "m-name-dut-[unspecified]" + R + "m-ready" + R
    dut = ScriptedDut([{"tx": "name%", "rx": name}, {"tx": "name%", "rx": name},
                       {"tx": "profile%", "rx": "m-profile-[x]" + R + "m-model-[ea-custom]" + R + "m-ready" + R}])

    def factory():
        return open_port(dut.path)

    factory.url = dut.path
    sha = sha256_file(tiny_tflite)
    profile = get_profile("nucleo-l4r5zi")
    dev = connect_mlperf(factory, profile, tiny_tflite, None, timeout=5.0, total_timeout=10.0,
                         expected_sha256=sha, aligned_sha256=None)
    try:
        assert dev.model_check == "profile-name" and dev.model_sha256 == sha
        assert dev.client.expect.input_bytes == 64 and dev.client.expect.outputs == 10
        assert dev.client.expect.input_offset == 0 and dev.mlperf_model == "ea-custom"
        assert dev.output_shape == (1, 10) and dev.tick_hz == 1e6
    finally:
        dev.close()
        dut.close()

    text = (Path(profile.path).read_text() + "protocol: mlperf\nmlperf: {model: ic01, input_offset: 128}\n")
    (tmp_path / "mine.yaml").write_text(text.replace("name: nucleo-l4r5zi", "name: mine"))
    mine = get_profile(str(tmp_path / "mine.yaml"))
    expect, _ = expectation(mine, tiny_tflite, None)
    assert (mine.protocol, expect.model, expect.input_offset) == ("mlperf", "ic01", 128)
    (tmp_path / "bad.yaml").write_text(text.replace("input_offset: 128", "input_offset: 300"))
    with pytest.raises(UsageError, match="field 'mlperf' must be"):
        get_profile(str(tmp_path / "bad.yaml"))
