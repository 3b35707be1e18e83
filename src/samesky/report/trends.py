"""Does alignment grow with model size? The paper's counts and one-sided binomial tests.

Counting rule (the one that reproduces the paper's 14/18, 28/33 and SDSS 6/11):
a *step* compares two adjacent rows of the same family in one column of Table 1 or Table 2
(rows ordered by parameter count); it is an increase when the later (larger) row is strictly more
aligned: scores strictly higher (a distance, ``Metric.direction``: strictly lower; a calibrated
score is always higher when more aligned); ties are not increases. Table 1: a family with r rows (r + 1 sizes) gives r - 1 steps per
survey column (the paper: AstroPTv2 1 + ConvNeXtv2 2 + DINOv2 2 + ViT 1 = 6 per column, x 3
columns = 18). Table 2: a family with s sizes gives s - 1 steps per column (11 per column; JWST,
Legacy and DESI pooled = 33, SDSS reported on its own). A step with a missing score is skipped.
The p-value is ``binomtest(increases, steps, 0.5, alternative='greater')``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import pandas as pd
from scipy.stats import binomtest

from ..models.registry import UNTRAINED
from ..surveys import SURVEYS
from .captions import RunFacts, trend_caption
from .layout import crossmodal_table, intramodal_table
from .records import attach_params, family_label, higher_is_aligned, metric_order, survey_label


def trend_steps(df: pd.DataFrame, params: Mapping[str, int] | None = None) -> pd.DataFrame:
    """One row per step: metric, kind, survey, column, family, smaller, larger, score_from, score_to,
    increase (alignment increased: see the module docstring)."""
    calibrated = df.attrs.get("view") == "calibrated"
    df = attach_params(df, params)
    rows = []
    for metric in metric_order(df["metric"]):
        up = calibrated or higher_is_aligned(metric)
        for kind, table in (("intramodal", intramodal_table(df, metric)), ("crossmodal", crossmodal_table(df, metric))):
            for survey, column in table.columns:
                for family, series in table[(survey, column)].groupby(level="family", sort=False):
                    labels, values = series.index.get_level_values("row"), series.to_numpy()
                    for i in range(len(series) - 1):
                        a, b = values[i], values[i + 1]
                        if pd.isna(a) or pd.isna(b):
                            continue
                        rows.append({"metric": metric, "kind": kind, "survey": survey, "column": column,
                                     "family": family, "smaller": labels[i], "larger": labels[i + 1],
                                     "score_from": a, "score_to": b, "increase": bool(b > a if up else b < a)})
    return pd.DataFrame(rows, columns=["metric", "kind", "survey", "column", "family", "smaller", "larger",
                                       "score_from", "score_to", "increase"])


def _test(steps: pd.DataFrame) -> dict:
    n, k = len(steps), int(steps["increase"].sum())
    return {"increases": k, "comparisons": n, "p_value": binomtest(k, n, 0.5, alternative="greater").pvalue}


def _stats_rows(steps: pd.DataFrame, pool_exclude: tuple[str, ...], tag: str) -> list[dict]:
    """The rows of ``trend_stats`` for one set of steps; ``tag`` marks the pooled and per-column
    groups of untrained controls (their families say so in their labels)."""
    rows = []
    for (metric, kind), group in steps.groupby(["metric", "kind"], sort=False):
        pooled = group[~group["survey"].isin(pool_exclude)]
        left_out = sorted({survey_label(s) for s in group["survey"]} - {survey_label(s) for s in pooled["survey"]})
        label = "all" + (f" except {', '.join(left_out)}" if left_out else "") + tag
        if len(pooled):
            rows.append({"metric": metric, "kind": kind, "scope": "all", "group": label, **_test(pooled)})
        for column, part in group.groupby("column", sort=False):
            rows.append({"metric": metric, "kind": kind, "scope": "column", "group": column + tag, **_test(part)})
        for family, part in pooled.groupby("family", sort=False):
            rows.append({"metric": metric, "kind": kind, "scope": "family", "group": family_label(family), **_test(part)})
    return rows


def trend_stats(df: pd.DataFrame, params: Mapping[str, int] | None = None,
                pool_exclude: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Increases, comparisons and one-sided binomial p per metric and kind: pooled ('all'), per column, per family.

    The pooled row leaves out the surveys in ``pool_exclude`` (default: those the registry marks
    ``Survey.pooled=False``, out of domain like the paper's SDSS); they still get their own rows.
    Untrained controls (``models.untrained``) never pool with trained models: they get the same
    rows of their own after the trained ones, tagged "(untrained)", so the trend that width and
    depth alone produce stands beside the trained trend.
    ``params`` supplies parameter counts if ``df`` lacks them (e.g. straight from ``gather``).
    """
    if pool_exclude is None:
        pool_exclude = tuple(name for name, survey in SURVEYS.items() if not survey.pooled)
    steps = trend_steps(df, params)
    control = steps["family"].str.endswith(UNTRAINED)
    rows = _stats_rows(steps[~control], pool_exclude, "") + _stats_rows(steps[control], pool_exclude, " (untrained)")
    return pd.DataFrame(rows, columns=["metric", "kind", "scope", "group", "increases", "comparisons", "p_value"])


def trends_markdown(stats: pd.DataFrame, caption: str = "") -> str:
    lines = [caption, ""] if caption else []
    lines += ["| metric | kind | scope | group | increases | p (one-sided binomial) |", "|:--|:--|:--|:--|--:|--:|"]
    for r in stats.itertuples():
        lines.append(f"| {r.metric} | {r.kind} | {r.scope} | {r.group} | {r.increases} of {r.comparisons} | {r.p_value:.3g} |")
    return "\n".join(lines) + "\n"


def write_trend_stats(df: pd.DataFrame, out_dir: str | os.PathLike, params: Mapping[str, int] | None = None,
                      suffix: str = "", facts: RunFacts | None = None) -> list[Path]:
    """trend_stats{suffix}.csv, .md and trend_steps{suffix}.csv (every step, for auditing) in ``out_dir``.

    The calibrated trend tests pass ``records.calibrated_view(df)`` with suffix '_calibrated'. The
    Markdown opens with its caption (``captions.trend_caption``), marked as ``facts`` say.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = trend_stats(df, params)
    paths = [out / f"trend_stats{suffix}.csv", out / f"trend_stats{suffix}.md", out / f"trend_steps{suffix}.csv"]
    stats.to_csv(paths[0], index=False)
    paths[1].write_text(trends_markdown(stats, trend_caption(facts or RunFacts(), df.attrs.get("view") == "calibrated")))
    trend_steps(df, params).to_csv(paths[2], index=False)
    return paths
