"""Probe records -> the tidy probes table, one table per property and probe, and figures of the
probe score against model size.

Tables (``{property}_{probe}.{csv,md,tex}``): rows are models (families by their smallest
model's size, then sizes by parameter count), columns are surveys ("HSC (desi_hsc)": the
survey and its crossmatch); each cell 'score [bootstrap interval]'. Figures
(``probe_{property}.{png,pdf}``): one panel per column, one colour per family, the linear probe
solid and the kNN probe dashed with open markers, the linear probe's permutation null
(mean +- 2 std) as a grey band; x: parameter count (log scale). The Markdown and LaTeX tables
open with a caption (``probe_caption``); a simulated or miniature run is marked on every table
and figure (``captions.RunFacts``). The physics tests' records (``samesky.physics``) make one
tidy table and one display table (``physics_table``: rows test, property and model, columns
surveys, each cell 'score [subsampling interval], p').
"""
from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path
from typing import Iterable, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..models.registry import UNTRAINED  # noqa: E402
from ..physics import TESTS  # noqa: E402
from ..plan import COMPARISON_FIELDS  # noqa: E402
from ..probes import CONTINUOUS, score_label, score_meaning  # noqa: E402
from .alignment import measure_label  # noqa: E402
from .captions import RunFacts, counts, p_floor, values  # noqa: E402
from .figures import draw_all, family_style, panel_handles, params_axis, save  # noqa: E402
from .layout import NULL_SIGMA  # noqa: E402
from .records import RecordError, family_label, metric_label, size_label, split_model, survey_label, survey_rank  # noqa: E402
from .tables import MISSING, to_markdown, write_table  # noqa: E402

FIELDS = ("crossmatch", "survey", "model", "property", "kind", "probe", "metric", "score", "ci_low", "ci_high",
          "null_mean", "null_std", "p_value", "null_draws", "bootstrap_draws", "n", "n_excluded", "folds", "chance")
PROBE_LABELS = {"linear": "linear", "knn": "kNN"}


def _job_records(paths: Iterable[str | os.PathLike], fields: Iterable[str]) -> Iterable[dict]:
    """Every record of the jobs' JSON files (``{"records": [...]}``), each checked to hold ``fields``."""
    fields = tuple(fields)
    for path in map(Path, paths):
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RecordError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
            raise RecordError(f"{path}: expected a JSON object with a 'records' list")
        for i, rec in enumerate(doc["records"]):
            missing = [f for f in fields if not isinstance(rec, dict) or f not in rec]
            if missing:
                raise RecordError(f"{path}: record {i} is missing field(s) {', '.join(map(repr, missing))}")
            yield rec


