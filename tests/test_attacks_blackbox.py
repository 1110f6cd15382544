"""Black-box attacks through a device (emu-tflm running the ptq-int8 digits model): Square and
HopSkipJump against ART's own attacks through the same device, exact query accounting against the
device's inference counter, labels-only and rounded-score outputs, gradient targets, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from fixtures_attacks import cli_here
from edgeattack.errors import DeviceError, UsageError

pytest_plugins = ["fixtures_compress"]

N = 50
BUDGET = 200


@pytest.fixture(scope="module")
def digits():
    from edgeattack.datasets import load_dataset

    ds = load_dataset("digits")
    return ds.x_test, ds.y_test


@pytest.fixture(scope="module")
def device(digits_ptq):
    """An emu-tflm board running the ptq-int8 digits model, as a DeviceTarget (started once)."""
    from edgeattack.attacks.targets import open_target

    t = open_target(digits_ptq.out / "model.tflite", board="emu-tflm")
    yield t
    t.close()


@pytest.fixture(scope="module")
def clean_correct(device, digits):
    """The first N test samples the device classifies correctly (ART and ours attack the same)."""
    x, y = digits
    ok = device.predict(x[:80]) == y[:80]
    return x[:80][ok][:N], y[:80][ok][:N]


def _inferences(device) -> int:
    return int(device.device.info()["inferences"])


def _half_width(k: int, n: int) -> float:
    """Half-width of the Wilson 95% interval of k/n."""
    from edgeattack.results import wilson_interval

    lo, hi = wilson_interval(k, n)
    return (hi - lo) / 2


@pytest.fixture(scope="module")
def bench():
    """tools/bench_blackbox.py: the comparisons with ART run here at reduced scale, and there at
    full scale for docs/benchmarks.md."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tools" / "bench_blackbox.py"
    spec = importlib.util.spec_from_file_location("bench_blackbox", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_square_beats_art_square_through_the_device_at_equal_queries(bench, device, clean_correct):
    x, y = clean_correct
    x, y = x[:30], y[:30]
    r = bench.compare_square(device, x, y, eps=0.2, budget=BUDGET)
    print(r)
    ours, art = r["ours"], r["art"]
    assert ours["queries_median"] <= BUDGET and ours["device_inferences_equal_reported"]
    assert art["device_queries"] <= BUDGET * art["clean_correct"]
    k_ours, k_art, n = ours["successes"], art["successes"], art["clean_correct"]
    assert n == ours["clean_correct"] == len(y)
    assert k_ours / n >= k_art / n - _half_width(k_art, n), (k_ours, k_art, n)
    assert k_ours / n >= 0.8  # about 0.94 here; ART about 0.5 at the same per-sample cap


def test_hopskipjump_beats_art_hopskipjump_through_the_device_at_equal_queries(bench, device,
                                                                                clean_correct):
    """L2, unbounded within 200 queries a sample for both; ART held to the budget per sample and
    run with the smaller gradient estimates that suit this budget (init_eval = max_eval = 20:
    about twice its success with its defaults here, which leave room for one iteration)."""
    x, y = clean_correct
    x, y = x[:20], y[:20]
    r = bench.compare_hopskipjump(device, x, y, [1.0, 1.5], BUDGET, norm="l2",
                                  art_settings={"eval20": {"init_eval": 20, "max_eval": 20}})
    print(r)
    ours, art = r["ours"], r["art_eval20"]
    assert ours["queries_max"] <= BUDGET and art["queries_max"] <= BUDGET
    assert ours["params"]["initial_gradient_eval_steps"] == BUDGET // 10
    n = r["n"]
    for mine, theirs in zip(ours["rows"], art["rows"]):
        k_ours, k_art = mine["successes"], theirs["successes"]
        assert k_ours / n >= k_art / n - _half_width(k_art, n), (mine, theirs, n)
    assert ours["rows"][1]["successes"] >= 0.6 * n


def test_hopskipjump_first_estimate_follows_the_budget():
    from edgeattack.attacks import make

    assert make("hopskipjump", budget=200).params["initial_gradient_eval_steps"] == 20
    assert make("hopskipjump", budget=5000).params["initial_gradient_eval_steps"] == 100
    assert make("hopskipjump", budget=10).params["initial_gradient_eval_steps"] == 2
    assert make("hopskipjump", budget=200, initial_gradient_eval_steps="50").params[
        "initial_gradient_eval_steps"] == 50
    with pytest.raises(UsageError, match="whole number"):
        make("hopskipjump", initial_gradient_eval_steps=2.5)


@pytest.mark.parametrize("name, params, epsilons", [
    ("square", {}, [0.1, 0.2]),
    ("simba", {}, [0.2]),
    ("simba", {"basis": "dct"}, [0.2]),
    ("hopskipjump", {"norm": "linf"}, [0.1, 0.2]),
])
def test_device_inferences_equal_reported_queries(device, digits, name, params, epsilons):
    """INFO's inference counter delta == attack queries reported + evaluation queries reported."""
    from edgeattack.attacks import make
    from edgeattack.attacks.blackbox.budgeted import cost_rows, per_sample

    x, y = digits
    x, y = x[:20], y[:20]
    attack = make(name, budget=60, **params)
    before = _inferences(device)
    res = attack(device, x, y, epsilons=epsilons, seed=1)
    delta = _inferences(device) - before
    runs = 1 if attack.minimization else len(epsilons)
    attack_queries = int(res.queries[:runs].sum())
    assert delta == attack_queries + res.extra["evaluation_queries"]
    assert res.queries.max() <= 60 and res.queries.min() >= 1
    rows = cost_rows(attack, res, device_inferences=delta)
    assert len(rows) == len(epsilons)
    for row in rows:
        assert row["attack_queries"] == attack_queries
        assert row["device_inferences"] == row["attack_queries"] + row["evaluation_queries"]
        assert row["wire_bytes_per_query"] > 64  # at least the 64-byte input goes out each query
        assert row["device_time_s"] > 0 and row["time_source"] == "host-wall"
    arrays = per_sample(attack, res)
    assert arrays["queries"].shape == res.queries.shape
    assert np.all(arrays["wire_bytes"] > 0)


def test_stops_querying_a_sample_once_it_succeeded(device, clean_correct):
    """Untargeted: a sample that succeeds spends no further queries; one that fails spends all."""
    from edgeattack.attacks import make

    x, y = clean_correct
    x, y = x[:20], y[:20]
    res = make("square", budget=BUDGET)(device, x, y, epsilons=[0.3], seed=0)
    q, ok = res.queries[0], res.success[0]
    assert ok.sum() >= 15
    assert np.median(q[ok]) < BUDGET / 4
    assert np.all(q[~ok] == BUDGET)


def test_labels_only_and_rounded_scores(device, digits_ptq, clean_correct):
    """output="labels" (decision-based: one-hot of the device's label) and decimals=3 (MLPerf
    Tiny's %0.3f replies): the attacks run within budget and succeed on some samples."""
    from edgeattack.attacks import make
    from edgeattack.attacks.targets import DeviceTarget

    x, y = clean_correct
    x, y = x[:20], y[:20]
    dev = device.device
    labels = DeviceTarget(dev, output="labels")
    s = labels.scores(x[:3])
    assert set(np.unique(s)) <= {0.0, 1.0} and np.all(s.sum(axis=1) == 1)
    hsj = make("hopskipjump", norm="linf", budget=BUDGET)(labels, x, y, epsilons=[0.2, 0.3], seed=0)
    print("hopskipjump linf successes at 0.2, 0.3:", hsj.success.sum(axis=1))
    # the search ends on the boundary, outside the 0.2 ball for most samples: what succeeds there
    # is the held-back probe along the summed gradient estimates (8 of 20 without it, 14 with it)
    assert hsj.success[0].sum() >= 11 and hsj.success[1].sum() >= hsj.success[0].sum()
    assert hsj.queries.max() <= BUDGET

    rounded = DeviceTarget(dev, decimals=3)
    s = rounded.scores(x[:3])
    assert np.all(np.round(s, 3) == s)
    for name in ("square", "simba"):
        res = make(name, budget=BUDGET)(rounded, x, y, epsilons=[0.2], seed=0)
        assert res.success[0].sum() >= 5, name


def test_gradient_targets_take_the_same_attacks(digits_model, digits_ptq, digits):
    """Black-box attacks accept the float model and the int8 surrogate, so host and device compare."""
    from edgeattack import attacks

    x, y = digits
    x, y = x[:20], y[:20]
    for obj in (digits_model, digits_ptq.out / "model.tflite"):
        t = attacks.target(obj)
        res = attacks.make("square", budget=100)(t, x, y, epsilons=[0.2], seed=0)
        assert res.success[0].sum() >= 10, t.kind
        assert res.queries.max() <= 100
        assert attacks.make("hopskipjump", budget=100)(t, x, y, epsilons=[None], seed=0).queries.max() <= 100


def test_seeded_runs_repeat(device, clean_correct):
    from edgeattack.attacks import make

    x, y = clean_correct
    a = make("square", budget=30)(device, x[:10], y[:10], epsilons=[0.1], seed=3)
    b = make("square", budget=30)(device, x[:10], y[:10], epsilons=[0.1], seed=3)
    assert np.array_equal(a.x_adv, b.x_adv) and np.array_equal(a.queries, b.queries)


def test_square_schedule_is_rescaled_to_the_budget():
    from edgeattack.attacks.blackbox.square import p_selection, square_side

    assert p_selection(0.3, 0, 1000) == 0.3
    assert p_selection(0.3, 1000, 1000) == pytest.approx(0.3 / 512)
    # the authors' first halving at 10/10,000 of the run, wherever the budget puts it
    assert p_selection(0.3, 1, 1000) == 0.3 and p_selection(0.3, 2, 1000) == 0.15
    assert p_selection(0.3, 2, 100) == pytest.approx(0.3 / 4)
    assert square_side(0.3, 8, 8) == 4 and square_side(0.001, 8, 8) == 1
    assert square_side(1.0, 8, 8) == 7  # never the whole image: the square must fit a position


def test_ties_do_not_count_as_success_and_are_accepted_as_moves():
    from edgeattack.attacks.blackbox.oracle import better, margin, misclassified

    s = np.array([[0.5, 0.5, 0.0], [0.2, 0.6, 0.2], [0.996, 0.0, 0.004]])
    y = np.array([1, 1, 0])
    assert margin(s, y).tolist() == pytest.approx([0.0, 0.4, 0.992])
    assert not misclassified(s, y).any()  # a tie at the top is not yet adversarial on every judge
    assert better(np.array([1.0]), np.array([1.0]), accept_ties=True)[0]
    assert not better(np.array([1.0]), np.array([1.0]), accept_ties=False)[0]


def test_budget_zero_and_bad_params_are_usage_errors():
    from edgeattack.attacks import make

    for name in ("square", "hopskipjump", "simba"):
        with pytest.raises(UsageError, match="budget 0"):
            make(name, budget=0)
    with pytest.raises(UsageError, match="p_init"):
        make("square", p_init=0)
    with pytest.raises(UsageError, match="basis"):
        make("simba", basis="wavelet")
    with pytest.raises(UsageError, match="norm='l2'"):
        make("square", norm="l2")


def test_unreachable_board_is_one_line_error(digits_model, digits_ptq, tmp_path, capsys):
    from edgeattack.attacks.targets import open_target
    from edgeattack.link.transport import free_local_port

    port = f"socket://127.0.0.1:{free_local_port()}"
    model = digits_ptq.out / "model.tflite"
    with pytest.raises(DeviceError, match="cannot open port"):
        open_target(model, board="emu-tflm", port=port)
    code, _, err = cli_here(capsys, "transfer", "square", "--sources", digits_model, "--targets", model,
                            "--board", "emu-tflm", "--port", port, "-n", "5", "--budget", "10",
                            "-o", tmp_path / "t")
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "cannot open port" in lines[0], err
    assert not (tmp_path / "t").exists()
    code, _, err = cli_here(capsys, "transfer", "square", "--sources", digits_model, "--targets", model,
                            "--budget", "0", "-o", tmp_path / "t")
    assert code == 2
    assert err.strip().splitlines() == [
        "edgeattack: error: budget 0: a black-box attack needs a query budget of at least 1 per "
        "sample (give --budget N)"]



def test_session_streams_per_example_queries_and_wire_bytes(device, digits_ptq, clean_correct, tmp_path):
    """The adversarial .npz carries each example's queries and wire bytes; `session` copies them
    into the adversarial records of results.jsonl (CONVENTIONS: black-box attacks add them)."""
    from edgeattack.attacks import make
    from edgeattack.attacks.blackbox.budgeted import per_sample
    from edgeattack.attacks.io import load_adversarial, save_adversarial
    from edgeattack.results import read_results
    from edgeattack.session import run_session

    x, y = clean_correct
    attack = make("square", budget=40)
    res = attack(device, x[:8], y[:8], epsilons=[0.1, 0.2], seed=0)
    arrays = per_sample(attack, res)
    npz = save_adversarial(tmp_path / "sq.npz", res, per_sample=arrays)
    assert np.array_equal(load_adversarial(npz)["queries"], res.queries)
    run_session("emu-tflm", digits_ptq.out / "model.tflite", adversarial=[npz], out=tmp_path / "run",
                progress=False)
    recs = [r for r in read_results(tmp_path / "run" / "results.jsonl") if r["source"] == "square"]
    assert len(recs) == 16
    for r in recs:
        e = [0.1, 0.2].index(r["eps"])
        assert r["queries"] == res.queries[e, r["id"]]
        assert r["wire_bytes"] == pytest.approx(arrays["wire_bytes"][e, r["id"]])
        assert r["wire_bytes"] > 64 * r["queries"]
