"""A small REAL study run folder for the report tests, built with the project's public functions in
the run-folder layout of CONVENTIONS "Files" (study.yaml, cells/<hash>/ with cell.json written last).

cnn-digits trained briefly; ptq-int8 and a short prune recipe; FGSM crafted on the float model and
on each int8 surrogate; sessions on emu-tflm and emu-litert (the same inputs on two boards), and on
qemu-m4 for ptq-int8 (instruction-count time and estimated energy); a transfer matrix; a Square
black-box attack through emu-tflm. Loaded with `pytest_plugins = ["fixtures_report"]`.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

N = 60
EPS = [0.05, 0.1, 0.2]
TRANSFER_N = 30
PRUNE = {"name": "prune", "description": "short prune for tests",
         "steps": [{"step": "prune", "target_sparsity": 0.75, "epochs": 1}, {"step": "ptq-int8"}]}


class RunBuilder:
    def __init__(self, root: Path):
        self.root = root
        (root / "cells").mkdir(parents=True)
        (root / "study.yaml").write_text(
            "schema: 1\nname: report-test\ndescription: a small real run for the report tests\n"
            "dataset: digits\nmodel: cnn-digits\nseed: 0\n")

    def cell(self, kind: str, part: str, labels: dict, inputs=(), params=None):
        """A cell folder; returns (hash, folder, finish) where finish(outputs, model_sha256) writes
        cell.json last, as the study runner does."""
        from edgeattack.atomic import write_json

        labels = {"model": "cnn-digits", "recipe": None, "attack": None, "board": None,
                  "crafted_on": None, "eps": None, **labels, "part": part}
        h = hashlib.sha256(json.dumps([kind, labels, list(inputs)], sort_keys=True).encode()).hexdigest()[:20]
        d = self.root / "cells" / h
        d.mkdir()

        def finish(outputs: dict, model_sha256=None):
            write_json(d / "cell.json", {
                "schema": 1, "hash": h, "kind": kind, "part": part, "labels": labels,
                "params": params or {}, "inputs": list(inputs), "board": labels.get("board"),
                "status": "done", "host": "test", "started": "", "finished": "",
                "outputs": outputs, "model_sha256": model_sha256})
        return h, d, finish


def build_run(root: Path) -> Path:
    from edgeattack.attacks import make, target
    from edgeattack.attacks.blackbox.budgeted import cost_rows, per_sample
    from edgeattack.attacks.io import save_adversarial, summary, write_summary
    from edgeattack.attacks.targets import DeviceTarget
    from edgeattack.attacks.transfer import transfer, write_transfer
    from edgeattack.compression import compress
    from edgeattack.datasets import load_dataset
    from edgeattack.device.api import open_device
    from edgeattack.fileid import sha256_file
    from edgeattack.session import Session, load_adversarial
    from edgeattack.train import train_model

    run = RunBuilder(root)
    data = load_dataset("digits")
    x, y = data.x_test[:N], data.y_test[:N].astype(np.int64)

    th, td, done = run.cell("train", "shared", {"recipe": "float"})
    train_model("cnn-digits", "digits", td, epochs=5, seed=0, force=True, progress=False)
    done({"model": "model.keras", "summary": "train.json"})

    models = {}
    for name, recipe in (("ptq-int8", "ptq-int8"), ("prune", PRUNE)):
        h, d, done = run.cell("compress", "shared", {"recipe": name}, [th])
        res = compress(td / "model.keras", recipe, d, seed=0, force=True, progress=False)
        done({"model": "model.tflite", "keras": "model.keras", "summary": "manifest.json"},
             sha256_file(res.tflite_path))
        models[name] = (h, d / "model.tflite")

    def attack_cell(recipe, crafted_on, source, inputs):
        h, d, done = run.cell("attack", "evasion", {"recipe": recipe, "attack": "fgsm", "crafted_on": crafted_on},
                              inputs)
        t = target(source, data_range=data.data_range)
        res = make("fgsm")(t, x, y, epsilons=EPS, seed=0)
        save_adversarial(d / "adv.npz", res, ids=np.arange(N), source_model_sha256=t.model_sha256,
                         target=t.describe())
        write_summary(d / "attack.json", summary(res, source_model_sha256=t.model_sha256, target=t.describe()))
        done({"adversarial": "adv.npz", "summary": "attack.json"}, t.model_sha256)
        return h, d / "adv.npz"

    float_adv = attack_cell("float", "float", td / "model.keras", [th])
    crafted = {r: [("float", float_adv), ("surrogate", attack_cell(r, "surrogate", m, [mh]))]
               for r, (mh, m) in models.items()}

    plan = [(r, b) for r in models for b in ("emu-tflm", "emu-litert")] + [("ptq-int8", "qemu-m4")]
    for recipe, board in plan:
        mh, model = models[recipe]
        with open_device(board, model) as dev:
            for on, (ah, adv) in crafted[recipe]:
                if board == "qemu-m4" and on != "float":
                    continue
                h, d, done = run.cell("session", "evasion", {"recipe": recipe, "attack": "fgsm", "board": board,
                                                              "crafted_on": on}, [mh, ah])
                s = Session(dev, d, warmup=1, progress=False, model_path=model).run([load_adversarial(adv)])
                done({"records": "results.jsonl", "summary": "session.json"}, s["model"]["sha256"])

    h, d, done = run.cell("transfer", "transfer", {"attack": "fgsm"}, [th] + [m[0] for m in models.values()])
    staging = root / "staging"
    staging.mkdir()
    (staging / "float.keras").symlink_to(td / "model.keras")
    for r, (_, m) in models.items():
        (staging / f"{r}.tflite").symlink_to(m)
    tgts = [staging / f"{r}.tflite" for r in models]
    res = transfer("fgsm", [staging / "float.keras", tgts[0]], tgts, x[:TRANSFER_N], y[:TRANSFER_N], epsilons=[0.1],
                   data_range=data.data_range, seed=0)
    write_transfer(res, d, force=True, tool_version="test")
    shutil.rmtree(staging)
    done({"summary": "transfer.json", "table": "transfer.csv"})

    mh, model = models["ptq-int8"]
    h, d, done = run.cell("blackbox", "blackbox", {"recipe": "ptq-int8", "attack": "square", "board": "emu-tflm",
                                                    "crafted_on": "board"}, [mh], params={"budget": 40})
    with open_device("emu-tflm", model) as dev:
        t = DeviceTarget(dev, data_range=data.data_range)
        atk = make("square", budget=40)
        res = atk(t, x[:8], y[:8], epsilons=[0.2], seed=0)
        save_adversarial(d / "adv.npz", res, ids=np.arange(8), source_model_sha256=dev.model_sha256,
                         target=t.describe(), per_sample=per_sample(atk, res))
        write_summary(d / "attack.json", summary(res, source_model_sha256=dev.model_sha256, target=t.describe(),
                                                 extra_rows=cost_rows(atk, res)))
        Session(dev, d, progress=False, model_path=model).run([load_adversarial(d / "adv.npz")])
    done({"adversarial": "adv.npz", "summary": "attack.json", "records": "results.jsonl",
          "session": "session.json"}, dev.model_sha256)
    return root


@pytest.fixture(scope="session")
def report_run(tmp_path_factory) -> Path:
    """The run folder (cells only: no summary.json, tables/ or report.html yet)."""
    return build_run(tmp_path_factory.mktemp("report") / "run")


# A cell kind whose summary has metrics rows -> the figure that must show them.
FIGURE_OF_KIND = {"backdoor": ("backdoor", "backdoor.json"), "poison": ("poisoning", "poison.json"),
                  "extract": ("extraction", "extract.json"), "invert": ("inversion", "invert.json")}


def figures_required(run: Path) -> set[str]:
    """The training-time and exploratory figures the run's finished cells call for: a backdoor,
    poison, extract or invert cell with metrics rows must have its figure in the report."""
    import json

    need = set()
    for meta in (run / "cells").glob("*/cell.json"):
        c = json.loads(meta.read_text())
        if c.get("status") != "done" or c["kind"] not in FIGURE_OF_KIND:
            continue
        fid, name = FIGURE_OF_KIND[c["kind"]]
        found = [p for p in meta.parent.rglob(name)]
        if any(json.loads(p.read_text()).get("metrics") for p in found):
            need.add(fid)
    return need


def render_in_chromium(report: Path, tmp_path: Path):
    """report.html rendered by headless Chromium: the screenshot as an RGB array (a page that did
    not load, or loaded blank, fails here)."""
    import numpy as np
    from PIL import Image

    from conftest import require_tool
    from edgeattack import children

    require_tool("chromium")
    shot = tmp_path / "shot.png"
    res = children.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                        "--window-size=1280,4000", report.as_uri()], timeout=120)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (4000, 1280)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50 and img.std() > 10
    return img


def check_report_figures(run: Path) -> dict:
    """report.html beside summary.json: every figure embedded as a non-blank PNG with the very data
    of summary.json beside it, every omitted one named, and none missing that the run's cells call
    for (figures_required). Returns the summary."""
    import base64
    import io
    import json
    import re

    import numpy as np
    from PIL import Image

    html = (run / "report.html").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert not re.search(r"https?://", html)  # loads offline: nothing fetched
    figs = re.findall(r'<figure id="fig-([\w-]+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)">'
                      r'.*?<script type="application/json" id="data-([\w-]+)">(.*?)</script></figure>', html, re.S)
    assert [f[0] for f in figs] == [f["id"] for f in summary["figures"]]
    for (fid, b64, data_id, data), fig in zip(figs, summary["figures"]):
        assert data_id == fid
        assert json.loads(data) == fig["data"]  # the series plotted are the summary's
        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 10 and img.std() > 5, fid
    for omitted in summary["omitted_figures"]:
        assert f"Omitted: {omitted['title']}" in html
    missing = figures_required(run) - {f[0] for f in figs}
    assert not missing, f"cells with rows but no figure: {sorted(missing)}"
    return summary
