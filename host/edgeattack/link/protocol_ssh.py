"""pyserial URL handler for `ssh://[user@]host[:sshport]/[agent_host:]agent_port[?identity=F&config=F]`:
an agent listening on a remote machine's loopback, reached through an SSH tunnel of its own.

Opening the port starts the tunnel (edgeattack.link.ssh_tunnel) and connects to its local end as a
tcp:// port (TCP_NODELAY); closing the port closes the socket, then stops and reaps the ssh process.
A malformed URL raises UsageError; ssh's failures raise DeviceError naming the host, the cause and
the fix (both pass through serial_for_url and open_port unchanged). Found by `serial.serial_for_url`
through `serial.protocol_handler_packages` (edgeattack.link.transport lists this package there).
"""
from __future__ import annotations

from . import protocol_tcp
from .ssh_tunnel import Tunnel, parse_ssh_url


class Serial(protocol_tcp.Serial):
    """A tcp:// port to the local end of its own SSH tunnel."""

    _tunnel: Tunnel | None = None

    def open(self):
        spec = parse_ssh_url(self.portstr)
        self._tunnel = Tunnel.open(spec.target, spec.remote_port, remote_host=spec.remote_host)
        try:
            super().open()
        except BaseException:
            self._close_tunnel()
            raise

    def from_url(self, url):
        return "127.0.0.1", self._tunnel.local_port

    def close(self):
        try:
            super().close()
        finally:
            self._close_tunnel()

    def _close_tunnel(self):
        tunnel, self._tunnel = self._tunnel, None
        if tunnel is not None:
            tunnel.close()

    @property
    def tunnel(self) -> Tunnel | None:
        """The running tunnel while the port is open (its ssh process: `tunnel.proc`)."""
        return self._tunnel
