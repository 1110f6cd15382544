"""Each meter driver fed sample streams in its own library's format, through the library boundary.

None of these libraries is installed here, so each test puts a small fake module in sys.modules
that hands the driver exactly what the real library hands it (a mock is fine for a meter's
stream); where each format comes from is said per test. The energy must come out within 0.1% of
the known answer; lost samples, missing or doubled timestamp events and stalls are clear errors.
(The LPM01A speaks over a real pty: test_energy_lpm01a.py.)"""
from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

from edgeattack.energy import MeterError, open_meter, per_inference

P_IDLE, P_ACTIVE = 0.005, 0.0415
WINDOWS = ((2_000, 6_000), (9_000, 15_000))
N = 20_000


def scenario(fs):
    """Power (W) and the timestamp line (high while a window runs), with the known energies."""
    p = np.full(N, P_IDLE)
    logic = np.zeros(N, np.uint8)
    for a, b in WINDOWS:
        p[a:b] = P_ACTIVE
        logic[a:b] = 1
    return p, logic, [P_ACTIVE * (b - a) / fs for a, b in WINDOWS]


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


# Joulescope ---------------------------------------------------------------------------------------

class FakeStreamBuffer:
    """joulescope 1.5.0 v1 StreamBuffer's reading side: sample_id_range and samples_get(start, stop,
    fields) returning {'time': {...}, 'signals': {name: {'value': array, 'units': ...}}}; float
    signals float32 (NaN where the USB link lost samples), GPI fields uint8 0/1
    (joulescope/v1/stream_buffer.py, sample_buffer.py)."""

    def __init__(self, fs, current, voltage, gpi):
        self.fs, self.end, self.first = fs, 0, 0
        self.data = {"current": current.astype(np.float32), "voltage": voltage.astype(np.float32),
                     "current_lsb": gpi.astype(np.uint8), "voltage_lsb": np.zeros_like(gpi, np.uint8)}

    @property
    def sample_id_range(self):
        return self.first, self.end

    def samples_get(self, start, stop, fields=None):
        units = {"current": "A", "voltage": "V", "current_lsb": "", "voltage_lsb": ""}
        return {"time": {"sample_id_range": {"value": [start, stop], "units": "samples"},
                         "samples": {"value": stop - start, "units": "samples"},
                         "output_sampling_frequency": {"value": self.fs, "units": "Hz"},
                         "sampling_frequency": {"value": self.fs, "units": "Hz"}},
                "signals": {f: {"value": self.data[f][start:stop], "units": units[f]} for f in fields}}


class FakeJoulescopeDevice:
    def __init__(self, sb, chunks, stop_after=None):
        self.stream_buffer, self.chunks, self.stop_after = sb, chunks, stop_after
        self.params, self.procs, self.opened = {}, [], False

    def __str__(self):
        return "JS220-000415"

    serial_number = "000415"

    def open(self):
        self.opened = True

    def close(self):
        self.opened = False

    def parameter_set(self, name, value):
        self.params[name] = value

    def stream_process_register(self, obj):
        self.procs.append(obj)

    def stream_process_unregister(self, obj):
        self.procs.remove(obj)

    def start(self, stop_fn=None, duration=None, contiguous_duration=None):
        # delivers the stream the way the USB thread does: grow the buffer, notify
        end = self.stop_after or len(self.stream_buffer.data["current"])
        for i in range(0, end, self.chunks):
            self.stream_buffer.end = min(i + self.chunks, end)
            for obj in self.procs:
                obj.stream_notify(self.stream_buffer)

    def stop(self):
        pass


def fake_joulescope(monkeypatch, device):
    mod = types.ModuleType("joulescope")
    mod.scan = lambda name=None, config=None: [device]
    monkeypatch.setitem(sys.modules, "joulescope", mod)


def test_joulescope_windows_from_gpi0(monkeypatch):
    fs = 100_000.0
    p, logic, want = scenario(fs)
    v = np.full(N, 3.3)
    i = p / v
    i[7_000:7_005] = np.nan  # samples the USB link lost (the library's NaN skip fill), between windows
    i[4_000:4_010] = np.nan  # ... and inside window 1
    dev = FakeJoulescopeDevice(FakeStreamBuffer(fs, i, v, logic), chunks=1_333)
    fake_joulescope(monkeypatch, dev)
    with open_meter("joulescope", {"sampling_frequency": 100_000}) as m:
        assert dev.params["current_lsb"] == "gpi0" and dev.params["sampling_frequency"] == 100_000
        m.start()
        m.stop()
        ws = m.windows(iterations=[4, 6])
    assert [w.dropped for w in ws] == [10, 0] and m.trace.dropped == 15
    for w, e in zip(ws, want):
        assert w.energy_j == pytest.approx(e, rel=1e-3)
    assert per_inference(ws)["energy_j"] == pytest.approx(np.median([want[0] / 4, want[1] / 6]), rel=1e-3)
    assert not dev.opened


