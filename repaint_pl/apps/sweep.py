"""Sweeps: one eval.py run per point of a grid (or zip) of config values, then one CSV, plots and picture tables.

    python -m repaint_pl.apps.sweep configs/experiments/resampling.yaml --out results/resampling [--devices 2 ...]

The YAML (see ``configs/experiments/``)::

    eval: [--config=configs/demo/texture.yaml, --masks=thick]   # eval.py arguments of every point
    axes:                                  # an eval.py flag or config key -> its values
      jump_n_sample: [1, 2, 5]             #   --jump_n_sample=1, =2, =5
      variant:                             #   values that set several things: a label and arguments
        - {label: early, args: [--config=configs/schedule/early.yaml]}
    mode: grid                             # every combination; zip: the i-th value of every axis together
    branch: {at: 40, eval: []}             # optional: save every sample's state after transition 40 once
                                           #   (DIR/trunk), then run every point from it (--resume_state)
    diversity: seed                        # optional: an axis whose values are several samples of one input
    plots:
      - {x: network_calls, y: [psnr_fill, 1-ssim_fill]}   # metric mean ± std against an axis or a column
      - {bars: variant, y: [lpips_vgg, lpips_alex, 1-ssim]} # grouped error bars
    tables:
      - {columns: jump_n_sample, mask_type: thick, rows: 4} # original | masked | one column per value

Every point runs eval.py in ``DIR/points/<point>/`` (its log in ``log.txt``); a finished point is
skipped when the sweep is started again (and eval.py resumes an unfinished one).  Then, under DIR:
``sweep.csv`` (point × image: the axes' values, metrics, seconds, network calls), ``summary.md``,
``plots/*.png``, ``tables/*.png`` and, with ``diversity``, ``diversity.csv``: per input the mean
pairwise distance between its samples, as RMS pixel difference in the filled region (always) and
LPIPS (when the backbone's weights are on disk).  ``--check`` only parses every point's eval.py
configuration, prepared and parsed as eval.py does it (``repaint_pl.cli.prepare_eval_argv``), with no data
read and nothing run; checkpoint files not on disk yet count as plain weights files (a released name brings
its preset, as it will once downloaded).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

import yaml

from repaint_pl import paths
from repaint_pl.files import atomic_write, read_csv, read_json, write_csv, write_json

from . import cli

if TYPE_CHECKING:  # torch, the metrics and Lightning load when a sweep runs, not for --help or a bad file
    import torch

MARKER = "sweep_point.json"
KNOWN_KEYS = {"eval", "axes", "mode", "branch", "diversity", "plots", "tables", "title", "diversity_lpips"}


class SweepConfigError(ValueError):
    """A sweep YAML that cannot be run (names the file and the field)."""


# --------------------------------------------------------------------------
# The sweep file
# --------------------------------------------------------------------------


@dataclass
class Axis:
    """One axis: ``name`` and its values as (label, eval.py arguments)."""

    name: str
    values: list[tuple[str, list[str]]]


@dataclass
class Point:
    name: str
    labels: dict[str, str]  # axis name -> value label
    args: list[str]


@dataclass
class Sweep:
    path: str
    eval_args: list[str]
    axes: list[Axis]
    mode: str = "grid"
    branch: Optional[dict[str, Any]] = None
    diversity: Optional[str] = None
    diversity_lpips: str = "alex"
    plots: list[dict[str, Any]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""


def _label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _flag(key: str) -> str:
    return key if key.startswith("--") else f"--{key}"


def _axis(path: str, name: str, spec: Any) -> Axis:
    """An axis from ``values`` (a list) or ``{key: flag, values: [...]}``; a value may be ``{label, args}``."""
    key, values = name, spec
    if isinstance(spec, dict):
        key, values = spec.get("key", name), spec.get("values")
    if not isinstance(values, list) or not values:
        raise SweepConfigError(f"{path}: axes.{name}: expected a non-empty list of values")
    out = []
    for v in values:
        if isinstance(v, dict):
            if "label" not in v or not isinstance(v.get("args", []), list):
                raise SweepConfigError(f"{path}: axes.{name}: a value given as a mapping needs label and args (a list)")
            out.append((str(v["label"]), _resolve_configs([str(a) for a in v.get("args", [])], paths.ROOT)))
        else:
            out.append((_label(v), [f"{_flag(key)}={_label(v)}"]))
    return Axis(name, out)


def _resolve_configs(args: Sequence[str], base: str) -> list[str]:
    """``--config=PATH`` made absolute: relative to the working directory, else to ``base`` (the repository)."""
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if key == "--config" and eq and not value.lstrip().startswith("{") and not os.path.exists(value):
            candidate = os.path.join(base, value)
            value = candidate if os.path.exists(candidate) else value
        out.append(f"{key}{eq}{value}" if eq else a)
    return out


def load_sweep(path: str) -> Sweep:
    """Read and check a sweep YAML; one-line errors name the file and the field."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such sweep file")
    with open(path) as f:
        try:
            raw = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise SweepConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise SweepConfigError(f"{path}: unknown field(s) {sorted(unknown)}; expected some of {sorted(KNOWN_KEYS)}")
    if not isinstance(raw.get("eval", []), list):
        raise SweepConfigError(f"{path}: eval: expected a list of eval.py arguments")
    if not isinstance(raw.get("axes"), dict) or not raw["axes"]:
        raise SweepConfigError(f"{path}: axes: expected a mapping of at least one axis to its values")
    axes = [_axis(path, str(k), v) for k, v in raw["axes"].items()]
    sweep = Sweep(
        path=path,
        eval_args=_resolve_configs([str(a) for a in raw.get("eval", [])], paths.ROOT),
        axes=axes,
        mode=raw.get("mode", "grid"),
        branch=raw.get("branch"),
        diversity=raw.get("diversity"),
        diversity_lpips=raw.get("diversity_lpips", "alex"),
        plots=list(raw.get("plots") or []),
        tables=list(raw.get("tables") or []),
        title=str(raw.get("title", "")),
    )
    _check(sweep)
    return sweep


