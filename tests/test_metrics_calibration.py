"""Calibrated scores (stats) and the closed-form CKA null (rv_null) against exact enumeration and Monte Carlo."""
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from samesky.metrics import rv_null
from samesky.metrics.cka import unbiased_cka_from
from samesky.metrics.features import FeatureSpace
from samesky.metrics.knn import _CentredCube, graph_and_invariants, knn_graph
from samesky.metrics.pair import Pair
from samesky.metrics.registry import get_metric
from samesky.metrics.rv_null import ClosedNull, gram_invariants, statistic_moments
from samesky.metrics.stats import calibrated, permutation_threshold, permutations, summarise, threshold_rank


def test_threshold_rank_and_tau():
    assert threshold_rank(19, 0.05) == 19  # 0.95 * 20 = 19 exactly, not 20 by round-off
    assert threshold_rank(1000, 0.05) == 951
    assert threshold_rank(10, 0.05) == 11  # too few draws: tau is the largest of all, calibrated 0
    null = np.arange(19) / 100  # 0.00 .. 0.18
    assert permutation_threshold(0.5, null, 0.05) == 0.18  # 19th smallest of 20
    assert permutation_threshold(0.05, null, 0.05) == 0.17
    assert permutation_threshold(0.5, null[:10], 0.05) == 0.5
    with pytest.raises(ValueError, match="alpha=1.5"):
        threshold_rank(10, 1.5)


def test_calibrated_unit_and_nats():
    assert calibrated(0.6, 0.2) == pytest.approx(0.5)
    assert calibrated(0.1, 0.2) == 0.0 and calibrated(1.0, 0.2) == 1.0
    # nats: through r(I) = sqrt(1 - exp(-2 I)); one Gaussian pair with rho has I = -log(1 - rho^2) / 2
    info = lambda rho: -0.5 * math.log(1 - rho**2)  # noqa: E731
    assert calibrated(info(0.8), info(0.5), "nats") == pytest.approx((0.8 - 0.5) / (1 - 0.5))
    assert calibrated(50.0, 0.1, "nats") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="scale must be"):
        calibrated(0.5, 0.1, "percent")


def test_summarise_reports_tau_and_calibrated():
    null = np.arange(19) / 100
    out = summarise(0.5, null, [], ci=0.9, alpha=0.05)
    assert (out["tau"], out["alpha"], out["null_method"]) == (0.18, 0.05, "permutation")
    assert out["calibrated"] == pytest.approx((0.5 - 0.18) / 0.82)
    empty = summarise(0.5, [], [], ci=0.9)
    assert empty["tau"] is None and empty["calibrated"] is None and empty["null_method"] is None


def _calibrated_under(metric, Za, Zb, draws, seed, alpha=0.05):
    spec = get_metric(metric)
    est = spec.estimator(Pair(Za, Zb), **({"components": 3} if metric == "mutual_info" else {}))
    score = est.score()
    if metric.startswith("cka"):
        law = est.closed_null()
        return calibrated(score, law.threshold(alpha), spec.scale)
    null = [est.null(pi) for pi in permutations(len(Za), draws, seed)]
    return summarise(score, null, [], ci=0.9, alpha=alpha, scale=spec.scale)["calibrated"]


@pytest.mark.parametrize("metric", ["mknn", "cknna", "cka_linear", "cka_unbiased", "mutual_info"])
def test_calibrated_is_zero_under_the_null_and_positive_with_shared_structure(metric):
    """Independent embeddings: calibrated > 0 at most alpha of the time (expected <= 3 of 60;
    P(more than 9) < 2e-3); embeddings sharing a latent: positive every time."""
    rng = np.random.default_rng(11)
    reps, n, draws = 60, 80, 39
    positive = 0
    for r in range(reps):
        Za = rng.standard_normal((n, 6)).astype(np.float32)
        Zb = (rng.standard_normal((n, 5)) ** 3).astype(np.float32)  # skewed, independent of Za
        positive += _calibrated_under(metric, Za, Zb, draws, seed=r) > 0
    assert positive <= 9
    for r in range(5):
        latent = rng.standard_normal((n, 3))
        Za = (latent @ rng.standard_normal((3, 6)) + 0.5 * rng.standard_normal((n, 6))).astype(np.float32)
        Zb = (latent @ rng.standard_normal((3, 5)) + 0.5 * rng.standard_normal((n, 5))).astype(np.float32)
        assert _calibrated_under(metric, Za, Zb, draws, seed=r) > 0.05


