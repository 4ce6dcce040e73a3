"""Reports of the benchmark's rows: the summary table, the fast sampler against the paper's schedule, the plot,
and the files they go to (``exact.csv``, ``summary.md``, ``exact.png``)."""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from repaint_pl.files import atomic_write, write_csv

from .benchmark import FAST, PAPER, TOLERANCE_METRICS
from .metrics import mode_tv_bound

METRICS = ("kl", "sw", "energy", "mode_tv", "mean_err")  # the proper divergences, then the mean's error
METRIC_TITLES = {
    "kl": "KL(fitted ‖ exact) per pixel",
    "sw": "sliced W₂ to exact draws",
    "energy": "energy distance to exact draws",
    "mode_tv": "mode-weight distance (TV)",
    "mean_err": "error of the mean / posterior std",
}
NOTHING_KNOWN = "none"


def _metric(row: dict, name: str) -> float:
    return float(row[name])


TIE = 1e-6  # metric values closer than this are equal (e.g. mode TVs of 1e-32 when both find the one mode)


def conditional(rows: list[dict]) -> list[dict]:
    """The rows with known pixels (the prior-reproduction rows, mask ``none``, have their own table)."""
    return [r for r in rows if r["mask"] != NOTHING_KNOWN]


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
        lines.append(f"| {prior} | {_side(f)} | {mask} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", wins, total


def plot(rows: list[dict], path: str) -> None:
    """Error (mean over mask types) against network calls, one line per sampler family, per prior and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(r["family"] for r in rows if r["family"] != "exact"))
    rows = conditional(rows)
    panels = sorted({(r["prior"], r["size"]) for r in rows}, key=str)
    shown = ("mean_err", "sw", "kl_or_mode")
    fig, axes = plt.subplots(len(shown), len(panels), figsize=(4.2 * len(panels), 3.3 * len(shown)), squeeze=False)
    for col, (prior, size) in enumerate(panels):
        mine = [r for r in rows if r["prior"] == prior and r["size"] == size]
        for row_i, metric in enumerate(shown):
            m = metric
            if metric == "kl_or_mode":  # the first of these that has a value here (KL: inf below one draw per pixel)
                m = next((k for k in ("kl", "mode_tv") if any(math.isfinite(float(r[k])) for r in mine)), "energy")
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
            ax.set_title(f"{prior} {_side(mine[0])}: {METRIC_TITLES[m]}", fontsize=9)
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


def _floors(rows: list[dict]) -> dict[tuple, float]:
    """(prior, size, metric) -> the exact draws' value averaged over mask types (the Monte Carlo floor)."""
    out = {}
    for prior, size in dict.fromkeys((r["prior"], r["size"]) for r in rows):
        exact = [r for r in rows if (r["prior"], r["size"], r["sampler"]) == (prior, size, "exact posterior")]
        for m in METRICS:
            out[(prior, size, m)] = float(np.mean([_metric(r, m) for r in exact])) if exact else math.nan
    return out


FLOOR_MIN = 1e-3  # below this a floor is "zero" (a mode TV when the known pixels pin down one mode): no ratio


def _cell(value: float, floor: float) -> str:
    """``value`` and its ratio to the floor (``value (r×)``), or – for a metric that does not apply."""
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞"
    if math.isnan(floor) or floor < FLOOR_MIN:
        return f"{value:.3f}"
    return f"{value:.3f} ({value / floor:.1f}×)"


def summary_table(rows: list[dict]) -> str:
    """Markdown: per prior, size and sampler, calls, the spread (tr Ĉ / tr Σ) and each metric averaged over the
    mask types, with its ratio to the exact draws' Monte Carlo floor (the "exact posterior" rows: 1×)."""
    floors = _floors(rows)
    keys = list(dict.fromkeys((r["prior"], r["size"], r["sampler"]) for r in rows))
    lines = [
        "| prior | size | sampler | calls | samples | spread | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |",
        "|---" * (6 + len(METRICS)) + "|",
    ]
    for prior, size, name in keys:
        rs = [r for r in rows if (r["prior"], r["size"], r["sampler"]) == (prior, size, name)]
        cells = " | ".join(
            _cell(float(np.mean([_metric(r, m) for r in rs])), floors[(prior, size, m)]) for m in METRICS
        )
        spread = float(np.mean([r["spread"] for r in rs]))
        lines.append(
            f"| {prior} | {_side(rs[0])} | {name} | {rs[0]['calls']} | {rs[0]['samples']} | {spread:.3f} | {cells} |"
        )
    return "\n".join(lines) + "\n"


def _side(row: dict) -> str:
    return f"{row['size']}²" if isinstance(row["size"], int) else str(row["size"])


def _bound(row: dict) -> float:
    """The 3σ bound on the mode TV of ``row['samples']`` exact draws from its mode weights."""
    w = torch.tensor([float(v) for v in str(row["mode_weights"]).split()], dtype=torch.float64)
    return mode_tv_bound(w.clamp(min=1e-300).log(), int(row["samples"]))


def reproduces(row: dict, z: float = 3.0) -> bool:
    """Whether a nothing-known row reproduces the prior within Monte Carlo error: the total variance within
    ``z`` standard errors of the prior's, and (mixtures) the mode weights within the ``z``-σ TV bound."""
    ok = abs(row["spread"] - 1) <= z * row["spread_se"]
    if not math.isnan(row["mode_tv"]):
        ok = ok and row["mode_tv"] <= _bound(row)
    return bool(ok)


def prior_table(rows: list[dict]) -> str:
    """Markdown: nothing known, per prior and sampler: total variance over the prior's (± its standard error),
    KL(fitted Gaussian ‖ prior's Gaussian fit) per pixel and sliced W₂ to exact prior draws (floor in
    brackets), mode TV (3σ bound in brackets), and whether the prior is reproduced within Monte Carlo error."""
    rows = [r for r in rows if r["mask"] == NOTHING_KNOWN]
    floors = {(r["prior"], r["size"]): r for r in rows if r["sampler"] == "exact posterior"}
    lines = [
        "| prior | size | sampler | calls | samples | total variance / prior's | KL(fitted ‖ prior) per pixel (floor) "
        "| sliced W₂ (floor) | mode TV (3σ bound) | prior reproduced |",
        "|---" * 10 + "|",
    ]
    for r in rows:
        f = floors.get((r["prior"], r["size"]), r)
        kl = "–" if math.isnan(r["kl"]) else f"{r['kl']:.3f} ({f['kl']:.3f})"
        tv = "–" if math.isnan(r["mode_tv"]) else f"{r['mode_tv']:.3f} ({_bound(r):.3f})"
        lines.append(
            f"| {r['prior']} | {_side(r)} | {r['sampler']} | {r['calls']} | {r['samples']} "
            f"| {r['spread']:.3f} ± {r['spread_se']:.3f} | {kl} | {r['sw']:.3f} ({f['sw']:.3f}) | {tv} "
            f"| {'✓' if reproduces(r) else '✗'} |"
        )
    return "\n".join(lines) + "\n"


def at_floor(row: dict) -> tuple[bool, str, float]:
    """Whether ``row`` is at the Monte Carlo floor: each divergence at or below its tolerance (``<metric>_tol``,
    the 99.9% prediction bound of independent sets of exact draws) and, for a mixture, the mode TV within its
    3σ bound; with the metric
    furthest above its tolerance and that ratio (value / tolerance)."""
    ratios = {}
    for m in TOLERANCE_METRICS:
        value, tol = float(row[m]), float(row.get(f"{m}_tol", math.nan))
        if not (math.isnan(value) or math.isnan(tol) or math.isinf(tol)) and tol > 0:  # inf: too few draws for it
            ratios[m] = value / tol
    if not math.isnan(float(row["mode_tv"])):
        ratios["mode_tv"] = float(row["mode_tv"]) / max(_bound(row), FLOOR_MIN)
    if not ratios:
        return False, "", math.nan
    worst = max(ratios, key=lambda m: ratios[m])
    return all(r <= 1 for r in ratios.values()), worst, ratios[worst]


def floor_table(rows: list[dict]) -> str:
    """Markdown: per prior, size and sampler, on how many mask types it is at the floor (``at_floor``), the masks
    where it is not, and its largest value / tolerance over masks and metrics (≤ 1: at the floor everywhere)."""
    keys = list(dict.fromkeys((r["prior"], r["size"], r["sampler"]) for r in rows))
    lines = [
        "| prior | size | sampler | calls | masks at the floor | not at the floor | largest value / tolerance |",
        "|---" * 7 + "|",
    ]
    for prior, size, name in keys:
        rs = [r for r in rows if (r["prior"], r["size"], r["sampler"]) == (prior, size, name)]
        verdicts = [(r["mask"], *at_floor(r)) for r in rs]
        misses = [mask for mask, ok, _, _ in verdicts if not ok]
        mask, _, metric, ratio = max(verdicts, key=lambda v: -math.inf if math.isnan(v[3]) else v[3])
        lines.append(
            f"| {prior} | {_side(rs[0])} | {name} | {rs[0]['calls']} | {len(rs) - len(misses)} of {len(rs)} "
            f"| {', '.join(misses) or '–'} | {ratio:.2f} ({metric}, {mask}) |"
        )
    return "\n".join(lines) + "\n"


def floor_counts(rows: list[dict]) -> str:
    """Markdown: per size and sampler, on how many (prior, model family, mask) cases it is at the floor
    (``at_floor``), the priors the samplers were tuned on and the fresh ones counted apart."""
    from .priors import PRIORS

    def tuned(row: dict) -> bool:
        return str(row["prior"]).replace(" (flow)", "") in PRIORS

    groups = [("tuning priors", True), ("fresh priors", False)]
    present = [(title, flag) for title, flag in groups if any(tuned(r) == flag for r in rows)]
    lines = [
        "| size | sampler | calls | " + " | ".join(f"at the floor: {title}" for title, _ in present) + " |",
        "|---" * (3 + len(present)) + "|",
    ]
    for size, name in dict.fromkeys((r["size"], r["sampler"]) for r in rows):
        rs = [r for r in rows if (r["size"], r["sampler"]) == (size, name)]
        cells = []
        for _, flag in present:
            mine = [r for r in rs if tuned(r) == flag]
            cells.append(f"{sum(at_floor(r)[0] for r in mine)} of {len(mine)}" if mine else "–")
        lines.append(f"| {_side(rs[0])} | {name} | {rs[0]['calls']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict], heading: str) -> str:
    """``summary.md``: the means over mask types with their floors, the fast sampler against the paper's
    schedule (when both ran), and the prior-reproduction table (when the ``none`` mask ran)."""
    cond = conditional(rows)
    text = f"# {heading}\n\n"
    if cond:
        title = "Mean over mask types (each metric with its ratio to the exact draws' floor)"
        text += f"## {title}\n\n{summary_table(cond)}\n"
        if any("sw_tol" in r for r in cond):
            text += (
                "## At the floor? (every divergence within the Monte Carlo tolerance of exact draws, per mask type)\n\n"
                f"{floor_counts(cond)}\n{floor_table(cond)}\n"
            )
    names = {r["sampler"] for r in cond}
    if FAST.label in names and PAPER.label in names:
        table, wins, total = verdict(cond, FAST.label, PAPER.label)
        text += (
            f"## {FAST.label}, {FAST.calls} calls, against {PAPER.label}, {PAPER.calls} calls\n\n"
            f"At or below the paper schedule's error in {wins} of {total} comparisons.\n\n{table}\n"
        )
    if len(cond) < len(rows):
        text += f"## Nothing known: does each sampler reproduce the prior?\n\n{prior_table(rows)}"
    return text


def write_report(rows: list[dict], out: str, heading: str) -> str:
    """``exact.csv``, ``summary.md`` and (rows with known pixels) ``exact.png`` under ``out``; returns the summary."""
    text = summary(rows, heading)
    write_csv(rows, os.path.join(out, "exact.csv"))
    atomic_write(os.path.join(out, "summary.md"), text)
    if conditional(rows):  # the plot is of the conditional rows (prior reproduction: the table only)
        plot(rows, os.path.join(out, "exact.png"))
    return text
