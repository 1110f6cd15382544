"""`edgeattack attack`: craft one evasion attack, judge it where CONVENTIONS says, write its files.

    summary = run_attack("pgd", "float.keras", epsilons=[0.05, 0.1], target="int8.tflite",
                         board="emu-tflm", dataset="digits", n=300, out="adv.npz")

Crafting target: the surrogate of `target` if given, else `model` (a float .keras, or a .tflite
through its surrogate). Judge: the device (`board`, optionally at `port`) running `target`, else
`model` when it is a .tflite; with no device, the crafting target. A black-box attack given a device
queries the device, which then both crafts and judges.

Outputs (CONVENTIONS "Files"): `out` a folder -> OUT/adversarial.npz and OUT/attack.json; `out` an
.npz -> that file with attack.json beside it. Judged on a device, results.jsonl and session.json go
beside them too: they are written by edgeattack.session from the adversarial .npz, exactly as
`edgeattack session --adversarial` would write them (black-box records add `queries` and
`wire_bytes`). Everything is built in a temporary folder and moved into place at the end, so an
error leaves nothing behind; an existing output is refused without `force`.

Data range (the box inputs are clipped to, and what epsilon is measured against): `data_range` if
given, else the manifest.json that `compress` wrote beside the .tflite, else, for a .keras model,
its train.json or the dataset's range; a .tflite without a manifest takes the float range its input
quantization represents, with a one-line warning naming that default.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError

log = logging.getLogger(__name__)

ADVERSARIAL = "adversarial.npz"  # the adversarial .npz inside an output folder
SUMMARY = "attack.json"
RESULTS = "results.jsonl"
SESSION = "session.json"
MODEL_SUFFIXES = (".keras", ".h5", ".tflite")


# parsing the command line's values ---------------------------------------------------------------

def parse_epsilons(text: str) -> list:
    """"0.05,0.1" -> [0.05, 0.1]; "none" is the unbounded epsilon of a minimization attack."""
    out = []
    for v in str(text).split(","):
        v = v.strip()
        if not v:
            continue
        if v.lower() in ("none", "unbounded"):
            out.append(None)
            continue
        try:
            out.append(float(v))
        except ValueError:
            raise UsageError(f"--eps {text!r}: give comma-separated numbers, e.g. 0.05,0.1 (or none "
                             f"for an unbounded minimization attack)") from None
    if not out:
        raise UsageError("--eps: give at least one epsilon, e.g. 0.1")
    return out


def parse_range(text: str | None) -> tuple[float, float] | None:
    """"LO,HI" -> (LO, HI) with LO < HI; None passes through."""
    if text is None:
        return None
    try:
        lo_hi = [float(v) for v in str(text).split(",")]
    except ValueError:
        lo_hi = []
    if len(lo_hi) != 2 or not np.all(np.isfinite(lo_hi)) or not lo_hi[0] < lo_hi[1]:
        raise UsageError(f"--range {text!r}: give LO,HI with LO < HI, e.g. 0,1")
    return lo_hi[0], lo_hi[1]


def parse_list(text: str | None, what: str) -> list[str]:
    """"a.keras, b.tflite" -> ["a.keras", "b.tflite"] (blanks dropped); an empty list is refused,
    naming the flag `what`."""
    items = [v.strip() for v in str(text or "").split(",") if v.strip()]
    if not items:
        raise UsageError(f"{what}: give a comma-separated list, e.g. {what} a.tflite,b.tflite")
    return items


def first_test_samples(ds, n: int):
    """The first n samples of dataset ds's test split as (x float32, y int64); -n outside 1..size
    is refused."""
    total = len(ds.x_test)
    if n < 1 or n > total:
        raise UsageError(f"-n {n}: the test split of {ds.name} has {total} samples; give 1..{total}")
    return ds.x_test[:n].astype(np.float32), ds.y_test[:n].astype(np.int64)


def parse_sets(items) -> dict:
    """["steps=20", "random_start=false"] -> {"steps": "20", ...}; the attack types each value by
    its parameter's default (int, float, bool)."""
    params = {}
    for s in items or ():
        name, sep, value = str(s).partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set {s!r}: give NAME=VALUE, e.g. --set steps=20")
        params[name.strip()] = value.strip()
    return params