def _gram(Z, unbiased):
    Zc = Z - Z.mean(0)
    G = Zc @ Zc.T
    if not unbiased:
        return G
    n = len(G)
    K = G.copy()
    np.fill_diagonal(K, 0)
    U = K - K.sum(1, keepdims=True) / (n - 2) - K.sum(0, keepdims=True) / (n - 2) + K.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(U, 0)
    return U


@pytest.mark.parametrize("n", [7, 8])
@pytest.mark.parametrize("variant", ["linear", "unbiased"])
def test_closed_moments_equal_exhaustive_enumeration(n, variant):
    """Mean, variance and skewness of T = tr(Wx P Wy P') over all n! permutations, to round-off."""
    rng = np.random.default_rng(n)
    X, Y = rng.standard_normal((n, 3)), rng.standard_normal((n, 4)) ** 2  # skewed side B
    Wx, Wy = _gram(X, variant == "unbiased"), _gram(Y, variant == "unbiased")
    perms = np.array(list(itertools.permutations(range(n))))
    T = np.einsum("ij,pij->p", Wx, Wy[perms[:, :, None], perms[:, None, :]])
    mean, var = T.mean(), T.var()
    skew = ((T - mean) ** 3).mean() / var**1.5
    got = statistic_moments(gram_invariants(X)[variant], gram_invariants(Y)[variant])
    assert got[0] == pytest.approx(mean, rel=1e-9, abs=1e-9 * np.abs(T).max())
    assert got[1] == pytest.approx(var, rel=1e-9)
    assert got[2] == pytest.approx(skew, rel=1e-7)


@pytest.mark.parametrize("tile", [4096, 16])
def test_invariants_equal_their_definitions(tile, monkeypatch):
    """Also over many tiles (on and off the diagonal, a ragged last one)."""
    monkeypatch.setattr(rv_null, "_TILE", tile)
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((50, 7)) + 2
    for variant in ("linear", "unbiased"):
        W = _gram(Z, variant == "unbiased")
        d = np.diag(W)
        inv = gram_invariants(Z)[variant]
        expected = dict(n=50, tr=d.sum(), tr2=(W * W).sum(), tr3=np.trace(W @ W @ W), s2=(d**2).sum(),
                        s3=(d**3).sum(), u=(W**3).sum(), b=d @ W @ d, r=d @ np.diag(W @ W))
        for field, value in expected.items():
            assert getattr(inv, field) == pytest.approx(value, rel=1e-9, abs=1e-9 * np.abs(W).max() ** 3), field


@pytest.mark.parametrize("chunk", [4096, 64])
def test_invariants_summed_from_the_graph_tiles_equal_their_definitions(chunk):
    """The kNN job's invariants (the cube term from the graph's own tiles, over one tile or many,
    ragged) against float64 definitions; the graph is knn_graph's, bit for bit."""
    rng = np.random.default_rng(5)
    Z = (rng.standard_normal((300, 24)) + 1.5).astype(np.float32)  # kappa ~ 3: the mean matters
    indices, similarity, record = graph_and_invariants(Z, 7, chunk_size=chunk, invariants=True)
    graph = knn_graph(Z, 7, chunk_size=chunk)
    assert np.array_equal(indices, graph[0]) and np.array_equal(similarity, graph[1])
    Zd = Z.astype(np.float64)
    for variant in ("linear", "unbiased"):
        W = _gram(Zd, variant == "unbiased")
        scale = np.abs(W).max() ** 3
        assert record[variant]["u"] == pytest.approx((W**3).sum(), rel=1e-5, abs=1e-7 * scale)
        separate = gram_invariants(Z)[variant].to_dict()
        assert {f: v for f, v in record[variant].items() if f != "u"} == {f: v for f, v in separate.items() if f != "u"}


