"""The shared energy integration (edgeattack.energy.trace), the estimate and --energy resolution.

Synthetic traces with a known answer; no meter library involved (the drivers' own formats are in
test_energy_drivers.py and test_energy_lpm01a.py)."""
from __future__ import annotations

import sys
import time

import numpy as np
import pytest
import yaml

from edgeattack.energy import (EnergyMeter, Estimate, MeterError, Trace, open_meter, per_inference,
                               power_from_reference, profile_estimate, resolve_energy_mode)
from edgeattack.energy.estimate import MLPERF_L4R5ZI_IC_ENERGY_J, MLPERF_L4R5ZI_IC_TIME_S
from edgeattack.errors import UsageError
from edgeattack.profiles import get_profile

FS = 10_000.0
P_IDLE, P_ACTIVE = 0.005, 0.0415


def square(n=20_000, windows=((2_000, 6_000), (9_000, 15_000)), noise=0.0, seed=0):
    """Power and a timestamp line that is high exactly while the power is active."""
    p = np.full(n, P_IDLE)
    logic = np.zeros(n, np.int8)
    for a, b in windows:
        p[a:b] = P_ACTIVE
        logic[a:b] = 1
    if noise:
        p = p + noise * np.random.default_rng(seed).standard_normal(n)
    return np.arange(n) / FS, p, logic, [P_ACTIVE * (b - a) / FS for a, b in windows]


def feed(trace, t, p, logic, chunk=777):
    for i in range(0, len(t), chunk):  # chunks that split windows: edges are found across them
        trace.add(t[i:i + chunk], p[i:i + chunk], logic[i:i + chunk])


def test_trapezoid_windows_exact_and_median_per_inference():
    t, p, logic, want = square()
    tr = Trace("test")
    feed(tr, t, p, logic)
    ws = tr.windows(iterations=[4, 6])
    assert [w.index for w in ws] == [1, 2]
    for w, e in zip(ws, want):
        assert w.energy_j == pytest.approx(e, rel=1e-3) and w.dropped == 0
    assert ws[0].duration_s == pytest.approx(0.4) and ws[0].samples == 4000
    s = per_inference(ws)
    assert s["energy_j"] == pytest.approx(np.median([want[0] / 4, want[1] / 6]), rel=1e-3)
    assert s["energy_source"] == "measured"


def test_rectangle_rule_sums_energy_per_period():
    e = np.full(5000, 5e-6)
    e[1000:3000] = 41.5e-6
    tr = Trace("test", rule="rectangle", timestamp="falling")
    tr.add(np.arange(5000) / 1000, e * 1000)
    tr.event(1.0, "fall")
    tr.event(3.0, "fall")
    (w,) = tr.windows(iterations=1)
    assert w.energy_j == pytest.approx(2000 * 41.5e-6, rel=1e-9)


def test_noise_averages_out():
    t, p, logic, want = square(noise=0.02 * P_ACTIVE)
    tr = Trace("test")
    feed(tr, t, p, logic)
    for w, e in zip(tr.windows(), want):
        assert w.energy_j == pytest.approx(e, rel=1e-3)


def test_dropped_samples_are_filled_counted_and_refused_beyond_the_limit():
    t, p, logic, want = square()
    p = p.copy()
    p[3000:3030] = np.nan          # 30 lost inside window 1 (4000 samples: 0.75%)
    tr = Trace("test")
    feed(tr, t, p, logic)
    ws = tr.windows()
    assert ws[0].dropped == 30 and ws[1].dropped == 0 and tr.dropped == 30
    assert ws[0].energy_j == pytest.approx(want[0], rel=1e-3)
    p[3000:3100] = np.nan           # 100 of 4000 = 2.5% > 1%
    tr = Trace("test")
    feed(tr, t, p, logic)
    with pytest.raises(MeterError, match="window 1 lost 100 of 4000 samples"):
        tr.windows()


def test_holes_in_a_polled_time_axis_count_as_lost():
    t, p, logic, _ = square()
    keep = np.ones(len(t), bool)
    keep[4000:4020] = False        # the polling loop stalled for 2 ms inside window 1
    tr = Trace("test", nominal_dt=1 / FS)
    tr.add(t[keep], p[keep], logic[keep])
    assert tr.windows()[0].dropped == 20
    short = keep.copy()
    short[4000:4020] = True
    short[4000:4003] = False       # 3 periods: within the polling loop's jitter, not counted
    tr = Trace("test", nominal_dt=1 / FS)
    tr.add(t[short], p[short], logic[short])
    assert tr.windows()[0].dropped == 0


@pytest.mark.parametrize("mode", ["high", "falling"])
def test_missing_and_doubled_timestamp_events_are_errors(mode):
    t, p, logic, _ = square()
    if mode == "falling":  # MLPerf-style: a short low pulse at each window end
        pulses = np.ones(len(t), np.int8)
        for i in (2_000, 6_000, 9_000, 15_000):
            pulses[i:i + 5] = 0
        logic = pulses
    tr = Trace("test", timestamp=mode)
    feed(tr, t, p, logic)
    assert len(tr.windows(iterations=[1, 1])) == 2
    with pytest.raises(MeterError, match="missing timestamp event: 2 windows seen, 3 expected"):
        tr.windows(iterations=[1, 1, 1])
    with pytest.raises(MeterError, match="doubled timestamp event: (2 windows|4 events) seen"):
        tr.windows(iterations=[1])
    # the last end event never came
    cut = 12_000
    tr = Trace("test", timestamp=mode)
    feed(tr, t[:cut], p[:cut], logic[:cut])
    with pytest.raises(MeterError, match="missing timestamp event: window 2 started at 0.9"):
        tr.windows()


