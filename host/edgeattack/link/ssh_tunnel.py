"""SSH tunnels to an agent on a remote machine's loopback, and the `ssh://` port URL that names one.

`ssh://[user@]host[:sshport]/[agent_host:]agent_port[?identity=FILE&config=FILE]` is opened like any
other port URL (`edgeattack.link.transport.open_port`, through pyserial's `serial_for_url` and the
handler in `protocol_ssh`): a `Tunnel` forwards a free local loopback port to the agent through the
user's `ssh` binary, the port connects to it, and closing the port stops and reaps the ssh process.
"""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import subprocess
import tempfile
import time
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from .. import children
from ..errors import DeviceError, UsageError
from .ssh_target import SSHTarget, ssh_failure, tail
from .transport import free_local_port, pid_listens


# ---------------------------------------------------------------------------------------------
# ssh:// port URLs


@dataclasses.dataclass(frozen=True)
class SSHPortURL:
    target: SSHTarget
    remote_host: str
    remote_port: int


def parse_ssh_url(url: str) -> SSHPortURL:
    """`ssh://[user@]host[:port]/[agent_host:]agent_port[?identity=FILE&config=FILE]`."""
    parts = urlsplit(url)
    if parts.scheme != "ssh":
        raise UsageError(f"port URL {url!r}: not an ssh:// URL")
    bad = (f"port URL {url!r}: expected ssh://[user@]host[:sshport]/[agent_host:]agent_port, e.g. "
           f"ssh://pi@raspberrypi.local/127.0.0.1:5555")
    if not parts.hostname:
        raise UsageError(bad)
    try:
        ssh_port = parts.port
    except ValueError:
        raise UsageError(bad) from None
    path = unquote(parts.path.lstrip("/"))
    remote_host, _, remote_port = path.rpartition(":")
    remote_host = remote_host.strip("[]") or "127.0.0.1"
    if not remote_port.isdigit() or not 0 < int(remote_port) < 65536:
        raise UsageError(bad)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - {"identity", "config"})
    if unknown:
        raise UsageError(f"port URL {url!r}: unknown parameter '{unknown[0]}' (known: identity, config)")
    target = SSHTarget(host=parts.hostname, user=unquote(parts.username) if parts.username else None,
                       port=ssh_port, identity=query.get("identity"), config=query.get("config"))
    return SSHPortURL(target, remote_host, int(remote_port))


def ssh_url(target: SSHTarget | str, remote_port: int, remote_host: str = "127.0.0.1") -> str:
    """The ssh:// port URL for an agent listening on `remote_host:remote_port` behind `target`."""
    t = target if isinstance(target, SSHTarget) else SSHTarget.parse(target)
    host = f"[{t.host}]" if ":" in t.host else t.host
    user = f"{t.user}@" if t.user else ""
    port = f":{t.port}" if t.port else ""
    rhost = f"[{remote_host}]" if ":" in remote_host else remote_host
    query = "&".join(f"{k}={v}" for k, v in (("identity", t.identity), ("config", t.config)) if v)
    return f"ssh://{user}{host}{port}/{rhost}:{int(remote_port)}" + (f"?{query}" if query else "")


# ---------------------------------------------------------------------------------------------
# The forwarding ssh process


def tunnel_args(target: SSHTarget, local_port: int, remote_port: int,
                remote_host: str = "127.0.0.1") -> list[str]:
    """argv of the forwarding ssh: the -L forward on its own connection, plus a remote `sleep` on a
    pseudo-terminal. The tty is there for speed: OpenSSH turns Nagle off (TCP_NODELAY, both ends)
    only for interactive sessions, and without it small replies often wait for a delayed ACK
    (~40 ms): p90 round trip 45 ms instead of 5 ms on loopback (tools/bench_links.py). The remote command ends
    with the session (see TUNNEL_HOLD_COMMAND); a server that refuses ttys still forwards, slower."""
    return target.ssh_args(
        "-tt", "-e", "none",  # no escape character: stdin is never typed into, keep it inert
        "-o", "ExitOnForwardFailure=yes",
        # Its own TCP connection, never a shared ControlMaster's: killing this process must end
        # the forward, and a multiplexed forward would outlive it in the master.
        "-o", "ControlMaster=no", "-o", "ControlPath=none",
        "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
        "-L", f"127.0.0.1:{local_port}:{remote_host}:{remote_port}",
    ) + [TUNNEL_HOLD_COMMAND]


