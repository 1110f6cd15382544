"""The Board protocol: how a board is driven, apart from what it has (its profile).

labgrid's split is the model: `edgeattack.profiles` says what a board has (validated YAML); a driver
says how a board of one kind is driven. There is one driver module per kind in `device/boards/`
(`emulator`, `qemu`, `linux`, `mcu`), each defining `DRIVER`, a class with the operations below.
`board_for(profile, model)` picks the driver by the profile's kind, so nothing else in the package
tests kind strings; adding a kind is one driver module (plus its rules row in profiles.KINDS and a
YAML file). docs/boards.md shows a worked example.

Life of a board started by the host (emulator, qemu):  prepare() -> start() -> url, alive(),
failure() -> stop().  Prepare builds what the board runs (the firmware, for qemu and mcu) before
anything is started, so a bad model or a build error never leaves a process behind.
Boards on their own hardware (linux, mcu): flash() deploys the model; commands reach them at `url`
(the profile's default port, or --port).
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Protocol, runtime_checkable

from ..errors import DeviceError, UsageError
from ..profiles import KINDS, BoardProfile, get_profile

Echo = Callable[[str], None]


@dataclass(frozen=True)
class LinkTimeouts:
    """Default link timers: `timeout` must exceed one request's device time (an inference on QEMU
    or a real MCU can take a second); `total_timeout` bounds how long a dead device is waited for."""

    timeout: float
    total_timeout: float


@runtime_checkable
class Board(Protocol):
    profile: BoardProfile
    model_path: Path | None
    info: dict | None                   # the device's first INFO once started, else None
    started_by_host: ClassVar[bool]     # start() runs it on this host; else flash() deploys it
    link_timeouts: ClassVar[LinkTimeouts]
    time_source: ClassVar[str]          # "device", "host-wall" or "qemu-instructions" (records)
    flash_options: ClassVar[tuple[str, ...]]  # keyword options flash() takes beyond dry_run/echo
    host_tools: ClassVar[tuple[str, ...]]     # programs this host needs to build and run it

    @property
    def url(self) -> str | None: ...   # the port URL: the started board's, else the profile's
    @property
    def time_estimated(self) -> bool: ...
    def device_time(self, ticks: int, tick_hz: float, repeat: int) -> tuple[float, int | None]: ...
    def prepare(self): ...              # build what the board runs (a BuildResult, or None)
    def start(self, startup_timeout: float = 60.0) -> "Board": ...
    def flash(self, *, dry_run: bool = False, echo: Echo = print, **options) -> dict: ...
    def undeploy(self, *, dry_run: bool = False, echo: Echo = print, **options) -> dict: ...
    def alive(self) -> bool: ...
    def failure(self) -> str | None: ...
    def stop(self) -> None: ...


class BoardDriver:
    """Defaults shared by the drivers: a board on its own hardware, timed by its own ticks."""

    kind: ClassVar[str] = ""
    started_by_host: ClassVar[bool] = False
    link_timeouts: ClassVar[LinkTimeouts] = LinkTimeouts(5.0, 30.0)
    time_source: ClassVar[str] = "device"
    flash_options: ClassVar[tuple[str, ...]] = ()
    host_tools: ClassVar[tuple[str, ...]] = ()
    # wire protocols the firmware or agent this host starts can speak (a board on its own hardware
    # speaks what was flashed: any protocol, reached with --port)
    protocols: ClassVar[tuple[str, ...]] = ("edgeattack",)

    def __init__(self, profile, model_path=None):
        self.profile = get_profile(profile)
        self.model_path = Path(model_path) if model_path is not None else None
        self.info: dict | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def url(self) -> str | None:
        return self.profile.port

    @property
    def time_estimated(self) -> bool:
        return False

    def device_time(self, ticks: int, tick_hz: float, repeat: int) -> tuple[float, int | None]:
        """(seconds of ONE inference, instructions or None) from the device's ticks of a window of
        `repeat` inferences."""
        return ticks / tick_hz / repeat, None

    def _model(self) -> Path:
        if self.model_path is None:
            raise UsageError(f"board {self.name}: give the model (.tflite) it runs")
        if not self.model_path.is_file():
            raise UsageError(f"model {self.model_path} does not exist (give the .tflite file to run)")
        return self.model_path

    def prepare(self):
        return None

    def start(self, startup_timeout: float = 60.0) -> "BoardDriver":
        raise UsageError(f"board {self.name} is a {self.profile.kind} board: it runs on its own "
                         f"hardware (deploy it with `edgeattack flash`), `up` starts emulator and qemu "
                         f"boards")

    def flash(self, *, dry_run: bool = False, echo: Echo = print, **options) -> dict:
        raise UsageError(f"board {self.name} ({self.profile.kind}) cannot be flashed")

    def undeploy(self, *, dry_run: bool = False, echo: Echo = print, **options) -> dict:
        raise UsageError(f"board {self.name} ({self.profile.kind}): nothing deployed to stop")

    def alive(self) -> bool:
        return True  # not ours to watch: the link reports a dead device

    def failure(self) -> str | None:
        return None

    def stop(self) -> None:
        return None

    def summary(self, **fields) -> dict:
        """The start of a flash summary (`flash --json`)."""
        return {"board": self.name, "kind": self.profile.kind,
                "model": None if self.model_path is None else str(self.model_path), **fields}


# registry ------------------------------------------------------------------------------------------

def driver_for(kind: str) -> type:
    """The driver class for a board kind: `edgeattack.device.boards.<kind>.DRIVER`."""
    module = f"{__package__}.boards.{kind}"
    try:
        return importlib.import_module(module).DRIVER
    except ImportError as exc:
        raise DeviceError(f"the {kind} board driver ({module}) is not available in this installation "
                          f"({exc}); reinstall edgeattack, use another board, or --port") from None


def board_for(profile, model=None, **options) -> Board:
    """A driver for `profile` (a name, a profile file or a BoardProfile) and `model` (the .tflite
    file it runs, or None), not started yet. `options` are the driver's own (e.g. qemu `serial`)."""
    profile = get_profile(profile)
    return driver_for(profile.kind)(profile, model, **options)


def kinds_with_flash_option(option: str) -> list[str]:
    """The board kinds whose flash() takes `option` (for one-line errors naming them)."""
    return [k for k in KINDS if option in driver_for(k).flash_options]


def check_seconds(value, what: str) -> None:
    """A timeout must be a positive finite number of seconds (None: the default)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise UsageError(f"{what} {value!r}: give a positive number of seconds")


def start_board(profile, model, startup_timeout: float = 60.0, protocol: str | None = None,
                **options) -> Board:
    """Build (if the board needs it) and start a board the host runs (emulator, qemu) with `model`;
    returns it started (stop() it, or use it as a context manager). A board on its own hardware is
    a UsageError (deploy it with flash). protocol: "mlperf" starts a QEMU board's MLPerf-mode
    firmware (docs/mlperf.md); default: the profile's `protocol`."""
    check_seconds(startup_timeout, "startup timeout")
    board = board_for(profile, model, **options)
    if not board.started_by_host:
        board.start(startup_timeout)  # raises: the driver explains how to reach it instead
    protocol = protocol or board.profile.protocol
    if protocol == "mlperf":
        if "mlperf" not in board.protocols:
            raise UsageError(f"--protocol mlperf: board {board.name} runs edgeattack's agent, which speaks "
                             f"only edgeattack's protocol; QEMU boards run the MLPerf-mode firmware")
        board.protocol = protocol
    board.prepare()  # the firmware is built before anything runs
    return board.start(startup_timeout)
