"""`edgeattack evaluate`: evaluate.json's shape and its robust-accuracy arithmetic, the masking check
on a deliberately masked model (flags) and on a plain ptq-int8 cnn-digits (none), each sign's rule at
its boundary on synthetic counts, and one-line refusals of bad input.

The plain model is the shared ptq-int8 digits artifact (fixtures_compress); the masked one puts a
frozen, very steep 1x1 ReLU6 ramp before cnn-digits: it binarizes each pixel at 0.5 and its gradient
is zero everywhere but in a 1% band, which the int8 surrogate reproduces exactly, so white-box PGD is
blind while Square through the device is not. n = 100: with fewer samples even a perfect unbounded
PGD cannot show a success interval above 0.95 (the rule needs about 73 clean-correct samples)."""
from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from edgeattack.defenses import masking
from edgeattack.results import wilson_interval

pytest_plugins = ["fixtures_compress"]

N = 100
OFFSET = 200  # the plain model is evaluated on test samples 200..299 (`--offset`)
# PGD keeps its defaults (40 steps of eps/30): fewer steps of that size cannot reach the corners of
# the epsilon ball, and FGSM then rightly beats it (one-step-stronger).
FAST = ["--set", "apgd-ce.steps=20", "--budget", "100"]


def _cli(capsys, *args):
    from edgeattack.cli import main

    old = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
    finally:
        signal.signal(signal.SIGTERM, old)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    """The masked int8 model (.tflite) and its float parent (.keras)."""
    import edgeattack.tfutil as tu
    from edgeattack.compression.convert import to_tflite
    from edgeattack.datasets import load_dataset
    from edgeattack.train import compile_for_classification
    from edgeattack.zoo import build_model

    k = tu.keras()
    tu.set_seed(0)
    ds = load_dataset("digits")
    steep = 600.0  # relu6(600 (x - 0.5)): 0 below 0.5, 6 above 0.51
    ramp = k.layers.Conv2D(1, 1, activation="relu6", trainable=False,
                           kernel_initializer=k.initializers.Constant(steep),
                           bias_initializer=k.initializers.Constant(-0.5 * steep))
    inp = k.Input(ds.input_shape)
    model = k.Model(inp, build_model("cnn-digits", ds.input_shape, ds.classes)(ramp(inp)))
    compile_for_classification(model)
    model.fit(ds.x_train, ds.y_train, epochs=8, batch_size=32, verbose=0)
    root = tmp_path_factory.mktemp("masked")
    model.save(root / "masked.keras")
    (root / "masked.tflite").write_bytes(to_tflite(model, "int8", ds.x_train[:64]))
    return root / "masked.tflite", root / "masked.keras"


def _by(summary):
    return {(r["attack"], r["eps"]): r for r in summary["metrics"]}


