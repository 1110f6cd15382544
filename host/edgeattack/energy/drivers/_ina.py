"""What the INA219 and INA260 drivers share: register access over smbus2 and software timestamps.

These chips sit in the supply line of a board and are read over I2C by the computer they are wired
to (a Raspberry Pi's /dev/i2c-1): the Pi agent samples them in a background thread while it runs
inferences, so it can mark each window itself (mark_start / mark_end, or `with meter.window():`)
on the same clock as the samples and report energy per window.

smbus2's read_word_data / write_word_data move the low byte first (SMBus order) while INA2xx
registers are big-endian (most significant byte first on the wire), so every word is byte-swapped.
A failed I2C read is a lost sample (NaN, counted); so is a conversion the chip flags as an
overflow. The loop polls every interval_s (default 1 ms), so a stall of the loop (a hole in the
time axis of more than 5 periods) also counts as lost samples.
"""
from __future__ import annotations

import contextlib
import time

from ..meter import MeterBase, import_library
from ..trace import MeterError


def swap16(word: int) -> int:
    return ((word & 0xFF) << 8) | ((word >> 8) & 0xFF)


def signed16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


class InaMeter(MeterBase):
    OPTIONS = {"bus": 1, "address": 0x40, "config": None, "interval_s": 0.001}
    CONFIG_DEFAULT = 0
    clock = staticmethod(time.monotonic)

    @property
    def nominal_dt(self) -> float:
        return float(self.options["interval_s"])

    def _connect(self) -> None:
        smbus2 = import_library("smbus2", "smbus2", self.name)
        o = self.options
        if not (isinstance(o["address"], int) and 0x40 <= o["address"] <= 0x4F):
            raise MeterError(f"energy meter {self.name}: option address must be an I2C address "
                             f"0x40-0x4F, got {o['address']!r}")
        try:
            self.bus = smbus2.SMBus(o["bus"])
        except OSError as err:
            raise MeterError(f"energy meter {self.name}: cannot open I2C bus {o['bus']}: {err} "
                             f"(enable I2C on the Pi: raspi-config)") from None
        try:
            self._check_chip()
            self.write(0x00, self.CONFIG_DEFAULT if o["config"] is None else int(o["config"]))
        except OSError as err:
            self.bus.close()
            raise MeterError(f"energy meter {self.name}: no answer at I2C address "
                             f"{o['address']:#04x} on bus {o['bus']}: {err}") from None

    def _disconnect(self) -> None:
        self.bus.close()

    def read(self, reg: int) -> int:
        return swap16(self.bus.read_word_data(self.options["address"], reg))

    def write(self, reg: int, value: int) -> None:
        self.bus.write_word_data(self.options["address"], reg, swap16(value & 0xFFFF))

    # acquisition ----------------------------------------------------------------------------------

    def _begin(self) -> None:
        self._t0 = self.clock()
        self._buf_t: list[float] = []
        self._buf_p: list[float] = []
        self._flushed = self._t0

    def _end(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if self._buf_t:
            self.trace.add(self._buf_t, self._buf_p)
            self._buf_t, self._buf_p = [], []
        self._flushed = self.clock()

    def sample(self) -> None:
        """Read one sample now (the reader thread calls this in a loop)."""
        t = self.clock() - self._t0
        try:
            p = self._power_w()
        except OSError:
            p = float("nan")
        self._buf_t.append(t)
        self._buf_p.append(p)
        if len(self._buf_t) >= 256 or self.clock() - self._flushed > 0.05:
            self._flush()

    def _poll(self) -> bool:
        began = self.clock()
        self.sample()
        # poll on a fixed period: the chip converts every ~0.5-1 ms, reading faster only repeats
        time.sleep(max(0.0, self.nominal_dt - (self.clock() - began)))
        return True

    def mark_start(self) -> None:
        self.trace.event(self.clock() - self._t0, "rise")

    def mark_end(self) -> None:
        self.trace.event(self.clock() - self._t0, "fall")

    @contextlib.contextmanager
    def window(self):
        """`with meter.window(): run the inferences`: one measurement window."""
        self.mark_start()
        try:
            yield
        finally:
            self.mark_end()

    # per chip ---------------------------------------------------------------------------------------

    def _check_chip(self) -> None:
        raise NotImplementedError

    def _power_w(self) -> float:
        raise NotImplementedError


def nan_if(flag: bool, value: float) -> float:
    return float("nan") if flag else value

