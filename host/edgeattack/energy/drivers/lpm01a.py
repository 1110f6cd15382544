"""ST X-NUCLEO-LPM01A (PowerShield) over its USB virtual COM port, with pyserial.

Command set and formats, as MLPerf Tiny's energy runner uses them (mlcommons/tiny,
benchmark/runner/power_manager/power_manager_lpm.py, with the PowerShield command table in that
file, and script.py / main.py for how the stream is read; eembc/energyrunner README for the D7
wiring): 3,686,400 baud; commands end with CR LF; each is answered by a line `ack <command>` or
`error <command> ...` followed by `Error detail: ...`, possibly behind the prompt `PowerShield > `.
Set-up: `htc` (host takes control), `pwr off`, `acqtime inf`, `trigdelay 0`, `trigsrc sw`,
`eventsrc d7 fal` (a falling edge on Arduino D7 is a timestamp event), `output energy` (each sample
is the energy integrated over one sample period, then reset), `format ascii_dec`, `freq 1k`,
`volt <mV>m`, then `pwr on nostatus` and `start`. While acquiring it prints one sample per line in
mantissa-exponent form (`6409-07` = 6409 x 10^-7; joules per period in energy mode, which the
runner sums), `event <n> ris` when D7 sees an edge (n counts events), and once a second
`TimeStamp: 001s 000ms, buff 00%`. `stop` is not acked: acquisition ends with a line containing
`Acquisition completed`. `hrc` releases control.

Lost samples: between two TimeStamp lines there must be (seconds apart x freq) samples; fewer
means the host or USB lost lines. Where in that second is unknowable, so the missing samples are
placed just before the TimeStamp line (NaN, interpolated and counted by the shared Trace; a
window losing more than max_dropped is refused). A gap in the event numbers is a missing
timestamp event, an error. A line that is part sample, part garbage counts as one lost sample.

Options: port (required), voltage_v (1.8-3.3, the supply to the board), freq (sample rate
string: 1k by default, <= 5k for unlimited ascii acquisition), power (switch the board's supply
on at start; default true), timeout_s (reply timeout).
"""
from __future__ import annotations

import collections
import re
import time

import numpy as np

from ..meter import MeterBase, import_library, register
from ..trace import MeterError

BAUDRATE = 3_686_400
PROMPT = "PowerShield > "
_SAMPLE = re.compile(r"\d{4}[+-]\d{2}")
_SAMPLES_LINE = re.compile(r"(?:\d{4}[+-]\d{2})+")
_EVENT = re.compile(r"event (\d+) (ris|fal)")
_TIMESTAMP = re.compile(r"TimeStamp:[ ><](\d{3})s (\d{3})ms, buff (\d{2})%")
_FREQS = {"100k": 100_000, "50k": 50_000, "20k": 20_000, "10k": 10_000, "5k": 5_000, "2k": 2_000,
          "1k": 1_000, "500": 500, "200": 200, "100": 100, "50": 50, "20": 20, "10": 10, "5": 5,
          "2": 2, "1": 1}


def parse_sample(text: str) -> float:
    """`6409-07` -> 6409e-07."""
    return int(text[:4]) * 10.0 ** int(text[4:])


