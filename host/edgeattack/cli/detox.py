"""`edgeattack detox`: distil a suspect model on the defender's clean data, drop the training
samples teacher and student disagree on, fine-tune; judge before and after on a board."""
from __future__ import annotations

import click

from ._poisoning_options import common, echo_rows, parse_list, parse_sets


@click.command("detox")
@click.option("--model", required=True, type=click.Path(),
              help="The suspect float model (.keras with its train.json).")
@click.option("--clean-data", default="0.2", show_default=True,
              help="The defender's clean unlabeled data: a fraction of the clean test split (the "
                   "rest judges) or an .npz with x (or x_train).")
@click.option("--dataset", help="The training set to screen (default: the one train.json records).")
@click.option("--trigger", default="patch:3", show_default=True,
              help="The backdoor's trigger, to measure its success (patch:SIZE or blend:ALPHA).")
@click.option("--trigger-position", default="bottom-right", show_default=True,
              type=click.Choice(["bottom-right", "bottom-left", "top-right", "top-left", "center"]))
@click.option("--target-class", type=int, default=0, show_default=True)
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="temperature, distill_epochs, finetune_epochs, lr, finetune_lr, width, batch_size.")
@common
def command(model, clean_data, dataset, trigger, trigger_position, target_class, sets, recipes,
            board, port, compress_data, n, seed, as_json, no_progress, force, out):
    """Remove a backdoor by distillation and check the result on the device.

    Writes OUT/detoxed/ (the student), OUT/suspect/<recipe>/ and OUT/detoxed/<recipe>/ and
    OUT/detox.json (clean accuracy and backdoor success per stage and artifact).

    Example: edgeattack detox --model runs/bd/float/model.keras --clean-data 0.3
    --trigger patch:3 --target-class 0 --board emu-tflm -o runs/detox/
    """
    from ..atomic import check_output
    from ..attacks.poisoning import run_detox

    check_output(out, force)
    obj = run_detox(model, out, clean_data=clean_data, dataset=dataset, trigger=trigger,
                    target_class=target_class, position=trigger_position,
                    recipes=parse_list(recipes, "--recipes"), board=board, port=port,
                    compress_data=compress_data, settings=parse_sets(sets), n=n, seed=seed,
                    force=force, progress=not no_progress)
    echo_rows(obj, out, as_json)
