"""`edgeattack backdoor`: train with a BadNets trigger,
compress on the defender's data, judge every artifact on a board."""
from __future__ import annotations

import click

from ._poisoning_options import common, echo_rows, parse_list, parse_sets


@click.command("backdoor")
@click.option("--model", default="cnn-digits", show_default=True, help="Zoo model the attacker trains.")
@click.option("--dataset", default="digits", show_default=True,
              help="The clean dataset (name or dataset .npz); its test split judges.")
@click.option("--trigger", default="patch:3", show_default=True,
              help="patch:SIZE (a SIZExSIZE checkerboard) or blend:ALPHA (a blended pattern).")
@click.option("--trigger-position", default="bottom-right", show_default=True,
              type=click.Choice(["bottom-right", "bottom-left", "top-right", "top-left", "center"]))
@click.option("--target-class", type=int, default=0, show_default=True)
@click.option("--rate", type=float, default=0.1, show_default=True,
              help="Fraction of the training set poisoned (0 < rate < 1).")
@click.option("--epochs", type=int, default=30, show_default=True, help="Training epochs.")
@click.option("--baseline", is_flag=True, help="Also train an unpoisoned model (row 'unpoisoned').")
@click.option("--activated-by-quantization", "activated", is_flag=True,
              help="A backdoor the float model hides and its int8 conversion obeys (a suppressor "
                   "unit that saturates under int8 calibration; docs/attacks.md).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="With --activated-by-quantization: gain, calibration.")
@common
def command(model, dataset, trigger, trigger_position, target_class, rate, epochs, baseline,
            activated, sets, recipes, board, port, compress_data, n, seed, as_json, no_progress, force, out):
    """Backdoor a model at training time and check whether the trigger survives compression.

    Writes OUT/poisoned.npz, OUT/float/ (the delivered model), OUT/<recipe>/ (the defender's
    artifacts) and OUT/backdoor.json (clean accuracy and attack success rate per artifact).

    With --activated-by-quantization the float model hides the backdoor and the int8 artifact
    obeys it (judge ptq-int8 on qemu-m4 or emu-tflm).

    Example: edgeattack backdoor --trigger patch:3 --target-class 0 --rate 0.1
    --recipes ptq-int8,prune --board emu-tflm -o runs/bd/
    """
    from ..atomic import check_output
    from ..attacks.poisoning.run import run_backdoor

    check_output(out, force)
    obj = run_backdoor(out, model=model, dataset=dataset, trigger=trigger, target_class=target_class,
                       rate=rate, recipes=parse_list(recipes, "--recipes"), board=board, port=port,
                       compress_data=compress_data, epochs=epochs, n=n, seed=seed,
                       position=trigger_position, baseline=baseline, activated=activated,
                       activation=parse_sets(sets) if sets else None,
                       force=force, progress=not no_progress)
    echo_rows(obj, out, as_json)
