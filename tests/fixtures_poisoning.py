"""Session fixtures for the poisoning tests (backdoor, poison, detox), loaded with
`pytest_plugins = ["fixtures_poisoning"]`: ONE BadNets run at a reduced scale that the backdoor and
detox tests share (each training and compression costs seconds; issue 9's budget is 4 minutes)."""
from __future__ import annotations

import pytest

EPOCHS = 12
N = 120


@pytest.fixture(scope="session")
def badnets_run(tmp_path_factory):
    """(OUT, backdoor.json) of BadNets (3x3 patch, target 0, 10%) with ptq-int8 on emu-tflm."""
    from edgeattack.attacks.poisoning import run_backdoor

    out = tmp_path_factory.mktemp("backdoor") / "bd"
    obj = run_backdoor(out, trigger="patch:3", target_class=0, rate=0.1, recipes=["ptq-int8"],
                       board="emu-tflm", epochs=EPOCHS, n=N, seed=0, progress=False)
    return out, obj
