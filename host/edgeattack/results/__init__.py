"""Reading and summarizing session results: the results.jsonl and session.json formats, their
readers, and the statistics over them (Wilson intervals, percentiles, metrics per source and eps).

It knows no device and no session runner (layering: session > results > device), so the report and
the study runner can read run folders with it alone.
"""
from __future__ import annotations

from .readers import (RESULT_FIELDS, RESULTS, SCHEMA, SUMMARY, read_results, read_summary,
                      record_key)
from .stats import percentiles, wilson_interval
from .summary import summarize_records, time_source_of

__all__ = ["RESULT_FIELDS", "RESULTS", "SCHEMA", "SUMMARY", "read_results", "read_summary", "record_key",
           "percentiles", "wilson_interval", "summarize_records", "time_source_of"]
