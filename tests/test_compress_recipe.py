"""Recipe parsing and validation: pure Python, no TensorFlow."""
from __future__ import annotations

import pytest

from edgeattack.compression.recipe import (BUILTIN_RECIPES, STEP_PARAMS, load_recipe, qat_preserve,
                                           registered)
from edgeattack.errors import UsageError


def _yaml(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", BUILTIN_RECIPES)
def test_builtin_recipes_load_and_end_in_a_conversion(name):
    r = load_recipe(name)
    assert r.name == name
    assert r.source == f"builtin:{name}"
    assert r.steps[-1].name in ("ptq-int8", "dynamic-range", "float16")
    assert r.description
    # the built-in recipe applies the step of the same name (CONVENTIONS: steps share the names)
    assert name in [s.name for s in r.steps]
    assert not r.steps[-1].appended  # built-ins spell their conversion out


def _own_steps() -> dict:
    """compression's own steps (packages above it register more: tests/test_step_registry.py)."""
    return {n: s.params for n, s in registered().items()
            if s.run.startswith("edgeattack.compression.")}


def test_every_step_has_a_builtin_recipe_and_the_same_name():
    assert set(_own_steps()) == set(BUILTIN_RECIPES)


def test_chain_in_a_list_and_defaults_filled(tmp_path):
    p = _yaml(tmp_path, "- step: distill\n  width: 0.5\n- step: prune\n  target_sparsity: 0.5\n"
                        "- cluster\n- step: ptq-int8\n  samples: 50\n")
    r = load_recipe(str(p))
    assert [s.name for s in r.steps] == ["distill", "prune", "cluster", "ptq-int8"]
    assert r.steps[1].params["target_sparsity"] == 0.5
    assert r.steps[1].params["frequency"] == STEP_PARAMS["prune"]["frequency"].default
    assert r.steps[1].given == {"target_sparsity": 0.5}
    assert r.steps[3].params == {"samples": 50}
    assert r.name == "r" and r.source == str(p)


def test_mapping_form_with_name_and_description(tmp_path):
    p = _yaml(tmp_path, "name: tiny\ndescription: test\nsteps:\n  - {step: prune, epochs: 1}\n")
    r = load_recipe(p)
    assert (r.name, r.description) == ("tiny", "test")


def test_recipe_without_conversion_gets_ptq_int8_appended(tmp_path):
    r = load_recipe(_yaml(tmp_path, "- step: prune\n"))
    assert [s.name for s in r.steps] == ["prune", "ptq-int8"]
    assert r.steps[-1].appended
    assert r.describe()["steps"][-1]["appended"] is True


def test_python_list_recipe():
    r = load_recipe([{"step": "cluster", "clusters": 8}])
    assert r.steps[0].params["clusters"] == 8 and r.steps[-1].name == "ptq-int8"


@pytest.mark.parametrize("text, words", [
    ("- step: prune\n  target_sparsity: high\n",
     ["r.yaml", "step 1 (prune)", "'target_sparsity'", "a number", "str"]),
    ("- step: cluster\n  clusters: 16.5\n", ["step 1 (cluster)", "'clusters'", "an integer"]),
    ("- step: prune\n  epochs: true\n", ["'epochs'", "an integer", "bool"]),
    ("- step: distill\n  assistants: 0.75\n", ["'assistants'", "a list of numbers"]),
    ("- step: qat\n  preserve: everything\n", ["'preserve'", "one of"]),
    ("- step: prune\n  target_sparsity: 1.5\n", ["'target_sparsity'", "< 1"]),
    ("- step: prune\n  sparsity: 0.5\n", ["step 1 (prune)", "unknown parameter 'sparsity'",
                                         "target_sparsity"]),
    ("- step: prune\n- step: shrink\n", ["step 2", "unknown step 'shrink'", "ptq-int8"]),
    ("- step: ptq-int8\n- step: prune\n", ["step 1 (ptq-int8)", "last step"]),
    ("- step: qat\n- step: prune\n", ["only ptq-int8 may follow", "prune"]),
    ("- step: qat\n- step: float16\n", ["converts only with ptq-int8"]),
    ("- step: qat\n- step: pqat\n", ["both quantization-aware"]),
    ("- step: prune\n  begin_step: 3\n  begin_epoch: 1\n", ["begin_step or begin_epoch"]),
    ("- step: lowrank\n  energy: 0.9\n  ratio: 0.5\n", ["energy or ratio"]),
    ("- step: qat\n  epochs: 0\n", ["at least 1 epoch"]),
    ("- step: distill\n  epochs: 0\n", ["at least 1 epoch"]),
    ("[]\n", ["non-empty list"]),
    ("steps: [prune]\nauthor: me\n", ["unknown top-level key 'author'"]),
    ("- step: prune\n  target_sparsity: [0.5\n", ["not valid YAML", "line"]),
    ("- {sparsity: 0.5}\n", ["step 1", "'step' key"]),
    # non-finite numbers pass every min/max comparison (NaN compares false): refused by name
    ("- step: prune\n  target_sparsity: .nan\n", ["step 1 (prune)", "'target_sparsity'", "finite", "nan"]),
    ("- step: prune\n  lr: .inf\n", ["step 1 (prune)", "'lr'", "finite", "inf"]),
    ("- step: distill\n  assistants: [0.7, -.inf]\n", ["'assistants'", "finite"]),
    # PyYAML keeps the last of two equal keys silently: refused with the file, key and line
    ("- step: prune\n  lr: 0.001\n  epochs: 2\n  lr: 10\n", ["line 4", "duplicate key 'lr'", "line 2"]),
    ("name: a\nsteps: [prune]\nname: b\n", ["line 3", "duplicate key 'name'"]),
])
def test_bad_recipes_name_file_step_parameter_and_expected_type(tmp_path, text, words):
    p = _yaml(tmp_path, text)
    with pytest.raises(UsageError) as e:
        load_recipe(str(p))
    msg = str(e.value)
    assert "\n" not in msg
    assert str(p) in msg or "r.yaml" in msg
    for w in words:
        assert w in msg, (w, msg)


def test_unknown_recipe_name_and_missing_file(tmp_path):
    with pytest.raises(UsageError, match="unknown recipe.*ptq-int8"):
        load_recipe("ptq-int4")
    with pytest.raises(UsageError, match="no such file"):
        load_recipe(str(tmp_path / "missing.yaml"))


def test_qat_preserve_follows_earlier_steps():
    r = load_recipe([{"step": "prune"}, {"step": "cluster"}, {"step": "qat"}])
    assert qat_preserve(r.steps, r.steps[2]) == "sparsity+clusters"
    r = load_recipe([{"step": "prune"}, {"step": "qat"}])
    assert qat_preserve(r.steps, r.steps[1]) == "sparsity"
    r = load_recipe([{"step": "prune"}, {"step": "qat", "preserve": "none"}])
    assert qat_preserve(r.steps, r.steps[1]) == "none"
    r = load_recipe(["pcqat"])
    assert qat_preserve(r.steps, r.steps[0]) == "sparsity+clusters"


def test_docs_list_every_step_and_parameter():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text()
    for step, spec in _own_steps().items():
        section = doc.split(f"### `{step}`", 1)
        assert len(section) == 2, f"docs/recipes.md has no section for step {step}"
        body = section[1].split("\n### ", 1)[0]
        for param, p in spec.items():
            assert f"| `{param}` |" in body, (step, param)


def test_recipes_command_lists_every_builtin_with_steps_and_description():
    import json

    from conftest import run_cli

    import edgeattack.defenses  # noqa: F401  (the CLI lists the defenses' recipes too)
    from edgeattack.compression.recipe import builtin_names

    listed = json.loads(run_cli("recipes", "--json", check=True).stdout)
    assert [r["name"] for r in listed] == builtin_names()
    for r in listed:
        assert r["description"] and r["source"] == f"builtin:{r['name']}"
        assert r["steps"] == load_recipe(r["name"]).describe()["steps"]
    pqat = next(r for r in listed if r["name"] == "pqat")
    assert [s["step"] for s in pqat["steps"]] == ["pqat", "ptq-int8"]
    text = run_cli("recipes", check=True).stdout
    for name in BUILTIN_RECIPES:
        assert any(line.startswith(name + " ") for line in text.splitlines()), name
    assert "pqat(target_sparsity=0.75, prune_epochs=8, epochs=4) -> ptq-int8" in text
