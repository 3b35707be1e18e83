"""Alignment against physics, together: do models that align more with the reference survey also
know more about their objects' properties?

``alignment_physics`` sets each crossmodal comparison of the run (``scores.csv``, kind crossmodal:
survey_a's embedding by model_a against the reference survey_b's by model_b, the rows of the
paper's Table 2) beside what each of its two embeddings knows: the linear probe's score per
property (``probes.csv``: R^2 for a continuous property, balanced accuracy for a categorical one)
and the physics tests of ``KNOWLEDGE_TESTS`` per property (``physics.csv``, when
``probes.physics.tests`` ran them). The alignment is the headline metric's calibrated score and
its calibrated interval. One row per (comparison, side, property, measure); a probed embedding
that takes part in no crossmodal comparison gets rows of its own with no alignment and a note.
A row's ``model`` is the comparison's model as Table 2 names it (the reference survey's, model_b),
so the embeddings of one survey by one model (a spectrum model compared with every image model)
are told apart by the model they are compared with.

``alignment_trend`` answers the question per crossmatch, survey whose embeddings know, property
and measure: Spearman's rank correlation rho across the comparisons' models between calibrated
alignment and what the embedding knows, with a one-sided p-value in the direction "aligns more,
knows more" (rho > 0 for a score where higher knows more; rho < 0 for a distance such as
neighbour consistency, where lower knows more). With few models the p-value is exact
(``rank_correlation``: all n! orderings of the models are equally likely under no association),
so its floor is 1/n!; beyond ``EXACT_MAX`` models it is the t approximation. Untrained controls
stay in the table and the figure but out of the test, as in the size trend tests (``trends``).
"""
from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from ..models.registry import UNTRAINED
from ..physics import TESTS
from ..probes import score_label
from .captions import RunFacts
from .records import (
    embedding_label,
    has_null,
    metric_label,
    metric_order,
    split_model,
    survey_label,
    survey_rank,
)
from .tables import MISSING, to_markdown

KNOWLEDGE_TESTS = ("neighbour_consistency",)  # the physics tests set beside alignment
LINEAR_PROBE = "linear probe"  # the measure's name for the probe stage's linear probe
EXACT_MAX = 8  # the most models whose n! orderings the exact p-value enumerates (40,320)
FIELDS = ("crossmatch", "model", "family", "params", "survey", "embedding_model", "compared_survey",
          "compared_model", "property", "measure", "metric", "knows", "knows_low", "knows_high", "knows_more",
          "alignment_metric", "alignment", "alignment_low", "alignment_high", "in_trend", "note")
TREND_FIELDS = ("crossmatch", "survey", "compared_survey", "property", "measure", "metric", "knows_more", "n",
                "models", "rho", "alternative", "p_value", "method", "note")
NO_COMPARISON = "no crossmodal comparison: no other survey of the crossmatch is compared with this embedding"
CONTROL = "untrained control: not in the trend test"


def rank_correlation(x, y, alternative: str = "greater") -> tuple[float, float, str]:
    """(rho, p, method): Spearman's rho of ``x`` and ``y`` (average ranks for ties) and its
    one-sided p-value (``alternative`` 'greater' or 'less'). For n <= ``EXACT_MAX`` the p-value is
    exact: the share of all n! pairings of the ranks whose rho is at least (at most) the observed
    one; beyond, scipy's t approximation. NaN where rho is undefined (n < 3, or x or y constant)."""
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d of one length, got shapes {x.shape} and {y.shape}")
    n = len(x)
    method = f"exact ({math.factorial(n):,} orderings)" if n <= EXACT_MAX else "t approximation"
    rx, ry = rankdata(x) - (n + 1) / 2, rankdata(y) - (n + 1) / 2
    scale = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if n < 3 or scale == 0:
        return math.nan, math.nan, method
    if n > EXACT_MAX:
        rho, p = spearmanr(x, y, alternative=alternative)
        return float(rho), float(p), method
    orderings = np.array(list(itertools.permutations(range(n))))
    null = ry[orderings] @ rx / scale
    rho = float(ry @ rx / scale)
    slack = 1e-12 * max(1.0, abs(rho))  # the same pairing summed in another order
    hits = null >= rho - slack if alternative == "greater" else null <= rho + slack
    return rho, float(hits.mean()), method


def _knowledge(probes: pd.DataFrame, physics: pd.DataFrame) -> pd.DataFrame:
    """One row per (embedding, property, measure): the linear probe's score and the physics
    tests of ``KNOWLEDGE_TESTS``, with their intervals and which way knows more."""
    cols = ["crossmatch", "survey", "model", "property", "score", "ci_low", "ci_high"]
    linear = probes[probes["probe"] == "linear"]
    parts = [linear[cols].assign(measure=LINEAR_PROBE, metric=linear["metric"], knows_more="higher")]
    tests = physics[physics["test"].isin(KNOWLEDGE_TESTS)]
    parts.append(tests[cols].assign(measure=tests["test"], metric=tests["test"],
                                    knows_more=["higher" if TESTS[t].scale == "unit" else "lower"
                                                for t in tests["test"]]))
    return pd.concat(parts, ignore_index=True)


