"""Transfer: craft adversarial examples on each source model, judge them on each target model.

    rows = transfer("pgd", ["float.keras", "a.tflite"], ["a.tflite", "b.tflite"], x, y,
                    epsilons=[0.1], board="emu-tflm")

A source is a float Keras model (its own gradients) or an int8 `.tflite` (crafted on its surrogate);
a target is an int8 `.tflite`, judged on the board (one board started per target, or `port`) or, with
no board, by its surrogate. The matrix of attack success rates is how a user sees whether
adversarial examples cross bit widths and compression recipes on their own models.

Attack success rate on a target (CONVENTIONS): among the samples that target classifies correctly
when clean, the fraction it misclassifies under the transferred attack. Every rate has its Wilson
interval.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError


def _names(paths: list[Path]) -> list[str]:
    """Short unique names: file stems; else folder names (a recipe's out/ptq-int8/model.tflite is
    "ptq-int8"); else folder/file; else the path as given."""
    for names in ([p.stem for p in paths], [p.parent.name for p in paths],
                  [f"{p.parent.name}/{p.name}" for p in paths]):
        if all(names) and len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


@dataclass
class TransferResult:
    attack: str
    params: dict
    norm: str
    seed: int | None
    epsilons: list
    n: int
    board: str | None
    sources: list[dict]
    targets: list[dict]
    rows: list[dict] = field(default_factory=list)

    def summary(self, tool_version: str | None = None) -> dict:
        """transfer.json: the shared header (CONVENTIONS "Files") and one row per (source, target, eps)."""
        shas = {s["model_sha256"] for s in self.sources}
        return {
            "schema": 1, "command": "transfer", "attack": self.attack, "params": self.params,
            "seed": self.seed, "norm": self.norm,
            "source_model_sha256": shas.pop() if len(shas) == 1 else None,
            "target": {"kind": "board" if self.board else "surrogate", "model_sha256": None,
                       "board": self.board},
            "n": self.n, "tool_version": tool_version,
            "sources": self.sources, "targets": self.targets, "epsilons": self.epsilons,
            "metrics": self.rows,
        }

    def csv_text(self) -> str:
        """The matrix: one line per (eps, source), per target its rate and Wilson interval."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        tnames = [t["name"] for t in self.targets]
        w.writerow(["eps", "source"] + [c for t in tnames for c in (t, f"{t}_ci95_lo", f"{t}_ci95_hi")])
        by = {(r["eps"], r["source"], r["target"]): r for r in self.rows}
        for eps in self.epsilons:
            for s in self.sources:
                line = [eps, s["name"]]
                for t in tnames:
                    r = by[(eps, s["name"], t)]
                    ci = r["attack_success_rate_ci95"] or [None, None]
                    line += [_fmt(r["attack_success_rate"]), _fmt(ci[0]), _fmt(ci[1])]
                w.writerow(line)
        return buf.getvalue()


def _fmt(v):
    return "" if v is None else f"{v:.4f}"


def check_models(sources, targets, port=None) -> tuple[list[Path], list[Path]]:
    """The source and target paths, refused (UsageError) before any model is loaded when a file is
    missing or of the wrong kind (a target is what a device runs: an int8 .tflite)."""
    from .run import check_model_file

    src_paths = [Path(s) for s in sources]
    tgt_paths = [Path(t) for t in targets]
    if not src_paths or not tgt_paths:
        raise UsageError("transfer needs at least one --sources model and one --targets model")
    for p in src_paths:
        check_model_file(p, "source")
    for t in tgt_paths:
        check_model_file(t, "target", (".tflite",))
    if port is not None and len(tgt_paths) > 1:
        raise UsageError("--port names one running device, which runs one model: give one target, "
                         "or --board alone to start a board per target")
    return src_paths, tgt_paths


def _source_target(path: Path, data_range):
    from .targets import target

    return target(path, data_range=data_range)


