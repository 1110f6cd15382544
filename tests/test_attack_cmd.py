"""`edgeattack attack`: white-box on a float model, on the int8 surrogate judged on emu-tflm, black-box
Square through emu-tflm, a .tflite-only model, and one-line refusals of bad input.

Models are tiny and trained once for the module; n <= 20 and budgets <= 100. One flow (white-box
on the float model) runs the installed CLI in a subprocess, end to end; the other flows and bad
input go through edgeattack.cli.main in this process (the same code path, without paying a
TensorFlow import per case)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import run_cli
from fixtures_attacks import cli_here

N = 20


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """float.keras (8x8x1 digits, softmax), its int8 .tflite without a manifest (a "foreign"
    model), a supported int8 model of another input shape, and an int8 model with TANH (which the
    surrogate does not reproduce)."""
    import edgeattack.tfutil as tu
    from edgeattack.compression.convert import to_tflite
    from edgeattack.datasets import load_dataset

    k = tu.keras()
    tu.set_seed(0)
    ds = load_dataset("digits")
    root = tmp_path_factory.mktemp("attack_cmd")
    model = k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Conv2D(8, 3, activation="relu"),
                          k.layers.Flatten(), k.layers.Dense(10), k.layers.Softmax()])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(ds.x_train, ds.y_train, epochs=8, batch_size=32, verbose=0)
    model.save(root / "float.keras")
    calib = ds.x_train[:64]
    (root / "int8.tflite").write_bytes(to_tflite(model, "int8", calib))

    def small(layers, shape, name):
        inp = k.Input(shape)
        x = inp
        for layer in layers:
            x = layer(x)
        path = root / name
        data = np.random.default_rng(0).random((16, *shape), dtype=np.float32)
        path.write_bytes(to_tflite(k.Model(inp, x), "int8", data))
        return path

    other = small([k.layers.Dense(4)], (6,), "other_shape.tflite")
    tanh = small([k.layers.Flatten(), k.layers.Dense(8, activation="tanh"), k.layers.Dense(10)],
                 (8, 8, 1), "tanh.tflite")
    # A dataset .npz whose labels go beyond the model's 10 classes.
    y_bad = ds.y_test.copy()
    y_bad[3] = 12
    np.savez(root / "bad_labels.npz", x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test,
             y_test=y_bad)
    return {"float": root / "float.keras", "int8": root / "int8.tflite", "other": other, "tanh": tanh,
            "bad_labels": root / "bad_labels.npz", "root": root}


_cli = cli_here


def _rows(summary):
    return {r["eps"]: r for r in summary["metrics"]}


def test_whitebox_on_float_judged_by_float(models, tmp_path, capsys):
    from edgeattack.attacks.io import load_adversarial

    out = tmp_path / "run"
    proc = run_cli("attack", "pgd", "--model", models["float"], "--eps", "0.05,0.2", "-n", N,
                   "--set", "steps=10", "--set", "random_start=false", "--seed", "3", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["adversarial.npz", "attack.json"]
    s = json.loads((out / "attack.json").read_text())
    assert (s["schema"], s["command"], s["attack"], s["seed"], s["norm"], s["n"]) == (1, "attack", "pgd", 3,
                                                                                       "linf", N)
    assert s["params"]["steps"] == 10 and s["params"]["random_start"] is False
    assert s["target"] == {"kind": "float", "model_sha256": None, "board": None}
    assert s["data_range"] == [0.0, 1.0]
    from edgeattack.fileid import sha256_file

    assert s["source_model_sha256"] == sha256_file(models["float"])
    adv = load_adversarial(out / "adversarial.npz")
    assert adv["x_adv"].shape == (2, N, 8, 8, 1) and list(adv["eps"]) == [0.05, 0.2]
    assert list(adv["ids"]) == list(range(N)) and adv["meta"]["seed"] == 3
    assert np.abs(adv["x_adv"] - adv["x"][None]).max() <= 0.2 + 1e-6
    for e, eps in enumerate((0.05, 0.2)):
        r = _rows(s)[eps]
        assert r["successes"] == int(adv["success"][e].sum())
        lo, hi = r["attack_success_rate_ci95"]
        assert lo <= r["attack_success_rate"] <= hi and "adversarial_accuracy_ci95" in r
    assert _rows(s)[0.2]["attack_success_rate"] > _rows(s)[0.05]["attack_success_rate"]

    # --seed reproduces the examples (in-process this time: the same function behind the CLI)
    again = tmp_path / "again.npz"
    code, _, err = _cli(capsys, "attack", "pgd", "--model", models["float"], "--eps", "0.05,0.2", "-n",
                        N, "--set", "steps=10", "--set", "random_start=false", "--seed", "3", "-o", again)
    assert code == 0, err
    assert np.array_equal(load_adversarial(again)["x_adv"], adv["x_adv"])
    assert (tmp_path / "attack.json").is_file()  # beside the .npz


def test_whitebox_on_the_surrogate_judged_on_emu_tflm(models, tmp_path, capsys):
    from edgeattack.attacks.io import load_adversarial
    from edgeattack.fileid import sha256_file
    from edgeattack.results import read_results

    out = tmp_path / "adv.npz"
    code, _, err = _cli(capsys, "attack", "pgd", "--model", models["float"], "--target", models["int8"],
                        "--board", "emu-tflm", "--eps", "0.1,0.2", "-n", N, "--set", "steps=10",
                        "--range", "0,1", "-o", out)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adv.npz", "attack.json", "results.jsonl",
                                                          "session.json"]
    sha = sha256_file(models["int8"])
    s = json.loads((tmp_path / "attack.json").read_text())
    assert s["target"] == {"kind": "board", "model_sha256": sha, "board": "emu-tflm"}
    assert s["crafting_target"]["kind"] == "surrogate"
    adv = load_adversarial(out)
    assert adv["meta"]["target"]["kind"] == "surrogate"

    recs = read_results(tmp_path / "results.jsonl")
    assert len(recs) == N + 2 * N
    assert {r["source"] for r in recs} == {"clean", "pgd"}
    assert all(r["model_sha256"] == sha and r["board"] == "emu-tflm" and r["schema"] == 1 for r in recs)
    clean = {r["id"]: r["pred"] for r in recs if r["source"] == "clean"}
    for e, eps in enumerate((0.1, 0.2)):
        r = _rows(s)[eps]
        assert r["device_inferences"] == len(recs) == r["evaluation_queries"]
        judged = [rec for rec in recs if rec["source"] == "pgd" and rec["eps"] == eps]
        succ = sum(rec["pred"] != rec["label"] and clean[rec["id"]] == rec["label"] for rec in judged)
        assert r["successes"] == succ
        # the surrogate is bit-exact with TFLM: what it judged while crafting, the board confirms
        assert succ == int(adv["success"][e].sum())
    session = json.loads((tmp_path / "session.json").read_text())
    assert session["device"]["inferences_run"] == len(recs)
    assert session["inputs"][0]["path"] == str(out)


def test_blackbox_square_through_emu_tflm(models, tmp_path, capsys):
    from edgeattack.attacks.io import load_adversarial
    from edgeattack.results import read_results

    out = tmp_path / "run"
    code, stdout, err = _cli(capsys, "attack", "square", "--board", "emu-tflm", "--model", models["int8"],
                             "--budget", 60, "--eps", "0.2", "-n", N, "--range", "0,1", "-o", out, "--json")
    assert code == 0, err
    s = json.loads(stdout)
    assert s == json.loads((out / "attack.json").read_text())
    assert s["target"]["kind"] == "board" and s["crafting_target"]["kind"] == "board"
    r = s["metrics"][0]
    adv = load_adversarial(out / "adversarial.npz")
    q = adv["queries"][0]
    assert r["attack_queries"] == r["queries_total"] == int(q.sum()) and q.max() <= 60
    assert r["queries_median"] == float(np.median(q)) and r["queries_mean"] == pytest.approx(q.mean())
    # every inference the board ran is a query the command reported
    assert r["device_inferences"] == r["attack_queries"] + r["evaluation_queries"]
    recs = read_results(out / "results.jsonl")
    assert r["evaluation_queries"] == 2 * len(recs)  # the attack's own judging, then the session's
    for key in ("wire_bytes_per_query", "device_time_s", "energy_j", "energy_source"):
        assert key in r
    assert r["wire_bytes_per_query"] > 0 and r["attack_success_rate"] > 0.3
    by_id = {rec["id"]: rec for rec in recs if rec["source"] == "square"}
    for i in range(N):
        assert by_id[i]["queries"] == int(q[i])
        assert by_id[i]["wire_bytes"] == pytest.approx(float(adv["wire_bytes"][0][i]))


def test_tflite_only_model_warns_about_its_range(models, tmp_path, capsys, caplog):
    out = tmp_path / "fgsm.npz"
    code, _, err = _cli(capsys, "attack", "fgsm", "--model", models["int8"], "--eps", "0.1", "-n", 10, "-o", out)
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and r.name.startswith("edgeattack")]
    assert len(warnings) == 1 and "input quantization" in warnings[0] and "--range" in warnings[0]
    s = json.loads((tmp_path / "attack.json").read_text())
    assert s["target"]["kind"] == "surrogate" and s["data_range_from"] == "input quantization (default)"


@pytest.mark.parametrize("argv, message, code", [
    (["pgd", "--model", "{float}", "--eps", "0"], "must be > 0", 2),
    (["pgd", "--model", "{float}", "--eps", "-0.1"], "must be > 0", 2),
    (["pgd", "--model", "{float}", "--eps", "1.5"], "beyond the data range", 2),
    (["nosuch", "--model", "{float}"], "unknown attack 'nosuch'", 2),
    (["pgd", "--model", "{float}", "--set", "nosuch=1"], "unknown parameter 'nosuch'", 2),
    (["pgd", "--model", "{float}", "--target", "{other}"], "takes inputs of shape", 2),
    (["pgd", "--model", "{tanh}", "--range", "0,1"], "TANH", 2),
    (["square", "--model", "{int8}", "--board", "emu-tflm", "--port", "socket://127.0.0.1:{port}"],
     "Connection refused", 1),
    (["square", "--model", "{int8}", "--budget", "0"], "budget", 2),
    (["pgd", "--model", "{float}", "--budget", "5"], "not a black-box attack", 2),
    (["pgd", "--model", "{float}", "-n", "100000"], "the test split of digits has 360", 2),
    (["pgd", "--model", "{float}", "--dataset", "{bad_labels}"], "label 12 is outside the model's 10", 2),
    (["pgd", "--model", "{float}", "--board", "emu-tflm"], "give --target", 2),
])
def test_bad_input_is_one_line(models, tmp_path, capsys, argv, message, code):
    from edgeattack.link.transport import free_local_port

    fmt = {k: str(v) for k, v in models.items()} | {"port": free_local_port()}
    argv = [a.format(**fmt) for a in argv]
    if "-n" not in argv:
        argv += ["-n", "5"]
    out = tmp_path / "out"
    got, _, err = _cli(capsys, "attack", *argv, "-o", out)
    lines = err.strip().splitlines()
    assert got == code and len(lines) == 1 and message in lines[0], err
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written


def test_existing_output_needs_force(models, tmp_path, capsys):
    out = tmp_path / "adv.npz"
    out.write_bytes(b"mine")
    args = ["attack", "fgsm", "--model", models["float"], "-n", 5, "-o", out]
    code, _, err = _cli(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--force" in err
    assert out.read_bytes() == b"mine" and not (tmp_path / "attack.json").exists()
    # attack.json beside the .npz is an output too
    out.unlink()
    (tmp_path / "attack.json").write_text("{}")
    code, _, err = _cli(capsys, *args)
    assert code == 2 and "attack.json" in err and not out.exists()
    code, _, err = _cli(capsys, *args, "--force")
    assert code == 0, err
    assert json.loads((tmp_path / "attack.json").read_text())["attack"] == "fgsm" and out.is_file()
    shutil.rmtree(tmp_path)


def test_unbounded_epsilon_is_inf_in_the_npz_and_null_in_json(models, tmp_path, capsys):
    """A minimization attack run with --eps none: eps inf in the .npz, null in attack.json, and the
    session reads it back as None (a record never holds a bare Infinity)."""
    from edgeattack.attacks.io import load_adversarial
    from edgeattack.session import load_adversarial as session_load

    out = tmp_path / "df.npz"
    code, _, err = _cli(capsys, "attack", "deepfool", "--model", models["float"], "--eps", "none,0.5",
                        "-n", 10, "-o", out)
    assert code == 0, err
    assert json.loads((tmp_path / "attack.json").read_text())["metrics"][0]["eps"] is None
    adv = load_adversarial(out)
    assert np.isposinf(adv["eps"][0]) and adv["eps"][1] == 0.5 and adv["meta"]["unbounded"] == [True, False]
    assert session_load(out).eps == [None, 0.5]


def test_load_adversarial_refuses_a_file_without_its_arrays(tmp_path):
    from edgeattack.attacks.io import load_adversarial
    from edgeattack.errors import UsageError

    np.savez(tmp_path / "x.npz", x=np.zeros((2, 3)))
    with pytest.raises(UsageError) as e:
        load_adversarial(tmp_path / "x.npz")
    assert "missing key 'x_adv'" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "p.npz").write_bytes(b"not a zip")
    with pytest.raises(UsageError):
        load_adversarial(tmp_path / "p.npz")


# --energy and --pace-baudrate on a board (as `session` has them) -----------------------------------

def test_blackbox_energy_modes_reach_rows_and_records(models, tmp_path, capsys):
    """--energy estimated: every query's energy from the profile's cited constants, per adversarial
    example in the rows and per record; off: none anywhere; measured without a meter: one line."""
    from edgeattack.results import read_results
    from test_session_energy import NUCLEO_ESTIMATE, board_file

    board = board_file(tmp_path, NUCLEO_ESTIMATE)
    power = NUCLEO_ESTIMATE["estimate"]["active_power_w"]
    common = ["attack", "square", "--board", board, "--model", models["int8"], "--budget", 20, "--eps", "0.2",
              "-n", 4, "--range", "0,1", "--json"]
    code, out, err = _cli(capsys, *common, "--energy", "estimated", "-o", tmp_path / "est")
    assert code in (0, None), err
    r = json.loads(out)["metrics"][0]
    assert r["energy_source"] == "estimated" and r["energy_j"] > 0
    assert r["energy_j"] == pytest.approx(r["device_time_s"] * power, rel=1e-6)  # median of the same sums
    recs = read_results(tmp_path / "est" / "results.jsonl")
    assert recs and all(x["energy_source"] == "estimated" for x in recs)
    assert json.loads((tmp_path / "est" / "session.json").read_text())["settings"]["energy"] == "estimated"

    code, out, err = _cli(capsys, *common, "--energy", "off", "-o", tmp_path / "off")
    assert code in (0, None), err
    r = json.loads(out)["metrics"][0]
    assert r["energy_j"] is None and r["energy_source"] is None and r["device_time_s"] > 0
    assert all(x["energy_j"] is None for x in read_results(tmp_path / "off" / "results.jsonl"))

    code, out, err = _cli(capsys, *common[:-1], "--energy", "measured", "-o", tmp_path / "m")
    assert code == 2 and err.strip().count("\n") == 0 and "has no energy meter" in err, err
    assert not (tmp_path / "m").exists()


def test_blackbox_measured_energy_refuses_windows_that_miss_queries(models, tmp_path):
    """With a meter, the crafting queries are measured one window each (test_session_energy has the
    known-answer test); a meter that saw fewer windows than queries sent (here a stand-in stream of
    a fixed 6 windows) fails the command with the meter's error and nothing is written."""
    from edgeattack.attacks.run import run_attack
    from edgeattack.energy import MeterError
    from test_session_energy import board_file

    board = board_file(tmp_path, {"meter": "standin", "options": {
        "windows": 6, "power_w": [0.05], "durations_s": [0.2], "stall_s": 600}})
    with pytest.raises(MeterError, match="missing timestamp event: 6 windows seen"):
        run_attack("square", models["int8"], epsilons=[0.2], board=str(board), budget=10, n=3,
                   data_range=(0, 1), out=tmp_path / "r", energy="measured", progress=False)
    assert not (tmp_path / "r").exists()


def test_blackbox_pace_baudrate_paces_the_crafting_link(models, tmp_path, capsys):
    baud = 38400
    code, out, err = _cli(capsys, "attack", "square", "--board", "emu-tflm", "--model", models["int8"], "--budget",
                          10, "--eps", "0.2", "-n", 3, "--range", "0,1", "--pace-baudrate", baud,
                          "--json", "-o", tmp_path / "r")
    assert code in (0, None), err
    r = json.loads(out)["metrics"][0]
    # both directions are paced at 10 bit times per byte; they overlap, so at least half the bytes
    line_s = r["wire_bytes_per_query"] * r["queries_total"] / 2 * 10 / baud
    assert r["wall_time_s"] >= 0.9 * line_s > 0.05, (r["wall_time_s"], line_s)
    code, out, err = _cli(capsys, "attack", "square", "--board", "emu-tflm", "--model", models["int8"],
                          "--pace-baudrate", 0, "-o", tmp_path / "z")
    assert code == 2 and "--pace-baudrate 0" in err and not (tmp_path / "z").exists()
