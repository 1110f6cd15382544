"""`edgeattack evaluate`: robust accuracy of an int8 model on a board, with the masking check
(edgeattack.defenses.evaluate)."""
from __future__ import annotations

import click

from . import force_option, json_option, seed_option


@click.command(name="evaluate")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--board", help="The board that runs MODEL and judges every attack (started for the run).")
@click.option("--port", help="Use a running device at this URL (with --board naming its profile).")
@click.option("--eps", default="0.05,0.1", show_default=True,
              help="Comma-separated L-inf epsilons in the input's units.")
@click.option("-n", "n", type=int, default=100, show_default=True, help="Test samples (the first n).")
@click.option("--offset", type=int, default=0, show_default=True,
              help="Index of the first test sample (e.g. samples held out from the ones a defense was tuned on).")
@click.option("--model", "float_model", type=click.Path(dir_okay=False),
              help="The float parent (.keras) for the transfer attack (default: the model.keras "
                   "compress wrote beside MODEL, else its manifest's source model).")
@click.option("--dataset", help="Dataset name or dataset .npz (default: the one MODEL's manifest names, else digits).")
@click.option("--budget", type=int, default=200, show_default=True, help="Square's queries per sample.")
@click.option("--range", "range_", metavar="LO,HI",
              help="Data range of the inputs (default: the model's manifest, else its input quantization).")
@click.option("--set", "sets", multiple=True, metavar="ATTACK.NAME=VALUE",
              help="A hyperparameter of one attack, e.g. pgd.steps=20 (attacks: pgd, apgd-ce, fgsm, "
                   "transfer, square, pgd-unbounded; repeatable).")
@click.option("--energy", type=click.Choice(["auto", "measured", "estimated", "off"]), default="auto",
              show_default=True, help="Energy on the board, as `attack` takes it (estimated: per "
                                      "square example in its rows).")
@seed_option
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: evaluate.json and each attack's adversarial .npz.")
@force_option
@json_option("evaluate.json")
def command(model, board, port, eps, n, offset, float_model, dataset, budget, range_, sets, energy, seed, out,
            force, as_json):
    """Attack the int8 MODEL on a board with white-box PGD, APGD-CE and FGSM (on its surrogate),
    transfer from its float parent, black-box Square and unbounded PGD; report robust accuracy per
    epsilon and the gradient-masking signs (docs/defenses.md).

    Example: edgeattack evaluate out/adv-train/model.tflite --board qemu-m4 --eps 0.05,0.1 -n 200 -o eval/
    """
    import signal

    from ..atomic import json_text
    from ..attacks.run import parse_epsilons, parse_range
    from ..defenses.evaluate import evaluate, parse_attack_sets

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    summary = evaluate(model, board=board, port=port, epsilons=parse_epsilons(eps), n=n, offset=offset,
                       float_model=float_model, dataset=dataset, seed=seed, budget=budget,
                       params=parse_attack_sets(sets), data_range=parse_range(range_), out=out,
                       force=force, energy=energy)
    if as_json:
        click.echo(json_text(summary))
        return
    click.echo(f"evaluate {model} on {summary['target']['board']} (n={summary['n']}, clean accuracy "
               f"{_rate(summary['clean_accuracy'], summary['clean_accuracy_ci95'])}) -> {out}")
    for r in summary["metrics"]:
        if r["attack"] == "all":
            click.echo(f"  eps={r['eps']:<6g} robust accuracy "
                       f"{_rate(r['robust_accuracy'], r['robust_accuracy_ci95'])}")
        else:
            click.echo(f"  eps={r['eps']:<6g} {r['attack']:<14} asr "
                       f"{_rate(r['attack_success_rate'], r['attack_success_rate_ci95'])}")
    flags = [f["sign"] for f in summary["masking_flags"]]
    click.echo(f"  masking flags: {', '.join(flags) if flags else 'none'}")


def _rate(v, ci) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
