"""`edgeattack poison flip|flip-targeted|clean-label|model`: poison the training data (or loop),
then optionally train, compress on the defender's data and judge on a board."""
from __future__ import annotations

import click

from ._poisoning_options import common, echo_rows, parse_list, parse_sets


@click.command("poison")
@click.argument("kind", type=click.Choice(["flip", "flip-targeted", "clean-label", "model"]))
@click.option("--model", default="cnn-digits", show_default=True, help="Zoo model the victim trains.")
@click.option("--dataset", default="digits", show_default=True,
              help="The clean dataset (name or dataset .npz); its test split judges.")
@click.option("--rate", type=float, default=0.1, show_default=True,
              help="Poison rate, 0 < rate < 1: of the training set (flip, model), of the source "
                   "class (flip-targeted) or of the target class (clean-label poisons).")
@click.option("--source-class", type=int, default=1, show_default=True,
              help="flip-targeted, clean-label: the class the attacker wants misclassified.")
@click.option("--target-class", type=int, default=7, show_default=True,
              help="flip-targeted, clean-label: the class it should become.")
@click.option("--eps", type=float, default=0.1, show_default=True,
              help="clean-label: L-inf budget of each poison, in input units.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="clean-label: method=gradient-matching|feature-collision, targets, steps, "
                   "restarts, augment, surrogates (ensemble seeds), pick=random|boundary, "
                   "step_size; model: mode=ascent|updates, factor, weight.")
@click.option("--epochs", type=int, default=30, show_default=True,
              help="Epochs of training on the poisoned data (with --prune-ratios: of retraining "
                   "each pruned model).")
@click.option("--prune-ratios", help="Pruning-and-poisoning experiment: comma-separated ratios in "
                                     "[0, 1), e.g. 0,0.5,0.75,0.9.")
@click.option("--pretrain-epochs", type=int, default=30, show_default=True,
              help="With --prune-ratios: clean training epochs before pruning.")
@click.option("--baseline", is_flag=True, help="Also train an unpoisoned model (row 'unpoisoned').")
@common
def command(kind, model, dataset, rate, source_class, target_class, eps, sets, epochs, prune_ratios,
            pretrain_epochs, baseline, recipes, board, port, compress_data, n, seed, as_json,
            no_progress, force, out):
    """Poison training and judge what reaches the device.

    Writes OUT/poisoned.npz (a dataset .npz whose extra key `poisoned` marks the changed samples)
    and OUT/poison.json; with --recipes also OUT/float/ and OUT/<recipe>/. With --prune-ratios:
    OUT/clean/ and OUT/prune-R/epoch-E/<recipe>/, one judged artifact per ratio and epoch.

    Example: edgeattack poison flip-targeted --rate 0.5 --source-class 1 --target-class 7
    --recipes ptq-int8 --board emu-tflm -o runs/flip/
    """
    from ..atomic import check_output
    from ..attacks.poisoning import run_poison

    check_output(out, force)
    obj = run_poison(out, kind, model=model, dataset=dataset, rate=rate, source_class=source_class,
                     target_class=target_class, eps=eps, settings=parse_sets(sets),
                     recipes=parse_list(recipes, "--recipes"), board=board, port=port,
                     compress_data=compress_data, epochs=epochs, pretrain_epochs=pretrain_epochs,
                     prune_ratios=parse_list(prune_ratios, "--prune-ratios", float) or None,
                     n=n, seed=seed, baseline=baseline, force=force, progress=not no_progress)
    echo_rows(obj, out, as_json)