def _check(s: Sweep) -> None:
    names = [a.name for a in s.axes]
    if s.mode not in ("grid", "zip"):
        raise SweepConfigError(f"{s.path}: mode: expected grid or zip, got {s.mode!r}")
    if s.mode == "zip" and len({len(a.values) for a in s.axes}) > 1:
        raise SweepConfigError(f"{s.path}: mode zip needs axes of one length, got {[len(a.values) for a in s.axes]}")
    if s.diversity is not None and s.diversity not in names:
        raise SweepConfigError(f"{s.path}: diversity: {s.diversity!r} is not an axis ({names})")
    if s.branch is not None and (not isinstance(s.branch, dict) or not isinstance(s.branch.get("at"), int)):
        raise SweepConfigError(f"{s.path}: branch: expected {{at: K, eval: [...]}} with an integer transition K")
    for i, p in enumerate(s.plots):
        if not isinstance(p, dict) or not isinstance(p.get("y"), list) or not ("x" in p) ^ ("bars" in p):
            raise SweepConfigError(
                f"{s.path}: plots[{i}]: expected {{x: AXIS_OR_COLUMN, y: [...]}} or {{bars: AXIS, y: [...]}}"
            )
        for key in ("bars", "series"):
            if key in p and p[key] not in names:
                raise SweepConfigError(f"{s.path}: plots[{i}].{key}: {p[key]!r} is not an axis ({names})")
    for i, t in enumerate(s.tables):
        if not isinstance(t, dict) or t.get("columns") not in names:
            raise SweepConfigError(f"{s.path}: tables[{i}].columns: expected one of the axes {names}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9=.,+_-]+", "-", text).strip("-")


def points(s: Sweep) -> list[Point]:
    """Every point of the sweep, in order (grid: the last axis varies fastest)."""
    combos = zip(*(a.values for a in s.axes)) if s.mode == "zip" else itertools.product(*(a.values for a in s.axes))
    out = []
    for combo in combos:
        labels = {a.name: label for a, (label, _) in zip(s.axes, combo)}
        name = "_".join(_slug(f"{k}={v}") for k, v in labels.items())
        out.append(Point(name, labels, [arg for _, args in combo for arg in args]))
    return out


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


def _run_eval(args: list[str], out_dir: str) -> None:
    """eval.py with ``args`` into ``out_dir``, its output in ``out_dir/log.txt``; a marker once it finished."""
    from repaint_pl.cli import eval_main

    marker = os.path.join(out_dir, MARKER)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "log.txt"), "a") as log, contextlib.redirect_stdout(log):
        with contextlib.redirect_stderr(log):
            eval_main(["--progress.refresh_rate=0", *args, f"--writer.out_dir={out_dir}"])
    write_json({"args": args}, marker)


