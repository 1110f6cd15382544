"""`edgeattack flash`: put a model on a board.

- linux boards (pi4): copy the agent and the model over SSH, start the agent detached, verify its
  model hash; it stays running (CONVENTIONS "Board lifecycle"). `--stop` stops it.
- qemu boards: build the firmware for the model (cached by hash); commands start QEMU themselves.
- mcu boards: build the firmware and program it with pyOCD.
"""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import EdgeAttackError, UsageError


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
@click.option("--dry-run", is_flag=True, help="Print every command of the plan; run nothing, change nothing.")
def command(board, host, model, remote_dir, port_mode, serial_dev, remote_port, python, identity,
            ssh_config, no_install, pip_args, stop, dry_run):
    """Deploy MODEL (.tflite) to BOARD.

    \b
    edgeattack flash --board pi4 --host pi@raspberrypi.local model.tflite
    edgeattack flash --board pi4 --host pi@raspberrypi.local --stop
    edgeattack flash --board qemu-m4 model.tflite        # builds the firmware
    """
    from ..profiles import get_profile

    profile = get_profile(board)
    if profile.kind != "linux":
        linux_only = [name for name, value in (("--host", host), ("--remote-dir", remote_dir),
                                               ("--port-mode", port_mode), ("--serial", serial_dev),
                                               ("--remote-port", remote_port), ("--python", python),
                                               ("--stop", stop)) if value]
        if linux_only:
            raise UsageError(f"{linux_only[0]} applies to linux boards only; board {profile.name} is kind "
                             f"{profile.kind}")
    if stop:
        if model is not None:
            raise UsageError("--stop takes no MODEL: it stops the agent a previous flash started")
        return _stop_linux(profile, host, remote_dir, identity, ssh_config, dry_run)
    if model is None:
        raise UsageError("MODEL is missing: give the .tflite file to deploy (or --stop)")
    if not model.is_file():
        raise UsageError(f"model {model} does not exist: give an existing .tflite file")
    if profile.kind == "emulator":
        raise UsageError(f"board {profile.name} is an emulator: nothing to flash; session/attack start it "
                         f"themselves (or keep one up with `edgeattack up --board {profile.name} MODEL`)")
    if profile.kind == "qemu":
        return _build(model, profile, dry_run)
    if profile.kind == "mcu":
        return _flash_mcu(model, profile, dry_run)
    return _flash_linux(profile, model, host, remote_dir, port_mode, serial_dev, remote_port, python,
                        identity, ssh_config, no_install, pip_args, dry_run)


def _build_firmware():
    try:
        from ..firmware.build import build_firmware
    except ImportError as e:
        raise EdgeAttackError(f"firmware builds are not available in this install ({e}): "
                              f"reinstall edgeattack with its firmware package") from None
    return build_firmware


def _build(model: Path, profile, dry_run: bool):
    if dry_run:
        click.echo(f"# plan: build the {profile.name} firmware for {model} (cached by model hash); "
                   f"commands then start QEMU themselves")
        return
    result = _build_firmware()(model, profile)
    sizes = ""
    if getattr(result, "flash_bytes", None) is not None:
        sizes = f" (flash {result.flash_bytes} B, RAM {result.ram_bytes} B{', cached' if result.cached else ''})"
    click.echo(f"built the {profile.name} firmware for {model}: {_artifact(result)}{sizes}; session, attack and "
               f"up start QEMU with it")


def _artifact(result) -> str:
    for attr in ("elf", "path", "image", "bin", "hex"):
        value = getattr(result, attr, None)
        if value:
            return str(value)
    return str(result)


def _flash_mcu(model: Path, profile, dry_run: bool):
    target = (profile.deploy or {}).get("target")
    if not target:
        raise UsageError(f"board profile {profile.path}: deploy.target (the pyOCD target name) is missing")
    try:
        import pyocd  # noqa: F401 - optional dependency, only for physical microcontrollers
    except ImportError:
        raise EdgeAttackError(f"board {profile.name} is flashed with pyOCD, which is not installed: "
                              f"pip install pyocd") from None
    if dry_run:
        click.echo(f"# plan: build the {profile.name} firmware for {model}, then program it with pyOCD "
                   f"(target {target}) through the first connected debug probe, and reset the board")
        return
    image = _artifact(_build_firmware()(model, profile))
    from pyocd.core.helpers import ConnectHelper
    from pyocd.flash.file_programmer import FileProgrammer

    with ConnectHelper.session_with_chosen_probe(target_override=target, blocking=False) as session:
        if session is None:
            raise EdgeAttackError(f"board {profile.name}: no debug probe found: connect the board's USB "
                                  f"(ST-LINK / J-Link / CMSIS-DAP) and check `pyocd list`")
        FileProgrammer(session).program(image)
        session.target.reset()
    click.echo(f"flashed {image} to {profile.name} (pyOCD target {target}); port {profile.port}")


