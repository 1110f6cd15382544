"""The qemu driver: the project's firmware for a model on a QEMU-emulated Cortex-M board.

    with start_qemu_board("qemu-m4", "model.tflite") as board:
        client = Client(lambda: open_port(board.url))   # board.url: socket://127.0.0.1:PORT
        ...

QemuBoard.prepare() builds the firmware (edgeattack.firmware.build, cached by model hash) before
anything runs; start() launches

    qemu-system-arm -M <machine> -nographic -monitor unix:WORKDIR/monitor.sock,server=on,wait=off
        -icount shift=0 -semihosting-config enable=on,target=native -kernel firmware.elf
        -serial tcp:127.0.0.1:PORT,server=on,wait=on,nodelay=on      (or -serial pty)

and returns once the firmware has answered INFO with the expected model hash. QEMU is started with
edgeattack.children: it dies with its parent and is always reaped; board.stop() terminates, waits,
then kills.

If the firmware faults, its HardFault handler prints CFSR/HFSR/PC (on the UART and, through
semihosting, on QEMU's stderr) and exits with code 3; board.check() / board.failure() turn that, a CPU
lockup or any other exit into a one-line DeviceError naming the cause and what QEMU printed.

The monitor socket lets the host press the board's reset button: board.reboot() (QEMU's
`system_reset`: the firmware boots again, forgetting everything, while the serial link stays
connected), which the reboot-recovery tests use.

Time: with -icount shift=0 one guest instruction is 1 ns of guest time, so the device's ticks give
an instruction count; device_time() turns it into a latency estimate for the chip the profile models
(model_cpi, model_clock_hz), always labelled estimated (CONVENTIONS "Measurement units").
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import time
import tty
import weakref
from pathlib import Path

from ... import children
from ...errors import DeviceError, EdgeAttackError, UsageError
from ...link.transport import free_local_port
from ..board import BoardDriver, LinkTimeouts

QEMU = "qemu-system-arm"
SERIAL_KINDS = ("tcp", "pty")
EXIT_CAUSES = {  # firmware exit codes (boards/cortex-m/cm_port.h, app/main.c)
    1: "the firmware's main loop returned",
    2: "the firmware's protocol buffers are misconfigured",
    3: "the firmware took a HardFault",
    4: "the firmware took an unexpected exception",
}
_FAULT_LINE = re.compile(r"(HardFault [^\r\n]*|Unexpected exception [^\r\n]*|[^\r\n]*Lockup[^\r\n]*)")
_PTY_LINE = re.compile(r"char device redirected to (/dev/pts/\d+)")

def require_qemu() -> None:
    from ...firmware.build import TOOLCHAIN_HINT

    if shutil.which(QEMU) is None:
        raise EdgeAttackError(f"{QEMU} not found: QEMU boards need it; install it with "
                              f"`sudo {TOOLCHAIN_HINT}`")


class QemuBoard(BoardDriver):
    """The qemu driver. Once started: `url` is what open_port() takes, `info` the firmware's first
    INFO reply, `proc` the QEMU process.

    QemuBoard(profile, model_path, serial="tcp", cache_dir=None, debug_fault=None, build=None, kernels=None):
    serial "tcp" (url socket://127.0.0.1:PORT; QEMU waits for the first connection, bytes are never
    lost) or "pty" (url /dev/pts/N); cache_dir and debug_fault go to build_firmware (debug_fault:
    test builds); build: an existing BuildResult to run instead of building; kernels: the kernel set
    (edgeattack.firmware.build.resolve_kernels: auto, ref, dsp, mve; None = auto).
    """

    kind = "qemu"
    started_by_host = True
    link_timeouts = LinkTimeouts(5.0, 30.0)
    time_source = "qemu-instructions"
    host_tools = ("arm-none-eabi-gcc", "qemu-system-arm")
    flash_options = ("kernels", "protocol")
    protocols = ("edgeattack", "mlperf")  # mlperf: the MLPerf-mode firmware (docs/mlperf.md)

    def __init__(self, profile, model_path=None, *, serial: str = "tcp", cache_dir=None,
                 debug_fault: int | None = None, build=None, kernels: str | None = None):
        super().__init__(profile, model_path)
        if self.profile.kind != self.kind:
            raise UsageError(f"board {self.name} is not a QEMU board (kind {self.profile.kind})")
        if serial not in SERIAL_KINDS:
            raise UsageError(f"serial={serial!r}: choose tcp or pty")
        self.serial = serial
        self.cache_dir = cache_dir
        self.debug_fault = debug_fault
        self.build = build
        self.kernels = kernels
        self.protocol = "edgeattack"  # "mlperf": the MLPerf-mode firmware (docs/mlperf.md)
        self.proc: subprocess.Popen | None = None
        self.monitor_path: Path | None = None
        self.workdir: Path | None = None
        self.log_path: Path | None = None
        self._url: str | None = None
        self._stopped = False
        self._final_output: str | None = None
        self._cleanup = None

    # time -----------------------------------------------------------------------------------------

    @property
    def time_estimated(self) -> bool:
        return True

    def device_time(self, ticks: int, tick_hz: float, repeat: int) -> tuple[float, int | None]:
        # -icount shift=0: 1 instruction per ns of guest time (CONVENTIONS: Measurement units)
        instructions = round(ticks * 1e9 / tick_hz)
        p = self.profile
        return instructions * p.model_cpi / p.model_clock_hz / repeat, instructions

    # build and flash ------------------------------------------------------------------------------

    def prepare(self):
        """Build the firmware for the model (cached); returns the BuildResult."""
        if self.build is None:
            from ...firmware.build import build_firmware

            self.build = build_firmware(self._model(), self.profile, self.cache_dir,
                                        debug_fault=self.debug_fault, kernels=self.kernels,
                                        **({"protocol": self.protocol} if self.protocol != "edgeattack" else {}))
        return self.build

    def flash(self, *, dry_run: bool = False, echo=print, **options) -> dict:
        """QEMU boards are flashed by building: commands then start QEMU with the cached firmware."""
        if options.get("kernels"):
            self.kernels = options["kernels"]
        protocol = options.get("protocol") or self.profile.protocol
        if protocol:
            self.protocol = protocol
        model = self._model()
        if dry_run:
            what = "MLPerf-mode firmware" if self.protocol == "mlperf" else "firmware"
            echo(f"# plan: build the {self.name} {what} for {model} (cached by model hash); "
                 f"commands then start QEMU themselves")
            return self.summary(dry_run=True, firmware=None)
        build = self.prepare()
        echo(f"built the {self.name} firmware for {model}: {build.elf} (flash {build.flash_bytes} B, "
             f"RAM {build.ram_bytes} B{', cached' if build.cached else ''}); session, attack and up "
             f"start QEMU with it")
        return self.summary(dry_run=False, firmware=build.to_dict())

    # lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str | None:
        return self._url

    @url.setter
    def url(self, value: str | None) -> None:
        self._url = value

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else ("running" if self.alive() else "exited")
        return f"<QemuBoard {self.name} {self.url} pid={self.pid} {state}>"

    def start(self, startup_timeout: float = 60.0) -> "QemuBoard":
        """Start QEMU with the built firmware and wait until it answers INFO with the model's
        SHA-256 (startup_timeout: seconds to boot and answer; the build is not counted)."""
        if self.proc is not None:
            raise RuntimeError("board already started")
        require_qemu()
        self.prepare()
        last_error: DeviceError | None = None
        for _attempt in range(3):  # a TCP port taken between choosing and binding: choose another
            try:
                return self._launch(startup_timeout)
            except _PortInUse as exc:
                last_error = DeviceError(str(exc))
                self.proc, self._stopped, self._final_output = None, False, None
        assert last_error is not None
        raise last_error

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        """Everything QEMU printed so far (stdout and stderr, including the firmware's semihosting
        output such as the HardFault line)."""
        if self._final_output is not None:
            return self._final_output
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

    def failure(self) -> str | None:
        """None while QEMU runs (or before it started); otherwise one line saying why it stopped and
        what it printed."""
        code = None if self.proc is None else self.proc.poll()
        if code is None:
            return None
        return _describe_exit(self.name, code, self.output())

    def check(self) -> None:
        """Raise DeviceError if QEMU is no longer running (fault, lockup, exit)."""
        why = self.failure()
        if why is not None and not self._stopped:
            raise DeviceError(why)

    def reboot(self, timeout: float = 5.0) -> None:
        """Press the emulated board's reset button: QEMU's monitor command `system_reset`. The
        firmware boots again with all its state gone; the serial connection stays up. Returns once
        QEMU accepted the command."""
        if not self.alive() or self.monitor_path is None:
            raise DeviceError(f"QEMU board {self.name} is not running: nothing to reset")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mon:
            mon.settimeout(timeout)
            try:
                mon.connect(str(self.monitor_path))
                _monitor_prompt(mon)  # the banner and first prompt
                mon.sendall(b"system_reset\n")
                _monitor_prompt(mon)  # the command ran
            except OSError as exc:
                raise DeviceError(f"QEMU board {self.name}: its monitor {self.monitor_path} did not "
                                  f"take system_reset: {exc}") from None

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminate QEMU, wait for it, kill it if it does not go; always reaped. Returns its exit
        code. Safe to call more than once."""
        code = children.stop(self.proc, grace_s=timeout)
        if not self._stopped and self.proc is not None:
            self._stopped = True
            # Keep what QEMU printed for post-mortems; the folder goes now.
            self._final_output = self.output()
            if self._cleanup is not None:
                self._cleanup()
        return code

    def _launch(self, timeout: float) -> "QemuBoard":
        workdir = Path(tempfile.mkdtemp(prefix=f"edgeattack-{self.name}-"))
        # the folder goes with stop(), or at exit if the board is never stopped
        self._cleanup = weakref.finalize(self, shutil.rmtree, workdir, ignore_errors=True)
        self.workdir, self.log_path = workdir, workdir / "qemu.log"
        port = free_local_port() if self.serial == "tcp" else None
        self.monitor_path = workdir / "monitor.sock"
        cmd = qemu_command(self.profile, self.build.elf, self.serial, port, monitor=self.monitor_path)
        with open(self.log_path, "wb") as log:
            self.proc = children.spawn(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self._url = f"socket://127.0.0.1:{port}" if self.serial == "tcp" else ""
        try:
            deadline = time.monotonic() + timeout
            if self.serial == "pty":
                self._url = _wait_for_pty(self, deadline)
            if self.protocol == "mlperf":
                from ..mlperf import probe_name

                self.info = probe_name(self, _connect(self, deadline, timeout), deadline, timeout)
            else:
                self.info = _probe_info(self, deadline, timeout)
            sha = self.info.get("model_sha256")
            if sha != self.build.model_sha256:
                raise DeviceError(f"QEMU board {self.name} runs model {sha}, expected "
                                  f"{self.build.model_sha256} (firmware {self.build.elf})")
            return self
        except BaseException:
            self.stop()
            out = self.output()
            if "Address already in use" in out or "Failed to bind socket" in out:
                raise _PortInUse(f"QEMU could not listen on 127.0.0.1:{port}: {_tail(out)}") from None
            raise


DRIVER = QemuBoard


def _describe_exit(name: str, code: int, output: str) -> str:
    fault = _FAULT_LINE.search(output)
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
        if code in EXIT_CAUSES:
            how += f" ({EXIT_CAUSES[code]})"
    if fault and "Lockup" in fault.group(1):
        how += " (CPU lockup: a fault inside the fault handler)"
    detail = fault.group(1).strip() if fault else _tail(output)
    return f"QEMU board {name} {how}: {detail}" if detail else f"QEMU board {name} {how}"


def _tail(output: str, lines: int = 3) -> str:
    kept = [ln.strip() for ln in output.splitlines() if ln.strip() and "QEMU waiting for connection" not in ln]
    return " | ".join(kept[-lines:])


def qemu_command(profile, elf: Path, serial: str, port: int | None = None,
                 monitor: Path | None = None) -> list[str]:
    """The QEMU command line for a board profile and a firmware ELF (`monitor`: a Unix socket path
    for QEMU's monitor; None: no monitor)."""
    qemu = profile.qemu or {}
    machine = qemu.get("machine")
    if not machine:
        raise UsageError(f"board {profile.name}: its profile has no qemu.machine (see docs/boards.md)")
    shift = qemu.get("icount_shift", 0)
    cmd = [QEMU, "-M", machine]
    if qemu.get("cpu"):
        cmd += ["-cpu", str(qemu["cpu"])]
    mon = f"unix:{monitor},server=on,wait=off" if monitor is not None else "none"
    cmd += ["-nographic", "-monitor", mon, "-icount", f"shift={int(shift)}",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    if serial == "tcp":
        cmd += ["-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"]
    else:
        cmd += ["-serial", "pty"]
    return cmd


def start_qemu_board(profile, model_path, serial: str = "tcp", timeout: float = 60.0, *,
                     cache_dir=None, debug_fault: int | None = None, build=None,
                     kernels: str | None = None) -> QemuBoard:
    """Build the firmware for `model_path` (cached), start QEMU for `profile` (a BoardProfile, a board
    name or a profile path) and wait until the firmware answers INFO with the model's SHA-256.

    Returns the started QemuBoard (context manager; .url, .info, .stop(), .check()). Raises
    DeviceError naming the cause (HardFault line with CFSR/HFSR/PC, lockup, exit, no INFO in time)
    and what QEMU printed. See QemuBoard for the arguments.
    """
    board = QemuBoard(profile, model_path, serial=serial, cache_dir=cache_dir, debug_fault=debug_fault,
                      build=build, kernels=kernels)
    return board.start(timeout)


class _PortInUse(Exception):
    pass


def _monitor_prompt(mon: socket.socket) -> bytes:
    """Read QEMU monitor output up to its "(qemu) " prompt."""
    data = b""
    while not data.endswith(b"(qemu) "):
        chunk = mon.recv(4096)
        if not chunk:
            raise ConnectionError("the monitor closed the connection")
        data += chunk
    return data


def _wait_for_pty(board: QemuBoard, deadline: float) -> str:
    while time.monotonic() < deadline:
        m = _PTY_LINE.search(board.output())
        if m:
            return m.group(1)
        if not board.alive():
            raise DeviceError(_describe_exit(board.name, board.proc.returncode, board.output()))
        time.sleep(0.02)
    raise DeviceError(f"QEMU board {board.name} did not report its pty within the timeout: "
                      f"{_tail(board.output())}")


class _Link:
    """The launcher's own minimal connection for the INFO probe (the session opens its own)."""

    def __init__(self, board: QemuBoard):
        self.sock = None
        self.fd = None
        if board.serial == "tcp":
            host_port = board.url[len("socket://"):]
            host, port = host_port.rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)), timeout=1.0)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.settimeout(0.05)
        else:
            self.fd = os.open(board.url, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(self.fd)
            attrs = termios.tcgetattr(self.fd)
            attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 0, 1
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def write(self, data: bytes) -> None:
        if self.sock is not None:
            self.sock.sendall(data)
        else:
            os.write(self.fd, data)

    def read(self) -> bytes:
        if self.sock is not None:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return b""
            if not data:
                raise ConnectionError("QEMU closed the serial connection")
            return data
        return os.read(self.fd, 65536)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.fd is not None:
            os.close(self.fd)


def _connect(board: QemuBoard, deadline: float, timeout: float) -> "_Link":
    """The serial link of a QEMU board that is still starting: retried until `deadline`."""
    while True:
        if not board.alive():
            raise DeviceError(_describe_exit(board.name, board.proc.returncode, board.output()))
        try:
            return _Link(board)
        except OSError:
            if time.monotonic() > deadline:
                raise DeviceError(f"QEMU board {board.name}: cannot connect to {board.url} within "
                                  f"{timeout:g} s: {_tail(board.output())}") from None
            time.sleep(0.02)


def _expand(board: QemuBoard, text: str) -> str:
    """A firmware text with its coded message pieces written out from the build's texts."""
    from ...firmware.messages import lookup
    from ...link.coded import expand

    build_id = getattr(board.build, "build_id", None)
    return expand(text, lookup(build_id) if build_id else None, build_id)


def _probe_info(board: QemuBoard, deadline: float, timeout: float) -> dict:
    from ...link import messages as m
    from ...link.frame import PROTOCOL_VERSION, Frame, FrameDecoder, encode_frame

    link = _connect(board, deadline, timeout)
    try:
        decoder = FrameDecoder()
        request = b"\x00" + encode_frame(Frame(PROTOCOL_VERSION, m.INFO, 1))
        next_send = 0.0
        while time.monotonic() < deadline:
            if not board.alive():
                raise DeviceError(_describe_exit(board.name, board.proc.returncode, board.output()))
            now = time.monotonic()
            if now >= next_send:  # the firmware may still be booting: ask again now and then
                link.write(request)
                next_send = now + 1.0
            try:
                chunk = link.read()
            except (ConnectionError, OSError):
                time.sleep(0.05)  # QEMU exiting: the loop reports why
                continue
            for frame in decoder.feed(chunk):
                if frame.type == m.INFO | m.REPLY:
                    info = json.loads(frame.payload.decode("utf-8"))
                    if isinstance(info.get("error"), str):
                        info["error"] = _expand(board, info["error"])
                    return info
                if frame.type == m.ERROR:
                    code, msg = m.unpack_error(frame.payload)
                    msg = _expand(board, msg)
                    raise DeviceError(f"QEMU board {board.name} answered INFO with ERROR "
                                      f"{m.error_name(code)}: {msg}")
        time.sleep(0.1)  # let a dying QEMU finish writing its last words
        if not board.alive():
            raise DeviceError(_describe_exit(board.name, board.proc.returncode, board.output()))
        raise DeviceError(f"QEMU board {board.name} did not answer INFO within {timeout:g} s on "
                          f"{board.url}: {_tail(board.output()) or 'QEMU printed nothing'}")
    finally:
        link.close()
