"""The device agent, emulated boards behind a real pty, and the Device / open_device API.

Everything here runs real child processes (the agent) over real ptys or TCP sockets and compares
with the TFLM / LiteRT interpreters called in this process.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from edgeattack.device.api import open_device
from edgeattack.device.boards.emulator import EmulatedBoard
from edgeattack.profiles import get_profile
from edgeattack.errors import DeviceError, UsageError
from edgeattack.link import messages as m
from edgeattack.link.client import Client
from edgeattack.link.transport import open_port
from edgeattack.quant import quantize_input


# helpers -------------------------------------------------------------------------------------------

def children(pid: int | None = None) -> list[int]:
    """Live or zombie child processes of `pid` (default: this process), from /proc."""
    pid = os.getpid() if pid is None else pid
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def agents_serving(model_path) -> list[int]:
    """Live agent processes whose command line names this model file."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"edgeattack.agent" in cmd and str(model_path).encode() in cmd and alive(int(entry)):
                found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def no_orphans():
    before = set(children())
    yield
    deadline = time.monotonic() + 5
    while set(children()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(children()) - before == set(), "a test left a child process behind"


@pytest.fixture
def model(tiny_tflite, tmp_path):
    """The tiny model under a path unique to this test (so its processes can be found by path)."""
    path = tmp_path / "model.tflite"
    shutil.copy(tiny_tflite, path)
    return path


def reference(runtime: str, model_path, xq: np.ndarray) -> np.ndarray:
    """Raw outputs of the runtime called in this process, one row per sample."""
    data = model_path.read_bytes()
    if runtime == "tflm":
        from tflite_micro.python.tflite_micro import runtime as tflm

        interp = tflm.Interpreter.from_bytes(data, arena_size=1 << 20)
        rows = []
        for x in xq:
            interp.set_input(x.reshape(1, *x.shape), 0)
            interp.invoke()
            rows.append(np.array(interp.get_output(0)).reshape(-1))
        return np.stack(rows)
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data, num_threads=1)
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for x in xq:
        interp.set_tensor(i["index"], x.reshape(1, *x.shape))
        interp.invoke()
        rows.append(np.array(interp.get_tensor(o["index"])).reshape(-1))
    return np.stack(rows)


