"""`edgeattack invert`: MIFace-style reconstructions of each class from a device's scores."""
from __future__ import annotations

import click

from . import force_option, seed_option


@click.command(name="invert")
@click.option("--model", "model", required=True, type=click.Path(),
              help="The int8 .tflite the device runs (checked against the device's model hash).")
@click.option("--board", help="Board to start (emulator/QEMU) or whose profile describes --port.")
@click.option("--port", help="Query a running device at this URL instead of starting the board.")
@click.option("--dataset", default="digits", show_default=True,
              help="Dataset name or .npz: its test split trains the independent judge and gives the "
                   "class means (never queried).")
@click.option("--budget", type=int, default=2000, show_default=True, help="Device queries per class.")
@click.option("--classes", help="Comma-separated classes to invert [default: all].")
@click.option("--shortcut-budgets", default="",
              help="Also extract a replica with these query budgets and invert it white-box "
                   "(comma-separated; empty: device route only).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="probes, sigma, lr, init, judge_epochs, whitebox_steps (repeatable).")
@seed_option
@force_option
@click.option("--json", "as_json", is_flag=True, help="Print invert.json on stdout.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: invert.json, class-<c>.png, class-means/, replica-<B>/.")
def command(model, board, port, dataset, budget, classes, shortcut_budgets, sets, seed, force, as_json, out):
    """Reconstruct one input per class from the device's scores (gradient-free MIFace), scored by
    SSIM to never-queried class means and by an independently trained model's confidence.

    Example: edgeattack invert --board emu-tflm --model ptq/model.tflite --dataset digits
    --budget 2000 --shortcut-budgets 300,1000 -o runs/invert/
    """
    from ..atomic import check_output, json_text
    from ..attacks.exploratory.extraction import check_budgets
    from ..attacks.exploratory.inversion import invert, write_invert
    from ..errors import UsageError
    from ._poisoning_options import parse_list, parse_sets

    check_output(out, force)
    params = parse_sets(sets)
    allowed = {"probes", "sigma", "lr", "init", "judge_epochs", "whitebox_steps"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise UsageError(f"--set {unknown[0]}: unknown parameter; invert takes {', '.join(sorted(allowed))}")
    if budget < 1:
        raise UsageError(f"--budget {budget}: the query budget per class must be at least 1")
    shortcut = check_budgets(parse_list(shortcut_budgets, "--shortcut-budgets", int)) if shortcut_budgets else []
    cls = parse_list(classes, "--classes", int) if classes else None
    if board is None and port is None:
        raise UsageError("invert queries a device: give --board (e.g. emu-tflm) or --port URL")
    from ..tfutil import set_seed

    set_seed(seed)
    with _bar() as bar:
        res = invert(model, board=board, port=port, dataset=dataset, classes=cls, budget=budget,
                     shortcut_budgets=shortcut, seed=seed, progress=bar.update, **params)
    from importlib.metadata import version

    write_invert(res, out, force=force, tool_version=version("edgeattack"))
    if as_json:
        click.echo(json_text(res.summary(version("edgeattack"))))
        return
    click.echo(f"invert: {len(res.classes)} classes, {res.device_inferences} device inferences -> {out}")
    for r in res.rows:
        click.echo(f"  {r['route']:<14} class {r['class']:<3} ssim={r['ssim_to_class_mean']:.3f} "
                   f"independent confidence={r['independent_model_confidence']:.3f} queries={r['queries']}")
    if res.comparison:
        c = res.comparison
        click.echo(f"  equal score {c['equal_score']:.3f}: device route {c['device_route_queries']} queries, "
                   f"replica route {c['shortcut_route_queries']} queries")


def _bar():
    from tqdm.auto import tqdm

    return tqdm(desc="invert", unit="query", leave=False, disable=None)
