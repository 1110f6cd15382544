"""Sessions: stream clean and adversarial inputs to a device and record every answer.

    inputs   the inputs files (and dataset splits) a session sends, loaded and checked
    records  results.jsonl writing
    runner   Session and run_session (docs/session.md)

Reading and summarizing the results is edgeattack.results' job (it sits below this package).
"""
from __future__ import annotations

from ..results import RESULT_FIELDS, RESULTS, SCHEMA, SUMMARY, read_results, record_key, wilson_interval
from .inputs import InputSet, check_ranges, load_adversarial, load_clean, load_dataset_inputs
from .records import make_record, record_encoder
from .runner import (DEFAULT_INFLIGHT, EnergyUse, Session, energy_use, manifest_expectations,
                     model_expectations, run_session)

__all__ = ["Session", "run_session", "DEFAULT_INFLIGHT", "EnergyUse", "energy_use", "InputSet", "load_clean", "load_adversarial",
           "load_dataset_inputs", "check_ranges", "manifest_expectations", "model_expectations",
           "make_record", "record_encoder",
           # the results' format and readers, re-exported from edgeattack.results for older imports
           "RESULT_FIELDS", "RESULTS", "SCHEMA", "SUMMARY", "read_results", "record_key", "wilson_interval"]