def alignment_metric(scores: pd.DataFrame) -> str | None:
    """The metric set against physics: the headline metric (MKNN when it ran) among the crossmodal
    records' metrics that have a calibrated score; None without crossmodal records."""
    metrics = [m for m in scores.loc[scores["kind"] == "crossmodal", "metric"] if has_null(m)]
    return metric_order(metrics)[0] if metrics else None


def _is_control(model: str) -> bool:
    return split_model(model)[0].endswith(UNTRAINED)


def alignment_physics(scores: pd.DataFrame, probes: pd.DataFrame, physics: pd.DataFrame,
                      params: Mapping[str, int]) -> pd.DataFrame:
    """The tidy table (``FIELDS``, see the module docstring) of every probed crossmatch, from
    ``scores.csv``, ``probes.csv`` and ``physics.csv`` as frames; ``params``: parameter count per
    model key (for the figure's size order). Rows: crossmatch, then model by family and size."""
    know = _knowledge(probes, physics)
    metric = alignment_metric(scores)
    pairs = scores[(scores["kind"] == "crossmodal") & (scores["metric"] == metric)]
    rows = []
    for k in know.itertuples(index=False):
        where = pairs["crossmatch"] == k.crossmatch
        sides = [(pair, pair.model_b, pair.survey_b, pair.model_b) for pair in pairs[
                    where & (pairs["survey_a"] == k.survey) & (pairs["model_a"] == k.model)].itertuples()]
        sides += [(pair, pair.model_b, pair.survey_a, pair.model_a) for pair in pairs[
                     where & (pairs["survey_b"] == k.survey) & (pairs["model_b"] == k.model)].itertuples()]
        base = {"crossmatch": k.crossmatch, "survey": k.survey, "embedding_model": k.model, "property": k.property,
                "measure": k.measure, "metric": k.metric, "knows": k.score, "knows_low": k.ci_low,
                "knows_high": k.ci_high, "knows_more": k.knows_more, "alignment_metric": metric}
        if not sides:
            rows.append({**base, "model": k.model, "compared_survey": None, "compared_model": None,
                         "alignment": math.nan, "alignment_low": math.nan, "alignment_high": math.nan,
                         "in_trend": False, "note": NO_COMPARISON})
        for pair, model, compared_survey, compared_model in sides:
            control = _is_control(k.model) or _is_control(compared_model)
            known = all(not pd.isna(v) for v in (pair.calibrated, k.score))
            rows.append({**base, "model": model, "compared_survey": compared_survey, "compared_model": compared_model,
                         "alignment": pair.calibrated, "alignment_low": pair.calibrated_low,
                         "alignment_high": pair.calibrated_high, "in_trend": known and not control,
                         "note": CONTROL if control else "" if known else "no score"})
    df = pd.DataFrame(rows, columns=[f for f in FIELDS if f not in ("family", "params")])
    df.insert(2, "family", [split_model(m)[0] for m in df["model"]])
    df.insert(3, "params", [float(params.get(m, math.nan)) for m in df["model"]])
    order = df.assign(rank=[survey_rank(s) for s in df["survey"]],
                      family_rank=df["family"].map(df.groupby("family")["params"].min()))
    order = order.sort_values(["crossmatch", "rank", "property", "measure", "family_rank", "family", "params",
                               "model", "compared_model"], kind="stable", na_position="last")
    return order.drop(columns=["rank", "family_rank"]).reset_index(drop=True)


def alignment_trend(table: pd.DataFrame) -> pd.DataFrame:
    """The trend test (``TREND_FIELDS``) per crossmatch, survey, compared survey, property and
    measure, over the rows ``in_trend``: n models, rho, the one-sided p in the direction 'aligns
    more, knows more' and its method (``rank_correlation``), a note where rho is undefined."""
    rows = []
    keys = ["crossmatch", "survey", "compared_survey", "property", "measure"]
    for key, group in table[table["in_trend"].astype(bool)].groupby(keys, sort=False):
        more = group["knows_more"].iloc[0]
        alternative = "greater" if more == "higher" else "less"
        rho, p, method = rank_correlation(group["alignment"], group["knows"], alternative)
        n = len(group)
        note = ("" if not math.isnan(rho) else "fewer than 3 models" if n < 3 else
                "undefined: what the embeddings know is the same for every model (one embedding on this side)"
                if group["knows"].nunique() == 1 else "undefined: the alignment is the same for every model")
        rows.append({**dict(zip(keys, key)), "metric": group["metric"].iloc[0], "knows_more": more, "n": n,
                     "models": " ".join(group["model"]), "rho": rho, "alternative": alternative, "p_value": p,
                     "method": method, "note": note})
    return pd.DataFrame(rows, columns=TREND_FIELDS)


def measure_label(measure: str, metric: str) -> str:
    """'linear probe R²', 'neighbour consistency'."""
    return f"{measure} {score_label(metric)}" if measure == LINEAR_PROBE else measure.replace("_", " ")


