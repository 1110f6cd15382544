"""`edgeattack study`: the ci study end to end on emu-tflm (the run folder contract), a rerun that
computes nothing, SIGKILL mid-run then --resume (the same summary, no finished cell recomputed), and
bad input as one line each with nothing written."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import run_cli

from edgeattack import children
from edgeattack.study.identity import run_identity

KINDS = {"train", "compress", "attack", "session", "blackbox", "transfer", "backdoor", "evaluate", "poison",
         "extract", "invert"}


def _cli():
    exe = Path(sys.executable).with_name("edgeattack")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edgeattack"]


def _cells(run: Path) -> dict:
    return {d.name: json.loads((d / "cell.json").read_text()) for d in (run / "cells").iterdir()
            if (d / "cell.json").exists()}


_REFERENCE: dict = {}


def ci_reference(tmp_path_factory):
    """The uninterrupted local run of the ci study, made once per test session (test_study_ray.py
    compares its Ray run with it too): (run folder, --json summary, stderr)."""
    if "run" not in _REFERENCE:
        run = tmp_path_factory.mktemp("study") / "ci"
        t0 = time.monotonic()
        proc = run_cli("study", "ci", "-o", run, "--workers", "2", "--json", timeout=600)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        summary["wall_s"] = time.monotonic() - t0
        _REFERENCE["run"] = (run, summary, proc.stderr)
    return _REFERENCE["run"]


@pytest.fixture
def ci_run(tmp_path_factory):
    return ci_reference(tmp_path_factory)


def test_ci_study_writes_the_contract_layout(ci_run):
    run, summary, stderr = ci_run
    study = yaml.safe_load((run / "study.yaml").read_text())
    # every default is filled in
    assert study["threads"] == 1 and study["energy"] == "auto" and study["width"] == 1.0
    assert set(study["parts"]) == {"evasion", "blackbox", "transfer", "backdoor", "defenses", "poisoning",
                                   "extraction", "inversion"}
    assert study["parts"]["blackbox"]["attacks"][0]["params"]["p_init"] == 0.3
    cells = _cells(run)
    assert len(cells) == summary["cells"] == summary["computed"] and not summary["failed"]
    assert {c["kind"] for c in cells.values()} == KINDS
    for h, c in cells.items():
        assert c["hash"] == h and c["status"] == "done" and c["schema"] == 1
        assert set(c) >= {"kind", "part", "labels", "params", "inputs", "host", "started", "finished", "outputs"}
        assert all(i in cells for i in c["inputs"])
        for rel in c["outputs"].values():
            assert (run / "cells" / h / rel).is_file(), (c["kind"], rel)
        if c.get("board"):
            assert c["labels"]["board"] == c["board"]
    sessions = [c for c in cells.values() if c["kind"] == "session"]
    assert {c["labels"]["crafted_on"] for c in sessions} == {"float", "surrogate"}
    for c in sessions + [c for c in cells.values() if c["kind"] == "blackbox"]:
        s = json.loads((run / "cells" / c["hash"] / "session.json").read_text())
        # one device inference per record sent, on the model the compress cell made
        assert s["device"]["inferences_run"] == s["device"]["records_sent"]
        compress = next(cells[i] for i in c["inputs"] if cells[i]["kind"] == "compress")
        assert s["model"]["sha256"] == compress["model_sha256"] == c["model_sha256"]
    bb = next(c for c in cells.values() if c["kind"] == "blackbox")
    att = json.loads((run / "cells" / bb["hash"] / "attack.json").read_text())
    assert att["metrics"][0]["budget"] == 30 and att["target"]["board"] == "emu-tflm"
    # the defenses part: ptq-int8 evaluated on the board, robust accuracy and flags in the report
    ev = next(c for c in cells.values() if c["kind"] == "evaluate")
    e = json.loads((run / "cells" / ev["hash"] / ev["outputs"]["summary"]).read_text())
    assert e["target"]["model_sha256"] == ev["model_sha256"] == next(
        cells[i] for i in ev["inputs"])["model_sha256"]
    assert e["params"]["apgd-ce"]["steps"] == 5 and e["params"]["square"]["budget"] == 20
    # the CLI ends by writing the report over the run folder
    assert summary["report"] and (run / "report.html").is_file() and (run / "summary.json").is_file()
    report = json.loads((run / "summary.json").read_text())
    (row,) = report["tables"]["defenses"]
    assert row["recipe"] == "ptq-int8" and row["board"] == "emu-tflm" and row["n"] == 8
    assert row["robust_accuracy@0.1"] == next(r["robust_accuracy"] for r in e["metrics"]
                                              if r["attack"] == "all" and r["eps"] == 0.1)
    assert row["tflite_bytes"] > 0 and row["latency_p50_s"] > 0 and row["time_source"] == "host-wall"
    # 8 samples cannot show unbounded PGD's success above 0.95: the flag says so, with its evidence
    assert "unbounded-fails" in row["masking_flags"]
    assert any(f["sign"] == "unbounded-fails" for f in report["tables"]["masking_flags"])
    assert "<h3>masking_flags</h3>" in (run / "report.html").read_text()
    # the progress display names cells and where they run
    assert "done, " in stderr and "@ worker-" in stderr


def test_poisoning_extraction_inversion_reach_the_report(ci_run):
    """The parts run the commands' own functions; their rows reach summary.json, tables/*.csv and
    the report, whose backdoor, poisoning, extraction and inversion figures are drawn (non-blank
    PNGs in report.html) from this real data and plot exactly its rows. (test_report.py renders a
    report in headless Chromium; the same embedding carries these figures.)"""
    from fixtures_report import check_report_figures, figures_required

    run, _, _ = ci_run
    cells = {c["kind"]: c for c in _cells(run).values()}
    poison = json.loads((run / "cells" / cells["poison"]["hash"] / "poison" / "poison.json").read_text())
    extract = json.loads((run / "cells" / cells["extract"]["hash"] / "extract" / "extract.json").read_text())
    invert = json.loads((run / "cells" / cells["invert"]["hash"] / "invert" / "invert.json").read_text())
    assert poison["command"] == "poison" and {r["artifact"] for r in poison["metrics"]} == {"float", "ptq-int8"}
    assert [r["queries"] for r in extract["metrics"]] == [50, 150]
    # extraction queried the compress cell's model on the board: every query an inference
    assert extract["target"]["model_sha256"] == cells["compress"]["model_sha256"] == cells["extract"]["model_sha256"]
    assert all(r["device_inferences"] == r["queries"] for r in extract["metrics"])
    assert {r["class"] for r in invert["metrics"] if r.get("route") == "device"} == {0, 1}

    summary = check_report_figures(run)
    figures = {f["id"]: f["data"] for f in summary["figures"]}
    assert figures_required(run) == {"backdoor", "poisoning", "extraction", "inversion"} <= set(figures)
    assert figures["extraction"]["series"][0]["x"] == [50, 150]
    (panel,) = figures["poisoning"]["panels"]
    assert panel["type"] == "bars" and panel["rate"] == 0.5 and panel["kind"] == "flip-targeted"
    assert [(b["artifact"], b["attack_success_rate"], b["lo"], b["clean_accuracy"]) for b in panel["bars"]] == [
        (r["artifact"], r["attack_success_rate"], r["attack_success_rate_ci95"][0], r["clean_accuracy"])
        for r in poison["metrics"]]
    (inv,) = figures["inversion"]["panels"]
    device = {r["class"]: r for r in invert["metrics"] if r["route"] == "device"}
    assert inv["routes"][0] == "device" and inv["classes"] == [0, 1]
    assert inv["ssim"][0] == [device[c]["ssim_to_class_mean"] for c in (0, 1)]
    assert inv["confidence"][0] == [device[c]["independent_model_confidence"] for c in (0, 1)]
    assert inv["curve"]["x"] == [p["queries"] for p in invert["curve"]]
    assert [r["fidelity"] for r in summary["tables"]["extraction"]] == [r["fidelity"] for r in extract["metrics"]]
    assert len(summary["tables"]["poisoning"]) == len(poison["metrics"])
    assert len(summary["tables"]["inversion"]) == len(invert["metrics"])
    for name in ("poisoning", "extraction", "inversion", "backdoor"):
        assert (run / "tables" / f"{name}.csv").is_file(), name


def test_rerun_with_resume_computes_nothing(ci_run):
    run, summary, _ = ci_run
    before = {h: c["started"] for h, c in _cells(run).items()}
    proc = run_cli("study", "ci", "-o", run, "--resume", "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert again["computed"] == 0 and again["cached"] == summary["cells"]
    assert {h: c["started"] for h, c in _cells(run).items()} == before
    # without --resume an existing run is refused in one line
    proc = run_cli("study", "ci", "-o", run, timeout=60)
    assert proc.returncode == 2 and "--resume" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_sigkill_then_resume_gives_the_same_summary(ci_run, tmp_path):
    ref_run, ref, _ = ci_run
    run = tmp_path / "killed"
    proc = children.spawn([*_cli(), "study", "ci", "-o", str(run), "--workers", "2", "--no-progress"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            done = [c for c in _cells(run).values() if c["status"] == "done"] if (run / "cells").is_dir() else []
            if len(done) >= 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the study ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        children.stop(proc)
    finished = {h: c for h, c in _cells(run).items() if c["status"] == "done"}
    assert 3 <= len(finished) < ref["cells"]
    out = run_cli("study", "ci", "-o", run, "--resume", "--json", timeout=600)
    assert out.returncode == 0, out.stderr
    resumed = json.loads(out.stdout)
    # only what was missing ran: the finished cells keep their cell.json (start times, counters)
    assert resumed["cached"] == len(finished) and resumed["computed"] == ref["cells"] - len(finished)
    after = _cells(run)
    for h, c in finished.items():
        assert after[h] == c
    assert run_identity(run) == run_identity(ref_run)


def test_energy_mode_is_in_the_hash_of_every_board_cell():
    from edgeattack.study.graph import build_cells
    from edgeattack.study.spec import load_study

    context = {"dataset_sha256": "0" * 64, "tool_version": "t", "firmware": {"emu-tflm": None}}
    by_mode = {m: {(c.kind, json.dumps(c.labels, sort_keys=True)): c
                   for c in build_cells(load_study("ci", energy=m), context)}
               for m in ("auto", "off")}
    for key, c in by_mode["auto"].items():
        other = by_mode["off"][key]
        if c.kind in ("session", "blackbox"):
            assert c.params["energy"] == "auto" and other.params["energy"] == "off"
            assert c.hash != other.hash, key
        elif c.kind in ("train", "compress"):
            assert c.hash == other.hash, key


def test_energy_flag_on_a_study_is_checked_against_its_boards(tmp_path):
    """--energy overrides the study file's before it is resolved (regression: the resolved study
    was resolved again, which the defenses part's derived fields refused)."""
    proc = run_cli("study", "ci", "-o", tmp_path / "r", "--energy", "measured", timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "energy" in lines[0] and "emu-tflm has no energy meter" in lines[0], lines
    assert not (tmp_path / "r").exists()
    from edgeattack.study.run import prepare_run

    study, _, _ = prepare_run("ci", tmp_path / "r", resume=False, force=False, energy="off")
    assert study["energy"] == "off" and study["parts"]["defenses"]["artifacts"]
    assert not (tmp_path / "r").exists()


def test_energy_mode_reaches_session_and_blackbox_cells(ci_run, tmp_path):
    """A session and a blackbox cell of the ci run, run again on a board whose profile has cited
    energy constants: --energy estimated puts energy in every record and row, off in none."""
    from edgeattack.results import read_results
    from edgeattack.study.execute import DevicePool, run_cell
    from test_session_energy import NUCLEO_ESTIMATE, board_file

    run, _, _ = ci_run
    cells = _cells(run)
    board = str(board_file(tmp_path, NUCLEO_ESTIMATE))
    pool = DevicePool()
    try:
        for kind in ("session", "blackbox"):
            c = next(c for c in cells.values() if c["kind"] == kind)
            inputs = {i: {"dir": run / "cells" / i, "outputs": cells[i]["outputs"],
                          "labels": cells[i]["labels"]} for i in c["inputs"]}
            for mode in ("estimated", "off"):
                spec = {**c, "params": {**c["params"], "board": board, "energy": mode}, "board": board}
                out = tmp_path / f"{kind}-{mode}"
                out.mkdir()
                run_cell(spec, out, inputs, pool)
                recs = read_results(out / "results.jsonl")
                session = json.loads((out / ("session.json")).read_text())
                assert recs and session["settings"]["energy"] == mode
                if mode == "estimated":
                    assert all(r["energy_source"] == "estimated" and r["energy_j"] > 0 for r in recs)
                else:
                    assert all(r["energy_j"] is None for r in recs)
                if kind == "blackbox":
                    row = json.loads((out / "attack.json").read_text())["metrics"][0]
                    assert row["energy_source"] == ("estimated" if mode == "estimated" else None)
    finally:
        pool.close()


def _study_file(tmp_path, **over) -> Path:
    doc = {"recipes": ["ptq-int8"], "boards": ["emu-tflm"], "epochs": 1,
           "parts": {"evasion": {"n": 5, "attacks": [{"attack": "fgsm", "eps": [0.1]}]}}}
    for k, v in over.items():
        doc[k] = v
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


@pytest.mark.parametrize("over, words", [
    ({"recipes": ["ptq-int9"]}, ["recipes", "ptq-int9"]),
    ({"boards": ["emu-nope"]}, ["boards", "emu-nope"]),
    ({"parts": {"evasion": {"attacks": [{"attack": "pgdx", "eps": [0.1]}]}}}, ["attacks[0]", "pgdx"]),
    ({"parts": {"evasion": {"attacks": [{"attack": "square", "eps": [0.1]}]}}}, ["blackbox"]),
    ({"parts": {"evasion": {"attacks": [{"attack": "fgsm"}]}}}, ["attacks[0].eps"]),
    ({"parts": {"stealing": {}}}, ["parts.stealing", "unknown part"]),
    ({"parts": {"poisoning": {"kind": "flop"}}}, ["parts.poisoning.kind", "flop"]),
    ({"parts": {"extraction": {"budgets": [0]}}}, ["parts.extraction.budgets"]),
    ({"parts": {"inversion": {"budget": 5}}}, ["parts.inversion.budget", "2 x probes"]),
    ({"epoch": 3}, ["epoch", "unknown field"]),
])
def test_bad_study_is_one_line_and_writes_nothing(tmp_path, over, words, capsys):
    # in-process (edgeattack.cli.main, what the console script calls): ten interpreter start-ups
    # saved; test_unknown_study_name_and_unreachable_ray runs the installed command itself
    from fixtures_attacks import cli_here

    out = tmp_path / "run"
    code, _, err = cli_here(capsys, "study", _study_file(tmp_path, **over), "-o", out)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "s.yaml" in lines[0] and all(w in lines[0] for w in words), lines
    assert not out.exists()


def test_unknown_study_name_and_unreachable_ray(tmp_path):
    proc = run_cli("study", "nosuch", "-o", tmp_path / "a", timeout=60)
    assert proc.returncode == 2 and "unknown study 'nosuch'" in proc.stderr
    from edgeattack.link.transport import free_local_port

    port = free_local_port()
    proc = run_cli("study", "ci", "-o", tmp_path / "b", "--ray", f"127.0.0.1:{port}", timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], lines
    assert "no Ray cluster reachable" in lines[0]
    assert not (tmp_path / "b" / "cells").exists()


def test_studies_lists_the_builtin_studies():
    proc = run_cli("studies", "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    names = {s["name"] for s in json.loads(proc.stdout)}
    assert {"ci", "default"} <= names
