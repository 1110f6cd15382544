"""Byte-stream ports for the protocol: every URL goes through pyserial's `serial_for_url`.

The protocol code talks to a *port*: any object with pyserial's `read(n)`, `write(data)`,
`in_waiting`, `timeout` (settable), `close()` and `is_open`. `open_port` gives one for a URL
(`/dev/ttyACM0`, a pty path, `socket://host:port`, `rfc2217://host:port`, `loop://`, and edgeattack's
own `tcp://host:port` and `ssh://user@host/127.0.0.1:5555`, registered as pyserial URL handlers: the
modules `protocol_tcp` and `protocol_ssh` of this package, which `serial_for_url` finds because the
package is listed in `serial.protocol_handler_packages`);
`SocketPort` and `FdPort` wrap an accepted socket or a pty master fd for the device side;
`read_some` returns whatever bytes arrive next without waiting for a fixed count, and `write_all`
writes a buffer (both with as few system calls as the port allows: they are most of a small frame's
cost).
"""
from __future__ import annotations

import errno
import os
import select
import socket
import termios
import tty

import serial
from serial.urlhandler.protocol_socket import Serial as _SocketSerial

from edgeattack.errors import DeviceError

try:  # pyserial's POSIX Serial (what serial_for_url gives for a device path on Linux)
    from serial.serialposix import Serial as _PosixSerial
except ImportError:  # pragma: no cover - not POSIX
    _PosixSerial = None

DEFAULT_TIMEOUT = 0.05  # read poll interval: the client's own timers decide when to give up

# serial_for_url("X://...") imports `<package>.protocol_X` from each package of this list in turn
# (pyserial's own `serial.urlhandler` first): ours provide tcp:// and ssh://.
HANDLER_PACKAGE = __name__.rpartition(".")[0]  # edgeattack.link
if HANDLER_PACKAGE not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(HANDLER_PACKAGE)


def free_local_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a child that will listen on it: QEMU's UART,
    an SSH forward, ser2net). Another process may take it before the child binds: callers that
    can tell retry."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_inodes(port: int, proc_net: str = "/proc/net/tcp") -> set[int] | None:
    """Socket inodes listening on 127.0.0.1:port (Linux /proc/net/tcp), or None without /proc."""
    try:
        with open(proc_net) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return None
    want = f"0100007F:{port:04X}"
    found = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[1] == want and fields[3] == "0A":  # 0A = LISTEN
            found.add(int(fields[9]))
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process `pid` holds open (Linux)."""
    found = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for name in names:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(int(link[8:-1]))
    return found


def pid_listens(pid: int, port: int) -> bool:
    """True once process `pid` (a child given `port` to listen on: an SSH forward, ser2net) listens
    on 127.0.0.1:port. Probed without connecting, since a probe connection would be the server's
    first client. On Linux the listener must be `pid` itself, not another program that grabbed the
    port; elsewhere a bind probe."""
    inodes = listening_inodes(port)
    if inodes is not None:
        return bool(inodes & socket_inodes(pid))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
        return False


def open_port(url: str, baudrate: int = 115200, timeout: float = DEFAULT_TIMEOUT):
    """Open `url` with `serial.serial_for_url` (raw mode for ttys, as pyserial configures them).

    For socket:// the underlying TCP socket gets TCP_NODELAY: without it every small reply waits for
    the peer's delayed ACK (about 44 ms per round trip). A port that cannot be opened raises
    DeviceError naming the port and what to check (for ssh://, the host, the cause and the fix); a
    malformed ssh:// URL raises UsageError.
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
    if url.startswith(("socket://", "rfc2217://", "tcp://", "ssh://")):
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
    fd = _posix_fd(port)
    if fd is not None:
        return _read_fd(fd, limit, port.timeout, port_name(port))
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket) and isinstance(port, _SocketSerial):
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


def write_all(port, data: bytes) -> None:
    """Write all of `data` to `port`, like port.write(data), with one system call when it fits.

    pyserial's POSIX write() adds a select() and timer bookkeeping to every call even when the
    kernel took every byte at once; per small frame that is a large part of the link's cost. Only
    what the kernel does not take at once goes through port.write (its write_timeout applies).
    """
    fd = _posix_fd(port)
    if fd is not None:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            raise serial.SerialException(f"write failed: {exc}") from None
        if n == len(data):
            return
        data = data[n:]
    port.write(data)


def _posix_fd(port) -> int | None:
    """The fd of an open pyserial POSIX Serial (opened O_NONBLOCK by pyserial), else None.
    Subclasses (VTIMESerial, PosixPollSerial) change the fd's mode and keep their own I/O."""
    if _PosixSerial is not None and type(port) is _PosixSerial and port.is_open:
        return port.fd
    return None


def _read_fd(fd: int, limit: int, timeout, name: str) -> bytes:
    """Read a non-blocking fd: whatever is there at once, else wait up to `timeout` for bytes.

    Reading first saves the select() when bytes already wait, which is the usual case while
    requests are pipelined. A tty with VMIN = VTIME = 0 (pyserial's setting) reads b"" instead of
    EAGAIN when empty, so only a fd that select() calls readable and that then reads nothing is a
    disconnect (as in pyserial); errors (EIO on a pty whose other side is gone) raise
    serial.SerialException too.
    """
    try:
        data = os.read(fd, limit)
        if data:
            return data
    except BlockingIOError:
        pass
    except OSError as exc:
        raise serial.SerialException(f"{name}: read failed: {exc}") from None
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    except InterruptedError:
        return b""
    if not ready:
        return b""
    try:
        data = os.read(fd, limit)
    except BlockingIOError:
        return b""
    except OSError as exc:
        raise serial.SerialException(f"{name}: read failed: {exc}") from None
    if not data:
        raise serial.SerialException(f"{name}: readable but no data (device disconnected?)")
    return data


def close_port(port) -> None:
    """Close a port at once. pyserial's socket:// close() sleeps 0.3 s "for quick reconnects";
    a link that reconnects after a fault closes the socket itself instead (tcp:// and ssh:// ports
    close at once by themselves, ssh:// stopping its tunnel too)."""
    if type(port) is _SocketSerial:
        close_socket(port)
        return
    port.close()


def close_socket(port) -> None:
    """Shut down and close a pyserial socket:// port's socket without the 0.3 s sleep."""
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
    port._socket = None
    port.is_open = False


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
    """A file descriptor (e.g. a pty master) with the port API. Owns and closes the fd.

    The fd is switched to non-blocking mode: reads and writes try the system call first and wait
    in select() only when the kernel is not ready (one call per frame batch instead of two).
    """

    def __init__(self, fd: int, name: str = "fd", timeout: float = DEFAULT_TIMEOUT):
        self._fd = fd
        self.name = name
        self.timeout = timeout
        os.set_blocking(fd, False)

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
        # EIO on a pty master once no process holds the slave open: SerialException
        return _read_fd(self._fd, limit, self.timeout, self.name)

    def read(self, size: int = 1) -> bytes:
        return self.read_some(size)

    def write(self, data: bytes) -> int:
        fd = self._fd
        total = len(data)
        try:
            try:
                n = os.write(fd, data)
            except BlockingIOError:
                n = 0
            if n < total:
                view = memoryview(data)[n:]
                while view:
                    select.select([], [fd], [])
                    try:
                        view = view[os.write(fd, view):]
                    except BlockingIOError:
                        pass
        except OSError as exc:
            raise serial.SerialException(f"{self.name}: {exc}") from None
        return total

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
