"""`edgeattack up --board B MODEL.tflite`: start one board, print its port URL, keep it up."""
from __future__ import annotations

import click


@click.command(name="up")
@click.option("--board", required=True, help="An emulator or QEMU board (`edgeattack boards`), or a profile .yaml.")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--startup-timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the board's first INFO answer.")
@click.option("--protocol", type=click.Choice(["edgeattack", "mlperf"]),
              help="QEMU boards: mlperf runs the MLPerf-mode firmware (MLPerf Tiny's DUT protocol, "
                   "docs/mlperf.md); default: the profile's protocol, else edgeattack.")
def command(board, model, startup_timeout, protocol):
    """Start one emulated or QEMU board running MODEL and keep it up until interrupted.

    The port URL is printed on stdout (alone on its line); give it to other commands with --port.
    Ctrl-C or SIGTERM stops the board cleanly.

    Example: edgeattack up --board qemu-m4 runs/pqat/model.tflite
    """
    import signal
    import threading

    from ..device import start_board
    from ..errors import DeviceError

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    handle = start_board(board, model, startup_timeout, protocol=protocol)
    try:
        info = handle.info or {}
        name = handle.profile.name
        if info.get("error"):
            raise DeviceError(f"board {name} could not load {model}: {info['error']}")
        click.echo(handle.url)
        click.echo(f"{name} is up at {handle.url} (model sha256 {info.get('model_sha256', '?')}); "
                   f"use --port {handle.url}; Ctrl-C stops it", err=True)
        while not stop.wait(0.5):
            if not handle.alive():
                raise DeviceError(handle.failure() or f"board {name} stopped by itself")
    finally:
        handle.stop()
    click.echo(f"{handle.profile.name} stopped", err=True)