def test_plain_ptq_int8_shape_arithmetic_and_no_flags(digits_ptq, tmp_path, capsys):
    tflite = digits_ptq.out / "model.tflite"
    out = tmp_path / "eval"
    code, stdout, err = _cli(capsys, "evaluate", tflite, "--board", "emu-tflm", "--eps", "0.1,0.2",
                             "-n", N, "--offset", OFFSET, *FAST, "-o", out, "--json")
    assert code == 0, err
    s = json.loads(stdout)
    assert s == json.loads((out / "evaluate.json").read_text())
    # the shared header (CONVENTIONS "Files")
    for key in ("schema", "command", "attack", "params", "seed", "norm", "source_model_sha256",
                "target", "n", "tool_version", "metrics", "masking_flags"):
        assert key in s
    assert s["command"] == "evaluate" and s["n"] == N and s["target"]["board"] == "emu-tflm"
    assert s["offset"] == OFFSET
    assert s["float_model"] == str(digits_ptq.out / "model.keras")  # found through the manifest
    by = _by(s)
    attacks = ["pgd", "apgd-ce", "fgsm", "transfer", "square"]
    assert set(by) == {(a, e) for a in attacks + ["all"] for e in (0.1, 0.2)} | {("pgd-unbounded", 1.0)}
    assert s["params"]["apgd-ce"]["steps"] == 20 and s["params"]["square"]["budget"] == 100
    # every rate has its Wilson interval, computed from its counts
    for r in s["metrics"]:
        if r["attack"] == "all":
            assert r["robust_accuracy_ci95"] == wilson_interval(r["robust"], N)
        else:
            assert r["attack_success_rate_ci95"] == wilson_interval(r["successes"], r["clean_correct"])
    # robust accuracy over the set, recomputed from each attack's adversarial examples (the .npz
    # files) run through the int8 surrogate (bit-exact with emu-tflm's TFLM), is what the "all"
    # rows say, and never above any single attack's survivors
    from edgeattack.attacks.io import load_adversarial
    from edgeattack.attacks.targets import SurrogateTarget

    t = SurrogateTarget(tflite, data_range=(0.0, 1.0))
    adv = {a: load_adversarial(out / f"{a}.npz") for a in attacks}
    x, y = adv["pgd"]["x"], adv["pgd"]["y"]
    from edgeattack.datasets import load_dataset

    ds = load_dataset("digits")  # the samples from --offset on, and ids are test-split indices
    assert np.array_equal(x, ds.x_test[OFFSET:OFFSET + N]) and np.array_equal(y, ds.y_test[OFFSET:OFFSET + N])
    correct = t.predict(x) == y
    assert correct.sum() == round(s["clean_accuracy"] * N)
    assert s["clean_ids"] == [OFFSET + int(i) for i in np.flatnonzero(correct)]
    for e, eps in enumerate((0.1, 0.2)):
        row = by[("all", eps)]
        assert row["attacks"] == attacks and row["clean_correct"] == correct.sum()
        robust = correct.copy()
        for a in attacks:
            assert np.array_equal(adv[a]["x"], x) and adv[a]["x_adv"].shape[:2] == (2, N)
            robust &= t.predict(adv[a]["x_adv"][e]) == y
        assert row["robust"] == robust.sum() and row["robust_accuracy"] == robust.sum() / N
        assert row["robust_ids"] == [OFFSET + int(i) for i in np.flatnonzero(robust)]
        assert row["robust"] <= min(by[(a, eps)]["clean_correct"] - by[(a, eps)]["successes"]
                                    for a in attacks)
    # a plain model: success rises with epsilon, unbounded PGD fools every sample, no flag
    assert by[("pgd-unbounded", 1.0)]["attack_success_rate_ci95"][0] >= 0.95
    assert s["masking_flags"] == []
    # square's rows carry its cost per adversarial example (as attack.json's black-box rows do)
    sq = by[("square", 0.1)]
    assert sq["budget"] == 100 and sq["queries_total"] > 0 and sq["wire_bytes_per_query"] > 0
    assert sq["time_source"] == "host-wall" and sq["energy_source"] is None
    # one board for everything: every inference accounted for (clean + judging + square's queries)
    assert s["device_inferences"] > 4 * 2 * N


def test_masked_model_is_flagged(masked, tmp_path, capsys):
    tflite, keras_model = masked
    out = tmp_path / "eval"
    code, stdout, err = _cli(capsys, "evaluate", tflite, "--board", "emu-tflm", "--eps", "0.1,0.2",
                             "--model", keras_model, "--range", "0,1", "-n", N, *FAST, "-o", out,
                             "--json")
    assert code == 0, err
    s = json.loads(stdout)
    by = _by(s)
    assert s["clean_accuracy"] > 0.8
    flags = {f["sign"]: f["evidence"] for f in s["masking_flags"]}
    assert "blackbox-stronger" in flags, s["masking_flags"]
    case = flags["blackbox-stronger"]["cases"][0]
    assert case["attack"]["attack"] == "square"
    assert case["attack"]["attack_success_rate_ci95"][0] > case["pgd"]["attack_success_rate_ci95"][1]
    assert case["pgd"] == {k: by[("pgd", case["eps"])][k] for k in case["pgd"] if k != "attack"} | {"attack": "pgd"}
    assert "unbounded-fails" in flags


# the rules at their boundaries ---------------------------------------------------------------------

def _row(attack, eps, k, n):
    return {"attack": attack, "eps": eps, "successes": k, "clean_correct": n,
            "attack_success_rate": k / n, "attack_success_rate_ci95": wilson_interval(k, n)}


def _first_disjoint(k_low, n):
    """The smallest k whose Wilson interval over n lies strictly above that of k_low over n."""
    hi = wilson_interval(k_low, n)[1]
    return next(k for k in range(n + 1) if wilson_interval(k, n)[0] > hi)