def gather_probes(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per (embedding, property, probe) from the probe JSON files, with checked fields."""
    rows = [{**{f: rec[f] for f in FIELDS}, "knn_k": rec.get("knn_k")} for rec in _job_records(paths, FIELDS)]
    return pd.DataFrame(rows, columns=[*FIELDS, "knn_k"])


def _ordered(df: pd.DataFrame, params: Mapping[str, int]) -> pd.DataFrame:
    """``df`` with family, params, row and column labels, models in family then size order."""
    df = df.assign(family=[split_model(m)[0] for m in df["model"]],
                   params=[float(params.get(m, math.nan)) for m in df["model"]])
    smallest = df.groupby("family")["params"].min().fillna(math.inf)
    df = df.assign(family_rank=df["family"].map(smallest),
                   row=[f"{family_label(f)} {size_label(split_model(m)[1])}" for f, m in zip(df["family"], df["model"])],
                   column=[f"{survey_label(s)} ({x})" for s, x in zip(df["survey"], df["crossmatch"])],
                   column_rank=[(survey_rank(s), x) for s, x in zip(df["survey"], df["crossmatch"])])
    return df.sort_values(["family_rank", "family", "params", "model"], kind="stable")


def _cell(score: float, low, high) -> str:
    if score is None or math.isnan(score):
        return MISSING
    ok = low is not None and high is not None and not (math.isnan(low) or math.isnan(high))
    return f"{score:.3f}" + (f" [{low:.3f}, {high:.3f}]" if ok else "")


def probe_tables(df: pd.DataFrame, params: Mapping[str, int]) -> dict[tuple[str, str], pd.DataFrame]:
    """{(property, probe): display frame} with rows models and columns surveys."""
    df = _ordered(df, params)
    out = {}
    for (prop, name), sub in df.groupby(["property", "probe"], sort=False):
        sub = sub.assign(cell=[_cell(r.score, r.ci_low, r.ci_high) for r in sub.itertuples()])
        columns = [c for _, c in sorted(set(zip(sub["column_rank"], sub["column"])))]
        wide = sub.pivot(index="row", columns="column", values="cell")
        wide = wide.reindex(index=list(dict.fromkeys(sub["row"])), columns=columns).fillna(MISSING)
        out[prop, name] = wide.reset_index().rename(columns={"row": "Model"}).rename_axis(None, axis=1)
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], kv[0][1] != "linear")))


def probe_caption(prop: str, name: str, sub: pd.DataFrame, facts: RunFacts) -> str:
    """The caption of one (property, probe) table: its score and scale, the probe, the interval,
    the null and the smallest p-value it can give, N and the kNN probe's k."""
    metric = sub["metric"].iloc[0]
    folds = values(sub["folds"])
    continuous = sub["kind"].iloc[0] == CONTINUOUS
    how = (f"standardise, PCA, {'ridge' if continuous else 'logistic'} regression" if name == "linear" else
           f"cosine {values(sub['knn_k']) or 'k'}-nearest-neighbour {'regression' if continuous else 'classification'}"
           " on the raw embedding")
    floor = p_floor(sub["null_draws"])
    return facts.caption(
        f"**{prop}: {PROBE_LABELS[name]} probe, {score_label(metric)}.**",
        f"Score: {score_meaning(metric)}; {folds}-fold cross-validated ({how}, fitted on the training folds only).",
        f"[low, high]: {facts.level()}percentile bootstrap interval over the out-of-fold predictions "
        f"(K = {values(sub['bootstrap_draws'])} resamples, the fitted folds held fixed).",
        f"Permutation null: targets shuffled and the cross-validation rerun, K = {values(sub['null_draws'])} draws"
        + (f"; its p-values (probes.csv) are one-sided, so {floor}." if floor else "."),
        counts(sub, per="embedding") + ".")


def write_probe_tables(df: pd.DataFrame, out_dir: str | os.PathLike, params: Mapping[str, int],
                       facts: RunFacts | None = None) -> list[Path]:
    """Every (property, probe) table as CSV, and as Markdown and LaTeX after its caption
    (``probe_caption``, marked as ``facts`` say)."""
    facts = facts or RunFacts()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for (prop, name), frame in probe_tables(df, params).items():
        sub = df[(df["property"] == prop) & (df["probe"] == name)]
        paths += write_table(out / f"{prop}_{name}", frame, probe_caption(prop, name, sub, facts))
    return paths


def _bars(values: np.ndarray, low: pd.Series, high: pd.Series) -> np.ndarray:
    """Matplotlib's (2, n) error bars of an interval [low, high] around ``values`` (none where NaN)."""
    return np.nan_to_num(np.abs(np.vstack([values - low.astype(float).to_numpy(), high.astype(float).to_numpy() - values])))


def _panel(ax, sub: pd.DataFrame, styles: dict) -> None:
    dodge = {f: 1.0 + 0.05 * (i - (len(styles) - 1) / 2) for i, f in enumerate(styles)}
    for (family, name), part in sub.groupby(["family", "probe"], sort=False):
        part = part.sort_values("params")
        x, y = part["params"].to_numpy() * dodge[family], part["score"].to_numpy()
        linear = name == "linear"
        ax.errorbar(x, y, yerr=_bars(y, part["ci_low"], part["ci_high"]), label=f"{family_label(family)} ({PROBE_LABELS[name]})",
                    capsize=3, lw=1.6, ms=6, ls="-" if linear else "--", color=styles[family]["color"],
                    marker=styles[family]["marker"], markerfacecolor=styles[family]["color"] if linear else "white")
    null = sub[sub["probe"] == "linear"].dropna(subset=["null_mean", "null_std"])
    if len(null):
        lo = (null["null_mean"] - NULL_SIGMA * null["null_std"]).min()
        hi = (null["null_mean"] + NULL_SIGMA * null["null_std"]).max()
        ax.axhspan(lo, hi, color="0.6", alpha=0.35, lw=0, label=f"permutation null, linear (±{NULL_SIGMA}σ)")
    params_axis(ax)


def write_probe_figures(df: pd.DataFrame, out_dir: str | os.PathLike, params: Mapping[str, int],
                        workers: int = 1, facts: RunFacts | None = None) -> list[Path]:
    """One figure per property (PNG and PDF): probe score against parameter count, per family and
    survey, drawn by ``workers`` processes (``figures.draw_all``), marked as ``facts`` say."""
    facts = facts or RunFacts()
    df = _ordered(df, params)
    missing = sorted(set(df.loc[df["params"].isna(), "model"]))
    if missing:
        raise KeyError(f"no parameter count for model(s) {missing}; pass params={{model_key: count}}")
    styles = {f: family_style(f) for f in dict.fromkeys(df["family"])}  # the colours of every other figure
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(prop, sub, styles, facts, [out / f"probe_{prop}{suffix}" for suffix in (".png", ".pdf")])
             for prop, sub in df.groupby("property", sort=True)]
    return [path for paths in draw_all(_draw_property, tasks, workers) for path in paths]


