"""The package import graph follows CONVENTIONS "Package layout": a package imports only packages
below it, so no change can quietly add an arrow that runs back up (or a cycle).

Every `import` and `from ... import` in host/edgeattack is read with `ast`, including imports inside
functions (lazy imports are still arrows). Modules are grouped by their first name under
edgeattack (a subpackage, or a top-level module)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "host" / "edgeattack"

# Highest first. A unit may import units of a LOWER rank only; units sharing a rank are siblings
# that must not import each other (link knows no energy meter and the meters know no link).
RANKS = [
    ["__main__"],
    ["cli"],
    ["demo"],  # the main job: a study with a fixed plan, under the CLI
    ["study"],
    ["report"],  # reads results/ and run folders only
    ["defenses"],
    ["attacks"],
    ["session"],
    ["results"],
    ["device"],
    ["deploy"],
    ["firmware"],
    ["agent"],  # the device-side program: link server + runtimes, shipped to the Pi as it is
    ["link", "energy"],
    ["compression"],
    ["tflite"],
    ["train"],
    ["datasets", "zoo", "keras_io"],
    # ground, importable by all (CONVENTIONS); the few ground modules others build on come last
    ["atomic", "quant", "tfutil", "profiles", "children", "fileid"],
    ["yamlload"],
    ["errors", "resources", "__init__"],
]
RANK = {name: i for i, row in enumerate(RANKS) for name in row}


def _unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "edgeattack":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if node.module is None or (node.level and mod.count(".") == 0):
                # `from . import x` / `from .. import x`: x may be a submodule
                found += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, mod))
    return found


def _edges():
    for path in sorted(PKG.rglob("*.py")):
        src = _unit(_module_name(path)) if path.name != "__init__.py" or path.parent != PKG else "__init__"
        for line, mod in _imports(path):
            dst = _unit(mod)
            if dst is None or dst == src:
                continue
            yield path.relative_to(PKG.parent), line, src, dst


def test_every_unit_has_a_place_in_the_layering():
    units = {p.name if p.is_dir() else p.stem for p in PKG.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    missing = sorted(units - set(RANK))
    assert not missing, f"add {missing} to RANKS in this test and to CONVENTIONS' package layout"


def test_imports_only_go_down():
    bad = [f"{path}:{line}: {src} imports {dst}" for path, line, src, dst in _edges()
           if src in RANK and dst in RANK and RANK[dst] <= RANK[src]]
    assert not bad, "imports that run up (or sideways) the layering:\n" + "\n".join(bad)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    # the checker must see an arrow hidden in a function and written relatively, or it proves nothing
    f = PKG / "quant.py"
    tree_edges = _imports(f)
    assert all(isinstance(line, int) for line, _ in tree_edges)
    probe = PKG / "device" / "api.py"
    mods = {m for _, m in _imports(probe)}
    assert any(m.startswith("edgeattack.link") for m in mods), mods  # a lazy, relative import


@pytest.mark.parametrize("helper,module", [
    ("die_with_parent", "children"), ("spawn", "children"), ("stop", "children"),
    ("sha256_file", "fileid"), ("free_local_port", "link.transport"),
])
def test_shared_helpers_are_defined_once(helper, module):
    """The child-process lifecycle, the file hash and the free local port each live in one place."""
    where = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:  # module-level functions (methods may share names)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == helper:
                where.append(str(path.relative_to(PKG)))
    assert where == [module.replace(".", "/") + ".py"], where


def test_no_private_copies_of_those_helpers():
    """No other module calls prctl, hashes a file with hashlib in a read loop, or binds port 0."""
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        rel = str(path.relative_to(PKG))
        text = path.read_text()
        if "prctl" in text and rel != "children.py":
            offenders.append(f"{rel}: prctl (use edgeattack.children)")
        if 'bind(("127.0.0.1", 0))' in text and rel != "link/transport.py":
            offenders.append(f"{rel}: binds port 0 (use link.transport.free_local_port)")
        if "hashlib.sha256()" in text and "iter(lambda" in text and rel != "fileid.py":
            offenders.append(f"{rel}: hashes a file (use fileid.sha256_file)")
    assert not offenders, "\n".join(offenders)