@pytest.mark.parametrize("stronger, sign", [("square", "blackbox-stronger"),
                                            ("transfer", "blackbox-stronger"),
                                            ("fgsm", "one-step-stronger")])
def test_stronger_than_pgd_fires_only_when_disjoint(stronger, sign):
    n = 100
    k = _first_disjoint(20, n)
    fires = masking.masking_flags([_row("pgd", 0.1, 20, n), _row(stronger, 0.1, k, n)])
    assert [f["sign"] for f in fires] == [sign]
    assert fires[0]["evidence"]["cases"][0]["attack"]["successes"] == k
    assert masking.masking_flags([_row("pgd", 0.1, 20, n), _row(stronger, 0.1, k - 1, n)]) == []
    # compared at the same epsilon only
    assert masking.masking_flags([_row("pgd", 0.1, 20, n), _row(stronger, 0.2, n, n)]) == []


def test_unbounded_fails_below_095_lower_bound():
    n = next(m for m in range(1, 200) if wilson_interval(m, m)[0] >= 0.95)  # 73
    assert masking.unbounded_fails([_row("pgd-unbounded", 1.0, n, n)]) == []
    assert masking.unbounded_fails([_row("pgd-unbounded", 1.0, n - 1, n - 1)])  # too few samples
    big = 1000
    k = next(k for k in range(big + 1) if wilson_interval(k, big)[0] >= 0.95)
    assert masking.unbounded_fails([_row("pgd-unbounded", 1.0, k, big)]) == []
    assert [f["sign"] for f in masking.masking_flags([_row("pgd-unbounded", 1.0, k - 1, big)])] == \
        ["unbounded-fails"]


def test_eps_flat_overlap_and_095():
    n = 100
    k = _first_disjoint(30, n)
    flat = [_row("pgd", 0.05, 30, n), _row("pgd", 0.1, 60, n), _row("pgd", 0.2, k - 1, n)]
    assert [f["sign"] for f in masking.masking_flags(flat)] == ["eps-flat"]
    ev = masking.masking_flags(flat)[0]["evidence"]["cases"][0]
    assert ev["smallest"]["eps"] == 0.05 and ev["largest"]["eps"] == 0.2  # smallest vs largest only
    assert masking.eps_flat(flat[:2] + [_row("pgd", 0.2, k, n)]) == []  # rises: disjoint
    # overlapping but at or above 0.95 at the largest epsilon: saturated, not flat
    assert masking.eps_flat([_row("pgd", 0.05, 95, n), _row("pgd", 0.1, 95, n)]) == []
    assert masking.eps_flat([_row("pgd", 0.05, 94, n), _row("pgd", 0.1, 94, n)])
    assert masking.eps_flat([_row("pgd", 0.1, 10, n)]) == []  # one epsilon: no evidence either way


# bad input ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def unsupported(tmp_path_factory):
    """An int8 model with TANH, which the surrogate does not reproduce."""
    import edgeattack.tfutil as tu
    from edgeattack.compression.convert import to_tflite

    k = tu.keras()
    inp = k.Input((8, 8, 1))
    out = k.layers.Dense(10)(k.layers.Dense(8, activation="tanh")(k.layers.Flatten()(inp)))
    path = tmp_path_factory.mktemp("tanh") / "tanh.tflite"
    data = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    path.write_bytes(to_tflite(k.Model(inp, out), "int8", data))
    return path


@pytest.mark.parametrize("argv, message", [
    (["{tanh}", "--board", "emu-tflm", "--range", "0,1"], "needs gradients"),
    (["{plain}"], "give --board"),
    (["{plain}", "--board", "emu-tflm", "--eps", "0"], "must be > 0"),
    (["{plain}", "--board", "emu-tflm", "--eps", "x"], "--eps 'x'"),
    (["{plain}", "--board", "emu-tflm", "--eps", "2"], "beyond the data range"),
    (["{plain}", "--board", "emu-tflm", "--set", "pgd.nosuch=1"], "unknown parameter 'nosuch'"),
    (["{plain}", "--board", "emu-tflm", "--set", "cw.steps=1"], "ATTACK.NAME=VALUE"),
    (["{plain}", "--board", "emu-tflm", "--budget", "0"], "budget"),
    (["{plain}", "--board", "nosuchboard"], "nosuchboard"),
    (["{plain}", "--board", "emu-tflm", "--offset", "358"], "-n 5: the test split of digits has 2 samples from index 358"),
    (["{plain}", "--board", "emu-tflm", "--offset", "-1"], "--offset -1: the test split of digits has 360"),
    (["{plain}", "--board", "emu-tflm", "--energy", "measured"], "no energy meter"),
    # the float parent must be a float model (the message names no .tflite as an option)
    (["{plain}", "--board", "emu-tflm", "--model", "{plain}"], "--model {plain}: give a float .keras model"),
])
def test_bad_input_is_one_line(digits_ptq, unsupported, tmp_path, capsys, argv, message):
    fmt = {"plain": str(digits_ptq.out / "model.tflite"), "tanh": str(unsupported)}
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "evaluate", *[a.format(**fmt) for a in argv], "-n", 5, "-o", out)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message.format(**fmt) in lines[0], err
    assert "tflite" not in lines[0].split(": give ")[-1] or "--model" not in argv, err
    assert not out.exists()