def _draw_property(prop: str, sub: pd.DataFrame, styles: dict, facts: RunFacts, paths: list[Path]) -> list[Path]:
    return save(_property_figure(prop, sub, styles, facts), paths)


def _property_figure(prop: str, sub: pd.DataFrame, styles: dict, facts: RunFacts) -> plt.Figure:
    columns = [c for _, c in sorted(set(zip(sub["column_rank"], sub["column"])))]
    ncols = min(len(columns), 3)
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows + 0.9), squeeze=False,
                             layout="constrained")
    for ax, column in zip(axes.flat, columns):
        part = sub[sub["column"] == column]
        _panel(ax, part, styles)
        ax.set_title(f"{column}  (N = {int(part['n'].max()):,})", fontsize=11)
        ax.set_xlabel(facts.size_axis())
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    metric = score_label(sub["metric"].iloc[0])
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{prop}: {metric}")
    seen = panel_handles(axes.flat[:len(columns)])
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=min(len(seen), 4), frameon=False)
    facts.mark(fig)
    return fig


# ---- the physics tests (probes.physics; samesky.physics) ----------------------------------------

PHYSICS_FIELDS = ("crossmatch", "survey", "model", "test", "property", "score", "ci_low", "ci_high", "null_mean",
                  "null_std", "p_value", "calibrated", "alpha", "null_draws", "subsampling_splits", "n", "n_excluded")
# What a physics test's score means to a reader (samesky.physics.TESTS' scale).
PHYSICS_SCALES = {"unit": "higher knows more, 1 at best", "distance": "lower knows more, 0 at best"}


# The physics tests of two embeddings (rule physics_pair): the compared pair's fields instead of the embedding's.
PHYSICS_PAIR_FIELDS = (*COMPARISON_FIELDS, *PHYSICS_FIELDS[3:])
# The physics tests of every block (probes.physics.per_block): the embedding's fields and the block's.
PHYSICS_BLOCK_FIELDS = (*PHYSICS_FIELDS, "block", "block_index", "depth")


