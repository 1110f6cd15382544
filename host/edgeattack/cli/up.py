"""`edgeattack up --board B MODEL.tflite`: start one board, print its port URL, keep it up."""
from __future__ import annotations

import click


@click.command(name="up")
@click.option("--board", required=True, help="An emulator or QEMU board (`edgeattack boards`), or a profile .yaml.")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--startup-timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the board's first INFO answer.")
def command(board, model, startup_timeout):
    """Start one emulated or QEMU board running MODEL and keep it up until interrupted.

    The port URL is printed on stdout (alone on its line); give it to other commands with --port.
    Ctrl-C or SIGTERM stops the board cleanly.

    Example: edgeattack up --board qemu-m4 runs/pqat/model.tflite
    """
    import signal
    import threading

    from ..device.api import _start_board
    from ..profiles import get_profile
    from ..errors import DeviceError, UsageError

    profile = get_profile(board)
    if profile.kind not in ("emulator", "qemu"):
        raise UsageError(f"board {profile.name} is a {profile.kind} board: it runs on its own hardware "
                         f"(deploy it with `edgeattack flash`), `up` starts emulator and qemu boards")
    from pathlib import Path

    if not Path(model).is_file():
        raise UsageError(f"model {model} does not exist (give the .tflite file to run)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    handle = _start_board(profile, Path(model), startup_timeout)
    try:
        info = getattr(handle, "info", None) or {}
        if info.get("error"):
            raise DeviceError(f"board {profile.name} could not load {model}: {info['error']}")
        click.echo(handle.url)
        click.echo(f"{profile.name} is up at {handle.url} (model sha256 {info.get('model_sha256', '?')}); "
                   f"use --port {handle.url}; Ctrl-C stops it", err=True)
        alive = getattr(handle, "alive", None)
        while not stop.wait(0.5):
            if alive is not None and not alive():
                failure = getattr(handle, "failure", None)
                raise DeviceError((failure() if failure else None) or f"board {profile.name} stopped by itself")
    finally:
        handle.stop()
    click.echo(f"{profile.name} stopped", err=True)
