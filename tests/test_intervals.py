"""Half-sample (delete-d jackknife) intervals of the neighbourhood metrics: the mechanics.

Coverage itself is a statistical claim, shown by benchmarks/bench_coverage.py.
"""
from itertools import combinations
from statistics import NormalDist

import numpy as np
import pytest

from samesky.metrics.compare import pair_statistics
from samesky.metrics.knn import knn_graph
from samesky.metrics.pair import Pair
from samesky.metrics.registry import METRICS, graph_width
from samesky.metrics.stats import half_sample_interval, half_samples, summarise

from test_metrics import correlated, correlated_lattice, reference_knn


def test_half_samples_are_reproducible_sorted_halves_without_repeats():
    a = list(half_samples(101, 3, seed=4))
    b = list(half_samples(101, 5, seed=4))[:3]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # draw d does not depend on the count
    assert not np.array_equal(a[0], next(half_samples(101, 1, seed=5)))
    for rows in a:
        assert len(rows) == 50 and np.all(np.diff(rows) > 0) and 0 <= rows[0] and rows[-1] < 101
    assert not np.array_equal(a[0], a[1])


@pytest.mark.parametrize("width", [10, 40])  # 40: the cached width; 10: nearly every row recomputed
def test_subsample_graphs_equal_graphs_recomputed_on_the_half(width):
    """Lattice data: similarities are exact and ties frequent, so equality is bit for bit,
    tie order included; no object of the half can be its own neighbour (no copies)."""
    Za, Zb = correlated_lattice(300)
    pair = Pair(Za, Zb, knn_graph(Za, width), knn_graph(Zb, width))
    for rows in half_samples(300, 3, seed=2):
        sub = pair.subsample(rows, 10)
        for (idx, sim), Z in zip(sub.graphs(10), (Za, Zb)):
            want_i, want_s = reference_knn(Z[rows], 10)
            np.testing.assert_array_equal(idx, want_i)
            np.testing.assert_array_equal(sim, want_s)
            assert not np.any(idx == np.arange(len(rows))[:, None])


def test_self_pair_subsample_shares_its_graph():
    Z = correlated(200, 6, 6)[0]
    sub = Pair(Z, Z, knn_graph(Z, 40)).subsample(np.arange(0, 200, 2), 10)
    assert sub.same and sub.graphs(10)[0] is sub.graphs(10)[1]


@pytest.mark.parametrize("name", ["mknn", "cknna"])
def test_interval_equals_brute_force_recomputation_on_every_half(name):
    n, k, draws, ci = 240, 10, 12, 0.9
    Za, Zb = correlated(n, 12, 9, seed=3)
    pair = Pair(Za, Zb, knn_graph(Za, graph_width(k)), knn_graph(Zb, graph_width(k)))
    got = pair_statistics(pair, [name, "cka_linear"], k=k, null_draws=0, bootstrap_draws=draws, ci=ci, seed=6)
    halves = [METRICS[name](Za[rows], Zb[rows], k=k) for rows in half_samples(n, draws, seed=6)]
    score = METRICS[name](Za, Zb, k=k)
    se = np.sqrt((n // 2) / (n - n // 2) * np.var(halves, ddof=1))
    z = NormalDist().inv_cdf(0.95)
    assert got[name]["score"] == pytest.approx(score, rel=1e-12)
    assert (got[name]["ci_low"], got[name]["ci_high"]) == pytest.approx((score - z * se, score + z * se), rel=1e-9)
    assert got[name]["bootstrap_draws"] == draws and got[name]["k"] == k
    assert se > 0.005  # the check is sharp: halves vary


def test_jackknife_variance_of_a_mean_is_the_textbook_one():
    """Over all halves, (r/d) var_S(mean_S) = s^2 / n exactly (s^2 with ddof=1): the identity the
    delete-d jackknife rests on (Shao and Wu 1989), here with n = 8, r = d = 4."""
    x = np.array([0.3, 1.2, -0.7, 2.5, 0.0, 1.1, -1.4, 0.9])
    means = [x[list(s)].mean() for s in combinations(range(8), 4)]
    assert np.var(means) == pytest.approx(x.var(ddof=1) / 8, rel=1e-12)
    # Odd n: r = 3, d = 4 -> the factor r/d; with every subset the identity still holds.
    y = x[:7]
    means = [y[list(s)].mean() for s in combinations(range(7), 3)]
    assert 3 / 4 * np.var(means) == pytest.approx(y.var(ddof=1) / 7, rel=1e-12)


def test_half_sample_interval_and_summary():
    draws = np.array([0.40, 0.44, 0.38, 0.42, 0.41])
    lo, hi = half_sample_interval(0.5, draws, 11, 0.95)
    half = 1.959963984540054 * np.sqrt(5 / 6 * draws.var(ddof=1))
    assert (lo, hi) == pytest.approx((0.5 - half, 0.5 + half), rel=1e-12)
    out = summarise(0.5, [], draws, 0.95, half_sample_n=11)
    assert (out["ci_low"], out["ci_high"]) == (lo, hi) and out["bootstrap_draws"] == 5
    assert half_sample_interval(1.0, np.ones(7), 100, 0.95) == (1.0, 1.0)  # a self pair
