"""Poisoned datasets and triggers (NumPy only, no training): what each poisoning changes, and the
one-line refusals of bad input."""
from __future__ import annotations

import numpy as np
import pytest

from edgeattack.attacks.poisoning.cleanlabel import choose_targets, clean_label, gradient_matching
from edgeattack.attacks.poisoning.data import badnets, flip, flip_targeted
from edgeattack.attacks.poisoning.poison import check_settings
from edgeattack.attacks.poisoning.triggers import parse_trigger
from edgeattack.datasets import load_dataset
from edgeattack.errors import UsageError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_flip_changes_exactly_rate_of_labels_to_other_classes(digits):
    p = flip(digits, 0.2, seed=3)
    changed = p.data.y_train != digits.y_train
    assert changed.sum() == p.mask.sum() == round(0.2 * len(digits.y_train))
    np.testing.assert_array_equal(changed, p.mask)
    np.testing.assert_array_equal(p.data.x_train, digits.x_train)
    assert flip(digits, 0.2, seed=3).mask.tolist() == p.mask.tolist()  # seeded


def test_flip_targeted_moves_only_source_samples_to_the_target(digits):
    p = flip_targeted(digits, 0.5, source_class=1, target_class=7)
    assert np.all(digits.y_train[p.mask] == 1) and np.all(p.data.y_train[p.mask] == 7)
    assert p.mask.sum() == round(0.5 * np.sum(digits.y_train == 1))
    np.testing.assert_array_equal(p.data.y_train[~p.mask], digits.y_train[~p.mask])


def test_patch_and_blend_triggers():
    x = np.full((2, 8, 8, 1), 0.5, np.float32)
    patched = parse_trigger("patch:3", (8, 8, 1)).apply(x)
    assert np.all(patched[:, :5, :, :] == 0.5) and np.all(patched[:, :, :5, :] == 0.5)
    assert set(np.unique(patched[:, 5:, 5:, :])) == {0.0, 1.0}
    top_left = parse_trigger("patch:2", (8, 8, 1), position="top-left").apply(x)
    assert np.all(top_left[:, 2:, 2:] == 0.5) and not np.all(top_left[:, :2, :2] == 0.5)
    blended = parse_trigger("blend:0.1", (8, 8, 1)).apply(x)
    assert np.max(np.abs(blended - x)) <= 0.05 + 1e-6 and np.any(blended != x)


@pytest.mark.parametrize("call, culprit", [
    (lambda d: flip(d, 1.0), "--rate 1"),
    (lambda d: flip(d, -0.1), "--rate -0.1"),
    (lambda d: flip_targeted(d, 0.1, 1, 12), "--target-class 12"),
    (lambda d: flip_targeted(d, 0.1, 3, 3), "--source-class 3"),
    (lambda d: clean_label(d, 0.1, 4, 4, 0.1, None), "--source-class 4"),
    (lambda d: gradient_matching(d, 0.1, 4, 4, 0.1, None), "--source-class 4"),
    (lambda d: gradient_matching(d, 1.5, 4, 5, 0.1, None), "--rate 1.5"),
    (lambda d: badnets(d, parse_trigger("patch:3"), 10, 0.1), "--target-class 10"),
    (lambda d: parse_trigger("patch:9", d.input_shape), "--trigger patch:9"),
    (lambda d: parse_trigger("blend:2"), "--trigger blend:2"),
    (lambda d: check_settings("clean-label", {"method": "frogs"}), "--set method=frogs"),
    (lambda d: check_settings("clean-label", {"restarts": 0}), "--set restarts=0"),
    (lambda d: check_settings("clean-label", {"surrogates": 0}), "--set surrogates=0"),
    (lambda d: check_settings("clean-label", {"pick": "closest"}), "--set pick=closest"),
    (lambda d: choose_targets(d, 1, 0, 0), "--set targets=0"),
    (lambda d: choose_targets(d, 1, 10_000, 0), "--set targets=10000"),
])
def test_bad_input_is_a_usage_error_naming_the_culprit(digits, call, culprit):
    with pytest.raises(UsageError) as err:
        call(digits)
    msg = str(err.value)
    assert culprit in msg and "\n" not in msg