def _finished(args: list[str], out_dir: str) -> bool:
    """Whether ``out_dir`` holds a finished run of exactly ``args`` (another run there is an error)."""
    previous = read_json(os.path.join(out_dir, MARKER))
    if previous is None:
        return False
    if previous.get("args") != args:
        raise SweepConfigError(f"{out_dir}: made with other arguments; use another --out or remove that folder")
    return True


def run_trunk(s: Sweep, out: str, extra: list[str]) -> list[str]:
    """Run the branch point once (saving every sample's state); returns the arguments that branch from it."""
    trunk, at = os.path.join(out, "trunk"), s.branch["at"]
    states = os.path.join(trunk, "states")
    args = [*s.eval_args, *map(str, s.branch.get("eval", [])), *extra, f"--save_state_at={at}", f"--state_dir={states}"]
    if not _finished(args, trunk):
        start = time.perf_counter()
        _run_eval(args, trunk)
        print(
            f"[trunk] states after transition {at} saved in {states} ({time.perf_counter() - start:.0f} s)", flush=True
        )
    return [f"--resume_state={states}"]


def run_points(s: Sweep, out: str, extra: list[str]) -> list[Point]:
    """Run every point (skipping finished ones), with a progress line per point."""
    branch = run_trunk(s, out, extra) if s.branch else []
    todo = points(s)
    for i, p in enumerate(todo, 1):
        args, folder = [*s.eval_args, *branch, *p.args, *extra], os.path.join(out, "points", p.name)
        if _finished(args, folder):
            print(f"[{i}/{len(todo)}] {p.name}: done before, skipped", flush=True)
            continue
        start = time.perf_counter()
        _run_eval(args, folder)
        rows = read_rows(folder)
        print(f"[{i}/{len(todo)}] {p.name}: {_progress(rows)}, {time.perf_counter() - start:.0f} s", flush=True)
    return todo


def _progress(rows: list[dict[str, Any]]) -> str:
    def mean(k: str) -> float:
        values = [r[k] for r in rows if isinstance(r.get(k), float)]
        return sum(values) / len(values) if values else float("nan")

    return (
        f"{len(rows)} images, {mean('network_calls'):.0f} network calls and {mean('seconds'):.2f} s per image, "
        f"PSNR fill {mean('psnr_fill'):.2f} dB"
    )


# --------------------------------------------------------------------------
# Reading results
# --------------------------------------------------------------------------


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def read_rows(folder: str) -> list[dict[str, Any]]:
    """The rows of a point's ``metrics.csv``, numbers as floats, plus 1-ssim and 1-ssim_fill."""
    path = os.path.join(folder, "metrics.csv")
    if not os.path.isfile(path):
        return []
    rows = [{k: _number(v) if k not in ("name", "mask_type") else v for k, v in r.items()} for r in read_csv(path)]
    for r in rows:
        for k in ("ssim", "ssim_fill"):
            if isinstance(r.get(k), float):
                r[f"1-{k}"] = 1 - r[k]
    return rows


def collect(s: Sweep, out: str, todo: list[Point]) -> list[dict[str, Any]]:
    """One row per point and image: point, the axes' labels, then the point's metrics.csv row."""
    rows = []
    for p in todo:
        for r in read_rows(os.path.join(out, "points", p.name)):
            rows.append({"point": p.name, **p.labels, **r})
    return rows