def attack_params(attack: str, sets=(), norm: str | None = None, budget: int | None = None):
    """The attack instance for `attack` with --set/--norm/--budget applied: unknown attacks,
    parameters, norms and budgets fail here, before any model loads."""
    from .base import attack_class

    cls = attack_class(attack)
    params = parse_sets(sets) if not isinstance(sets, dict) else dict(sets)
    if norm is not None:
        params["norm"] = norm
    if budget is not None:
        if "budget" not in cls.all_params():
            raise UsageError(f"--budget: attack {attack} is not a black-box attack (it takes no budget)")
        params["budget"] = budget
    return cls(**params)


# outputs --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outputs:
    """Where the files go: `out` a folder, or an .npz with its siblings beside it."""

    out: Path
    npz: Path
    folder: Path
    is_folder: bool

    def files(self, on_device: bool) -> dict[str, Path]:
        """Staged name -> final path of every file the run writes."""
        names = [ADVERSARIAL, SUMMARY] + ([RESULTS, SESSION] if on_device else [])
        return {name: self.npz if name == ADVERSARIAL else self.folder / name for name in names}


def output_paths(out) -> Outputs:
    out = Path(out)
    if out.suffix.lower() == ".npz":
        return Outputs(out, out, out.parent, False)
    return Outputs(out, out / ADVERSARIAL, out, True)


def check_outputs(outputs: Outputs, force: bool, on_device: bool) -> None:
    """Refuse existing outputs without force (and outputs that cannot be written), before any work."""
    from ..atomic import check_output

    if outputs.is_folder:
        check_output(outputs.out, force)
        return
    for path in outputs.files(on_device).values():
        check_output(path, force)


