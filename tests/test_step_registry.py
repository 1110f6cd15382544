"""The recipe-step registry: compression owns it, edgeattack.defenses fills it on import, the CLI
loads the defenses, and a Python user who forgot to gets one line saying what to import.
Pure Python (no TensorFlow), except the subprocesses, which only parse recipes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

import edgeattack.defenses  # noqa: F401
from edgeattack.compression.recipe import builtin_names, load_recipe
from edgeattack.compression.steps import FLOAT, QAT, get_step, registered
from edgeattack.errors import UsageError

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_defense_steps_register_with_kind_and_builtin_recipe():
    steps = registered()
    assert steps["adv-train"].kind == FLOAT and steps["adv-train"].sets_train_hook
    assert steps["dq"].kind == QAT
    for name in ("adv-train", "dq"):
        assert steps[name].run.startswith("edgeattack.defenses.")
        r = load_recipe(name)
        assert r.source == f"builtin:{name}"
        assert [s.name for s in r.steps] == [name, "ptq-int8"] and not r.steps[-1].appended
    names = builtin_names()
    assert names.index("adv-train") > names.index("lowrank")  # after compression's own


def test_recipes_command_lists_the_defense_recipes():
    listed = {r["name"]: r for r in json.loads(run_cli("recipes", "--json", check=True).stdout)}
    assert [s["step"] for s in listed["adv-train"]["steps"]] == ["adv-train", "ptq-int8"]
    assert listed["adv-train"]["steps"][0]["params"]["eps"] == 0.15  # trains above the test eps
    assert [s["step"] for s in listed["dq"]["steps"]] == ["dq", "ptq-int8"]


def test_without_the_defenses_package_a_defense_step_says_what_to_import():
    code = ("import sys\n"
            "from edgeattack.compression.recipe import load_recipe, builtin_names\n"
            "from edgeattack.errors import UsageError\n"
            "assert 'adv-train' not in builtin_names()\n"
            "for r in ('adv-train', [{'step': 'dq'}]):\n"
            "    try:\n"
            "        load_recipe(r)\n"
            "    except UsageError as e:\n"
            "        print(e)\n"
            "assert 'edgeattack.defenses' not in sys.modules and 'tensorflow' not in sys.modules\n")
    proc = _fresh_python(code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "import edgeattack.defenses" in line
    assert "step 1" in lines[1] and "'dq'" in lines[1]


def test_importing_the_defenses_imports_no_tensorflow():
    proc = _fresh_python("import sys, edgeattack.defenses\nprint('tensorflow' in sys.modules)")
    assert proc.stdout.strip() == "False", proc.stderr


@pytest.mark.parametrize("step, why", [
    ({"step": "adv-train", "eps": -0.1}, "'eps' must be >= 0"),
    ({"step": "adv-train", "eps": 0}, "'eps' must be > 0"),
    ({"step": "adv-train", "mode": "fgsm"}, "'mode' must be one of pgd, trades"),
    ({"step": "adv-train", "mode": "trades", "beta": -1.0}, "'beta' must be >= 0"),
    ({"step": "adv-train", "steps": 0}, "'steps' must be >= 1"),
    ({"step": "adv-train", "norm": "l2"}, "'norm' must be one of linf"),
    ({"step": "adv-train", "clean_weight": 1.5}, "'clean_weight' must be <= 1"),
    ({"step": "dq", "beta": -0.01}, "'beta' must be >= 0"),
    ({"step": "dq", "epochs": 0}, "needs at least 1 epoch"),
    ({"step": "dq", "adversarial": "yes"}, "'adversarial' must be true or false"),
])
def test_bad_defense_parameters_are_one_line_naming_step_and_parameter(step, why):
    with pytest.raises(UsageError) as e:
        load_recipe([step])
    msg = str(e.value)
    assert why in msg and f"({step['step']})" in msg and "\n" not in msg


def test_adversarial_true_needs_an_earlier_adv_train():
    with pytest.raises(UsageError, match=r"step 1 \(prune\): adversarial: true needs an adv-train"):
        load_recipe([{"step": "prune", "adversarial": True}])
    r = load_recipe(["adv-train", {"step": "prune", "adversarial": True}, {"step": "qat"}])
    assert r.steps[1].params["adversarial"] is True and r.steps[2].params["adversarial"] is None
    # dq's own `adversarial: true` uses adv-train's defaults when no adv-train ran before
    assert load_recipe([{"step": "dq", "adversarial": True}]).steps[0].params["adversarial"]
    # dq is quantization-aware training: only ptq-int8 may follow it, and it excludes qat
    with pytest.raises(UsageError, match="both quantization-aware"):
        load_recipe(["dq", "qat"])


def test_cli_compress_with_a_bad_defense_parameter_exits_2_in_one_line(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("- step: adv-train\n  eps: 2.0e+0\n  mode: madry\n")
    proc = run_cli("compress", tmp_path / "missing.keras", "--recipe", recipe, "-o", tmp_path / "o")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "step 1 (adv-train): parameter 'mode' must be one of pgd, trades" in err[0]
    assert not (tmp_path / "o").exists()


def test_unknown_step_lists_the_registered_ones():
    with pytest.raises(UsageError, match="unknown step 'adv_train'.*adv-train.*dq"):
        get_step("adv_train")


def test_docs_describe_every_defense_step_parameter():
    doc = (DOCS / "defenses.md").read_text()
    for name, step in registered().items():
        if not step.run.startswith("edgeattack.defenses."):
            continue
        section = doc.split(f"### `{name}`", 1)
        assert len(section) == 2, f"docs/defenses.md has no section for step {name}"
        body = section[1].split("\n### ", 1)[0]
        for param in step.params:
            assert f"| `{param}` |" in body, (name, param)
