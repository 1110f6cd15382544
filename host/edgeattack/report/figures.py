"""Drawing the report's figures from their data (summary.json "figures"): PNG bytes per figure.

Each function plots exactly the numbers in the figure's data, nothing computed anew, so the data
embedded beside a figure is what it shows. matplotlib is imported only here, when a report is
written, with the Agg backend (no display).
"""
from __future__ import annotations

import io
import math

ESTIMATED_HATCH = "//"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # no metadata: the same numbers give the same bytes (matplotlib writes its version otherwise)
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def _grid(n: int, width: float = 6.0, height: float = 4.0):
    plt = _plt()
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def robust_accuracy(data: dict) -> bytes:
    boards = sorted({s["board"] for s in data["series"]}, key=str)
    fig, axes = _grid(len(boards))
    for ax, board in zip(axes, boards):
        for s in (s for s in data["series"] if s["board"] == board):
            style = "--" if s["attack"] == "all" else "-"
            line, = ax.plot(s["x"], s["y"], style, marker="o", label=s["label"].replace(f" · {board}", ""))
            ax.fill_between(s["x"], s["lo"], s["hi"], color=line.get_color(), alpha=0.15)
        ax.set_title(f"{board}")
        ax.set_xlabel(data["x_label"])
        ax.set_ylabel(data["y_label"])
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"bands: {data['band']}", fontsize=9)
    return _png(fig)


def latency(data: dict) -> bytes:
    plt = _plt()
    panels = data["panels"]
    heights = [1.2 + 0.35 * len(p["boxes"]) for p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, p in zip((row[0] for row in axes), panels):
        scale, unit = _time_unit(max(b["p99"] for b in p["boxes"]))
        stats = [{"label": b["label"], "med": b["p50"] * scale, "q1": b["p25"] * scale,
                  "q3": b["p75"] * scale, "whislo": b["p1"] * scale, "whishi": b["p99"] * scale,
                  "mean": b["mean"] * scale, "fliers": []} for b in p["boxes"]]
        # horizontal boxes, first at the top: labels stay readable however many sources there are
        artists = ax.bxp(stats, orientation="horizontal", showmeans=True, patch_artist=True)
        ax.invert_yaxis()
        for box, b in zip(artists["boxes"], p["boxes"]):
            box.set_facecolor("#9ecae1" if b["source"] == "clean" else "#fdae6b")
        spread = max(b["p99"] for b in p["boxes"]) / max(min(b["p1"] for b in p["boxes"]), 1e-12)
        if spread > 20:  # host wall time has long tails: a log axis keeps the boxes visible
            ax.set_xscale("log")
        ax.set_title(f"{p['board']}: {p['time_label']}", fontsize=9)
        ax.set_xlabel(f"{unit} per inference")
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"boxes: {data['box']}; whiskers: {data['whiskers']}; triangle: mean", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _time_unit(seconds: float):
    if seconds < 1e-3:
        return 1e6, "us"
    if seconds < 1:
        return 1e3, "ms"
    return 1.0, "s"


def energy(data: dict) -> bytes:
    plt = _plt()
    bars = data["bars"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(bars) + 2), 4.5))
    values = [b["energy_j"] for b in bars]
    scale, unit = (1e6, "uJ") if max(values) < 1e-3 else (1e3, "mJ") if max(values) < 1 else (1.0, "J")
    for i, b in enumerate(bars):
        estimated = b["energy_source"] != "measured"
        ax.bar(i, b["energy_j"] * scale, color="white" if estimated else "#3182bd", edgecolor="#3182bd",
               hatch=ESTIMATED_HATCH if estimated else None,
               label="estimated (profile constants)" if estimated else "measured (meter)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_xticks(range(len(bars)), [b["label"] for b in bars], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{unit} per inference (median)")
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


