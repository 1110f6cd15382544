"""`edgeattack attacks` lists every registered attack with its parameters, quickly."""
from __future__ import annotations

import json

from conftest import run_cli
from fixtures_attacks import cli_here


def test_attacks_lists_json_and_text(capsys):
    out = run_cli("attacks", "--json", check=True)  # the installed command, end to end
    items = {a["name"]: a for a in json.loads(out.stdout)}
    assert {"fgsm", "bim", "pgd", "cw-l2", "jsma", "deepfool", "apgd-ce"} <= set(items)
    assert any(p["name"] == "binary_search_steps" for p in items["cw-l2"]["params"])
    code, text, err = cli_here(capsys, "attacks")
    assert code == 0, err
    assert "apgd-ce" in text and "steps=100" in text
