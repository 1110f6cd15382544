"""`edgeattack export MODEL.tflite --format tflm|c -o DIR`: C/C++ sources for TFLM or our firmware."""
from __future__ import annotations

from pathlib import Path

import click

from . import force_option, json_option
from ..errors import UsageError


@click.command("export")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["tflm", "c"]), required=True,
              help="tflm: model_data.h/.cc, model_settings.h, op_resolver.h for a TFLM application; "
                   "c: C11 model_data.h/.c and model_settings.h for the edgeattack firmware.")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (written whole, or not at all).")
@click.option("--name", default=None,
              help="C identifier for the tflm symbols (g_NAME_model_data); default: the file name.")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Text file with one class label per line (default: 0..N-1).")
@click.option("--arena-size", type=click.IntRange(min=16), default=None, metavar="BYTES",
              help="A TFLM arena size already measured (e.g. from `inspect`): skip the search (one "
                   "run checks that the model fits; a smaller size is refused). The margin is still added.")
@force_option
@json_option("the export (out_dir, format, files, sha256, size, arena, symbols)")
@click.pass_context
def command(ctx, model, fmt, out_dir, name, labels_file, arena_size, force, as_json):
    """Export MODEL as C/C++ sources: the 16-byte-aligned model array, its SHA-256, input/output
    settings, the measured TFLM arena size and (tflm) an op resolver with exactly its operators.

    Example: edgeattack export runs/pqat/model.tflite --format c -o runs/pqat/c/
    """
    from ..tflite.export import export_model

    labels = None
    if labels_file is not None:
        try:
            labels = [line.strip() for line in labels_file.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"{labels_file}: cannot read the labels file ({e}); give a text file with one "
                             f"label per line") from e
    verbose = bool((ctx.obj or {}).get("verbose"))
    res = export_model(model, fmt, out_dir, name=name, force=force, labels=labels, arena=arena_size,
                       verbose=verbose, verify_arena=True)
    if as_json:
        from ..atomic import json_text

        click.echo(json_text(res))
        return
    arena = res["arena"]
    click.echo(f"exported {model} -> {res['out_dir']} ({fmt}: {', '.join(res['files'])})")
    click.echo(f"model_sha256 {res['sha256']}  {res['size']} bytes"
               f"{' (aligned to 16 bytes by export)' if res['aligned_by_export'] else ''}")
    click.echo(f"TFLM arena {arena['with_margin']} bytes ({arena['measured']} measured + {arena['margin']} margin)")