def start_agent_tcp(model_path, runtime="tflm", *extra):
    proc = subprocess.Popen([sys.executable, "-m", "edgeattack.agent", "--model", str(model_path),
                             "--port", "tcp://127.0.0.1:0", "--runtime", runtime, "--board", "test", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on tcp://" not in line:
        proc.kill()
        proc.wait()
        raise AssertionError(f"agent did not start: {line!r} {proc.stderr.read()}")
    return proc, "socket://" + line.strip().rsplit("tcp://", 1)[1]


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


# the agent -------------------------------------------------------------------------------------------

def test_agent_imports_no_tensorflow():
    code = ("import sys, edgeattack.agent; "
            "bad = [n for n in sys.modules if n.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("runtime", ["tflm", "litert"])
def test_agent_over_tcp_matches_in_process_runtime_and_stops_on_sigterm(model, tiny_dataset, runtime):
    proc, url = start_agent_tcp(model, runtime)
    try:
        client = Client(lambda: open_port(url), timeout=1.0, total_timeout=10)
        info = client.connect()
        assert info["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
        assert info["runtime"] == runtime and info["board"] == "test" and info["tick_hz"] == 10**9
        assert info["input"]["shape"] == [1, 8, 8, 1] and info["input"]["dtype"] == "int8"
        assert "error" not in info
        _, _, x_test, _ = tiny_dataset
        xq = quantize_input(x_test[:20], info["input"]["scale"], info["input"]["zero_point"])
        results = list(client.infer_many([x.reshape(1, 8, 8, 1) for x in xq], inflight=3))
        client.close()
        # the agent accepts the next connection with its state intact
        client2 = Client(lambda: open_port(url), timeout=1.0, total_timeout=10)
        info2 = client2.connect()
        client2.close()
        assert info2["inferences"] == 20
        got = np.stack([r.output_raw.reshape(-1) for r in results])
        assert np.array_equal(got, reference(runtime, model, xq))
        assert all(r.ticks > 0 for r in results)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        stop(proc)


def test_agent_litert_reference_kernels_and_info(model, tiny_dataset):
    """--kernels ref: the agent runs LiteRT's reference kernels (what a Pi of another instruction set
    matches byte for byte); INFO names the kernels and the processor."""
    import platform

    from edgeattack.tflite.runtimes import LiteRTRunner

    proc, url = start_agent_tcp(model, "litert", "--kernels", "ref")
    try:
        with Client(lambda: open_port(url), timeout=1.0, total_timeout=10) as client:
            info = client.connect()
            assert info["kernels"] == "ref" and info["machine"] == platform.machine()
            xq = quantize_input(tiny_dataset[2][:8], info["input"]["scale"], info["input"]["zero_point"])
            got = np.stack([r.output_raw.reshape(-1) for r in client.infer_many([x[None] for x in xq])])
        runner = LiteRTRunner(model.read_bytes(), resolver="reference")
        assert np.array_equal(got, np.stack([runner.run(x[None]).reshape(-1) for x in xq]))
    finally:
        stop(proc)


@pytest.mark.parametrize("runtime", ["tflm", "litert"])
def test_corrupt_model_is_served_as_error_model(model, tmp_path, runtime):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(model.read_bytes()[:1500])
    proc, url = start_agent_tcp(bad, runtime)
    try:
        client = Client(lambda: open_port(url), timeout=1.0, total_timeout=10)
        info = client.connect()
        assert "cannot load model bad.tflite" in info["error"]
        assert info["model_sha256"] == hashlib.sha256(bad.read_bytes()).hexdigest()
        with pytest.raises(DeviceError) as err:
            client.infer(np.zeros((1, 8, 8, 1), np.int8))
        assert err.value.error_code == m.ERR_MODEL and "cannot load model" in str(err.value)
        client.close()
    finally:
        stop(proc)


# emulated boards ---------------------------------------------------------------------------------------

def test_emulated_board_is_a_child_behind_a_pty_and_is_reaped(model):
    board = EmulatedBoard(get_profile("emu-tflm"), model).start()
    try:
        assert board.url.startswith("/dev/pts/") and os.path.exists(board.url)
        assert board.pid in children() and alive(board.pid)
        with open(f"/proc/{board.pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
        assert b"edgeattack.agent" in cmd and any(c.startswith(b"fd://") for c in cmd)
        assert board.info["board"] == "emu-tflm" and board.info["runtime"] == "tflm"
        pid = board.pid
    finally:
        board.stop()
    assert not alive(pid) and pid not in children()
    board.stop()  # idempotent


def test_agent_dies_with_the_host_process(model):
    """PR_SET_DEATHSIG: SIGKILL the process that started a board; its agent must not survive."""
    code = ("import sys, time; from edgeattack.device.boards.emulator import EmulatedBoard; "
            "from edgeattack.profiles import get_profile; "
            f"b = EmulatedBoard(get_profile('emu-litert'), {str(model)!r}).start(); "
            "print(b.pid, flush=True); time.sleep(600)")
    host = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        agent = int(host.stdout.readline())
        assert alive(agent)
        host.kill()
        host.wait()
        deadline = time.monotonic() + 10
        while alive(agent) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(agent)
    finally:
        stop(host)
    assert agents_serving(model) == []


def test_agent_startup_failure_is_reported(model, tmp_path):
    with pytest.raises(DeviceError, match="agent exited with status"):
        EmulatedBoard(get_profile("emu-tflm"), model, agent_args=["--max-payload", "5"]).start()
    with pytest.raises(UsageError, match="does not exist"):
        EmulatedBoard(get_profile("emu-tflm"), tmp_path / "none.tflite").start()


# open_device -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("runtime", ["tflm", "litert"])
def test_open_device_matches_in_process_runtime(model, tiny_dataset, runtime):
    _, _, x_test, _ = tiny_dataset
    with open_device(f"emu-{runtime}", model) as dev:
        assert dev.url.startswith("/dev/pts/")
        one = dev.infer(x_test[0])
        rest = list(dev.infer_many(x_test[1:30], inflight=2))
        info = dev.info()
        xq = quantize_input(x_test[:30], dev.input_scale, dev.input_zero_point)
        assert np.array_equal(dev.prepare(x_test[:30]).reshape(xq.shape), xq)
        assert dev.queries == 30 and dev.wire_bytes > 30 * 64
    results = [one] + rest
    ref = reference(runtime, model, xq)
    assert np.array_equal(np.stack([r.output_raw for r in results]), ref)
    assert [r.pred for r in results] == list(ref.argmax(axis=1))
    assert info["inferences"] == 30
    r = results[0]
    scale, zp = info["output"]["scale"], info["output"]["zero_point"]
    assert np.allclose(r.output, (r.output_raw.astype(np.float32) - zp) * np.float32(scale))
    assert r.device_time_s == pytest.approx(r.device_ticks / 1e9) and not r.time_estimated
    assert r.device_instructions is None and r.energy_j is None and r.rtt_s > 0


def test_open_device_with_port_checks_the_model_hash(model, tmp_path, tiny_dataset):
    other = tmp_path / "other.tflite"
    other.write_bytes(model.read_bytes() + b"\0" * 16)  # same graph, other bytes
    with EmulatedBoard(get_profile("emu-tflm"), model) as board:
        with pytest.raises(DeviceError) as err:
            with open_device("emu-tflm", other, port=board.url):
                pass
        msg = str(err.value)
        assert hashlib.sha256(other.read_bytes()).hexdigest() in msg
        assert hashlib.sha256(model.read_bytes()).hexdigest() in msg
        with open_device("emu-tflm", model, port=board.url) as dev:
            with pytest.raises(UsageError, match=r"sample shape \(9, 9, 1\).*\(1, 8, 8, 1\)"):
                dev.infer(np.zeros((9, 9, 1), np.float32))
            with pytest.raises(UsageError, match="uint8"):
                dev.infer(np.zeros((8, 8, 1), np.uint8))
            x8 = np.full((8, 8, 1), 5, np.int8)
            assert dev.infer(x8).output_raw.shape == (10,)  # int8 sent as it is


def test_qemu_kind_reports_instructions_and_estimated_time(model, tmp_path, tiny_dataset):
    """A profile of kind qemu turns device ticks into instructions (icount shift=0: 1 per ns) and a
    latency estimate from the modelled chip's clock and CPI. Driven by a real agent via --port."""
    data = get_profile("qemu-m4").to_dict()
    data.update(name="qemu-like", model_cpi=2.0, model_clock_hz=50_000_000)
    path = tmp_path / "qemu-like.yaml"
    path.write_text(yaml.safe_dump(data))
    _, _, x_test, _ = tiny_dataset
    with EmulatedBoard(get_profile("emu-tflm"), model) as board:
        with open_device(str(path), model, port=board.url) as dev:
            r = dev.infer(x_test[0], repeat=3)
    assert r.time_estimated and r.device_instructions == r.device_ticks  # the agent ticks at 1 GHz
    assert r.device_time_s == pytest.approx(r.device_instructions * 2.0 / 50e6 / 3)
    assert r.energy_j == pytest.approx(r.device_time_s * 0.041476) and r.energy_source == "estimated"


def test_qemu_board_without_launcher_is_a_clear_error(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "edgeattack.device.boards.qemu", None)  # import fails
    with pytest.raises(DeviceError, match="qemu board driver .* is not available"):
        with open_device("qemu-m4", model):
            pass


def test_missing_port_and_missing_model_are_one_line(model, tmp_path):
    with pytest.raises(DeviceError, match="/dev/ttyEDGEATTACK-NONE") as err:
        with open_device("emu-tflm", model, port="/dev/ttyEDGEATTACK-NONE"):
            pass
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="does not exist"):
        with open_device("emu-tflm", tmp_path / "none.tflite"):
            pass
