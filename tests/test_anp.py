"""anp (simplified adversarial neural pruning): the channels PGD distorts most are the ones removed,
the result is a narrower int8 artifact; bad parameters are one line."""
from __future__ import annotations

import numpy as np
import pytest

from edgeattack.errors import UsageError

pytest_plugins = ["fixtures_compress"]


def test_anp_removes_the_most_vulnerable_channels(digits_model, tmp_path):
    import edgeattack.defenses  # noqa: F401  (registers the defense steps)
    from edgeattack.compression import compress

    res = compress(digits_model, [{"step": "anp", "ratio": 0.25, "samples": 120, "steps": 5,
                                   "epochs": 0}], tmp_path / "anp", seed=0, progress=False)
    step = res.manifest["steps"][0]
    assert step["step"] == "anp" and res.manifest["steps"][-1]["step"] == "ptq-int8"
    d = step["details"]
    assert d["samples"] == 120 and d["pgd_success"] > 0.1
    assert [(s["channels_before"], s["channels_after"]) for s in d["spaces"]] == \
        [(16, 12), (32, 24), (64, 48)]
    for space, vul in zip(d["spaces"], d["vulnerability"].values()):
        vul = np.asarray(vul)
        assert vul[space["removed"]].min() >= vul[space["kept"]].max()  # the most distorted went
    assert res.manifest["params"] < res.manifest["source"]["params"]
    assert res.manifest["accuracy"]["tflm"] > 0.5  # not fine-tuned here (epochs 0)


@pytest.mark.parametrize("step, message", [
    ({"step": "anp", "ratio": 0}, "parameter 'ratio' must be > 0"),
    ({"step": "anp", "ratio": 1}, "'ratio' must be < 1"),
    ({"step": "anp", "eps": 0}, "parameter 'eps' must be > 0"),
    ({"step": "anp", "steps": 0}, "'steps' must be >= 1"),
])
def test_bad_parameters_are_one_line(step, message):
    import edgeattack.defenses  # noqa: F401
    from edgeattack.compression.recipe import load_recipe

    with pytest.raises(UsageError) as e:
        load_recipe([step])
    assert message in str(e.value) and "\n" not in str(e.value)
