"""White-box attacks on a small trained digits model, FGSM checked against IBM ART (n <= 50)."""
from __future__ import annotations

import numpy as np
import pytest

pytest_plugins = ["fixtures_attacks"]


def test_fgsm_equals_art(digits_target):
    from art.attacks.evasion import FastGradientMethod
    from art.estimators.classification import TensorFlowV2Classifier

    import edgeattack.tfutil as tu
    from edgeattack import attacks

    t, x, y = digits_target
    k, tf = tu.keras(), tu.tf()
    clf = TensorFlowV2Classifier(model=t.logits_model, nb_classes=10, input_shape=(8, 8, 1),
                                 loss_object=k.losses.SparseCategoricalCrossentropy(from_logits=True),
                                 clip_values=(0.0, 1.0))
    ours = attacks.make("fgsm")(t, x, y, epsilons=[0.1], seed=0)
    art = FastGradientMethod(clf, eps=0.1).generate(x, y=np.eye(10)[y])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y.astype(np.int32),
                                                              logits=t.logits_tf(xt))
    g = tape.gradient(loss, xt).numpy()
    close = np.abs(ours.x_adv[0] - art) <= 1e-6
    assert close[np.abs(g) > 1e-8].all()
    assert close.mean() >= 0.999


@pytest.mark.parametrize("name,eps", [("bim", [0.1]), ("pgd", [0.1]), ("apgd-ce", [0.1]),
                                      ("cw-l2", [None]), ("deepfool", [None]), ("jsma", [None])])
def test_attack_succeeds_within_its_budget(digits_target, name, eps):
    from edgeattack import attacks

    t, x, y = digits_target
    r = attacks.make(name)(t, x, y, epsilons=eps, seed=0)
    assert r.success.mean() > 0.3
    if eps[0] is not None:
        assert np.all(r.norms <= eps[0] + 1e-6)
    if name == "jsma":
        assert np.all(r.pred[0][r.success[0]] == (y[r.success[0]] + 1) % 10)
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    again = attacks.make(name)(t, x, y, epsilons=eps, seed=0)
    assert np.array_equal(r.x_adv, again.x_adv)  # deterministic for a seed
