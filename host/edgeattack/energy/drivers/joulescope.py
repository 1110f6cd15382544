"""Joulescope JS110 / JS220 through the `joulescope` package (v1 backend, joulescope 1.x).

What the library delivers (read from joulescope 1.5.0, joulescope/v1/device.py and
stream_buffer.py): `Device.stream_process_register(obj)` calls `obj.stream_notify(stream_buffer)`
from its USB thread whenever samples arrive; `stream_buffer.sample_id_range` is (first, end) in
output samples and `stream_buffer.samples_get(start, stop, fields=[...])` returns
{"time": {..., "output_sampling_frequency": {"value": Hz}}, "signals": {field: {"value": array,
"units": ...}}}: `current` float32 A, `voltage` float32 V, and `current_lsb` / `voltage_lsb`
uint8 0/1, which carry the general-purpose inputs GPI0 / GPI1 once the parameter of that name is
set to "gpi0" / "gpi1" (on the JS220 the v1 backend streams them from s/gpi/0/ and s/gpi/1/).
Samples the USB link lost are NaN in the float signals (SampleBuffer's skip fill); samples that
scrolled out of the ring buffer before we read them are counted as lost here. MLPerf Tiny's own
runner (benchmark/runner/power_manager/power_manager_js220.py) reads the same three fields.

Options: serial (pick one of several Joulescopes), sampling_frequency (Hz, default 100 kHz: the
trace is kept in memory), gpi (0 or 1: the input wired to the board's timestamp pin),
timestamp ("high" or "falling", docs/energy.md).
"""
from __future__ import annotations

import numpy as np

from ..meter import MeterBase, import_library, register
from ..trace import MeterError


class _Collector:
    """The object the library calls back (kept apart from the meter: the library also calls
    start()/stop() on registered objects)."""

    def __init__(self, meter: "Joulescope"):
        self.meter = meter
        self.driver_active = True

    def stream_notify(self, stream_buffer) -> bool:
        self.meter._take(stream_buffer)
        return False  # keep streaming


@register("joulescope")
class Joulescope(MeterBase):
    threaded = False  # the library calls us from its own thread
    OPTIONS = {"serial": None, "sampling_frequency": 100_000, "gpi": 0, "buffer_duration": 30}

    def _connect(self) -> None:
        js = import_library("joulescope", "joulescope", self.name)
        devices = list(js.scan(config="auto"))
        serial = self.options["serial"]
        if serial is not None:
            devices = [d for d in devices if str(serial) in (str(d), str(getattr(d, "serial_number", "")))]
        if len(devices) != 1:
            found = ", ".join(str(d) for d in js.scan(config="auto")) or "none"
            raise MeterError(f"energy meter joulescope: expected one Joulescope"
                             f"{f' with serial {serial}' if serial else ''}, found {found} "
                             f"(set energy.options.serial)")
        gpi = self.options["gpi"]
        if gpi not in (0, 1):
            raise MeterError(f"energy meter joulescope: option gpi must be 0 or 1, got {gpi!r}")
        self._field = "current_lsb" if gpi == 0 else "voltage_lsb"
        self.device = devices[0]
        self.device.open()
        self.device.parameter_set("i_range", "auto")
        self.device.parameter_set("sampling_frequency", int(self.options["sampling_frequency"]))
        self.device.parameter_set("buffer_duration", int(self.options["buffer_duration"]))
        self.device.parameter_set(self._field, f"gpi{gpi}")

    def _disconnect(self) -> None:
        self.device.close()

    def _begin(self) -> None:
        self._next = None
        self._first = None
        self._collector = _Collector(self)
        self.device.stream_process_register(self._collector)
        self.device.start(stop_fn=self._on_stop)

    def _end(self) -> None:
        self.device.stop()
        self.device.stream_process_unregister(self._collector)

    def _on_stop(self, event=0, message="") -> None:
        if event or message:  # the library stopped on its own (device error, unplugged)
            self.trace.mark_stalled(f"the Joulescope stopped: {message or event}")

    def _take(self, sb) -> None:
        first, end = sb.sample_id_range
        if first is None or end is None or end <= first:
            return
        if self._next is None:
            self._next = self._first = first
        lost = max(0, first - self._next)  # overwritten in the ring buffer before we read them
        start = max(self._next, first)
        if end <= start:
            return
        data = sb.samples_get(start, end, fields=["current", "voltage", self._field])
        fs = float(data["time"]["output_sampling_frequency"]["value"])
        sig = data["signals"]
        i = np.asarray(sig["current"]["value"], dtype=np.float64)
        v = np.asarray(sig["voltage"]["value"], dtype=np.float64)
        logic = np.asarray(sig[self._field]["value"])
        ids = np.arange(start, start + len(i))
        if lost:
            gap = np.arange(self._next, start)
            self.trace.add((gap - self._first) / fs, np.full(len(gap), np.nan),
                           np.full(len(gap), logic[0] if len(logic) else 0))
        self.trace.add((ids - self._first) / fs, i * v, logic)
        self._next = start + len(i)