def gather_physics(paths: Iterable[str | os.PathLike], pairs: bool = False, blocks: bool = False) -> pd.DataFrame:
    """One row per (embedding, test, property) from the physics JSON files, with ``blocks`` per
    (embedding, block, test, property) from their block-by-block files, or with ``pairs`` per
    (compared pair, test, property) from the physics_pair JSON files, with checked fields, the
    test's parameters as JSON (``params``)."""
    fields = PHYSICS_PAIR_FIELDS if pairs else PHYSICS_BLOCK_FIELDS if blocks else PHYSICS_FIELDS
    rows = [{**{f: rec[f] for f in fields}, "params": json.dumps(rec["params"], sort_keys=True)}
            for rec in _job_records(paths, (*fields, "params"))]
    return pd.DataFrame(rows, columns=[*fields, "params"])


def _scored(score, low, high, p) -> str:
    """'score [low, high], p = p' of a physics record."""
    return _cell(score, low, high) + ("" if p is None or math.isnan(p) else f", p = {p:.2g}")


def physics_table(df: pd.DataFrame, params: Mapping[str, int]) -> pd.DataFrame:
    """The display table: one row per (test, property, model), one column per survey, each cell
    'score [low, high]' with the p-value after it."""
    df = _ordered(df, params)
    df = df.assign(cell=[_scored(r.score, r.ci_low, r.ci_high, r.p_value) for r in df.itertuples()],
                   test_rank=[list(TESTS).index(t) for t in df["test"]])
    columns = [c for _, c in sorted(set(zip(df["column_rank"], df["column"])))]
    order = df.sort_values(["test_rank", "property"], kind="stable")
    wide = order.pivot_table(index=["test", "property", "row"], columns="column", values="cell", aggfunc="first",
                             sort=False)
    wide = wide.reindex(columns=columns).fillna(MISSING).reset_index()
    return wide.rename(columns={"test": "Test", "property": "Property", "row": "Model"}).rename_axis(None, axis=1)


def physics_caption(df: pd.DataFrame, facts: RunFacts) -> str:
    """The physics table's caption: each test's reference and scale, the interval, the null and
    the smallest p-value it can give, N."""
    tests = "; ".join(f"{name} (pu {TESTS[name].reference}; {PHYSICS_SCALES[TESTS[name].scale]})"
                      for name in TESTS if name in set(df["test"]))
    floor = p_floor(df["null_draws"])
    splits = values(df["subsampling_splits"])
    return facts.caption(
        "**The authors' physics tests: what each embedding knows of its objects' properties.**",
        f"Tests: {tests}.",
        (f"[low, high]: {facts.level()}subsampling interval, score ± z SE, the SE from K = {splits} splits into "
         "halves (and quarters for a neighbourhood test), neighbours restricted exactly to each subsample."
         if splits else "No interval: no subsampling splits were drawn."),
        f"Permutation null: the property shuffled across objects, K = {values(df['null_draws'])} draws"
        + (f"; p is one-sided (the tail the test's scale says knows more), so {floor}." if floor else "."),
        counts(df, per="embedding") + " (the objects a test kept: the probes, consistency and single overlap drop "
        "the property's values outside its 1st to 99th percentiles; physics.csv counts them in n_excluded).")


def _model_label(model: str) -> str:
    family, size = split_model(model)
    return f"{family_label(family)} {size_label(size)}"