def test_joulescope_stops_streaming_mid_window(monkeypatch):
    fs = 100_000.0
    p, logic, _ = scenario(fs)
    v = np.full(N, 3.3)
    dev = FakeJoulescopeDevice(FakeStreamBuffer(fs, p / v, v, logic), chunks=1_000, stop_after=12_000)
    fake_joulescope(monkeypatch, dev)
    m = open_meter("joulescope", {"stall_s": 0.05})
    with m:
        m.start()
        time.sleep(0.1)
        m.stop()
        with pytest.raises(MeterError, match="joulescope stopped streaming mid-window.*window 2"):
            m.windows()


def test_joulescope_needs_exactly_one_device(monkeypatch):
    mod = types.ModuleType("joulescope")
    mod.scan = lambda name=None, config=None: []
    monkeypatch.setitem(sys.modules, "joulescope", mod)
    with pytest.raises(MeterError, match="expected one Joulescope, found none"):
        open_meter("joulescope").open()


# PPK2 -----------------------------------------------------------------------------------------------

R = {"0": 1031.64, "1": 101.65, "2": 10.15, "3": 0.94, "4": 0.043}   # ppk2-api's default modifiers
ADC_MULT = 1.8 / 163840


def ppk2_word(amps, counter, logic, rng=2):
    """One raw PPK2 sample: ADC bits 0-13, range 14-16, counter 18-23, logic 24-31 (Nordic's
    pc-nrfconnect-ppk serialDevice.ts masks); the ADC value is what reads back as `amps`."""
    adc = int(round(amps * R[str(rng)] / ADC_MULT / 4))
    return (adc & 0x3FFF) | (rng << 14) | ((counter & 0x3F) << 18) | ((logic & 0xFF) << 24)


def ppk2_amps(word):
    rng = min((word >> 14) & 7, 4)
    return (word & 0x3FFF) * 4 * ADC_MULT / R[str(rng)]


class FakePPK2:
    """ppk2-api 0.9.2's PPK2_API boundary: get_data() returns the raw bytes waiting on the port;
    get_samples(buf) returns (microamps, raw logic bytes) for the whole 4-byte words, keeping a
    remainder across calls, and skips silently a word it cannot convert (here: a range field
    above 4, standing in for the library's 'Measurement outside of range!' path)."""
    stream: list[bytes] = []
    calls: list = []

    def __init__(self, port, **kwargs):
        self.port, self.remainder = port, b""
        self.consumed = 0
        FakePPK2.instance = self

    @staticmethod
    def list_devices():
        return ["/dev/ttyACM9"]

    def get_modifiers(self):
        return True

    def use_source_meter(self):
        self.calls.append("source")

    def use_ampere_meter(self):
        self.calls.append("ampere")

    def set_source_voltage(self, mv):
        self.calls.append(("mV", mv))

    def toggle_DUT_power(self, state):
        self.calls.append(("power", state))

    def start_measuring(self):
        self.calls.append("start")

    def stop_measuring(self):
        self.calls.append("stop")

    def get_data(self):
        if self.consumed < len(self.stream):
            self.consumed += 1
            return self.stream[self.consumed - 1]
        return b""

    def get_samples(self, buf):
        data = self.remainder + buf
        whole = len(data) // 4 * 4
        self.remainder = data[whole:]
        samples, bits = [], []
        for (w,) in np.frombuffer(data[:whole], "<u4").reshape(-1, 1):
            w = int(w)
            if (w >> 14) & 7 > 4:
                continue
            samples.append(ppk2_amps(w) * 1e6)
            bits.append(w >> 24)
        return samples, bits


def fake_ppk2(monkeypatch, words, chunk=4_001):
    raw = np.asarray(words, dtype="<u4").tobytes()
    FakePPK2.stream = [raw[i:i + chunk] for i in range(0, len(raw), chunk)]  # splits words
    FakePPK2.calls = []
    pkg = types.ModuleType("ppk2_api")
    mod = types.ModuleType("ppk2_api.ppk2_api")
    mod.PPK2_API = FakePPK2
    pkg.ppk2_api = mod
    monkeypatch.setitem(sys.modules, "ppk2_api", pkg)
    monkeypatch.setitem(sys.modules, "ppk2_api.ppk2_api", mod)


