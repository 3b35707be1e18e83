"""Layer-wise atlas: the compare_layers jobs' per-pair CSVs -> one tidy table, the best block
pair against the final layer, a heatmap per pair and metric, and best alignment against size.

Each CSV has one row per (metric, block_a, block_b) of one compared pair (``plan.LAYER_FIELDS``); block j
of a model with L blocks has index j and depth (j + 1) / L, and the final embedding is the block
named "final" with index L and depth 1.0 (it is the model's output after its own pooling and
norm, not block L - 1, so the heatmaps draw it as a separate strip past depth 1).

The best block pair of a (pair, metric) is the row with the highest calibrated score, over every
row including final x final (ties: the higher raw score, then the shallower block pair); its
difference from the final x final row says how much alignment the final layer leaves unused.
Read the calibrated score for trends (raw scores grow with width and depth without any shared
structure). The best pair is a maximum over L_a x L_b scores, so its own cell's p and calibrated
score (``best_p``, ``best_calibrated``) are not calibrated for the search; ``best_p_max`` and
``best_calibrated_max`` are (``metrics.layers.max_corrected``: against the null of the maximum
over cells, ``max_method`` 'max_null', or a Bonferroni bound over cells for closed-form nulls,
'bonferroni'). A pairing-free measure (``records.has_null``)
has no null and so no calibrated score: its rows (null_method 'pairing_free', calibrated empty)
stay in the tidy table, and the best block pairs, heatmaps and best-vs-size figures leave it out.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ..plan import COMPARISON_FIELDS, LAYER_FIELDS, TRUTH_MODEL  # noqa: E402
from .captions import RunFacts  # noqa: E402
from .figures import _styles, draw_all, panel_handles, params_axis, save  # noqa: E402
from .layout import column_labels  # noqa: E402
from .records import (  # noqa: E402
    NULL_METHODS,
    PAIRING_FREE,
    RecordError,
    attach_params,
    embedding_label,
    family_label,
    has_null,
    metric_label,
    metric_order,
    raw_unit,
    require_params,
    score_axis,
    split_model,
)

PAIR = ("metric", *COMPARISON_FIELDS)
TEXT = (*PAIR, "block_a", "block_b")
FINITE = ("index_a", "index_b", "depth_a", "depth_b", "n", "raw")  # required numbers
# numbers or empty (k: CKA has none; calibrated: only where null_method is 'pairing_free', and there empty)
OPTIONAL = ("k", "tau", "p", "alpha", "null_draws", "calibrated", "p_max", "tau_max", "calibrated_max")
MAX_METHODS = ("max_null", "bonferroni")  # how a row's *_max fields correct for the maximum over cells
INTEGER = ("index_a", "index_b", "n", "k", "null_draws")
KINDS = ("intramodal", "crossmodal", "truth")
FINAL = "final"
BEST = (*PAIR, "n", "best_block_a", "best_block_b", "best_depth_a", "best_depth_b", "best_raw", "best_calibrated",
        "best_p", "best_calibrated_max", "best_p_max", "max_method", "final_raw", "final_calibrated", "delta_raw", "delta_calibrated")
GAP, FINAL_WIDTH = 0.04, 0.1  # depth-axis room between the last block and the final strip, and its width


def read_layer_csv(path: str | os.PathLike) -> pd.DataFrame:
    """The validated rows of one compare_layers CSV, columns in ``LAYER_FIELDS`` order."""
    path = Path(path)
    try:
        # as text, so that errors quote the file's own text; only empty number cells are missing
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values={c: [""] for c in (*FINITE, *OPTIONAL)})
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: layer metric file does not exist") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise RecordError(f"{path}: not a layer metric CSV ({err})") from None
    missing = [c for c in LAYER_FIELDS if c not in df.columns]
    if missing:
        raise RecordError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")
    if df.empty:
        raise RecordError(f"{path}: no rows")
    df = df[list(LAYER_FIELDS)].copy()  # row i is on line i + 2 (after the header)
    for col in TEXT:
        bad = df[col].str.strip() == ""
        if bad.any():
            raise RecordError(f"{path}: line {bad.idxmax() + 2}: column {col!r} is empty")
    bad = ~df["kind"].isin(KINDS)
    if bad.any():
        raise RecordError(f"{path}: line {bad.idxmax() + 2}: column 'kind' is {df['kind'][bad.idxmax()]!r}, "
                          f"expected one of {KINDS}")
    calibrated, calibrated_max = df["calibrated"].fillna(""), df["calibrated_max"].fillna("")  # text, for errors
    for col in (*FINITE, *OPTIONAL):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = (values.isna() & df[col].notna()) | (~np.isfinite(values) & values.notna())
        if col in FINITE:
            bad |= values.isna()
        if col in INTEGER:
            bad |= values.notna() & (values % 1 != 0)
        if bad.any():
            raise RecordError(f"{path}: line {bad.idxmax() + 2}: column {col!r} must be a finite "
                              f"{'integer' if col in INTEGER else 'number'}, got {df[col][bad.idxmax()]!r}")
        df[col] = values.astype("Int64" if col in INTEGER else float)
    bad = ~df["null_method"].isin(("", *NULL_METHODS))
    if bad.any():
        raise RecordError(f"{path}: line {bad.idxmax() + 2}: column 'null_method' is "
                          f"{df['null_method'][bad.idxmax()]!r}, expected one of {NULL_METHODS} or empty")
    bad = ~df["max_method"].isin(("", *MAX_METHODS))
    if bad.any():
        raise RecordError(f"{path}: line {bad.idxmax() + 2}: column 'max_method' is "
                          f"{df['max_method'][bad.idxmax()]!r}, expected one of {MAX_METHODS} or empty")
    bad = df["calibrated_max"].isna() != (df["max_method"] == "")
    if bad.any():
        raise RecordError(f"{path}: line {bad.idxmax() + 2}: column 'calibrated_max' must be empty exactly where "
                          f"max_method is, got {calibrated_max[bad.idxmax()]!r} with max_method "
                          f"{df['max_method'][bad.idxmax()]!r}")
    bad = df["calibrated"].isna() != (df["null_method"] == PAIRING_FREE)
    if bad.any():
        raise RecordError(f"{path}: line {bad.idxmax() + 2}: column 'calibrated' must be a finite number, "
                          f"and empty only where null_method is {PAIRING_FREE!r} (no null is defined), got "
                          f"{calibrated[bad.idxmax()]!r} with null_method {df['null_method'][bad.idxmax()]!r}")
    _check_depths(df, path)
    return df


def _blocks(df: pd.DataFrame, side: str) -> np.ndarray:
    """Each row's block count L of one side: final is index L, block j is at depth (j + 1) / L."""
    index = df[f"index_{side}"].astype(float)
    return np.where(df[f"block_{side}"] == FINAL, index, (index + 1) / df[f"depth_{side}"]).astype(float)


