"""The `edgeattack` command line: a thin layer over the Python API.

Commands live one per module in this package and are imported only when run, so `edgeattack --help`
never imports TensorFlow. Errors are one line on stderr (traceback only with --debug); exit codes are
0 success, 1 failure, 2 usage error.
"""
from __future__ import annotations

import importlib
import logging
import sys

import click

from ..errors import EdgeAttackError

# name -> (module, one-line help). The help is repeated here so listing commands imports nothing.
COMMANDS = {
    "demo": ("demo", "Run the main job: train on digits, compress with several recipes, export, tabulate."),
    "train": ("train", "Train a zoo model on a dataset and save the float .keras model."),
    "compress": ("compress", "Apply a compression recipe: float model in, int8 .tflite + manifest out."),
    "export": ("export", "Export a .tflite model as C/C++ sources for TFLM or the project's firmware."),
    "inspect": ("inspect", "Print a .tflite model's operators, tensors, quantization, sizes and MACs."),
    "recipes": ("recipes", "List the built-in compression recipes with their steps."),
    "boards": ("boards", "List board profiles, or show one."),
    "up": ("up", "Start one emulated or QEMU board and keep it up, printing its port URL."),
    "attack": ("attack", "Craft an evasion attack and judge it (float model, int8 surrogate or a board)."),
    "attacks": ("attacks", "List the evasion attacks and their parameters."),
    "session": ("session", "Stream clean and adversarial inputs to a device and record its answers."),
    "flash": ("flash", "Deploy a model to a board (SSH for the Pi, build + QEMU for emulated MCUs)."),
    "transfer": ("transfer", "Craft an attack on source models and judge it on int8 targets: a matrix."),
    "poison": ("poison", "Poison training (label flips, clean-label, model poisoning); judge on a board."),
    "detox": ("detox", "Remove a backdoor by distillation on clean data; judge before and after on a board."),
    "backdoor": ("backdoor", "Backdoor a model at training time; judge its compressed artifacts on a board."),
    "report": ("report", "Write a study run's report.html, summary.json and tables/*.csv from its cells."),
    "study": ("study", "Run a study (cached cells, local workers or Ray), then write its report."),
    "studies": ("studies", "List the built-in studies and their parts."),
    "extract": ("extract", "Steal the model a device runs: train replicas from its answers, fidelity per budget."),
    "evaluate": ("evaluate", "Evaluate an int8 model on a board: robust accuracy over strong attacks, masking checks."),
    "invert": ("invert", "Reconstruct one input per class from a device's scores (model inversion)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        # Defense steps are recipe steps once registered: every command that reads a recipe sees
        # them (the package is light: no TensorFlow).
        importlib.import_module("edgeattack.defenses")
        module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
        return module.command

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More output (-vv for debug logging).")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.version_option(package_name="edgeattack", prog_name="edgeattack")
@click.pass_context
def cli(ctx, verbose, debug):
    """edgeattack: how does a compressed model hold up under attack on a real device?"""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    ctx.obj["debug"] = debug
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    try:
        rv = cli.main(args=args, prog_name="edgeattack", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("edgeattack: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except EdgeAttackError as e:
        if debug:
            raise
        click.echo(f"edgeattack: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("edgeattack: interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # an unexpected failure still gets one line unless --debug
        if debug:
            raise
        click.echo(f"edgeattack: error: {type(e).__name__}: {e} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


seed_option = click.option(
    "--seed", type=int, default=0, show_default=True,
    help="Seed Python, NumPy and TensorFlow (op determinism on) for reproducible results.",
)
force_option = click.option("--force", is_flag=True, help="Overwrite an existing output.")


def json_option(what: str):
    """--json: print one JSON object (`what`) on stdout instead of the human summary."""
    return click.option("--json", "as_json", is_flag=True,
                        help=f"Print {what} as one JSON object on stdout, instead of the summary line.")
