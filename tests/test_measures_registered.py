"""The field's measures registered on the metric protocol (issue 27): each one's compare record is
its pure function's value (tests/test_measures.py holds those to the references), with its null,
p-value and calibration on the tail its declaration names, and each reaches the layer atlas. A
measure declared pairing-free (it ignores which row of A goes with which of B) is exactly that, and
draws no null: its records have a score and an interval and nothing the null would give."""
import importlib

import numpy as np
import pytest
from metric_fixtures import COMPARISON, INTERVALS, SETTINGS, write_pair

from samesky.metrics.compare import compare_files
from samesky.metrics.layers import compare_layer_files
from samesky.metrics.registry import METRICS, Metric
from samesky.metrics.stats import p_value, permutations, summarise
from samesky.schema import LayersFile, read_embeddings

MEASURES = [name for name, m in METRICS.items() if m.prepare.__qualname__.startswith("measures.")]
PAIRING_FREE = ["mmd", "frechet", "eigenspectrum", "riemannian", "gaussian_kl", "gaussian_js"]
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


def test_the_pairing_free_measures_are_declared_so():
    assert [name for name, m in METRICS.items() if m.pairing_free] == PAIRING_FREE
    assert all(METRICS[name].nulls == ("pairing_free",) and not METRICS[name].costly_draws for name in PAIRING_FREE)
    with pytest.raises(ValueError, match=r"nulls \('pairing_free', 'feature_draws'\) .*'pairing_free' alone"):
        Metric("x", "x", METRICS["mmd"].prepare, nulls=("pairing_free", "feature_draws"))


def _structured(n=60, seed=4):
    """Paired sides sharing a latent (B a noisy linear map of A's latent), so that every measure
    that reads the pairing sees it, with equal dimensions for the measures that need them."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    A = latent @ rng.standard_normal((3, 5)) + 0.3 * rng.standard_normal((n, 5))
    B = np.tanh(latent @ rng.standard_normal((3, 5))) + 0.3 * rng.standard_normal((n, 5)) + 1.0
    return A, B


@pytest.mark.parametrize("name", list(METRICS))
def test_a_measure_is_pairing_free_exactly_when_declared(name):
    """Permuting B's rows leaves a pairing-free measure unchanged (to 1e-12 relative, rounding of
    reordered sums) and changes every other metric on structured data."""
    A, B = _structured()
    metric = METRICS[name]
    params = {"k": 5} if metric.takes_k else {}
    pi = np.random.default_rng(0).permutation(len(B))
    score, shuffled = metric(A, B, **params), metric(A, B[pi], **params)
    if metric.pairing_free:
        assert shuffled == pytest.approx(score, rel=1e-12, abs=1e-12)
    else:
        assert abs(shuffled - score) > 1e-6 * max(abs(score), 1e-3), (name, score, shuffled)


@pytest.mark.parametrize("name", PAIRING_FREE)
def test_a_pairing_free_record_has_a_score_and_an_interval_and_no_null(pair, name, monkeypatch, tmp_path):
    from samesky.metrics.measures import MeasureEstimator

    def no_draws(self, pi):
        raise AssertionError("a pairing-free measure drew a null")
    monkeypatch.setattr(MeasureEstimator, "null", no_draws)  # none is drawn: the cost is saved
    rec, = compare_files(pair["a"]["emb"], pair["b"]["emb"], pair["a"]["knn"], pair["b"]["knn"],
                         comparison=COMPARISON, metrics=[name], **PLAIN, **INTERVALS)
    Za, Zb = (read_embeddings(pair[s]["emb"])[1] for s in "ab")
    assert rec["score"] == _function(METRICS[name])(Za, Zb, **METRICS[name].defaults)
    assert rec["ci_low"] < rec["score"] < rec["ci_high"] and rec["subsampling_splits"] == SETTINGS["feature_space_draws"]
    assert {f: rec[f] for f in ("null_draws", "null_method", "null_mean", "null_std", "p_value", "tau", "calibrated",
                                "calibrated_low", "calibrated_high")} == {
        "null_draws": 0, "null_method": "pairing_free", "null_mean": None, "null_std": None, "p_value": None,
        "tau": None, "calibrated": None, "calibrated_low": None, "calibrated_high": None}
    from samesky.report import gather
    from samesky.schema import write_metric_records

    write_metric_records(tmp_path / "r.json", [rec])  # as the compare job writes it, read by the report
    row = gather([tmp_path / "r.json"]).iloc[0]
    assert row.null_method == "pairing_free" and row.score == rec["score"] and np.isnan(row.calibrated)


@pytest.mark.parametrize("name", [m for m in MEASURES if m not in PAIRING_FREE])
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
    draws = metric.null_draws_made(SETTINGS["null_draws"], SETTINGS["feature_space_draws"])
    assert draws == (SETTINGS["null_draws"] if metric.uses_knn else SETTINGS["feature_space_draws"])
    null = [f(Za, Zb[pi], **params) for pi in permutations(90, draws, SETTINGS["seed"])]
    expected = summarise(score, null, np.empty(0), 0.95, alpha=SETTINGS["alpha"], scale=metric.scale)
    assert rec["score"] == score and rec["null_draws"] == draws
    assert rec["p_value"] == p_value(score, null, metric.direction) == expected["p_value"]
    assert (rec["tau"], rec["calibrated"]) == (expected["tau"], expected["calibrated"])
    assert rec["ci_low"] <= score <= rec["ci_high"] and rec["k"] == (SETTINGS["k"] if metric.takes_k else None)


def test_measures_reach_the_layer_atlas(pair, tmp_path):
    names = ["procrustes", "jaccard", "cka_rbf", "frechet"]
    rows = compare_layer_files(pair["a"], pair["b"], comparison=COMPARISON, metrics=names, **PLAIN)
    assert len(rows) == 4 * 4 * 3
    free = [r for r in rows if r["metric"] == "frechet"]  # every cell, final x final (compare's) included
    assert len(free) == 12 and {(r["null_draws"], r["null_method"], r["tau"], r["p"], r["calibrated"])
                                for r in free} == {(0, "pairing_free", None, None, None)}
    cell = next(r for r in free if (r["block_a"], r["block_b"]) == ("block1", "block0"))
    X, Y = (LayersFile(pair[s]["layers"]).block(j).astype(np.float32) for s, j in (("a", 1), ("b", 0)))
    assert cell["raw"] == _function(METRICS["frechet"])(X, Y)
    from samesky.metrics.layers import write_layer_rows
    from samesky.report.layers import best_layers, gather_layers

    write_layer_rows(tmp_path / "layers.csv", rows)  # as the compare_layers job writes them, read by the report
    table = gather_layers([tmp_path / "layers.csv"])
    assert table.loc[table.metric == "frechet", ["calibrated", "tau", "p"]].isna().all().all()
    assert set(best_layers(table).metric) == {"procrustes", "jaccard", "cka_rbf"}
    cell = next(r for r in rows if (r["metric"], r["block_a"], r["block_b"]) == ("procrustes", "block1", "block0"))
    assert cell["null_draws"] == SETTINGS["feature_space_draws"] and cell["null_method"] == "permutation"
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