def stats(values: Sequence[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation of the finite values (NaN, NaN if none)."""
    v = [x for x in values if isinstance(x, float) and math.isfinite(x)]
    if not v:
        return float("nan"), float("nan")
    m = sum(v) / len(v)
    return m, math.sqrt(sum((x - m) ** 2 for x in v) / len(v))


def metric_columns(rows: list[dict[str, Any]], skip: Sequence[str]) -> list[str]:
    cols = []
    for r in rows:
        cols += [k for k, v in r.items() if isinstance(v, float) and k not in skip and k not in cols and k != "id"]
    return cols


def summary_markdown(s: Sweep, rows: list[dict[str, Any]], todo: list[Point]) -> str:
    """Per point: images, network calls, seconds and every metric as mean ± std."""
    axes = [a.name for a in s.axes]
    cols = metric_columns(rows, axes)
    lines = [f"# {s.title or os.path.basename(s.path)}", "", "| " + " | ".join(axes + ["images"] + cols) + " |"]
    lines.append("|" + "---|" * (len(axes) + 1 + len(cols)))
    for p in todo:
        mine = [r for r in rows if r["point"] == p.name]
        cells = [p.labels[a] for a in axes] + [str(len(mine))]
        cells += ["{:.4g} ± {:.2g}".format(*stats([r.get(c) for r in mine])) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str) -> None:
    """A figure as PNG at ``path`` (atomically)."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


def _x_of(spec: dict[str, Any], s: Sweep, rows: list[dict[str, Any]], point: str) -> Any:
    """The x value of a point: its axis value (a number if it is one) or the mean of a CSV column."""
    x = spec["x"]
    if x in [a.name for a in s.axes]:
        label = next(r[x] for r in rows if r["point"] == point)
        return _number(label)
    return stats([r.get(x) for r in rows if r["point"] == point])[0]


def plot_lines(spec: dict[str, Any], s: Sweep, rows: list[dict[str, Any]], path: str) -> list[str]:
    """Metric mean ± std against ``x`` (an axis or a column), one line per value of ``series``; returns notes."""
    plt = _pyplot()
    present = [y for y in spec["y"] if any(isinstance(r.get(y), float) for r in rows)]
    notes = [f"{os.path.basename(path)}: no {y} values (not computed)" for y in spec["y"] if y not in present]
    if not present:
        return notes
    series = spec.get("series")
    fig, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 3.6), squeeze=False)
    for ax, y in zip(axes[0], present):
        for value in sorted({r[series] for r in rows}, key=_number) if series else [None]:
            mine = [r for r in rows if series is None or r[series] == value]
            by_x: dict[Any, list[float]] = {}
            for point in dict.fromkeys(r["point"] for r in mine):
                by_x.setdefault(_x_of(spec, s, rows, point), []).extend(r.get(y) for r in mine if r["point"] == point)
            xs = sorted(by_x, key=lambda v: (isinstance(v, str), v))
            ms = [stats(by_x[x]) for x in xs]
            positions = xs if all(isinstance(x, float) for x in xs) else list(range(len(xs)))
            ax.errorbar(
                positions,
                [m for m, _ in ms],
                yerr=[d for _, d in ms],
                marker="o",
                capsize=3,
                label=f"{series}={value}" if series else None,
            )
            if positions is not xs:
                ax.set_xticks(positions, [str(x) for x in xs])
        if spec.get("logx"):
            ax.set_xscale("log")
        ax.set_xlabel(spec["x"])
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7)
    fig.suptitle(spec.get("title", s.title), fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return notes


def plot_bars(spec: dict[str, Any], s: Sweep, rows: list[dict[str, Any]], path: str) -> list[str]:
    """Grouped error bars: one group per metric, one bar (mean ± std) per value of the axis ``bars``."""
    plt = _pyplot()
    axis = spec["bars"]
    present = [y for y in spec["y"] if any(isinstance(r.get(y), float) for r in rows)]
    notes = [f"{os.path.basename(path)}: no {y} values (not computed)" for y in spec["y"] if y not in present]
    if not present:
        return notes
    values = list(dict.fromkeys(label for a in s.axes if a.name == axis for label, _ in a.values))
    width = 0.8 / len(values)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(present) * len(values) / 2, 3.6))
    for k, value in enumerate(values):
        ms = [stats([r.get(y) for r in rows if r[axis] == value]) for y in present]
        ax.bar(
            [i + k * width for i in range(len(present))],
            [m for m, _ in ms],
            width,
            yerr=[d for _, d in ms],
            capsize=3,
            label=f"{axis}={value}",
        )
    ax.set_xticks([i + width * (len(values) - 1) / 2 for i in range(len(present))], present)
    ax.set_ylabel("mean ± std over images")
    ax.legend(fontsize=7)
    ax.set_title(spec.get("title", s.title), fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return notes


def write_plots(s: Sweep, rows: list[dict[str, Any]], out: str) -> tuple[list[str], list[str]]:
    """Every plot of the sweep as PNG under ``out/plots``; returns (paths, notes)."""
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    paths, notes = [], []
    for spec in s.plots:
        default = f"bars_{spec['bars']}" if "bars" in spec else f"{'_'.join(spec['y'])}_vs_{spec['x']}"
        path = os.path.join(out, "plots", _slug(spec.get("name", default)) + ".png")
        draw = plot_bars if "bars" in spec else plot_lines
        notes += draw(spec, s, rows, path)
        if os.path.isfile(path):
            paths.append(path)
    return paths, notes


# --------------------------------------------------------------------------
# Picture tables
# --------------------------------------------------------------------------


def _table_points(spec: dict[str, Any], s: Sweep, todo: list[Point]) -> list[Point]:
    """The point per value of the table's axis; the other axes at ``where`` or their first value."""
    fixed = {
        a.name: str(spec.get("where", {}).get(a.name, a.values[0][0])) for a in s.axes if a.name != spec["columns"]
    }
    chosen = []
    for a in s.axes:
        if a.name != spec["columns"]:
            continue
        for label, _ in a.values:
            match = [p for p in todo if p.labels[a.name] == label and all(p.labels[k] == v for k, v in fixed.items())]
            chosen += match[:1]
    return chosen


def picture_table(spec: dict[str, Any], s: Sweep, out: str, todo: list[Point], path: str) -> bool:
    """Rows: images; columns: original, masked, then the result at each value of the table's axis."""
    from repaint_pl.scoring import read_png, result_names

    cols = _table_points(spec, s, todo)
    dirs = [os.path.join(out, "points", p.name) for p in cols]
    if not cols or not os.path.isdir(os.path.join(dirs[0], "inpainted")):
        return False
    names = result_names({k: os.path.join(dirs[0], k) for k in ("inpainted", "gt", "gt_keep_mask")})
    names = [n for n in names if spec.get("mask_type") in (None, n.replace(os.sep, "/").split("/")[0])]
    names = [n for n in names if all(os.path.isfile(os.path.join(d, "inpainted", n)) for d in dirs)]
    names = names[: int(spec.get("rows", 6))]
    if not names:
        return False
    titles = ["original", "masked"] + [f"{spec['columns']}={p.labels[spec['columns']]}" for p in cols]
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(names), len(titles), figsize=(1.25 * len(titles), 1.3 * len(names) + 0.3), squeeze=False
    )
    for i, n in enumerate(names):
        tiles = [os.path.join(dirs[0], "gt", n), os.path.join(dirs[0], "gt_masked", n)]
        tiles += [os.path.join(d, "inpainted", n) for d in dirs]
        for j, tile in enumerate(tiles):
            img = read_png(tile)
            axes[i][j].imshow(
                img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest"
            )
            axes[i][j].set_xticks([])
            axes[i][j].set_yticks([])
            if i == 0:
                axes[i][j].set_title(titles[j], fontsize=7)
        axes[i][0].set_ylabel(os.path.splitext(n)[0], fontsize=6)
    fig.tight_layout(pad=0.3)
    _save(fig, path)
    plt.close(fig)
    return True


