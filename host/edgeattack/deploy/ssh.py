"""Run POSIX sh scripts on a remote machine through the OpenSSH client (the deploy's one way in).

Who to log in as and how ssh is called (forced options, `--` before the host, error wording) is
`edgeattack.link.ssh_target`; tunnels and `ssh://` port URLs are `edgeattack.link.ssh_tunnel`, opened
like any port URL through `edgeattack.link.transport.open_port`.
"""
from __future__ import annotations

import shlex
import subprocess

from .. import children
from ..errors import DeviceError
from ..link.ssh_target import SSHTarget, ssh_failure


def remote_command(script: str) -> str:
    """The one string ssh sends to the remote login shell: run `script` under POSIX sh, whatever
    the user's shell is (fish, zsh ...)."""
    return "sh -c " + shlex.quote(script)


def run(target: SSHTarget, script: str, *, input: bytes | None = None, timeout: float = 300,
        what: str = "remote command") -> subprocess.CompletedProcess:
    """Run a POSIX sh `script` on the target; ssh's own failures (status 255) raise DeviceError.

    The script's exit status and output are returned as they are (bytes) for the caller to judge.
    The ssh process dies with this process and is reaped on every path (edgeattack.children).
    """
    argv = target.ssh_args() + [remote_command(script)]
    result = children.run(argv, input=input if input is not None else b"", timeout=timeout)
    if result.timed_out:
        raise DeviceError(f"{target.label}: {what} did not finish within {timeout:g} s: check the "
                          f"board's load and network")
    if result.returncode == 255:
        raise ssh_failure(target, result.stderr.decode(errors="replace"))
    return subprocess.CompletedProcess(argv, result.returncode, result.stdout, result.stderr)
