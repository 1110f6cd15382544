"""Running one cell: its outputs into its folder, composed from the public functions of the layers
below (train_model, compress, attacks, transfer, run_backdoor, Session). The executors (local
workers, Ray tasks) call `run_cell`; writing cell.json is the cache's job (cache.py), after this
returns.

Boards started by the host are opened through a `DevicePool`: a worker keeps each (board, model) it
started open for its later cells, so a board starts once per worker and model, not once per cell.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import UsageError

MAX_OPEN_BOARDS = 4


class DevicePool:
    """Open devices by (board, model file SHA-256); the least recently used closes beyond
    MAX_OPEN_BOARDS. close() stops every board it started."""

    def __init__(self, keep: int = MAX_OPEN_BOARDS):
        self.keep = keep
        self._open: OrderedDict = OrderedDict()

    def get(self, board: str, model_path: Path):
        from ..device.api import open_device
        from ..fileid import sha256_file

        key = (board, sha256_file(model_path))
        if key in self._open:
            self._open.move_to_end(key)
            dev = self._open[key][1]
            if _answers(dev):
                return dev
            self._open.pop(key)[0].close()  # it died since (a crash, a killed emulator): start it again
        stack = contextlib.ExitStack()
        try:
            dev = stack.enter_context(open_device(board, model_path))
        except BaseException:
            stack.close()
            raise
        self._open[key] = (stack, dev)
        while len(self._open) > self.keep:
            _, (old, _) = self._open.popitem(last=False)
            old.close()
        return dev

    def drop(self, board: str) -> None:
        """Close the devices of a board (after a failure on it: the next cell starts it afresh)."""
        for key in [k for k in self._open if k[0] == board]:
            self._open.pop(key)[0].close()

    def close(self) -> None:
        while self._open:
            _, (stack, _) = self._open.popitem()
            stack.close()


def _answers(dev) -> bool:
    """Whether a device kept open still answers INFO (one round trip, no inference)."""
    from ..errors import EdgeAttackError

    try:
        dev.info()
        return True
    except (EdgeAttackError, OSError):
        return False


def fix_threads(n: int) -> None:
    """TensorFlow's intra- and inter-op threads, fixed so a cell computes the same bytes wherever it
    runs (Ray sets OMP_NUM_THREADS in its workers; a different thread count can change float sums)."""
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(n)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(n)
    from ..tfutil import tf

    t = tf()
    try:
        t.config.threading.set_intra_op_parallelism_threads(n)
        t.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # already initialized in this process: it must hold the same numbers
        got = (t.config.threading.get_intra_op_parallelism_threads(),
               t.config.threading.get_inter_op_parallelism_threads())
        if got != (n, n):
            raise RuntimeError(f"TensorFlow already runs with {got} threads in this process, the study "
                               f"fixes {n}") from None


def _fresh_graph_state(seed: int) -> None:
    """Reset Keras' layer-name counters and the seeds: a cell's model bytes must not depend on the
    cells this process ran before it (converted models carry layer names)."""
    from ..tfutil import keras, set_seed

    keras().backend.clear_session()
    set_seed(seed)


def _test_split(dataset: str, n: int):
    from ..datasets import load_dataset

    data = load_dataset(dataset)
    n = min(n, len(data.y_test))
    return data, data.x_test[:n], data.y_test[:n].astype(np.int64)


def run_cell(spec: dict, cell_dir: Path, inputs: dict, pool: DevicePool) -> dict:
    """Run a cell (graph.Cell.spec()) into `cell_dir` (created empty by the caller). `inputs` maps an
    input cell's hash to its folder and outputs {"dir": Path, "outputs": {...}, "labels": {...}}.
    Returns {"outputs": {role: relative file}, "model_sha256": str | None}."""
    fn = globals()[f"_run_{spec['kind']}"]
    return fn(spec, Path(cell_dir), inputs, pool)


def _input(inputs: dict, h: str, role: str) -> Path:
    i = inputs[h]
    return Path(i["dir"]) / i["outputs"][role]


def _sha(path) -> str:
    from ..fileid import sha256_file

    return sha256_file(path)


def _run_train(spec, out, inputs, pool):
    from ..train import train_model

    p = spec["params"]
    _fresh_graph_state(p["seed"])
    train_model(p["model"], p["dataset"], out, epochs=p["epochs"], width=p["width"], seed=p["seed"],
                force=True, progress=False)
    return {"outputs": {"model": "model.keras", "summary": "train.json"}, "model_sha256": None}


def _run_compress(spec, out, inputs, pool):
    from .. import defenses  # noqa: F401  (registers the defense steps; workers may be fresh processes)
    from ..compression import compress
    from ..datasets import load_dataset

    p = spec["params"]
    _fresh_graph_state(p["seed"])
    model = _input(inputs, spec["inputs"][0], "model")
    res = compress(model, p["recipe"], out, dataset=load_dataset(p["dataset"]), seed=p["seed"],
                   force=True, progress=False)
    return {"outputs": {"model": "model.tflite", "keras": "model.keras", "summary": "manifest.json"},
            "model_sha256": _sha(res.tflite_path)}


def _run_attack(spec, out, inputs, pool):
    from ..attacks import make, target
    from ..attacks.io import save_adversarial, summary, write_summary

    p = spec["params"]
    _fresh_graph_state(p["seed"])
    data, x, y = _test_split(p["dataset"], p["n"])
    src = _input(inputs, spec["inputs"][0], "model")
    t = target(src, data_range=data.data_range)
    res = make(p["attack"], **p["params"])(t, x, y, epsilons=p["eps"], seed=p["seed"])
    source_sha = t.model_sha256  # the .tflite's for a surrogate; None for a float model
    save_adversarial(out / "adv.npz", res, ids=np.arange(len(y)), source_model_sha256=source_sha,
                     target=t.describe())
    write_summary(out / "attack.json", summary(res, source_model_sha256=source_sha, target=t.describe()))
    return {"outputs": {"adversarial": "adv.npz", "summary": "attack.json"}, "model_sha256": source_sha}


def _run_session(spec, out, inputs, pool):
    from ..session import Session, energy_use, load_adversarial

    p = spec["params"]
    model = _input(inputs, spec["inputs"][0], "model")
    adv = _input(inputs, spec["inputs"][1], "adversarial")
    use = energy_use(p["board"], p["energy"])  # the study's --energy, as `session --energy` does
    dev = pool.get(p["board"], model)
    use.attach(dev)
    s = Session(dev, out, warmup=p["warmup"], progress=False, model_path=model,
                **use.session_options()).run([load_adversarial(adv)])
    return {"outputs": {"records": "results.jsonl", "summary": "session.json"},
            "model_sha256": s["model"]["sha256"], "device_inferences": s["device"]["inferences_run"]}


def _run_blackbox(spec, out, inputs, pool):
    """The attack command's own run (attacks.run.run_attack) on the worker's open board: crafted
    by querying the board, judged by it, its examples replayed as a session."""
    from ..attacks.run import run_attack

    p = spec["params"]
    _fresh_graph_state(p["seed"])
    data, x, _ = _test_split(p["dataset"], p["n"])
    model = _input(inputs, spec["inputs"][0], "model")
    dev = pool.get(p["board"], model)
    s = run_attack(p["attack"], model, epsilons=p["eps"], board=p["board"], dataset=p["dataset"],
                   n=len(x), budget=p["budget"], seed=p["seed"], params=p["params"], out=out / "adv.npz",
                   force=True, progress=False, energy=p["energy"], device=dev)
    return {"outputs": {"adversarial": "adv.npz", "summary": "attack.json", "records": "results.jsonl",
                        "session": "session.json"},
            "model_sha256": s["target"]["model_sha256"],
            "device_inferences": s["metrics"][0]["device_inferences"]}


def _run_transfer(spec, out, inputs, pool):
    from .. import __version__
    from ..attacks.transfer import transfer, write_transfer

    p = spec["params"]
    _fresh_graph_state(p["seed"])
    data, x, y = _test_split(p["dataset"], p["n"])
    # the matrix names models by file stem: link each input under its recipe's name
    staging = out.parent / f".{out.name}.models"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "sources").mkdir(parents=True)
    (staging / "targets").mkdir(parents=True)
    by_recipe = {inputs[h]["labels"]["recipe"]: h for h in spec["inputs"]}
    try:
        srcs, tgts = [], []
        for name in p["sources"]:
            f = _input(inputs, by_recipe[name], "model")
            srcs.append(staging / "sources" / f"{name}{f.suffix}")
            srcs[-1].symlink_to(f.resolve(), target_is_directory=f.is_dir())
        for name in p["targets"]:
            f = _input(inputs, by_recipe[name], "model")
            tgts.append(staging / "targets" / f"{name}.tflite")
            tgts[-1].symlink_to(f.resolve())
        res = transfer(p["attack"], srcs, tgts, x, y, epsilons=p["eps"], params=p["params"],
                       board=p["board"], seed=p["seed"], data_range=data.data_range)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for s in res.sources + res.targets:
        s["path"] = Path(s["path"]).name  # the staging links are gone
    write_transfer(res, out, force=True, tool_version=__version__)
    return {"outputs": {"summary": "transfer.json", "table": "transfer.csv"}, "model_sha256": None}


def _run_backdoor(spec, out, inputs, pool):
    from ..attacks.poisoning import run_backdoor

    p = spec["params"]
    _fresh_graph_state(p["seed"])
    run_backdoor(out / "backdoor", model=p["model"], dataset=p["dataset"], trigger=p["trigger"],
                 target_class=p["target_class"], rate=p["rate"], recipes=p["recipes"], board=p["board"],
                 compress_data=p["compress_data"], epochs=p["epochs"], n=p["n"], seed=p["seed"],
                 activated=bool(p.get("activated")), force=True, progress=False)
    return {"outputs": {"summary": "backdoor/backdoor.json"}, "model_sha256": None}


def _run_evaluate(spec, out, inputs, pool):
    from ..defenses.evaluate import evaluate
    from ..session import Session, energy_use, load_dataset_inputs

    p = spec["params"]
    _fresh_graph_state(p["seed"])
    model = _input(inputs, spec["inputs"][0], "model")
    use = energy_use(p["board"], p["energy"])
    dev = pool.get(p["board"], model)
    # the float parent for transfer is the model.keras compress wrote beside the .tflite
    s = evaluate(model, board=p["board"], device=dev, epsilons=p["eps"], n=p["n"], dataset=p["dataset"],
                 seed=p["seed"], budget=p["budget"], params=p["params"], out=out / "evaluate",
                 force=True, progress=False, energy=p["energy"])
    outputs = {"summary": "evaluate/evaluate.json"}
    if p["latency_n"]:  # clean inferences timed (and their energy estimated) on the same device
        use.attach(dev)
        Session(dev, out / "latency", warmup=1, progress=False, model_path=model,
                **use.session_options()).run([load_dataset_inputs(p["dataset"], p["latency_n"])])
        outputs["session"] = "latency/session.json"
    return {"outputs": outputs, "model_sha256": s["target"]["model_sha256"],
            "device_inferences": s["device_inferences"]}


def _run_poison(spec, out, inputs, pool):
    """`edgeattack poison KIND` (attacks.poisoning.run_poison): poisoned training, the recipes on the
    defender's data, every artifact judged on the board."""
    from ..attacks.poisoning import run_poison

    p = spec["params"]
    _fresh_graph_state(p["seed"])
    run_poison(out / "poison", p["kind"], model=p["model"], dataset=p["dataset"], rate=p["rate"],
               source_class=p["source_class"], target_class=p["target_class"], eps=p["eps"],
               settings=p["params"], recipes=p["recipes"], board=p["board"],
               compress_data=p["compress_data"], epochs=p["epochs"], pretrain_epochs=p["pretrain_epochs"],
               prune_ratios=p["prune_ratios"], n=p["n"], seed=p["seed"], force=True, progress=False)
    return {"outputs": {"summary": "poison/poison.json"}, "model_sha256": None}


