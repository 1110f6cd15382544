"""Judging a (possibly poisoned) model: predictions of a float Keras model on the host, or of an
int8 .tflite on a board (one on-device inference per input, through open_device), and the metric
rows the poisoning summaries hold (CONVENTIONS "Metrics": backdoor attack success rate)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...results import wilson_interval


def predict_float(model, arrays) -> list[np.ndarray]:
    """Classes the float Keras model gives each array's samples."""
    return [np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1).astype(np.int64)
            for x in arrays]


def predict_board(tflite, board: str, arrays, *, port: str | None = None, progress: bool = True,
                  desc: str = "device") -> tuple[list[np.ndarray], dict]:
    """Classes the board running `tflite` gives each array's samples, and the device's identity and
    inference counter (inferences run == inputs sent is checked: one inference per input)."""
    from tqdm.auto import tqdm

    from ...device.api import open_device
    from ...errors import DeviceError

    sizes = [len(x) for x in arrays]
    x_all = np.concatenate([np.asarray(x, np.float32) for x in arrays])
    with open_device(board, Path(tflite), port=port) as dev:
        before = int(dev.info().get("inferences", 0) or 0)
        preds = np.empty(len(x_all), np.int64)
        bar = tqdm(total=len(x_all), desc=desc, unit="inf", leave=False, disable=not progress)
        for i, r in enumerate(dev.infer_many(iter(x_all))):
            preds[i] = r.pred
            bar.update(1)
        bar.close()
        after = int(dev.info().get("inferences", 0) or 0)
        identity = {"board": dev.board, "model_sha256": dev.model_sha256,
                    "device_inferences": after - before}
    if identity["device_inferences"] != len(x_all):
        raise DeviceError(f"board {board}: ran {identity['device_inferences']} inferences for "
                          f"{len(x_all)} inputs (expected one each)")
    return list(np.split(preds, np.cumsum(sizes)[:-1])), identity


def rate(k: int, n: int) -> tuple[float | None, list | None]:
    return (k / n if n else None), wilson_interval(int(k), int(n))


def clean_metrics(pred, y) -> dict:
    acc, ci = rate(int(np.sum(pred == y)), len(y))
    return {"n": int(len(y)), "clean_accuracy": acc, "clean_accuracy_ci95": ci}


def backdoor_metrics(pred_clean, pred_triggered, y, target_class: int) -> dict:
    """CONVENTIONS: among inputs whose true class is not the target and that the model classifies
    correctly when clean, the fraction classified as the target once triggered."""
    y = np.asarray(y)
    eligible = (y != target_class) & (np.asarray(pred_clean) == y)
    hits = int(np.sum(eligible & (np.asarray(pred_triggered) == target_class)))
    asr, ci = rate(hits, int(eligible.sum()))
    return {"backdoor_eligible": int(eligible.sum()), "backdoor_successes": hits,
            "attack_success_rate": asr, "attack_success_rate_ci95": ci}


def targeted_flip_metrics(pred, y, source_class: int, target_class: int) -> dict:
    """Targeted label flipping: the fraction of source-class test samples classified as the target."""
    src = np.asarray(y) == source_class
    hits = int(np.sum(np.asarray(pred)[src] == target_class))
    asr, ci = rate(hits, int(src.sum()))
    return {"backdoor_eligible": int(src.sum()), "backdoor_successes": hits,
            "attack_success_rate": asr, "attack_success_rate_ci95": ci}


def untargeted_metrics() -> dict:
    return {"attack_success_rate": None, "attack_success_rate_ci95": None}
