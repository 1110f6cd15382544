"""Energy and latency through device -> session: --energy modes, a profile's cited estimate, a meter
measuring every INFER window, the latency summary per source and eps.

No energy meter exists on this machine, so the meter here is a stand-in registered by this test: it
feeds the project's own Trace (edgeattack.energy.trace) a synthetic stream with a timestamp line, as
a real driver does, and its windows give a known answer. Everything else is real: the session runner,
the link, the emu-tflm agent and the qemu-m4 firmware.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import require_tool
from edgeattack import cli as edgeattack_cli
from edgeattack.energy import MeterBase, MeterError, register
from edgeattack.profiles import builtin_paths, get_profile
from edgeattack.results import read_results
from edgeattack.session import run_session

from test_session_runner import adv_npz, clean_npz, cli, model, one_line_error  # noqa: F401 (fixtures)
from test_device_agent import no_orphans  # noqa: F401 - the autouse orphan check

RATE_HZ = 1000.0  # the stand-in meter's sample rate


@register("standin")
class StandInMeter(MeterBase):
    """A meter stream made up for tests (there is no meter on this machine): window k lasts
    durations[k % len] s at power_w[k % len] W, timestamp line high inside it; with `stall_after`,
    the stream stops inside that window (as a meter unplugged mid-window)."""

    threaded = False
    OPTIONS = {"windows": 0, "power_w": [0.04], "durations_s": [0.5], "stall_after": None}

    def _connect(self):
        pass

    def _disconnect(self):
        pass

    def _begin(self):
        pass

    def _end(self):
        o = self.options
        t0, n = 0.0, int(o["windows"])
        idle = np.arange(200) / RATE_HZ
        for k in range(n):
            p, d = o["power_w"][k % len(o["power_w"])], o["durations_s"][k % len(o["durations_s"])]
            # busy samples from the window's start to its end inclusive; the line falls at the end
            # sample, so power is P across the whole window and the known answer is exactly P x d
            busy = np.linspace(0.0, d, int(round(d * RATE_HZ)) + 1)
            logic = np.ones(busy.size)
            logic[-1] = 0
            stall = o["stall_after"] is not None and k == o["stall_after"]
            if stall:
                busy, logic = busy[: busy.size // 2], logic[: busy.size // 2]
            start = t0 + idle[-1] + 1 / RATE_HZ
            self.trace.add(np.concatenate([t0 + idle, start + busy]),
                           np.concatenate([np.full(idle.size, 0.001), np.full(busy.size, p)]),
                           np.concatenate([np.zeros(idle.size), logic]))
            if stall:
                self.trace.mark_stalled("no samples for the last 2.0 s before stop")
                return
            t0 = start + d + 1 / RATE_HZ
        self.trace.add(t0 + idle, np.full(idle.size, 0.001), np.zeros(idle.size))


def board_file(tmp_path: Path, energy: dict | None, base: str = "emu-tflm") -> Path:
    """The built-in board's profile with another energy section, as a user's --board file.yaml."""
    data = yaml.safe_load(Path(builtin_paths()[base]).read_text())
    data["name"] = f"{base}-energy"
    data["energy"] = energy
    path = tmp_path / f"{base}-energy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


NUCLEO_ESTIMATE = {"estimate": yaml.safe_load(yaml.safe_dump(
    get_profile("nucleo-l4r5zi").energy["estimate"]))}


# estimates --------------------------------------------------------------------------------------

def test_profile_estimate_block_reaches_the_records(model, clean_npz, tmp_path):
    """Regression: the device read only the old flat energy.active_power_w, so a profile with an
    energy.estimate block (nucleo-l4r5zi) lost its estimate."""
    board = board_file(tmp_path, NUCLEO_ESTIMATE)
    summary = run_session(board, model, clean_npz, out=tmp_path / "R", warmup=2, progress=False)
    recs = read_results(tmp_path / "R")
    power = NUCLEO_ESTIMATE["estimate"]["active_power_w"]
    assert recs and all(r["energy_source"] == "estimated" for r in recs)
    for r in recs:
        assert r["energy_j"] == pytest.approx(r["device_time_s"] * power, rel=1e-12)
    row = summary["metrics"][0]
    body = [r for r in recs if not r["warmup"]]
    assert row["energy_source"] == "estimated"
    assert row["energy_j"] == pytest.approx(np.median([r["energy_j"] for r in body]))
    assert summary["energy"]["source"] == "estimated" and summary["energy"]["mode"] == "auto"
    assert summary["energy"]["estimate"]["active_power_w"] == power
    assert "MLPerf Tiny" in summary["energy"]["estimate"]["source"]


def test_energy_off_and_boards_without_constants(model, clean_npz, tmp_path):
    board = board_file(tmp_path, NUCLEO_ESTIMATE)
    off = run_session(board, model, clean_npz, out=tmp_path / "off", energy="off", progress=False)
    assert all(r["energy_j"] is None and r["energy_source"] is None for r in read_results(tmp_path / "off"))
    assert off["energy"]["source"] is None and off["metrics"][0]["energy_j"] is None
    assert off["settings"]["energy"] == "off"


def test_energy_measured_without_a_meter_is_one_line(model, clean_npz, tmp_path):
    proc = cli("session", "--board", "emu-tflm", "--model", model, "--inputs", clean_npz,
               "--energy", "measured", "-o", tmp_path / "R")
    assert proc.returncode == 2
    err = one_line_error(proc)
    assert "emu-tflm has no energy meter" in err and "energy: {meter:" in err
    assert not (tmp_path / "R").exists()
    proc = cli("session", "--board", "emu-tflm", "--model", model, "--inputs", clean_npz,
               "--energy", "estimated", "-o", tmp_path / "R")
    assert proc.returncode == 2 and "no cited energy constants" in one_line_error(proc)


# a meter measuring every INFER window -------------------------------------------------------------

def test_meter_measures_each_window_mlperf_style(model, clean_npz, tmp_path):
    n_warm, n, repeat = 2, 60, 3
    powers, durations = [0.030, 0.040, 0.050], [0.3, 0.5, 0.4]
    board = board_file(tmp_path, {"meter": "standin", "options": {
        "windows": n_warm + n, "power_w": powers, "durations_s": durations, "stall_s": 600}})
    summary = run_session(board, model, clean_npz, out=tmp_path / "R", warmup=n_warm, repeat=repeat,
                          progress=False)  # auto: the profile names a meter -> measured
    recs = read_results(tmp_path / "R")
    assert len(recs) == n_warm + n and [r["warmup"] for r in recs[:n_warm]] == [True] * n_warm
    for k, r in enumerate(recs):  # window k = the k-th INFER sent, warm-ups first
        expected = powers[k % 3] * durations[k % 3] / repeat
        assert r["energy_source"] == "measured"
        assert r["energy_j"] == pytest.approx(expected, rel=1e-9)
    body = [r["energy_j"] for r in recs if not r["warmup"]]
    assert summary["energy"]["source"] == "measured" and summary["energy"]["meter"] == {"name": "standin"}
    assert summary["energy"]["energy_j"] == pytest.approx(np.median(body))
    assert summary["energy"]["windows"] == n and summary["energy"]["iterations_per_window"] == repeat
    assert summary["metrics"][0]["energy_j"] == pytest.approx(np.median(body))
    assert summary["device"]["inferences_run"] == (n_warm + n) * repeat


def test_meter_that_stops_mid_window_writes_nothing(model, clean_npz, tmp_path, capsys):
    board = board_file(tmp_path, {"meter": "standin", "options": {
        "windows": 60, "stall_after": 17, "stall_s": 600}})
    out = tmp_path / "R"
    with pytest.raises(MeterError, match="stopped streaming mid-window"):
        run_session(board, model, clean_npz, out=out, progress=False)
    assert not out.exists()
    # the command line: one line, non-zero exit, nothing written
    with pytest.raises(SystemExit) as exit_info:
        edgeattack_cli.main(["session", "--board", str(board), "--model", str(model), "--inputs",
                             str(clean_npz), "--no-progress", "-o", str(out)])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("edgeattack: error: energy meter standin stopped "
                                                   "streaming mid-window"), err
    assert not out.exists()


# latency ---------------------------------------------------------------------------------------

def test_latency_per_source_device_time_apart_from_rtt(model, clean_npz, adv_npz, tmp_path):
    summary = run_session("emu-tflm", model, clean_npz, adversarial=[adv_npz], out=tmp_path / "R",
                          warmup=3, progress=False)
    rows = {(m["source"], m["eps"]): m for m in summary["metrics"]}
    recs = [r for r in read_results(tmp_path / "R") if not r["warmup"]]
    clean = [r["device_time_s"] for r in recs if r["source"] == "clean"]
    for (source, eps), row in rows.items():
        mine = [r for r in recs if r["source"] == source and r["eps"] == eps]
        times = [r["device_time_s"] for r in mine]
        assert row["latency_s"]["n"] == len(mine)
        assert row["latency_s"]["p50"] == pytest.approx(np.percentile(times, 50))
        assert row["latency_s"]["mean"] == pytest.approx(np.mean(times))
        assert row["rtt_s"]["p99"] == pytest.approx(np.percentile([r["rtt_s"] for r in mine], 99))
        assert row["time_source"] == "host-wall" and row["time_estimated"] is False
        if source == "clean":
            assert "latency_difference_s" not in row
            continue
        diff = row["latency_difference_s"]
        assert diff["difference_s"] == pytest.approx(np.median(times) - np.median(clean))
        assert diff["ci95"][0] <= diff["difference_s"] <= diff["ci95"][1]
        assert diff["n_attacked"] == len(mine) and diff["n_clean"] == len(clean)


@pytest.mark.qemu
def test_qemu_latency_is_labelled_estimate_and_difference_stated(model, clean_npz, adv_npz, tmp_path):
    require_tool("qemu-system-arm", "arm-none-eabi-gcc")
    summary = run_session("qemu-m4", model, clean_npz, adversarial=[adv_npz], out=tmp_path / "R",
                          warmup=1, repeat=2, progress=False)
    recs = read_results(tmp_path / "R")
    assert all(r["time_source"] == "qemu-instructions" and r["time_estimated"] for r in recs)
    assert all(r["energy_source"] == "estimated" for r in recs)  # qemu-m4's cited constants
    for row in summary["metrics"]:
        assert row["time_estimated"] is True and row["energy_source"] == "estimated"
        if row["source"] != "clean":
            diff = row["latency_difference_s"]  # stated even when it is zero
            assert diff["difference_s"] is not None and diff["ci95"] is not None
    assert summary["energy"]["estimate"]["active_power_w"] == pytest.approx(0.041476, rel=1e-3)


def test_cli_text_summary_shows_latency_difference_and_energy(model, clean_npz, adv_npz, tmp_path,
                                                              capsys):
    board = board_file(tmp_path, NUCLEO_ESTIMATE)
    try:
        edgeattack_cli.main(["session", "--board", str(board), "--model", str(model), "--inputs",
                             str(clean_npz), "--adversarial", str(adv_npz), "--energy", "estimated",
                             "--no-progress", "-o", str(tmp_path / "R")])
    except SystemExit as exc:
        assert not exc.code
    lines = capsys.readouterr().out.splitlines()
    attacked = [ln for ln in lines if "signnoise" in ln]
    assert len(attacked) == 2 and all(" vs clean " in ln and "uJ (estimated)" in ln for ln in attacked)
    assert json.loads((tmp_path / "R" / "session.json").read_text())["settings"]["energy"] == "estimated"


# a black-box attack's crafting queries under a meter ---------------------------------------------

@register("perinfer")
class PerInferenceMeter(MeterBase):
    """A MOCK meter (no meter exists on this machine), allowed for this test: at stop() it emits one
    window per inference the board ran since start() (read from the board's INFO counter, standing
    in for the timestamp GPIO a real meter watches), each WINDOW_S long at POWER_W, through the
    project's own Trace. `drop` windows are left out (a meter that missed timestamp events)."""

    threaded = False
    OPTIONS = {"drop": 0}
    counter = None  # the test sets a callable: the board's inference counter
    POWER_W, WINDOW_S = 0.02, 0.05

    def _connect(self):
        pass

    def _disconnect(self):
        pass

    def _begin(self):
        self.first = PerInferenceMeter.counter()

    def _end(self):
        n = PerInferenceMeter.counter() - self.first - int(self.options["drop"])
        idle = np.arange(20) / RATE_HZ
        busy = np.linspace(0.0, self.WINDOW_S, int(round(self.WINDOW_S * RATE_HZ)) + 1)
        logic = np.ones(busy.size)
        logic[-1] = 0
        t0 = 0.0
        for _ in range(n):
            start = t0 + idle[-1] + 1 / RATE_HZ
            self.trace.add(np.concatenate([t0 + idle, start + busy]),
                           np.concatenate([np.full(idle.size, 0.001), np.full(busy.size, self.POWER_W)]),
                           np.concatenate([np.zeros(idle.size), logic]))
            t0 = start + self.WINDOW_S + 1 / RATE_HZ
        self.trace.add(t0 + idle, np.full(idle.size, 0.001), np.zeros(idle.size))


