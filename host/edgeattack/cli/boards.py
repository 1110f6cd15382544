"""`edgeattack boards`: list the board profiles; `edgeattack boards show NAME`: print one."""
from __future__ import annotations

import json

import click


def _mhz(hz):
    return "-" if hz is None else f"{hz / 1e6:g} MHz"


def _kib(n):
    if n is None:
        return "-"
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n / 1024:g} KiB"


@click.group(name="boards", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the profiles as a JSON list.")
@click.pass_context
def command(ctx, as_json):
    """List board profiles (name, kind, cpu, clock, memory, runtime, default port), or show one.

    Example: edgeattack boards show qemu-m4
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..profiles import list_profiles

    if as_json:
        click.echo(json.dumps([p.to_dict() for p in list_profiles()], indent=2))
        return
    rows = [("NAME", "KIND", "CPU", "CLOCK", "FLASH", "RAM", "RUNTIME", "PORT")]
    for p in list_profiles():
        rows.append((p.name, p.kind, p.cpu, _mhz(p.clock_hz), _kib(p.flash_bytes), _kib(p.ram_bytes),
                     p.runtime, p.port or "(started by the host)"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@command.command(name="show")
@click.argument("board")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def show(board, as_json):
    """Print one board profile (a name from `edgeattack boards`, or a profile .yaml file)."""
    from ..profiles import get_profile

    profile = get_profile(board)
    data = profile.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, width=200).rstrip())