def physics_pair_table(df: pd.DataFrame) -> pd.DataFrame:
    """The display table of the physics tests of compared pairs: one row per (test, property,
    pair), intramodal pairs before crossmodal ones, each 'score [low, high], p'."""
    kinds = {"intramodal": 0, "crossmodal": 1}
    df = df.assign(test_rank=[list(TESTS).index(t) for t in df["test"]],
                   kind_rank=[kinds.get(k, len(kinds)) for k in df["kind"]])
    df = df.sort_values(["test_rank", "property", "kind_rank", "crossmatch"], kind="stable")
    return pd.DataFrame({
        "Test": df["test"], "Property": df["property"], "Crossmatch": df["crossmatch"], "Kind": df["kind"],
        "A": [f"{_model_label(m)} ({survey_label(s)})" for m, s in zip(df["model_a"], df["survey_a"])],
        "B": [f"{_model_label(m)} ({survey_label(s)})" for m, s in zip(df["model_b"], df["survey_b"])],
        "Score": [_scored(r.score, r.ci_low, r.ci_high, r.p_value) for r in df.itertuples()]}).reset_index(drop=True)


def physics_pair_caption(df: pd.DataFrame, facts: RunFacts) -> str:
    """The caption of the physics tests of compared pairs: the test, its scale, the interval, the
    null (the pairing of objects shuffled) and the smallest p-value it can give, N."""
    tests = "; ".join(f"{name} (pu {TESTS[name].reference}; {PHYSICS_SCALES[TESTS[name].scale]})"
                      for name in TESTS if name in set(df["test"]))
    floor = p_floor(df["null_draws"])
    splits = values(df["subsampling_splits"])
    return facts.caption(
        "**The authors' physics tests of two embeddings of the same objects: do both put each object among "
        "objects alike in the property?**",
        f"Tests: {tests}: per object, the 1-Wasserstein distance between the standardised property over its k "
        "neighbours in A and over its k neighbours in B, averaged over objects.",
        (f"[low, high]: {facts.level()}subsampling interval, score ± z SE, the SE from K = {splits} splits into "
         "halves and quarters, both sides' neighbours restricted exactly to each subsample."
         if splits else "No interval: no subsampling splits were drawn."),
        f"Permutation null: B's objects paired at random with A's (its neighbour lists relabelled), K = "
        f"{values(df['null_draws'])} draws" + (f"; p is one-sided (lower than the null), so {floor}." if floor else "."),
        counts(df, per="pair") + " (objects with the property and on both sides; physics_pairs.csv counts the "
        "others in n_excluded).")


def write_physics_table(df: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike,
                        params: Mapping[str, int], facts: RunFacts | None = None, pairs: bool = False) -> list[Path]:
    """The tidy physics records as ``csv_path`` and the display table, after its caption, as
    ``md_path`` (a line saying none ran when ``df`` is empty); with ``pairs`` those of the compared
    pairs (``gather_physics(..., pairs=True)``)."""
    facts = facts or RunFacts()
    csv_path, md_path = Path(csv_path), Path(md_path)
    df.to_csv(csv_path, index=False)
    if df.empty:
        what = ("No physics tests of compared pairs ran (config probes.physics.tests has no "
                "neighbourhood_wasserstein)." if pairs else "No physics tests ran (config probes.physics.tests is empty).")
        md_path.write_text(facts.caption(what) + "\n")
    elif pairs:
        md_path.write_text(to_markdown(physics_pair_table(df), physics_pair_caption(df, facts)))
    else:
        md_path.write_text(to_markdown(physics_table(df, params), physics_caption(df, facts)))
    return [csv_path, md_path]


def write_physics_depth_figures(df: pd.DataFrame, out_dir: str | os.PathLike, params: Mapping[str, int],
                                workers: int = 1, facts: RunFacts | None = None) -> list[Path]:
    """One figure per crossmatch of the block-by-block physics records (``gather_physics(...,
    blocks=True)``), PNG and PDF (``physics_depth_{crossmatch}``): one panel per survey (rows) and
    (test, property) (columns), the score against depth ((index + 1) / the model's blocks, as the
    layer atlas), one line per model in its family's colour (sizes: solid, dash-dot, dotted, each
    named at its end; untrained: dashed) with its subsampling interval as a band, markers filled
    where the test beats its permutation null (calibrated > 0), open elsewhere."""
    facts = facts or RunFacts()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(xm, _ordered(sub, params), facts, [out / f"physics_depth_{xm}{suffix}" for suffix in (".png", ".pdf")])
             for xm, sub in df.groupby("crossmatch", sort=True)]
    return [path for paths in draw_all(_draw_depth, tasks, workers) for path in paths]