def ppk2_run(options, words, **kw):
    m = open_meter("ppk2", options)
    with m:
        m.start()
        wait_for(lambda: FakePPK2.instance.consumed == len(FakePPK2.stream))
        time.sleep(kw.get("idle", 0.0))
        m.stop()
        return m, m.windows(iterations=kw.get("iterations"))


def test_ppk2_counter_gaps_and_skipped_words_are_lost_samples(monkeypatch):
    volts, ch = 3.0, 3
    p, logic, _ = scenario(100_000)
    words = [ppk2_word(p[k] / volts, k, int(logic[k]) << ch) for k in range(N)]
    want = [ppk2_amps(words[3000]) * volts * (b - a) / 100_000 for a, b in WINDOWS]
    lost = set(range(4_100, 4_110))            # never arrived: the counter jumps by 11
    words[5_000] = words[5_000] | (7 << 14)    # arrives, but get_samples skips it
    kept = [w for k, w in enumerate(words) if k not in lost]
    fake_ppk2(monkeypatch, kept)
    m, ws = ppk2_run({"voltage_v": volts, "channel": ch}, kept, iterations=[1, 1])
    assert FakePPK2.calls[:3] == ["source", ("mV", 3000), ("power", "ON")]
    assert ws[0].dropped == 11 and ws[1].dropped == 0
    assert ws[0].samples == 4_000 and ws[0].duration_s == pytest.approx(0.04)
    for w, e in zip(ws, want):
        assert w.energy_j == pytest.approx(e, rel=1e-3)


def test_ppk2_noise_and_ampere_mode(monkeypatch):
    volts = 1.8
    p, logic, _ = scenario(100_000)
    rng = np.random.default_rng(1)
    amps = p / volts * (1 + 0.02 * rng.standard_normal(N))
    words = [ppk2_word(amps[k], k, int(logic[k])) for k in range(N)]
    read = np.array([ppk2_amps(w) for w in words]) * volts
    fake_ppk2(monkeypatch, words)
    _, ws = ppk2_run({"mode": "ampere", "voltage_v": volts}, words)
    assert "ampere" in FakePPK2.calls and ("power", "ON") not in FakePPK2.calls
    for w, (a, b) in zip(ws, WINDOWS):
        assert w.energy_j == pytest.approx(read[a:b].sum() / 100_000, rel=1e-3)
        assert w.energy_j == pytest.approx(P_ACTIVE * (b - a) / 100_000, rel=1e-2)


def test_ppk2_stall_and_doubled_event(monkeypatch):
    p, logic, _ = scenario(100_000)
    words = [ppk2_word(p[k] / 3.3, k, int(logic[k])) for k in range(12_000)]  # ends inside window 2
    fake_ppk2(monkeypatch, words)
    with pytest.raises(MeterError, match="ppk2 stopped streaming mid-window"):
        ppk2_run({"stall_s": 0.05}, words, idle=0.1)
    glitch = logic.copy()
    glitch[4_000] = 0   # a one-sample drop of the timestamp line inside window 1: one event too many
    words = [ppk2_word(p[k] / 3.3, k, int(glitch[k])) for k in range(N)]
    fake_ppk2(monkeypatch, words)
    with pytest.raises(MeterError, match="doubled timestamp event: 3 windows seen, 2 expected"):
        ppk2_run({}, words, iterations=[1, 1])


def test_ppk2_unplugged_mid_acquisition_is_reported(monkeypatch):
    p, logic, _ = scenario(100_000)
    words = [ppk2_word(p[k] / 3.3, k, int(logic[k])) for k in range(12_000)]
    fake_ppk2(monkeypatch, words)

    def unplugged(self):
        if self.consumed < len(self.stream):
            self.consumed += 1
            return self.stream[self.consumed - 1]
        raise OSError(5, "Input/output error")  # what pyserial raises when the USB device goes
    monkeypatch.setattr(FakePPK2, "get_data", unplugged)
    with open_meter("ppk2", {}) as m:
        m.start()
        wait_for(lambda: m.trace.failure is not None)  # the reader thread met the error
        m.stop()
        with pytest.raises(MeterError, match="ppk2 failed: OSError: .*Input/output error"):
            m.windows()


def test_ppk2_options_are_checked(monkeypatch):
    fake_ppk2(monkeypatch, [])
    with pytest.raises(MeterError, match="channel must be 0-7"):
        open_meter("ppk2", {"channel": 8}).open()
    with pytest.raises(MeterError, match="timestamp must be one of high, falling"):
        open_meter("ppk2", {"timestamp": "rising"})


