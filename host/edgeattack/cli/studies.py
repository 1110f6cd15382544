"""`edgeattack studies [--json]`: the built-in studies and their parts."""
from __future__ import annotations

import textwrap

import click


@click.command("studies")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list: name, description, parts, file.")
def command(as_json):
    """List the built-in studies (usable as `edgeattack study NAME`). A study file of your own
    works the same way (docs/studies.md).

    Example: edgeattack studies --json
    """
    from ..study import list_studies

    studies = list_studies()
    if as_json:
        from ..atomic import json_text

        click.echo(json_text(studies))
        return
    width = max(len(s["name"]) for s in studies)
    for s in studies:
        click.echo(f"{s['name'].ljust(width)}  parts: {', '.join(s['parts'])}")
        for line in textwrap.wrap(s["description"], 96 - width):
            click.echo(f"{'':{width}}  {line}")
