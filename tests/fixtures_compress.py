"""Session fixtures for the compress tests, loaded with `pytest_plugins = ["fixtures_compress"]` so
every compress test module shares ONE trained digits model and ONE ptq-int8 result (training and
each compression cost seconds; the whole compress suite must stay within a few minutes)."""
from __future__ import annotations

import pytest

DIGITS_EPOCHS = 20  # ~0.97 test accuracy on digits: the reference every recipe is compared with


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory):
    """OUT/model.keras (+ train.json) of cnn-digits trained on digits."""
    from edgeattack.train import train_model

    out = tmp_path_factory.mktemp("compress") / "digits"
    res = train_model("cnn-digits", "digits", out, epochs=DIGITS_EPOCHS, seed=0, progress=False)
    return res.model_path


@pytest.fixture(scope="session")
def digits_ptq(digits_model, tmp_path_factory):
    """The built-in ptq-int8 recipe applied to digits_model (a CompressResult)."""
    from edgeattack.compression import compress

    out = tmp_path_factory.mktemp("compress") / "ptq"
    return compress(digits_model, "ptq-int8", out, seed=0, progress=False)


_DONE: dict = {}


def compress_digits(digits_model, tmp_path_factory, name, recipe, **kwargs):
    """compress(digits_model, recipe), done once per session for the same name, recipe and options:
    modules that need the same artifact (e.g. the transfer and surrogate tests' `prune` and `pqat`)
    share it. Callers must not modify the result's files. Two names give two runs (determinism
    tests compress the same recipe twice on purpose)."""
    import json

    from edgeattack.compression import compress

    key = (str(digits_model), name, json.dumps(recipe, sort_keys=True), json.dumps(kwargs, sort_keys=True))
    if key not in _DONE:
        out = tmp_path_factory.mktemp("compress") / name
        _DONE[key] = compress(digits_model, recipe, out, seed=kwargs.pop("seed", 0), progress=False,
                              **kwargs)
    return _DONE[key]
