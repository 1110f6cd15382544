"""A resolved study as a graph of cells (train -> compress -> attack -> session), each with its hash.

A cell's hash (CONVENTIONS "Files") covers its kind and parameters, its input cells' hashes, the
dataset's SHA-256 and the tool version; a cell that runs on a board also covers the firmware sources
that board runs (the C firmware's sources for edgeattack-c boards). Change any of them and the cell,
and every cell downstream of it, gets a new hash: a rerun computes exactly those.
No TensorFlow here.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from .spec import given_clean_data, study_clean_data

HASH_CHARS = 20


@dataclass
class Cell:
    kind: str                 # train, compress, attack, session, blackbox, transfer, backdoor,
                              # poison, extract, invert
    part: str                 # the study part, or "shared" (train, compress)
    labels: dict
    params: dict
    inputs: list = field(default_factory=list)   # input cells' hashes
    board: str | None = None  # the board it runs on (a scheduled resource), or None
    hash: str = ""

    def spec(self) -> dict:
        """What a worker needs to run it (JSON)."""
        return {"hash": self.hash, "kind": self.kind, "part": self.part, "labels": self.labels,
                "params": self.params, "inputs": self.inputs, "board": self.board}


def cell_hash(kind: str, params: dict, inputs: list[str], context: dict, board: str | None) -> str:
    material = {"kind": kind, "params": params, "inputs": inputs,
                "dataset_sha256": context["dataset_sha256"], "tool_version": context["tool_version"],
                "firmware": context["firmware"].get(board) if board else None}
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def firmware_digest(board: str) -> str | None:
    """The hash of what the board runs beside the model: the C firmware's sources for boards running
    it; None for boards whose runtime ships with the tool (covered by the tool version)."""
    from ..profiles import get_profile

    profile = get_profile(board)
    if profile.runtime != "edgeattack-c":
        return None
    from ..firmware.build import port_for, sources_digest

    return sources_digest(port_for(profile))


def context_for(study: dict, dataset_sha256: str) -> dict:
    from .. import __version__

    boards = {b for p in study["parts"].values() for b in p["boards"]}
    return {"dataset_sha256": dataset_sha256, "tool_version": __version__,
            "firmware": {b: firmware_digest(b) for b in sorted(boards)}}


def build_cells(study: dict, context: dict) -> list[Cell]:
    """Every cell of the study, inputs before the cells that use them."""
    cells: list[Cell] = []
    by_key: dict = {}

    def add(key, kind, part, labels, params, inputs=(), board=None) -> Cell:
        if key in by_key:
            return by_key[key]
        c = Cell(kind, part, {k: v for k, v in labels.items()}, params, list(inputs), board)
        c.hash = cell_hash(kind, params, c.inputs, context, board)
        cells.append(c)
        by_key[key] = c
        return c

    seed, model = study["seed"], study["model"]
    base = {"model": model}
    common = {"dataset": study["dataset"], "seed": seed}

    def train():
        return add(("train",), "train", "shared", {**base, "recipe": "float"},
                   {**common, "model": model, "width": study["width"], "epochs": study["epochs"],
                    "threads": study["threads"]})

    clean = study_clean_data(study)
    given: dict = {}

    def compress(recipe, spec=None):
        """`spec`: an inline recipe (a chained defense) named `recipe`. Every part's recipe gets the
        study's clean data for a step needing it (fine-prune), so one name is one artifact whichever
        part asks first."""
        t = train()
        if spec is None:
            spec = given.setdefault(recipe, given_clean_data(recipe, clean))
        return add(("compress", recipe), "compress", "shared", {**base, "recipe": recipe},
                   {**common, "recipe": spec}, [t.hash])

    parts = study["parts"]
    ev = parts.get("evasion")
    if ev:
        for a in ev["attacks"]:
            aparams = {**common, "attack": a["attack"], "eps": a["eps"], "params": a["params"], "n": ev["n"]}
            crafted = []
            if "float" in ev["crafted_on"]:
                c = add(("attack", a["attack"], "float"), "attack", "evasion",
                        {**base, "recipe": "float", "attack": a["attack"], "crafted_on": "float", "eps": None},
                        {**aparams, "crafted_on": "float"}, [train().hash])
                crafted.append(("float", None, c))
            if "surrogate" in ev["crafted_on"]:
                for r in ev["recipes"]:
                    c = add(("attack", a["attack"], r), "attack", "evasion",
                            {**base, "recipe": r, "attack": a["attack"], "crafted_on": "surrogate", "eps": None},
                            {**aparams, "crafted_on": "surrogate"}, [compress(r).hash])
                    crafted.append(("surrogate", r, c))
            for board in ev["boards"]:
                for r in ev["recipes"]:
                    for on, crafted_r, c in crafted:
                        if crafted_r not in (None, r):
                            continue  # a surrogate's examples are judged on its own model
                        add(("session", c.hash, r, board), "session", "evasion",
                            {**base, "recipe": r, "attack": a["attack"], "board": board, "crafted_on": on,
                             "eps": None},
                            {"board": board, "energy": study["energy"], "warmup": 1},
                            [compress(r).hash, c.hash], board)
    bb = parts.get("blackbox")
    if bb:
        for a in bb["attacks"]:
            for board in bb["boards"]:
                for r in bb["recipes"]:
                    add(("blackbox", a["attack"], r, board), "blackbox", "blackbox",
                        {**base, "recipe": r, "attack": a["attack"], "board": board, "crafted_on": "board",
                         "eps": None},
                        {**common, "attack": a["attack"], "eps": a["eps"], "params": a["params"],
                         "budget": a["budget"], "n": bb["n"], "board": board, "energy": study["energy"]},
                        [compress(r).hash], board)
    tr = parts.get("transfer")
    if tr:
        for board in tr["boards"]:
            srcs = {s: (train() if s == "float" else compress(s)).hash for s in tr["sources"]}
            tgts = {r: compress(r).hash for r in tr["recipes"]}
            add(("transfer", board), "transfer", "transfer",
                {**base, "attack": tr["attack"], "board": board, "recipe": None, "eps": None},
                {**common, "attack": tr["attack"], "eps": tr["eps"], "params": tr["params"], "n": tr["n"],
                 "sources": list(srcs), "targets": list(tgts), "board": board},
                list(dict.fromkeys(list(srcs.values()) + list(tgts.values()))), board)
    bd = parts.get("backdoor")
    if bd:
        for board in bd["boards"]:
            add(("backdoor", board), "backdoor", "backdoor",
                {**base, "attack": "badnets", "board": board, "recipe": None, "eps": None},
                {**common, "model": model, "trigger": bd["trigger"], "target_class": bd["target_class"],
                 "rate": bd["rate"], "epochs": bd["epochs"], "n": bd["n"], "recipes": bd["recipes"],
                 "compress_data": bd["compress_data"], "board": board, "threads": study["threads"],
                 **({"activated": True} if bd.get("activated_by_quantization") else {})},
                [], board)
    de = parts.get("defenses")
    if de:
        for art in de["artifacts"]:
            comp = compress(art["name"], None if isinstance(art["recipe"], str) else art["recipe"])
            for board in de["boards"]:
                add(("evaluate", art["name"], board), "evaluate", "defenses",
                    {**base, "recipe": art["name"], "defense": art["defense"], "chain": art["chain"],
                     "attack": "all", "board": board, "eps": None},
                    {**common, "eps": de["eps"], "n": de["n"], "budget": de["budget"],
                     "params": de["params"], "latency_n": de["latency_n"], "board": board,
                     "energy": study["energy"]},
                    [comp.hash], board)
    po = parts.get("poisoning")
    if po:
        keys = ("kind", "rate", "source_class", "target_class", "eps", "params", "epochs", "prune_ratios",
                "pretrain_epochs", "compress_data", "n", "recipes")
        for board in po["boards"]:
            add(("poison", board), "poison", "poisoning",
                {**base, "attack": po["kind"], "board": board, "recipe": None, "eps": None},
                {**common, "model": model, **{k: po[k] for k in keys}, "board": board,
                 "threads": study["threads"]},
                [], board)
    # extraction and inversion query each recipe's artifact on each board
    for part, kind, keys in (("extraction", "extract", ("budgets", "pool", "augment", "output", "epochs",
                                                        "params")),
                             ("inversion", "invert", ("budget", "classes", "shortcut_budgets", "params"))):
        q = parts.get(part)
        if not q:
            continue
        for board in q["boards"]:
            for r in q["recipes"]:
                add((kind, r, board), kind, part,
                    {**base, "recipe": r, "attack": part, "board": board, "crafted_on": "board", "eps": None},
                    {**common, **{k: q[k] for k in keys}, "replica": model, "width": study["width"],
                     "board": board, "threads": study["threads"]},
                    [compress(r).hash], board)
    for c in cells:
        c.labels["part"] = c.part
    return cells
