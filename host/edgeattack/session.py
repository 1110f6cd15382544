"""The session runner: stream clean and adversarial inputs to a device and record every answer.

    summary = run_session("emu-tflm", "model.tflite", "clean.npz", adversarial=["fgsm.npz"],
                          out="RUN", warmup=5, inflight=32)

writes RUN/results.jsonl (one line per (sample, source, eps): the fields CONVENTIONS.md lists, schema
1; append-only, flushed per record, fsync'd at checkpoints) and RUN/session.json (counts, accuracy and
attack success rate per source and eps with Wilson 95% intervals, latency percentiles, throughput,
board and model identity, device inference counter before and after). See docs/session.md.

`resume=True` continues a run that crashed, was killed or lost its device: finished (id, source, eps)
records are kept (a torn last line is cut off), the rest are sent; nothing is redone, lost or
duplicated. The device must run the same model, and the inputs must be the same files.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import DeviceError, UsageError

SCHEMA = 1
RESULT_FIELDS = ("schema", "id", "source", "eps", "label", "model_sha256", "board", "pred",
                 "output_raw", "output", "device_ticks", "device_time_s", "rtt_s", "retries",
                 "warmup", "device_instructions", "time_estimated", "energy_j", "energy_source")
RESULTS = "results.jsonl"
# Inputs in flight by default. Deep: with small models the device answers in a tenth of a
# millisecond, and only a deep queue keeps it busy while the host is waiting to be scheduled (and
# the host fed while the device is). The device's own window (INFO reply_cache, rx_buffers) caps it,
# and the link shrinks it while it retransmits (link.client's congestion window).
DEFAULT_INFLIGHT = 32
SUMMARY = "session.json"


# inputs --------------------------------------------------------------------------------------------

@dataclass
class InputSet:
    """One inputs file. Clean: x is N x sample; adversarial: x is E x N x sample, one row per eps."""

    path: Path
    kind: str  # "clean" | "adversarial"
    source: str
    eps: list  # [None] for clean
    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    sha256: str
    meta: dict = field(default_factory=dict)
    clean_x: np.ndarray | None = None  # adversarial files carry their clean samples too

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.x.shape[1:] if self.kind == "clean" else self.x.shape[2:])

    def describe(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "kind": self.kind, "source": self.source,
                "eps": self.eps, "n": self.n}


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _open_npz(path) -> tuple[Path, dict]:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"inputs file {path} does not exist (give an .npz with x, y[, ids])")
    try:
        with np.load(path, allow_pickle=False) as data:
            return path, {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - zip, pickle and format errors all mean "not our npz"
        raise UsageError(f"inputs file {path} is not a readable .npz ({type(exc).__name__}: {exc}); "
                         f"give a NumPy .npz saved without pickles") from None


def _need(path, data, key, what):
    if key not in data:
        raise UsageError(f"{path}: has no '{key}' array ({what}); it has {', '.join(sorted(data)) or 'nothing'}")
    return data[key]


def _ids_labels(path, data, n) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(_need(path, data, "y", "integer labels"))
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise UsageError(f"{path}: 'y' must be {n} integer labels, got shape {y.shape} {y.dtype}")
    ids = data.get("ids")
    if ids is None:
        ids = np.arange(n, dtype=np.int64)
    ids = np.asarray(ids)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise UsageError(f"{path}: 'ids' must be {n} integers, got shape {ids.shape} {ids.dtype}")
    if len(np.unique(ids)) != n:
        raise UsageError(f"{path}: 'ids' has duplicates (each sample needs its own id)")
    return ids.astype(np.int64), y.astype(np.int64)


def load_clean(path) -> InputSet:
    """A clean inputs .npz: x (N x ...), y (N), optional ids (int64, default 0..N-1)."""
    path, data = _open_npz(path)
    x = np.asarray(_need(path, data, "x", "the samples"))
    if x.ndim < 2 or len(x) == 0:
        raise UsageError(f"{path}: 'x' must hold N >= 1 samples (N x sample shape), got shape {x.shape}")
    ids, y = _ids_labels(path, data, len(x))
    return InputSet(path, "clean", "clean", [None], x, y, ids, _sha256(path))


def load_adversarial(path) -> InputSet:
    """An adversarial .npz (CONVENTIONS: Files): x_adv (E x N x ...), eps (E), y, ids, meta JSON."""
    path, data = _open_npz(path)
    x_adv = np.asarray(_need(path, data, "x_adv", "adversarial examples, E x N x sample"))
    eps = np.asarray(_need(path, data, "eps", "the E epsilons")).reshape(-1)
    if x_adv.ndim < 3 or x_adv.shape[0] != len(eps) or x_adv.shape[1] == 0:
        raise UsageError(f"{path}: 'x_adv' must be E x N x sample with E = len(eps) = {len(eps)}, got "
                         f"shape {x_adv.shape}")
    ids, y = _ids_labels(path, data, x_adv.shape[1])
    meta_raw = _need(path, data, "meta", "a 0-d string array holding JSON with the attack name")
    try:
        meta = json.loads(str(np.asarray(meta_raw).reshape(()).item()))
        source = str(meta["attack"])
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{path}: 'meta' must be a JSON object with an 'attack' name") from None
    if source == "clean" or not source:
        raise UsageError(f"{path}: meta attack name {source!r} is reserved; name the attack")
    eps_list = [float(e) for e in eps]
    if len(set(eps_list)) != len(eps_list):
        raise UsageError(f"{path}: 'eps' has repeated values {eps_list}")
    clean_x = data.get("x")
    if clean_x is not None and tuple(clean_x.shape) != tuple(x_adv.shape[1:]):
        raise UsageError(f"{path}: 'x' shape {clean_x.shape} does not match one row of 'x_adv' "
                         f"{x_adv.shape[1:]}")
    return InputSet(path, "adversarial", source, eps_list, x_adv, y, ids, _sha256(path), meta, clean_x)


# results file --------------------------------------------------------------------------------------

def record_key(rec: dict):
    """The identity of a non-warm-up record: (id, source, eps)."""
    eps = rec["eps"]
    return int(rec["id"]), str(rec["source"]), None if eps is None else float(eps)


def read_results(path: Path, repair: bool = False) -> list[dict]:
    """Records of a results.jsonl. A torn last line (a crash mid-write) is ignored, and with
    repair=True cut off the file so appending continues on a clean line."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # everything after the last newline is a torn write
    records = []
    for number, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or rec.get("schema") != SCHEMA:
                raise ValueError("not a schema 1 record")
        except ValueError as exc:
            raise UsageError(f"{path}: line {number} is not a valid record ({exc}); the file is "
                             f"damaged: move it away and start a new run") from None
        records.append(rec)
    if repair and end != len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    return records


