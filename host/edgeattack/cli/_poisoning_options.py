"""Options the poisoning commands (poison, backdoor, detox) share."""
from __future__ import annotations

import click

from . import force_option, seed_option


def parse_list(value: str | None, what: str, kind=str) -> list:
    from ..errors import UsageError

    if not value:
        return []
    try:
        return [kind(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} {value}: give a comma-separated list of numbers") from None


def parse_sets(pairs) -> dict:
    """--set NAME=VALUE (repeatable) -> {NAME: number or string}."""
    from ..errors import UsageError

    out = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--set {pair}: write NAME=VALUE, e.g. --set lam=2")
        try:
            out[name] = int(raw)
        except ValueError:
            try:
                out[name] = float(raw)
            except ValueError:
                out[name] = raw
    return out


def common(f):
    """--board, --port, --recipes, --compress-data, -n, --seed, --json, --force, --no-progress, -o."""
    for opt in reversed([
        click.option("--recipes", default="ptq-int8", show_default=True,
                     help="Comma-separated recipes (built-in names or YAML files) the defender "
                          "compresses with; empty for none."),
        click.option("--board", default="emu-tflm", show_default=True,
                     help="Board that judges each compressed artifact."),
        click.option("--port", help="Use a running device at this URL instead of starting the board."),
        click.option("--compress-data", type=click.Choice(["clean", "poisoned"]), default="clean",
                     show_default=True, help="Data the defender compresses with (recorded)."),
        click.option("-n", "n", type=int, help="Test samples judged (a seeded draw; default all)."),
        seed_option,
        click.option("--json", "as_json", is_flag=True, help="Print the summary JSON on stdout."),
        click.option("--no-progress", is_flag=True, help="No progress bars."),
        force_option,
        click.option("-o", "--out", required=True, type=click.Path(), help="Output folder."),
    ]):
        f = opt(f)
    return f


def echo_rows(obj: dict, out, as_json: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(obj, sort_keys=False))
        return
    for r in obj["metrics"]:
        where = r.get("board") or "host"
        head = (f"{r['stage']}:" if "stage" in r else "") + r["artifact"] + (f" prune={r['prune_ratio']:g} epoch={r['epoch']}" if "epoch" in r else "")
        asr = r.get("attack_success_rate")
        ci = r.get("attack_success_rate_ci95")
        asr_txt = "-" if asr is None else f"{asr:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
        cci = r["clean_accuracy_ci95"]
        click.echo(f"  {head:<28} {where:<10} clean acc {r['clean_accuracy']:.3f} "
                   f"[{cci[0]:.3f}, {cci[1]:.3f}]  attack success {asr_txt}")
    click.echo(f"-> {out}/{obj['command']}.json")