def transfer(data: dict) -> bytes:
    panels = data["panels"]
    fig, axes = _grid(len(panels), width=5.5, height=4.5)
    for ax, p in zip(axes, panels):
        import numpy as np

        grid = np.array([[np.nan if v is None else v for v in row] for row in p["asr"]], dtype=float)
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(p["targets"])), p["targets"], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(p["sources"])), p["sources"], fontsize=8)
        ax.set_xlabel("target (judged)")
        ax.set_ylabel("source (crafted on)")
        for i in range(len(p["sources"])):
            for j in range(len(p["targets"])):
                v = p["asr"][i][j]
                if v is not None:
                    ax.text(j, i, f"{v:.2f}\n[{p['lo'][i][j]:.2f}, {p['hi'][i][j]:.2f}]", ha="center",
                            va="center", fontsize=7, color="white" if v < 0.6 else "black")
        ax.set_title(f"{p['attack']} eps {p['eps']:g} on {p['board'] or 'surrogates'}", fontsize=9)
        fig.colorbar(im, ax=ax, label=data["value"])
    return _png(fig)


def queries(data: dict) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in data["series"]:
        xs, ys = [0] + s["x"], [0.0] + s["y"]
        if s.get("budget"):
            xs, ys = xs + [s["budget"]], ys + [ys[-1]]
        ax.step(xs, ys, where="post", label=f"{s['label']} (n={s['n']})")
    ax.set_xlabel(data["x_label"])
    ax.set_ylabel(data["y_label"])
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def _rate_bars(ax, bars: list[dict], y_label: str) -> None:
    """Success (red) and clean accuracy (green) side by side per artifact, Wilson bars on each."""
    xs = range(len(bars))
    for offset, key, lo, hi, color, name in (
            (-0.2, "attack_success_rate", "lo", "hi", "#de2d26", "attack success"),
            (0.2, "clean_accuracy", "clean_lo", "clean_hi", "#31a354", "clean accuracy")):
        vals = [b[key] if b[key] is not None else 0.0 for b in bars]
        err = [[max(0.0, v - (b[lo] if b[lo] is not None else v)) for v, b in zip(vals, bars)],
               [max(0.0, (b[hi] if b[hi] is not None else v) - v) for v, b in zip(vals, bars)]]
        ax.bar([x + offset for x in xs], vals, width=0.4, color=color, yerr=err, capsize=3, label=name)
    ax.set_xticks(list(xs), [b["artifact"] for b in bars], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(y_label + " (Wilson 95% bars)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")


def _rate_lines(ax, series: list[dict], x_label: str, y_label: str) -> None:
    """Success (solid) and clean accuracy (dotted) against x per series, Wilson bands."""
    for s in series:
        color = None
        for key, lo, hi, style, what in (("attack_success_rate", "lo", "hi", "-", "success"),
                                         ("clean_accuracy", "clean_lo", "clean_hi", ":", "clean acc.")):
            pts = [(x, p) for x, p in zip(s["x"], s["points"]) if p[key] is not None]
            if not pts:
                continue
            xs = [x for x, _ in pts]
            line, = ax.plot(xs, [p[key] for _, p in pts], style, marker="o", color=color,
                            label=f"{s['label']} {what}")
            color = line.get_color()
            ax.fill_between(xs, [p[lo] for _, p in pts], [p[hi] for _, p in pts], color=color, alpha=0.12)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label + " (Wilson 95% bands)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def backdoor(data: dict) -> bytes:
    panels = data["panels"]
    fig, axes = _grid(len(panels), width=6.5, height=4.5)
    for ax, p in zip(axes, panels):
        _rate_bars(ax, p["bars"], data["y_label"])
        ax.set_title(f"{p['attack']} ({p.get('trigger')}) on {p['board']}", fontsize=9)
    return _png(fig)


def poisoning(data: dict) -> bytes:
    panels = data["panels"]
    fig, axes = _grid(len(panels), width=6.5, height=4.5)
    for ax, p in zip(axes, panels):
        if p["type"] == "bars":
            _rate_bars(ax, p["bars"], data["y_label"])
        else:
            _rate_lines(ax, p["series"], p["x_label"], data["y_label"])
        if p["type"] == "rates":
            ax.set_title("against the poison rate", fontsize=9)
        else:
            ax.set_title(f"{p['kind']} at rate {p['rate']:g} on {p['board']}", fontsize=9)
    return _png(fig)


def inversion(data: dict) -> bytes:
    import numpy as np

    plt = _plt()
    panels = data["panels"]
    cols = 3 if any(p["curve"]["x"] for p in panels) else 2
    fig, axes = plt.subplots(len(panels), cols, figsize=(5.0 * cols, 4.0 * len(panels)), squeeze=False)
    for row, p in zip(axes, panels):
        width = 0.8 / len(p["routes"])
        for ax, key, label in ((row[0], "ssim", data["ssim_label"]),
                               (row[1], "confidence", data["confidence_label"])):
            for i, route in enumerate(p["routes"]):
                xs = [k + (i - (len(p["routes"]) - 1) / 2) * width for k in range(len(p["classes"]))]
                ax.bar(xs, [np.nan if v is None else v for v in p[key][i]], width=width, label=route)
                if key == "ssim":  # where the search started: what the queries added
                    ax.plot(xs, [np.nan if v is None else v for v in p["ssim_start"][i]], "kx",
                            label="start image" if i == 0 else None)
            ax.set_xticks(range(len(p["classes"])), [str(c) for c in p["classes"]])
            ax.set_xlabel("class inverted")
            ax.set_ylabel(label)
            ax.set_title(f"{p['label']}: {label}", fontsize=9)
            ax.grid(alpha=0.3, axis="y")
            ax.legend(fontsize=7, title="route", title_fontsize=7)
        row[1].set_ylim(0, 1.02)
        if cols == 3:
            ax = row[2]
            c = p["curve"]
            if c["x"]:
                ax.plot(c["x"], c["mean_ssim"], marker="o", label="mean SSIM")
                conf = [(x, v) for x, v in zip(c["x"], c["mean_confidence"]) if v is not None]
                if conf:
                    ax.plot([x for x, _ in conf], [v for _, v in conf], ":", marker="s", label="mean confidence")
                ax.set_xlabel("device queries spent (all classes)")
                ax.set_ylabel("score, mean over classes")
                ax.set_title(f"{p['label']}: device route", fontsize=9)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7)
            else:
                ax.set_visible(False)
    fig.tight_layout()
    return _png(fig)


