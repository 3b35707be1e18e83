"""The paper's Table 1 (intramodal) and Table 2 (crossmodal) for every metric, as CSV, Markdown and LaTeX.

Cells are formatted like the paper: bounded metrics as percentages (Table 1 one decimal, Table 2
two), others with three significant digits; with ``ci=True`` the subsampling interval follows in
brackets (the null column's brackets are null_mean +- 2 null_std). Missing cells read '—'.
Files per metric: ``table1_intramodal_{metric}.{csv,md,tex}`` and
``table2_crossmodal_{metric}.{csv,md,tex}``, and their calibrated twins
``table1_intramodal_{metric}_calibrated`` / ``table2_crossmodal_{metric}_calibrated`` (the
calibrated score, ``records.calibrated_view``, with its calibrated interval, no null column; none for a
pairing-free measure, which has no null, and whose Table 2 has no null column either); for simulated skies
``table_truth_{metric}`` (each embedding against the latent properties, with the null mean and
p-value); plus the trend statistics (see ``trends``). The Markdown and LaTeX files open with a
caption (``captions``): the metric and its scale, the interval, N and k, the p-value floor, and
whether the run is simulated or its models random-weight miniatures.
"""
from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Mapping

import pandas as pd

from .captions import RunFacts, metric_caption
from .layout import FIELDS, crossmodal_table, intramodal_table
from .records import (
    attach_params,
    calibrated_view,
    family_label,
    has_null,
    is_percent,
    metric_label,
    metric_order,
    size_label,
    split_model,
    survey_label,
)
from .trends import write_trend_stats

MISSING = "—"
DECIMALS = {"table1": 1, "table2": 2}
LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "π": r"$\pi$", "—": "---"}


def format_cell(value: float, low: float, high: float, metric: str, decimals: int, ci: bool) -> str:
    """'49.7%' or '49.7% [48.9, 50.6]' for percent metrics; '0.123 [0.101, 0.140]' otherwise."""
    if value is None or math.isnan(value):
        return MISSING
    if is_percent(metric):
        text = f"{100 * value:.{decimals}f}%"
        interval = f" [{100 * low:.{decimals}f}, {100 * high:.{decimals}f}]"
    else:
        text, interval = f"{value:.3g}", f" [{low:.3g}, {high:.3g}]"
    return text + (interval if ci and not (math.isnan(low) or math.isnan(high)) else "")


def formatted(tables: dict[str, pd.DataFrame], metric: str, decimals: int, ci: bool, header: str) -> pd.DataFrame:
    """Display frame (strings) from the score/ci_low/ci_high frames; first column is the row label."""
    score = tables["score"]
    body = {
        label: [format_cell(v, lo, hi, metric, decimals, ci)
                for v, lo, hi in zip(score[key], tables["ci_low"][key], tables["ci_high"][key])]
        for key, label in zip(score.columns, score.columns.get_level_values("column"))
    }
    return pd.DataFrame({header: score.index.get_level_values("row"), **body})


def to_markdown(frame: pd.DataFrame, caption: str = "") -> str:
    """A pipe table, after its ``caption`` paragraph (``captions``) when one is given."""
    esc = lambda s: str(s).replace("|", r"\|")  # noqa: E731
    lines = [caption, ""] if caption else []
    lines += ["| " + " | ".join(map(esc, frame.columns)) + " |",
             "|:--|" + "--:|" * (frame.shape[1] - 1)]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(c, c) for c in str(text))


