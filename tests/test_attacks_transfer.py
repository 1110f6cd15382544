"""`edgeattack transfer`: craft on each source, judge each int8 target on emu-tflm (or its surrogate),
a matrix of attack success rates with Wilson intervals (transfer.json and transfer.csv)."""
from __future__ import annotations

import csv
import json

import pytest

from conftest import run_cli
from fixtures_attacks import cli_here
from fixtures_compress import compress_digits

pytest_plugins = ["fixtures_compress"]

N = 40


@pytest.fixture(scope="module")
def three_models(digits_model, digits_ptq, tmp_path_factory):
    """ptq-int8, prune and pqat int8 digits models, in folders named by their recipe."""
    prune = compress_digits(digits_model, tmp_path_factory, "prune", "prune")
    pqat = compress_digits(digits_model, tmp_path_factory, "pqat", "pqat")
    return [digits_ptq.out / "model.tflite", prune.out / "model.tflite", pqat.out / "model.tflite"]


@pytest.fixture(scope="module")
def board_run(three_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer") / "t"
    models = ",".join(map(str, three_models))
    proc = run_cli("transfer", "fgsm", "--sources", models, "--targets", models, "--board", "emu-tflm",
                   "-n", N, "--eps", "0.1,0.2", "--seed", "0", "-o", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_three_by_three_matrix_on_emu_tflm(board_run, three_models):
    s = json.loads((board_run / "transfer.json").read_text())
    assert s["schema"] == 1 and s["command"] == "transfer" and s["attack"] == "fgsm"
    assert s["target"] == {"kind": "board", "model_sha256": None, "board": "emu-tflm"}
    names = ["ptq", "prune", "pqat"]  # folder names (the fixtures' recipe folders)
    assert [x["name"] for x in s["sources"]] == names and [t["name"] for t in s["targets"]] == names
    assert all(x["kind"] == "surrogate" for x in s["sources"])  # int8 sources: their surrogates craft
    rows = s["metrics"]
    assert len(rows) == 3 * 3 * 2
    assert {(r["source"], r["target"], r["eps"]) for r in rows} == {
        (a, b, e) for a in names for b in names for e in (0.1, 0.2)}
    for r in rows:
        lo, hi = r["attack_success_rate_ci95"]
        assert 0 <= lo <= r["attack_success_rate"] <= hi <= 1
        assert r["attack_success_rate"] == r["successes"] / r["clean_correct"]
    by = {(r["source"], r["target"], r["eps"]): r["attack_success_rate"] for r in rows}
    for a in names:
        for b in names:
            assert by[(a, b, 0.2)] >= by[(a, b, 0.1)]  # FGSM: a larger step succeeds at least as often
    # Every judgement is a device inference: clean once, then each source's examples per eps.
    for t in s["targets"]:
        assert t["board"] == "emu-tflm"
        assert t["device_inferences"] == t["queries"] == N + 3 * 2 * N
        assert t["model_sha256"] in {x["model_sha256"] for x in s["sources"]}

    with open(board_run / "transfer.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["eps", "source"] + [c for t in names for c in (t, f"{t}_ci95_lo", f"{t}_ci95_hi")]
    assert len(table) == 1 + 2 * 3
    for line in table[1:]:
        eps, src = float(line[0]), line[1]
        for j, t in enumerate(names):
            assert float(line[2 + 3 * j]) == pytest.approx(by[(src, t, eps)], abs=1e-4)


def test_surrogate_judges_like_the_board(board_run, three_models, digits_model):
    """Without a board each target's surrogate judges; on these models it agrees with TFLM."""
    from edgeattack.attacks.transfer import transfer
    from edgeattack.datasets import load_dataset

    ds = load_dataset("digits")
    res = transfer("fgsm", three_models, three_models, ds.x_test[:N], ds.y_test[:N], epsilons=[0.1, 0.2])
    board = {(r["source"], r["target"], r["eps"]): r["successes"]
             for r in json.loads((board_run / "transfer.json").read_text())["metrics"]}
    assert all(t["kind"] == "surrogate" for t in res.targets)
    for r in res.rows:
        assert abs(r["successes"] - board[(r["source"], r["target"], r["eps"])]) <= 1


def test_float_source_and_black_box_crafting(digits_model, three_models):
    """A float .keras source, and a black-box attack crafting on it (queries to the host model)."""
    from edgeattack.attacks.transfer import transfer
    from edgeattack.datasets import load_dataset

    ds = load_dataset("digits")
    res = transfer("square", [digits_model], three_models[:1], ds.x_test[:20], ds.y_test[:20],
                   epsilons=[0.2], params={"budget": 50})
    assert res.sources[0]["kind"] == "float" and len(res.rows) == 1
    assert res.rows[0]["attack_success_rate"] > 0.3


@pytest.mark.parametrize("args, message", [
    (["--sources", "{m}", "--targets", "{k}"], "give an int8 .tflite"),
    (["--sources", "missing.keras", "--targets", "{m}"], "missing.keras does not exist"),
    (["--sources", "{m}", "--targets", "{m}", "--set", "budget=5"], "unknown parameter 'budget'"),
    (["--sources", "{m}", "--targets", "{m}", "--eps", "0"], "must be > 0"),
    (["--sources", "{m}", "--targets", "{m}", "-n", "100000"], "the test split of digits has 360"),
    (["--sources", "{m}", "--targets", "{m},{m}", "--board", "emu-tflm", "--port",
      "socket://127.0.0.1:9"], "--port names one running device"),
])
def test_bad_input_is_one_line(three_models, digits_model, tmp_path, capsys, args, message):
    args = [a.format(m=three_models[0], k=digits_model) for a in args]
    if "-n" not in args:
        args += ["-n", "5"]
    code, _, err = cli_here(capsys, "transfer", "fgsm", *args, "-o", tmp_path / "t")
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("flags", [
    ["--eps", "0.1,x"], ["--eps", ","], ["--range", "0,inf"], ["--range", "1"],
    ["--set", "steps"], ["--set", "nosuch=1"], ["--budget", "5"], ["--norm", "l2", "--set", "norm=l0"],
])
def test_flags_parse_like_attack(tmp_path, capsys, flags):
    """transfer and attack share one parser per flag: the same bad value gives the same error
    (flags are refused before any model is read, so an empty file stands in for one)."""
    m = tmp_path / "m.tflite"
    m.write_bytes(b"")
    lines = []
    for argv in (["transfer", "fgsm", "--sources", m, "--targets", m],
                 ["attack", "fgsm", "--model", m]):
        code, _, err = cli_here(capsys, *argv, *flags, "-n", "5", "-o", tmp_path / argv[0])
        assert code == 2, err
        lines.append(err.strip().splitlines())
    assert len(lines[0]) == 1 and lines[0] == lines[1]


def test_existing_output_needs_force(board_run, three_models, capsys):
    model = str(three_models[0])
    code, _, err = cli_here(capsys, "transfer", "fgsm", "--sources", model, "--targets", model, "-n", "5",
                            "-o", board_run)
    assert code == 2 and "--force" in err
    assert json.loads((board_run / "transfer.json").read_text())["n"] == N
