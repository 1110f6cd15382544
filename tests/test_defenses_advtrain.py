"""adv-train and dq as recipe steps on cnn-digits, at a reduced scale (few epochs, a few hundred
samples): the int8 artifact of adv-train -> ptq-int8 resists the project's PGD on its int8 surrogate
clearly better than plain ptq-int8; fine-tuning after adv-train trains adversarially unless told not
to, and the manifest says so; dq's penalty makes the kernels closer to orthogonal than plain QAT.
The full-scale figures come from tools/bench_defenses.py (docs/benchmarks.md)."""
from __future__ import annotations

import numpy as np
import pytest

import edgeattack.defenses  # noqa: F401  (registers the defense steps)
import edgeattack.errors

pytest_plugins = ["fixtures_compress"]

# Training at eps 0.15 with 5 PGD steps buys robustness at eps 0.1 in 3 epochs (a reduced-scale
# stand-in for the built-in recipe's 40 epochs).
ADV = {"step": "adv-train", "eps": 0.15, "steps": 5, "rel_stepsize": 0.5, "epochs": 3,
       "eval_samples": 0}
N = 300


def _robust(tflite_path, x, y):
    """(robust correct count, clean correct count) under the project's PGD at eps 0.1 on the int8
    surrogate (20 steps of eps/10 from a random start)."""
    from edgeattack import attacks

    res = attacks.make("pgd", steps=20, rel_stepsize=0.1)(attacks.target(str(tflite_path)), x, y,
                                                          epsilons=[0.1], seed=0)
    return int(((res.pred[0] == y) & res.clean_correct).sum()), int(res.clean_correct.sum())


def test_adv_train_int8_is_more_robust_than_ptq_int8(digits_model, digits_ptq, tmp_path_factory):
    from fixtures_compress import compress_digits

    from edgeattack.datasets import load_dataset
    from edgeattack.results.stats import wilson_interval

    res = compress_digits(digits_model, tmp_path_factory, "adv-train", [ADV, {"step": "ptq-int8"}])
    m = res.manifest
    assert m["conversion"] == "int8" and m["input"]["dtype"] == "int8"
    assert m["accuracy"]["tflm"] is not None and m["agreement"] >= 0.99  # deployable on TFLM
    assert m["steps"][0]["adversarial"] is True
    assert m["steps"][0]["details"]["adversary"]["stepsize"] == pytest.approx(0.075)

    data = load_dataset("digits")
    x, y = data.x_test[:N], data.y_test[:N]
    adv_k, adv_clean = _robust(res.tflite_path, x, y)
    ptq_k, ptq_clean = _robust(digits_ptq.tflite_path, x, y)
    adv_ci, ptq_ci = wilson_interval(adv_k, N), wilson_interval(ptq_k, N)
    assert adv_ci[0] > ptq_ci[1], (adv_k, ptq_k, adv_ci, ptq_ci)
    assert abs(adv_clean - ptq_clean) / N <= 0.05  # clean accuracy within 5 points


def test_fine_tuning_after_adv_train_is_adversarial_unless_it_opts_out(digits_model, tmp_path):
    from edgeattack.compression import compress

    recipe = [{**ADV, "epochs": 1, "steps": 2, "rel_stepsize": 1.0},
              {"step": "prune", "epochs": 1, "target_sparsity": 0.5},
              {"step": "cluster", "epochs": 1, "clusters": 16, "adversarial": False},
              {"step": "ptq-int8", "samples": 50}]
    m = compress(digits_model, recipe, tmp_path / "chain", seed=0, progress=False).manifest
    steps = {s["step"]: s for s in m["steps"]}
    assert steps["adv-train"]["adversarial"] is True
    assert steps["prune"]["adversarial"] is True        # followed adv-train's settings
    assert steps["cluster"]["adversarial"] is False     # `adversarial: false`
    assert "adversarial" not in steps["ptq-int8"]       # no training, nothing to record
    assert m["recipe"]["steps"][1]["params"]["adversarial"] is None


def test_dq_penalty_brings_kernels_closer_to_orthogonal_than_qat(digits_model, tmp_path):
    from edgeattack.compression import compress
    from edgeattack.defenses.dq import gaps
    from edgeattack.keras_io import load_model

    short = {"epochs": 2, "lr": 5e-4}
    dq = compress(digits_model, [{"step": "dq", "beta": 0.01, **short},
                                 {"step": "ptq-int8", "samples": 50}],
                  tmp_path / "dq", seed=0, progress=False)
    qat = compress(digits_model, [{"step": "qat", **short}, {"step": "ptq-int8", "samples": 50}],
                   tmp_path / "qat", seed=0, progress=False)
    gap = dq.manifest["steps"][0]["details"]["orthogonality_gap"]
    dq_gaps = gaps(load_model(dq.model_path))
    qat_gaps = gaps(load_model(qat.model_path))
    assert sum(dq_gaps.values()) == pytest.approx(gap["total_after"], rel=1e-4)
    assert len(dq_gaps) == len(qat_gaps) >= 3
    # every kernel, and the sum, closer to orthogonal than under plain QAT
    assert sum(dq_gaps.values()) < 0.8 * sum(qat_gaps.values()), (dq_gaps, qat_gaps)
    assert np.mean([dq_gaps[k] < qat_gaps[k] for k in dq_gaps]) == 1.0
    assert dq.manifest["accuracy"]["tflm"] >= qat.manifest["accuracy"]["tflm"] - 0.05
    assert "adversarial" not in dq.manifest["steps"][0]


def test_cosine_lr_schedule_and_the_builtin_recipe():
    from edgeattack.compression.recipe import load_recipe
    from edgeattack.defenses.adv_train import lr_callbacks

    assert lr_callbacks(0.003, "constant", 20) == []
    (cb,) = lr_callbacks(0.003, "cosine", 20)
    assert [round(cb.schedule(e, None), 6) for e in (0, 10, 19)] == [0.003, 0.0015, 0.000018]
    # the built-in recipe trains above the eps it is judged at, with the schedule (docs/benchmarks.md)
    p = load_recipe("adv-train").steps[0].params
    assert p["eps"] == 0.15 and p["lr_schedule"] == "cosine"
    assert p["epochs"] == 40 and p["batch_size"] == 16
    with pytest.raises(edgeattack.errors.UsageError) as e:
        load_recipe([{"step": "adv-train", "lr_schedule": "step"}])
    assert "'lr_schedule' must be one of constant, cosine" in str(e.value)