def extraction(data: dict) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in data["series"]:
        line, = ax.plot(s["x"], s["fidelity"], marker="o", label=f"{s['label']} fidelity")
        ax.fill_between(s["x"], s["lo"], s["hi"], color=line.get_color(), alpha=0.15)
        acc = [(x, a) for x, a in zip(s["x"], s["accuracy"]) if a is not None]
        if acc:
            ax.plot([x for x, _ in acc], [a for _, a in acc], ":", color=line.get_color(),
                    label=f"{s['label']} accuracy")
    ax.set_xlabel(data["x_label"])
    ax.set_ylabel(data["y_label"])
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def cross_board(data: dict) -> bytes:
    plt = _plt()
    bars = data["bars"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(bars) + 2), 4.5))
    vals = [b["disagreement"] for b in bars]
    err = [[v - b["lo"] for v, b in zip(vals, bars)], [b["hi"] - v for v, b in zip(vals, bars)]]
    ax.bar(range(len(bars)), vals, color="#756bb1", yerr=err, capsize=3)
    ax.set_xticks(range(len(bars)), [b["label"] for b in bars], rotation=30, ha="right", fontsize=8)
    boards = sorted({x for b in bars for x in b["boards"]})
    ax.set_title("boards: " + ", ".join(boards), fontsize=9)
    ax.set_ylabel(data["y_label"], fontsize=8)
    ax.set_ylim(0, max(0.1, max(b["hi"] for b in bars) * 1.1))
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


DRAW = {"robust-accuracy": robust_accuracy, "latency": latency, "energy": energy, "transfer": transfer,
        "queries": queries, "backdoor": backdoor, "poisoning": poisoning, "extraction": extraction,
        "inversion": inversion, "cross-board": cross_board}


def draw(figure: dict) -> bytes:
    return DRAW[figure["id"]](figure["data"])
