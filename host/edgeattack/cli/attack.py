"""`edgeattack attack`: craft one evasion attack and judge it (edgeattack.attacks.run)."""
from __future__ import annotations

import click

from . import force_option, json_option, seed_option


@click.command(name="attack")
@click.argument("attack")
@click.option("--model", required=True, type=click.Path(dir_okay=False),
              help="A float .keras model, or an int8 .tflite (attacked through its surrogate).")
@click.option("--target", type=click.Path(dir_okay=False),
              help="An int8 .tflite: crafted on its surrogate, and the model a board runs.")
@click.option("--board", help="Judge on this board (started for the run); black-box attacks query it.")
@click.option("--port", help="Use a running device at this URL (with --board naming its profile).")
@click.option("--dataset", default="digits", show_default=True,
              help="Dataset name or dataset .npz; its test split is attacked.")
@click.option("-n", "n", type=int, default=100, show_default=True, help="Test samples (the first n).")
@click.option("--eps", default="0.1", show_default=True,
              help="Comma-separated epsilons in the input's units (none: unbounded, minimization attacks).")
@click.option("--norm", type=click.Choice(["linf", "l2"]), help="Perturbation norm (default: the attack's first).")
@click.option("--budget", type=int, help="Queries per sample (black-box attacks; default 1000).")
@click.option("--range", "range_", metavar="LO,HI",
              help="Data range of the inputs (default: the model's manifest, else its input quantization).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="An attack hyperparameter, named as in Python (repeatable; `edgeattack attacks` lists them).")
@click.option("--energy", type=click.Choice(["auto", "measured", "estimated", "off"]), default="auto",
              show_default=True,
              help="Energy on the board (as session): measured by the meter its profile names, estimated "
                   "from its cited constants, auto (measured if there is a meter, else estimated where "
                   "possible), or off.")
@click.option("--pace-baudrate", type=int,
              help="Emulator and QEMU boards: pace the link like a UART at this baud rate (as session; "
                   "default: the profile's pace_baudrate, else unpaced).")
@click.option("--protocol", type=click.Choice(["edgeattack", "mlperf"]),
              help="The board's wire protocol (as session; default: the profile's, else edgeattack).")
@seed_option
@click.option("-o", "--out", required=True, type=click.Path(),
              help="Output folder (adversarial.npz, attack.json), or an .npz with attack.json beside it.")
@force_option
@json_option("attack.json")
def command(attack, model, target, board, port, dataset, n, eps, norm, budget, range_, sets, energy,
            pace_baudrate, protocol, seed, out, force, as_json):
    """Craft ATTACK on the crafting target and judge it: writes the adversarial .npz and attack.json.

    Crafting target: the surrogate of --target if given, else --model. Judge: the --board/--port
    device running --target (else a .tflite --model), which also writes results.jsonl and
    session.json; without a device, the crafting target. Black-box attacks query the device.

    Example: edgeattack attack pgd --eps 0.05,0.1 --model float.keras --target int8.tflite
    --board qemu-m4 --dataset digits -n 300 -o adv.npz

    Example: edgeattack attack square --board qemu-m4 --model int8.tflite --budget 1000 -n 100 -o run/
    """
    import signal

    from ..atomic import json_text
    from ..attacks.run import parse_epsilons, parse_range, parse_sets, run_attack

    # SIGTERM unwinds like Ctrl-C: a board started here is stopped and nothing is left half-written.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    summary = run_attack(attack, model, epsilons=parse_epsilons(eps), target=target, board=board,
                         port=port, dataset=dataset, n=n, norm=norm, budget=budget,
                         data_range=parse_range(range_), seed=seed, params=parse_sets(sets), out=out,
                         force=force, energy=energy, pace_baudrate=pace_baudrate, protocol=protocol)
    if as_json:
        click.echo(json_text(summary))
        return
    t = summary["target"]
    where = t["board"] or t["kind"]
    click.echo(f"attack {attack} (n={summary['n']}, judged on {where}) -> {out}")
    for r in summary["metrics"]:
        eps_s = "none" if r["eps"] is None else f"{r['eps']:g}"
        line = f"  eps={eps_s:<8} asr={_rate(r['attack_success_rate'], r['attack_success_rate_ci95'])}" \
               f"  adv acc={_rate(r['adversarial_accuracy'], r['adversarial_accuracy_ci95'])}"
        if r.get("queries_median") is not None:
            line += f"  queries median={r['queries_median']:g}"
        if r.get("energy_j") is not None:
            line += f"  energy/example={r['energy_j'] * 1e6:.1f} uJ ({r['energy_source']})"
        if r.get("device_inferences") is not None:
            line += f"  device inferences={r['device_inferences']}"
        click.echo(line)


def _rate(v, ci) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
