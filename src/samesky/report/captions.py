"""What every table and figure tells its reader before its numbers.

``RunFacts`` says what kind of run made them: a simulated sky, random-weight miniature models
(``models.weights: tiny``), the interval level and splits the config asked. The Plan decides it
(``Plan.report_facts``) and the report rules pass it on as a param. A run that is not a
measurement marks every figure (``RunFacts.mark``: a red line on top) and every table caption
(``RunFacts.notice``); its size axes name the real models whose parameter counts they show.

The captions of the Markdown tables (``metric_caption``, ``trend_caption``, and
``probes.probe_caption``) name the metric and its scale, what the interval is, the number of objects N
and k, and the smallest p-value a permutation null can give, from the metric registry
(``Metric.label``, ``summary``, ``scale``, ``interval``) and the records themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pandas as pd

from ..metrics.registry import INTERVALS, METRICS, NULLS, PAIRING_FREE, SCALE_WORDS, SCALES
from .layout import NULL_SIGMA

MARK_COLOUR = "#B00020"
# What a pairing-free measure's captions say in place of a null column, p-values and calibrated views.
NO_NULL = ("No permutation null, p-value or calibrated score is defined: "
           f"{NULLS[PAIRING_FREE][1].removeprefix('no permutation null: ')}.")


@dataclass(frozen=True)
class RunFacts:
    simulated: tuple[str, ...] = ()  # the crossmatches whose sky is simulated (source: simulate)
    miniature: bool = False  # the models are random-weight miniatures (models.weights: tiny)
    ci: float | None = None  # the interval level asked (metrics.ci, or probes.ci)
    subsampling_splits: int | None = None  # the splits asked (metrics.subsampling_splits)
    feature_space_draws: int | None = None  # their cap for metrics whose draws cost O(N d^2)

    @classmethod
    def of(cls, params: Mapping | None) -> RunFacts:
        """From a report rule's ``facts`` param (``Plan.report_facts``); none: a real run, no levels."""
        if not params:
            return cls()
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise KeyError(f"report facts: unknown key(s) {sorted(unknown)}; known: {list(cls.__dataclass_fields__)}")
        return cls(**{**params, "simulated": tuple(params.get("simulated", ()))})

    @property
    def notice(self) -> str:
        """'Simulated sky (a, b), random-weight miniature models: not scientific results', or ''."""
        parts = [f"Simulated sky ({', '.join(self.simulated)})"] if self.simulated else []
        if self.miniature:
            parts.append("random-weight miniature models" if parts else "Random-weight miniature models")
        return ", ".join(parts) + ": not scientific results" if parts else ""

    def size_axis(self, larger: bool = False) -> str:
        """The x label of a parameter-count axis. Miniatures are placed at the parameter count of
        the real model they stand in for, and the label says so."""
        if self.miniature:
            return f"size (parameters of the {'larger ' if larger else ''}real model, log scale)"
        return "parameters of the larger model (log scale)" if larger else "model parameters (log scale)"

    def mark(self, fig, y: float | None = None) -> None:
        """A red line at the top of ``fig`` with the notice, when the run is not a measurement: its
        suptitle (which a constrained layout makes room for), or a line at height ``y`` of a
        figure laid out by hand."""
        if not self.notice:
            return
        style = {"color": MARK_COLOUR, "fontsize": 11, "fontweight": "bold"}
        if y is None:
            fig.suptitle(self.notice, **style)
        else:
            fig.text(0.5, y, self.notice, ha="center", va="top", **style)

    def caption(self, *sentences: str) -> str:
        """A caption paragraph: the notice (bold) first, then ``sentences``."""
        return " ".join(([f"**{self.notice}.**"] if self.notice else []) + [s for s in sentences if s])

    def level(self) -> str:
        return f"{100 * self.ci:g}% " if self.ci is not None else ""


def p_floor(draws) -> str:
    """What the smallest p-value is, for permutation nulls of ``draws`` draws (any of them)."""
    draws = sorted({int(d) for d in pd.Series(draws).dropna() if d > 0})
    if not draws:
        return ""
    k = draws[0]
    return (f"p >= 1/(1+K) with K null draws: p >= {1 / (1 + k):.2g} at K = {k}"
            + (f" (K from {draws[0]} to {draws[-1]})" if len(draws) > 1 else ""))


