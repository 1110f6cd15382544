"""docs/cli.md is generated from the CLI and every command shows an example."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from edgeattack.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_has_an_example():
    for name in COMMANDS:
        cmd = cli.get_command(None, name)
        text = cmd.help or ""
        assert f"edgeattack {name}" in text, f"`edgeattack {name} --help` shows no example"
        if isinstance(cmd, click.Group):
            assert cmd.list_commands(None)


def test_cli_reference_is_current():
    proc = subprocess.run([sys.executable, str(ROOT / "tools/gen_cli_docs.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
