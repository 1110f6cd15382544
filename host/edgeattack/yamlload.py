"""Read a YAML file strictly: a key given twice in one mapping is an error, not a silent override
(PyYAML keeps the last value, so `lr: 0.1` ... `lr: 10` would train with 10 unnoticed).

Public API:
    load_yaml(path, shown=None, hint="") -> object   (UsageError naming the file and line on any
                                                   problem; `hint` ends a syntax error's line)
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UsageError


def _loader():
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: let PyYAML report it
                    continue
                if first is not key_node:
                    raise _Duplicate(key, first.start_mark.line + 1, key_node.start_mark.line + 1)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


class _Duplicate(Exception):
    def __init__(self, key, first: int, again: int):
        super().__init__(key)
        self.key, self.first, self.again = key, first, again


def load_yaml(path: str | os.PathLike, shown: str | None = None, hint: str = ""):
    """The document in YAML file `path`; `shown` is how errors name the file (default: the path),
    `hint` what a syntax error adds (e.g. what the file should look like)."""
    import yaml

    shown = shown or str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise UsageError(f"{shown}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{shown}: not a text file; give a YAML file") from None
    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except _Duplicate as d:
        raise UsageError(f"{shown}: line {d.again}: duplicate key {d.key!r} (first given at line "
                         f"{d.first}); give each key once") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None)
        raise UsageError(f"{shown}: not valid YAML{where}" + (f" ({problem})" if problem else "")
                         + (f"; {hint}" if hint else "")) from None
