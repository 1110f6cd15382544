import click

from . import force_option, json_option, seed_option


@click.command("train")
@click.option("--model", "model_name", default="cnn-digits", show_default=True,
              help="Zoo model: cnn-digits, cnn-mnist, resnet8, dscnn, mobilenet-tiny.")
@click.option("--dataset", default="digits", show_default=True,
              help="digits, mnist, fashion_mnist, cifar10, synthetic:HxWxC:K, file.npz or an image folder.")
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--width", type=float, default=1.0, show_default=True, help="Channel width multiplier.")
@click.option("--input-shape", default=None, help="Override the input shape, e.g. 32x32x3 (must fit the data).")
@click.option("-o", "--out", required=True, type=click.Path(), help="Output folder (model.keras, train.json).")
@seed_option
@force_option
@json_option("train.json")
def command(model_name, dataset, epochs, batch_size, lr, width, input_shape, out, seed, force, as_json):
    """Train a zoo model and save the float model with its test accuracy.

    Example: edgeattack train --model cnn-digits --dataset digits -o runs/digits/
    """
    from ..atomic import check_output
    from ..errors import UsageError
    from ..train import train_model

    check_output(out, force)  # fail before paying for TensorFlow
    shape = None
    if input_shape:
        try:
            shape = tuple(int(v) for v in input_shape.lower().split("x"))
        except ValueError:
            raise UsageError(f"--input-shape {input_shape}: write it as HxWxC, e.g. 32x32x3") from None
    res = train_model(model_name, dataset, out, epochs=epochs, batch_size=batch_size, lr=lr,
                      width=width, input_shape=shape, seed=seed, force=force)
    if as_json:
        from ..atomic import json_text

        click.echo(json_text(res.meta))
        return
    click.echo(f"{model_name} on {res.meta['dataset']}: test accuracy {res.test_accuracy:.4f} "
               f"({res.meta['params']} parameters) -> {res.model_path}")
