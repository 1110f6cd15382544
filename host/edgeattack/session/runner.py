"""The session runner: stream clean and adversarial inputs to a device and record every answer.

    summary = run_session("emu-tflm", "model.tflite", "clean.npz", adversarial=["fgsm.npz"],
                          out="RUN", warmup=5, inflight=32)
    summary = run_session("emu-tflm", "model.tflite", dataset="digits", n=200, out="RUN")

writes RUN/results.jsonl (one line per (sample, source, eps): the fields CONVENTIONS.md lists, schema
1; append-only, flushed per record, fsync'd at checkpoints) and RUN/session.json (counts, accuracy and
attack success rate per source and eps with Wilson 95% intervals, latency percentiles, throughput,
board and model identity, device inference counter before and after). See docs/session.md.

`resume=True` continues a run that crashed, was killed or lost its device: finished (id, source, eps)
records are kept (a torn last line is cut off), the rest are sent; nothing is redone, lost or
duplicated. The device must run the same model, and the inputs must be the same files.

Inputs are checked before anything is sent: non-finite values are refused (session.inputs), and a
warning names inputs outside the model's data range (manifest.json beside the model, else the range
its input quantization represents) and labels outside its classes.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DeviceError, UsageError
from ..results import RESULTS, SCHEMA, SUMMARY, read_results, record_key, summarize_records, time_source_of
from ..results.metrics import window_median
from ..results.summary import energy_source_of
from .inputs import InputSet, check_ranges, load_adversarial, load_clean, load_dataset_inputs
from .records import make_record, record_encoder, repair

# Inputs in flight by default. Deep: with small models the device answers in a tenth of a
# millisecond, and only a deep queue keeps it busy while the host is waiting to be scheduled (and
# the host fed while the device is). The device's own window (INFO reply_cache, rx_buffers) caps it,
# and the link shrinks it while it retransmits (link.client's congestion window).
DEFAULT_INFLIGHT = 32


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
            checkpoint_every=100, model_path=None, faults=None, meter=None, energy="auto")
    run(input_sets) -> summary dict (also written to RUN/session.json).

    Energy: records carry the device's estimate (Device.estimate) unless `meter` (an energy meter,
    not yet opened) measures every INFER window; then the records are held until the meter's windows
    are read, and written only when each has its measured energy (a meter that fails writes nothing).
    """

    def __init__(self, device, out_dir, *, resume: bool = False,
                 inflight: int | None = DEFAULT_INFLIGHT,
                 warmup: int = 0, repeat: int = 1, progress: bool = True, checkpoint_every: int = 100,
                 model_path=None, faults=None, meter=None, energy: str = "auto"):
        if warmup < 0 or repeat < 1 or (inflight is not None and inflight < 1):
            raise UsageError("warmup must be >= 0, repeat >= 1 and inflight >= 1")
        if meter is not None and resume:
            raise UsageError("--resume cannot continue a run with measured energy (the meter's windows "
                             "cannot be split across runs): start a new run with another -o")
        self.meter = meter
        self.energy_mode = energy
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
        check_ranges(input_sets, *model_expectations(self.model_path, dev))
        sets, items = self._plan(input_sets)
        fingerprint = {"inputs": [s.describe() for s in input_sets], "warmup": self.warmup,
                       "repeat": self.repeat}
        results_path = self.out / RESULTS
        previous = self._previous_summary(fingerprint, results_path)
        if self.resume:
            repair(results_path)
        done = read_results(results_path) if self.resume else []
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
        meter = self.meter
        created = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        info_before = dev.info()
        run = {"started": _now(), "planned": len(items), "already_done": len(items) - len(todo),
               "sent": 0, "inferences_before": info_before.get("inferences"),
               "inferences_total_before": getattr(dev, "inferences_total", None)}
        runs = (previous or {}).get("runs", []) + [run]
        state = {"fingerprint": fingerprint, "runs": runs, "status": "running"}
        if meter is None:  # a measured run writes nothing until its meter has delivered
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
        f = open(results_path, "a", encoding="utf-8") if meter is None else None
        try:
            if meter is not None:
                meter.open()
                meter.start()
            results = dev.infer_many(inputs(), inflight=self.inflight, repeat=self.repeat, prepared=True)
            for k, res in enumerate(results):  # exhausts the generator: the link ends in step
                rec = self._record(sets, todo[k], res)
                new.append(rec)
                run["sent"] += 1
                if f is not None:
                    f.write(encode(rec) + "\n")
                    f.flush()  # a kill loses at most the line being written
                    if run["sent"] % self.checkpoint_every == 0:
                        os.fsync(f.fileno())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(retries=dev.retries, refresh=False)
            if meter is not None:
                meter.stop()
                self._measured(new, meter.windows(iterations=[self.repeat] * len(new)))
                with open(results_path, "a", encoding="utf-8") as out:
                    out.writelines(encode(rec) + "\n" for rec in new)
                    out.flush()
                    os.fsync(out.fileno())
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
            error = str(exc) or type(exc).__name__
            raise
        finally:
            elapsed = time.monotonic() - start
            if f is not None:
                f.flush()
                os.fsync(f.fileno())
                f.close()
            if meter is not None:
                meter.close()
            if bar is not None:
                bar.close()
            if meter is not None and status != "complete":
                # nothing half-written: no records without their measured energy, no summary
                if created:
                    with contextlib.suppress(OSError):
                        self.out.rmdir()  # only when empty
            else:
                info_after = None
                if status == "complete":
                    info_after = dev.info()
                run.update({"finished": _now(), "elapsed_s": elapsed, "retries": dev.retries,
                            "reconnects": dev.reconnects, "reboots": getattr(dev, "reboots", 0),
                            "inferences_unobserved": getattr(dev, "inferences_unobserved", 0), "queries": dev.queries,
                            "wire_bytes": dev.wire_bytes,
                            "inferences_after": None if info_after is None else info_after.get("inferences")})
                state["status"] = status
                if error:
                    state["error"] = error
                summary = self._write_summary(state, done + new, info_before, info_after, elapsed)
        return summary

    @staticmethod
    def _measured(records: list[dict], windows) -> None:
        """Each record's energy from its INFER window (window k = the k-th INFER sent): the
        window's energy divided by its iterations (MLPerf Tiny)."""
        for rec, window in zip(records, windows, strict=True):
            rec["energy_j"] = window.energy_per_iteration_j
            rec["energy_source"] = "measured"

    def _key(self, sets, it: _Item):
        s = sets[it.set_index]
        return int(s.ids[it.sample]), s.source, s.eps[it.eps_index] if it.eps_index >= 0 else None

    def _record(self, sets, it: _Item, r) -> dict:
        s = sets[it.set_index]
        rec = make_record(id=s.ids[it.sample], source=s.source,
                          eps=s.eps[it.eps_index] if it.eps_index >= 0 else None,
                          label=s.y[it.sample], model_sha256=self.device.model_sha256,
                          board=self.device.board, result=r, warmup=it.warmup)
        if it.eps_index >= 0:  # a black-box attack's cost of this adversarial example
            for k, v in s.per_sample.items():
                rec[k] = v[it.eps_index, it.sample].item()
        return rec

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
        from ..atomic import write_json

        dev = self.device
        p = dev.profile
        run = state["runs"][-1]
        body = [r for r in records if not r.get("warmup")]
        metrics = summarize_records(body)
        clean = next((m for m in metrics if m["source"] == "clean"), None)
        inferences_run = None
        if info_after is not None and run.get("inferences_total_before") is not None \
                and getattr(dev, "inferences_total", None) is not None:
            # summed over the device's boots: a restart mid-run sets its counter back to 0
            inferences_run = dev.inferences_total - run["inferences_total_before"]
        elif info_after is not None and run.get("inferences_before") is not None:
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
                      # how the device's model was confirmed: INFO's SHA-256, or (MLPerf Tiny
                      # firmware that does not report one) only the benchmark name profile% gives
                      "model_check": getattr(dev, "model_check", "sha256"),
                      "protocol": getattr(dev, "protocol", "edgeattack"),
                      "input": info_before.get("input"),
                      "output": info_before.get("output")},
            "inputs": state["fingerprint"]["inputs"],
            "settings": {"warmup": self.warmup, "repeat": self.repeat, "inflight": self.inflight,
                         "faults": self.faults, "energy": self.energy_mode},
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
                       "reboots": getattr(dev, "reboots", 0),
                       "inferences_unobserved": getattr(dev, "inferences_unobserved", 0),
                       "overruns": (info_after or info_before).get("overruns"),
                       "crc_errors": (info_after or info_before).get("crc_errors")},
            "link": {"queries": dev.queries, "wire_bytes": dev.wire_bytes, "retries": dev.retries,
                     "reconnects": dev.reconnects, "reboots": getattr(dev, "reboots", 0),
                     **getattr(dev, "link_checks", {})},
            "time_estimated": any(r.get("time_estimated") for r in body),
            "time_source": time_source_of(body),
            "energy": self._energy_summary(body),
            "runs": state["runs"],
        }
        write_json(self.out / SUMMARY, summary)
        return summary


    def _energy_summary(self, body: list[dict]) -> dict:
        """How energy was obtained and the run's energy per inference (median over windows)."""
        meter, estimate = self.meter, getattr(self.device, "estimate", None)
        energies = [r["energy_j"] for r in body if r.get("energy_j") is not None]
        out = {"mode": self.energy_mode, "source": energy_source_of(body),
               "meter": None if meter is None else {"name": meter.name},
               "estimate": None, "energy_j": window_median(energies), "windows": len(energies),
               "iterations_per_window": self.repeat}
        if meter is None and estimate is not None:
            out["estimate"] = {"active_power_w": estimate.active_power_w, "source": estimate.source}
        return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def manifest_expectations(model_path) -> tuple:
    """(data range, "from <manifest>", classes) from the manifest.json that compress wrote beside
    `model_path` when it describes this very file; (None, None, None) for a foreign model."""
    if model_path is None:
        return None, None, None
    manifest_path = Path(model_path).with_name("manifest.json")
    try:
        manifest = json.loads(manifest_path.read_text())
        # the manifest lists its files' sizes: one that does not list this file is another model's
        if manifest.get("files", {}).get(Path(model_path).name) == Path(model_path).stat().st_size:
            lo, hi = manifest["data_range"]
            return ((float(lo), float(hi)), f"from {manifest_path}",
                    (manifest.get("dataset") or {}).get("classes"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no usable manifest: the caller falls back on the model itself
    return None, None, None


def model_expectations(model_path, dev) -> tuple:
    """(data range, where it comes from, classes or None) of the model a device runs: from the
    manifest.json that compress wrote beside it when it describes this file, else the float range
    the input quantization represents (CONVENTIONS) and the output's size."""
    data_range, range_from, classes = manifest_expectations(model_path)
    if data_range is None and dev.input_scale is not None and np.issubdtype(dev.input_dtype, np.integer):
        info = np.iinfo(dev.input_dtype)
        scale, zp = float(dev.input_scale), int(dev.input_zero_point or 0)
        data_range = (scale * (info.min - zp), scale * (info.max - zp))
        range_from = f"what the model's {dev.input_dtype} input quantization represents"
    if classes is None:
        shape = dev.output_shape[1:] if len(dev.output_shape) > 1 and dev.output_shape[0] == 1 else dev.output_shape
        classes = int(np.prod(shape)) if len(shape) == 1 and shape[0] > 1 else None
    return data_range or (-np.inf, np.inf), range_from or "unknown", classes


@dataclass
class EnergyUse:
    """What `--energy MODE` means on one board (CONVENTIONS): the profile's cited estimate, or its
    meter (not yet opened), or neither. Decided by energy_use() before a board starts, so a bad mode
    (measured without a meter, estimated without constants) is one line with nothing started."""

    mode: str
    estimate: object = None  # energy.Estimate: each Result's energy_j from its device time
    meter: object = None     # energy meter measuring each INFER window (a Session's records)

    def attach(self, dev) -> None:
        """Set the device's estimate (None when measured or off: its Results carry no energy)."""
        dev.estimate = self.estimate

    def session_options(self) -> dict:
        """Session(..., **these): the meter and the mode recorded in session.json."""
        return {"meter": self.meter, "energy": self.mode}


def energy_use(board, energy: str = "auto") -> EnergyUse:
    """`--energy auto|measured|estimated|off` on `board` (a name, a profile file or a BoardProfile);
    used alike by session, attack and study."""
    from ..energy import Estimate, resolve_energy_mode
    from ..profiles import get_profile

    use = resolve_energy_mode(get_profile(board), energy)
    if isinstance(use, Estimate):
        return EnergyUse(energy, estimate=use)
    return EnergyUse(energy, meter=use)


def run_session(board, model, inputs=None, adversarial=(), port: str | None = None, out="run",
                resume: bool = False, warmup: int = 0, inflight: int | None = DEFAULT_INFLIGHT,
                repeat: int = 1, faults=None, progress: bool = True, dataset=None, n: int | None = None,
                seed: int | None = None, energy: str = "auto", **device_options) -> dict:
    """Load the inputs, open (or start) the board, run the session, stop the board. Returns the
    summary (RUN/session.json). `inputs`: clean .npz path (or None); `adversarial`: .npz paths;
    `dataset` (instead of `inputs`): a dataset name or file whose test split gives the clean inputs,
    the first `n` samples (all without n), or `n` drawn with `seed`. `energy`: auto, measured,
    estimated or off (CONVENTIONS; energy.resolve_energy_mode decides from the board's profile)."""
    from ..device.api import open_device

    if dataset is not None and inputs is not None:
        raise UsageError("give the clean inputs either as --inputs FILE.npz or as --dataset NAME, not both")
    if dataset is None and (n is not None or seed is not None):
        raise UsageError("-n and --seed choose samples of --dataset: give --dataset NAME too")
    sets = [load_clean(inputs)] if inputs is not None else []
    if dataset is not None:
        sets.append(load_dataset_inputs(dataset, n, seed))
    sets += [load_adversarial(a) for a in adversarial]
    if not sets:
        raise UsageError("no inputs: give --inputs clean.npz or --dataset NAME -n N, and/or "
                         "--adversarial adv.npz")
    out = Path(out)
    if not resume and ((out / RESULTS).exists() or (out / SUMMARY).exists()):
        # checked before a board starts: nothing to undo
        raise UsageError(f"{out} already holds a session; pass --resume to continue it, or choose another -o")
    # decided before a board starts: a bad --energy, or measured on a board without a meter, is one line
    use = energy_use(board, energy)
    if use.meter is not None and resume:
        raise UsageError("--resume cannot continue a run with measured energy (the meter's windows "
                         "cannot be split across runs): start a new run with another -o")
    with open_device(board, model, port=port, faults=faults, **device_options) as dev:
        use.attach(dev)
        session = Session(dev, out, resume=resume, inflight=inflight, warmup=warmup, repeat=repeat,
                          progress=progress, model_path=model, faults=faults, **use.session_options())
        return session.run(sets)