def _draw_depth(crossmatch: str, sub: pd.DataFrame, facts: RunFacts, paths: list[Path]) -> list[Path]:
    surveys = sorted(set(sub["survey"]), key=survey_rank)
    columns = sorted(set(zip(sub["test"], sub["property"])), key=lambda c: (list(TESTS).index(c[0]), c[1]))
    fig, axes = plt.subplots(len(surveys), len(columns), squeeze=False, layout="constrained",
                             figsize=(4.2 * len(columns), 3.4 * len(surveys) + 0.9))
    for survey, row in zip(surveys, axes):
        for (test, prop), ax in zip(columns, row):
            part = sub[(sub["survey"] == survey) & (sub["test"] == test) & (sub["property"] == prop)]
            sizes: dict[str, int] = {}  # a family's sizes, smallest first: solid, dash-dot, dotted lines
            for model, line in part.groupby("model", sort=False):
                line = line.sort_values("depth")
                family, size = split_model(model)
                style, nth = family_style(family), sizes.setdefault(family, 0)
                sizes[family] += 1
                x, y = line["depth"].to_numpy(float), line["score"].to_numpy(float)
                ax.fill_between(x, line["ci_low"].to_numpy(float), line["ci_high"].to_numpy(float),
                                color=style["color"], alpha=0.15, lw=0)
                beats = line["calibrated"].to_numpy(float) > 0
                ax.plot(x, y, color=style["color"], lw=1.4, label=_model_label(model),
                        ls="--" if family.endswith(UNTRAINED) else ("-", "-.", ":")[nth % 3])
                ax.annotate(size_label(size), (x[-1], y[-1]), xytext=(4, 0), textcoords="offset points", fontsize=7,
                            color=style["color"], va="center")
                ax.scatter(x, y, marker=style["marker"], s=22, color=style["color"],
                           facecolors=np.where(beats[:, None], matplotlib.colors.to_rgba(style["color"]), (1, 1, 1, 1)))
            ax.set_title(f"{survey_label(survey)}: {test} of {prop}", fontsize=10)
            ax.set_xlabel("depth (block / blocks)")
            ax.set_ylabel(f"score ({PHYSICS_SCALES[TESTS[test].scale]})", fontsize=8)
            ax.set_xlim(0, 1.12)  # room for the size labels
            ax.grid(True, color="0.9", lw=0.8)
            ax.set_axisbelow(True)
    seen = panel_handles(axes.flat)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=min(len(seen), 4), frameon=False)
    facts.mark(fig)
    return save(fig, paths)


# ---- alignment against physics (samesky.report.alignment) ---------------------------------------

def write_alignment_figures(table: pd.DataFrame, trend: pd.DataFrame, out_dir: str | os.PathLike, workers: int = 1,
                            facts: RunFacts | None = None) -> list[Path]:
    """One figure per crossmatch of ``table`` (``alignment.alignment_physics``), PNG and PDF
    (``alignment_physics_{crossmatch}``): calibrated alignment (x) against what the embeddings
    know (y), both with their intervals, one panel per (survey, compared survey) and (property,
    measure), one point per model, a line through each family's sizes, the trend test
    (``alignment.alignment_trend``) in the corner; drawn by ``workers`` processes."""
    facts = facts or RunFacts()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(xm, sub, trend[trend["crossmatch"] == xm], facts,
              [out / f"alignment_physics_{xm}{suffix}" for suffix in (".png", ".pdf")])
             for xm, sub in table.groupby("crossmatch", sort=True)]
    return [path for paths in draw_all(_draw_alignment, tasks, workers) for path in paths]