def write_tables(s: Sweep, out: str, todo: list[Point]) -> list[str]:
    os.makedirs(os.path.join(out, "tables"), exist_ok=True)
    written = []
    for spec in s.tables:
        default = spec["columns"] + (f"_{spec['mask_type']}" if spec.get("mask_type") else "")
        path = os.path.join(out, "tables", _slug(spec.get("name", default)) + ".png")
        if picture_table(spec, s, out, todo, path):
            written.append(path)
    return written


# --------------------------------------------------------------------------
# Diversity
# --------------------------------------------------------------------------


def pairwise_lpips(samples: torch.Tensor, metric: Any) -> float:
    """Mean over pairs of samples of the LPIPS distance of the whole pictures (the diversity score)."""
    import torch

    pairs = list(itertools.combinations(range(len(samples)), 2))
    a = torch.stack([samples[i] for i, _ in pairs])
    b = torch.stack([samples[j] for _, j in pairs])
    return float(metric.maps(a, b).flatten(1).mean(1).mean())


def diversity(s: Sweep, out: str, todo: list[Point]) -> tuple[list[dict[str, Any]], list[str]]:
    """Per group of points that differ only in the diversity axis, and per input: pairwise distances."""
    import torch

    from repaint_pl.scoring import LpipsMetric, missing_backbone, read_png, result_names

    from .measure import pairwise_fill_distance

    problem = missing_backbone(s.diversity_lpips)
    notes = [f"diversity LPIPS-{s.diversity_lpips} skipped: {problem}"] if problem else []
    metric = None if problem else LpipsMetric(s.diversity_lpips)
    groups: dict[tuple, list[Point]] = {}
    for p in todo:
        groups.setdefault(tuple((k, v) for k, v in p.labels.items() if k != s.diversity), []).append(p)
    rows = []
    for key, members in groups.items():
        dirs = [os.path.join(out, "points", p.name) for p in members]
        if len(dirs) < 2 or not os.path.isdir(os.path.join(dirs[0], "inpainted")):
            continue
        for n in result_names({k: os.path.join(dirs[0], k) for k in ("inpainted", "gt", "gt_keep_mask")}):
            if not all(os.path.isfile(os.path.join(d, "inpainted", n)) for d in dirs):
                continue
            samples = torch.stack([read_png(os.path.join(d, "inpainted", n)) for d in dirs])
            keep = read_png(os.path.join(dirs[0], "gt_keep_mask", n))[:1]
            row = {
                **dict(key),
                "name": n,
                "samples": len(dirs),
                "pixel_rms_fill": pairwise_fill_distance(samples, keep),
            }
            if metric is not None:
                row[f"lpips_{s.diversity_lpips}"] = pairwise_lpips(samples, metric)
            rows.append(row)
    return rows, notes


