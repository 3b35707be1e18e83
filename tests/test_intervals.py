"""Subsampling intervals of the neighbourhood metrics (stats module docstring): the mechanics.

Coverage itself is a statistical claim, shown by benchmarks/bench_coverage.py.
"""
import dataclasses
from statistics import NormalDist

import numpy as np
import pytest
from test_metrics import correlated, correlated_lattice, reference_knn

from samesky.metrics.compare import pair_statistics
from samesky.metrics.knn import knn_graph
from samesky.metrics.pair import Pair
from samesky.metrics.registry import METRICS, graph_width
from samesky.metrics.stats import quarter_splits, subsampling_interval, subsampling_se, summarise


def test_splits_are_reproducible_disjoint_halves_and_quarters():
    a = list(quarter_splits(103, 3, seed=4))
    b = list(quarter_splits(103, 5, seed=4))[:3]
    assert all(np.array_equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))  # draw d fixed by the seed
    assert not np.array_equal(a[0][0], next(quarter_splits(103, 1, seed=5))[0])
    for h1, h2, *quarters in a:
        assert sorted(len(q) for q in quarters) == [25, 26, 26, 26]
        np.testing.assert_array_equal(np.sort(np.r_[tuple(quarters)]), np.arange(103))  # disjoint cover
        np.testing.assert_array_equal(h1, np.sort(np.r_[quarters[0], quarters[1]]))
        np.testing.assert_array_equal(h2, np.sort(np.r_[quarters[2], quarters[3]]))
        assert all(np.all(np.diff(rows) > 0) for rows in (h1, h2, *quarters))
    assert not np.array_equal(a[0][0], a[1][0])


@pytest.mark.parametrize("width", [10, 80])  # 80: the cached width; 10: nearly every row recomputed
def test_subsample_graphs_equal_graphs_recomputed_on_the_half(width):
    """Lattice data: similarities are exact and ties frequent, so equality is bit for bit,
    tie order included; no object of the half can be its own neighbour (no copies)."""
    Za, Zb = correlated_lattice(300)
    pair = Pair(Za, Zb, knn_graph(Za, width), knn_graph(Zb, width))
    for rows in next(quarter_splits(300, 1, seed=2))[1:4]:  # a half and two quarters
        sub = pair.subsample(rows, 10)
        for (idx, sim), Z in zip(sub.graphs(10), (Za, Zb)):
            want_i, want_s = reference_knn(Z[rows], 10)
            np.testing.assert_array_equal(idx, want_i)
            np.testing.assert_array_equal(sim, want_s)
            assert not np.any(idx == np.arange(len(rows))[:, None])


def test_self_pair_subsample_shares_its_graph():
    Z = correlated(200, 6, 6)[0]
    sub = Pair(Z, Z, knn_graph(Z, 80)).subsample(np.arange(0, 200, 2), 10)
    assert sub.same and sub.graphs(10)[0] is sub.graphs(10)[1]


@pytest.mark.parametrize("name", ["mknn", "cknna", "cka_linear", "cka_unbiased", "mutual_info", "cycle_knn", "mmd"])
def test_interval_equals_brute_force_recomputation_on_every_subsample(name):
    """Every metric's interval is subsampling, each subsample rescored from scratch (neighbourhoods,
    centring, principal axes); metrics without neighbourhoods use the first feature_space_draws
    splits. A percentile bootstrap (CKA, MI before; it over-covered) fails this."""
    n, k, draws, capped, ci = 240, 10, 6, 4, 0.9
    Za, Zb = correlated(n, 12, 12 if METRICS[name].equal_dims else 9, seed=3)
    pair = Pair(Za, Zb, knn_graph(Za, graph_width(k)), knn_graph(Zb, graph_width(k)))
    got = pair_statistics(pair, list(dict.fromkeys([name, "mknn", "cka_linear"])), k=k, null_draws=0, subsampling_splits=draws, ci=ci, seed=6,
                          feature_space_draws=capped)
    params = {"k": k} if METRICS[name].uses_knn else {}
    used = draws if METRICS[name].uses_knn else capped
    rescored = np.array([[METRICS[name](Za[rows], Zb[rows], **params) for rows in split]
                         for split in quarter_splits(n, used, seed=6)])
    v2 = np.mean((rescored[:, 0] - rescored[:, 1]) ** 2) / 2
    v4 = np.mean([(rescored[:, a] - rescored[:, b]) ** 2 for a, b in
                  [(2, 3), (2, 4), (2, 5), (3, 4), (3, 5), (4, 5)]]) / 2
    score = METRICS[name](Za, Zb, **params)
    if METRICS[name].interval == "subsampling_indicator":  # s(1 - s) / m, s at n/2 the halves' mean
        half = rescored[:, :2].mean()
        se = np.sqrt(v2 / 2 * score * (1 - score) / (half * (1 - half)))
    elif METRICS[name].interval == "subsampling_degenerate":  # A/m + B/m^2, A, B >= 0, exact at n/2 and n/4
        se = np.sqrt((6 * v2 - np.clip(v4, 2 * v2, 4 * v2)) / 8)
    elif METRICS[name].uses_knn:  # variance model (1 - k/m)^2 m^-beta, beta >= 1
        f = {m: (1 - k / m) ** 2 for m in (n, n / 2, n / 4)}
        se = np.sqrt(v2 * f[n] / f[n / 2] * 2 ** -np.clip(np.log2(v4 / v2 * f[n / 2] / f[n / 4]), 1.0, 2.5))
    else:  # a smooth statistic: rate 1/m from the halves alone
        se = np.sqrt(v2 / 2)
    z = NormalDist().inv_cdf(0.95)
    assert got[name]["score"] == pytest.approx(score, rel=1e-12)
    assert (got[name]["ci_low"], got[name]["ci_high"]) == pytest.approx((score - z * se, score + z * se), rel=1e-6)
    assert got[name]["subsampling_splits"] == used and got[name]["k"] == params.get("k")
    assert got[name]["interval_method"] == "subsampling"
    assert se > 0.002 * abs(score)  # the check is sharp: subsamples vary
    assert got["mknn"]["subsampling_splits"] == draws and got["cka_linear"]["subsampling_splits"] == capped


