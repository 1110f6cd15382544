"""The firmware's C folders form layers, and #include lines only point down.

Layer order (top to bottom; a folder may include its own headers and those of any lower layer):

    4  firmware_models/app, firmware_models/host, firmware_models/fuzz   (programs: main, harness, fuzzers)
    3  boards/<port> (qemu-m4, qemu-m55, ...)                           (a board: vectors, addresses)
    2  boards/cortex-m                                                  (code shared by Cortex-M ports)
    1  firmware_models/proto, firmware_models/runtime                   (protocol; inference runtime)
    0  firmware_models/port (the board interface), firmware_models/util (the string builder)

Folders of one layer do not include each other (proto and runtime are independent). The Makefile
gives each layer only these include paths, so the compiler enforces the same rule; this test reads the
sources so a violation is named even where no build covers it. Generated headers (model_data.h from
the export, ea_board_name.h from the Makefile) are the application's own.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FW, BOARDS = REPO / "firmware_models", REPO / "boards"
GENERATED = {"model_data.h": "app", "ea_board_name.h": "app", "ea_mlperf_model.h": "app",
             "ea_ops_selected.h": "runtime"}  # made by firmware_models/Makefile (EA_OPS)
LAYER = {"app": 4, "host": 4, "fuzz": 4, "boards/cortex-m": 2, "proto": 1, "mlperf": 1, "runtime": 1,
         "port": 0, "util": 0}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def _folder(path: Path) -> str:
    """The layer folder a C file belongs to: firmware_models/<top>/... or boards/<port>/..."""
    if path.is_relative_to(FW):
        return path.relative_to(FW).parts[0]
    return "boards/" + path.relative_to(BOARDS).parts[0]


def _layer(folder: str) -> int:
    return LAYER.get(folder, 3 if folder.startswith("boards/") else -1)


def _sources() -> list[Path]:
    return sorted(p for root in (FW, BOARDS) for p in root.rglob("*") if p.suffix in (".c", ".h"))


def _include_graph() -> dict[str, set[str]]:
    headers = defaultdict(set)
    for p in _sources():
        if p.suffix == ".h":
            headers[p.name].add(_folder(p))
    graph = defaultdict(set)
    for p in _sources():
        here = _folder(p)
        for name in INCLUDE.findall(p.read_text()):
            base = Path(name).name
            owners = headers.get(base) or {GENERATED.get(base, "?")}
            assert len(owners) == 1, f"{p.relative_to(REPO)}: {name} exists in several folders {owners}"
            target = next(iter(owners))
            assert target != "?", f"{p.relative_to(REPO)} includes {name}, which no firmware folder has"
            if target != here:
                graph[here].add(target)
    return graph


def test_every_c_folder_has_a_layer():
    folders = {_folder(p) for p in _sources()}
    unknown = sorted(f for f in folders if _layer(f) < 0)
    assert not unknown, f"C folders without a layer in this test: {unknown} (add them to LAYER)"
    assert {"app", "proto", "runtime", "port", "util", "boards/cortex-m", "boards/qemu-m4"} <= folders


def test_includes_only_point_to_lower_layers():
    wrong = [f"{a} (layer {_layer(a)}) includes {b} (layer {_layer(b)})"
             for a, targets in _include_graph().items() for b in targets if _layer(b) >= _layer(a)]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_include_cycles_between_folders():
    graph = _include_graph()
    state: dict[str, int] = {}

    def visit(node, path):
        if state.get(node) == 1:
            raise AssertionError("include cycle: " + " -> ".join(path + [node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(graph):
        visit(node, [])


def test_the_checker_sees_an_upward_include(tmp_path, monkeypatch):
    """The rule is not vacuous: a runtime file including the protocol's header is reported."""
    fw = tmp_path / "firmware_models"
    for folder, files in {"runtime": {"r.c": '#include "ea_proto.h"\n'}, "proto": {"ea_proto.h": ""}}.items():
        (fw / folder).mkdir(parents=True)
        for name, text in files.items():
            (fw / folder / name).write_text(text)
    (tmp_path / "boards").mkdir()
    monkeypatch.setattr(__import__(__name__), "FW", fw)
    monkeypatch.setattr(__import__(__name__), "BOARDS", tmp_path / "boards")
    graph = _include_graph()
    assert graph == {"runtime": {"proto"}}
    assert _layer("proto") >= _layer("runtime")  # same layer: the upward/sideways rule rejects it
