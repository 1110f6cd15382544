import click

from . import force_option, json_option, seed_option


@click.command("compress")
@click.argument("model", type=click.Path())
@click.option("--recipe", "recipe", required=True,
              help="Built-in recipe (ptq-int8, dynamic-range, float16, prune, cluster, qat, pqat, "
                   "cqat, pcqat, distill, lowrank, prune-channels, structured, and the defenses' "
                   "adv-train, dq, ...: `edgeattack recipes` lists them) or a recipe .yaml file "
                   "(docs/recipes.md).")
@click.option("--dataset", default=None,
              help="Calibration/fine-tuning data (default: the dataset in the model's train.json).")
@click.option("--clean-data", default=None, metavar="FRACTION|NPZ",
              help="The defender's clean data, for steps that take it (fine-prune): a fraction of "
                   "the training split, or an .npz with x (and y).")
@click.option("-o", "--out", required=True, type=click.Path(),
              help="Output folder (model.keras, model.tflite, manifest.json).")
@click.option("--float-baseline", is_flag=True,
              help="Also convert the float model to a float32 .tflite and record its sizes.")
@seed_option
@force_option
@json_option("manifest.json")
@click.pass_context
def command(ctx, model, recipe, dataset, clean_data, out, float_baseline, seed, force, as_json):
    """Compress a float Keras MODEL (.keras, .h5 or SavedModel) with a recipe.

    Writes OUT/model.keras (the float model after the last float step), OUT/model.tflite (16-byte
    aligned) and OUT/manifest.json (accuracy float/LiteRT/TFLM, sizes, sparsity, ...).

    Example: edgeattack compress runs/digits/model.keras --recipe pqat -o runs/digits-pqat/
    """
    from pathlib import Path

    from ..atomic import check_output
    from ..compression.recipe import load_recipe, with_clean_data
    from ..errors import UsageError

    # Cheap checks first, so a typo fails before TensorFlow loads.
    check_output(out, force)
    parsed = with_clean_data(load_recipe(recipe), clean_data)
    if not Path(model).exists():
        raise UsageError(f"{model}: no such model; give a .keras, .h5 or SavedModel folder")

    from ..compression.pipeline import compress

    verbose = (ctx.obj or {}).get("verbose", 0)
    res = compress(model, parsed, out, dataset=dataset, seed=seed, force=force, progress=True,
                   float_baseline=float_baseline)
    m = res.manifest
    if as_json:
        from ..atomic import json_text

        click.echo(json_text(m))
        return
    acc = m["accuracy"]
    tflm = f"{acc['tflm']:.4f}" if acc["tflm"] is not None else "n/a (not TFLM-runnable)"
    click.echo(f"{m['recipe']['name']}: float {acc['float']:.4f}, LiteRT {acc['litert']:.4f}, "
               f"TFLM {tflm}; model.tflite {m['files']['model.tflite']} bytes, weights "
               f"{m['weight_buffer_bytes']} bytes (gzip {m['weight_buffer_gzip_bytes']}), sparsity "
               f"{(m['sparsity'] or 0):.3f} -> {res.out}")
    if verbose:
        for s in m["steps"]:
            after = "-" if s["accuracy_after"] is None else f"{s['accuracy_after']:.4f}"
            click.echo(f"  {s['step']}: {s['accuracy_before']:.4f} -> {after} ({s['seconds']} s)")
