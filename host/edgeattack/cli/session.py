"""`edgeattack session`: stream clean and adversarial inputs to a board and record its answers."""
from __future__ import annotations

import click


@click.command(name="session")
@click.option("--board", required=True, help="Board name (`edgeattack boards`) or profile .yaml file.")
@click.option("--model", required=True, type=click.Path(dir_okay=False),
              help="The .tflite model the board runs (its SHA-256 must match the device's).")
@click.option("--inputs", type=click.Path(dir_okay=False), help="Clean inputs .npz (x, y[, ids]).")
@click.option("--dataset", help="Clean inputs from this dataset's test split instead of --inputs (a name "
                                "such as digits, or a dataset .npz); ids are the test-split indices.")
@click.option("-n", "n", type=click.IntRange(1), help="With --dataset: this many test samples (default all).")
@click.option("--seed", type=int, help="With --dataset and -n: draw the samples at random with this seed "
                                       "(default: the first n).")
@click.option("--adversarial", multiple=True, type=click.Path(dir_okay=False),
              help="Adversarial .npz (x_adv, eps, y, ids, meta); repeat for several attacks.")
@click.option("--port", help="Use a running device at this URL instead of starting the board.")
@click.option("--host", help="linux boards (pi4): [user@]host[:port] to tunnel to over SSH, instead of "
                               "the profile's host.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in -o: send only what is missing.")
@click.option("--inflight", type=click.IntRange(1, 64), default=32, show_default=True,
              help="Inputs in flight at once (pipelining; the device's window may allow fewer).")
@click.option("--warmup", type=click.IntRange(0), default=0, show_default=True,
              help="Warm-up inferences first (recorded with warmup true, not counted in metrics).")
@click.option("--repeat", type=click.IntRange(1, 65535), default=1, show_default=True,
              help="Inferences per input on the device (latency window); the last output is recorded.")
@click.option("--energy", type=click.Choice(["auto", "measured", "estimated", "off"]), default="auto",
              show_default=True,
              help="Energy per inference: measured by the meter the board's profile names, estimated "
                   "from the profile's cited constants, auto (measured if there is a meter, else "
                   "estimated where possible), or off.")
@click.option("--faults", help='Inject link faults, e.g. "corrupt=0.01,drop=0.005,disconnect_every=200,seed=1".')
@click.option("--pace-baudrate", type=int, help="Emulator and QEMU boards: pace the link like a UART at this "
                                               "baud rate (8N1, both directions); default: the profile's "
                                               "pace_baudrate, else unpaced.")
@click.option("--protocol", type=click.Choice(["edgeattack", "mlperf"]),
              help="The device's wire protocol (default: the profile's protocol, else edgeattack); "
                   "mlperf speaks MLPerf Tiny's DUT protocol (docs/mlperf.md).")
@click.option("--kernels", type=click.Choice(["auto", "ref", "dsp", "mve"]),
              help="QEMU boards: the firmware's kernel set (default auto: the best the board's core runs).")
@click.option("--timeout", type=float, help="Seconds before an unanswered request is resent.")
@click.option("--total-timeout", type=float, help="Seconds without any answer before giving up.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print session.json on stdout (one JSON object) "
                                                      "instead of the text summary.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Run folder: results.jsonl and session.json are written here.")
def command(board, model, inputs, dataset, n, seed, adversarial, port, host, resume, inflight, warmup,
            repeat, energy, faults, pace_baudrate, protocol, kernels, timeout, total_timeout, no_progress, as_json, out):
    """Stream clean and adversarial inputs to a device and record every answer.

    Emulated and QEMU boards are started for the run and stopped at the end. Writes
    OUT/results.jsonl (one record per sample, source and epsilon) and OUT/session.json (accuracy,
    attack success rate, latency, throughput).

    Example: edgeattack session --board emu-tflm --model runs/pqat/model.tflite --inputs clean.npz
    --adversarial fgsm.npz -o runs/s1/

    Example: edgeattack session --board emu-tflm --model runs/pqat/model.tflite --dataset digits -n 200
    -o runs/s2/ --json
    """
    import signal

    from ..session import run_session

    # SIGTERM unwinds like Ctrl-C: the board is stopped and the records so far are kept.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    from ..link.pace import check_pace_baudrate

    check_pace_baudrate(pace_baudrate)  # 0 is a usage error before anything starts
    if faults:
        from ..link.faults import parse_fault_spec

        parse_fault_spec(faults)  # a bad spec is a usage error before anything starts
    if host and not port:
        from ..deploy.pi import port_url
        from ..profiles import get_profile

        port = port_url(get_profile(board), host)  # ssh://...: the session opens its own tunnel
    summary = run_session(board, model, inputs, adversarial=adversarial, port=port, out=out,
                          resume=resume, warmup=warmup, inflight=inflight, repeat=repeat,
                          faults=faults, progress=not no_progress, dataset=dataset, n=n, seed=seed,
                          energy=energy, timeout=timeout, total_timeout=total_timeout,
                          pace_baudrate=pace_baudrate, **({"kernels": kernels} if kernels else {}),
                          **({"protocol": protocol} if protocol else {}))
    if as_json:
        from pathlib import Path

        from ..results import SUMMARY

        click.echo((Path(out) / SUMMARY).read_text().strip())  # exactly what was written
        return
    _print_summary(summary, out)


def _fmt_ci(ci):
    return "" if not ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _print_summary(s: dict, out) -> None:
    c = s["counts"]
    click.echo(f"{s['board']['name']}: {c['records']} records ({c['sent_this_run']} sent this run, "
               f"{c['warmup_records']} warm-up) -> {out}")
    for m in s["metrics"]:
        line = f"  {m['source']:<12} eps={'-' if m['eps'] is None else format(m['eps'], 'g'):<8} " \
               f"n={m['n']:<6} acc={m['accuracy']:.3f}{_fmt_ci(m['accuracy_ci95'])}"
        if m.get("attack_success_rate") is not None:
            line += f"  asr={m['attack_success_rate']:.3f}{_fmt_ci(m['attack_success_ci95'])}"
        if m.get("latency_s"):
            est = ", estimated" if m.get("time_estimated") else ""
            line += f"  latency p50={m['latency_s']['p50'] * 1e3:.3f} ms ({m.get('time_source')}{est})"
        diff = m.get("latency_difference_s") or {}
        if diff.get("difference_s") is not None:
            lo, hi = diff["ci95"]
            line += f" vs clean {diff['difference_s'] * 1e3:+.3f} ms [{lo * 1e3:+.3f}, {hi * 1e3:+.3f}]"
        if m.get("energy_j") is not None:
            line += f"  energy {m['energy_j'] * 1e6:.1f} uJ ({m['energy_source']})"
        click.echo(line)
    t = s["throughput"]
    if t.get("records_per_s"):
        click.echo(f"  throughput {t['records_per_s']:.1f} records/s, retries {s['link']['retries']}")
