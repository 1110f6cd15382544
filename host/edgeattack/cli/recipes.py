"""`edgeattack recipes [--json]`: the built-in compression recipes, their steps and descriptions."""
from __future__ import annotations

import textwrap

import click


def _step_text(step) -> str:
    given = ", ".join(f"{k}={v}" for k, v in step.given.items())
    return f"{step.name}({given})" if given else step.name


@click.command("recipes")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list: per recipe its name, description, source and steps with every "
                   "parameter resolved.")
def command(as_json):
    """List the built-in compression recipes (usable as `compress --recipe NAME`), with their steps
    and what they do. A recipe file of your own works the same way (docs/recipes.md).

    Example: edgeattack recipes --json
    """
    from ..compression.recipe import builtin_recipes

    recipes = builtin_recipes()
    if as_json:
        from ..atomic import json_text

        click.echo(json_text([r.describe() for r in recipes]))
        return
    width = max(len(r.name) for r in recipes)
    for r in recipes:
        click.echo(f"{r.name.ljust(width)}  {' -> '.join(_step_text(s) for s in r.steps)}")
        for line in textwrap.wrap(" ".join(r.description.split()), 96 - width):
            click.echo(f"{'':{width}}  {line}")
