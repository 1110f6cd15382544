"""SSH through the OpenSSH client: run remote scripts, open port-forwarding tunnels, resolve ssh:// URLs.

Everything goes through the user's own `ssh` binary, so ~/.ssh/config, keys, agents and known_hosts
work as they do on the command line. Two options are forced on every call:

- `StrictHostKeyChecking=yes`: an unknown host key is refused (never accepted silently); the error says
  how to add it with ssh-keyscan after checking its fingerprint.
- `BatchMode=yes`: ssh never prompts (for a password or a host key), so a command never hangs.

The port URL `ssh://[user@]host[:sshport]/[agent_host:]agent_port` names an agent listening on the
remote machine's loopback; `resolve_port(url)` opens a tunnel for the duration of a `with` block and
yields the local `socket://127.0.0.1:N` URL that pyserial (edgeattack.link.transport.open_port) opens.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import DeviceError, UsageError

# Read by every ssh call when no explicit config is given: an `ssh -F` file (tests use it to keep
# their keys and known_hosts out of ~/.ssh). Unset means ssh's own defaults (~/.ssh/config).
CONFIG_ENV = "EDGEATTACK_SSH_CONFIG"
FORCED_OPTIONS = ("BatchMode=yes", "StrictHostKeyChecking=yes")


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the process that started it dies (Linux prctl)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_DEATHSIG
    except OSError:  # not Linux: the explicit kill/wait in `finally` still reaps it
        pass


def ssh_binary(name: str = "ssh") -> str:
    path = shutil.which(name)
    if path is None:
        raise DeviceError(f"the OpenSSH client `{name}` is not installed: install it "
                          f"(Debian/Ubuntu: sudo apt-get install openssh-client)")
    return path


@dataclasses.dataclass(frozen=True)
class SSHTarget:
    """Where to log in: `host` plus optional user, port, identity file and `ssh -F` config file.

    Fields left None fall back to ssh's own configuration (~/.ssh/config, or `config`).
    """

    host: str
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    config: str | None = None
    connect_timeout: int = 10

    @classmethod
    def parse(cls, text: str, **kw) -> "SSHTarget":
        """`[user@]host[:port]` (IPv6 as `[addr]:port`); keyword arguments set the other fields."""
        text = (text or "").strip()
        if not text or any(c.isspace() for c in text):
            raise UsageError(f"--host {text!r}: expected user@host or user@host:port")
        user, _, hostport = text.rpartition("@")
        host, port = hostport, None
        if hostport.startswith("["):
            end = hostport.find("]")
            if end < 0:
                raise UsageError(f"--host {text!r}: unclosed '[' in an IPv6 address (write [addr]:port)")
            host, rest = hostport[1:end], hostport[end + 1:]
            if rest:
                port = rest[1:] if rest.startswith(":") else rest
        elif hostport.count(":") == 1:
            host, port = hostport.split(":")
        if not host:
            raise UsageError(f"--host {text!r}: the host name is empty (expected user@host[:port])")
        if port is not None:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise UsageError(f"--host {text!r}: port {port!r} is not a TCP port number (1-65535)")
            port = int(port)
        if "port" in kw and kw["port"] is None:
            kw.pop("port")
        return cls(host=host, user=user or None, port=kw.pop("port", port), **kw)

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def label(self) -> str:
        """How errors name the target: user@host:port as given."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"{self.user}@{host}" if self.user else host
        return f"{base}:{self.port}" if self.port else base

    def _config(self) -> str | None:
        return self.config or os.environ.get(CONFIG_ENV) or None

    def options(self) -> list[str]:
        """Client options shared by ssh, scp and sftp (port given separately: ssh -p, scp -P)."""
        args: list[str] = []
        config = self._config()
        if config:
            args += ["-F", config]
        for opt in FORCED_OPTIONS:
            args += ["-o", opt]
        args += ["-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.identity:
            args += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        return args

    def ssh_args(self, *extra: str) -> list[str]:
        """`ssh` argv up to and including the destination; append the remote command after it."""
        args = [ssh_binary("ssh"), *self.options()]
        if self.port:
            args += ["-p", str(self.port)]
        return [*args, *extra, self.destination]


def remote_command(script: str) -> str:
    """The one string ssh sends to the remote login shell: run `script` under POSIX sh, whatever
    the user's shell is (fish, zsh ...)."""
    return "sh -c " + shlex.quote(script)


def ssh_failure(target: SSHTarget, stderr: str) -> DeviceError:
    """Turn ssh's exit status 255 + stderr into one line naming the host, the cause and the fix."""
    text = " ".join(stderr.split())
    low = text.lower()
    where = target.label
    port = target.port or 22
    keyscan_host = target.host
    if "remote host identification has changed" in low or "host key for" in low and "has changed" in low:
        return DeviceError(
            f"{where}: the host key CHANGED since it was recorded (a reinstalled board, or a "
            f"man-in-the-middle): check the new key's fingerprint on the board, then remove the old one "
            f"with `ssh-keygen -R '[{keyscan_host}]:{port}'` (or `ssh-keygen -R {keyscan_host}` for port "
            f"22) and add the new one with `ssh-keyscan -p {port} {keyscan_host} >> ~/.ssh/known_hosts`")
    if "host key verification failed" in low or "no " in low and "host key is known" in low:
        return DeviceError(
            f"{where}: unknown host key, refused (strict host key checking): check the board's key "
            f"fingerprint (on the board: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then add it "
            f"with `ssh-keyscan -p {port} {keyscan_host} >> ~/.ssh/known_hosts`")
    if "permission denied" in low or "too many authentication failures" in low:
        return DeviceError(
            f"{where}: SSH authentication failed ({_tail(text)}): install your public key on the board "
            f"with `ssh-copy-id -p {port} {target.destination}`, or pass --identity KEYFILE "
            f"(edgeattack never types passwords: BatchMode is on)")
    if "could not resolve hostname" in low or "name or service not known" in low:
        return DeviceError(
            f"{where}: cannot resolve the host name {target.host!r}: check the spelling, or give the "
            f"board's IP address (on the board: `hostname -I`)")
    for marker in ("connection refused", "connection timed out", "no route to host", "network is unreachable",
                   "operation timed out", "connection reset", "kex_exchange_identification",
                   "connection closed by"):
        if marker in low:
            return DeviceError(
                f"{where}: host unreachable ({_tail(text)}): check that the board is powered and on the "
                f"network, the address, and that its SSH server runs on port {port} "
                f"(on the board: `sudo systemctl enable --now ssh`)")
    return DeviceError(f"{where}: ssh failed ({_tail(text) or 'no message'}): run "
                       f"`ssh -p {port} {target.destination} true` to see why")


def _tail(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def run(target: SSHTarget, script: str, *, input: bytes | None = None, timeout: float = 300,
        what: str = "remote command") -> subprocess.CompletedProcess:
    """Run a POSIX sh `script` on the target; ssh's own failures (status 255) raise DeviceError.

    The script's exit status and output are returned as they are (bytes) for the caller to judge.
    """
    argv = target.ssh_args() + [remote_command(script)]
    try:
        proc = subprocess.run(argv, input=input if input is not None else b"", capture_output=True,
                              timeout=timeout, preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"{target.label}: {what} did not finish within {timeout:g} s: check the "
                          f"board's load and network") from None
    if proc.returncode == 255:
        raise ssh_failure(target, proc.stderr.decode(errors="replace"))
    return proc


# ---------------------------------------------------------------------------------------------
# Tunnels


def _free_local_port() -> int:
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


def _listening(pid: int, port: int) -> bool:
    """True once process `pid` listens on 127.0.0.1:port. Probed without connecting: a connection
    through the tunnel would reach the agent and count as a client. On Linux the listener must be
    `pid` itself (not another program that grabbed the port); elsewhere a bind probe."""
    inodes = listening_inodes(port)
    if inodes is not None:
        return bool(inodes & socket_inodes(pid))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


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


@contextlib.contextmanager
def tunnel(host, remote_port: int, *, remote_host: str = "127.0.0.1", local_port: int = 0,
           identity: str | None = None, config: str | None = None,
           timeout: float = 20.0) -> Iterator[str]:
    """Forward a local loopback port to `remote_host:remote_port` as seen from `host`, for the
    duration of the `with` block; yields the local pyserial URL `socket://127.0.0.1:N`.

    `host` is an SSHTarget or `[user@]host[:port]`. The ssh process dies with this process
    (PR_SET_DEATHSIG) and is always terminated and reaped on exit. Connection failures raise
    DeviceError naming the host, the cause and the fix.
    """
    target = host if isinstance(host, SSHTarget) else SSHTarget.parse(host, identity=identity, config=config)
    if not 0 < int(remote_port) < 65536:
        raise UsageError(f"tunnel: remote port {remote_port} is not a TCP port number (1-65535)")
    attempts = 1 if local_port else 5
    for attempt in range(attempts):
        port = local_port or _free_local_port()
        with tempfile.TemporaryFile() as err:
            # stdin: a pipe never written to, so ssh never sees EOF on it while the tunnel is up
            proc = subprocess.Popen(tunnel_args(target, port, int(remote_port), remote_host),
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                                    preexec_fn=_die_with_parent)
            try:
                deadline = time.monotonic() + timeout
                while True:
                    if proc.poll() is not None:
                        err.seek(0)
                        message = err.read().decode(errors="replace")
                        if proc.returncode == 255 and "address already in use" in message.lower() \
                                and attempt + 1 < attempts:
                            break  # another process took the free port meanwhile: pick another
                        if "address already in use" in message.lower():
                            raise DeviceError(f"tunnel to {target.label}: local port {port} is in use: "
                                              f"choose another local port")
                        raise ssh_failure(target, message) if proc.returncode == 255 else DeviceError(
                            f"tunnel to {target.label} ended at once (ssh exit {proc.returncode}: "
                            f"{_tail(' '.join(message.split())) or 'no message'})")
                    if _listening(proc.pid, port):
                        break
                    if time.monotonic() > deadline:
                        raise DeviceError(f"tunnel to {target.label}: ssh did not open local port {port} "
                                          f"within {timeout:g} s: check the network")
                    time.sleep(0.05)
                if proc.poll() is not None:
                    continue
                yield f"socket://127.0.0.1:{port}"
                return
            finally:
                _stop(proc)
    raise DeviceError(f"tunnel to {target.label}: no free local port after {attempts} attempts")


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


@contextlib.contextmanager
def resolve_port(url: str) -> Iterator[str]:
    """Yield a URL pyserial can open for `url`, for the duration of the `with` block.

    - `ssh://...`: opens an SSH tunnel (see `tunnel`), yields `socket://127.0.0.1:N`, closes it on exit.
    - `tcp://host:port`: the host side of a TCP link is a client: yields `socket://host:port`.
    - anything else (`/dev/ttyACM0`, `socket://`, `rfc2217://`, a pty path) is yielded unchanged.
    """
    if url.startswith("ssh://"):
        spec = parse_ssh_url(url)
        with tunnel(spec.target, spec.remote_port, remote_host=spec.remote_host) as local:
            yield local
    elif url.startswith("tcp://"):
        yield "socket://" + url[len("tcp://"):]
    else:
        yield url
