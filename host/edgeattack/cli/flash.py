"""`edgeattack flash`: put a model on a board.

- linux boards (pi4): copy the agent and the model over SSH, start the agent detached, verify its
  model hash; it stays running (CONVENTIONS "Board lifecycle"). `--stop` stops it.
- qemu boards: build the firmware for the model (cached by hash); commands start QEMU themselves.
- mcu boards: build the firmware and program it with pyOCD.
What flashing means is each board driver's (edgeattack.device.boards); this command checks the
options against the driver's and prints what it did (`--json`: the deploy summary).
"""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError


@click.command(name="flash")
@click.option("--board", required=True, help="Board name (edgeattack boards) or a profile .yaml file.")
@click.option("--host", help="linux boards: SSH login user@host[:port] (default: the profile's deploy.user/host/ssh_port).")
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--remote-dir", help="linux boards: agent folder on the board, relative to the login home "
              "(default: the profile's deploy.remote_dir).")
@click.option("--port-mode", type=click.Choice(["tcp", "gadget", "uart"]),
              help="linux boards: where the agent listens: tcp = the board's loopback (reached through an "
              "SSH tunnel), gadget = USB gadget serial, uart = the GPIO UART (default: from the profile).")
@click.option("--serial", "serial_dev", help="Serial device on the board for gadget/uart (default /dev/ttyGS0, /dev/serial0).")
@click.option("--remote-port", type=click.IntRange(1, 65535),
              help="tcp mode: the agent's TCP port on the board's loopback (default: from the profile, 5555).")
@click.option("--python", "python", help="linux boards: python on the board (default: the profile's, python3).")
@click.option("--identity", type=click.Path(dir_okay=False), help="SSH private key file (ssh -i).")
@click.option("--ssh-config", type=click.Path(dir_okay=False),
              help="ssh_config file to use instead of ~/.ssh/config (ssh -F; env EDGEATTACK_SSH_CONFIG).")
@click.option("--no-install", is_flag=True, help="Do not pip-install missing modules on the board; fail instead.")
@click.option("--pip-args", help="Arguments for pip install on the board (default: --user, none in a venv).")
@click.option("--stop", "stop", is_flag=True, help="linux boards: stop the deployed agent and exit (no MODEL).")
@click.option("--kernels", type=click.Choice(["auto", "ref", "dsp", "mve"]),
              help="qemu and mcu boards: the firmware's kernel set (default auto: the best the board's core runs); "
              "linux boards: the agent's LiteRT kernels (auto: XNNPACK where it applies; ref: reference kernels, "
              "the same outputs on every processor).")
@click.option("--protocol", type=click.Choice(["edgeattack", "mlperf"]),
              help="qemu and mcu boards: the firmware's wire protocol (default: the profile's, else edgeattack); "
                   "mlperf builds the MLPerf-mode firmware, which speaks MLPerf Tiny's DUT protocol "
                   "(docs/mlperf.md).")
@click.option("--dry-run", is_flag=True, help="Print every command of the plan; run nothing, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the deploy summary as one JSON object on stdout.")
def command(board, host, model, remote_dir, port_mode, serial_dev, remote_port, python, identity,
            ssh_config, no_install, pip_args, stop, kernels, protocol, dry_run, as_json):
    """Deploy MODEL (.tflite) to BOARD.

    \b
    edgeattack flash --board pi4 --host pi@raspberrypi.local model.tflite
    edgeattack flash --board pi4 --host pi@raspberrypi.local --stop
    edgeattack flash --board qemu-m4 model.tflite        # builds the firmware
    edgeattack flash --board nucleo-l4r5zi --protocol mlperf model.tflite   # MLPerf-mode firmware
    """
    import json

    from ..device import board_for
    from ..device.board import kinds_with_flash_option

    driver = board_for(board, model)
    kind = driver.profile.kind
    # flag -> (the driver's option name, value): options checked against the driver's own list
    given = {"--host": ("host", host), "--remote-dir": ("remote_dir", remote_dir),
             "--port-mode": ("port_mode", port_mode), "--serial": ("serial", serial_dev),
             "--remote-port": ("remote_port", remote_port), "--python": ("python", python),
             "--stop": ("stop", stop), "--kernels": ("kernels", kernels), "--protocol": ("protocol", protocol)}
    for flag, (name, value) in given.items():
        if value and name not in driver.flash_options:
            kinds = " and ".join(kinds_with_flash_option(name))
            raise UsageError(f"{flag} applies to {kinds} boards only; board {driver.profile.name} is kind "
                             f"{kind}")
    options = {name: value for name, value in (
        *given.values(), ("identity", identity), ("ssh_config", ssh_config),
        ("no_install", no_install), ("pip_args", pip_args)) if name in driver.flash_options}

    def echo(line: str) -> None:
        click.echo(line, err=as_json)  # with --json, stdout holds only the summary

    if stop:
        if model is not None:
            raise UsageError("--stop takes no MODEL: it stops the agent a previous flash started")
        summary = driver.undeploy(dry_run=dry_run, echo=echo, **options)
    else:
        if model is None:
            raise UsageError("MODEL is missing: give the .tflite file to deploy (or --stop)")
        if not model.is_file():
            raise UsageError(f"model {model} does not exist: give an existing .tflite file")
        summary = driver.flash(dry_run=dry_run, echo=echo, **options)
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
