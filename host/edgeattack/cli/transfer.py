"""`edgeattack transfer`: craft on each source model, judge on each int8 target, as a matrix."""
from __future__ import annotations

import click

from . import force_option, seed_option


@click.command(name="transfer")
@click.argument("attack")
@click.option("--sources", required=True,
              help="Comma-separated models to craft on: float .keras, or int8 .tflite (its surrogate).")
@click.option("--targets", required=True, help="Comma-separated int8 .tflite models to judge.")
@click.option("--board", help="Judge each target on this board (started once per target); "
                              "without it, each target's surrogate judges.")
@click.option("--port", help="Judge on a running device at this URL (one target only).")
@click.option("--dataset", default="digits", show_default=True, help="Dataset name or .npz (test split).")
@click.option("-n", "n", type=int, default=100, show_default=True, help="Test samples (the first n).")
@click.option("--eps", default="0.1", show_default=True, help="Comma-separated epsilons.")
@click.option("--norm", type=click.Choice(["linf", "l2"]), help="Perturbation norm (default: the attack's first).")
@click.option("--budget", type=int, help="Queries per sample (black-box attacks crafting on a source).")
@click.option("--range", "range_", help="Data range LO,HI of the inputs (default: the dataset's).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="An attack hyperparameter, named as in Python (repeatable).")
@seed_option
@force_option
@click.option("--json", "as_json", is_flag=True, help="Print transfer.json on stdout.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: transfer.json and transfer.csv.")
def command(attack, sources, targets, board, port, dataset, n, eps, norm, budget, range_, sets, seed,
            force, as_json, out):
    """Craft ATTACK on every source and judge every target: a matrix of attack success rates.

    Example: edgeattack transfer pgd --sources float.keras,ptq/model.tflite
    --targets ptq/model.tflite,pqat/model.tflite --board emu-tflm --eps 0.1 -o runs/transfer/
    """
    from ..atomic import check_output, json_text
    from ..attacks.run import attack_params, parse_epsilons, parse_list, parse_range, first_test_samples
    from ..attacks.transfer import check_models, transfer, write_transfer
    from ..datasets import load_dataset

    check_output(out, force)
    src, tgt = parse_list(sources, "--sources"), parse_list(targets, "--targets")
    check_models(src, tgt, port)
    # unknown attacks, parameters, norms and budgets fail here, before any model is loaded
    params = dict(attack_params(attack, sets, norm, budget).params)
    epsilons = parse_epsilons(eps)
    data_range = parse_range(range_)
    ds = load_dataset(dataset)
    x, y = first_test_samples(ds, n)
    data_range = data_range or tuple(ds.data_range)
    from ..tfutil import set_seed

    set_seed(seed)
    with _bar(len(src) + len(tgt)) as bar:
        res = transfer(attack, src, tgt, x, y,
                       epsilons=epsilons, params=params, board=board, port=port,
                       seed=seed, data_range=data_range, progress=bar.update)
    from importlib.metadata import version

    write_transfer(res, out, force=force, tool_version=version("edgeattack"))
    if as_json:
        click.echo(json_text(res.summary(version("edgeattack"))))
        return
    click.echo(f"transfer {attack}: {len(src)} sources x {len(tgt)} targets, n={n} -> {out}")
    for r in res.rows:
        ci = r["attack_success_rate_ci95"]
        rate = "-" if r["attack_success_rate"] is None else f"{r['attack_success_rate']:.3f}"
        ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        eps_s = "none" if r["eps"] is None else f"{r['eps']:g}"
        click.echo(f"  eps={eps_s:<6} {r['source']:>16} -> {r['target']:<16} asr={rate}{ci_s}")


def _bar(total: int):
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (logs and captured output stay one line)
    return tqdm(total=total, desc="transfer", unit="model", leave=False, disable=None)