def test_blackbox_crafting_queries_are_measured_per_adversarial_example(model, tiny_dataset, tmp_path):
    """--energy measured on a board with a meter: every crafting query of a black-box attack gets
    its own meter window, charged to the sample it was for (the energy per adversarial example and
    per query in attack.json, per example in the .npz and its records), as session inferences are.
    The meter is a mock (PerInferenceMeter); the attack, link and emu-tflm agent are real."""
    from edgeattack.attacks.run import run_attack
    from edgeattack.device.api import open_device

    data = tmp_path / "data.npz"
    np.savez(data, x_train=tiny_dataset[0], y_train=tiny_dataset[1], x_test=tiny_dataset[2],
             y_test=tiny_dataset[3])
    per_window = PerInferenceMeter.POWER_W * PerInferenceMeter.WINDOW_S
    for drop, out in ((0, tmp_path / "A" / "adv.npz"), (1, tmp_path / "B" / "adv.npz")):
        board = board_file(tmp_path, {"meter": "perinfer", "options": {"drop": drop, "stall_s": 600}})
        with open_device(board, model) as dev:
            PerInferenceMeter.counter = lambda: int(dev.info()["inferences"])
            kwargs = dict(board=dev.board, dataset=str(data), n=6, budget=15, epsilons=[0.1, 0.3],
                          seed=0, out=out, progress=False, energy="measured", device=dev)
            if drop:  # a meter that missed a window: one clear error, nothing written
                with pytest.raises(MeterError, match="missing timestamp event"):
                    run_attack("square", model, **kwargs)
                assert not out.parent.exists() or not any(out.parent.iterdir())
                continue
            s = run_attack("square", model, **kwargs)
    npz = np.load(tmp_path / "A" / "adv.npz")
    queries, energy = npz["queries"], npz["crafting_energy_j"]
    assert queries.shape == energy.shape == (2, 6) and queries.sum() > 12
    assert np.allclose(energy, queries * per_window, rtol=1e-9)  # each query its own window
    for e, row in enumerate(s["metrics"]):
        assert row["energy_source"] == "measured"
        assert row["energy_j"] == pytest.approx(np.median(queries[e] * per_window), rel=1e-9)
        assert row["energy_per_query_j"] == pytest.approx(per_window, rel=1e-9)
    recs = read_results(tmp_path / "A")
    adv = [r for r in recs if r["source"] != "clean"]
    assert adv and all(r["energy_source"] == "measured" for r in recs)  # the judging session too
    for r in adv:
        i, e = int(r["id"]), [0.1, 0.3].index(r["eps"])
        assert r["crafting_energy_j"] == pytest.approx(queries[e, i] * per_window, rel=1e-9)
        assert r["energy_j"] == pytest.approx(per_window, rel=1e-9)
