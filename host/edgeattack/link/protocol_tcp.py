"""pyserial URL handler for `tcp://HOST:PORT`: a TCP client to a device or agent listening there.

It is pyserial's `socket://` with TCP_NODELAY set as soon as the socket connects (the protocol's
small request/reply frames would otherwise each wait for the peer's delayed ACK, about 44 ms) and a
close() that does not sleep. The agent's own `--port tcp://` means *listen*; on the host the same
URL connects to it. Found by `serial.serial_for_url` through `serial.protocol_handler_packages`
(edgeattack.link.transport lists this package there).
"""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

from serial.serialutil import SerialException
from serial.urlhandler import protocol_socket


class Serial(protocol_socket.Serial):
    """socket:// under the tcp:// scheme, Nagle off."""

    def open(self):
        super().open()
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def from_url(self, url):
        parts = urlsplit(url)
        if parts.scheme != "tcp":
            raise SerialException(f"expected tcp://<host>:<port>, got {url!r}")
        if parts.query or parts.path.strip("/"):
            raise SerialException(f"expected tcp://<host>:<port> with nothing after the port, got {url!r}")
        return super().from_url(parts._replace(scheme="socket").geturl())

    def close(self):
        """Close at once (pyserial's socket close sleeps 0.3 s)."""
        from .transport import close_socket

        close_socket(self)