def test_invariants_of_rows_dominated_by_their_mean_take_the_centred_pass():
    """kappa > 50: summing from the unit-row tiles would cancel, so the separate pass runs."""
    rng = np.random.default_rng(6)
    Z = (rng.standard_normal((200, 16)) + 40).astype(np.float32)
    assert _CentredCube.of(torch.as_tensor(Z), 64, 1) is None
    assert graph_and_invariants(Z, 5, invariants=True)[2] == rv_null.invariants_record(Z)
    assert _CentredCube.of(torch.as_tensor(Z - 40), 64, 1) is not None


def test_unbiased_cka_is_the_u_centred_rv():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 5))
    Y = rng.standard_normal((40, 3)) + X[:, :3]
    Wx, Wy = _gram(X, True), _gram(Y, True)
    rv = (Wx * Wy).sum() / np.sqrt((Wx * Wx).sum() * (Wy * Wy).sum())
    assert unbiased_cka_from(FeatureSpace(X, Y).moments()) == pytest.approx(rv, rel=1e-10)


@pytest.mark.parametrize("n", [60, 200])
@pytest.mark.parametrize("variant", ["linear", "unbiased"])
def test_closed_null_matches_10000_monte_carlo_permutations(n, variant):
    """Mean and sd within 4 Monte-Carlo standard errors; p and tau within the Monte-Carlo error."""
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 6)) ** 3  # heavy-tailed: a skewed null
    Y = rng.standard_normal((n, 4)) + 0.3 * X[:, :4] / X[:, :4].std(0)
    Wx, Wy = _gram(X, variant == "unbiased"), _gram(Y, variant == "unbiased")
    norm = np.sqrt((Wx * Wx).sum() * (Wy * Wy).sum())
    score = (Wx * Wy).sum() / norm
    draws = 10_000
    null = np.array([(Wx * Wy[np.ix_(p, p)]).sum() / norm for p in permutations(n, draws, seed=1)])
    law = ClosedNull.of(gram_invariants(X)[variant], gram_invariants(Y)[variant])
    m, s = null.mean(), null.std(ddof=1)
    assert abs(law.mean - m) < 4 * s / math.sqrt(draws)
    assert abs(law.std / s - 1) < 4 * math.sqrt(2 / draws) * 1.5  # sd of a sample sd, heavier tails allowed
    for q in (score, law.threshold(0.05), law.threshold(0.2)):
        p_mc = (null >= q).mean()
        p = law.p_value(q)
        assert abs(p - p_mc) < 4 * math.sqrt(max(p, 1 / draws) * (1 - p) / draws) + 1e-3
    # tau: the closed-form (1 - alpha) quantile sits inside the Monte-Carlo quantile's error band
    alpha, se = 0.05, math.sqrt(0.05 * 0.95 / draws)
    lo, hi = np.quantile(null, [1 - alpha - 4 * se, 1 - alpha + 4 * se])
    assert lo <= law.threshold(alpha) <= hi


@pytest.mark.parametrize("skew", [0.0, 1e-6, -1.5e-5, 1.7e-5, -1.7e-5, 0.01, 0.4, 2.5, -0.01, -0.4, -2.5])
def test_closed_null_law_is_scipys_pearson3_to_the_last_bit(skew):
    """p-values and thresholds from scipy.special equal scipy.stats.pearson3's (the oracle) exactly:
    both sides of the normal switch, negative skew, and scores outside the gamma's support."""
    from scipy.stats import pearson3

    law = ClosedNull(0.013, 0.0071, skew)
    for z in (-40.0, -3.1, -0.7, 0.0, 0.2, 1.9, 4.4, 40.0):
        score = law.mean + law.std * z
        assert law.p_value(score) == float(pearson3.sf(score, skew, loc=law.mean, scale=law.std))
    for alpha in (0.5, 0.2, 0.05, 0.01, 0.001):
        assert law.threshold(alpha) == float(pearson3.ppf(1 - alpha, skew, loc=law.mean, scale=law.std))


