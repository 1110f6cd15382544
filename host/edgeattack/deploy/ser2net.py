"""Export a serial device as RFC2217 (telnet serial-port control) with ser2net 4.x.

A board's serial port on another machine (a lab PC, the Pi's /dev/ttyACM0 to a microcontroller)
becomes `rfc2217://HOST:PORT`, which every command takes as --port (pyserial opens it). On a machine
of its own, ser2net runs as a service with the config `config_yaml` writes; `export_serial` runs it
as a child process for the duration of a `with` block (tests, or a one-off share).

A pseudo-terminal cannot set modem lines: ser2net never answers pyserial's SET_CONTROL (DTR/RTS) on
one, so the URL for a pty's export carries pyserial's `?ign_set_control` (real serial ports do not
need it).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .. import children
from ..errors import DeviceError, UsageError
from ..link.transport import free_local_port, pid_listens


def config_yaml(device: str, port: int, baudrate: int = 115200, bind: str = "127.0.0.1",
                name: str = "edgeattack") -> str:
    """A ser2net 4.x YAML config exporting `device` as telnet+RFC2217 on bind:port (8N1, modem
    lines ignored: `local`; no mDNS advertisement; a new client replaces a stale one).

    Latency settings, for the protocol's small request/reply frames: `tcp(nodelay)` (no Nagle) and
    `chardelay: false` (ser2net otherwise holds device bytes up to 20 ms to batch them). Measured on
    a pty, one inference at a time: p50 round trip about 5 ms with ser2net's defaults, under 1 ms
    with both (tools/bench_links.py)."""
    if any(c in device for c in ",\n") or not device:
        raise UsageError(f"serial device {device!r}: a path without commas or newlines is needed")
    return (f"%YAML 1.1\n---\n"
            f"connection: &{name}\n"
            f"  accepter: telnet(rfc2217),tcp(nodelay),{bind},{int(port)}\n"
            f"  connector: serialdev,{device},{int(baudrate)}n81,local\n"
            f"  options:\n"
            f"    kickolduser: true\n"
            f"    chardelay: false\n"
            f"    mdns: false\n")


def _is_pty(device: str) -> bool:
    return os.path.realpath(device).startswith("/dev/pts/")


@contextlib.contextmanager
def export_serial(device: str, port: int = 0, baudrate: int = 115200, timeout: float = 10.0) -> Iterator[str]:
    """Run ser2net exporting `device` on 127.0.0.1:`port` (0: a free one) until the block ends;
    yields the pyserial URL `rfc2217://127.0.0.1:PORT` (plus `?ign_set_control` for a pty).

    ser2net dies with this process and is always stopped and reaped on exit (edgeattack.children).
    """
    binary = shutil.which("ser2net") or ("/usr/sbin/ser2net" if os.path.exists("/usr/sbin/ser2net") else None)
    if binary is None:
        raise DeviceError("ser2net is not installed: install it (Debian/Ubuntu: sudo apt-get install ser2net)")
    if not os.path.exists(device):
        raise UsageError(f"serial device {device} does not exist: check the path (is the board connected?)")
    with tempfile.TemporaryDirectory(prefix="ea-ser2net-") as tmp:
        cfg = Path(tmp) / "ser2net.yaml"
        log_path = Path(tmp) / "ser2net.log"
        for attempt in range(1 if port else 5):
            tcp_port = port or free_local_port()
            cfg.write_text(config_yaml(device, tcp_port, baudrate))
            with open(log_path, "wb") as log:
                # -n: stay in the foreground; -d: log to stderr; -P: pid file in our temp dir, not /run
                proc = children.spawn([binary, "-n", "-d", "-c", str(cfg), "-P", str(Path(tmp) / "ser2net.pid")],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
            try:
                deadline = time.monotonic() + timeout
                while proc.poll() is None and time.monotonic() < deadline:
                    if pid_listens(proc.pid, tcp_port):
                        break
                    time.sleep(0.05)
                else:
                    message = " ".join(log_path.read_text(errors="replace").split())[-300:]
                    if proc.poll() is not None and attempt < 4 and not port:
                        continue  # the free port was taken meanwhile: try another
                    raise DeviceError(f"ser2net did not listen on 127.0.0.1:{tcp_port} for {device} "
                                      f"({message or 'no message'}): check the device and the port")
                yield f"rfc2217://127.0.0.1:{tcp_port}" + ("?ign_set_control" if _is_pty(device) else "")
                return
            finally:
                children.stop(proc)
        raise DeviceError(f"ser2net could not listen for {device}: no free local port after 5 attempts")