def _check_depths(df: pd.DataFrame, path: Path) -> None:
    """Each side's rows agree on its block count L, and the final embedding is at depth 1."""
    for side in "ab":
        final, depth = df[f"block_{side}"] == FINAL, df[f"depth_{side}"]
        blocks = _blocks(df, side)
        ok = (~final | (depth == 1.0)) & (df[f"index_{side}"] >= 0) & depth.between(0, 1, inclusive="right")
        ok &= np.isclose(blocks, np.round(blocks), rtol=0, atol=1e-6)
        for _, rows in pd.Series(blocks).groupby([df[c] for c in PAIR[1:]]):
            ok[rows.index] &= np.isclose(rows, rows.iloc[0], rtol=0, atol=1e-6)
        if not ok.all():
            i = (~ok).idxmax()
            raise RecordError(f"{path}: line {i + 2}: {df[f'model_{side}'][i]} block {df[f'block_{side}'][i]!r} has "
                              f"index_{side} {df[f'index_{side}'][i]:g} and depth_{side} {df[f'depth_{side}'][i]:g}, "
                              f"which disagree with the pair's other rows (block j of L: depth (j + 1) / L; "
                              f"final: index L, depth 1)")


def gather_layers(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """The tidy layers table: every file's rows in input order, with no (pair, metric, block pair) twice."""
    frames = [(str(p), read_layer_csv(p)) for p in paths]
    if not frames:
        raise RecordError("no layer metric files given")
    df = pd.concat([f for _, f in frames], ignore_index=True)
    sources = np.concatenate([[p] * len(f) for p, f in frames])
    key = [*PAIR, "block_a", "block_b"]
    dup = df.duplicated(key, keep=False)
    if dup.any():
        first = df.loc[dup.idxmax(), key]
        same = dup & (df[key] == first).all(axis=1)
        raise RecordError(f"duplicate layer row for {dict(first)} in {sorted(set(sources[same.to_numpy()]))}")
    return df


def _best_row(sub: pd.DataFrame) -> pd.Series:
    """The highest calibrated score; ties: the higher raw score, then the shallower block pair (a
    model's last block before its final embedding, both at depth 1)."""
    order = ["calibrated", "raw", "depth_a", "depth_b", "index_a", "index_b"]
    return sub.sort_values(order, ascending=[False, False, True, True, True, True]).iloc[0]


def _final_row(sub: pd.DataFrame, pair: dict) -> pd.Series:
    final = sub[(sub["block_a"] == FINAL) & (sub["block_b"] == FINAL)]
    if final.empty:
        raise RecordError(f"no final x final row for {pair}")
    return final.iloc[0]


def best_layers(df: pd.DataFrame) -> pd.DataFrame:
    """Per (pair, metric): the best calibrated block pair, the final x final row, and their
    differences; none for a pairing-free measure (no calibrated score)."""
    rows = []
    for key, sub in df[df["metric"].map(has_null)].groupby(list(PAIR), sort=False):
        best, final = _best_row(sub), _final_row(sub, dict(zip(PAIR, key)))
        rows.append({**dict(zip(PAIR, key)), "n": best["n"],
                     **{f"best_{c}": best[c] for c in ("block_a", "block_b", "depth_a", "depth_b", "raw",
                                                      "calibrated", "p", "calibrated_max", "p_max")},
                     "max_method": best["max_method"],
                     "final_raw": final["raw"], "final_calibrated": final["calibrated"],
                     "delta_raw": best["raw"] - final["raw"],
                     "delta_calibrated": best["calibrated"] - final["calibrated"]})
    return pd.DataFrame(rows, columns=list(BEST))


# ---- heatmaps --------------------------------------------------------------------------------
def heatmap_name(pair: Mapping[str, str]) -> str:
    """``{metric}/{crossmatch}_{survey_a}_{model_a}__{survey_b}_{model_b}.png``."""
    return (f"{pair['metric']}/{pair['crossmatch']}_{pair['survey_a']}_{pair['model_a']}__"
            f"{pair['survey_b']}_{pair['model_b']}.png")


BEST_FIGURES = "best block pair vs size"  # the report's subcategory of the best_vs_params figures


def figure_group(name: str, pairs: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """Where the report files a figure of ``write_layer_figures`` named ``name`` (its path under the
    figures folder, without .png): {crossmatch (the subcategory), pair, metric (its labels)}. A
    heatmap is matched against ``heatmap_name`` of each compared pair (survey and crossmatch names
    hold underscores, so the name alone is ambiguous)."""
    if name.startswith("best_vs_params_"):
        return {"crossmatch": BEST_FIGURES, "pair": "every pair", "metric": name.removeprefix("best_vs_params_")}
    metric = name.partition("/")[0]
    for pair in pairs:
        if heatmap_name({**pair, "metric": metric}) == f"{name}.png":
            return {"crossmatch": pair["crossmatch"], "metric": metric,
                    "pair": f"{_side_label(pair['survey_a'], pair['model_a'])} vs "
                            f"{_side_label(pair['survey_b'], pair['model_b'])}"}
    raise ValueError(f"layer figure {name!r} is no heatmap of the compared pairs nor a best_vs_params figure")


def _axis(n_blocks: int) -> tuple[np.ndarray, dict[int, int]]:
    """Cell edges of one side on the depth axis and the cell of each index: block j of L spans
    depth (j/L, (j + 1)/L]; the final embedding (index L) is a strip past 1, after an empty gap cell."""
    if n_blocks == 0:  # a side with no blocks (the latent truth): only the final strip
        return np.array([1 + GAP, 1 + GAP + FINAL_WIDTH]), {0: 0}
    edges = [j / n_blocks for j in range(n_blocks + 1)] + [1 + GAP, 1 + GAP + FINAL_WIDTH]
    return np.array(edges), {**{j: j for j in range(n_blocks)}, n_blocks: n_blocks + 1}


def _side_label(survey: str, model: str) -> str:
    if model == TRUTH_MODEL:
        return "latent truth"
    return embedding_label(survey, model)


def _heatmap(sub: pd.DataFrame, pair: dict, facts: RunFacts) -> plt.Figure:
    best, final = _best_row(sub), _final_row(sub, pair)
    (xe, xcell), (ye, ycell) = _axis(round(_blocks(sub, "b")[0])), _axis(round(_blocks(sub, "a")[0]))
    rows = sub["index_a"].astype(int).map(ycell).to_numpy()
    cols = sub["index_b"].astype(int).map(xcell).to_numpy()
    metric = pair["metric"]
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.8))  # a fixed layout: a report draws hundreds
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.11, top=0.83 if facts.notice else 0.87, wspace=0.3)
    factor, unit = raw_unit(metric)
    views = (("calibrated", 100.0, "calibrated", " (%)"), ("raw", factor, "raw", unit))
    for ax, (field, scale, what, unit) in zip(axes, views):
        z = np.full((len(ye) - 1, len(xe) - 1), np.nan)
        z[rows, cols] = sub[field].to_numpy() * scale
        top = np.nanmax(z)
        limits = {"vmin": 0.0, "vmax": top if top > 0 else 1.0} if field == "calibrated" else {}
        mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(z), cmap="viridis", **limits)
        fig.colorbar(mesh, ax=ax, shrink=0.85,
                     label=f"{what} {metric_label(metric)}{unit}{score_axis(metric, 'score' if what == 'raw' else what)}")
        i, j = ycell[int(best["index_a"])], xcell[int(best["index_b"])]
        ax.add_patch(Rectangle((xe[j], ye[i]), xe[j + 1] - xe[j], ye[i + 1] - ye[i], fill=False, ec="red", lw=2))
        for axis, edges in ((ax.xaxis, xe), (ax.yaxis, ye)):
            ticks = [t for t in (0, 0.25, 0.5, 0.75, 1.0) if len(edges) > 2]
            axis.set_ticks([*ticks, (edges[-2] + edges[-1]) / 2], [f"{t:g}" for t in ticks] + [FINAL])
        ax.set_aspect("equal" if len(xe) > 2 and len(ye) > 2 else "auto")  # the truth side has one cell
        ax.set_title(what)
        ax.set_xlabel(_side_label(pair["survey_b"], pair["model_b"]) + (": depth (fraction of blocks)" if len(xe) > 2 else ""))
        ax.set_ylabel(_side_label(pair["survey_a"], pair["model_a"]) + (": depth" if len(ye) > 2 else ""))
    fig.suptitle(f"{metric_label(metric)}, {pair['kind']} ({pair['crossmatch']}, N = {int(best['n']):,}); "
                 f"red: best calibrated, {best['block_a']} x {best['block_b']} = {100 * best['calibrated']:.1f}%; "
                 f"final x final = {100 * final['calibrated']:.1f}%", fontsize=10, y=0.93 if facts.notice else 0.98)
    facts.mark(fig, y=0.995)
    return fig