def plot_diversity(s: Sweep, rows: list[dict[str, Any]], path: str) -> list[str]:
    """Diversity (mean ± std over inputs) against the first other axis, one line per value of the second."""
    others = [a.name for a in s.axes if a.name != s.diversity]
    if not rows or not others:
        return []
    keyed = [{**r, "point": "_".join(str(r[k]) for k in others)} for r in rows]
    spec = {
        "x": others[0],
        "y": ["pixel_rms_fill", f"lpips_{s.diversity_lpips}"],
        "title": f"diversity over {s.diversity}",
    }
    if len(others) > 1:
        spec["series"] = others[1]
    return plot_lines(spec, s, keyed, path)


def diversity_markdown(s: Sweep, rows: list[dict[str, Any]]) -> str:
    keys = [a.name for a in s.axes if a.name != s.diversity]
    cols = [c for c in ("pixel_rms_fill", f"lpips_{s.diversity_lpips}") if any(c in r for r in rows)]
    lines = [f"## Diversity over {s.diversity} (mean pairwise distance between the samples of one input)", ""]
    lines += ["| " + " | ".join(keys + ["inputs"] + cols) + " |", "|" + "---|" * (len(keys) + 1 + len(cols))]
    for group in dict.fromkeys(tuple(r[k] for k in keys) for r in rows):
        mine = [r for r in rows if tuple(r[k] for k in keys) == group]
        cells = (
            list(group) + [str(len(mine))] + ["{:.4f} ± {:.4f}".format(*stats([r.get(c) for r in mine])) for c in cols]
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def aggregate(s: Sweep, out: str, todo: list[Point]) -> dict[str, Any]:
    """sweep.csv, summary.md, plots, picture tables and diversity of the finished points under ``out``."""
    rows = collect(s, out, todo)
    write_csv(rows, os.path.join(out, "sweep.csv"))
    plots, notes = write_plots(s, rows, out)
    tables = write_tables(s, out, todo)
    report = summary_markdown(s, rows, todo)
    div_rows: list[dict[str, Any]] = []
    if s.diversity:
        div_rows, div_notes = diversity(s, out, todo)
        notes += div_notes
        write_csv(div_rows, os.path.join(out, "diversity.csv"))
        report += "\n" + diversity_markdown(s, div_rows)
        path = os.path.join(out, "plots", "diversity.png")
        notes += [n for n in plot_diversity(s, div_rows, path) if "lpips" not in n]
        plots += [path] if os.path.isfile(path) else []
    if notes:
        report += "\nNotes:\n" + "".join(f"- {n}\n" for n in notes)
    atomic_write(os.path.join(out, "summary.md"), report)
    return {"rows": rows, "plots": plots, "tables": tables, "diversity": div_rows, "notes": notes}


def check(s: Sweep, extra: list[str]) -> int:
    """Parse (not run) the eval.py configuration of enough points that every axis value is seen once."""
    todo = points(s)
    seen: set[tuple[str, str]] = set()
    checked = 0
    for p in todo:
        if s.mode == "grid" and checked and set(p.labels.items()) <= seen:
            continue
        seen |= set(p.labels.items())
        branch = [*map(str, s.branch.get("eval", [])), "--resume_state=states"] if s.branch else []
        parse_eval_args([*s.eval_args, *branch, *p.args, *extra, "--writer.out_dir=unused"])
        checked += 1
    return checked


def parse_eval_args(argv: list[str]) -> Any:
    """eval.py's configuration of ``argv``: prepared by eval.py's own ``prepare_eval_argv`` (shorthands, the
    configs that ``--repaint_conf``, ``--ckpt`` and ``--pretrained`` stand for) and parsed by its ``RePaintCLI``
    with its trainer defaults, type-checked but not instantiated (no network built, no data read).

    A checkpoint file on disk is read as eval.py reads it (a train.py checkpoint brings its architecture); one
    not on disk yet counts as a plain weights file (a released file name brings its preset config).
    """
    import lightning as L

    import repaint_pl.cli as eval_cli
    from repaint_pl.module import RePaintModule

    class ParseOnly(eval_cli.RePaintCLI):
        def instantiate_classes(self) -> None:  # parsing and checking only
            pass

    try:
        with _absent_checkpoints_as_weights(eval_cli):
            prepared = eval_cli.prepare_eval_argv(list(argv))
            config = ParseOnly(
                RePaintModule,
                L.LightningDataModule,
                subclass_mode_data=True,
                run=False,
                args=prepared,
                trainer_defaults=eval_cli.EVAL_TRAINER_DEFAULTS,
                parser_kwargs={"exit_on_error": False},
                save_config_callback=None,
                seed_everything_default=0,
            ).config
    except Exception as e:  # noqa: BLE001 - jsonargparse's (and the preparation's) errors become one line
        raise SweepConfigError(f"eval.py arguments do not parse: {' '.join(str(e).split())[:500]}") from None
    return config


@contextlib.contextmanager
def _absent_checkpoints_as_weights(eval_cli: Any) -> Any:
    """During eval.py's preparation: a ``--ckpt`` not on disk has no config of its own (like a plain weights
    file); the checkpoints the preparation kept for the load step are released afterwards, as eval.py does."""
    read_config = eval_cli._checkpoint_config

    def checkpoint_config(ckpt: str, trust: bool = False) -> Optional[str]:
        return read_config(ckpt, trust) if os.path.isfile(ckpt) else None

    eval_cli._checkpoint_config = checkpoint_config
    try:
        yield
    finally:
        eval_cli._checkpoint_config = read_config
        eval_cli._KEPT_CHECKPOINTS.clear()


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    parser = cli.parser("repaint_pl.apps.sweep", __doc__.splitlines()[0])
    parser.add_argument("config", help="the sweep YAML (configs/experiments/*.yaml)")
    cli.add_out(parser, "output folder (points/, sweep.csv, plots/, tables/)", required=False)
    parser.add_argument("--check", action="store_true", help="only parse every point's eval.py configuration")
    parser.add_argument("--aggregate_only", action="store_true", help="only aggregate the points already run")
    args, extra = parser.parse_known_args(argv)
    sweep = load_sweep(args.config)
    if args.check:
        n = check(sweep, extra)
        print(f"{args.config}: {len(points(sweep))} points; the eval.py configuration of {n} parses")
        return {"checked": n}
    if not args.out:
        raise SweepConfigError("--out DIR is required (unless --check)")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    start = time.perf_counter()
    todo = points(sweep) if args.aggregate_only else run_points(sweep, args.out, extra)
    result = aggregate(sweep, args.out, todo)
    for note in result["notes"]:
        print(f"note: {note}")
    print(
        f"{args.out}: sweep.csv ({len(result['rows'])} rows), summary.md, {len(result['plots'])} plots, "
        f"{len(result['tables'])} picture tables; {time.perf_counter() - start:.0f} s in all",
        flush=True,
    )
    return result


def command() -> None:
    """``repaint-sweep`` (and ``python -m repaint_pl.apps.sweep``): ``main`` on the command line."""
    cli.run(main)


if __name__ == "__main__":
    command()