@contextlib.contextmanager
def staged(outputs: Outputs, force: bool, on_device: bool):
    """A temporary folder to write every output in; moved into place only when the block succeeds."""
    from ..atomic import atomic_dir

    if outputs.is_folder:
        with atomic_dir(outputs.out, force=force) as tmp:
            yield tmp
        return
    outputs.folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outputs.npz.name}.", suffix=".tmp", dir=outputs.folder))
    try:
        yield tmp
        for name, final in outputs.files(on_device).items():
            if (tmp / name).exists():
                os.replace(tmp / name, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# models ---------------------------------------------------------------------------------------------

def check_model_file(path, what: str, suffixes=MODEL_SUFFIXES) -> Path:
    """`path` as a Path, refused in one line (naming it as `what`, e.g. "--model") when its suffix
    is not one of `suffixes` or the file does not exist; nothing is loaded."""
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        kinds = [k for k, given in (("a float .keras model", {".keras", ".h5"} & set(suffixes)),
                                    ("an int8 .tflite", ".tflite" in suffixes)) if given]
        raise UsageError(f"{what} {p}: give {' or '.join(kinds)}")
    if not p.is_file():
        raise UsageError(f"{what} {p} does not exist")
    return p


@dataclass
class ModelFacts:
    """What the checks need from a model before anything heavy runs."""

    path: Path
    input_shape: tuple
    classes: int
    quant_range: tuple | None = None  # the float range its int8 input quantization represents
    keras_model: object = None


def tflite_facts(path: Path) -> ModelFacts:
    """Input shape (no batch axis), classes and quantized input range, read from the flatbuffer
    alone (no TensorFlow)."""
    from ..tflite.reader import read_model
    from .targets import input_range

    info = read_model(path)
    inp, out = info.input_tensors[0], info.output_tensors[0]
    shape = tuple(inp.shape[1:]) if len(inp.shape) > 1 and inp.shape[0] == 1 else tuple(inp.shape)
    quant = None
    if inp.scale is not None and inp.dtype in ("int8", "uint8", "int16"):
        quant = input_range(inp.scale, inp.zero_point or 0, np.dtype(inp.dtype))
    return ModelFacts(path, shape, int(np.prod(out.shape[1:] if len(out.shape) > 1 else out.shape)), quant)


def keras_facts(path: Path) -> ModelFacts:
    from ..keras_io import load_model
    from .targets import logits_model

    model = load_model(path)
    return ModelFacts(path, tuple(int(d) for d in model.input_shape[1:]),
                      int(logits_model(model).output_shape[-1]), None, model)


def facts(path: Path) -> ModelFacts:
    return tflite_facts(path) if path.suffix.lower() == ".tflite" else keras_facts(path)


def resolve_range(data_range, model: ModelFacts, dataset) -> tuple[tuple[float, float], str, str | None]:
    """(data range, where it came from, the warning to give when it is the quantization default):
    see the module docstring."""
    if data_range is not None:
        return tuple(float(v) for v in data_range), "--range", None
    if model.path.suffix.lower() == ".tflite":
        from ..session import manifest_expectations

        found, where, _ = manifest_expectations(model.path)
        if found is not None:
            return found, where, None
        if model.quant_range is None:
            raise UsageError(f"model {model.path}: its input is not int8-quantized and it has no "
                             f"manifest.json; give the data range with --range LO,HI")
        lo, hi = model.quant_range
        warning = (f"model {model.path} has no manifest.json: data range [{lo:g}, {hi:g}] is the "
                   f"default, the float range its input quantization represents; give --range LO,HI "
                   f"to set it")
        return (lo, hi), "input quantization (default)", warning
    from ..train import read_train_meta

    recorded = read_train_meta(model.path).get("data_range")
    if recorded:
        return (float(recorded[0]), float(recorded[1])), f"train.json of {model.path}", None
    return tuple(float(v) for v in dataset.data_range), f"dataset {dataset.name}", None


# the run --------------------------------------------------------------------------------------------

def run_attack(attack: str, model, *, epsilons, target=None, board: str | None = None,
               port: str | None = None, dataset="digits", n: int = 100, norm: str | None = None,
               budget: int | None = None, data_range=None, seed: int | None = 0, params=None,
               out, force: bool = False, progress: bool = True, energy: str = "auto",
               pace_baudrate: int | None = None, device=None, protocol: str | None = None) -> dict:
    """Craft `attack` and judge it (module docstring); returns the attack.json summary it wrote.

    epsilons: floats (None: unbounded, minimization attacks only); params: hyperparameters (values
    may be the strings of --set NAME=VALUE); n: the first n samples of the dataset's test split.
    energy: `--energy auto|measured|estimated|off` on the board (CONVENTIONS; as `session` does:
    estimated energy goes into every query's Result, so black-box rows and records carry it; a
    meter measures the judging session's INFER windows and a black-box attack's crafting queries,
    one window each, charged to the sample queried: attacks.blackbox.metered). pace_baudrate: pace the link of a board
    this host starts like a UART (as `session --pace-baudrate`). device: an open Device running the
    judge model, used instead of starting `board` (a study's worker keeps its boards open).
    protocol: the board's wire protocol ("edgeattack", "mlperf"; default: its profile's).
    """
    from ..datasets import load_dataset
    from ..fileid import sha256_file
    from ..link.pace import check_pace_baudrate

    atk = attack_params(attack, params or {}, norm, budget)
    model = check_model_file(model, "--model")
    if target is not None:
        target = check_model_file(target, "--target", (".tflite",))
    if device is not None:
        board = board or device.board
    on_device = board is not None or port is not None
    if port is not None and board is None:
        raise UsageError("--port needs --board too: the profile of the device at that port")
    check_pace_baudrate(pace_baudrate)
    if not on_device and (pace_baudrate is not None or energy in ("measured", "estimated")):
        flag = "--pace-baudrate" if pace_baudrate is not None else f"--energy {energy}"
        raise UsageError(f"{flag} applies to a board: give --board (energy and pacing are the device's)")
    energy_use = None
    if on_device:
        from ..session import energy_use as _energy_use

        # before any board starts: measured without a meter is one line
        energy_use = _energy_use(device.profile if device is not None else board, energy)
    judge_model = target or (model if model.suffix.lower() == ".tflite" else None)
    if on_device and judge_model is None:
        raise UsageError(f"a board runs an int8 .tflite: give --target int8.tflite (or a .tflite "
                         f"--model) to judge {model.name} on {board}")
    outputs = output_paths(out)
    check_outputs(outputs, force, on_device)

    ds = load_dataset(dataset)
    x, y = first_test_samples(ds, n)
    ids = np.arange(n, dtype=np.int64)  # test-split indices, as `session --dataset` numbers them

    # The model that crafts (a device's model for black-box attacks on a device): checked first.
    blackbox_on_device = atk.family == "blackbox" and on_device
    craft = facts(judge_model if blackbox_on_device else (target or model))
    if target is not None and target.resolve() != model.resolve():
        source = facts(model)
        if tuple(source.input_shape) != tuple(craft.input_shape):
            raise UsageError(f"--target {target} takes inputs of shape {craft.input_shape}, --model "
                             f"{model} takes {source.input_shape}: give a target made from this model")
    rng_range, range_from, range_warning = resolve_range(data_range, craft, ds)
    atk.check_inputs(x, y, craft.input_shape, craft.classes)
    eps_list = atk.check_epsilons(epsilons, rng_range, craft.input_shape)
    source_sha = sha256_file(model)

    from ..tfutil import set_seed

    set_seed(seed)
    header = {"dataset": ds.name, "data_range": list(rng_range), "data_range_from": range_from,
              "model": str(model), "target_model": None if target is None else str(target)}
    with contextlib.ExitStack() as stack:
        dev_target = None
        if blackbox_on_device:
            from .targets import open_target

            if device is not None:
                from .targets import DeviceTarget

                dev_target = DeviceTarget(device, data_range=rng_range)
            else:
                dev_target = stack.enter_context(open_target(
                    judge_model, board=board, port=port, data_range=rng_range,
                    device_options={"pace_baudrate": pace_baudrate, "protocol": protocol}))
            energy_use.attach(dev_target.device)
            crafting = dev_target
        else:
            from .targets import FloatTarget, SurrogateTarget

            crafting = (FloatTarget(craft.keras_model, data_range=rng_range) if craft.keras_model is not None
                        else SurrogateTarget(craft.path, data_range=rng_range))
        if range_warning:  # once the models are known to work: a bad input stays one line
            log.warning(range_warning)
        tmp = stack.enter_context(staged(outputs, force, on_device))
        summary = _craft_and_judge(atk, crafting, dev_target, x, y, ids, eps_list, seed, tmp,
                                   outputs, board=board, port=port, judge_model=judge_model,
                                   source_sha=source_sha, header=header, progress=progress,
                                   energy_use=energy_use, pace_baudrate=pace_baudrate, device=device,
                                   protocol=protocol)
    return summary


def _query_bar(atk, n: int, n_eps: int, progress: bool):
    """A progress bar over a black-box attack's queries (its upper bound: every query spent)."""
    if atk.family != "blackbox":
        return None
    from tqdm import tqdm

    runs = 1 if atk.minimization else n_eps
    bar = tqdm(total=runs * n * atk.params["budget"], unit="query", desc=atk.name, file=sys.stderr,
               disable=not progress or None, leave=False, dynamic_ncols=True, mininterval=0.5)
    atk.on_queries = bar.update
    return bar


def _craft_and_judge(atk, crafting, dev_target, x, y, ids, eps_list, seed, tmp: Path, outputs,
                     *, board, port, judge_model, source_sha, header, progress, energy_use=None,
                     pace_baudrate=None, device=None, protocol=None) -> dict:
    from ..atomic import write_json
    from . import io
    from .base import judged
    from .blackbox.budgeted import cost_rows, per_sample

    from .blackbox.metered import metered_crafting

    info0 = dev_target.device.info()["inferences"] if dev_target is not None else None
    bar = _query_bar(atk, len(x), len(eps_list), progress)
    # a board's meter measures the crafting queries as it does the session's records
    meter = energy_use.meter if energy_use is not None and atk.family == "blackbox" else None
    try:
        with metered_crafting(atk, dev_target, meter):
            res = atk(crafting, x, y, epsilons=eps_list, seed=seed, progress=progress and bar is None)
    finally:
        if bar is not None:
            bar.close()
            atk.on_queries = None
    crafted_on = crafting.describe()
    io.save_adversarial(tmp / ADVERSARIAL, res, ids=ids, source_model_sha256=source_sha,
                        target=crafted_on,
                        per_sample=per_sample(atk, res) if atk.family == "blackbox" else None)

    extra = [{} for _ in eps_list]
    judge_desc = crafted_on
    if board is not None:
        # The judge: a device running judge_model. Its records are session's own.
        with contextlib.ExitStack() as stack:
            if dev_target is not None:
                dev = dev_target.device
            else:
                from ..device.api import open_device

                dev = device if device is not None else stack.enter_context(
                    open_device(board, judge_model, port=port, pace_baudrate=pace_baudrate,
                                protocol=protocol))
                energy_use.attach(dev)
                info0 = dev.info()["inferences"]
            records = _session_records(dev, tmp, outputs, judge_model, progress, energy_use)
            info1 = dev.info()["inferences"]
        device_inferences = int(info1 - info0)
        clean = {r["id"]: r["pred"] for r in records if r["source"] == "clean"}
        adv = {(r["id"], r["eps"]): r["pred"] for r in records if r["source"] == res.attack}
        pred = np.array([[adv[(int(i), e)] for i in ids] for e in res.epsilons], dtype=np.int64)
        res_j = judged(res, [clean[int(i)] for i in ids], pred, "board", dev.model_sha256)
        res_j.extra["evaluation_queries"] = int(res.extra.get("evaluation_queries", 0)
                                                if dev_target is not None else 0) + len(records)
        judge_desc = {"kind": "board", "model_sha256": dev.model_sha256, "board": dev.board}
        if atk.family != "blackbox":
            extra = [{"device_inferences": device_inferences,
                      "evaluation_queries": res_j.extra["evaluation_queries"]} for _ in eps_list]
    else:
        res_j, device_inferences = res, None
    if atk.family == "blackbox":
        extra = cost_rows(atk, res_j, device_inferences)
    summary = io.summary(res_j, source_model_sha256=source_sha, target=judge_desc,
                         extra_rows=extra, crafting_target=crafted_on, **header,
                         files={name: str(path) for name, path in outputs.files(board is not None).items()})
    write_json(tmp / SUMMARY, summary)
    return summary


def _session_records(dev, tmp: Path, outputs: Outputs, judge_model, progress: bool,
                     energy_use=None) -> list[dict]:
    """Judge the adversarial .npz on the device with edgeattack.session (clean records from the
    file's own x, then each epsilon): the records of `session --adversarial`."""
    from ..results import read_results
    from ..session import Session, load_adversarial

    inputs = load_adversarial(tmp / ADVERSARIAL)
    inputs.path = outputs.npz  # name the file where it will be, not the staging copy
    options = energy_use.session_options() if energy_use is not None else {}
    Session(dev, tmp, progress=progress, model_path=judge_model, **options).run([inputs])
    return read_results(tmp / RESULTS)