def test_existing_output_needs_force(digits_ptq, tmp_path, capsys):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "mine.txt").write_text("mine")
    code, _, err = _cli(capsys, "evaluate", digits_ptq.out / "model.tflite", "--board", "emu-tflm",
                        "-n", 5, "-o", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--force" in err
    assert (out / "mine.txt").read_text() == "mine"


# the study part ----------------------------------------------------------------------------------

def test_chained_recipe_is_the_defense_then_the_chain():
    from edgeattack.compression.recipe import load_recipe
    from edgeattack.errors import UsageError
    from edgeattack.study.spec import chained, defense_recipes

    assert {"adv-train", "dq", "prune-channels"} <= set(defense_recipes())
    assert [s["step"] for s in chained("adv-train", "prune")["steps"]] == ["adv-train", "prune", "ptq-int8"]
    # dq is quantization-aware: only the conversion may follow it, so prune goes first; dq and
    # pqat (both quantization-aware) make no recipe
    assert [s["step"] for s in chained("dq", "prune")["steps"]] == ["prune", "dq", "ptq-int8"]
    assert chained("dq", "prune")["name"] == "prune+dq"
    with pytest.raises(UsageError, match="do not chain in either order"):
        chained("dq", "pqat")
    r = chained("prune-channels", "pqat")
    assert r["name"] == "prune-channels+pqat"
    assert [s["step"] for s in r["steps"]] == ["prune-channels", "pqat", "ptq-int8"]
    assert r["steps"][0]["ratio"] == 0.5  # the defense's own parameters kept
    assert load_recipe(r).name == "prune-channels+pqat"


def _defenses_study(tmp_path, **part):
    import yaml

    body = {"n": 8, "eps": [0.1, 0.2], "defenses": ["prune-channels"], "chains": [], "budget": 20,
            "latency_n": 3, "params": {"apgd-ce": {"steps": 5}}, **part}
    doc = {"recipes": ["ptq-int8"], "boards": ["emu-tflm"], "epochs": 2, "parts": {"defenses": body}}
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


@pytest.mark.parametrize("part, words", [
    ({"chains": ["nosuch"]}, ["parts.defenses.chains", "nosuch"]),
    ({"params": {"cw": {}}}, ["parts.defenses.params.cw"]),
    ({"params": {"pgd": {"stepz": 1}}}, ["parts.defenses.params.pgd", "stepz"]),
    ({"eps": [0]}, ["parts.defenses.eps"]),
])
def test_defenses_part_bad_input(tmp_path, part, words):
    from edgeattack.errors import UsageError
    from edgeattack.study.spec import load_study

    with pytest.raises(UsageError) as e:
        load_study(_defenses_study(tmp_path, **part))
    assert all(w in str(e.value) for w in words) and "\n" not in str(e.value)


# The part run in a study, its summary table and the report: tests/test_study.py (the ci study).


def test_builtin_defenses_study_grid_reaches_0_2():
    """The built-in `defenses` study judges at eps 0.05, 0.1 and 0.2 at full size: with its largest eps
    at 0.1 the eps-flat flag fired on robust models (docs/benchmarks.md, "Defenses (issue 12)")."""
    from edgeattack.study.spec import load_study

    part = load_study("defenses")["parts"]["defenses"]
    assert part["eps"] == [0.05, 0.1, 0.2]
    assert (part["n"], part["budget"], part["latency_n"]) == (200, 200, 20)
