"""Figure 1 (parameter count vs crossmodal alignment) and its intramodal twin, for every metric.

One panel per table column, one line per family (Okabe-Ito colours plus distinct markers, so the
figure survives grey-scale and colour-blindness; an untrained control dashed in its family's colour), subsampling CIs as error bars, and the
permutation null (null_mean +- 2 null_std over the panel's comparisons) as a grey band.
Files per metric: ``figure1_crossmodal_{metric}.{png,pdf}`` and ``figure_intramodal_{metric}.{png,pdf}``,
and beside each its calibrated twin ``..._{metric}_calibrated`` (the calibrated score,
``records.calibrated_view``: no error bars or null band, 0 = not above the null's 1 - alpha level).
A pairing-free measure (``records.has_null``: no null is defined) has neither the band nor the twin.
"""
from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

from ..models.registry import FAMILIES, UNTRAINED  # noqa: E402
from .captions import RunFacts  # noqa: E402
from .layout import NULL_SIGMA, column_labels, family_order  # noqa: E402
from .records import (  # noqa: E402
    attach_params,
    calibrated_view,
    family_label,
    has_null,
    metric_label,
    metric_order,
    raw_unit,
    require_params,
    score_axis,
)

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DPI = 200


def draw_all(draw, tasks: list[tuple], workers: int = 1) -> list:
    """``[draw(*task) for task in tasks]``, in ``workers`` forked processes when more than one: a
    report draws tens (figures) to hundreds (layer heatmaps) of figures, each alone, so the files
    are the same either way. ``draw`` must be a module-level function (it is sent by name)."""
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(draw, *zip(*tasks), chunksize=max(1, len(tasks) // (4 * workers))))
    return [draw(*task) for task in tasks]


def save(fig: plt.Figure, paths: list[Path]) -> list[Path]:
    """Save ``fig`` to each of ``paths`` and close it. The layout engine runs once, for the first
    file: it was half the cost of a second format (constrained layout measures every tick label).
    PDFs carry no creation date, so a figure redrawn from the same table is the same file."""
    for i, path in enumerate(paths):
        if i == 1:
            fig.set_layout_engine("none")  # keeps the positions the first save laid out
        fig.savefig(path, dpi=DPI, metadata={"CreationDate": None} if Path(path).suffix == ".pdf" else None)
    plt.close(fig)
    return paths


def params_axis(ax) -> None:
    """A log parameter-count x axis (ticks at 1 and 3 per decade, labelled 86M, 1.1B) on a light grid."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_params_label))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
    ax.grid(True, which="major", color="0.9", lw=0.8)
    ax.set_axisbelow(True)


def panel_handles(axes) -> dict:
    """{label: handle} of every labelled artist on ``axes``, the first panel's handle per label:
    one shared legend for a figure whose panels repeat the same series."""
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    return seen


def _params_label(x: float, _pos=None) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"


def family_style(family: str) -> dict:
    """A family's colour and marker, the same in every figure of every run: from its place in the
    model registry (``FAMILIES``; an unknown family after them), colours cycling first."""
    names = list(FAMILIES)
    base = family.removesuffix(UNTRAINED)
    i = names.index(base) if base in names else len(names)
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[(i + i // len(OKABE_ITO)) % len(MARKERS)]}


def _styles(df: pd.DataFrame) -> dict[str, dict]:
    """Colour and marker per family (``family_style``), in family order. An untrained control
    (``vit@random``) is its trained family's colour and marker, dashed with open markers."""
    families = [f for f in family_order(df) if f in set(df["family"])]
    trained = [f for f in families if not f.endswith(UNTRAINED)]
    controls = [f for f in families if f.endswith(UNTRAINED)]
    styles = {f: family_style(f) for f in trained}
    for f in controls:
        styles[f] = {**family_style(f), "linestyle": "--", "markerfacecolor": "white"}
    return styles


def _panel(ax, sub: pd.DataFrame, scale: float, unit: str, styles: dict) -> None:
    # Multiplicative dodge so that families at the same size keep separate error bars.
    dodge = {f: 1.0 + 0.05 * (i - (len(styles) - 1) / 2) for i, f in enumerate(styles)}
    for family, part in sub.groupby("family", sort=False, observed=True):
        part = part.sort_values("x")
        x = part["x"].to_numpy() * dodge[family]
        y = part["score"].to_numpy() * scale
        err = np.vstack([y - part["ci_low"].to_numpy() * scale, part["ci_high"].to_numpy() * scale - y])
        ax.errorbar(x, y, yerr=np.nan_to_num(np.abs(err)), label=family_label(family), capsize=3, lw=1.6,
                    ms=6, markeredgecolor="white", markeredgewidth=0.6, **styles[family])
    _null_band(ax, sub, scale, unit)
    params_axis(ax)


def _null_band(ax, sub: pd.DataFrame, scale: float, unit: str) -> None:
    """Shade the null band; if it lies far below the data (more than one data span), keep the
    axis on the data and state the null range in the panel instead of squashing the trends. None
    for a pairing-free measure (``records.has_null``), even from records that carry a null."""
    if not has_null(sub["metric"].iloc[0]):
        return
    lo = (sub["null_mean"] - NULL_SIGMA * sub["null_std"]).min() * scale
    hi = (sub["null_mean"] + NULL_SIGMA * sub["null_std"]).max() * scale
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return
    ax.axhspan(lo, hi, color="0.6", alpha=0.35, lw=0, label=f"permutation null (±{NULL_SIGMA}σ)")
    values = pd.concat([sub["score"], sub["ci_low"], sub["ci_high"]]).dropna() * scale
    d_lo, d_hi = values.min(), values.max()
    span = max(d_hi - d_lo, abs(d_hi) * 0.05)
    if d_lo - span <= hi and lo <= d_hi + span:
        return
    pad = 0.1 * span
    ax.set_ylim(d_lo - pad, d_hi + pad)
    side, y = ("below", 0.03) if hi < d_lo else ("above", 0.97)
    ax.text(0.02, y, f"null (±{NULL_SIGMA}σ): {lo:.3g} to {hi:.3g}{unit.strip(' ()')} ({side} the axis)",
            transform=ax.transAxes, ha="left", va="bottom" if side == "below" else "top", fontsize=8, color="0.35")


def _figure(df: pd.DataFrame, kind: str, metric: str, styles: dict, facts: RunFacts,
            what_score: str = "score") -> plt.Figure | None:
    sub = df[(df["kind"] == kind) & (df["metric"] == metric)].copy()
    if sub.empty:
        return None
    require_params(sub, "ab" if kind == "intramodal" else "b")
    sub["x"] = sub[["params_a", "params_b"]].max(axis=1) if kind == "intramodal" else sub["params_b"]
    sub["family"] = pd.Categorical(sub["family"], categories=list(styles))
    columns = column_labels(df, sub, kind)
    scale, unit = raw_unit(metric) if what_score == "score" else (100.0, " (%)")
    ncols = len(columns) if len(columns) <= 3 else (2 if len(columns) == 4 else 3)
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows + 0.8), squeeze=False,
                             layout="constrained")
    for ax, ((survey, xm), (_, title)) in zip(axes.flat, columns.items()):
        part = sub[(sub["survey_a"] == survey) & (sub["crossmatch"] == xm)]
        _panel(ax, part, scale, unit, styles)
        n = part["n"].dropna().unique()
        ax.set_title(title + (f"  (N = {int(n[0]):,})" if len(n) == 1 else ""), fontsize=11)
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    for i, ax in enumerate(axes.flat[:len(columns)]):
        if i + ncols >= len(columns):  # nothing below it
            ax.set_xlabel(facts.size_axis(larger=kind == "intramodal"))
    what = "intramodal" if kind == "intramodal" else "crossmodal"
    shared = ""
    if what_score != "score":  # calibrated: one zero-based scale for every panel, so panels compare at a glance
        top = pd.concat([sub["score"], sub["ci_high"]]).max() * scale
        for ax in axes.flat[:len(columns)]:
            ax.set_ylim(0, top * 1.08 if top > 0 else 1.0)
        shared = ", from 0, same scale in every panel"
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{what} {metric_label(metric)} {what_score}{unit}{score_axis(metric, what_score)}{shared}")
    seen = panel_handles(axes.flat[:len(columns)])
    # families in family order, the null band last
    order = [family_label(f) for f in styles if family_label(f) in seen] + [k for k in seen if k.startswith("permutation")]
    fig.legend([seen[k] for k in order], order, loc="outside lower center", ncol=min(len(order), 6),
               frameon=False)
    facts.mark(fig)
    return fig


