"""Alignment against physics (samesky.report.alignment): the table, the rank-correlation trend test
against hand-computed values and scipy's permutation test, the files and the figure."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import permutation_test, rankdata, spearmanr

from samesky.report import alignment_physics, alignment_trend, write_alignment_figures, write_alignment_physics
from samesky.report.alignment import CONTROL, EXACT_MAX, NO_COMPARISON, alignment_metric, rank_correlation
from samesky.report.captions import RunFacts

# ---- the trend test ------------------------------------------------------------------------------


@pytest.mark.parametrize("x, y, alternative, rho, p", [
    ([1, 2, 3], [1, 2, 3], "greater", 1.0, 1 / 6),       # only the identity of 3! orderings reaches rho = 1
    ([1, 2, 3], [3, 2, 1], "greater", -1.0, 1.0),
    ([1, 2, 3], [3, 2, 1], "less", -1.0, 1 / 6),
    # rho = 1 - 6 * 2 / (4 * 15) = 0.8; rho >= 0.8: the identity and the 3 adjacent swaps, 4 of 24
    ([1, 2, 3, 4], [1, 3, 2, 4], "greater", 0.8, 4 / 24),
    ([10, 20, 30, 40], [0.1, 0.9, 0.5, 2.0], "greater", 0.8, 4 / 24),  # ranks alone matter
])
def test_rank_correlation_by_hand(x, y, alternative, rho, p):
    got_rho, got_p, method = rank_correlation(x, y, alternative)
    assert got_rho == pytest.approx(rho, abs=1e-12) and got_p == pytest.approx(p, abs=1e-12)
    assert method == f"exact ({math.factorial(len(x)):,} orderings)"


def _spearman(x, y, axis=-1):
    rx, ry = rankdata(x, axis=axis), rankdata(y, axis=axis)
    rx, ry = rx - rx.mean(axis=axis, keepdims=True), ry - ry.mean(axis=axis, keepdims=True)
    return (rx * ry).sum(axis=axis) / np.sqrt((rx * rx).sum(axis=axis) * (ry * ry).sum(axis=axis))


@pytest.mark.parametrize("n", range(3, EXACT_MAX + 1))
@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_rank_correlation_matches_scipys_exact_permutation_test(n, alternative):
    rng = np.random.default_rng(n)
    x = rng.integers(0, n - 1, n).astype(float)  # ties on both sides
    y = x + rng.normal(0, 1.5, n).round(0)
    rho, p, _ = rank_correlation(x, y, alternative)
    # one sample under 'pairings': every ordering of y against the fixed x, n! of them (scipy's correlation recipe)
    oracle = permutation_test((y,), lambda v, axis=-1: _spearman(np.broadcast_to(x, v.shape), v, axis),
                              permutation_type="pairings", alternative=alternative, n_resamples=np.inf,
                              vectorized=True)
    assert rho == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert p == pytest.approx(oracle.pvalue, abs=1e-12)


def test_rank_correlation_beyond_exact_is_scipys_t_approximation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=EXACT_MAX + 3), rng.normal(size=EXACT_MAX + 3)
    rho, p, method = rank_correlation(x, y, "less")
    expected = spearmanr(x, y, alternative="less")
    assert (rho, p, method) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue), "t approximation")


def test_rank_correlation_is_undefined_for_too_few_or_constant():
    assert all(math.isnan(v) for v in rank_correlation([1, 2], [1, 2])[:2])
    assert all(math.isnan(v) for v in rank_correlation([1, 2, 3], [5, 5, 5])[:2])
    with pytest.raises(ValueError, match="alternative must be 'greater' or 'less', got 'two-sided'"):
        rank_correlation([1, 2, 3], [1, 2, 3], "two-sided")
    with pytest.raises(ValueError, match=r"one length, got shapes \(3,\) and \(2,\)"):
        rank_correlation([1, 2, 3], [1, 2])


# ---- the table -----------------------------------------------------------------------------------

XM = "desi_hsc"
HSC_MODELS = ("vit-base", "vit-large", "vit-huge", "aion@random-base")
PARAMS = {"vit-base": 86e6, "vit-large": 304e6, "vit-huge": 632e6, "aion@random-base": 3e8,
          "specformer-base": 43e6, "dinov2-small": 22e6}


def _scores():
    # desi's Specformer against each HSC model (Table 2's rows), plus a raw-only metric and an intramodal row
    rows = [{"kind": "crossmodal", "metric": "mknn", "crossmatch": XM, "survey_a": "desi", "model_a": "specformer-base",
             "survey_b": "hsc", "model_b": m, "calibrated": c, "calibrated_low": c - 0.05, "calibrated_high": c + 0.05}
            for m, c in zip(HSC_MODELS, (0.10, 0.20, 0.30, 0.0))]
    rows.append({"kind": "crossmodal", "metric": "cka_linear", "crossmatch": XM, "survey_a": "desi",
                 "model_a": "specformer-base", "survey_b": "hsc", "model_b": "vit-base", "calibrated": 0.9,
                 "calibrated_low": 0.8, "calibrated_high": 1.0})
    rows.append({"kind": "intramodal", "metric": "mknn", "crossmatch": XM, "survey_a": "hsc", "model_a": "vit-base",
                 "survey_b": "hsc", "model_b": "vit-large", "calibrated": 0.5, "calibrated_low": 0.4,
                 "calibrated_high": 0.6})
    return pd.DataFrame(rows)


def _probes():
    r2 = {"specformer-base": 0.7, "vit-base": 0.3, "vit-large": 0.5, "vit-huge": 0.4, "aion@random-base": 0.9,
          "dinov2-small": 0.6}
    rows = [{"crossmatch": XM, "survey": "desi" if m == "specformer-base" else "hsc", "model": m,
             "property": "redshift", "probe": probe, "metric": "r2", "score": s if probe == "linear" else -1.0,
             "ci_low": s - 0.1, "ci_high": s + 0.1} for m, s in r2.items() for probe in ("linear", "knn")]
    return pd.DataFrame(rows)


def _physics():
    consistency = {"vit-base": 0.9, "vit-large": 0.8, "vit-huge": 0.7}  # lower knows more
    rows = [{"crossmatch": XM, "survey": "hsc", "model": m, "test": test, "property": "redshift", "score": s,
             "ci_low": s - 0.02, "ci_high": s + 0.02}
            for m, s in consistency.items() for test in ("neighbour_consistency", "neighbour_set_overlap")]
    return pd.DataFrame(rows)


@pytest.fixture
def table():
    return alignment_physics(_scores(), _probes(), _physics(), PARAMS)


def test_alignment_physics_sets_each_comparison_beside_each_side(table):
    assert alignment_metric(_scores()) == "mknn"  # the headline metric, not CKA
    cols = ["survey", "embedding_model", "compared_model", "model", "measure", "knows", "alignment", "in_trend", "note"]
    got = table[cols].astype(object).where(table[cols].notna(), None).values.tolist()
    assert got == [
        # desi's one embedding, once per HSC model it is compared with
        ["desi", "specformer-base", "vit-base", "vit-base", "linear probe", 0.7, 0.1, True, ""],
        ["desi", "specformer-base", "vit-large", "vit-large", "linear probe", 0.7, 0.2, True, ""],
        ["desi", "specformer-base", "vit-huge", "vit-huge", "linear probe", 0.7, 0.3, True, ""],
        ["desi", "specformer-base", "aion@random-base", "aion@random-base", "linear probe", 0.7, 0.0, False, CONTROL],
        ["hsc", "dinov2-small", None, "dinov2-small", "linear probe", 0.6, None, False, NO_COMPARISON],
        ["hsc", "vit-base", "specformer-base", "vit-base", "linear probe", 0.3, 0.1, True, ""],
        ["hsc", "vit-large", "specformer-base", "vit-large", "linear probe", 0.5, 0.2, True, ""],
        ["hsc", "vit-huge", "specformer-base", "vit-huge", "linear probe", 0.4, 0.3, True, ""],
        ["hsc", "aion@random-base", "specformer-base", "aion@random-base", "linear probe", 0.9, 0.0, False, CONTROL],
        ["hsc", "vit-base", "specformer-base", "vit-base", "neighbour_consistency", 0.9, 0.1, True, ""],
        ["hsc", "vit-large", "specformer-base", "vit-large", "neighbour_consistency", 0.8, 0.2, True, ""],
        ["hsc", "vit-huge", "specformer-base", "vit-huge", "neighbour_consistency", 0.7, 0.3, True, ""],
    ]
    row = table[(table["embedding_model"] == "vit-large") & (table["measure"] == "linear probe")].iloc[0]
    assert (row["alignment_low"], row["alignment_high"], row["knows_low"], row["knows_high"]) == pytest.approx(
        (0.15, 0.25, 0.4, 0.6))
    assert set(table["knows_more"]) == {"higher", "lower"} and set(table["alignment_metric"]) == {"mknn"}
    assert table.loc[table["measure"] == "neighbour_consistency", "knows_more"].eq("lower").all()


def test_alignment_trend_per_side_property_and_measure(table):
    trend = alignment_trend(table)
    cols = ["survey", "measure", "n", "models", "rho", "alternative", "p_value", "method"]
    got = trend[cols].values.tolist()
    # HSC, linear R^2: alignment 0.1 < 0.2 < 0.3 against R^2 0.3, 0.5, 0.4 -> ranks (1,2,3) vs (1,3,2):
    # rho = 1 - 6 * 2 / 24 = 0.5; rho >= 0.5 for 3 of the 6 orderings (the identity and two swaps)
    # HSC, consistency (a distance): 0.9, 0.8, 0.7 -> rho = -1, p(less) = 1/6
    assert got[1:] == [
        ["hsc", "linear probe", 3, "vit-base vit-large vit-huge", pytest.approx(0.5), "greater", pytest.approx(0.5),
         "exact (6 orderings)"],
        ["hsc", "neighbour_consistency", 3, "vit-base vit-large vit-huge", pytest.approx(-1.0), "less",
         pytest.approx(1 / 6), "exact (6 orderings)"],
    ]
    desi = trend.iloc[0]
    assert desi["survey"] == "desi" and desi["n"] == 3 and math.isnan(desi["rho"]) and math.isnan(desi["p_value"])
    assert desi["note"].startswith("undefined: what the embeddings know is the same for every model")


def test_write_alignment_physics_and_figure(tmp_path, table):
    trend = alignment_trend(table)
    facts = RunFacts(simulated=(XM,), miniature=True)
    paths = write_alignment_physics(table, trend, tmp_path / "a.csv", tmp_path / "t.csv", tmp_path / "a.md", facts)
    assert [p.name for p in paths] == ["a.csv", "t.csv", "a.md"]
    back = pd.read_csv(paths[0])
    assert len(back) == len(table) and list(back.columns) == list(table.columns)
    md = paths[2].read_text()
    assert md.startswith("**Simulated sky (desi_hsc), random-weight miniature models: not scientific results.**")
    assert ("| desi_hsc | HSC ViT Large | DESI Specformer Base | 0.200 [0.150, 0.250] | 0.500 [0.400, 0.600] | "
            "0.800 [0.780, 0.820] |  |") in md
    assert f"| desi_hsc | HSC DINOv2 Small | — | — | 0.600 [0.500, 0.700] | — | {NO_COMPARISON} |" in md
    assert "| desi_hsc | HSC (vs DESI) | redshift | neighbour consistency (lower knows more) | 3 | -1.000 | 0.167, exact (6 orderings) |  |" in md
    figures = write_alignment_figures(table, trend, tmp_path / "figs", facts=facts)
    assert [p.name for p in figures] == ["alignment_physics_desi_hsc.png", "alignment_physics_desi_hsc.pdf"]
    assert all(p.stat().st_size > 10_000 for p in figures)


def test_no_probes_no_rows(tmp_path):
    empty = alignment_physics(_scores(), _probes().iloc[:0], _physics().iloc[:0], PARAMS)
    assert empty.empty and alignment_trend(empty).empty
    md = write_alignment_physics(empty, alignment_trend(empty), tmp_path / "a.csv", tmp_path / "t.csv",
                                 tmp_path / "a.md")[2]
    assert md.read_text() == ("No probed embedding: nothing to set against alignment (config probes.properties "
                              "is empty).\n")