def _device_target(p, inputs, spec, pool):
    """(model file, a DeviceTarget giving scores over the worker's open board running it)."""
    from ..attacks.targets import DeviceTarget
    from ..session import manifest_expectations

    model = _input(inputs, spec["inputs"][0], "model")
    data_range = manifest_expectations(model)[0]
    return model, DeviceTarget(pool.get(p["board"], model), data_range=data_range, output="scores")


def _run_extract(spec, out, inputs, pool):
    """`edgeattack extract` (attacks.exploratory.extraction.extract) against the recipe's artifact."""
    from .. import __version__
    from ..attacks.exploratory.extraction import extract, write_extract

    p = spec["params"]
    _fresh_graph_state(p["seed"])
    _, target = _device_target(p, inputs, spec, pool)
    res = extract(target=target, dataset=p["dataset"], budgets=p["budgets"], pool=p["pool"],
                  augment=p["augment"], output=p["output"], replica=p["replica"], width=p["width"],
                  epochs=p["epochs"], seed=p["seed"], **p["params"])
    write_extract(res, out / "extract", force=True, tool_version=__version__)
    return {"outputs": {"summary": "extract/extract.json"}, "model_sha256": target.model_sha256,
            "device_inferences": max((r.get("device_inferences") or 0 for r in res.rows), default=None)}


def _run_invert(spec, out, inputs, pool):
    """`edgeattack invert` (attacks.exploratory.inversion.invert) against the recipe's artifact."""
    from .. import __version__
    from ..attacks.exploratory.inversion import invert, write_invert

    p = spec["params"]
    _fresh_graph_state(p["seed"])
    _, target = _device_target(p, inputs, spec, pool)
    res = invert(target=target, dataset=p["dataset"], classes=p["classes"], budget=p["budget"],
                 shortcut_budgets=p["shortcut_budgets"], seed=p["seed"], **p["params"])
    write_invert(res, out / "invert", force=True, tool_version=__version__)
    return {"outputs": {"summary": "invert/invert.json", "reconstructions": "invert/reconstructions.npz"},
            "model_sha256": target.model_sha256}


def check_runnable(board: str) -> None:
    """A board this host cannot run is a one-line error before any cell starts."""
    import shutil as _sh

    from ..device import board_for

    driver = board_for(board)
    missing = [t for t in driver.host_tools if _sh.which(t) is None]
    if driver.started_by_host and missing:
        raise UsageError(f"board {board} needs {' and '.join(missing)} on this host (tools/setup.sh "
                         f"installs them)")
