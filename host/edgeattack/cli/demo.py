import click

from . import force_option, seed_option


@click.command("demo")
@click.option("-o", "--out", default="runs/demo", show_default=True, type=click.Path(),
              help="Output folder for models, exports, sessions and the summary table.")
@click.option("--recipes", default=None,
              help="Comma-separated recipes (default: ptq-int8,prune,cluster,pqat,cqat,distill,lowrank).")
@click.option("--boards", default=None, help="Comma-separated boards (default: emu-tflm,qemu-m4).")
@click.option("--samples", type=int, default=200, show_default=True, help="Test inputs per session.")
@click.option("--epochs", type=int, default=30, show_default=True)
@seed_option
@force_option
def command(out, recipes, boards, samples, epochs, seed, force):
    """The main job: train on digits, compress with several recipes, export, run on emulated boards,
    print a table of accuracy, size and on-device latency per recipe. Fully offline.

    Example: edgeattack demo -o runs/demo
    """
    from ..demo import DEFAULT_BOARDS, DEFAULT_RECIPES, format_table, run_demo

    split = lambda s, d: tuple(v.strip() for v in s.split(",") if v.strip()) if s else d  # noqa: E731
    summary = run_demo(out, recipes=split(recipes, DEFAULT_RECIPES), boards=split(boards, DEFAULT_BOARDS),
                       samples=samples, epochs=epochs, seed=seed, force=force)
    click.echo(format_table(summary))
    click.echo(f"\n{out}/summary.md, summary.json; models, C exports and sessions under {out}/ "
               f"({summary['seconds']:.0f} s)")
