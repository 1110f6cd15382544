"""The attack base: registry, parameters, projection, epsilon checks, the epsilon loop and the
adversarial .npz that `session` loads unchanged. Uses a tiny untrained Keras model (no training)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeattack.errors import UsageError


@pytest.fixture(scope="module")
def tiny_target():
    import edgeattack.tfutil as tu
    from edgeattack import attacks

    k = tu.keras()
    tu.set_seed(0)
    m = k.Sequential([k.layers.Input((4, 4, 1)), k.layers.Flatten(), k.layers.Dense(3),
                      k.layers.Softmax()])
    return attacks.target(m)


def test_package_import_is_light():
    code = ("import sys, edgeattack.attacks as a; a.list_attacks(); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registry_lists_every_white_box_attack_with_params():
    from edgeattack.attacks import list_attacks

    names = {a["name"]: a for a in list_attacks()}
    assert {"fgsm", "bim", "pgd"} <= set(names)
    pgd = {p["name"]: p["default"] for p in names["pgd"]["params"]}
    assert pgd["steps"] == 40 and pgd["random_start"] is True and pgd["norm"] == "linf"


def test_params_unknown_and_badly_typed_are_usage_errors():
    from edgeattack.attacks import make

    with pytest.raises(UsageError, match="unknown parameter 'stpes'"):
        make("pgd", stpes=3)
    with pytest.raises(UsageError, match="steps='x'"):
        make("pgd", steps="x")
    with pytest.raises(UsageError, match="must be at least 1"):
        make("pgd", steps=0)
    with pytest.raises(UsageError, match="unknown attack 'pgdd'"):
        make("pgdd")
    a = make("pgd", steps="7", random_start="false", norm="l2")
    assert a.params["steps"] == 7 and a.params["random_start"] is False and a.norm == "l2"
    assert make("pgd", norm="l2").params["rel_stepsize"] == 0.025  # Foolbox's L2PGD default


def test_projection_per_norm():
    from edgeattack.attacks.base import perturbation_norms, project

    rng = np.random.default_rng(0)
    x = rng.random((5, 3, 3)).astype(np.float32)
    xa = x + rng.normal(0, 1, x.shape).astype(np.float32)
    p = project(xa, x, 0.1, "linf")
    assert np.all(perturbation_norms(p, x, "linf") <= 0.1 + 1e-6)
    p2 = project(xa, x, 0.5, "l2")
    assert np.allclose(perturbation_norms(p2, x, "l2"), 0.5, atol=1e-5)
    small = x + 1e-3
    assert np.allclose(project(small, x, 0.5, "l2"), small)  # inside the ball: unchanged


def test_epsilon_and_label_checks(tiny_target):
    from edgeattack.attacks import make

    x = np.zeros((2, 4, 4, 1), np.float32)
    y = np.array([0, 1])
    fgsm = make("fgsm")
    with pytest.raises(UsageError, match="must be > 0"):
        fgsm(tiny_target, x, y, epsilons=[0.1, 0])
    with pytest.raises(UsageError, match="beyond the data range"):
        fgsm(tiny_target, x, y, epsilons=[1.5])
    with pytest.raises(UsageError, match="needs a finite epsilon"):
        fgsm(tiny_target, x, y, epsilons=[None])
    with pytest.raises(UsageError, match="label 7 is outside the model's 3 classes"):
        fgsm(tiny_target, x, np.array([0, 7]), epsilons=[0.1])
    with pytest.raises(UsageError, match=r"do not fit the target's input \(4, 4, 1\)"):
        fgsm(tiny_target, np.zeros((2, 8, 8, 1), np.float32), y, epsilons=[0.1])
    # l2 allows up to the diagonal of the data box
    make("fgsm", norm="l2")(tiny_target, x, y, epsilons=[3.9])


def test_call_projects_clips_judges_and_npz_loads_in_session(tiny_target, tmp_path):
    from edgeattack.attacks import io, make
    from edgeattack.session import load_adversarial

    rng = np.random.default_rng(1)
    x = rng.random((6, 4, 4, 1)).astype(np.float32)
    y = tiny_target.predict(x)  # all correct when clean
    res = make("pgd", steps=5)(tiny_target, x, y, epsilons=[0.05, 0.3], seed=3)
    assert res.x_adv.shape == (2, 6, 4, 4, 1) and res.success.shape == (2, 6)
    assert np.all(res.norms <= np.array([[0.05], [0.3]]) + 1e-6)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert np.array_equal(res.success, res.pred != y[None])
    again = make("pgd", steps=5)(tiny_target, x, y, epsilons=[0.05, 0.3], seed=3)
    assert np.array_equal(res.x_adv, again.x_adv)  # the seed fixes the random start
    path = io.save_adversarial(tmp_path / "adv.npz", res, source_model_sha256=None)
    s = load_adversarial(path)
    assert s.source == "pgd" and s.eps == [0.05, 0.3] and np.array_equal(s.x, res.x_adv)
    assert np.array_equal(s.clean_x, x)
    summary = io.summary(res)
    row = summary["metrics"][1]
    assert row["attack_success_rate"] == res.success[1].sum() / 6
    assert len(row["attack_success_rate_ci95"]) == 2 and summary["schema"] == 1
    json.dumps(summary)
