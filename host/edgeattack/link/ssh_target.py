"""Who to log in as, through the user's own OpenSSH client: `SSHTarget` builds ssh argv, and
`ssh_failure` turns ssh's exit 255 into one line naming the host, the cause and the fix.

Everything goes through the `ssh` binary, so ~/.ssh/config, keys, agents and known_hosts work as they
do on the command line. Two options are forced on every call:

- `StrictHostKeyChecking=yes`: an unknown host key is refused (never accepted silently); the error says
  how to add it with ssh-keyscan after checking its fingerprint.
- `BatchMode=yes`: ssh never prompts (for a password or a host key), so a command never hangs.

Host and user names are checked before they reach an argv: one starting with `-` would be read by ssh
as an option (`-oProxyCommand=...` runs a local command), so it is a usage error; `--` also ends ssh's
options before the destination. Suggested fix-up commands in errors quote every value.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil

from ..errors import DeviceError, UsageError

# Read by every ssh call when no explicit config is given: an `ssh -F` file (tests use it to keep
# their keys and known_hosts out of ~/.ssh). Unset means ssh's own defaults (~/.ssh/config).
CONFIG_ENV = "EDGEATTACK_SSH_CONFIG"
FORCED_OPTIONS = ("BatchMode=yes", "StrictHostKeyChecking=yes")

# Host names, IPv4/IPv6 addresses (a zone after %) and ssh_config aliases of ordinary characters;
# user names of the same kind (an `@` allowed for domain users). Never a leading `-`.
_HOST_RE = re.compile(r"[A-Za-z0-9_.%:][A-Za-z0-9_.%:-]*")
_USER_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]*")


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

    def __post_init__(self):
        if not isinstance(self.host, str) or not _HOST_RE.fullmatch(self.host):
            what = "starts with '-' (ssh would read it as an option)" if str(self.host).startswith("-") \
                else "has characters a host name cannot have"
            raise UsageError(f"ssh host {self.host!r} {what}: give a host name or address, e.g. pi@raspberrypi.local")
        if self.user is not None and not _USER_RE.fullmatch(self.user):
            what = "starts with '-' (ssh would read it as an option)" if self.user.startswith("-") \
                else "has characters a user name cannot have"
            raise UsageError(f"ssh user {self.user!r} {what}: give a login name, e.g. pi@raspberrypi.local")

    @classmethod
    def parse(cls, text: str, **kw) -> "SSHTarget":
        """`[user@]host[:port]` (IPv6 as `[addr]:port`); keyword arguments set the other fields."""
        text = (text or "").strip()
        if not text or any(c.isspace() for c in text):
            raise UsageError(f"--host {text!r}: expected user@host or user@host:port")
        if text.startswith("-"):
            raise UsageError(f"--host {text!r} starts with '-' (ssh would read it as an option): "
                             f"expected user@host or user@host:port")
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
        """`ssh` argv up to and including the destination (after `--`: no option past it); append the
        remote command after it."""
        args = [ssh_binary("ssh"), *self.options()]
        if self.port:
            args += ["-p", str(self.port)]
        return [*args, *extra, "--", self.destination]


def ssh_failure(target: SSHTarget, stderr: str) -> DeviceError:
    """Turn ssh's exit status 255 + stderr into one line naming the host, the cause and the fix."""
    text = " ".join(stderr.split())
    low = text.lower()
    where = target.label
    port = target.port or 22
    q = shlex.quote
    host, dest = q(target.host), q(target.destination)
    if "remote host identification has changed" in low or "host key for" in low and "has changed" in low:
        return DeviceError(
            f"{where}: the host key CHANGED since it was recorded (a reinstalled board, or a "
            f"man-in-the-middle): check the new key's fingerprint on the board, then remove the old one "
            f"with `ssh-keygen -R {q(f'[{target.host}]:{port}')}` (or `ssh-keygen -R {host}` for port "
            f"22) and add the new one with `ssh-keyscan -p {port} {host} >> ~/.ssh/known_hosts`")
    if "host key verification failed" in low or "no " in low and "host key is known" in low:
        return DeviceError(
            f"{where}: unknown host key, refused (strict host key checking): check the board's key "
            f"fingerprint (on the board: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then add it "
            f"with `ssh-keyscan -p {port} {host} >> ~/.ssh/known_hosts`")
    if "permission denied" in low or "too many authentication failures" in low:
        return DeviceError(
            f"{where}: SSH authentication failed ({tail(text)}): install your public key on the board "
            f"with `ssh-copy-id -p {port} {dest}`, or pass --identity KEYFILE "
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
                f"{where}: host unreachable ({tail(text)}): check that the board is powered and on the "
                f"network, the address, and that its SSH server runs on port {port} "
                f"(on the board: `sudo systemctl enable --now ssh`)")
    return DeviceError(f"{where}: ssh failed ({tail(text) or 'no message'}): run "
                       f"`ssh -p {port} {dest} true` to see why")


def tail(text: str, limit: int = 160) -> str:
    """The end of a long message, marked as cut."""
    return text if len(text) <= limit else "..." + text[-limit:]
