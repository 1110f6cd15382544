"""`edgeattack study NAME|FILE.yaml -o RUN/`: run a study (docs/studies.md), then write its report."""
from __future__ import annotations

import click


@click.command("study")
@click.argument("study")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Run folder: study.yaml, cells/<hash>/, summary.json, tables/, report.html.")
@click.option("--resume", is_flag=True, help="Continue a run in -o: only missing or stale cells run.")
@click.option("--ray", "ray_address", metavar="HOST:PORT",
              help="Run cells as tasks on this Ray cluster (board-bound cells need a node declaring the "
                   "resource board:NAME).")
@click.option("--workers", type=click.IntRange(1, 64),
              help="Local worker processes (default: the CPU count, at most 4).")
@click.option("--energy", type=click.Choice(["auto", "measured", "estimated", "off"]),
              help="Energy source for the study's boards (default: the study file's, else auto).")
@click.option("--force", is_flag=True, help="Start over in a non-empty -o (everything in it is removed).")
@click.option("--no-progress", is_flag=True, help="No progress lines on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as one JSON object.")
def command(study, out, resume, ray_address, workers, energy, force, no_progress, as_json):
    """Run a study: a built-in name (`edgeattack studies`) or a study .yaml file. Cells (train,
    compress, attack, session, ...) are cached in RUN/cells/<hash>/; a rerun with --resume does only
    what is missing or stale. Ends by writing the report.

    Example: edgeattack study ci -o runs/ci
    """
    from ..study import check_failures, run_study

    summary = run_study(study, out, resume=resume, force=force, ray=ray_address, workers=workers,
                        energy=energy, progress=not no_progress)
    summary["report"] = _write_report(out)
    if as_json:
        from ..atomic import json_text

        click.echo(json_text(summary))
    else:
        click.echo(f"study {summary['study']}: {summary['cells']} cells ({summary['computed']} computed, "
                   f"{summary['cached']} cached, {len(summary['failed'])} failed) in "
                   f"{summary['seconds']:.0f} s; run folder {out}"
                   + (f", report {summary['report']}" if summary["report"] else ""))
    check_failures(summary)


def _write_report(out):
    from ..report import write_report

    return str(write_report(out))