def record_encoder():
    """A function giving exactly json.dumps(obj) for a results record, in about half the time.

    json.dumps builds a new C encoder (and a closure) for every call: at thousands of records per
    second that is a visible share of the host's time per record. This builds json.dumps' own C
    encoder once, with json.dumps' default settings, so the text is the same; only the circular-
    reference check is off (a record has no cycles). json.dumps itself where the C accelerator is
    missing.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.dumps
    default = json.JSONEncoder().default  # TypeError for what JSON cannot hold, as json.dumps
    encoder = make(None, default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False,
                   False, True)
    return lambda obj: "".join(encoder(obj, 0))


# statistics ----------------------------------------------------------------------------------------

def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> list | None:
    """Wilson score 95% interval for k successes in n trials ([lo, hi]; None when n == 0)."""
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _percentiles(values) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q}": float(np.percentile(arr, q)) for q in (50, 90, 99)}


def summarize_records(records: Iterable[dict]) -> list[dict]:
    """Metrics per (source, eps) from non-warm-up records (see docs/session.md)."""
    groups: dict = {}
    for rec in records:
        if rec.get("warmup"):
            continue
        groups.setdefault((rec["source"], rec["eps"]), []).append(rec)
    clean_correct = {int(r["id"]): r["pred"] == r["label"] for r in groups.get(("clean", None), [])}
    rows = []
    for (source, eps), recs in sorted(groups.items(),
                                      key=lambda kv: (kv[0][0] != "clean", kv[0][0], kv[0][1] or 0.0)):
        n = len(recs)
        correct = sum(r["pred"] == r["label"] for r in recs)
        row = {"source": source, "eps": eps, "n": n, "correct": correct, "accuracy": correct / n,
               "accuracy_ci95": wilson_interval(correct, n)}
        if source != "clean":
            # CONVENTIONS: success rate over samples the device got right when clean (untargeted).
            eligible = [r for r in recs if clean_correct.get(int(r["id"]))]
            successes = sum(r["pred"] != r["label"] for r in eligible)
            row.update({"clean_correct": len(eligible), "successes": successes,
                        "attack_success_rate": successes / len(eligible) if eligible else None,
                        "attack_success_ci95": wilson_interval(successes, len(eligible)),
                        "without_clean_record": sum(int(r["id"]) not in clean_correct for r in recs)})
        energies = [r["energy_j"] for r in recs if r.get("energy_j") is not None]
        row.update({"latency_s": _percentiles(r["device_time_s"] for r in recs),
                    "rtt_s": _percentiles(r["rtt_s"] for r in recs),
                    "time_estimated": any(r.get("time_estimated") for r in recs),
                    "energy_j_mean": float(np.mean(energies)) if energies else None})
        rows.append(row)
    return rows


# the session ---------------------------------------------------------------------------------------

@dataclass
class _Item:
    """One planned record: input set, eps row (or -1 for clean), sample index, warm-up flag."""

    set_index: int
    eps_index: int
    sample: int
    warmup: bool = False


class Session:
    """Runs a planned list of inputs against one open Device, writing RUN/ (module docstring).

    Session(device, out_dir, resume=False, inflight=32, warmup=0, repeat=1, progress=True,
            checkpoint_every=100, model_path=None, faults=None)
    run(input_sets) -> summary dict (also written to RUN/session.json).
    """

    def __init__(self, device, out_dir, *, resume: bool = False,
                 inflight: int | None = DEFAULT_INFLIGHT,
                 warmup: int = 0, repeat: int = 1, progress: bool = True, checkpoint_every: int = 100,
                 model_path=None, faults=None):
        if warmup < 0 or repeat < 1 or (inflight is not None and inflight < 1):
            raise UsageError("warmup must be >= 0, repeat >= 1 and inflight >= 1")
        self.device = device
        self.out = Path(out_dir)
        self.resume = resume
        self.inflight = inflight
        self.warmup = warmup
        self.repeat = repeat
        self.progress = progress
        self.checkpoint_every = max(1, checkpoint_every)
        self.model_path = model_path
        self.faults = faults if isinstance(faults, (str, type(None))) else str(faults)

    # planning -----------------------------------------------------------------------------------

    def _plan(self, sets: list[InputSet]) -> tuple[list[InputSet], list[_Item]]:
        """Order: warm-ups, clean samples, then each adversarial file eps by eps. Adversarial ids
        missing from the clean inputs get clean records from the file's own x, so every attack
        success rate has the device's own clean answer behind it."""
        sets = list(sets)
        clean_ids = {int(i) for s in sets if s.kind == "clean" for i in s.ids}
        extra = []
        for s in sets:
            if s.kind == "adversarial" and s.clean_x is not None:
                missing = [j for j, i in enumerate(s.ids) if int(i) not in clean_ids]
                if missing:
                    extra.append(InputSet(s.path, "clean", "clean", [None], s.clean_x[missing],
                                          s.y[missing], s.ids[missing], s.sha256))
                    clean_ids.update(int(s.ids[j]) for j in missing)
        sets = [s for s in sets if s.kind == "clean"] + extra + [s for s in sets if s.kind != "clean"]
        items, seen = [], {}
        for si, s in enumerate(sets):
            for ei, eps in enumerate(s.eps):
                for j, i in enumerate(s.ids):
                    key = (int(i), s.source, eps)
                    if key in seen:
                        raise UsageError(f"{s.path}: sample id {int(i)} for source {s.source!r} eps "
                                         f"{eps} is also in {seen[key]} (each (id, source, eps) once)")
                    seen[key] = s.path
                    items.append(_Item(si, ei if s.kind != "clean" else -1, j))
        if self.warmup:
            if not items:
                raise UsageError("no inputs to warm up with")
            first = items[0]
            pool = [it for it in items if it.set_index == first.set_index and it.eps_index == first.eps_index]
            warm = [_Item(pool[k % len(pool)].set_index, pool[k % len(pool)].eps_index,
                          pool[k % len(pool)].sample, warmup=True) for k in range(self.warmup)]
            items = warm + items
        return sets, items

    # running ------------------------------------------------------------------------------------

    def run(self, input_sets: list[InputSet]) -> dict:
        dev = self.device
        for s in input_sets:
            dev.check_shape(s.sample_shape, what=str(s.path))
        sets, items = self._plan(input_sets)
        fingerprint = {"inputs": [s.describe() for s in input_sets], "warmup": self.warmup,
                       "repeat": self.repeat}
        results_path = self.out / RESULTS
        previous = self._previous_summary(fingerprint, results_path)
        done = read_results(results_path, repair=True) if self.resume else []
        for rec in done:
            if rec.get("model_sha256") != dev.model_sha256:
                raise DeviceError(f"{results_path} holds results of model sha256 {rec.get('model_sha256')}, "
                                  f"but the device runs {dev.model_sha256}: resume with the same model, "
                                  f"or start a new run with another -o")
        done_keys = {record_key(r) for r in done if not r.get("warmup")}
        if len(done_keys) != sum(not r.get("warmup") for r in done):
            raise UsageError(f"{results_path} has duplicate records (the file was edited or mixed "
                             f"with another run): start a new run with another -o")
        warm_done = sum(bool(r.get("warmup")) for r in done)
        todo, warm_seen = [], 0
        for it in items:
            if it.warmup:
                warm_seen += 1
                if warm_seen > warm_done:
                    todo.append(it)
            elif self._key(sets, it) not in done_keys:
                todo.append(it)

        prepared = [dev.prepare(s.x, what=str(s.path)) for s in sets]  # quantize each file once
        self.out.mkdir(parents=True, exist_ok=True)
        info_before = dev.info()
        run = {"started": _now(), "planned": len(items), "already_done": len(items) - len(todo),
               "sent": 0, "inferences_before": info_before.get("inferences")}
        runs = (previous or {}).get("runs", []) + [run]
        state = {"fingerprint": fingerprint, "runs": runs, "status": "running"}
        self._write_summary(state, done, info_before, None, 0.0)

        def inputs():
            for it in todo:
                x = prepared[it.set_index]
                yield x[it.sample] if it.eps_index < 0 else x[it.eps_index, it.sample]

        bar = self._bar(len(todo), len(items) - len(todo))
        new = []
        start = time.monotonic()
        status, error = "complete", None
        encode = record_encoder()
        f = open(results_path, "a", encoding="utf-8")
        try:
            results = dev.infer_many(inputs(), inflight=self.inflight, repeat=self.repeat, prepared=True)
            for k, res in enumerate(results):  # exhausts the generator: the link ends in step
                rec = self._record(sets, todo[k], res)
                f.write(encode(rec) + "\n")
                f.flush()  # a kill loses at most the line being written
                new.append(rec)
                run["sent"] += 1
                if run["sent"] % self.checkpoint_every == 0:
                    os.fsync(f.fileno())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(retries=dev.retries, refresh=False)
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
            error = str(exc) or type(exc).__name__
            raise
        finally:
            elapsed = time.monotonic() - start
            f.flush()
            os.fsync(f.fileno())
            f.close()
            if bar is not None:
                bar.close()
            info_after = None
            if status == "complete":
                info_after = dev.info()
            run.update({"finished": _now(), "elapsed_s": elapsed, "retries": dev.retries,
                        "reconnects": dev.reconnects, "queries": dev.queries,
                        "wire_bytes": dev.wire_bytes,
                        "inferences_after": None if info_after is None else info_after.get("inferences")})
            state["status"] = status
            if error:
                state["error"] = error
            summary = self._write_summary(state, done + new, info_before, info_after, elapsed)
        return summary

    def _key(self, sets, it: _Item):
        s = sets[it.set_index]
        return int(s.ids[it.sample]), s.source, s.eps[it.eps_index] if it.eps_index >= 0 else None

    def _record(self, sets, it: _Item, r) -> dict:
        s = sets[it.set_index]
        raw_list = r.output_raw.tolist()  # Python ints for integer outputs, floats otherwise
        return {
            "schema": SCHEMA, "id": int(s.ids[it.sample]), "source": s.source,
            "eps": s.eps[it.eps_index] if it.eps_index >= 0 else None, "label": int(s.y[it.sample]),
            "model_sha256": self.device.model_sha256, "board": self.device.board, "pred": int(r.pred),
            "output_raw": raw_list, "output": r.output.tolist(),
            "device_ticks": int(r.device_ticks), "device_time_s": float(r.device_time_s),
            "rtt_s": float(r.rtt_s), "retries": int(r.retries), "warmup": bool(it.warmup),
            "device_instructions": r.device_instructions, "time_estimated": bool(r.time_estimated),
            "energy_j": r.energy_j, "energy_source": r.energy_source,
        }

    def _bar(self, total: int, initial: int):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total + initial, initial=initial, unit="rec", file=sys.stderr,
                    desc=self.device.board, dynamic_ncols=True, mininterval=0.5)

    # summary ------------------------------------------------------------------------------------

    def _previous_summary(self, fingerprint: dict, results_path: Path) -> dict | None:
        summary_path = self.out / SUMMARY
        if not self.resume:
            if results_path.exists() or summary_path.exists():
                raise UsageError(f"{self.out} already holds a session; pass --resume to continue it, "
                                 f"or choose another -o")
            return None
        if not summary_path.exists():
            return None
        try:
            previous = json.loads(summary_path.read_text())
        except ValueError:
            return None  # written atomically, so only a foreign file gets here: rebuilt below
        old = {k: previous.get("settings", {}).get(k) for k in ("warmup", "repeat")}
        old_inputs = [(i.get("path"), i.get("sha256")) for i in previous.get("inputs", [])]
        new_inputs = [(i["path"], i["sha256"]) for i in fingerprint["inputs"]]
        if [h for _, h in old_inputs] != [h for _, h in new_inputs] or \
                old != {"warmup": fingerprint["warmup"], "repeat": fingerprint["repeat"]}:
            raise UsageError(f"{self.out} was run with other inputs or settings ({old_inputs}, {old}); "
                             f"resume with the same --inputs/--adversarial/--warmup/--repeat, or "
                             f"choose another -o")
        return previous

    def _write_summary(self, state: dict, records: list[dict], info_before: dict,
                       info_after: dict | None, elapsed: float) -> dict:
        from .atomic import write_json

        dev = self.device
        p = dev.profile
        run = state["runs"][-1]
        body = [r for r in records if not r.get("warmup")]
        metrics = summarize_records(body)
        clean = next((m for m in metrics if m["source"] == "clean"), None)
        inferences_run = None
        if info_after is not None and run.get("inferences_before") is not None:
            inferences_run = info_after.get("inferences", 0) - run["inferences_before"]
        summary = {
            "schema": SCHEMA,
            "status": state["status"],
            **({"error": state["error"]} if state.get("error") else {}),
            "board": {"name": p.name, "kind": p.kind, "runtime": p.runtime, "port": getattr(dev, "port_url", None),
                      "device_board": info_before.get("board"), "device_runtime": info_before.get("runtime"),
                      "tick_hz": dev.tick_hz, "model_chip": p.model_chip,
                      "model_clock_hz": p.model_clock_hz, "model_cpi": p.model_cpi},
            "model": {"path": None if self.model_path is None else str(self.model_path),
                      "sha256": dev.model_sha256,
                      "file_sha256": getattr(dev, "model_file_sha256", None),
                      "input": info_before.get("input"),
                      "output": info_before.get("output")},
            "inputs": state["fingerprint"]["inputs"],
            "settings": {"warmup": self.warmup, "repeat": self.repeat, "inflight": self.inflight,
                         "faults": self.faults},
            "counts": {"planned": run["planned"], "records": len(body),
                       "warmup_records": len(records) - len(body),
                       "sent_this_run": run["sent"], "done_before_this_run": run["already_done"],
                       "remaining": run["planned"] - len(records)},
            "clean_accuracy": None if clean is None else clean["accuracy"],
            "clean_accuracy_ci95": None if clean is None else clean["accuracy_ci95"],
            "metrics": metrics,
            "throughput": {"elapsed_s": elapsed,
                           "records_per_s": run["sent"] / elapsed if elapsed > 0 else None},
            "device": {"inferences_before": run.get("inferences_before"),
                       "inferences_after": None if info_after is None else info_after.get("inferences"),
                       "inferences_run": inferences_run,
                       "records_sent": run["sent"],
                       "inferences_expected": run["sent"] * self.repeat,
                       "overruns": (info_after or info_before).get("overruns"),
                       "crc_errors": (info_after or info_before).get("crc_errors")},
            "link": {"queries": dev.queries, "wire_bytes": dev.wire_bytes, "retries": dev.retries,
                     "reconnects": dev.reconnects},
            "time_estimated": p.kind == "qemu",
            "runs": state["runs"],
        }
        write_json(self.out / SUMMARY, summary)
        return summary


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run_session(board, model, inputs=None, adversarial=(), port: str | None = None, out="run",
                resume: bool = False, warmup: int = 0, inflight: int | None = DEFAULT_INFLIGHT,
                repeat: int = 1,
                faults=None, progress: bool = True, **device_options) -> dict:
    """Load the inputs, open (or start) the board, run the session, stop the board. Returns the
    summary (RUN/session.json). `inputs`: clean .npz path (or None); `adversarial`: .npz paths."""
    from .device.api import open_device

    sets = [load_clean(inputs)] if inputs is not None else []
    sets += [load_adversarial(a) for a in adversarial]
    if not sets:
        raise UsageError("no inputs: give --inputs clean.npz and/or --adversarial adv.npz")
    out = Path(out)
    if not resume and ((out / RESULTS).exists() or (out / SUMMARY).exists()):
        # checked before a board starts: nothing to undo
        raise UsageError(f"{out} already holds a session; pass --resume to continue it, or choose another -o")
    with open_device(board, model, port=port, faults=faults, **device_options) as dev:
        session = Session(dev, out, resume=resume, inflight=inflight, warmup=warmup, repeat=repeat,
                          progress=progress, model_path=model, faults=faults)
        return session.run(sets)
