"""Session fixtures for the white-box attack tests, loaded with `pytest_plugins = ["fixtures_attacks"]`:
ONE small digits model, trained once, shared by every module that attacks it; and `cli_here`, the
attack commands run in this process (bad input is checked without paying a TensorFlow import per
case in a subprocess)."""
from __future__ import annotations

import signal

import pytest


def cli_here(capsys, *args):
    """edgeattack.cli.main(args) in-process: (exit code, stdout, stderr)."""
    from edgeattack.cli import main

    old = signal.getsignal(signal.SIGTERM)  # `attack` routes SIGTERM to KeyboardInterrupt
    try:
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
    finally:
        signal.signal(signal.SIGTERM, old)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


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