def _cell(score, low, high) -> str:
    if pd.isna(score):
        return MISSING
    return f"{score:.3f}" + ("" if pd.isna(low) or pd.isna(high) else f" [{low:.3f}, {high:.3f}]")


def alignment_display(table: pd.DataFrame) -> pd.DataFrame:
    """The display table: one row per (crossmatch, embedding, compared embedding), the calibrated
    alignment, then one column per (property, measure), each cell 'score [low, high]'."""
    metric = table["alignment_metric"].dropna().iloc[0] if table["alignment_metric"].notna().any() else "alignment"
    rows = {}
    for r in table.itertuples(index=False):
        key = (r.crossmatch, r.survey, r.embedding_model, r.compared_survey, r.compared_model)
        row = rows.setdefault(key, {
            "Crossmatch": r.crossmatch, "Embedding": embedding_label(r.survey, r.embedding_model),
            "Compared with": MISSING if r.compared_model is None or pd.isna(r.compared_model)
            else embedding_label(r.compared_survey, r.compared_model),
            f"calibrated {metric_label(metric)}": _cell(r.alignment, r.alignment_low, r.alignment_high), "notes": []})
        row[f"{r.property}: {measure_label(r.measure, r.metric)}"] = _cell(r.knows, r.knows_low, r.knows_high)
        if r.note and r.note not in row["notes"]:
            row["notes"].append(r.note)
    frame = pd.DataFrame([{**{k: v for k, v in row.items() if k != "notes"}, "Note": "; ".join(row["notes"])}
                          for row in rows.values()])
    note = frame.pop("Note")
    return frame.fillna(MISSING).assign(Note=note)


def trend_display(trend: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Crossmatch": trend["crossmatch"],
        "Embeddings": [f"{survey_label(s)} (vs {survey_label(c)})" for s, c in zip(trend["survey"],
                                                                                 trend["compared_survey"])],
        "Property": trend["property"],
        "Knows": [measure_label(m, x) + f" ({k} knows more)" for m, x, k in zip(trend["measure"], trend["metric"],
                                                                                trend["knows_more"])],
        "n models": trend["n"],
        "Spearman rho": [MISSING if pd.isna(v) else f"{v:.3f}" for v in trend["rho"]],
        "p (one-sided)": [MISSING if pd.isna(p) else f"{p:.3g}, {m}" for p, m in zip(trend["p_value"],
                                                                                   trend["method"])],
        "Note": trend["note"]})


def alignment_caption(table: pd.DataFrame, facts: RunFacts) -> str:
    metric = metric_label(table["alignment_metric"].dropna().iloc[0]) if table["alignment_metric"].notna().any() \
        else "alignment"
    return facts.caption(
        "**Alignment against physics: each crossmodal comparison's calibrated alignment beside what each of its "
        "embeddings knows.**",
        f"Alignment: the calibrated {metric} of the comparison with the reference survey (scores.csv; 0 where the "
        "raw score does not beat its permutation null), its interval the subsampling interval through the same map.",
        "Knows: the linear probe's cross-validated score per property with its bootstrap interval (probes.csv)"
        + "".join(f"; {test.replace('_', ' ')} with its subsampling interval (physics.csv; "
                  f"{'higher' if TESTS[test].scale == 'unit' else 'a distance: lower'} knows more)"
                  for test in KNOWLEDGE_TESTS if test in set(table["measure"])) + ".",
        f"—: none (an embedding compared with no other survey: '{NO_COMPARISON}').",
        "alignment_physics.csv holds every row; alignment_physics_trend.csv the trend tests below.")


def trend_caption(facts: RunFacts) -> str:
    return facts.caption(
        "**Do models that align more also know more?**",
        "Spearman's rank correlation across the models of a crossmatch between calibrated alignment and what "
        "the embeddings of one survey know of one property; p one-sided in the direction 'aligns more, knows "
        "more' (rho > 0, or rho < 0 for a distance).",
        f"With n <= {EXACT_MAX} models p is exact over all n! orderings of the models (so p >= 1/n!: "
        "1/6 at n = 3); beyond, the t approximation. Untrained controls are left out.")


def write_alignment_physics(table: pd.DataFrame, trend: pd.DataFrame, csv_path: str | os.PathLike,
                            trend_path: str | os.PathLike, md_path: str | os.PathLike,
                            facts: RunFacts | None = None) -> list[Path]:
    """The tidy table as ``csv_path``, the trend tests as ``trend_path``, and both display tables
    after their captions as ``md_path`` (a line saying there is nothing to show when ``table`` is
    empty)."""
    facts = facts or RunFacts()
    paths = [Path(csv_path), Path(trend_path), Path(md_path)]
    table.to_csv(paths[0], index=False)
    trend.to_csv(paths[1], index=False)
    if table.empty:
        paths[2].write_text(facts.caption("No probed embedding: nothing to set against alignment "
                                          "(config probes.properties is empty).") + "\n")
    else:
        paths[2].write_text(to_markdown(alignment_display(table), alignment_caption(table, facts)) + "\n"
                            + to_markdown(trend_display(trend), trend_caption(facts)))
    return paths
