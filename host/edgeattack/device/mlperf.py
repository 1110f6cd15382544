"""A Device over MLPerf Tiny's DUT protocol (`--protocol mlperf`; docs/mlperf.md).

    with open_device("nucleo-l4r5zi", "ic.tflite", port="/dev/ttyACM0", protocol="mlperf") as dev:
        r = dev.infer(x)     # the same Result as over edgeattack's protocol, scores as printed

The DUT protocol does not describe the model, so the .tflite given says what the device runs: its
input shape, dtype and quantization (the shared quantizer makes q; the link sends q + offset), its
number of scores, and the benchmark name `profile%` must report. What the device can prove about its
model differs by firmware: edgeattack's MLPerf-mode firmware reports the model's SHA-256 in its
`name%` reply (model_check "sha256"); other firmware only names the benchmark (model_check
"profile-name"), which session.json records.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import DeviceError, UsageError
from ..link.mlperf import (MODELS, DutExpectation, MlperfClient, dut_settings, name_sha256,
                           takes_float_input)
from .api import Device

PROTOCOL_CHOICES = ("edgeattack", "mlperf")


class MlperfDevice(Device):
    """Device over an MlperfClient. `model_check`: "sha256" when the firmware reported the model's
    SHA-256 (and it matched), else "profile-name". `attackable`: False for a model whose reply is
    one anomaly score (ad01): sessions record it, attacks refuse it (`why_not_attackable`)."""

    protocol = "mlperf"

    def __init__(self, client: MlperfClient, profile, info: dict, driver=None, faults=None):
        super().__init__(client, profile, info, faults=faults, driver=driver)
        self.mlperf_model = info.get("mlperf_model")
        self.model_check = info.get("model_check", "profile-name")
        one_score = MODELS.get(self.mlperf_model, {}).get("scores") == "one"
        self.attackable = not one_score
        self.why_not_attackable = None if not one_score else (
            f"the device runs {self.mlperf_model} ({MODELS[self.mlperf_model]['task']}): it answers one "
            f"anomaly score, not class scores, so there is nothing to misclassify (sessions record it)")

    @property
    def link_checks(self) -> dict:
        """What made the text link trustworthy (session.json `link`): loads read back equal to the
        bytes sent, loads redone after a differing readback, resynchronizations."""
        c = self.client
        return {"loads_verified": c.loads_verified, "load_mismatches": c.load_mismatches,
                "resyncs": c.resyncs}

    def info(self) -> dict:
        # No wire traffic: the DUT protocol has nothing fresh to report but the host's counts.
        self._info = {**self._info, **self.client.info()}
        return dict(self._info)


def expectation(profile, model_path, model_sha256: str | None) -> tuple[DutExpectation, dict]:
    """What the device must be running, from the .tflite and the profile's optional `mlperf`
    section ({model: NAME, input_offset: N}); and the INFO-like description Device needs."""
    from ..tflite.reader import read_model

    if model_path is None:
        raise UsageError("--protocol mlperf needs the model (.tflite) the device runs: the MLPerf "
                         "Tiny protocol does not describe the model's input")
    info = read_model(str(model_path))
    if not info.input_tensors or not info.output_tensors:
        raise UsageError(f"{model_path}: the model has no input or no output tensor")
    inp, out = info.input_tensors[0], info.output_tensors[0]
    if inp.dtype != "int8":
        raise UsageError(f"{model_path}: --protocol mlperf carries int8 inputs, this model takes "
                         f"{inp.dtype} (give the int8 .tflite)")
    sample = inp.shape[1:] if len(inp.shape) > 1 and inp.shape[0] == 1 else inp.shape
    outputs = int(np.prod(out.shape)) if out.shape else 1
    name, offset = dut_settings(sample, outputs, getattr(profile, "mlperf", None))
    scores = 1 if MODELS.get(name, {}).get("scores") == "one" else outputs
    quant = inp.quant
    input_float = None
    if takes_float_input(name):
        if quant is None:
            raise UsageError(f"{model_path}: {name} firmware loads float32 inputs and quantizes them "
                             f"with the model's input scale, which this model does not give")
        input_float = (float(quant.scale[0]), int(quant.zero_point[0]))
    nbytes = int(inp.nbytes) * (4 if input_float else 1)
    expect = DutExpectation(model=name, input_bytes=nbytes, outputs=scores, input_offset=offset,
                            sha256=model_sha256, input_float=input_float)
    described = {
        "input": {"shape": list(inp.shape), "dtype": "int8",
                  "scale": None if quant is None else float(quant.scale[0]),
                  "zero_point": None if quant is None else int(quant.zero_point[0])},
        # scores arrive as printed decimals (%0.3f of the dequantized output): float32
        "output": {"shape": [scores] if scores != outputs else list(out.shape), "dtype": "float32",
                   "scale": None, "zero_point": None},
        "tick_hz": 1_000_000, "input_offset": offset,
    }
    return expect, described


def connect_mlperf(factory, profile, model_path, driver, *, timeout: float, total_timeout: float,
                   expected_sha256: str | None, aligned_sha256: str | None, faults=None) -> MlperfDevice:
    """Open the link, identify the device (name%, profile%) and return the Device. The SHA-256 a
    firmware reports may be the model file's or that of its 16-byte-aligned form (what builds embed)."""
    expect, described = expectation(profile, model_path, None)
    client = MlperfClient(factory, expect, timeout=timeout, total_timeout=total_timeout)
    try:
        got = client.connect()
        sha = got.get("model_sha256")
        known = {s for s in (expected_sha256, aligned_sha256) if s}
        if sha and known and sha not in known:
            raise DeviceError(f"board {profile.name} at {client.port_name} reports model sha256 {sha} "
                              f"in name%, but {model_path} has sha256 {expected_sha256} (deploy this "
                              f"model, or give the model the device runs)")
        info = {**described, **got, "board": profile.name,
                "model_check": "sha256" if sha else "profile-name",
                "model_sha256": sha or expected_sha256, "inferences": client.inferences}
        return MlperfDevice(client, profile, info, driver=driver, faults=faults)
    except BaseException:
        client.close()
        raise


def probe_name(board, link, deadline: float, timeout: float) -> dict:
    """A QEMU board's start-up check for the MLPerf-mode firmware: ask `name%` (again each second
    while it boots) over `link` (closed on return) until the reply names the model's SHA-256."""
    try:
        text, next_send = "", 0.0
        while time.monotonic() < deadline:
            board.check()
            now = time.monotonic()
            if now >= next_send:
                link.write(b"name%")
                next_send = now + 1.0
            try:
                text += link.read().decode("latin-1")
            except OSError:
                time.sleep(0.05)  # QEMU exiting: check() reports why
                continue
            sha = name_sha256(text)
            if sha:
                return {"model_sha256": sha, "protocol": "mlperf"}
        board.check()
        raise DeviceError(f"QEMU board {board.name} did not answer name% with its model's SHA-256 "
                          f"within {timeout:g} s on {board.url}")
    finally:
        link.close()