def write_layer_heatmaps(df: pd.DataFrame, out_dir: str | os.PathLike, workers: int = 1,
                         facts: RunFacts | None = None) -> list[Path]:
    """One PNG per (pair, metric), named by ``heatmap_name``; return the paths. A report draws
    hundreds (the paper's pairs with layers on: ~650, about 0.2 s each), so ``workers`` > 1 draws
    them in that many forked processes (``draw_all``). None for a pairing-free measure, whose
    calibrated panel and best cell are not defined."""
    tasks = []
    for key, sub in df[df["metric"].map(has_null)].groupby(list(PAIR), sort=False):
        pair = dict(zip(PAIR, key))
        path = Path(out_dir) / heatmap_name(pair)
        path.parent.mkdir(parents=True, exist_ok=True)
        tasks.append((sub, pair, facts or RunFacts(), path))
    draw_all(_save_heatmap, tasks, workers)
    return [task[-1] for task in tasks]


def _save_heatmap(sub: pd.DataFrame, pair: dict, facts: RunFacts, path: Path) -> None:
    save(_heatmap(sub, pair, facts), [path])


# ---- best alignment against model size -------------------------------------------------------
def _with_size(best: pd.DataFrame, params: Mapping[str, int]) -> pd.DataFrame:
    """``best`` with family and x as the existing figures use them: the reference-side model's family
    and size for crossmodal pairs, the larger model's size for intramodal ones, the embedding's for truth."""
    df = attach_params(best, params)
    truth = df["kind"] == "truth"
    df["family"] = [split_model(a if t else b)[0] for a, b, t in zip(df["model_a"], df["model_b"], truth)]
    for kind, sides in (("crossmodal", "b"), ("intramodal", "ab"), ("truth", "a")):
        require_params(df[df["kind"] == kind], sides)
    df["x"] = np.select([df["kind"] == "crossmodal", df["kind"] == "intramodal"],
                        [df["params_b"], df[["params_a", "params_b"]].max(axis=1)], df["params_a"])
    return df