def counts(sub: pd.DataFrame, per: str = "comparison") -> str:
    """'N = 200 objects per comparison', or per crossmatch where they differ: 'N = 200 objects
    (desi_hsc), 180 to 190 (jwst_hsc)'."""
    if sub["n"].nunique() == 1:
        return f"N = {int(sub['n'].iloc[0]):,} objects per {per}"
    parts = []
    for xm, n in sub.groupby("crossmatch", sort=True)["n"]:
        lo, hi = int(n.min()), int(n.max())
        parts.append(f"{lo:,}{f' to {hi:,}' if hi != lo else ''}{' objects' if not parts else ''} ({xm})")
    return "N = " + ", ".join(parts)


def values(series: pd.Series) -> str:
    """'10', or '10 to 50' when the records differ; '' when none says."""
    v = sorted({int(x) for x in series.dropna()})
    return "" if not v else str(v[0]) if len(v) == 1 else f"{v[0]} to {v[-1]}"


def _interval(sub: pd.DataFrame, metric: str, facts: RunFacts, calibrated: bool) -> str:
    """How the brackets were made: the subsampling splits the records say they used, and why they
    are fewer than the config asked when the cap of ``Metric.costly_splits`` lowered them."""
    splits = sub["subsampling_splits"].dropna()
    if not splits.gt(0).any():
        return "No interval: no subsampling splits were drawn."
    spec = METRICS.get(metric)
    how = f", rescoring {INTERVALS[spec.interval]}," if spec else ""
    text = (f"[low, high]: {facts.level()}subsampling interval, score ± z SE; the SE from K = {values(splits)} "
            f"random splits of the N objects{how} with every neighbourhood and moment recomputed on each subsample")
    asked, used = facts.subsampling_splits, int(splits.min())
    if asked is not None and used < asked:
        capped = spec is not None and spec.costly_splits and used == facts.feature_space_draws
        text += (f"; {used} of the {asked} splits asked (metrics.subsampling_splits)"
                 + (": metrics.feature_space_draws caps them for this metric, whose splits recompute O(N d²) moments"
                    if capped else ""))
    return text + ("; mapped to the calibrated scale like the score." if calibrated else ".")


def _scale(metric: str, calibrated: bool, alpha: str) -> str:
    m = METRICS.get(metric)
    if m is None:
        return f"{metric}: a metric this version's registry does not know."
    what = f"{m.label}: {m.summary}."
    if calibrated:
        return (f"{what} Calibrated score (%): the share of the room between the permutation null's "
                f"{alpha} level (tau) and a perfect score that the score reaches (0: not above the null's "
                f"level); {SCALES[m.scale][1]}; higher is more aligned.")
    return f"{what} Scale: {SCALE_WORDS[m.scale]}." + (f" {NO_NULL}" if m.pairing_free else "")


def metric_caption(title: str, sub: pd.DataFrame, metric: str, facts: RunFacts, *, ci: bool,
                   calibrated: bool = False, null_column: str | None = None, p_values: bool = False) -> str:
    """The caption of one metric's table: ``sub`` holds the records it shows (the ``self``
    records of its null column included)."""
    shown = sub[sub["kind"] != "self"]
    alpha = sub["alpha"].dropna()
    level = f"{100 * (1 - alpha.iloc[0]):g}%" if len(alpha) else "1 - alpha"
    k = shown["k"].dropna()
    sentences = [f"**{title}.**", _scale(metric, calibrated, level)]
    if ci:
        sentences.append(_interval(shown, metric, facts, calibrated))
    if null_column:
        null = sub[sub["kind"] == "self"]
        closed = len(null) and (null["null_method"] == "closed_form").all()
        draws = "exact closed form" if closed else f"K = {values(null['null_draws'])} draws"
        sentences.append(f"{null_column}: the mean of the permutation null, the reference against its own "
                         f"shuffled copy ({draws})" + (f"; its brackets are the mean ± {NULL_SIGMA}σ." if ci else "."))
    sentences.append(counts(shown) + (f", k = {values(k)} neighbours." if len(k) else "."))
    if p_values:
        permuted = shown[shown["null_method"] != "closed_form"]
        floor = p_floor(permuted["null_draws"])
        sentences.append("p: the one-sided permutation p-value (1 + #null at least as aligned) / (1 + K)"
                         + (f", so {floor}." if floor else "; exact closed-form nulls."))
    return facts.caption(*sentences)


def trend_caption(facts: RunFacts, calibrated: bool) -> str:
    return facts.caption(
        f"**Trend statistics{' of the calibrated scores' if calibrated else ''}.** Does alignment grow with "
        "model size? For each family and table column, adjacent sizes are compared; an increase is a larger "
        "model strictly more aligned (a higher score, or a lower one for distances"
        + ("" if not calibrated else "; calibrated scores are always higher when more aligned") + "). "
        "p: one-sided binomial test (p = 0.5, alternative 'greater'), pooled ('all'), per column and per family.")