def test_metrics_without_neighbourhoods_take_the_1_over_n_rate_from_the_halves():
    """CKA, MI: SE^2 = V2 / 2 from the halves alone, whatever the quarters say (V2 = 1: 1/2), and
    the compare rule rescores only the halves for them (pair_statistics keeps two per draw)."""
    def draws(v2, v4):  # one draw whose halves differ by sqrt(2 v2) and quarter pairs by sqrt(2 v4) on average
        h = np.sqrt(2 * v2)
        q = np.sqrt(2 * v4 * 6 / 4) / 2  # quarters +-q: 4 of the 6 pairs differ by 2q, 2 by 0
        return [[h, 0.0, q, q, -q, -q]]
    for v4 in (2, 4, 1.1):
        assert subsampling_se(draws(1, v4)) ** 2 == pytest.approx(0.5, rel=1e-12)
    assert subsampling_se([row[:2] for row in draws(1, 4)]) == subsampling_se(draws(1, 4))
    # a degenerate U-statistic (MMD): A/m + B/m^2 through V2 = 1 and V4, each term at least 0
    for v4, want in ((2, 1 / 2), (4, 1 / 4), (3, 3 / 8), (1.1, 1 / 2), (9, 1 / 4)):
        assert subsampling_se(draws(1, v4), degenerate=True) ** 2 == pytest.approx(want, rel=1e-12)
    assert subsampling_se([[1.0, 1.0, 0.5, 0.5, 0.5, 0.5]], degenerate=True) == 0.0
    from samesky.metrics.compare import _subsample_draws

    Za, Zb = correlated(120, 6, 5, seed=1)
    specs = [METRICS[m] for m in ("mknn", "cka_linear", "mutual_info")]
    out = _subsample_draws(Pair(Za, Zb), specs, {"mknn": {"k": 5}, "cka_linear": {}, "mutual_info": {"components": 3}},
                           {"mknn": 3, "cka_linear": 3, "mutual_info": 2}, quarter_splits(120, 3, seed=0))
    assert [np.shape(out[m]) for m in ("mknn", "cka_linear", "mutual_info")] == [(3, 6), (3, 2), (2, 2)]


