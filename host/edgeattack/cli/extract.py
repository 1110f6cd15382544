"""`edgeattack extract`: steal the model a device runs; fidelity and accuracy per query budget."""
from __future__ import annotations

import click

from . import force_option, seed_option


@click.command(name="extract")
@click.option("--model", "model", required=True, type=click.Path(),
              help="The int8 .tflite the device runs (checked against the device's model hash).")
@click.option("--board", help="Board to start (emulator/QEMU) or whose profile describes --port.")
@click.option("--port", help="Query a running device at this URL instead of starting the board.")
@click.option("--dataset", default="digits", show_default=True,
              help="Dataset name or .npz: its test split gives the heldout pool and the evaluation half.")
@click.option("--budgets", default="100,300,1000,3000", show_default=True,
              help="Comma-separated query budgets; a replica is trained and scored at each.")
@click.option("--pool", default="heldout", show_default=True,
              help="heldout (a seeded half of the test split), synthetic, noise, or an .npz with x.")
@click.option("--pool-size", type=int, help="Samples drawn for a synthetic or noise pool [default: 1000].")
@click.option("--augment", type=click.Choice(["jacobian", "none"]), default="jacobian", show_default=True,
              help="How budgets beyond the pool are reached: Jacobian-based augmentation, or refuse.")
@click.option("--output", "output", type=click.Choice(["labels", "scores"]), default="labels",
              show_default=True, help="What the attacker sees: the device's label, or its scores.")
@click.option("--replica", default="cnn-digits", show_default=True, help="Zoo architecture of the replica.")
@click.option("--width", type=float, default=1.0, show_default=True, help="Width multiplier of the replica.")
@click.option("--epochs", type=int, default=30, show_default=True,
              help="Replica training epochs (at least 800 optimizer steps either way).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="lam (augmentation step, default 0.1) or batch_size (repeatable).")
@seed_option
@force_option
@click.option("--json", "as_json", is_flag=True, help="Print extract.json on stdout.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: extract.json, replica-<budget>.keras, replica.keras, queries.npz.")
def command(model, board, port, dataset, budgets, pool, pool_size, augment, output, replica, width,
            epochs, sets, seed, force, as_json, out):
    """Query a device with a pool the victim never trained on, train a replica at each budget, and
    report its fidelity (agreement with the device) and accuracy on data never queried.

    Example: edgeattack extract --board emu-tflm --model ptq/model.tflite --dataset digits
    --budgets 100,300,1000,3000 --pool heldout --augment jacobian -o runs/extract/
    """
    from ..atomic import check_output, json_text
    from ..attacks.exploratory.extraction import check_budgets, extract, write_extract
    from ..errors import UsageError
    from ._poisoning_options import parse_list, parse_sets

    check_output(out, force)
    budget_list = check_budgets(parse_list(budgets, "--budgets", int))
    params = parse_sets(sets)
    unknown = sorted(set(params) - {"lam", "batch_size"})
    if unknown:
        raise UsageError(f"--set {unknown[0]}: unknown parameter; extract takes lam and batch_size")
    if board is None and port is None:
        raise UsageError("extract queries a device: give --board (e.g. emu-tflm) or --port URL")
    if epochs < 1:
        raise UsageError(f"--epochs {epochs}: must be at least 1")
    if pool_size is not None and pool_size < 1:
        raise UsageError(f"--pool-size {pool_size}: must be at least 1")
    from ..tfutil import set_seed

    set_seed(seed)
    with _bar(None) as bar:
        res = extract(model, board=board, port=port, dataset=dataset, budgets=budget_list, pool=pool,
                      augment=augment, output=output, replica=replica, width=width, epochs=epochs,
                      pool_size=pool_size, seed=seed, progress=bar.update, **params)
    from importlib.metadata import version

    write_extract(res, out, force=force, tool_version=version("edgeattack"))
    if as_json:
        click.echo(json_text(res.summary(version("edgeattack"))))
        return
    click.echo(f"extract: victim accuracy {res.victim_accuracy:.3f} on n={res.n} never-queried samples "
               f"({res.evaluation_queries} evaluation queries) -> {out}")
    for r in res.rows:
        f, a = r["fidelity_ci95"], r["accuracy_ci95"]
        click.echo(f"  queries={r['queries']:<6} fidelity={r['fidelity']:.3f} [{f[0]:.3f}, {f[1]:.3f}]  "
                   f"accuracy={r['accuracy']:.3f} [{a[0]:.3f}, {a[1]:.3f}]  "
                   f"device_inferences={r['device_inferences']}")


def _bar(total: int):
    from tqdm.auto import tqdm

    # the bar counts the attack's queries and the evaluation half's (queried once, first)
    return tqdm(total=total, desc="extract", unit="query", leave=False, disable=None)
