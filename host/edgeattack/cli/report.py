"""`edgeattack report RUN/`: (re)write a study run's summary.json, tables/*.csv and report.html."""
from __future__ import annotations

import click


@click.command("report")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary it wrote as one JSON object.")
def command(run, as_json):
    """Write RUN/report.html (self-contained: figures embedded, viewable offline), RUN/summary.json
    and RUN/tables/*.csv from a study run folder's cells (docs/report.md). Safe to rerun at any time,
    also while a study is running: it reads only finished cells.

    Example: edgeattack report runs/ci
    """
    from ..report import write_report

    path = write_report(run)
    if as_json:
        click.echo((path.parent / "summary.json").read_text().rstrip("\n"))
    else:
        click.echo(f"report {path}")
