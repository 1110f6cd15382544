"""Byte-stream ports for the protocol: every URL goes through pyserial's `serial_for_url`.

The protocol code talks to a *port*: any object with pyserial's `read(n)`, `write(data)`,
`in_waiting`, `timeout` (settable), `close()` and `is_open`. `open_port` gives one for a URL
(`/dev/ttyACM0`, a pty path, `socket://host:port`, `rfc2217://host:port`, `loop://`);
`SocketPort` and `FdPort` wrap an accepted socket or a pty master fd for the device side;
`read_some` returns whatever bytes arrive next without waiting for a fixed count.
"""
from __future__ import annotations

import os
import select
import socket
import termios
import tty

import serial

from edgeattack.errors import DeviceError

DEFAULT_TIMEOUT = 0.05  # read poll interval: the client's own timers decide when to give up


def open_port(url: str, baudrate: int = 115200, timeout: float = DEFAULT_TIMEOUT):
    """Open `url` with `serial.serial_for_url` (raw mode for ttys, as pyserial configures them).

    For socket:// the underlying TCP socket gets TCP_NODELAY: without it every small reply waits for
    the peer's delayed ACK (about 44 ms per round trip). A port that cannot be opened raises
    DeviceError naming the port and what to check.
    """
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, write_timeout=None)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DeviceError(f"cannot open port {url}: {_one_line(exc)} ({_hint(url)})") from None
    sock = getattr(port, "_socket", None)  # socket:// and rfc2217:// keep their socket here
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return port


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _hint(url: str) -> str:
    if url.startswith(("socket://", "rfc2217://")):
        return "check that the board or agent is running and listening on that host and port"
    if url.startswith("loop://"):
        return "check the URL"
    return ("check that the board is connected and powered, that the path is right "
            "(`python -m serial.tools.list_ports` lists serial ports) and that you may open it")


def port_name(port) -> str:
    """A human name for a port object (its URL or path when it has one)."""
    for attr in ("name", "port", "portstr"):
        value = getattr(port, attr, None)
        if isinstance(value, str) and value:
            return value
    return repr(port)


def read_some(port, limit: int = 65536) -> bytes:
    """Bytes that arrive within `port.timeout`: returns as soon as at least one is available.

    Raises serial.SerialException when the peer is gone (EOF / EIO), like pyserial itself.
    """
    custom = getattr(port, "read_some", None)
    if custom is not None:
        return custom(limit)
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket) and type(port).__module__.endswith("protocol_socket"):
        # pyserial's socket:// read(n) waits for all n bytes and its in_waiting is only 0 or 1:
        # read the socket directly so a reply is handed over as soon as it arrives.
        if not port.is_open:
            raise serial.PortNotOpenError()
        ready, _, _ = select.select([sock], [], [], port.timeout)
        if not ready:
            return b""
        try:
            data = sock.recv(limit)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            raise serial.SerialException(f"socket error: {exc}") from None
        if not data:
            raise serial.SerialException("socket disconnected")
        return data
    first = port.read(1)
    if not first:
        return b""
    waiting = min(port.in_waiting, limit - 1)
    return first + port.read(waiting) if waiting > 0 else first


def close_port(port) -> None:
    """Close a port at once. pyserial's socket:// close() sleeps 0.3 s "for quick reconnects";
    a link that reconnects after a fault closes the socket itself instead."""
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket) and type(port).__module__.endswith("protocol_socket"):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        port._socket = None
        port.is_open = False
        return
    port.close()


class SocketPort:
    """A connected stream socket with the port API (device side of a TCP link, or a socketpair).

    `read` returns b"" on timeout; a closed peer raises serial.SerialException.
    """

    def __init__(self, sock: socket.socket, name: str = "socket", timeout: float = DEFAULT_TIMEOUT):
        self._sock = sock
        self.name = name
        self.timeout = timeout
        sock.setblocking(True)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def is_open(self) -> bool:
        return self._sock.fileno() >= 0

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def in_waiting(self) -> int:
        ready, _, _ = select.select([self._sock], [], [], 0)
        return 1 if ready else 0

    def read_some(self, limit: int = 65536) -> bytes:
        if not self.is_open:
            raise serial.PortNotOpenError()
        ready, _, _ = select.select([self._sock], [], [], self.timeout)
        if not ready:
            return b""
        try:
            data = self._sock.recv(limit)
        except OSError as exc:
            raise serial.SerialException(f"{self.name}: {exc}") from None
        if not data:
            raise serial.SerialException(f"{self.name}: peer closed the connection")
        return data

    def read(self, size: int = 1) -> bytes:
        return self.read_some(size)

    def write(self, data: bytes) -> int:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise serial.SerialException(f"{self.name}: {exc}") from None
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


class FdPort:
    """A file descriptor (e.g. a pty master) with the port API. Owns and closes the fd."""

    def __init__(self, fd: int, name: str = "fd", timeout: float = DEFAULT_TIMEOUT):
        self._fd = fd
        self.name = name
        self.timeout = timeout

    @property
    def is_open(self) -> bool:
        return self._fd >= 0

    def fileno(self) -> int:
        return self._fd

    @property
    def in_waiting(self) -> int:
        ready, _, _ = select.select([self._fd], [], [], 0)
        return 1 if ready else 0

    def read_some(self, limit: int = 65536) -> bytes:
        if self._fd < 0:
            raise serial.PortNotOpenError()
        ready, _, _ = select.select([self._fd], [], [], self.timeout)
        if not ready:
            return b""
        try:
            data = os.read(self._fd, limit)
        except BlockingIOError:
            return b""
        except OSError as exc:  # EIO on a pty master once no process holds the slave open
            raise serial.SerialException(f"{self.name}: {exc}") from None
        if not data:
            raise serial.SerialException(f"{self.name}: end of file")
        return data

    def read(self, size: int = 1) -> bytes:
        return self.read_some(size)

    def write(self, data: bytes) -> int:
        view = memoryview(bytes(data))
        try:
            while view:
                select.select([], [self._fd], [])
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise serial.SerialException(f"{self.name}: {exc}") from None
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_pty(timeout: float = DEFAULT_TIMEOUT) -> tuple[FdPort, str, int]:
    """A pseudo-terminal for a device: (master port, slave path, slave fd).

    The slave is put in raw mode at once (no echo, no CR/LF translation, 8-bit clean) so bytes the
    device writes before the host opens it arrive unchanged; the caller keeps `slave fd` open for
    the pty's lifetime (closing every slave fd makes the master read EIO) and closes it at the end.
    """
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    return FdPort(master, name=os.ttyname(slave), timeout=timeout), os.ttyname(slave), slave