def write_best_figures(best: pd.DataFrame, out_dir: str | os.PathLike, params: Mapping[str, int],
                       facts: RunFacts | None = None) -> list[Path]:
    """``best_vs_params_{metric}.png``: per panel (kind, survey, crossmatch) and family, the best block
    pair's calibrated score (solid) and the final embedding's (dotted) against parameter count."""
    facts = facts or RunFacts()
    df = _with_size(best, params)
    styles = _styles(df)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [path for metric in metric_order(df["metric"])
            for path in save(_best_figure(df[df["metric"] == metric], metric, styles, facts),
                             [out / f"best_vs_params_{metric}.png"])]


def _best_figure(sub: pd.DataFrame, metric: str, styles: dict, facts: RunFacts) -> plt.Figure:
    real = sub[sub["kind"] != "truth"]  # a crossmatch's partner surveys, named in shared columns' labels
    panels = [(kind, key, title) for kind in ("crossmodal", "intramodal", "truth") if (sub["kind"] == kind).any()
              for key, (_, title) in column_labels(real if kind != "truth" else sub, sub[sub["kind"] == kind],
                                                   kind).items()]
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows + 0.8), squeeze=False,
                             layout="constrained")
    for ax, (kind, (survey, xm), title) in zip(axes.flat, panels):
        part = sub[(sub["kind"] == kind) & (sub["survey_a"] == survey) & (sub["crossmatch"] == xm)]
        for family, line in part.groupby("family", sort=False):
            line = line.sort_values("x")
            style = styles[family]
            ax.plot(line["x"], 100 * line["best_calibrated"], label=family_label(family), lw=1.6, ms=6, **style)
            ax.plot(line["x"], 100 * line["final_calibrated"], color=style["color"], ls=":", lw=1.2, marker=".")
        params_axis(ax)
        ax.set_title(f"{kind}: {title}", fontsize=11)
        ax.set_xlabel(facts.size_axis(larger=kind == "intramodal"))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"best-block calibrated {metric_label(metric)} (%)")
    seen = panel_handles(axes.flat[:len(panels)])
    seen["final embedding (dotted)"] = plt.Line2D([], [], color="0.3", ls=":", marker=".")
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=min(len(seen), 6),
               frameon=False)
    facts.mark(fig)
    return fig


def write_layer_figures(df: pd.DataFrame, best: pd.DataFrame, out_dir: str | os.PathLike,
                        params: Mapping[str, int], workers: int = 1, facts: RunFacts | None = None) -> list[Path]:
    """Every heatmap (drawn by ``workers`` processes) and best-vs-size figure under ``out_dir``,
    marked as ``facts`` say (``captions.RunFacts``)."""
    return write_layer_heatmaps(df, out_dir, workers, facts) + write_best_figures(best, out_dir, params, facts)
