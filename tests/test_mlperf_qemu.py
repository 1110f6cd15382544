"""`--protocol mlperf` end to end: edgeattack's MLPerf-mode firmware (MLPerf Tiny's DUT protocol) on
qemu-m4, driven by the MLPerf client. A session and a Square attack give TFLM's predictions, with
scores equal to TFLM's dequantized outputs printed as %0.3f; at 0.1% corrupted bytes the session
still completes, identical, every load read back equal to what was sent."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import require_tool
from test_fw_qemu import no_qemu_left  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.qemu
N = 12


@pytest.fixture(scope="module")
def digits_model(tiny_tflite, tmp_path_factory):
    """The tests' shared int8 CNN on digits-shaped inputs (8x8x1, 10 classes: CONV_2D, MAX_POOL_2D,
    FULLY_CONNECTED, SOFTMAX): not a benchmark shape, so the firmware names it ea-custom and takes
    int8 bytes as they are."""
    require_tool("arm-none-eabi-gcc", "qemu-system-arm", "make")
    path = tmp_path_factory.mktemp("mlperf") / "digits.tflite"
    shutil.copy(tiny_tflite, path)
    return path


def _tflm_printed(model, q):
    """TFLM's predictions and its dequantized outputs as %0.3f prints them, read back as float32."""
    from edgeattack.quant import dequantize
    from edgeattack.tflite.reader import read_model
    from edgeattack.tflite.runtimes import TFLMRunner

    out = read_model(str(model)).output_tensors[0].quant
    runner = TFLMRunner(model.read_bytes())
    raw = np.stack([np.asarray(runner.invoke_raw(x[None])).reshape(-1) for x in q])
    deq = dequantize(raw, out.scale[0], out.zero_point[0])
    printed = np.array([[float("%0.3f" % v) for v in row.tolist()] for row in deq], dtype=np.float32)
    return raw.argmax(axis=1), printed


def test_session_matches_tflm_also_on_a_corrupting_link(digits_model, tmp_path):
    from edgeattack.datasets import load_dataset
    from edgeattack.quant import quantize_input
    from edgeattack.results import read_results
    from edgeattack.session import run_session
    from edgeattack.tflite.reader import read_model

    runs = {}
    for name, faults in (("clean", None), ("faulty", "corrupt=0.001,seed=1")):
        summary = run_session("qemu-m4", digits_model, dataset="digits", n=N, out=tmp_path / name,
                              protocol="mlperf", faults=faults, progress=False)
        runs[name] = (summary, read_results(tmp_path / name / "results.jsonl"))
    clean, faulty = runs["clean"], runs["faulty"]
    x = load_dataset("digits").x_test[:N].astype(np.float32)
    quant = read_model(str(digits_model)).input_tensors[0].quant
    q = quantize_input(x, quant.scale[0], quant.zero_point[0])
    pred, printed = _tflm_printed(digits_model, q)
    for summary, records in (clean, faulty):
        assert summary["status"] == "complete"
        assert summary["model"]["protocol"] == "mlperf"
        assert summary["model"]["model_check"] == "sha256"  # the firmware reports it in name%
        assert [r["pred"] for r in records] == pred.tolist()
        np.testing.assert_array_equal(np.array([r["output_raw"] for r in records], np.float32), printed)
        assert all(r["time_source"] == "qemu-instructions" and r["device_ticks"] > 0 for r in records)
        # every record's input was read back equal to the bytes sent
        assert summary["link"]["loads_verified"] >= N
    # one `infer 1 0%` per query; on the corrupting link a damaged inference reply is redone, and the
    # host counts every inference the device announced
    assert clean[0]["device"]["inferences_run"] == N <= faulty[0]["device"]["inferences_run"]
    assert faulty[0]["link"]["retries"] > 0  # the faults did hit the link
    assert faulty[0]["link"]["wire_bytes"] > clean[0]["link"]["wire_bytes"]
    print(f"mlperf session, {N} records: clean {clean[0]['link']['wire_bytes']} wire bytes; "
          f"0.1% corrupted: {faulty[0]['link']['wire_bytes']} wire bytes, "
          f"{faulty[0]['link']['retries']} steps redone, {faulty[0]['link']['load_mismatches']} reloads")


def test_square_over_mlperf_equals_tflm_with_printed_scores(digits_model):
    from edgeattack.attacks import make
    from edgeattack.attacks.targets import DeviceTarget
    from edgeattack.device import open_device

    x = np.random.default_rng(2).random((3, 8, 8, 1), dtype=np.float32)
    runs = []
    for board, kwargs, decimals in (("qemu-m4", {"protocol": "mlperf"}, None), ("emu-tflm", {}, 3)):
        with open_device(board, digits_model, **kwargs) as dev:
            t = DeviceTarget(dev, decimals=decimals)
            y = t.predict(x)  # attack what the device says
            res = make("square", budget=25, p_init=0.1)(t, x, y, epsilons=[0.1], seed=0)
            runs.append((y, res, t.queries, dev.info()["inferences"]))
    (y_m, res_m, made, inferences), (y_t, res_t, _, _) = runs
    np.testing.assert_array_equal(y_m, y_t)
    np.testing.assert_array_equal(res_m.x_adv, res_t.x_adv)
    np.testing.assert_array_equal(res_m.success, res_t.success)
    np.testing.assert_array_equal(res_m.queries, res_t.queries)
    assert inferences == made  # one `infer 1 0%` per query, nothing run twice


def test_attack_cli_with_protocol_mlperf(digits_model, tmp_path):
    from click.testing import CliRunner

    from edgeattack.cli import cli

    out = tmp_path / "sq"
    r = CliRunner().invoke(cli, ["attack", "square", "--board", "qemu-m4", "--protocol", "mlperf",
                                  "--model", str(digits_model), "-n", "2", "--budget", "10",
                                  "--eps", "0.1", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "attack.json").read_text())
    assert summary["target"]["kind"] == "board" and summary["target"]["board"] == "qemu-m4"
    session = json.loads((out / "session.json").read_text())
    assert session["model"]["protocol"] == "mlperf"


def test_emulator_board_refuses_mlperf(digits_model):
    from edgeattack.device import open_device
    from edgeattack.errors import UsageError

    with pytest.raises(UsageError, match="emu-tflm runs edgeattack's agent"):
        with open_device("emu-tflm", digits_model, protocol="mlperf"):
            pass


def test_up_with_protocol_mlperf_serves_other_commands(digits_model):
    """`edgeattack up --protocol mlperf` keeps the MLPerf-mode firmware up (what MLCommons' runner
    would talk to); a command reaches it with --port and the same protocol."""
    import signal
    import subprocess
    import sys

    from edgeattack import children
    from edgeattack.device import open_device

    proc = children.spawn([sys.executable, "-m", "edgeattack", "up", "--board", "qemu-m4", "--protocol",
                           "mlperf", str(digits_model)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("socket://"), proc.stderr.read()
        with open_device("qemu-m4", digits_model, port=url, protocol="mlperf") as dev:
            r = dev.infer(np.zeros((8, 8, 1), np.float32))
            assert dev.model_check == "sha256" and r.output.shape == (10,)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        children.stop(proc)
        proc.stdout.close()
        proc.stderr.close()
