"""Write docs/cli.md from the CLI's own help texts, so the reference never drifts from the code.

Usage: python tools/gen_cli_docs.py [--check]   (--check: exit 1 if docs/cli.md is out of date)
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeattack.cli import COMMANDS, cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _help(cmd: click.Command, path: list[str]) -> str:
    ctx = click.Context(cmd, info_name=" ".join(path), terminal_width=100, max_content_width=100)
    return cmd.get_help(ctx)


def render() -> str:
    parts = ["# The edgeattack command line\n",
             "Generated from the commands' own `--help` by `python tools/gen_cli_docs.py`; every command "
             "shows an example. Global options (`-v/--verbose`, `--debug` for tracebacks) go before "
             "the command. Exit codes: 0 success, 1 failure, 2 usage error (bad argument or input file); "
             "errors are one line on stderr.\n"]
    for name in sorted(COMMANDS):
        cmd = cli.get_command(None, name)
        parts.append(f"## edgeattack {name}\n\n```text\n{_help(cmd, ['edgeattack', name]).rstrip()}\n```\n")
        if isinstance(cmd, click.Group):
            for sub in sorted(cmd.list_commands(None)):
                subcmd = cmd.get_command(None, sub)
                parts.append(f"### edgeattack {name} {sub}\n\n```text\n"
                             f"{_help(subcmd, ['edgeattack', name, sub]).rstrip()}\n```\n")
    return "\n".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not DOC.is_file() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run python tools/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