def _agent_port(profile, port_mode, serial_dev, remote_port) -> str:
    """Where the agent listens on the board: tcp://127.0.0.1:PORT (loopback only) or a serial device."""
    from ..deploy.pi import DEFAULT_SERIAL, DEFAULT_TCP_PORT

    default = (profile.deploy or {}).get("agent_port") or f"tcp://127.0.0.1:{DEFAULT_TCP_PORT}"
    default_tcp = default.startswith("tcp://")
    if port_mode is None:
        port_mode = "tcp" if default_tcp else "gadget" if "ttyGS" in default else "uart"
    if port_mode == "tcp":
        if serial_dev:
            raise UsageError("--serial applies to --port-mode gadget or uart, not tcp")
        port = remote_port or (int(default.rsplit(":", 1)[1]) if default_tcp else DEFAULT_TCP_PORT)
        return f"tcp://127.0.0.1:{port}"  # the board never exposes the agent to its network
    if remote_port:
        raise UsageError(f"--remote-port applies to --port-mode tcp, not {port_mode}")
    if serial_dev:
        return serial_dev
    if not default_tcp and ("ttyGS" in default) == (port_mode == "gadget"):
        return default  # the profile names this mode's device
    return DEFAULT_SERIAL[port_mode]


def _flash_linux(profile, model, host, remote_dir, port_mode, serial_dev, remote_port, python, identity,
                 ssh_config, no_install, pip_args, dry_run):
    import shlex

    from ..deploy.pi import PiDeploy, flash_pi, target_for

    deploy = profile.deploy or {}
    dep = PiDeploy(
        target=target_for(profile, host, identity, ssh_config),
        model_path=model,
        remote_dir=remote_dir or deploy.get("remote_dir") or "edgeattack-agent",
        python=python or deploy.get("python") or "python3",
        agent_port=_agent_port(profile, port_mode, serial_dev, remote_port),
        runtime=profile.runtime,
        board=profile.name,
        install=not no_install,
        pip_args=shlex.split(pip_args) if pip_args is not None else None,
    )
    result = flash_pi(dep, dry_run=dry_run, echo=click.echo)
    if dry_run:
        return
    click.echo(f"deployed {model} (sha256 {result.model_sha256}{', 16-byte aligned' if result.aligned else ''}) "
               f"to {result.host}:{result.remote_dir}; agent pid {result.pid} listening on {result.agent_port}")
    if result.aligned:
        click.echo(f"note: {model} was not 16-byte aligned; the board runs the aligned bytes (sha256 above), so "
                   f"give sessions the aligned model (`edgeattack compress` writes aligned models)")
    if result.port_url:
        click.echo(f"reach it with: --port {result.port_url}")
    else:
        click.echo(f"reach it through the host side of {result.agent_port} (e.g. --port /dev/ttyACM0)")


def _stop_linux(profile, host, remote_dir, identity, ssh_config, dry_run):
    from ..deploy import ssh
    from ..deploy.pi import Step, stop_pi, stop_script, target_for

    if profile.kind != "linux":
        raise UsageError(f"--stop applies to linux boards; board {profile.name} is kind {profile.kind}")
    target = target_for(profile, host, identity, ssh_config)
    rdir = remote_dir or (profile.deploy or {}).get("remote_dir") or "edgeattack-agent"
    if dry_run:
        script = stop_script(rdir)
        step = Step("stop", "", target.ssh_args() + [ssh.remote_command(script)], script=script)
        click.echo(f"# plan: stop the agent in {rdir} on {target.label} (dry run: nothing is executed)")
        for line in step.render():
            click.echo(line)
        return
    click.echo(f"{target.label}:{rdir}: {stop_pi(target, rdir)}")