def transfer(attack: str, sources, targets, x, y, *, epsilons, params: dict | None = None,
             board: str | None = None, port: str | None = None, seed: int | None = 0,
             data_range=None, progress=None) -> TransferResult:
    """Craft `attack` on every source, judge every target; returns the rows (see module doc)."""
    from .base import make
    from ..results import wilson_interval
    from .targets import SurrogateTarget, open_target

    src_paths, tgt_paths = check_models(sources, targets, port)
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    atk = make(attack, **(params or {}))
    eps_list = list(epsilons)
    res = TransferResult(attack=attack, params=dict(atk.params), norm=atk.norm, seed=seed,
                         epsilons=eps_list, n=len(x), board=board, sources=[], targets=[])

    def open_judge(path):
        if board is not None or port is not None:
            return open_target(path, board=board, port=port, data_range=data_range)
        return SurrogateTarget(path, data_range=data_range)

    # A running device (--port) is reached before any crafting: an unreachable one fails at once.
    early = open_judge(tgt_paths[0]) if port is not None else None

    try:
        # craft on every source
        crafted = []
        for name, path in zip(_names(src_paths), src_paths):
            src = _source_target(path, data_range)
            out = make(attack, **(params or {}))(src, x, y, epsilons=eps_list, seed=seed)
            ok = out.clean_correct
            res.sources.append({"name": name, "path": str(path), "kind": src.kind,
                                "model_sha256": src.model_sha256 or _sha256(path),
                                "crafting_success_rate": [
                                    _rate(int(out.success[e].sum()), int(ok.sum())) for e in range(len(eps_list))]})
            crafted.append((name, out.x_adv))
            if progress is not None:
                progress(1)
    except BaseException:
        if early is not None:
            early.close()
        raise

    # judge on every target
    for tname, path in zip(_names(tgt_paths), tgt_paths):
        judge = early if early is not None else open_judge(path)
        try:
            info0 = judge.device.info() if judge.kind == "board" else None
            clean = np.asarray(judge.predict(x))
            correct = clean == y
            for sname, x_adv in crafted:
                for e, eps in enumerate(eps_list):
                    pred = np.asarray(judge.predict(x_adv[e]))
                    hit = (pred != y) & correct
                    k, m = int(hit.sum()), int(correct.sum())
                    adv_ok = int((pred == y).sum())
                    res.rows.append({
                        "source": sname, "target": tname, "eps": eps,
                        "attack_success_rate": k / m if m else None,
                        "attack_success_rate_ci95": wilson_interval(k, m),
                        "adversarial_accuracy": adv_ok / len(y),
                        "adversarial_accuracy_ci95": wilson_interval(adv_ok, len(y)),
                        "successes": k, "clean_correct": m, "n": len(y)})
            entry = {"name": tname, "path": str(path), "kind": judge.kind,
                     "model_sha256": judge.model_sha256,
                     "clean_accuracy": float(correct.mean()),
                     "clean_accuracy_ci95": wilson_interval(int(correct.sum()), len(y))}
            if info0 is not None:
                info1 = judge.device.info()
                entry["board"] = judge.device.board
                entry["queries"] = int(judge.queries)
                entry["device_inferences"] = int(info1["inferences"] - info0["inferences"])
            res.targets.append(entry)
        finally:
            if hasattr(judge, "close"):
                judge.close()
        if progress is not None:
            progress(1)
    return res


def _rate(k: int, m: int):
    return k / m if m else None


def _sha256(path: Path) -> str:
    from ..fileid import sha256_file

    return sha256_file(path)


def write_transfer(result: TransferResult, out: str | os.PathLike, force: bool = False,
                   tool_version: str | None = None) -> Path:
    """OUT/transfer.json and OUT/transfer.csv, written whole or not at all."""
    from ..atomic import atomic_dir, json_text

    with atomic_dir(out, force=force) as tmp:
        (tmp / "transfer.json").write_text(json_text(result.summary(tool_version)) + "\n")
        (tmp / "transfer.csv").write_text(result.csv_text())
    return Path(out)
