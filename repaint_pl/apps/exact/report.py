"""Reports of the benchmark's rows: the summary table, the fast sampler against the paper's schedule, the plot,
and the files they go to (``exact.csv``, ``summary.md``, ``exact.png``)."""

from __future__ import annotations

import math
import os

import numpy as np

from repaint_pl.files import atomic_write, write_csv

from .benchmark import FAST, PAPER

METRICS = ("mean_err", "w2_rel", "abs_excess_nll", "mode_tv")
METRIC_TITLES = {
    "mean_err": "error of the mean / posterior std",
    "w2_rel": "Gaussian W2 / √tr Σ",
    "abs_excess_nll": "|excess NLL| per unknown pixel (nats)",
    "mode_tv": "mode-weight distance (TV)",
}


def _metric(row: dict, name: str) -> float:
    return abs(row["excess_nll"]) if name == "abs_excess_nll" else row[name]


TIE = 1e-6  # metric values closer than this are equal (e.g. mode TVs of 1e-32 when both find the one mode)


def verdict(rows: list[dict], fast: str, paper: str) -> tuple[str, int, int]:
    """Markdown table: per setting and metric, the fast sampler's error against the paper schedule's
    (✓ when at or below it, ties within ``TIE`` included), with the exact posterior's own Monte Carlo floor;
    and (wins, comparisons)."""
    by = {(r["prior"], r["size"], r["mask"], r["sampler"]): r for r in rows}
    lines = [
        "| prior | size | mask | " + " | ".join(f"{METRIC_TITLES[m]}: ours / paper (floor)" for m in METRICS) + " |",
        "|---" * (3 + len(METRICS)) + "|",
    ]
    wins = total = 0
    for prior, size, mask, name in by:
        if name != paper:
            continue
        f, p, e = (by[(prior, size, mask, s)] for s in (fast, paper, "exact posterior"))
        cells = []
        for m in METRICS:
            a, b, floor = _metric(f, m), _metric(p, m), _metric(e, m)
            if math.isnan(b):
                cells.append("–")
                continue
            ok = a <= b or math.isclose(a, b, rel_tol=1e-9, abs_tol=TIE)  # equal up to rounding: a tie
            wins, total = wins + ok, total + 1
            cells.append(f"{'✓' if ok else '✗'} {a:.3f} / {b:.3f} ({floor:.3f})")
        lines.append(f"| {prior} | {size}² | {mask} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", wins, total


def plot(rows: list[dict], path: str) -> None:
    """Error (mean over mask types) against network calls, one line per sampler family, per prior and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["prior"], r["size"]) for r in rows})
    families = list(dict.fromkeys(r["family"] for r in rows if r["family"] != "exact"))
    shown = ("mean_err", "abs_excess_nll", "w2_or_mode")
    fig, axes = plt.subplots(len(shown), len(panels), figsize=(4.2 * len(panels), 3.3 * len(shown)), squeeze=False)
    for col, (prior, size) in enumerate(panels):
        mine = [r for r in rows if r["prior"] == prior and r["size"] == size]
        for row_i, metric in enumerate(shown):
            m = ("w2_rel" if prior == "gaussian" else "mode_tv") if metric == "w2_or_mode" else metric
            ax = axes[row_i][col]
            for fam_i, family in enumerate(families):
                pts = _family_points(mine, family, m)
                style = "-o" if "ours" not in family else "-*"
                ax.plot(
                    [c for c, _ in pts],
                    [v for _, v in pts],
                    style,
                    label=family,
                    color=f"C{fam_i}",
                    markersize=9 if "ours" in family else 5,
                )
            floor = np.mean([_metric(r, m) for r in mine if r["family"] == "exact"])
            ax.axhline(floor, color="grey", linestyle=":", label="exact posterior (MC floor)")
            ax.set_xscale("log")
            ax.set_title(f"{prior} {size}²: {METRIC_TITLES[m]}", fontsize=9)
            ax.set_xlabel("network calls per image")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)


def _family_points(rows: list[dict], family: str, metric: str) -> list[tuple[int, float]]:
    """(calls, mean over mask types) per sampler of ``family``, sorted by calls."""
    by_sampler: dict[str, list[dict]] = {}
    for r in rows:
        if r["family"] == family:
            by_sampler.setdefault(r["sampler"], []).append(r)
    pts = [(rs[0]["calls"], float(np.mean([_metric(r, metric) for r in rs]))) for rs in by_sampler.values()]
    return sorted(pts)


def summary_table(rows: list[dict]) -> str:
    """Markdown: per prior, size and sampler, calls and each metric averaged over the mask types."""
    keys = list(dict.fromkeys((r["prior"], r["size"], r["sampler"]) for r in rows))
    lines = [
        "| prior | size | sampler | calls | samples | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |",
        "|---" * (5 + len(METRICS)) + "|",
    ]
    for prior, size, name in keys:
        rs = [r for r in rows if (r["prior"], r["size"], r["sampler"]) == (prior, size, name)]
        vals = [np.mean([_metric(r, m) for r in rs]) for m in METRICS]
        cells = " | ".join("–" if math.isnan(v) else f"{v:.3f}" for v in vals)
        lines.append(f"| {prior} | {size}² | {name} | {rs[0]['calls']} | {rs[0]['samples']} | {cells} |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict], heading: str) -> str:
    """``summary.md``: the means over mask types, then the fast sampler against the paper's schedule."""
    table, wins, total = verdict(rows, FAST.label, PAPER.label)
    return (
        f"# {heading}\n\n## Mean over mask types\n\n{summary_table(rows)}\n"
        f"## {FAST.label}, {FAST.calls} calls, against {PAPER.label}, {PAPER.calls} calls\n\n"
        f"At or below the paper schedule's error in {wins} of {total} comparisons.\n\n{table}"
    )


def write_report(rows: list[dict], out: str, heading: str) -> str:
    """``exact.csv``, ``summary.md`` and ``exact.png`` under ``out``; returns the summary."""
    text = summary(rows, heading)
    write_csv(rows, os.path.join(out, "exact.csv"))
    atomic_write(os.path.join(out, "summary.md"), text)
    plot(rows, os.path.join(out, "exact.png"))
    return text
