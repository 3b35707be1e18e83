"""The field's measures registered on the metric protocol (issue 27): each one's compare record is
its pure function's value (tests/test_measures.py holds those to the references), with its null,
p-value and calibration on the tail its declaration names, and each reaches the layer atlas."""
import importlib

import numpy as np
import pytest
from metric_fixtures import COMPARISON, INTERVALS, SETTINGS, write_pair

from samesky.metrics.compare import compare_files, null_limit
from samesky.metrics.layers import compare_layer_files
from samesky.metrics.registry import METRICS
from samesky.metrics.stats import p_value, permutations, summarise
from samesky.schema import read_embeddings

MEASURES = [name for name, m in METRICS.items() if m.prepare.__qualname__.startswith("measures.")]
PLAIN = {**SETTINGS, "params": {}}


def _function(metric):
    _, module, function = metric.prepare.__qualname__.split(".")
    return getattr(importlib.import_module(f"samesky.metrics.measures.{module}"), function)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("measures"), dim=6)


def test_every_listed_measure_is_registered():
    assert len(MEASURES) == 23 and {"jaccard", "lcs_knn", "cka_rbf", "svcca", "procrustes", "rsa", "mi_ksg", "mmd",
                                    "distance_correlation", "shape_angular", "gaussian_js"} <= set(MEASURES)


@pytest.mark.parametrize("name", MEASURES)
def test_a_measure_scores_its_function_with_a_null_on_its_own_tail(pair, name):
    metric = METRICS[name]
    records = compare_files(pair["a"]["emb"], pair["b"]["emb"], pair["a"]["knn"], pair["b"]["knn"],
                            comparison=COMPARISON, metrics=[name], **PLAIN, **INTERVALS)
    rec, = records
    Za, Zb = (read_embeddings(pair[s]["emb"])[1] for s in "ab")
    params = {**metric.fixed, **metric.defaults, **({"k": SETTINGS["k"]} if metric.takes_k else {})}
    f = _function(metric)
    score = f(Za, Zb, **params)
    # the kNN measures relabel the cached graphs: every draw, each equal to the recomputed measure
    draws = null_limit(metric, SETTINGS["null_draws"], SETTINGS["feature_space_draws"])
    assert draws == (SETTINGS["null_draws"] if metric.uses_knn else SETTINGS["feature_space_draws"])
    null = [f(Za, Zb[pi], **params) for pi in permutations(90, draws, SETTINGS["seed"])]
    expected = summarise(score, null, np.empty(0), 0.95, alpha=SETTINGS["alpha"], scale=metric.scale)
    assert rec["score"] == score and rec["null_draws"] == draws
    assert rec["p_value"] == p_value(score, null, metric.direction) == expected["p_value"]
    assert (rec["tau"], rec["calibrated"]) == (expected["tau"], expected["calibrated"])
    assert rec["ci_low"] <= score <= rec["ci_high"] and rec["k"] == (SETTINGS["k"] if metric.takes_k else None)


def test_measures_reach_the_layer_atlas(pair):
    names = ["procrustes", "jaccard", "cka_rbf"]
    rows = compare_layer_files(pair["a"], pair["b"], comparison=COMPARISON, metrics=names, **PLAIN)
    assert len(rows) == 3 * 4 * 3
    cell = next(r for r in rows if (r["metric"], r["block_a"], r["block_b"]) == ("procrustes", "block1", "block0"))
    assert cell["null_draws"] == SETTINGS["feature_space_draws"] and cell["null_method"] == "permutation"
    from samesky.schema import LayersFile

    X, Y = (LayersFile(pair[s]["layers"]).block(j).astype(np.float32) for s, j in (("a", 1), ("b", 0)))
    assert cell["raw"] == _function(METRICS["procrustes"])(X, Y)


KNN_MEASURES = [name for name in MEASURES if METRICS[name].uses_knn]


@pytest.mark.parametrize("normalize_rows", [True, False])
def test_relabelled_graph_nulls_equal_the_measure_recomputed(normalize_rows):
    """A null draw relabels side B's graph (cosine, or raw inner products without row
    normalisation) and equals the measure recomputed on B's rows permuted (no ties here)."""
    from samesky.metrics.pair import Pair

    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((80, 6)), rng.standard_normal((80, 4)) + 0.5
    assert KNN_MEASURES == ["jaccard", "cycle_knn", "lcs_knn", "edit_distance_knn"]
    for name in KNN_MEASURES:
        metric, f = METRICS[name], _function(METRICS[name])
        est = metric.estimator(Pair(X, Y), k=5, normalize_rows=normalize_rows)
        assert metric.nulls == ("relabelled_graphs",) and not metric.costly_draws
        nulls = [est.null(pi) for pi in permutations(80, 4, 1)]
        assert nulls == [f(X, Y[pi], **metric.fixed, k=5, normalize_rows=normalize_rows)
                         for pi in permutations(80, 4, 1)]
        assert len(set(nulls)) > 1 and est.score() == f(X, Y, **metric.fixed, k=5, normalize_rows=normalize_rows)


def test_relabelled_graph_nulls_give_uniform_p_values_under_independence():
    """Independent sides: score and relabelled draws are exchangeable, so the score's rank among
    them, ties broken at random, is uniform: over 300 pairs, P(p <= a) for that p (19 draws) is a
    within 3.5 binomial standard errors; the recorded p-value (ties counted against the score,
    edit distance ties often at small N) is never below it, so at most a + 3.5 SE."""
    from samesky.metrics.pair import Pair

    rng = np.random.default_rng(5)
    reps, draws, n = 300, 19, 60
    ps = {name: ([], []) for name in KNN_MEASURES}
    for r in range(reps):
        pair = Pair(rng.standard_normal((n, 4)), rng.standard_normal((n, 4)))
        perms = list(permutations(n, draws, r))
        for name in KNN_MEASURES:
            est = METRICS[name].estimator(pair, k=5)
            score, null = est.score(), np.array([est.null(pi) for pi in perms])
            ties = np.count_nonzero(null == score)
            ps[name][0].append((1 + np.count_nonzero(null > score) + rng.integers(0, ties + 1)) / (draws + 1))
            ps[name][1].append(p_value(score, null))
    for name, (exact, recorded) in ps.items():
        for a in (0.1, 0.25, 0.5):
            se = np.sqrt(a * (1 - a) / reps)
            share, recorded_share = np.mean(np.array(exact) <= a), np.mean(np.array(recorded) <= a)
            assert abs(share - a) < 3.5 * se and recorded_share <= min(share, a + 3.5 * se), (name, a, share)