def test_sampled_pairs_scale_with_the_subsample():
    """A measure estimated from sampled pairs rescores a half of the objects on half the pairs
    (``Metric.subsample_params``): its pair-sampling variance ~ 1 / pairs then doubles on a half,
    as the objects' does, and V2 / 2 estimates the full sample's variance (benchmarks/README.md,
    "Sampled pairs": with the full count on the halves, RSA on 2^12 pairs covered 85-86%)."""
    from samesky.metrics.compare import _subsample_draws

    Za, Zb = correlated(41, 6, 6, seed=2)
    settings = {"rsa": {"sample_pairs": 300}, "cka_rbf": {"median_sample": 201}, "mmd": {"median_sample": 40}}
    specs = [METRICS[m] for m in settings]
    splits = list(quarter_splits(41, 2, seed=3))
    out = _subsample_draws(Pair(Za, Zb), specs, settings, dict.fromkeys(settings, 2), splits)
    halves = [(len(h), len(h2)) for h, h2, *_ in splits]
    assert halves == [(21, 20), (21, 20)]
    for d, (h, h2, *_) in enumerate(splits):
        assert out["rsa"][d] == [METRICS["rsa"](Za[rows], Zb[rows], sample_pairs=p)
                                 for rows, p in ((h, 154), (h2, 146))]  # 300 * 21 / 41, 300 * 20 / 41
        assert out["cka_rbf"][d] == [METRICS["cka_rbf"](Za[rows], Zb[rows], median_sample=p)
                                     for rows, p in ((h, 103), (h2, 98))]
        # MMD's interval rescores the quarters too (subsampling_degenerate): 40 pairs x m / 41 each
        assert out["mmd"][d] == [METRICS["mmd"](Za[rows], Zb[rows], median_sample=round(40 * len(rows) / 41))
                                 for rows in splits[d]]
    assert [round(40 * len(rows) / 41) for rows in splits[0]] == [20, 20, 11, 10, 10, 10]
    assert METRICS["rsa"].subsample_params({"sample_pairs": None, "seed": 7}, 20, 41) == {"sample_pairs": None, "seed": 7}
    for name, wrong in (("rsa", "seed"), ("cka_rbf", "gamma")):  # not optional (seed 0), not a count (a float)
        with pytest.raises(ValueError, match=rf"pair_samples \['{wrong}'\] must be optional integer parameters"):
            dataclasses.replace(METRICS[name], pair_samples=(wrong,))


def test_neighbourhood_rate_divides_out_the_finite_population_factor():
    """n = 400, k = 50: knn_share = (1 - k/m)^2 is 0.25, 0.5625, 0.765625 at m = 100, 200, 400.
    V2 = 1, V4 = 2 -> beta = 1 + log2(0.5625 / 0.25), SE^2 = (0.765625 / 0.5625) 2^-beta;
    V4 = 0.8 (beta 0.85) is held at beta = 1; without k, V2 / 2."""
    def draws(v2, v4):
        h, q = np.sqrt(2 * v2), np.sqrt(2 * v4 * 6 / 4) / 2
        return [[h, 0.0, q, q, -q, -q]]
    share = 0.765625 / 0.5625
    assert subsampling_se(draws(1, 2), 400, 50) ** 2 == pytest.approx(share * 0.5 * 0.25 / 0.5625, rel=1e-12)
    assert subsampling_se(draws(1, 0.8), 400, 50) ** 2 == pytest.approx(share * 0.5, rel=1e-12)
    assert subsampling_se(draws(1, 0.8)) ** 2 == pytest.approx(0.5, rel=1e-12)  # without k: V2 / 2
    assert subsampling_se(draws(1, 2), 400, None) ** 2 == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(ValueError, match="a quarter of n=200 objects must hold more than k=50"):
        subsampling_se(draws(1, 2), 200, 50)
    lo, hi = subsampling_interval(0.3, draws(1, 2), 0.95, 400, 50)
    assert hi - lo == pytest.approx(2 * 1.959963984540054 * np.sqrt(share * 0.5 * 0.25 / 0.5625), rel=1e-12)


def test_indicator_rate_divides_out_the_bernoulli_variance():
    """cycle_knn (a mean of per-object 0/1 returns): SE^2 = V2 / 2 s_n (1 - s_n) / (s_h (1 - s_h)),
    s_h the halves' mean. By hand: halves (0.6, 0.8) and (0.7, 0.7): V2 = 0.01, s_h = 0.7, and at
    s_n = 0.5, SE^2 = 0.005 * 0.25 / 0.21; a score of 0 or 1 (all or none return) has SE 0."""
    rows = [[0.6, 0.8], [0.7, 0.7]]
    assert subsampling_se(rows, indicator_score=0.5) ** 2 == pytest.approx(0.005 * 0.25 / 0.21, rel=1e-12)
    assert subsampling_se(rows, indicator_score=1.0) == 0.0 and subsampling_se(np.ones((3, 2)), indicator_score=1.0) == 0.0
    assert subsampling_se([row + [0.1] * 4 for row in rows], 400, 10, indicator_score=0.5) == subsampling_se(
        rows, indicator_score=0.5)  # the halves alone, whatever the quarters and k
    lo, hi = subsampling_interval(0.5, rows, 0.95, indicator=True)
    assert hi - lo == pytest.approx(2 * 1.959963984540054 * np.sqrt(0.005 * 0.25 / 0.21), rel=1e-12)
    out = summarise(0.5, [], rows, 0.95, interval="subsampling", indicator=True)
    assert (out["ci_low"], out["ci_high"]) == (lo, hi)
    assert METRICS["cycle_knn"].interval == "subsampling_indicator" and not METRICS["cycle_knn"].costly_splits


