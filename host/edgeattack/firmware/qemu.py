"""Run the firmware for a model on a QEMU-emulated Cortex-M board.

    with start_qemu_board("qemu-m4", "model.tflite") as board:
        client = Client(lambda: open_port(board.url))   # board.url: socket://127.0.0.1:PORT
        ...

start_qemu_board builds the firmware (cached), launches

    qemu-system-arm -M <machine> -nographic -monitor none -icount shift=0
        -semihosting-config enable=on,target=native -kernel firmware.elf
        -serial tcp:127.0.0.1:PORT,server=on,wait=on,nodelay=on      (or -serial pty)

and returns once the firmware has answered INFO with the expected model hash. QEMU dies with its
parent (PR_SET_DEATHSIG) and is always reaped: board.stop() terminates, waits, then kills.

If the firmware faults, its HardFault handler prints CFSR/HFSR/PC (on the UART and, through
semihosting, on QEMU's stderr) and exits with code 3; board.check() / board.failure() turn that, a CPU
lockup or any other exit into a one-line DeviceError naming the cause and what QEMU printed.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import threading
import time
import tty
import weakref
from pathlib import Path

from ..errors import DeviceError, EdgeAttackError, UsageError
from .build import TOOLCHAIN_HINT, BuildResult, build_firmware

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

_live: "weakref.WeakSet[QemuBoard]" = weakref.WeakSet()
_live_lock = threading.Lock()


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the parent thread exits (PR_SET_DEATHSIG), so a crashed
    test or an interrupted command never leaves QEMU eating a core."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_DEATHSIG
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def require_qemu() -> None:
    if shutil.which(QEMU) is None:
        raise EdgeAttackError(f"{QEMU} not found: QEMU boards need it; install it with "
                              f"`sudo {TOOLCHAIN_HINT}`")


class QemuBoard:
    """A running QEMU board. `url` is what open_port() takes; `info` the firmware's first INFO reply."""

    def __init__(self, profile, build: BuildResult, proc: subprocess.Popen, workdir: Path, log_path: Path,
                 url: str, serial: str):
        self.profile = profile
        self.build = build
        self.proc = proc
        self.workdir = workdir
        self.log_path = log_path
        self.url = url
        self.serial = serial
        self.info: dict | None = None
        self._stopped = False
        self._final_output: str | None = None

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __enter__(self) -> "QemuBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else ("running" if self.alive() else "exited")
        return f"<QemuBoard {self.name} {self.url} pid={self.pid} {state}>"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        """Everything QEMU printed so far (stdout and stderr, including the firmware's semihosting
        output such as the HardFault line)."""
        if self._final_output is not None:
            return self._final_output
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def failure(self) -> str | None:
        """None while QEMU runs; otherwise one line saying why it stopped and what it printed."""
        code = self.proc.poll()
        if code is None:
            return None
        return _describe_exit(self.name, code, self.output())

    def check(self) -> None:
        """Raise DeviceError if QEMU is no longer running (fault, lockup, exit)."""
        why = self.failure()
        if why is not None and not self._stopped:
            raise DeviceError(why)

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminate QEMU, wait for it, kill it if it does not go; always reaped. Returns its exit
        code. Safe to call more than once."""
        code = _reap(self.proc, timeout)
        if not self._stopped:
            self._stopped = True
            with _live_lock:
                _live.discard(self)
            # Keep what QEMU printed for post-mortems; the folder goes now.
            self._final_output = self.output()
            shutil.rmtree(self.workdir, ignore_errors=True)
        return code


def _reap(proc: subprocess.Popen, timeout: float) -> int | None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    return proc.returncode


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        boards = list(_live)
    for b in boards:
        b.stop(timeout=2.0)


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_command(profile, elf: Path, serial: str, port: int | None = None) -> list[str]:
    """The QEMU command line for a board profile and a firmware ELF."""
    qemu = profile.qemu or {}
    machine = qemu.get("machine")
    if not machine:
        raise UsageError(f"board {profile.name}: its profile has no qemu.machine (see docs/boards.md)")
    shift = qemu.get("icount_shift", 0)
    cmd = [QEMU, "-M", machine]
    if qemu.get("cpu"):
        cmd += ["-cpu", str(qemu["cpu"])]
    cmd += ["-nographic", "-monitor", "none", "-icount", f"shift={int(shift)}",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    if serial == "tcp":
        cmd += ["-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"]
    else:
        cmd += ["-serial", "pty"]
    return cmd


def start_qemu_board(profile, model_path, serial: str = "tcp", timeout: float = 60.0, *,
                     cache_dir=None, debug_fault: int | None = None,
                     build: BuildResult | None = None) -> QemuBoard:
    """Build the firmware for `model_path` (cached), start QEMU for `profile` (a BoardProfile, a board
    name or a profile path) and wait until the firmware answers INFO with the model's SHA-256.

    serial: "tcp" (url socket://127.0.0.1:PORT; QEMU waits for the first connection, bytes are
    never lost) or "pty" (url /dev/pts/N). timeout: seconds for QEMU to boot and answer INFO (the build
    is not counted). debug_fault: see build_firmware (test builds). build: an existing BuildResult to
    run instead of building.

    Returns a QemuBoard (context manager; .url, .info, .stop(), .check()). Raises DeviceError naming
    the cause (HardFault line with CFSR/HFSR/PC, lockup, exit, no INFO in time) and what QEMU printed.
    """
    from ..profiles import get_profile

    if serial not in SERIAL_KINDS:
        raise UsageError(f"serial={serial!r}: choose tcp or pty")
    profile = get_profile(profile)
    if profile.kind != "qemu":
        raise UsageError(f"board {profile.name} is not a QEMU board (kind {profile.kind})")
    require_qemu()
    if build is None:
        build = build_firmware(model_path, profile, cache_dir, debug_fault=debug_fault)

    last_error: DeviceError | None = None
    for _attempt in range(3):  # a TCP port taken between choosing and binding: choose another
        try:
            return _launch(profile, build, serial, timeout)
        except _PortInUse as exc:
            last_error = DeviceError(str(exc))
    assert last_error is not None
    raise last_error


class _PortInUse(Exception):
    pass


def _launch(profile, build: BuildResult, serial: str, timeout: float) -> QemuBoard:
    workdir = Path(tempfile.mkdtemp(prefix=f"edgeattack-{profile.name}-"))
    log_path = workdir / "qemu.log"
    port = _free_port() if serial == "tcp" else None
    cmd = qemu_command(profile, build.elf, serial, port)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent, start_new_session=True)
    url = f"socket://127.0.0.1:{port}" if serial == "tcp" else ""
    board = QemuBoard(profile, build, proc, workdir, log_path, url, serial)
    with _live_lock:
        _live.add(board)
    try:
        deadline = time.monotonic() + timeout
        if serial == "pty":
            board.url = _wait_for_pty(board, deadline)
        board.info = _probe_info(board, deadline, timeout)
        sha = board.info.get("model_sha256")
        if sha != build.model_sha256:
            raise DeviceError(f"QEMU board {profile.name} runs model {sha}, expected "
                              f"{build.model_sha256} (firmware {build.elf})")
        return board
    except BaseException:
        board.stop()
        out = board.output()
        if "Address already in use" in out or "Failed to bind socket" in out:
            raise _PortInUse(f"QEMU could not listen on 127.0.0.1:{port}: {_tail(out)}") from None
        raise


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


def _probe_info(board: QemuBoard, deadline: float, timeout: float) -> dict:
    from ..link import messages as m
    from ..link.frame import PROTOCOL_VERSION, Frame, FrameDecoder, encode_frame

    link = None
    while link is None:
        if not board.alive():
            raise DeviceError(_describe_exit(board.name, board.proc.returncode, board.output()))
        try:
            link = _Link(board)
        except OSError:
            if time.monotonic() > deadline:
                raise DeviceError(f"QEMU board {board.name}: cannot connect to {board.url} within "
                                  f"{timeout:g} s: {_tail(board.output())}") from None
            time.sleep(0.02)
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
                    return json.loads(frame.payload.decode("utf-8"))
                if frame.type == m.ERROR:
                    code, msg = m.unpack_error(frame.payload)
                    raise DeviceError(f"QEMU board {board.name} answered INFO with ERROR "
                                      f"{m.error_name(code)}: {msg}")
        time.sleep(0.1)  # let a dying QEMU finish writing its last words
        if not board.alive():
            raise DeviceError(_describe_exit(board.name, board.proc.returncode, board.output()))
        raise DeviceError(f"QEMU board {board.name} did not answer INFO within {timeout:g} s on "
                          f"{board.url}: {_tail(board.output()) or 'QEMU printed nothing'}")
    finally:
        link.close()