@register("lpm01a")
class LPM01A(MeterBase):
    rule = "rectangle"  # each sample is the energy of one period
    OPTIONS = {"port": None, "voltage_v": 3.3, "freq": "1k", "power": True, "timeout_s": 2.0}

    def default_timestamp(self) -> str:
        return "falling"  # the LPM01A reports one kind of edge: consecutive events bound a window

    def _connect(self) -> None:
        o = self.options
        if not o["port"]:
            raise MeterError("energy meter lpm01a: set energy.options.port (its virtual COM port, "
                             "e.g. /dev/ttyACM0)")
        if str(o["freq"]) not in _FREQS or _FREQS[str(o["freq"])] > 5_000:
            raise MeterError(f"energy meter lpm01a: option freq must be one of 5k, 2k, 1k, 500, "
                             f"200, 100, 50, 20, 10, 5, 2, 1 (ascii_dec streams), got {o['freq']!r}")
        if not 1.8 <= float(o["voltage_v"]) <= 3.3:
            raise MeterError(f"energy meter lpm01a: option voltage_v must be 1.8-3.3 V, got {o['voltage_v']!r}")
        if self.timestamp != "falling":
            raise MeterError("energy meter lpm01a: it reports only falling-edge events "
                             "(eventsrc d7 fal): option timestamp must be falling")
        serial = import_library("serial", "pyserial", self.name)
        self.rate = _FREQS[str(o["freq"])]
        self._partial = b""
        self._ready: collections.deque[bytes] = collections.deque()
        try:
            self.port = serial.Serial(o["port"], BAUDRATE, timeout=0.05)
        except (OSError, serial.SerialException) as err:
            raise MeterError(f"energy meter lpm01a: cannot open {o['port']}: {err}") from None
        for cmd in ("htc", "pwr off", "acqtime inf", "trigdelay 0", "trigsrc sw", "eventsrc d7 fal",
                    "output energy", "format ascii_dec", f"freq {o['freq']}",
                    f"volt {int(round(float(o['voltage_v']) * 1000))}m"):
            self.command(cmd)

    def _disconnect(self) -> None:
        try:
            self.command("hrc")
        finally:
            self.port.close()

    # the serial line ------------------------------------------------------------------------------

    def _readline(self) -> str | None:
        """One complete line (prompt stripped), or None after the port's short timeout. Reads
        whatever is waiting in one call (pyserial's readline reads byte by byte: too slow for
        a 1 kHz stream)."""
        if not self._ready:
            chunk = self.port.read(max(1, self.port.in_waiting))
            if not chunk:
                return None
            *done, self._partial = (self._partial + chunk).split(b"\n")
            self._ready.extend(done)
            if not self._ready:
                return None
        text = self._ready.popleft().decode("ascii", "replace").strip("\r\n\0 ")
        while text.startswith(PROMPT.strip()):
            text = text[len(PROMPT.strip()):].strip()
        return text

    def command(self, cmd: str) -> list[str]:
        """Send one command; return the lines before its ack; a refusal is one clear error."""
        self.port.write(f"{cmd}\r\n".encode("ascii"))
        deadline = time.monotonic() + float(self.options["timeout_s"])
        before: list[str] = []
        while time.monotonic() < deadline:
            line = self._readline()
            if line is None:
                continue
            if line.startswith("ack") and cmd in line:
                return before
            if line.startswith("error") and cmd in line:
                detail = line
                end = time.monotonic() + float(self.options["timeout_s"])
                while time.monotonic() < end:
                    more = self._readline()
                    if more and more.startswith("Error detail"):
                        detail = more.split(":", 1)[1].strip()
                        break
                raise MeterError(f"energy meter lpm01a refused '{cmd}': {detail}")
            if line:
                before.append(line)
        raise MeterError(f"energy meter lpm01a: no reply to '{cmd}' within "
                         f"{self.options['timeout_s']} s on {self.options['port']} (is it the "
                         f"PowerShield's port, firmware 1.0.6 or later?)")

    # acquisition ----------------------------------------------------------------------------------

    def _begin(self) -> None:
        self._n = 0                   # samples so far (including ones inserted as lost)
        self._last_ts: tuple[float, int] | None = None
        self._last_event: int | None = None
        self._pending: list[float] = []
        if self.options["power"]:
            self.command("pwr on nostatus")
        self.command("start")

    def _end(self) -> None:
        self.port.write(b"stop\r\n")
        deadline = time.monotonic() + float(self.options["timeout_s"])
        while time.monotonic() < deadline:
            line = self._readline()
            if line is None:
                continue
            if "Acquisition completed" in line:
                break
            self._line(line)
        else:
            self.trace.mark_stalled("no 'Acquisition completed' after stop")
        self._flush()

    def _poll(self) -> bool:
        line = self._readline()
        if line is None:
            self._flush()
            return False
        self._line(line)
        return True

    def _add(self, energies: list[float]) -> None:
        self._pending.extend(energies)  # batched: one array per line would cost memory per sample
        self._n += len(energies)
        if len(self._pending) >= 500:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            e = np.asarray(self._pending, dtype=np.float64)
            t = (self._n - len(e) + np.arange(len(e))) / self.rate
            self.trace.add(t, e * self.rate)  # W held over each period (rectangle rule)
            self._pending = []

    def _line(self, line: str) -> None:
        if _SAMPLES_LINE.fullmatch(line):
            self._add([parse_sample(s) for s in _SAMPLE.findall(line)])
        elif (m := _EVENT.fullmatch(line)) is not None:
            n = int(m.group(1))
            if self._last_event is not None and n != self._last_event + 1:
                self.trace.fail(f"missing timestamp event: the LPM01A numbered event {n} after "
                                f"event {self._last_event}")
            self._last_event = n
            self.trace.event(self._n / self.rate, "fall")
        elif (m := _TIMESTAMP.fullmatch(line)) is not None:
            secs = int(m.group(1)) + int(m.group(2)) / 1000
            if self._last_ts is not None:
                expected = round((secs - self._last_ts[0]) * self.rate)
                got = self._n - self._last_ts[1]
                if got < expected:
                    self._add([np.nan] * (expected - got))
            self._last_ts = (secs, self._n)
        elif _SAMPLE.search(line):  # part sample, part garbage: one sample lost
            self._add([np.nan])
