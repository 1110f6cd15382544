"""Session fixtures for the white-box attack tests, loaded with `pytest_plugins = ["fixtures_attacks"]`:
ONE small digits model, trained once, shared by every module that attacks it."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits_target():
    """(float target over cnn-digits trained 3 epochs on digits, first 50 test samples, labels)."""
    import edgeattack.tfutil as tu
    from edgeattack import attacks
    from edgeattack.datasets import load_dataset
    from edgeattack.train import compile_for_classification
    from edgeattack.zoo import build_model

    tu.set_seed(0)
    d = load_dataset("digits")
    m = build_model("cnn-digits", d.input_shape, d.classes)
    compile_for_classification(m)
    m.fit(d.x_train, d.y_train, epochs=3, batch_size=32, verbose=0)
    return attacks.target(m), d.x_test[:50], d.y_test[:50]