def to_latex(frame: pd.DataFrame, caption: str = "") -> str:
    """A booktabs tabular (wrap it in a table environment with \\input), its ``caption`` in
    comment lines above it."""
    row = lambda cells: " & ".join(latex_escape(c) for c in cells) + r" \\"  # noqa: E731
    lines = [f"% {line}" for line in textwrap.wrap(caption.replace("**", ""), 100)]
    lines += [r"\begin{tabular}{l" + "r" * (frame.shape[1] - 1) + "}", r"\toprule", row(frame.columns), r"\midrule"]
    lines += [row(r) for r in frame.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def paper_tables(df: pd.DataFrame, metric: str, ci: bool = False) -> dict[str, pd.DataFrame]:
    """{'table1': ..., 'table2': ...} display frames for one metric (empty tables left out)."""
    t1 = {f: intramodal_table(df, metric, f) for f in FIELDS}
    t2 = {f: crossmodal_table(df, metric, f, null_column=has_null(metric)) for f in FIELDS}
    out = {}
    if not t1["score"].empty:
        out["table1"] = formatted(t1, metric, DECIMALS["table1"], ci, "Model pairs")
    if not t2["score"].empty:
        out["table2"] = formatted(t2, metric, DECIMALS["table2"], ci, "Model")
    return out


def truth_table(df: pd.DataFrame, metric: str, ci: bool = False) -> pd.DataFrame:
    """Alignment of every embedding with the simulation's latent truth: rows are models (by size),
    columns (survey, crossmatch); each cell 'score (null mean, p)', or the score alone for a
    pairing-free measure (no null: ``records.has_null``). Empty without truth records."""
    sub = df[(df["kind"] == "truth") & (df["metric"] == metric)].sort_values(["params_a", "model_a"])
    if sub.empty:
        return pd.DataFrame()
    cell = lambda r: (format_cell(r.score, r.ci_low, r.ci_high, metric, 2, ci) + (  # noqa: E731
        f" (null {format_cell(r.null_mean, r.null_mean, r.null_mean, metric, 2, False)}, p={r.p_value:.2g})"
        if has_null(metric) else ""))
    sub = sub.assign(row=[f"{family_label(split_model(m)[0])} {size_label(split_model(m)[1])}" for m in sub["model_a"]],
                     column=[f"{survey_label(s)} ({x})" for s, x in zip(sub["survey_a"], sub["crossmatch"])],
                     cell=[cell(r) for r in sub.itertuples()])
    wide = sub.pivot(index="row", columns="column", values="cell").reindex(index=list(dict.fromkeys(sub["row"])))
    return wide.fillna(MISSING).reset_index().rename(columns={"row": "Model"}).rename_axis(None, axis=1)


def write_table(stem: Path, frame: pd.DataFrame, caption: str) -> list[Path]:
    """``frame`` as ``stem``.csv (the data alone), .md and .tex (each after ``caption``)."""
    frame.to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".md").write_text(to_markdown(frame, caption))
    stem.with_suffix(".tex").write_text(to_latex(frame, caption))
    return [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]


TITLES = {"table1": ("Table 1: intramodal", ("intramodal",)), "table2": ("Table 2: crossmodal", ("crossmodal", "self")),
          "truth": ("Alignment with the simulation's latent truth:", ("truth",))}


def write_tables(df: pd.DataFrame, out_dir: str | os.PathLike, params: Mapping[str, int], ci: bool = False,
                 facts: RunFacts | None = None) -> list[Path]:
    """Write both tables for every metric, and the trend statistics, into ``out_dir``; return the
    paths. Each Markdown and LaTeX table opens with its caption (``captions.metric_caption``),
    marked when ``facts`` say the run is simulated or its models miniatures."""
    facts = facts or RunFacts()
    df = attach_params(df, params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = {"table1": "table1_intramodal", "table2": "table2_crossmodal", "truth": "table_truth"}
    paths = []
    calibrated = calibrated_view(df) if "calibrated" in df and df["calibrated"].notna().any() else None
    for metric in metric_order(df["metric"]):
        tables = {(key, ""): frame for key, frame in paper_tables(df, metric, ci).items()}
        truth = truth_table(df, metric, ci)
        if not truth.empty:
            tables["truth", ""] = truth
        if calibrated is not None:
            tables.update({(key, "_calibrated"): frame for key, frame in paper_tables(calibrated, metric, ci=True).items()})
        for (key, suffix), frame in tables.items():
            data = df if not suffix else calibrated
            title, kinds = TITLES[key]
            sub = data[(data["metric"] == metric) & data["kind"].isin(kinds)]
            null = next((c for c in frame.columns if str(c).startswith("π(")), None)
            caption = metric_caption(f"{title} {metric_label(metric)}{' (calibrated)' if suffix else ''}", sub,
                                     metric, facts, ci=ci or bool(suffix), calibrated=bool(suffix),
                                     null_column=null, p_values=key == "truth" and has_null(metric))
            paths += write_table(out / f"{names[key]}_{metric}{suffix}", frame, caption)
    paths += write_trend_stats(df, out, facts=facts)
    if calibrated is not None:
        paths += write_trend_stats(calibrated, out, suffix="_calibrated", facts=facts)
    return paths