def write_figures(df: pd.DataFrame, out_dir: str | os.PathLike, params: Mapping[str, int],
                  workers: int = 1, facts: RunFacts | None = None) -> list[Path]:
    """Write the crossmodal and intramodal figures of every metric as PNG and PDF (drawn by
    ``workers`` processes, ``draw_all``); return the paths. ``facts``: a simulated or miniature
    run is marked on every figure (``RunFacts.mark``) and its size axes say whose parameters they count."""
    facts = facts or RunFacts()
    df = attach_params(df, params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    styles = _styles(df)
    views = [(df, "", "score")]
    if "calibrated" in df and df["calibrated"].notna().any():
        views.append((calibrated_view(df), "_calibrated", "calibrated score"))
    tasks = []
    for metric, (data, tail, what_score) in ((m, v) for m in metric_order(df["metric"]) for v in views):
        for kind, stem in (("crossmodal", "figure1_crossmodal"), ("intramodal", "figure_intramodal")):
            paths = [out / f"{stem}_{metric}{tail}{suffix}" for suffix in (".png", ".pdf")]
            tasks.append((data, kind, metric, styles, facts, what_score, paths))
    return [path for paths in draw_all(_draw_figure, tasks, workers) for path in paths]


def _draw_figure(df, kind, metric, styles, facts, what_score, paths) -> list[Path]:
    """The figure saved to ``paths``; none when no comparison of its kind has the metric."""
    fig = _figure(df, kind, metric, styles, facts, what_score)
    return [] if fig is None else save(fig, paths)
