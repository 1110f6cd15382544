"""The EnergyMeter protocol, the registry of drivers, and the base class drivers build on.

A meter is used like this (labgrid-style: a small protocol, one driver module per meter):

    meter = open_meter("ppk2", {"port": "/dev/ttyACM1", "voltage_v": 3.3})
    with meter:                        # open() ... close()
        meter.start()                  # start acquisition
        ...                            # the device runs INFER windows (timestamp GPIO / events)
        meter.stop()
        windows = meter.windows(iterations=[10, 10, 10])
    per_inference(windows)["energy_j"] # MLPerf Tiny: median over windows of energy / iterations

Drivers live in edgeattack.energy.drivers, one module per meter name; a module registers its
class with @register("name"), so adding a meter touches one module. Each imports its library
lazily (none is required to import edgeattack) and names the pip package when it is missing.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
import threading
import time
from typing import Callable, Protocol, Sequence, runtime_checkable

from .trace import MeterError, Trace, Window

_REGISTRY: dict[str, type] = {}
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@runtime_checkable
class EnergyMeter(Protocol):
    name: str

    def open(self) -> None: ...
    def close(self) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def windows(self, iterations: int | Sequence[int] | None = None) -> list[Window]: ...


def register(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


def meter_names() -> list[str]:
    """Every meter a driver module exists for (importing none of their libraries)."""
    from . import drivers
    return sorted(m.name for m in pkgutil.iter_modules(drivers.__path__) if not m.name.startswith("_"))


def meter_class(name: str) -> type:
    if name not in _REGISTRY:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name not in meter_names():
            raise MeterError(f"unknown energy meter {name!r} (known meters: "
                             f"{', '.join(meter_names())}; see docs/energy.md)")
        importlib.import_module(f"{__package__}.drivers.{name}")
    return _REGISTRY[name]


def open_meter(name: str, options: dict | None = None) -> "MeterBase":
    """A meter of that name with its options (the profile's `energy.options`); not yet opened."""
    return meter_class(name)(**(options or {}))


def import_library(module: str, pip_name: str, meter: str):
    """Import a meter's library, or fail in one line naming the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MeterError(f"energy meter {meter} needs the Python package {pip_name} "
                         f"(pip install {pip_name}): {err}") from None


class MeterBase:
    """What every driver shares: options checking, the Trace, a reader thread, stall detection.

    Subclasses implement _connect(), _disconnect(), _begin() (start the meter streaming) and
    _end(); polling meters implement _poll() (read what is available into self.trace; return
    False when nothing came) and leave `threaded` True; callback-driven ones set it False.
    """
    name = "meter"
    rule = "trapezoid"
    threaded = True
    OPTIONS: dict[str, object] = {}     # option -> default (the profile's energy.options)

    def __init__(self, **options):
        unknown = sorted(set(options) - set(self.OPTIONS) - {"timestamp", "max_dropped", "stall_s"})
        if unknown:
            raise MeterError(f"energy meter {self.name}: unknown option {unknown[0]!r} (known: "
                             f"{', '.join([*self.OPTIONS, 'timestamp', 'max_dropped', 'stall_s'])})")
        self.options = {**self.OPTIONS, **options}
        self.timestamp = options.get("timestamp", self.default_timestamp())
        self.max_dropped = float(options.get("max_dropped", 0.01))
        self.stall_s = float(options.get("stall_s", 1.0))
        self.trace = self._new_trace()
        self.is_open = False
        self.acquiring = False
        self._thread: threading.Thread | None = None
        self._stop_flag = threading.Event()

    def default_timestamp(self) -> str:
        return "high"

    nominal_dt: float | None = None   # polled meters set their sampling period

    def _new_trace(self) -> Trace:
        return Trace(self.name, self.rule, self.timestamp, self.max_dropped, self.nominal_dt)

    # the protocol ---------------------------------------------------------------------------------

    def open(self) -> None:
        if not self.is_open:
            self._connect()
            self.is_open = True

    def close(self) -> None:
        if self.acquiring:
            try:
                self.stop()
            except MeterError:
                pass
        if self.is_open:
            self.is_open = False
            self._disconnect()

    def start(self) -> None:
        if not self.is_open:
            self.open()
        self.trace = self._new_trace()
        self._stop_flag.clear()
        self._begin()
        self.acquiring = True
        if self.threaded:
            self._thread = threading.Thread(target=self._reader, name=f"meter-{self.name}",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if not self.acquiring:
            return
        self.acquiring = False
        self.trace.check_stall(self.stall_s)
        self._stop_flag.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._end()

    def windows(self, iterations: int | Sequence[int] | None = None) -> list[Window]:
        if self.acquiring:
            raise MeterError(f"energy meter {self.name}: stop() the acquisition before reading windows")
        return self.trace.windows(iterations)

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # polling ------------------------------------------------------------------------------------

    def _reader(self) -> None:
        try:
            while not self._stop_flag.is_set():
                if not self._poll():
                    time.sleep(0.001)
        except Exception as err:  # a reader thread must not die silently: windows() reports it
            self.trace.fail(f"{type(err).__name__}: {err}")

    # for subclasses -----------------------------------------------------------------------------

    def _connect(self) -> None:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        raise NotImplementedError

    def _poll(self) -> bool:
        raise NotImplementedError