def _draw_alignment(crossmatch: str, sub: pd.DataFrame, trend: pd.DataFrame, facts: RunFacts,
                    paths: list[Path]) -> list[Path]:
    return save(_alignment_figure(crossmatch, sub, trend, facts), paths)


def _alignment_figure(crossmatch: str, sub: pd.DataFrame, trend: pd.DataFrame, facts: RunFacts) -> plt.Figure:
    placed = sub[sub["alignment"].notna()]
    sides = sorted(set(zip(placed["survey"], placed["compared_survey"])), key=lambda s: (survey_rank(s[0]), s[1]))
    columns = list(dict.fromkeys(zip(placed["property"], placed["measure"])))
    fig, axes = plt.subplots(max(len(sides), 1), max(len(columns), 1), squeeze=False, layout="constrained",
                             figsize=(4.6 * max(len(columns), 1), 3.8 * max(len(sides), 1) + 0.9))
    if placed.empty:
        axes[0, 0].text(0.5, 0.5, f"{crossmatch}: no probed embedding takes part in a crossmodal comparison",
                        ha="center", va="center", wrap=True)
        axes[0, 0].set_axis_off()
    styles = {f: family_style(f) for f in dict.fromkeys(placed["family"])}
    for (survey, compared), row in zip(sides, axes):
        for (prop, measure), ax in zip(columns, row):
            part = placed[(placed["survey"] == survey) & (placed["compared_survey"] == compared)
                          & (placed["property"] == prop) & (placed["measure"] == measure)]
            test = trend[(trend["survey"] == survey) & (trend["compared_survey"] == compared)
                         & (trend["property"] == prop) & (trend["measure"] == measure)]
            if part.empty:  # a measure these embeddings were not given (a physics test on one survey only)
                ax.set_visible(False)
                continue
            _alignment_panel(ax, part, test, styles)
            ax.set_title(f"{survey_label(survey)} embeddings: {prop}", fontsize=11)
            ax.set_xlabel(f"calibrated {metric_label(part['alignment_metric'].iloc[0])}, "
                          f"{survey_label(survey)} vs {survey_label(compared)}")
            more = part["knows_more"].iloc[0]
            ax.set_ylabel(f"{measure_label(measure, part['metric'].iloc[0])} ({more} knows more)")
    seen = panel_handles(axes.flat)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=min(len(seen), 4),
                   frameon=False)
    facts.mark(fig)
    return fig


def _alignment_panel(ax, part: pd.DataFrame, test: pd.DataFrame, styles: dict) -> None:
    for family, line in part.groupby("family", sort=False):
        line = line.sort_values("params")
        style, control = styles[family], family.endswith(UNTRAINED)
        x, y = line["alignment"].to_numpy(float), line["knows"].to_numpy(float)
        ax.errorbar(x, y, xerr=_bars(x, line["alignment_low"], line["alignment_high"]),
                    yerr=_bars(y, line["knows_low"], line["knows_high"]), label=family_label(family), capsize=3,
                    lw=1.4, ms=6, ls="--" if control else "-", color=style["color"], marker=style["marker"],
                    markerfacecolor="white" if control else style["color"])
        for xi, yi, model in zip(x, y, line["model"]):
            ax.annotate(size_label(split_model(model)[1]), (xi, yi), xytext=(4, 3), textcoords="offset points",
                        fontsize=7, color=style["color"])
    if len(test):
        t = test.iloc[0]
        text = (f"Spearman ρ = {t['rho']:.2f}, p = {t['p_value']:.2g}\n(one-sided, {t['method']}; n = {t['n']})"
                if not pd.isna(t["rho"]) else f"ρ undefined (n = {t['n']}):\n" + textwrap.fill(t["note"], 44))
        ax.text(0.02, 0.98, text, transform=ax.transAxes, va="top", ha="left", fontsize=8, wrap=True,
                bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "0.7", "alpha": 0.9})
    ax.grid(True, color="0.9", lw=0.8)
    ax.set_axisbelow(True)
