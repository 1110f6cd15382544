"""The study report: summary.json, tables/*.csv and a self-contained report.html from a run folder.

    from edgeattack.report import build_summary, write_report
    summary = build_summary("RUN")     # reads RUN/study.yaml and RUN/cells/*/ only; writes nothing
    path = write_report("RUN")         # RUN/summary.json, RUN/tables/*.csv, RUN/report.html

It reads run folders (the layout CONVENTIONS "Files" and docs/report.md describe) through
edgeattack.results and nothing above it. Importing it imports neither TensorFlow nor matplotlib:
figures are drawn only when the report is written (docs/report.md).
"""
from __future__ import annotations

from .summary import build_summary
from .write import write_report

__all__ = ["build_summary", "write_report"]
