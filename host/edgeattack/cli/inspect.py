"""`edgeattack inspect MODEL.tflite [--json] [--no-arena]`: what is inside a .tflite model."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import EdgeAttackError


def firmware_arena(model_bytes: bytes):
    """The project firmware's arena for this model (as build_firmware builds it: the model prepared
    on the host, its tensor and operator tables in flash), or None when that part is not installed."""
    try:
        from ..firmware.hostrt import host_plan, prepared_arena_bytes
    except ImportError:
        return None
    return prepared_arena_bytes(host_plan(model_bytes))


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--no-arena", is_flag=True, help="Skip the TFLM arena measurement (a few child processes).")
@click.pass_context
def command(ctx, model, as_json, no_arena):
    """Print MODEL's operators, tensors, quantization, sizes, per-layer MACs and arena sizes.

    Example: edgeattack inspect runs/pqat/model.tflite --json
    """
    from ..tflite.analysis import summarize
    from ..tflite.reader import load_model_bytes, read_model

    data = load_model_bytes(model)
    info = read_model(data, name=str(model))
    arena = None
    if not no_arena:
        from ..tflite.arena import find_arena_size

        arena = find_arena_size(data, verbose=bool((ctx.obj or {}).get("verbose")), name=str(model))
    summary = summarize(data, arena=arena)
    summary["path"] = str(model)
    summary["tensors"] = [t.to_dict() for t in info.tensors]
    summary["layers"] = [dict(op.to_dict(), macs=row["macs"]) for op, row in
                         zip(info.operators, summary["macs"]["per_layer"])]
    try:
        fw = None if no_arena else firmware_arena(data)
        fw_note = None if fw is not None else ("skipped (--no-arena)" if no_arena else "n/a")
    except EdgeAttackError as e:
        fw, fw_note = None, f"n/a ({e})"
    summary["firmware_arena"] = fw
    if as_json:
        from ..atomic import json_text

        click.echo(json_text(summary))
        return
    _print_human(summary, fw_note)


def _io(row) -> str:
    q = f"scale {row['scale']:.6g} zero_point {row['zero_point']}" if row["scale"] is not None else "float"
    return f"{row['name']}  {row['dtype']} {row['shape']}  {q}"


def _opts(layer) -> str:
    o = layer["options"]
    parts = []
    if "padding" in o:
        parts.append(o["padding"])
    if "stride_h" in o:
        parts.append(f"stride {o['stride_h']}x{o['stride_w']}")
    if "dilation_h_factor" in o and (o["dilation_h_factor"], o["dilation_w_factor"]) != (1, 1):
        parts.append(f"dilation {o['dilation_h_factor']}x{o['dilation_w_factor']}")
    if "filter_height" in o:
        parts.append(f"filter {o['filter_height']}x{o['filter_width']}")
    if "depth_multiplier" in o and o["depth_multiplier"] != 1:
        parts.append(f"depth_multiplier {o['depth_multiplier']}")
    if o.get("fused_activation_function", "NONE") != "NONE":
        parts.append(o["fused_activation_function"])
    return " ".join(parts)


def _print_human(s: dict, fw_note) -> None:
    echo = click.echo
    echo(f"model {s['path']}: {s['size_bytes']} bytes, sha256 {s['sha256']}, "
         f"{'16-byte aligned' if s['aligned_16'] else 'NOT 16-byte aligned (export aligns it)'}")
    for i, row in enumerate(s["inputs"]):
        echo(f"input {i}: {_io(row)}")
    for i, row in enumerate(s["outputs"]):
        echo(f"output {i}: {_io(row)}")
    echo("")
    echo(f"operators ({len(s['layers'])}, {len(s['distinct_operators'])} distinct):")
    echo(f"  {'#':>3}  {'op':<20} {'output shape':<18} {'MACs':>12}  options")
    for layer in s["layers"]:
        shape = s["tensors"][layer["outputs"][0]]["shape"] if layer["outputs"] else []
        echo(f"  {layer['index']:>3}  {layer['op']:<20} {str(shape):<18} {layer['macs']:>12,}  {_opts(layer)}")
    echo(f"  total MACs {s['macs']['total']:,}; parameters {s['param_count']:,}")
    echo("")
    echo(f"tensors ({len(s['tensors'])}):")
    echo(f"  {'#':>3}  {'dtype':<8} {'shape':<18} {'kind':<8} {'quantization':<28} name")
    for t in s["tensors"]:
        q = t["quantization"]
        if q is None:
            qs = "-"
        elif q["per_channel"]:
            qs = f"per-channel x{len(q['scale'])} (axis {q['quantized_dimension']})"
        else:
            qs = f"{q['scale'][0]:.6g} zp {q['zero_point'][0]}"
        kind = "const" if t["constant"] else "variable" if t["variable"] else "act"
        echo(f"  {t['index']:>3}  {t['dtype']:<8} {str(t['shape']):<18} {kind:<8} {qs:<28} {t['name']}")
    echo("")
    sp = s["sparsity"]
    echo(f"weight buffers {s['weight_buffer_bytes']:,} bytes, gzip {s['weight_buffer_gzip_bytes']:,} bytes")
    if sp["overall"] is not None:
        echo(f"weight sparsity {sp['overall']:.1%} ({sp['zeros']:,} of {sp['elements']:,} int8 weights are zero)")
    for d in s["distinct_values_per_channel"]:
        echo(f"  {d['op']:<20} {d['name'][:40]:<40} distinct values per channel: max {d['max']}, "
             f"mean {d['mean']:.1f} over {d['channels']} channels")
    arena = s["tflm_arena"]
    if arena:
        echo(f"TFLM arena: {arena['measured']:,} bytes measured, {arena['with_margin']:,} with margin")
    else:
        echo("TFLM arena: skipped (--no-arena)")
    fw = s["firmware_arena"]
    echo(f"firmware arena: {fw:,} bytes" if fw is not None else f"firmware arena: {fw_note}")
