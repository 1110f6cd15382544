"""The study report on a small REAL run folder (fixtures_report): summary.json, tables/*.csv and a
self-contained report.html, rendered in headless Chromium; bad input refused with one line."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import run_cli

pytest_plugins = ["fixtures_report"]


@pytest.fixture(scope="module")
def written(report_run):
    proc = run_cli("report", report_run, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"report {report_run / 'report.html'}"
    return report_run


def _records(cell_dir):
    return [json.loads(line) for line in (cell_dir / "results.jsonl").read_text().splitlines()
            if not json.loads(line)["warmup"]]


def test_summary_numbers_come_from_the_cells(report_run):
    from edgeattack.report import build_summary

    before = sorted(p.name for p in report_run.iterdir())
    s = build_summary(report_run)
    assert sorted(p.name for p in report_run.iterdir()) == before  # reads only
    assert s["schema"] == 1 and s["study"]["name"] == "report-test"
    assert {f["id"] for f in s["figures"]} == {"robust-accuracy", "latency", "energy", "transfer", "queries",
                                               "cross-board"}
    assert {f["id"] for f in s["omitted_figures"]} == {"backdoor", "poisoning", "extraction", "inversion"}
    assert all(c["status"] == "done" for c in s["cells"])

    # robust accuracy of one session recomputed from its records by hand
    cell = next(c for c in s["cells"] if c["kind"] == "session" and c["labels"]["recipe"] == "prune"
                and c["labels"]["board"] == "emu-tflm" and c["labels"]["crafted_on"] == "float")
    recs = _records(report_run / "cells" / cell["hash"])
    clean = {r["id"]: r["pred"] == r["label"] for r in recs if r["source"] == "clean"}
    points = {p["eps"]: p for p in s["tables"]["robust_accuracy"]
              if (p["recipe"], p["board"], p["attack"], p["crafted_on"]) == ("prune", "emu-tflm", "fgsm", "float")}
    assert points[0.0]["robust_accuracy"] == pytest.approx(np.mean(list(clean.values())))
    for eps in (0.05, 0.1, 0.2):
        ok = [clean[r["id"]] and r["pred"] == r["label"] for r in recs if r["eps"] == eps]
        assert points[eps]["robust_accuracy"] == pytest.approx(np.mean(ok)) and points[eps]["n"] == len(ok)
        lo, hi = points[eps]["robust_accuracy_ci95"]
        assert lo <= points[eps]["robust_accuracy"] <= hi

    # time and energy labelled honestly: emulators' host wall time, QEMU's estimate
    lat = next(f for f in s["figures"] if f["id"] == "latency")["data"]
    kinds = {p["board"]: p["time_kind"] for p in lat["panels"]}
    assert kinds == {"emu-tflm": "host-wall", "emu-litert": "host-wall", "qemu-m4": "qemu-instructions"}
    labels = {p["board"]: p["time_label"] for p in lat["panels"]}
    assert "not microcontroller latency" in labels["emu-tflm"] and "estimated" in labels["qemu-m4"]
    energy = next(f for f in s["figures"] if f["id"] == "energy")["data"]["bars"]
    assert [(b["board"], b["energy_source"]) for b in energy] == [("qemu-m4", "estimated")]
    assert "(estimated)" in energy[0]["label"]

    # comparisons: every pair of recipes per (board, attack, crafting origin, eps), plus latency on qemu
    comps = s["tables"]["comparisons"]
    assert s["comparisons"] == len(comps) > 0
    assert {c["what"] for c in comps} == {"robust_accuracy", "latency"}
    assert all(c["board"] == "qemu-m4" for c in comps if c["what"] == "latency")
    for f in s["findings"]:
        assert f["ci95"][0] > 0 or f["ci95"][1] < 0
        assert f"{len(comps)} comparisons" in f["text"]
    assert build_summary(report_run) == s  # deterministic


def test_findings_rule():
    from edgeattack.report.findings import compare_robustness, findings_from

    n = 100
    clean = {i: True for i in range(n)}
    outcomes = [{"recipe": "ptq-int8", "board": "b", "attack": "pgd", "crafted_on": "float", "eps": 0.1,
                 "clean": clean, "adversarial": {i: i < 60 for i in range(n)}},
                {"recipe": "pqat", "board": "b", "attack": "pgd", "crafted_on": "float", "eps": 0.1,
                 "clean": clean, "adversarial": {i: i < 40 for i in range(n)}},
                {"recipe": "ptq-int8", "board": "b", "attack": "pgd", "crafted_on": "float", "eps": 0.2,
                 "clean": clean, "adversarial": {i: i < 30 for i in range(n)}},
                {"recipe": "pqat", "board": "b", "attack": "pgd", "crafted_on": "float", "eps": 0.2,
                 "clean": clean, "adversarial": {i: i < 29 for i in range(n)}}]
    comps = compare_robustness(outcomes)
    assert len(comps) == 2 and all(c["reference"] == "ptq-int8" for c in comps)
    found = findings_from(comps)
    assert len(found) == 1  # one point of difference at eps 0.2 is within its interval
    text = found[0]["text"]
    assert text.startswith("pqat lowers PGD robust accuracy") and "by 20 points" in text
    assert "against ptq-int8" in text and text.endswith("2 comparisons")


def test_report_html_is_self_contained_and_matches_summary(written):
    from fixtures_report import check_report_figures

    summary = check_report_figures(written)
    for name, rows in summary["tables"].items():
        path = written / "tables" / f"{name}.csv"
        assert path.exists() == bool(rows), name
        if rows:
            with open(path, newline="") as f:
                assert len(list(csv.DictReader(f))) == len(rows)


def test_report_renders_in_headless_chromium(written, tmp_path):
    from fixtures_report import render_in_chromium

    render_in_chromium(written / "report.html", tmp_path)


def _poison_row(artifact, asr, clean, n=60, **more):
    from edgeattack.results import wilson_interval

    k = round(asr * 20)
    return {"artifact": artifact, "board": "emu-tflm", "n": n, "clean_accuracy": clean,
            "clean_accuracy_ci95": wilson_interval(round(clean * n), n), "attack_success_rate": k / 20,
            "attack_success_rate_ci95": wilson_interval(k, 20), **more}


def test_poisoning_figure_follows_what_the_rows_hold(tmp_path):
    """Poison cells as the poisoning study writes them (rows given here, not trained: this checks
    the report, not poisoning): two rates of the same kind give a curve over the rate, the
    pruning-and-poisoning rows curves over epochs; each is drawn (non-blank) with exactly those rows."""
    import io

    from PIL import Image

    from edgeattack.atomic import write_json
    from edgeattack.report import build_summary
    from edgeattack.report.figures import draw
    from fixtures_report import RunBuilder

    run = RunBuilder(tmp_path / "run")
    for rate, rows in ((0.1, [_poison_row("float", 0.2, 0.9), _poison_row("ptq-int8", 0.25, 0.88)]),
                       (0.3, [_poison_row("float", 0.6, 0.85), _poison_row("ptq-int8", 0.7, 0.84)]),
                       (0.5, [_poison_row("ptq-int8", a, c, prune_ratio=r, epoch=e)
                              for r in (0.0, 0.5) for e, a, c in ((0, 0.0, 0.9), (1, 0.4, 0.8), (2, 0.7, 0.8))])):
        _, d, done = run.cell("poison", "poisoning", {"board": "emu-tflm", "attack": f"rate-{rate}"})
        write_json(d / "poison.json", {"command": "poison", "attack": "flip-targeted",
                                       "params": {"kind": "flip-targeted", "rate": rate}, "metrics": rows})
        done({"summary": "poison.json"})
    s = build_summary(run.root)
    fig = next(f for f in s["figures"] if f["id"] == "poisoning")
    panels = fig["data"]["panels"]
    assert sorted(p["type"] for p in panels) == ["bars", "bars", "epochs", "rates"]
    epochs = next(p for p in panels if p["type"] == "epochs")
    assert [(x["prune_ratio"], x["x"]) for x in epochs["series"]] == [(0.0, [0, 1, 2]), (0.5, [0, 1, 2])]
    assert [p["attack_success_rate"] for p in epochs["series"][1]["points"]] == [0.0, 0.4, 0.7]
    rates = next(p for p in panels if p["type"] == "rates")
    assert [(x["artifact"], x["x"], [p["attack_success_rate"] for p in x["points"]]) for x in rates["series"]] == [
        ("float", [0.1, 0.3], [0.2, 0.6]), ("ptq-int8", [0.1, 0.3], [0.25, 0.7])]
    img = np.asarray(Image.open(io.BytesIO(draw(fig))).convert("RGB"))
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 10 and img.std() > 5


@pytest.mark.parametrize("layout", ["missing", "empty", "foreign", "no-cells"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, layout, capsys):
    # in-process (edgeattack.cli.main, what the console script calls); `written` runs the command
    run = tmp_path / "run"
    if layout != "missing":
        run.mkdir()
    if layout == "foreign":
        (run / "notes.txt").write_text("not a run\n")
    if layout == "no-cells":
        (run / "study.yaml").write_text("name: x\n")
        (run / "cells").mkdir()
    before = sorted(p.name for p in run.rglob("*")) if run.exists() else None
    from fixtures_attacks import cli_here

    code, _, err = cli_here(capsys, "report", run)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(run) in lines[0], err
    assert (sorted(p.name for p in run.rglob("*")) if run.exists() else None) == before
