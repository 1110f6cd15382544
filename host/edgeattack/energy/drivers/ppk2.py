"""Nordic Power Profiler Kit II through `ppk2-api` (PPK2_API, read from ppk2-api 0.9.2).

The stream: `PPK2_API.get_data()` returns the raw bytes waiting on the serial port; every sample is
a little-endian 32-bit word (Nordic's pc-nrfconnect-ppk, src/device/serialDevice.ts):
    bits 0-13 ADC value, 14-16 current range, 18-23 a 6-bit sample counter, 24-31 the 8 logic
    inputs D0-D7
at 100,000 samples per second (adcSamplingTimeUs = 10). `get_samples(buf)` turns whole words into
microamps (calibrated, spike-filtered) plus the raw logic byte per sample, but silently skips a
sample it cannot convert, and it never looks at the counter.

Lost samples, detected two ways: (1) the counter: each word's counter must be the previous one
plus 1 (mod 64), as Nordic's app checks; a jump of k means k-1 samples never arrived (a loss of a
multiple of 64 samples in one gap is invisible, as it is to Nordic's app). (2) a word get_samples
skipped: when it returns fewer values than words, the chunk is converted again word by word (the
library's filter state restored first) to find which. Lost samples are NaN on the time axis and
handled by the shared Trace (interpolated, counted, refused beyond max_dropped).

Options: port (default: the only PPK2 found), mode ("source": the PPK2 powers the board at
voltage_v; "ampere": it measures a board powered elsewhere at voltage_v), voltage_v, channel (the
logic input 0-7 wired to the board's timestamp pin), timestamp ("high" or "falling").
"""
from __future__ import annotations

import numpy as np

from ..meter import MeterBase, import_library, register
from ..trace import MeterError

RATE_HZ = 100_000
_FILTER_STATE = ("rolling_avg", "rolling_avg4", "prev_range", "consecutive_range_samples",
                 "after_spike")


def decode_words(data: bytes) -> np.ndarray:
    """Whole 4-byte little-endian sample words."""
    return np.frombuffer(data[: len(data) // 4 * 4], dtype="<u4")


@register("ppk2")
class PPK2(MeterBase):
    OPTIONS = {"port": None, "mode": "source", "voltage_v": 3.3, "channel": 0}

    def _connect(self) -> None:
        lib = import_library("ppk2_api.ppk2_api", "ppk2-api", self.name)
        o = self.options
        if o["mode"] not in ("source", "ampere"):
            raise MeterError(f"energy meter ppk2: option mode must be source or ampere, got {o['mode']!r}")
        if o["channel"] not in range(8):
            raise MeterError(f"energy meter ppk2: option channel must be 0-7, got {o['channel']!r}")
        if not 0.8 <= float(o["voltage_v"]) <= 5.0:
            raise MeterError(f"energy meter ppk2: option voltage_v must be 0.8-5.0 V, got {o['voltage_v']!r}")
        port = o["port"]
        if port is None:
            found = lib.PPK2_API.list_devices()
            if len(found) != 1:
                raise MeterError(f"energy meter ppk2: expected one PPK2, found {found or 'none'} "
                                 f"(set energy.options.port)")
            port = found[0]
        self.ppk = lib.PPK2_API(port, timeout=1, write_timeout=1)
        self.ppk.get_modifiers()
        if o["mode"] == "source":
            self.ppk.use_source_meter()
        else:
            self.ppk.use_ampere_meter()
        self.ppk.set_source_voltage(int(round(float(o["voltage_v"]) * 1000)))
        if o["mode"] == "source":
            self.ppk.toggle_DUT_power("ON")

    def _disconnect(self) -> None:
        ser = getattr(self.ppk, "ser", None)
        if ser is not None:
            ser.close()

    def _begin(self) -> None:
        self._rem = b""
        self._counter: int | None = None
        self._index = 0
        self.ppk.start_measuring()

    def _end(self) -> None:
        self.ppk.stop_measuring()

    def _poll(self) -> bool:
        buf = self.ppk.get_data()
        if not buf:
            return False
        data = self._rem + bytes(buf)
        whole = len(data) // 4 * 4
        self._rem = data[whole:]
        if whole:
            self._take(data[:whole])
        return True

    def _currents_a(self, chunk: bytes, n: int) -> np.ndarray:
        """Amps per word, NaN where get_samples skipped one."""
        saved = {k: getattr(self.ppk, k) for k in _FILTER_STATE if hasattr(self.ppk, k)}
        samples, _ = self.ppk.get_samples(chunk)
        if len(samples) == n:
            return np.asarray(samples, dtype=np.float64) * 1e-6
        for k, v in saved.items():
            setattr(self.ppk, k, v)
        out = np.full(n, np.nan)
        for k in range(n):
            one, _ = self.ppk.get_samples(chunk[4 * k: 4 * k + 4])
            if one:
                out[k] = one[0] * 1e-6
        return out

    def _take(self, chunk: bytes) -> None:
        words = decode_words(chunk)
        n = len(words)
        amps = self._currents_a(chunk, n)
        counter = ((words >> 18) & 0x3F).astype(np.int64)
        prev = np.concatenate(([counter[0] - 1 if self._counter is None else self._counter],
                               counter[:-1]))
        missing = (counter - prev - 1) % 64
        self._counter = int(counter[-1])
        pos = self._index + np.cumsum(1 + missing) - 1
        total = int(pos[-1]) + 1 - self._index
        p = np.full(total, np.nan)
        logic = np.zeros(total, dtype=np.int8)
        p[pos - self._index] = amps * float(self.options["voltage_v"])
        logic[pos - self._index] = (words >> (24 + int(self.options["channel"]))) & 1
        t = (self._index + np.arange(total)) / RATE_HZ
        self._index += total
        self.trace.add(t, p, logic)
