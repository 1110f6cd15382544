"""edgeattack's pyserial URL handlers: tcp:// (socket:// with TCP_NODELAY) and ssh:// (a port through
its own SSH tunnel, reaped when the port closes), opened with the one entry, link.transport.open_port,
against real listening sockets and the loopback OpenSSH server of test_deploy_pi."""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import pytest
import serial

from conftest import require_tool
from edgeattack import children
from edgeattack.errors import DeviceError, UsageError
from edgeattack.link import protocol_ssh, protocol_tcp
from edgeattack.link.ssh_tunnel import TUNNEL_HOLD_MARK, ssh_url
from edgeattack.link.transport import close_port, open_port, read_some, write_all


@contextlib.contextmanager
def echo_server():
    """A real TCP server on 127.0.0.1 that echoes what it gets; yields (port, accepted sockets)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    accepted: list[socket.socket] = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            accepted.append(conn)
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn):
        with contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1], accepted
    finally:
        srv.close()
        for conn in accepted:
            conn.close()
        thread.join(5)


def _ssh_clients() -> list:
    """Live children that are ssh clients (the loopback sshd is a child too)."""
    return [p for p in children.live() if os.path.basename(str(p.args[0])) == "ssh"]


def _round_trip(port, payload=b"ping\x00\xff") -> bytes:
    write_all(port, payload)
    got = b""
    deadline = time.monotonic() + 10
    while len(got) < len(payload) and time.monotonic() < deadline:
        got += read_some(port)
    return got


def test_tcp_url_is_a_socket_with_nodelay():
    with echo_server() as (port_no, accepted):
        port = open_port(f"tcp://127.0.0.1:{port_no}")
        try:
            assert isinstance(port, protocol_tcp.Serial)
            assert port._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert _round_trip(port) == b"ping\x00\xff"
        finally:
            t = time.monotonic()
            close_port(port)
            assert time.monotonic() - t < 0.2  # no 0.3 s "quick reconnect" sleep
        assert not port.is_open
        # the handler itself sets it, without open_port: serial_for_url alone finds it
        raw = serial.serial_for_url(f"tcp://127.0.0.1:{port_no}", timeout=0.05)
        try:
            assert raw._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            raw.close()


def test_bad_tcp_and_ssh_urls():
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed = free.getsockname()[1]
    free.close()
    with pytest.raises(DeviceError, match=rf"cannot open port tcp://127.0.0.1:{closed}: .*listening"):
        open_port(f"tcp://127.0.0.1:{closed}")
    with pytest.raises(DeviceError, match="nothing after the port"):
        open_port("tcp://127.0.0.1:5/x?y=1")
    for bad in ("ssh://pi@host/", "ssh://pi@host/1?color=red", "ssh:///5555", "ssh://-oProxyCommand=x/5555"):
        with pytest.raises(UsageError):
            open_port(bad)
    assert _ssh_clients() == []


# ---------------------------------------------------------------------------------------------
# ssh:// through a real OpenSSH server on loopback


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    from test_deploy_pi import SSHD, loopback_sshd

    if SSHD is None:
        require_tool("sshd")
    require_tool("ssh", "ssh-keygen")
    with loopback_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ssh_url_opens_a_tunnel_and_closing_reaps_it(sshd):
    from test_deploy_pi import _no_remote_hold_left

    with echo_server() as (agent_port, accepted):
        url = ssh_url(sshd.target(), agent_port)
        port = open_port(url)
        try:
            assert isinstance(port, protocol_ssh.Serial) and port.port == url
            ssh_proc = port.tunnel.proc
            assert _ssh_clients() == [ssh_proc] and _alive(ssh_proc.pid)
            assert port._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert _round_trip(port) == b"ping\x00\xff"
            assert len(accepted) == 1  # opening probed the tunnel without connecting through it
        finally:
            close_port(port)
        assert ssh_proc.returncode is not None and not _alive(ssh_proc.pid)
        assert _ssh_clients() == [] and port.tunnel is None
        assert _no_remote_hold_left(), f"the tunnel's remote `{TUNNEL_HOLD_MARK}` outlived it"
        port.close()  # closing again does nothing


def test_ssh_url_failure_names_the_host_and_leaves_no_ssh(sshd):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed = free.getsockname()[1]
    free.close()
    url = f"ssh://{sshd.user}@127.0.0.1:{closed}/127.0.0.1:5555?config={sshd.config}"
    with pytest.raises(DeviceError, match=rf"127.0.0.1:{closed}: host unreachable"):
        open_port(url)
    assert _ssh_clients() == []


def test_sigkilled_owner_leaves_no_ssh(sshd):
    """The tunnel's ssh gets SIGTERM when the process that opened the port dies, even by SIGKILL."""
    import signal
    import subprocess
    import sys

    with echo_server() as (agent_port, _):
        code = ("import sys, time\n"
                "from edgeattack.link.transport import open_port\n"
                f"port = open_port({ssh_url(sshd.target(), agent_port)!r})\n"
                "print(port.tunnel.proc.pid, flush=True)\n"
                "time.sleep(60)\n")
        owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            ssh_pid = int(owner.stdout.readline())
            assert _alive(ssh_pid)
        finally:
            owner.send_signal(signal.SIGKILL)
            owner.wait()
            owner.stdout.close()
        deadline = time.monotonic() + 10
        while _alive(ssh_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(ssh_pid), "the tunnel's ssh outlived the SIGKILLed process that opened it"