def test_timestamp_line_high_at_start_is_a_missing_start():
    t, p, logic, _ = square(windows=((0, 3000),))
    tr = Trace("test")
    feed(tr, t, p, logic)
    with pytest.raises(MeterError, match="already high when acquisition began"):
        tr.windows()


def test_a_meter_that_stops_streaming_mid_window_is_an_error():
    t, p, logic, _ = square()
    tr = Trace("test")
    feed(tr, t[:12_000], p[:12_000], logic[:12_000])  # inside window 2
    time.sleep(0.06)
    tr.check_stall(0.05)
    with pytest.raises(MeterError) as err:
        tr.windows()
    msg = str(err.value)
    assert "stopped streaming mid-window" in msg and "window 2" in msg and "\n" not in msg


def test_no_samples_is_an_error():
    with pytest.raises(MeterError, match="delivered no samples"):
        Trace("test").windows()


# estimate and --energy ------------------------------------------------------------------------------

def test_l4r5zi_power_constant_derived_from_the_cited_figures():
    """704.2 ms at the derived power gives the published 29,207 uJ within 1%; the profile agrees."""
    power = power_from_reference(MLPERF_L4R5ZI_IC_ENERGY_J, MLPERF_L4R5ZI_IC_TIME_S)
    assert power == pytest.approx(0.0415, rel=0.01)
    est = profile_estimate("nucleo-l4r5zi")
    assert est is not None and "MLPerf Tiny" in est.source
    assert est.active_power_w == pytest.approx(power, rel=1e-3)
    assert est.energy_j(0.7042) == pytest.approx(29_207e-6, rel=0.01)
    assert est.reference_energy_j == MLPERF_L4R5ZI_IC_ENERGY_J
    # qemu-m4 models that chip: its constant is the same figure
    assert profile_estimate("qemu-m4").active_power_w == pytest.approx(power, rel=0.01)


def _profile(tmp_path, energy, name="my-board"):
    data = get_profile("nucleo-l4r5zi").to_dict()
    data.update(name=name, energy=energy)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_resolve_energy_mode(tmp_path):
    metered = _profile(tmp_path, {"meter": "ppk2", "options": {"port": "/dev/null", "voltage_v": 3.0}})
    meter = resolve_energy_mode(metered, "auto")
    assert isinstance(meter, EnergyMeter) and meter.name == "ppk2" and not meter.is_open
    assert resolve_energy_mode(metered, "measured").options["voltage_v"] == 3.0
    assert resolve_energy_mode(metered, "off") is None
    assert isinstance(resolve_energy_mode("nucleo-l4r5zi", "auto"), Estimate)
    assert resolve_energy_mode("emu-tflm", "auto") is None
    with pytest.raises(UsageError) as err:
        resolve_energy_mode("qemu-m4", "measured")
    assert "board qemu-m4 has no energy meter" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UsageError, match="emu-tflm's profile has no cited energy constants"):
        resolve_energy_mode("emu-tflm", "estimated")
    with pytest.raises(UsageError, match="--energy must be one of"):
        resolve_energy_mode("emu-tflm", "maybe")
    # an uncited constant is no estimate
    uncited = _profile(tmp_path, {"estimate": {"active_power_w": 0.1}}, name="uncited")
    assert resolve_energy_mode(uncited, "auto") is None


def test_profile_refuses_inconsistent_reference_figures(tmp_path):
    bad = _profile(tmp_path, {"estimate": {"active_power_w": 0.05, "reference_energy_j": 0.0292,
                                           "reference_time_s": 0.7042, "source": "x"}})
    with pytest.raises(UsageError, match="energy.estimate.active_power_w"):
        get_profile(bad)
    half = _profile(tmp_path, {"estimate": {"active_power_w": 0.0415, "reference_energy_j": 0.0292,
                                            "source": "x"}}, name="half")
    with pytest.raises(UsageError, match="reference_time_s"):
        get_profile(half)


def test_unknown_meter_option_and_missing_library_are_one_line_errors(monkeypatch):
    with pytest.raises(MeterError, match="unknown energy meter 'fluke'.*joulescope"):
        open_meter("fluke")
    with pytest.raises(MeterError, match="unknown option 'prot'"):
        open_meter("ppk2", {"prot": "/dev/x"})
    for name, module, pip in [("joulescope", "joulescope", "joulescope"),
                              ("ppk2", "ppk2_api.ppk2_api", "ppk2-api"),
                              ("ina219", "smbus2", "smbus2"), ("ina260", "smbus2", "smbus2")]:
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
        with pytest.raises(MeterError) as err:
            open_meter(name).open()
        assert f"pip install {pip}" in str(err.value) and "\n" not in str(err.value)
