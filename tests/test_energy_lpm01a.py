"""The LPM01A driver over a REAL serial link: a simulated PowerShield on a pty (os.openpty), a
thread speaking its command set, and the driver opening the pty's path with pyserial at
3,686,400 baud.

The simulated meter follows MLPerf Tiny's energy runner (mlcommons/tiny,
benchmark/runner/power_manager/power_manager_lpm.py and script.py): replies `ack <command>` behind
the `PowerShield > ` prompt, or `error <command>` then `Error detail: ...`; after `start`, one
sample per line in mantissa-exponent form (`4150-08` = 41.5 uJ in one 1 ms period with
`output energy`, `freq 1k`), `event <n> ris` lines for D7 edges and `TimeStamp: 001s 000ms, buff
00%` once a second; `stop` ends with `Acquisition completed`."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from edgeattack.energy import MeterError, open_meter, per_inference

PROMPT = "PowerShield > "


def fmt(joules: float) -> str:
    """A sample the way the LPM01A prints it: 4 mantissa digits, signed 2-digit exponent."""
    exp = int(np.floor(np.log10(joules))) - 3
    return f"{int(round(joules / 10.0 ** exp)):04d}{exp:+03d}"


def acquisition(windows, n=6_000, e_idle=5e-6, e_active=41.5e-6, drop=(), events=None,
                stop_at=None):
    """The lines of one acquisition at 1 kHz and the known window energies. An event line is
    printed before the sample at its index (MLPerf's runner dates it at len(samples))."""
    energy = np.full(n, e_idle)
    for a, b in windows:
        energy[a:b] = e_active
    marks = events if events is not None else sorted(i for w in windows for i in w)
    lines, count = [], 0
    for i in range(n if stop_at is None else stop_at):
        for _ in range(marks.count(i)):
            count += 1
            lines.append(f"event {count} ris")
        if i and i % 1000 == 0:
            lines.append(f"TimeStamp: {i // 1000:03d}s 000ms, buff 00%")
        if i not in drop:
            lines.append(fmt(energy[i]))
    want = [energy[a:b].sum() for a, b in windows]
    return lines, want


class SimulatedLPM01A(threading.Thread):
    """The PowerShield's side of the pty."""

    def __init__(self, lines, refuse=()):
        super().__init__(daemon=True)
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        self.slave = slave  # kept open so the pty survives between the driver's opens
        self.lines, self.refuse = lines, refuse
        self.commands: list[str] = []
        self.running = True

    def send(self, text: str) -> None:
        os.write(self.master, (text + "\r\n").encode())

    def run(self) -> None:
        buf = b""
        while self.running:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                cmd = raw.decode().strip()
                if not cmd:
                    continue
                self.commands.append(cmd)
                if cmd == "stop":
                    self.send(f"{PROMPT}Acquisition completed")
                    self.send("Summary: ...")
                elif cmd in self.refuse:
                    self.send(f"{PROMPT}error {cmd}")
                    self.send("Error detail: argument out of range")
                else:
                    self.send(f"{PROMPT}ack {cmd}")
                    if cmd == "start":
                        for i in range(0, len(self.lines), 200):
                            os.write(self.master, "".join(l + "\r\n" for l in self.lines[i:i + 200]).encode())

    def close(self) -> None:
        self.running = False
        os.close(self.master)
        os.close(self.slave)
        self.join(timeout=5)


@pytest.fixture
def lpm():
    made = []

    def make(lines, **kw):
        sim = SimulatedLPM01A(lines, **kw)
        sim.start()
        made.append(sim)
        return sim
    yield make
    for sim in made:
        sim.close()


def run(sim, options=None, iterations=None, settle=0.0):
    m = open_meter("lpm01a", {"port": sim.path, "voltage_v": 1.8, **(options or {})})
    with m:
        m.start()
        wait_for_samples(m, sim)
        time.sleep(settle)
        m.stop()
        return m, m.windows(iterations=iterations)


def wait_for_samples(m, sim, timeout=20.0):
    want = sum(1 for l in sim.lines if l[0].isdigit())
    end = time.monotonic() + timeout
    while m.trace.samples()[0].size < want and time.monotonic() < end:
        time.sleep(0.01)


def test_set_up_windows_and_exact_energy(lpm):
    lines, want = acquisition([(1_000, 3_000), (3_500, 5_500)])
    sim = lpm(lines)
    m, ws = run(sim, iterations=[10, 10])
    assert sim.commands[:10] == ["htc", "pwr off", "acqtime inf", "trigdelay 0", "trigsrc sw",
                                 "eventsrc d7 fal", "output energy", "format ascii_dec", "freq 1k",
                                 "volt 1800m"]
    assert sim.commands[10:] == ["pwr on nostatus", "start", "stop", "hrc"]
    for w, e in zip(ws, want):
        assert w.energy_j == pytest.approx(e, rel=1e-3)
        assert w.duration_s == pytest.approx(2.0) and w.dropped == 0
    assert per_inference(ws)["energy_j"] == pytest.approx(want[0] / 10, rel=1e-3)


def test_lost_lines_are_found_by_the_timestamp_lines(lpm):
    lines, want = acquisition([(1_000, 3_500)], drop=set(range(2_100, 2_105)))
    sim = lpm(lines)
    m, (w,) = run(sim)
    # 995 samples between TimeStamp 002s and 003s: 5 lost, placed before the 003s line
    assert w.dropped == 5 and m.trace.dropped == 5
    assert w.energy_j == pytest.approx(2_500 * 41.5e-6, rel=1e-3)  # filled from its neighbours
    assert w.duration_s == pytest.approx(2.5)                       # the time axis kept its length


def test_missing_event_number_and_doubled_event(lpm):
    lines, _ = acquisition([(1_000, 3_000), (3_500, 5_500)])
    gap = [l for l in lines if l != "event 2 ris"]                   # the meter numbered 1, 3, 4
    with pytest.raises(MeterError, match="missing timestamp event: the LPM01A numbered event 3 after event 1"):
        run(lpm(gap))
    doubled, _ = acquisition([(1_000, 3_000)], events=[1_000, 2_000, 3_000])
    with pytest.raises(MeterError, match="doubled timestamp event: 3 events seen, 2 expected for 1 windows"):
        run(lpm(doubled), iterations=[10])


def test_meter_that_stops_streaming_mid_window(lpm):
    lines, _ = acquisition([(1_000, 3_000)], stop_at=2_000)
    with pytest.raises(MeterError) as err:
        run(lpm(lines), options={"stall_s": 0.1}, settle=0.3)
    assert "lpm01a stopped streaming mid-window" in str(err.value) and "\n" not in str(err.value)


def test_refused_command_and_bad_options(lpm):
    sim = lpm([], refuse=("volt 1800m",))
    with pytest.raises(MeterError, match="lpm01a refused 'volt 1800m': argument out of range"):
        open_meter("lpm01a", {"port": sim.path, "voltage_v": 1.8}).open()
    with pytest.raises(MeterError, match="voltage_v must be 1.8-3.3"):
        open_meter("lpm01a", {"port": sim.path, "voltage_v": 5}).open()
    with pytest.raises(MeterError, match="set energy.options.port"):
        open_meter("lpm01a").open()
