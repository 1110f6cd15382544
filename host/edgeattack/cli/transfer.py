"""`edgeattack transfer`: craft on each source model, judge on each int8 target, as a matrix."""
from __future__ import annotations

import click

from . import force_option, seed_option


def _list(value: str, what: str) -> list[str]:
    from ..errors import UsageError

    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    if not items:
        raise UsageError(f"{what}: give a comma-separated list of models")
    return items


def _floats(value: str, what: str) -> list[float]:
    from ..errors import UsageError

    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} {value!r}: give comma-separated numbers, e.g. 0.05,0.1") from None


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
    from ..attacks.base import attack_class
    from ..attacks.transfer import check_models, transfer, write_transfer
    from ..datasets import load_dataset
    from ..errors import UsageError

    check_output(out, force)
    src, tgt = _list(sources, "--sources"), _list(targets, "--targets")
    check_models(src, tgt, port)
    cls = attack_class(attack)
    params = {}
    for s in sets:
        if "=" not in s:
            raise UsageError(f"--set {s!r}: give NAME=VALUE")
        k, v = s.split("=", 1)
        params[k.strip()] = v.strip()
    if norm:
        params["norm"] = norm
    if budget is not None:
        if "budget" not in cls.all_params():
            raise UsageError(f"--budget: attack {attack} is not a black-box attack (it takes no budget)")
        params["budget"] = budget
    cls(**params)  # unknown or bad parameters fail here, before any model is loaded
    data_range = None
    if range_:
        lo_hi = _floats(range_, "--range")
        if len(lo_hi) != 2 or not lo_hi[0] < lo_hi[1]:
            raise UsageError(f"--range {range_!r}: give LO,HI with LO < HI")
        data_range = tuple(lo_hi)
    ds = load_dataset(dataset)
    if n < 1 or n > len(ds.x_test):
        raise UsageError(f"-n {n}: the test split of {dataset} has {len(ds.x_test)} samples; give "
                         f"1..{len(ds.x_test)}")
    data_range = data_range or tuple(ds.data_range)
    from ..tfutil import set_seed

    set_seed(seed)
    with _bar(len(src) + len(tgt)) as bar:
        res = transfer(attack, src, tgt, ds.x_test[:n], ds.y_test[:n],
                       epsilons=_floats(eps, "--eps"), params=params, board=board, port=port,
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
        click.echo(f"  eps={r['eps']:<6g} {r['source']:>16} -> {r['target']:<16} asr={rate}{ci_s}")


def _bar(total: int):
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (logs and captured output stay one line)
    return tqdm(total=total, desc="transfer", unit="model", leave=False, disable=None)
