"""The session runner on real emulated boards: records, metrics, faults, crash + resume, bad input.

Real child processes behind real ptys; results are compared with the TFLM / LiteRT interpreters
called in this process, and with fault-free runs.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import tty

import numpy as np
import pytest

from edgeattack.errors import DeviceError, UsageError
from edgeattack.link.frame import Frame, FrameDecoder, encode_frame
from edgeattack.quant import quantize_input
from edgeattack.results import RESULT_FIELDS, read_results, wilson_interval
from edgeattack.session import run_session

from test_device_agent import agents_serving, alive, no_orphans, reference  # noqa: E402,F401 (no_orphans: the autouse orphan check)

FAULTS = "corrupt=0.01,drop=0.005,disconnect_every=200,seed=1"


@pytest.fixture
def model(tiny_tflite, tmp_path):
    path = tmp_path / "model.tflite"
    shutil.copy(tiny_tflite, path)
    return path


@pytest.fixture
def clean_npz(tiny_dataset, tmp_path):
    _, _, x_test, y_test = tiny_dataset
    path = tmp_path / "clean.npz"
    np.savez(path, x=x_test[:60], y=y_test[:60], ids=np.arange(1000, 1060, dtype=np.int64))
    return path


@pytest.fixture
def adv_npz(tiny_dataset, tmp_path):
    """An adversarial file per CONVENTIONS (sign noise, not a real attack: the runner does not care)."""
    _, _, x_test, y_test = tiny_dataset
    rng = np.random.default_rng(3)
    x, y = x_test[40:80], y_test[40:80]
    eps = np.array([0.1, 0.3], np.float32)
    sign = np.sign(rng.standard_normal(x.shape)).astype(np.float32)
    x_adv = np.stack([np.clip(x + e * sign, 0, 1) for e in eps]).astype(np.float32)
    meta = json.dumps({"attack": "signnoise", "norm": "linf", "seed": 3})
    path = tmp_path / "adv.npz"
    # ids 1040..1059 are also in clean.npz (same samples); 1060..1079 only here: their clean records
    # come from this file's x
    ids = np.arange(1040, 1080, dtype=np.int64)
    np.savez(path, x_adv=x_adv, eps=eps, x=x, y=y, ids=ids, success=np.zeros((2, 40), bool),
             meta=np.array(meta))
    return path


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "edgeattack", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(proc) -> str:
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("edgeattack: error:"), proc.stderr
    return err


def key(r):
    return r["id"], r["source"], r["eps"]


def identity(records):
    """CONVENTIONS "identical results": id, source, eps, pred, output_raw of every record."""
    return sorted((key(r), r["pred"], tuple(r["output_raw"])) for r in records if not r["warmup"])


# metrics -------------------------------------------------------------------------------------------

def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) is None


# sessions on both emulated boards --------------------------------------------------------------------

@pytest.mark.parametrize("runtime", ["tflm", "litert"])
def test_session_records_match_in_process_runtime(runtime, model, clean_npz, adv_npz, tmp_path):
    out = tmp_path / "RUN"
    summary = run_session(f"emu-{runtime}", model, clean_npz, adversarial=[adv_npz], out=out,
                          warmup=3, inflight=2, progress=False)
    lines = (out / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(tuple(r) == RESULT_FIELDS for r in records)  # exactly the CONVENTIONS fields
    warm = [r for r in records if r["warmup"]]
    body = [r for r in records if not r["warmup"]]
    assert len(warm) == 3 and records[:3] == warm
    # 60 clean + 20 clean from the adversarial file (ids not in clean.npz) + 2 eps x 40
    assert len(body) == 60 + 20 + 80 and len({key(r) for r in body}) == len(body)
    assert {r["source"] for r in body} == {"clean", "signnoise"}
    assert {r["eps"] for r in body if r["source"] == "signnoise"} == {float(np.float32(0.1)), float(np.float32(0.3))}

    # every answer is what the runtime computes in this process on the same quantized input
    info_in = summary["model"]["input"]
    c, a = np.load(clean_npz), np.load(adv_npz)
    x_of = {("clean", None, int(i)): x for i, x in zip(c["ids"], c["x"])}
    for i, x in zip(a["ids"], a["x"]):
        x_of.setdefault(("clean", None, int(i)), x)
    for e, eps in enumerate(a["eps"]):
        for i, x in zip(a["ids"], a["x_adv"][e]):
            x_of[("signnoise", float(eps), int(i))] = x
    xs = np.stack([x_of[(r["source"], r["eps"], r["id"])] for r in records])
    xq = quantize_input(xs, info_in["scale"], info_in["zero_point"])
    ref = reference(runtime, model, xq)
    assert np.array_equal(np.array([r["output_raw"] for r in records]), ref)
    assert [r["pred"] for r in records] == list(ref.argmax(axis=1))
    for r in records:
        assert r["board"] == f"emu-{runtime}" and r["model_sha256"] == summary["model"]["sha256"]
        assert r["device_ticks"] > 0 and r["device_time_s"] == pytest.approx(r["device_ticks"] / 1e9)
        assert r["time_estimated"] is False and r["device_instructions"] is None
        assert r["time_source"] == "host-wall"  # the host's wall time, never MCU latency
    assert summary["time_source"] == "host-wall" and summary["time_estimated"] is False
    assert {m["time_source"] for m in summary["metrics"]} == {"host-wall"}

    # the device ran exactly one inference per record sent, warm-ups included
    dev = summary["device"]
    assert dev["inferences_after"] - dev["inferences_before"] == len(records) == dev["inferences_run"]
    assert summary["status"] == "complete" and summary["counts"]["records"] == len(body)

    # metrics recomputed here from the records
    clean = {r["id"]: r for r in body if r["source"] == "clean"}
    rows = {(m["source"], m["eps"]): m for m in summary["metrics"]}
    correct = sum(r["pred"] == r["label"] for r in clean.values())
    assert rows[("clean", None)]["accuracy"] == pytest.approx(correct / 80)
    assert summary["clean_accuracy"] == pytest.approx(correct / 80)
    for eps in (0.1, 0.3):
        eps = float(np.float32(eps))
        adv = [r for r in body if r["eps"] == eps]
        ok = [r for r in adv if clean[r["id"]]["pred"] == clean[r["id"]]["label"]]
        flipped = sum(r["pred"] != r["label"] for r in ok)
        row = rows[("signnoise", eps)]
        assert row["n"] == 40 and row["clean_correct"] == len(ok) and row["successes"] == flipped
        assert row["accuracy"] == pytest.approx(sum(r["pred"] == r["label"] for r in adv) / 40)
        if ok:
            assert row["attack_success_rate"] == pytest.approx(flipped / len(ok))
            lo, hi = row["attack_success_ci95"]
            assert lo <= row["attack_success_rate"] <= hi
        lat = row["latency_s"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    assert summary["throughput"]["records_per_s"] > 0


# resume -------------------------------------------------------------------------------------------

def test_resume_after_torn_write_sends_only_the_rest(model, clean_npz, adv_npz, tmp_path):
    full = run_session("emu-tflm", model, clean_npz, adversarial=[adv_npz], out=tmp_path / "A",
                       warmup=2, progress=False)
    lines = (tmp_path / "A" / "results.jsonl").read_bytes().splitlines(keepends=True)
    part = tmp_path / "B"
    part.mkdir()
    # 50 whole records and half of the 51st, as a kill in the middle of a write leaves them
    (part / "results.jsonl").write_bytes(b"".join(lines[:50]) + lines[50][:37])
    resumed = run_session("emu-tflm", model, clean_npz, adversarial=[adv_npz], out=part, warmup=2,
                          resume=True, progress=False)
    a = read_results(tmp_path / "A" / "results.jsonl")
    b = read_results(part / "results.jsonl")
    assert identity(a) == identity(b)
    assert len(b) == len(a) and len({key(r) for r in b if not r["warmup"]}) == len(b) - 2
    assert resumed["counts"]["sent_this_run"] == len(a) - 50
    assert resumed["device"]["inferences_run"] == len(a) - 50  # nothing redone
    assert [m["accuracy"] for m in resumed["metrics"]] == [m["accuracy"] for m in full["metrics"]]
    # finished: resuming again sends nothing
    again = run_session("emu-tflm", model, clean_npz, adversarial=[adv_npz], out=part, warmup=2,
                        resume=True, progress=False)
    assert again["counts"]["sent_this_run"] == 0 and len(read_results(part / "results.jsonl")) == len(a)


def test_resume_refuses_another_model_and_other_inputs(model, clean_npz, adv_npz, tmp_path):
    out = tmp_path / "RUN"
    run_session("emu-tflm", model, clean_npz, out=out, progress=False)
    other = tmp_path / "other.tflite"
    other.write_bytes(model.read_bytes() + b"\0" * 16)
    with pytest.raises(DeviceError, match="holds results of model sha256"):
        run_session("emu-tflm", other, clean_npz, out=out, resume=True, progress=False)
    with pytest.raises(UsageError, match="other inputs or settings"):
        run_session("emu-tflm", model, clean_npz, adversarial=[adv_npz], out=out, resume=True,
                    progress=False)
    with pytest.raises(UsageError, match="already holds a session"):
        run_session("emu-tflm", model, clean_npz, out=out, progress=False)


# faults ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_faulty_link_gives_identical_results_exactly_once(model, tiny_dataset, tmp_path):
    """1% of bytes corrupted, 0.5% dropped, a disconnect every 200 frames, both directions."""
    x_train, y_train, _, _ = tiny_dataset
    inputs = tmp_path / "in500.npz"
    np.savez(inputs, x=x_train[:500], y=y_train[:500])
    clean = run_session("emu-tflm", model, inputs, out=tmp_path / "clean", progress=False)
    faulty = run_session("emu-tflm", model, inputs, out=tmp_path / "faulty", faults=FAULTS,
                         timeout=0.01, progress=False)
    a = read_results(tmp_path / "clean" / "results.jsonl")
    b = read_results(tmp_path / "faulty" / "results.jsonl")
    assert len(b) == 500 and len({key(r) for r in b}) == 500
    assert identity(a) == identity(b)
    assert faulty["device"]["inferences_run"] == 500 == faulty["device"]["records_sent"]
    link = faulty["link"]
    assert link["retries"] > 50 and link["reconnects"] >= 5  # the faults really happened
    assert faulty["device"]["crc_errors"] > 0  # ... in the host -> device direction too
    assert sum(r["retries"] for r in b) > 0 and clean["link"]["retries"] == 0


# crash and resume through the CLI ---------------------------------------------------------------------

def test_sigkill_mid_run_then_resume_gives_identical_results(model, tmp_path):
    rng = np.random.default_rng(7)
    inputs = tmp_path / "in.npz"
    n = 2000
    np.savez(inputs, x=rng.random((n, 8, 8, 1), dtype=np.float32), y=rng.integers(0, 10, n))
    out = tmp_path / "RUN"
    args = ["session", "--board", "emu-tflm", "--model", model, "--inputs", inputs, "--warmup", "2",
            "--no-progress", "-o", out]
    proc = subprocess.Popen([sys.executable, "-m", "edgeattack", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and results.read_bytes().count(b"\n") >= 300:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the session ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    done_before = len(read_results(results))
    assert 300 <= done_before < n + 2
    deadline = time.monotonic() + 10  # the agent dies with its host (PR_SET_DEATHSIG)
    while agents_serving(model) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agents_serving(model) == []

    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "session.json").read_text())
    reference_run = run_session("emu-tflm", model, inputs, out=tmp_path / "REF", warmup=2, progress=False)
    a = read_results(tmp_path / "REF" / "results.jsonl")
    b = read_results(results)
    assert identity(a) == identity(b) and len(b) == n + 2
    assert len({key(r) for r in b if not r["warmup"]}) == n
    assert summary["counts"]["sent_this_run"] == n + 2 - done_before
    assert summary["device"]["inferences_run"] == n + 2 - done_before
    assert len(summary["runs"]) == 2 and summary["status"] == "complete"
    assert reference_run["counts"]["records"] == n


# `edgeattack up` + --port ---------------------------------------------------------------------------

def test_up_prints_a_port_that_sessions_use_then_stops_clean(model, clean_npz, tmp_path):
    up = subprocess.Popen([sys.executable, "-m", "edgeattack", "up", "--board", "emu-litert", str(model)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = up.stdout.readline().strip()
        assert url.startswith("/dev/pts/"), up.stderr.read() if up.poll() is not None else url
        res = cli("session", "--board", "emu-litert", "--model", model, "--inputs", clean_npz,
                  "--port", url, "--no-progress", "-o", tmp_path / "RUN")
        assert res.returncode == 0, res.stderr
        assert len(read_results(tmp_path / "RUN" / "results.jsonl")) == 60
        agents = agents_serving(model)
        assert len(agents) == 1
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=20) == 0
    finally:
        up.kill()
        up.wait()
        up.stdout.close()
        up.stderr.close()
    assert not alive(agents[0])


# bad input through the CLI ---------------------------------------------------------------------------

class FakeDevice:
    """A pty served by a thread: silent, spewing garbage, or answering as protocol v2."""

    def __init__(self, mode: str):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.url = os.ttyname(self.slave)
        self.mode = mode
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import select

        rng = random.Random(0)
        decoder = FrameDecoder()
        while not self.stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if self.mode == "garbage":
                os.write(self.master, bytes(rng.randrange(256) for _ in range(64)) + b"\0")
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                continue
            if self.mode == "v2":
                for frame in decoder.feed(data):
                    os.write(self.master, encode_frame(Frame(2, frame.type | 0x80, frame.seq, b"{}")))

    def close(self):
        self.stop.set()
        self.thread.join()
        os.close(self.master)
        os.close(self.slave)


@pytest.mark.parametrize("mode, expected", [("silent", "no answer from /dev/pts/"),
                                            ("garbage", "no answer from /dev/pts/"),
                                            ("v2", "device speaks protocol v2")])
def test_broken_devices_give_one_clear_line_never_a_hang(mode, expected, model, clean_npz, tmp_path):
    fake = FakeDevice(mode)
    try:
        start = time.monotonic()
        res = cli("session", "--board", "emu-tflm", "--model", model, "--inputs", clean_npz, "--port",
                  fake.url, "--total-timeout", "2", "--no-progress", "-o", tmp_path / "RUN", timeout=60)
        elapsed = time.monotonic() - start
    finally:
        fake.close()
    assert res.returncode == 1 and expected in one_line_error(res)
    assert elapsed < 30
    assert not (tmp_path / "RUN" / "results.jsonl").exists()


def test_port_that_does_not_exist(model, clean_npz, tmp_path):
    res = cli("session", "--board", "emu-tflm", "--model", model, "--inputs", clean_npz, "--port",
              "/dev/ttyEDGEATTACK-NONE", "--no-progress", "-o", tmp_path / "RUN")
    assert res.returncode == 1 and "cannot open port /dev/ttyEDGEATTACK-NONE" in one_line_error(res)


def test_inputs_of_the_wrong_shape_name_file_and_shapes(model, tmp_path):
    bad = tmp_path / "wrong.npz"
    np.savez(bad, x=np.zeros((5, 9, 9, 1), np.float32), y=np.zeros(5, np.int64))
    res = cli("session", "--board", "emu-tflm", "--model", model, "--inputs", bad, "--no-progress",
              "-o", tmp_path / "RUN")
    err = one_line_error(res)
    assert res.returncode == 2 and str(bad) in err and "(9, 9, 1)" in err and "(1, 8, 8, 1)" in err
    assert not (tmp_path / "RUN").exists()  # nothing half-written


def test_corrupt_model_on_the_agent(model, clean_npz, tmp_path):
    bad = tmp_path / "corrupt.tflite"
    data = bytearray(model.read_bytes())
    data[8:400] = os.urandom(392)
    bad.write_bytes(bytes(data))
    res = cli("session", "--board", "emu-tflm", "--model", bad, "--inputs", clean_npz, "--no-progress",
              "-o", tmp_path / "RUN")
    err = one_line_error(res)
    # refused as a usage error before the board starts (the model is read first), naming the file
    assert res.returncode == 2 and "not a valid .tflite model" in err and "corrupt.tflite" in err
    assert not (tmp_path / "RUN").exists()


@pytest.mark.parametrize("content, expected", [
    ({"x": np.zeros((3, 8, 8, 1), np.float32)}, "has no 'y' array"),
    ({"x": np.zeros((3, 8, 8, 1), np.float32), "y": np.zeros(4, np.int64)}, "'y' must be 3 integer labels"),
    ({"x": np.zeros((3, 8, 8, 1), np.float32), "y": np.zeros(3, np.int64), "ids": np.array([1, 1, 2])},
     "duplicates"),
])
def test_malformed_inputs_file(content, expected, model, tmp_path):
    path = tmp_path / "in.npz"
    np.savez(path, **content)
    res = cli("session", "--board", "emu-tflm", "--model", model, "--inputs", path, "-o", tmp_path / "RUN")
    assert res.returncode == 2 and expected in one_line_error(res)


def test_bad_fault_spec_is_a_usage_error(model, clean_npz, tmp_path):
    res = cli("session", "--board", "emu-tflm", "--model", model, "--inputs", clean_npz, "--faults",
              "corrupt=2", "-o", tmp_path / "RUN")
    assert res.returncode == 2 and "corrupt" in one_line_error(res)


def test_device_lost_mid_run_is_reported_and_resume_completes(model, tmp_path):
    rng = np.random.default_rng(8)
    inputs = tmp_path / "in.npz"
    n = 2000
    np.savez(inputs, x=rng.random((n, 8, 8, 1), dtype=np.float32), y=rng.integers(0, 10, n))
    out = tmp_path / "RUN"
    args = ["session", "--board", "emu-tflm", "--model", model, "--inputs", inputs, "--total-timeout", "2",
            "--no-progress", "-o", out]
    proc = subprocess.Popen([sys.executable, "-m", "edgeattack", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "results.jsonl").exists() and (out / "results.jsonl").read_bytes().count(b"\n") >= 200:
                break
            time.sleep(0.01)
        (agent,) = agents_serving(model)
        os.kill(agent, signal.SIGKILL)  # the board dies under the session
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1
    err = err.strip()
    assert err.count("\n") == 0 and "the agent exited with status -9" in err
    summary = json.loads((out / "session.json").read_text())
    assert summary["status"] == "failed" and 200 <= summary["counts"]["records"] < n
    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    records = read_results(out / "results.jsonl")
    assert len(records) == n and len({key(r) for r in records}) == n
    assert sorted(r["id"] for r in records) == list(range(n))