def test_indicator_model_is_exact_for_independent_outcomes_whose_rate_falls_with_m():
    """A mean of n independent 0/1 outcomes of rate p_m: var = p_m (1 - p_m) / m (scipy's binomial).
    Given the halves' exact variance and mean (rate 0.77 at n/2 = 250, 0.635 at n = 500: cycle_knn's on
    the latent data), the indicator model returns the exact SE at n; the neighbourhood model, whose
    floor beta >= 1 assumes the variance falls at least as 1/m, returns 13% less (m var rose here)."""
    from scipy.stats import binom

    n, p_half, p_n = 500, 0.77, 0.635
    v2 = binom(n // 2, p_half).var() / (n // 2) ** 2
    d = np.sqrt(v2 / 2)  # halves p_half +- d: mean p_half, (a - b)^2 / 2 = v2
    rows = [[p_half + d, p_half - d], [p_half - d, p_half + d]]
    exact = np.sqrt(binom(n, p_n).var()) / n
    assert subsampling_se(rows, indicator_score=p_n) == pytest.approx(exact, rel=1e-12)
    quarters = [row + [p_half] * 4 for row in rows]  # V4 = 0: the neighbourhood model falls back to V2 / 2
    assert subsampling_se(quarters, n, 10) == pytest.approx(np.sqrt(v2 / 2), rel=1e-12)
    assert subsampling_se(quarters, n, 10) / exact == pytest.approx(0.874, abs=0.001)


def test_subsampling_interval_and_summary():
    rows = [[0.40, 0.44, 0.38, 0.42, 0.41, 0.45], [0.43, 0.41, 0.39, 0.46, 0.40, 0.42]]
    lo, hi = subsampling_interval(0.5, rows, 0.95)
    half = 1.959963984540054 * subsampling_se(rows)
    assert (lo, hi) == pytest.approx((0.5 - half, 0.5 + half), rel=1e-12) and half > 0
    out = summarise(0.5, [], rows, 0.95, interval="subsampling")
    assert (out["ci_low"], out["ci_high"]) == (lo, hi) and out["subsampling_splits"] == 2
    assert subsampling_interval(1.0, np.ones((7, 6)), 0.95) == (1.0, 1.0)  # a self pair
    knn = summarise(0.5, [], rows, 0.95, interval="subsampling", knn=(1000, 10))
    assert (knn["ci_low"], knn["ci_high"]) == subsampling_interval(0.5, rows, 0.95, 1000, 10) != (lo, hi)


def test_knn_file_stores_the_requested_width_or_every_other_object(tmp_path):
    from samesky import schema
    from samesky.metrics.knn import knn_file

    for n, want in ((200, 80), (50, 49)):
        ids = np.array([f"o{i}" for i in range(n)])
        emb = tmp_path / f"e{n}.h5"
        schema.write_embeddings(emb, ids, correlated(n, 6, 6)[0], {"model": "m"})
        knn_file(emb, tmp_path / f"k{n}.h5", 10, width=80)
        indices = schema.read_knn(tmp_path / f"k{n}.h5")[1]
        assert indices.shape == (n, want)
    with pytest.raises(ValueError, match="k=10 must be between 1 and N-1=8"):
        schema.write_embeddings(tmp_path / "e9.h5", ids[:9], correlated(9, 6, 6)[0], {"model": "m"})
        knn_file(tmp_path / "e9.h5", tmp_path / "k9.h5", 10, width=80)


def test_metric_too_big_for_a_half_gets_no_interval_and_keeps_its_score():
    """n = 60: a half of 30 objects cannot carry MI on 16 components (needs > 32): its record
    keeps score and null but has no interval; the other metrics are unaffected (at n = 100 the
    halves of 50 carry it, though a quarter could not: MI is rescored on the halves only)."""
    Za, Zb = correlated(100, 12, 9, seed=2)
    assert pair_statistics(Pair(Za, Zb), ["mutual_info"], k=10, null_draws=0, subsampling_splits=2, ci=0.9,
                           seed=1)["mutual_info"]["subsampling_splits"] == 2
    Za, Zb = Za[:60], Zb[:60]
    got = pair_statistics(Pair(Za, Zb), ["mutual_info", "cka_linear"], k=10, null_draws=5, subsampling_splits=4,
                          ci=0.9, seed=1)
    mi = got["mutual_info"]
    assert mi["score"] == pytest.approx(METRICS["mutual_info"](Za, Zb), rel=1e-12) and mi["null_draws"] == 5
    assert (mi["ci_low"], mi["ci_high"], mi["subsampling_splits"], mi["interval_method"]) == (None, None, 0, None)
    assert got["cka_linear"]["subsampling_splits"] == 4 and got["cka_linear"]["ci_low"] < got["cka_linear"]["ci_high"]
