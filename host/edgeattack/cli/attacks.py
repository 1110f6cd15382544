"""`edgeattack attacks`: list the attacks with their parameters."""
from __future__ import annotations

import json

import click


@click.command(name="attacks")
@click.option("--json", "as_json", is_flag=True, help="Print the attacks as a JSON list.")
def command(as_json):
    """List the evasion attacks: name, family, norms and hyperparameters (for --set NAME=VALUE).

    Example: edgeattack attacks --json
    """
    from ..attacks import list_attacks

    items = list_attacks()
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    for a in items:
        kind = ", ".join(x for x in (a["family"], "minimization" if a["minimization"] else "",
                                     "targeted" if a["targeted"] else "") if x)
        click.echo(f"{a['name']:<12} {kind:<24} {'/'.join(a['norms']):<8} {a['summary']}")
        for p in a["params"]:
            if p["name"] != "norm":
                click.echo(f"    {p['name'] + '=' + repr(p['default']):<26} {p['help']}")