def test_compare_jobs_do_not_import_scipy_stats():
    """The closed-form CKA null runs on scipy.special: scipy.stats cost each compare job 0.65 s."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from samesky.metrics.compare import pair_statistics\n"
            "from samesky.metrics.pair import Pair\n"
            "z = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)\n"
            "st = pair_statistics(Pair(z, z[:, ::-1].copy()), ['cka_linear', 'mknn'], k=3, null_draws=5,\n"
            "                     subsampling_splits=2, ci=0.9, seed=0)\n"
            "assert st['cka_linear']['null_method'] == 'closed_form'\n"
            "print(sorted(m for m in sys.modules if m.startswith('scipy.stats')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


GOLDEN = np.load(Path(__file__).with_name("golden") / "cknna_platonic_rep.npz")


@pytest.mark.parametrize("k", [int(k) for k in GOLDEN["ks"]])
def test_cknna_equals_platonic_rep_release(k):
    """Golden values from platonic-rep's own metrics.py (tests/golden/make_cknna_golden.py)."""
    cknna = get_metric("cknna")
    za, zb, zc = (GOLDEN[s].astype(np.float32) for s in ("za", "zb", "zc"))
    for (x, y), key in (((za, zb), "ab"), ((za, zc), "ac"), ((za, za), "aa")):
        assert cknna(x, y, k=k) == pytest.approx(float(GOLDEN[f"{key}_k{k}"]), rel=2e-5, abs=1e-6), key
    # the relabelled null equals the released cknna on side B's rows shuffled
    est = cknna.estimator(Pair(za, zb), k=k)
    for pi, expected in zip(GOLDEN["perms"], GOLDEN[f"ab_perm_k{k}"]):
        # object i of the shuffled B is B's object pi[i]: our null(pi) shuffles B the same way
        assert est.null(pi) == pytest.approx(float(expected), rel=2e-5, abs=1e-6)


def test_cknna_formula_stays_a_separate_metric():
    za, zb = GOLDEN["za"].astype(np.float32), GOLDEN["zb"].astype(np.float32)
    new, old = get_metric("cknna")(za, zb, k=10), get_metric("cknna_formula")(za, zb, k=10)
    assert new == pytest.approx(float(GOLDEN["ab_k10"]), rel=2e-5) and abs(new - old) > 1e-3


def test_cknna_reciprocal_edges_by_table_and_by_sorting_agree(monkeypatch):
    """``_reciprocal``'s dense table (small n) and its sort path (large n) give the same edges and
    so the same released CKNNA; a reciprocal edge is one whose reverse is an edge too."""
    from samesky.metrics import cknna

    rng = np.random.default_rng(3)
    n = 40
    i = np.repeat(np.arange(n), 6)
    j = np.concatenate([rng.choice(np.delete(np.arange(n), r), 6, replace=False) for r in range(n)])
    edges = set(zip(i.tolist(), j.tolist()))
    expected = np.array([(b, a) in edges for a, b in zip(i.tolist(), j.tolist())])
    assert 0 < expected.sum() < len(expected)
    assert np.array_equal(cknna._reciprocal(i, j, n), expected)
    za, zb = GOLDEN["za"].astype(np.float32), GOLDEN["zb"].astype(np.float32)
    table = get_metric("cknna")(za, zb, k=10)
    monkeypatch.setattr(cknna, "DENSE_TABLE_MAX", 0)
    assert np.array_equal(cknna._reciprocal(i, j, n), expected)
    assert get_metric("cknna")(za, zb, k=10) == table == pytest.approx(float(GOLDEN["ab_k10"]), rel=2e-5)
