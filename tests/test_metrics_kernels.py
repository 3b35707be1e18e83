"""CKA (linear, unbiased), CKNNA and Gaussian mutual information against Gram-matrix references."""
import numpy as np
import pytest
from test_metrics import correlated, correlated_lattice, reference_knn

from samesky.metrics import features, mutual_info
from samesky.metrics.cka import CkaEstimator
from samesky.metrics.cknna_formula import CknnaFormulaEstimator, row_mean_similarity
from samesky.metrics.features import FeatureSpace
from samesky.metrics.knn import knn_graph
from samesky.metrics.mutual_info import MutualInfoEstimator
from samesky.metrics.registry import METRICS
from samesky.metrics.stats import permutations


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Row chunks of 7 so that the chunked float64 accumulation is exercised at small N."""
    monkeypatch.setattr(features, "_CHUNK", 7)
    monkeypatch.setattr(mutual_info, "_CHUNK", 7)


def pair(n=60, da=7, db=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, da)) + 3
    Y = X[:, :3] @ rng.standard_normal((3, db)) + rng.standard_normal((n, db)) - 2
    return X.astype(dtype), Y.astype(dtype)


def hsic_unbiased_gram(K, L):
    """Song et al. (2012) unbiased HSIC, straight from the N x N Gram matrices."""
    n = len(K)
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    return (np.sum(K * L) + K.sum() * L.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))


def cka_unbiased_gram(X, Y):
    K, L = X @ X.T, Y @ Y.T
    return hsic_unbiased_gram(K, L) / np.sqrt(hsic_unbiased_gram(K, K) * hsic_unbiased_gram(L, L))


def cka_linear_gram(X, Y):
    H = np.eye(len(X)) - 1 / len(X)
    K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    return np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L))


GRAM = {"cka_linear": cka_linear_gram, "cka_unbiased": cka_unbiased_gram}


@pytest.mark.parametrize("name", ["cka_linear", "cka_unbiased"])
def test_cka_equals_gram_reference(name):
    X, Y = pair()
    expected = GRAM[name](X, Y)
    assert 0.2 < expected < 0.95
    assert METRICS[name](X, Y) == pytest.approx(expected, rel=1e-12)
    assert METRICS[name](X, X) == pytest.approx(1.0, rel=1e-12)
    X32, Y32 = pair(dtype=np.float32)  # float32 chunks, float64 accumulation
    assert METRICS[name](X32, Y32) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["cka_linear", "cka_unbiased"])
def test_cka_invariances(name):
    X, Y = pair(seed=1)
    rng = np.random.default_rng(2)
    Q, _ = np.linalg.qr(rng.standard_normal((Y.shape[1], Y.shape[1])))
    base = METRICS[name](X, Y)
    assert METRICS[name](X, Y @ Q) == pytest.approx(base, rel=1e-10)  # orthogonal transform
    assert METRICS[name](7.5 * X, Y) == pytest.approx(base, rel=1e-10)  # isotropic scaling
    assert METRICS[name](X - 4, Y + 1) == pytest.approx(base, rel=1e-10)  # translation
    assert METRICS[name](X, Y * np.arange(1, 6)) != pytest.approx(base, rel=1e-3)  # not anisotropic


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_null_equals_recomputation(unbiased):
    X, Y = pair(seed=3)
    ref = cka_unbiased_gram if unbiased else cka_linear_gram
    est = CkaEstimator(FeatureSpace(X, Y), unbiased=unbiased)
    for pi in permutations(60, 3, seed=0):
        assert est.null(pi) == pytest.approx(ref(X, Y[pi]), rel=1e-10, abs=1e-13)


def test_feature_space_shares_moments_between_metrics_of_one_draw():
    X, Y = pair()
    space = FeatureSpace(X, Y)
    pi = np.random.default_rng(0).permutation(60)
    assert space.moments(pi=pi) is space.moments(pi=pi)
    assert space.moments(pi=pi.copy()) is not space.moments(pi=pi)


def reference_cknna(Za, Zb, k):
    """Huh et al. (2024) definition from full cosine kernels: sum over mutual-kNN pairs of the
    row-centred kernels (row mean over all objects), normalised by the self-alignments."""
    def kernel(Z):
        X = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        K = X @ X.T
        return K - K.mean(1, keepdims=True)

    def mask(Z):
        m = np.zeros((len(Z), len(Z)), bool)
        np.put_along_axis(m, reference_knn(Z, k)[0], True, axis=1)
        return m

    cK, cL, mK, mL = kernel(Za.astype(np.float64)), kernel(Zb.astype(np.float64)), mask(Za), mask(Zb)
    return (cK * cL)[mK & mL].sum() / np.sqrt((cK**2)[mK].sum() * (cL**2)[mL].sum())


@pytest.mark.parametrize("k", [1, 10, 50])
def test_cknna_equals_full_kernel_reference(k):
    Za, Zb = correlated_lattice(300)  # exact similarities: same neighbours and kernels
    expected = reference_cknna(Za, Zb, k)
    assert 0.05 < expected < 1
    assert METRICS["cknna_formula"](Za, Zb, k=k) == pytest.approx(expected, rel=1e-9)
    assert METRICS["cknna_formula"](Za, Za, k=k) == pytest.approx(1.0, rel=1e-12)


def test_cknna_null_equals_recomputation():
    Za, Zb = correlated(300, 12, 9)  # float data: no exactly tied neighbours to re-break
    ga, gb = knn_graph(Za, 10), knn_graph(Zb, 10)
    est = CknnaFormulaEstimator(ga, gb, row_mean_similarity(Za), row_mean_similarity(Zb), 10)
    for pi in permutations(300, 3, seed=1):
        Zp = Zb[pi]
        direct = CknnaFormulaEstimator(ga, knn_graph(Zp, 10), row_mean_similarity(Za), row_mean_similarity(Zp), 10)
        assert est.null(pi) == pytest.approx(direct.score(), rel=1e-9, abs=1e-12)


def gaussian_views(n, rho, seed=0):
    """Two 4-d views of a 2-d Gaussian pair with canonical correlations ``rho``; the two extra
    dimensions are low-variance noise, so the top 2 principal components carry the signal."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n, 2))
    v = u * rho + rng.standard_normal((n, 2)) * np.sqrt(1 - np.square(rho))
    mix = rng.standard_normal((2, 2))
    Za = np.hstack([u @ mix * 3, 0.01 * rng.standard_normal((n, 2))])
    Zb = np.hstack([v * [2, 5], 0.01 * rng.standard_normal((n, 2))])
    return Za, Zb