# Keeps the session (and its tty) open: a shell blocked reading the pty. When the connection ends,
# sshd closes the pty and the read returns, even when no SIGHUP arrives (seen when a tunnel closes
# right after opening: the tty was already disassociated, and a `sleep` here was left orphaned).
TUNNEL_HOLD_MARK = "edgeattack_tunnel_hold"
TUNNEL_HOLD_COMMAND = f"read -r {TUNNEL_HOLD_MARK}"


class Tunnel:
    """A running forward from 127.0.0.1:`local_port` to `remote_host:remote_port` as seen from the
    target. `Tunnel.open(...)` returns once ssh listens locally; `close()` stops and reaps ssh
    (idempotent). The ssh process gets SIGTERM if this process dies (edgeattack.children)."""

    def __init__(self, target: SSHTarget, proc, local_port: int):
        self.target, self.proc, self.local_port = target, proc, local_port

    @classmethod
    def open(cls, target: SSHTarget, remote_port: int, *, remote_host: str = "127.0.0.1",
             local_port: int = 0, timeout: float = 20.0) -> "Tunnel":
        """Start the forward; connection failures raise DeviceError naming the host, the cause and
        the fix (ssh is reaped on every path)."""
        if not 0 < int(remote_port) < 65536:
            raise UsageError(f"tunnel: remote port {remote_port} is not a TCP port number (1-65535)")
        attempts = 1 if local_port else 5
        for attempt in range(attempts):
            port = local_port or free_local_port()
            with tempfile.TemporaryFile() as err:
                # stdin: a pipe never written to, so ssh never sees EOF on it while the tunnel is up;
                # SIGTERM on our death lets ssh close its forward cleanly
                proc = children.spawn(tunnel_args(target, port, int(remote_port), remote_host),
                                      deathsig=signal.SIGTERM, stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=err)
                try:
                    if cls._wait_listening(target, proc, port, err, timeout, retry=attempt + 1 < attempts):
                        return cls(target, proc, port)
                except BaseException:
                    children.stop(proc)
                    raise
                children.stop(proc)  # the free port was taken meanwhile: try another
        raise DeviceError(f"tunnel to {target.label}: no free local port after {attempts} attempts")

    @staticmethod
    def _wait_listening(target, proc, port, err, timeout, retry) -> bool:
        """True once ssh listens on the local port; False when it lost the port race and `retry`."""
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                err.seek(0)
                message = err.read().decode(errors="replace")
                in_use = "address already in use" in message.lower()
                if proc.returncode == 255 and in_use and retry:
                    return False
                if in_use:
                    raise DeviceError(f"tunnel to {target.label}: local port {port} is in use: "
                                      f"choose another local port")
                raise ssh_failure(target, message) if proc.returncode == 255 else DeviceError(
                    f"tunnel to {target.label} ended at once (ssh exit {proc.returncode}: "
                    f"{tail(' '.join(message.split())) or 'no message'})")
            # probed without connecting: a connection through the tunnel would reach the agent and
            # count as a client
            if pid_listens(proc.pid, port):
                return True
            if time.monotonic() > deadline:
                raise DeviceError(f"tunnel to {target.label}: ssh did not open local port {port} "
                                  f"within {timeout:g} s: check the network")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        """The local end as a pyserial URL."""
        return f"socket://127.0.0.1:{self.local_port}"

    def close(self) -> None:
        children.stop(self.proc)


@contextlib.contextmanager
def tunnel(target: SSHTarget, remote_port: int, *, remote_host: str = "127.0.0.1", local_port: int = 0,
           timeout: float = 20.0) -> Iterator[Tunnel]:
    """A Tunnel for the duration of a `with` block (closed on every exit path)."""
    t = Tunnel.open(target, remote_port, remote_host=remote_host, local_port=local_port, timeout=timeout)
    try:
        yield t
    finally:
        t.close()