# INA219 / INA260 ------------------------------------------------------------------------------------

class FakeSMBus:
    """smbus2.SMBus's boundary: read_word_data / write_word_data move the low byte first, so a
    big-endian INA register 0x1234 reads back as 0x3412. The registers hold what the chip would
    report for `state["p"]` watts at `state["v"]` volts (datasheets SBOS448, SBOS656)."""
    state: dict = {}

    def __init__(self, bus):
        self.bus, self.written = bus, {}
        FakeSMBus.instance = self

    def _reg(self, reg):
        s = self.state
        if s.get("fail"):
            s["fail"] -= 1
            raise OSError(121, "Remote I/O error")
        amps = s["p"] / s["v"]
        if s["chip"] == "ina219":
            return {0x00: self.written.get(0, 0x399F),
                    0x01: int(round(amps * s["shunt"] / 10e-6)) & 0xFFFF,
                    0x02: (int(round(s["v"] / 4e-3)) << 3) | 0x2}[reg]
        return {0x00: self.written.get(0, 0x6127), 0x01: int(round(amps / 1.25e-3)) & 0xFFFF,
                0x02: int(round(s["v"] / 1.25e-3)), 0x06: 0x8, 0xFE: s.get("id", 0x5449)}[reg]

    def read_word_data(self, addr, reg):
        assert addr == 0x41
        w = self._reg(reg)
        return ((w & 0xFF) << 8) | (w >> 8)

    def write_word_data(self, addr, reg, value):
        self.written[reg] = ((value & 0xFF) << 8) | (value >> 8)

    def close(self):
        pass


@pytest.mark.parametrize("chip, p_active, volts", [("ina219", 0.5, 5.0), ("ina260", 2.5, 5.0)])
def test_ina_windows_marked_by_the_agent(monkeypatch, chip, p_active, volts):
    mod = types.ModuleType("smbus2")
    mod.SMBus = FakeSMBus
    monkeypatch.setitem(sys.modules, "smbus2", mod)
    FakeSMBus.state = {"chip": chip, "v": volts, "p": 0.1, "shunt": 0.1}
    clock = types.SimpleNamespace(t=0.0)
    m = open_meter(chip, {"address": 0x41})
    m.clock = lambda: clock.t
    m.threaded = False  # the test drives sampling on its own clock; the agent uses the thread
    dt = 0.001
    with m:
        assert FakeSMBus.instance.written[0] == (0x399F if chip == "ina219" else 0x6127)
        m.start()
        for k in range(6_000):
            clock.t = k * dt
            if k == 1_000:
                m.mark_start()
                FakeSMBus.state["p"] = p_active
            if k == 3_000:
                FakeSMBus.state["p"] = 0.1
                m.mark_end()
            if k == 4_000:
                FakeSMBus.state["fail"] = 1   # one failed I2C read: a lost sample
            m.sample()
        m.stop()
        (w,) = m.windows(iterations=2)
    assert w.energy_j == pytest.approx(p_active * 2.0, rel=1e-3)
    assert m.trace.dropped == 1 and w.dropped == 0
    assert w.energy_per_iteration_j == pytest.approx(p_active, rel=1e-3)


def test_ina_thread_and_window_context(monkeypatch):
    mod = types.ModuleType("smbus2")
    mod.SMBus = FakeSMBus
    monkeypatch.setitem(sys.modules, "smbus2", mod)
    FakeSMBus.state = {"chip": "ina260", "v": 5.0, "p": 1.0}
    # a loaded test machine may pause the polling thread: lost samples are not the point here
    with open_meter("ina260", {"address": 0x41, "max_dropped": 1.0}) as m:
        m.start()
        time.sleep(0.02)
        with m.window():
            time.sleep(0.05)
        time.sleep(0.02)
        m.stop()
        (w,) = m.windows()
    assert w.power_w == pytest.approx(1.0, rel=1e-2) and w.samples > 10


def test_ina260_wrong_chip_is_a_clear_error(monkeypatch):
    mod = types.ModuleType("smbus2")
    mod.SMBus = FakeSMBus
    monkeypatch.setitem(sys.modules, "smbus2", mod)
    FakeSMBus.state = {"chip": "ina260", "v": 5.0, "p": 1.0, "id": 0x1234}
    with pytest.raises(MeterError, match="manufacturer ID 0x1234"):
        open_meter("ina260", {"address": 0x41}).open()