def test_mutual_info_recovers_analytic_gaussian_mi():
    rho = np.array([0.8, 0.5])
    Za, Zb = gaussian_views(20_000, rho)
    expected = -0.5 * np.log(1 - rho**2).sum()
    assert METRICS["mutual_info"](Za, Zb, components=2) == pytest.approx(expected, abs=0.03)
    est = MutualInfoEstimator(FeatureSpace(Za, Zb), 2)
    null = [est.null(pi) for pi in permutations(20_000, 20, seed=0)]
    assert 0 <= np.mean(null) < 0.002  # ~ components^2 / (2N) for independent data


def test_mutual_info_equals_direct_formula_and_is_finite_for_self_pairs():
    X, Y = pair(n=200, da=9, db=6)
    r = 3

    def top_scores(Z):
        Zc = Z - Z.mean(0)
        _, vecs = np.linalg.eigh(Zc.T @ Zc)
        return Zc @ vecs[:, ::-1][:, :r]

    joint = np.cov(np.hstack([top_scores(X), top_scores(Y)]), rowvar=False)
    logdet = [np.linalg.slogdet(c)[1] for c in (joint[:r, :r], joint[r:, r:], joint)]
    expected = 0.5 * (logdet[0] + logdet[1] - logdet[2])
    assert METRICS["mutual_info"](X, Y, components=r) == pytest.approx(expected, rel=1e-8)
    pi = np.random.default_rng(0).permutation(200)
    est = MutualInfoEstimator(FeatureSpace(X, Y), r)
    assert est.null(pi) == pytest.approx(METRICS["mutual_info"](X, Y[pi], components=r), rel=1e-8)
    self_mi = METRICS["mutual_info"](X, X, components=r)
    assert np.isfinite(self_mi) and self_mi > 9 * r
    with pytest.raises(ValueError, match="needs more than 400 objects"):
        METRICS["mutual_info"](X, Y, components=200)
