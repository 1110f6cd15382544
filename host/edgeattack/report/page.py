"""report.html: one self-contained page (figures as base64 PNG, each with its plotted data as JSON in
a <script type="application/json" id="data-FIGID"> beside it; no external resources, no URLs)."""
from __future__ import annotations

import base64
import html
import json

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
td, th { border: 1px solid #ddd; padding: .2em .5em; text-align: right; }
th { background: #f4f4f4; } td.t { text-align: left; }
.scroll { overflow-x: auto; }
.omitted { color: #777; font-style: italic; } .failed { color: #b00; }
"""


def _esc(v) -> str:
    return html.escape("" if v is None else str(v))


def _json_script(fid: str, data) -> str:
    # "</" may not appear inside a script element; "<\/" is the same JSON string.
    text = json.dumps(data, sort_keys=True, allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="data-{_esc(fid)}">{text}</script>'


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"[{v[0]:.3g}, {v[1]:.3g}]"
    return _esc(v)


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            cls = ' class="t"' if isinstance(v, str) or v is None else ""
            cells.append(f"<td{cls}>{_fmt(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def render(summary: dict, pngs: dict[str, bytes]) -> str:
    """The page for a summary and its figures' PNG bytes (by figure id)."""
    study = summary.get("study") or {}
    name = study.get("name") or "study"
    cells = summary["cells"]
    done = sum(c["status"] == "done" for c in cells)
    failed = [c for c in cells if c["status"] != "done"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>edgeattack report: {_esc(name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>edgeattack report: {_esc(name)}</h1>",
        f"<p>{_esc(study.get('description'))}</p>",
        f"<p>Model {_esc(study.get('model'))} on {_esc(study.get('dataset'))}, seed {_esc(study.get('seed'))}; "
        f"tool {_esc(summary.get('tool_version'))}; {done} of {len(cells)} cells done.</p>",
    ]
    if failed:
        parts.append('<p class="failed">Cells not done (their numbers are missing below): '
                     + ", ".join(f"{_esc(c['kind'])} {_esc(c['hash'])} ({_esc(c['status'])})" for c in failed)
                     + "</p>")

    parts.append("<h2>Findings</h2>")
    n = summary["comparisons"]
    findings = summary["findings"]
    parts.append(f"<p>{n} comparisons were made, each with a paired 95% interval; a finding is stated only "
                 f"where that interval excludes zero ({len(findings)} of {n}). No correction for the "
                 f"number of comparisons is applied: weigh each finding against that count.</p>")
    if findings:
        parts.append("<ul>" + "".join(f"<li>{_esc(f['text'])}</li>" for f in findings) + "</ul>")
    else:
        parts.append("<p>No comparison's interval excludes zero.</p>")

    parts.append("<h2>Figures</h2>")
    for fig in summary["figures"]:
        fid = fig["id"]
        b64 = base64.b64encode(pngs[fid]).decode("ascii")
        parts.append(f'<figure id="fig-{_esc(fid)}"><img alt="{_esc(fig["title"])}" '
                     f'src="data:image/png;base64,{b64}"><figcaption>{_esc(fig["title"])}</figcaption>'
                     f"{_json_script(fid, fig['data'])}</figure>")
    for fig in summary.get("omitted_figures", []):
        parts.append(f'<p class="omitted">Omitted: {_esc(fig["title"])}: {_esc(fig["reason"])}.</p>')

    parts.append("<h2>Tables</h2><p>Every table is also in tables/ as CSV and in summary.json.</p>")
    for tname, rows in summary["tables"].items():
        if not rows or tname == "cells":
            continue
        columns = list(dict.fromkeys(k for r in rows for k in r))
        parts.append(f"<h3>{_esc(tname)}</h3>" + _table(rows, columns))
    parts.append("<h3>cells</h3>" + _table(summary["tables"]["cells"],
                                            ["hash", "kind", "status", "recipe", "attack", "board",
                                             "crafted_on", "host", "device_inferences"]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
