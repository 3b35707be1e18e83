"""The field's measures (samesky.metrics.measures) against the references' own outputs, plus
properties that can fail: invariances, direction on identical vs independent data, bad input.

Goldens: tests/golden/measures.npz, made by tests/golden/make_measures_golden.py from checkouts of
pu, platonic-rep and netrep and the PyPI oracles; measures.json says, per value, the reference and
the tolerance, on |ours - golden| / max(1, |golden|): 1e-10 where the reference is float64 and
deterministic, looser where it is not (each with its reason in the JSON).
"""
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from samesky.metrics.measures import cca, dcor, geometric, information, kernel, neighbours, regression, rsa, spectral

GOLDEN = Path(__file__).parent / "golden"
META = json.loads((GOLDEN / "measures.json").read_text())
DATA = np.load(GOLDEN / "measures.npz")

FUNCTIONS = {
    "jaccard": neighbours.jaccard, "cycle_knn": neighbours.cycle_knn, "lcs_knn": neighbours.lcs_knn,
    "edit_distance_knn": neighbours.edit_distance_knn,
    "rbf_cka": kernel.rbf_cka, "mmd": kernel.mmd,
    "svcca": cca.svcca, "pwcca": cca.pwcca, "mean_cca": cca.mean_cca,
    "procrustes": geometric.procrustes, "cosine_matched": geometric.cosine_matched,
    "frechet": geometric.frechet, "shape_angular": geometric.shape_angular,
    "rsa": rsa.rsa, "linear_r2": regression.linear_r2,
    "bidirectional_linear_r2": regression.bidirectional_linear_r2,
    "tucker_congruence": spectral.tucker_congruence, "eigenspectrum": spectral.eigenspectrum,
    "riemannian": spectral.riemannian, "gaussian_kl": information.gaussian_kl,
    "gaussian_js": information.gaussian_js, "ksg_mutual_information": information.ksg_mutual_information,
    "distance_correlation": dcor.distance_correlation,
}


def _pair(pair):
    return DATA["input_A"], DATA["input_B" if pair == "ab" else "input_C"]


def ours(key):
    g = META["golden"][key]
    X, Y = _pair(g["pair"])
    return FUNCTIONS[g["measure"]](X, Y, normalize_rows=g["normalize_rows"], **g["params"])


@pytest.mark.parametrize("key", sorted(META["golden"]))
def test_equals_reference(key):
    golden = float(DATA[key])
    tol = META["golden"][key]["tol"]
    assert abs(ours(key) - golden) <= tol * max(1.0, abs(golden)), META["golden"][key]["where"]


def test_every_measure_has_a_golden():
    assert set(FUNCTIONS) == {g["measure"] for g in META["golden"].values()}


# --- properties -----------------------------------------------------------------------------------
# name: (direction, symmetric, needs equal dims, value on identical inputs or None)
PROPERTIES = {
    "jaccard": ("similarity", True, False, 1.0),
    "cycle_knn": ("similarity", False, False, 1.0),
    "lcs_knn": ("similarity", True, False, 10.0),
    "edit_distance_knn": ("similarity", True, False, 1.0),
    "rbf_cka": ("similarity", True, False, 1.0),
    "mmd": ("distance", True, True, 0.0),
    "svcca": ("similarity", True, False, 1.0),
    "pwcca": ("similarity", False, False, 1.0),
    "mean_cca": ("similarity", True, False, 1.0),
    "procrustes": ("distance", True, True, 0.0),
    "cosine_matched": ("similarity", True, True, 1.0),
    "frechet": ("distance", True, False, 0.0),
    "shape_angular": ("distance", True, False, 0.0),
    "rsa": ("similarity", True, False, 1.0),
    "linear_r2": ("similarity", False, False, None),
    "bidirectional_linear_r2": ("similarity", True, False, None),
    "tucker_congruence": ("similarity", True, True, 1.0),
    "eigenspectrum": ("distance", True, False, 0.0),
    "riemannian": ("distance", True, True, 0.0),
    "gaussian_kl": ("distance", False, True, 0.0),
    "gaussian_js": ("distance", True, True, 0.0),
    "ksg_mutual_information": ("similarity", True, False, None),
    "distance_correlation": ("similarity", True, False, 1.0),
}


def _views(n=150, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3)) @ rng.standard_normal((3, d)) + 0.3 * rng.standard_normal((n, d)) + 1.0
    Z = 2 * rng.standard_exponential((n, d))  # independent of X, and distributed otherwise
    return X, Z


def test_properties_cover_every_measure():
    assert set(PROPERTIES) == set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_direction_identical_vs_independent(name):
    f, (direction, _, _, identical) = FUNCTIONS[name], PROPERTIES[name]
    X, Z = _views()
    same, other = f(X, X.copy()), f(X, Z)
    if identical is not None:
        assert same == pytest.approx(identical, abs=1e-6)
    assert (same > other) if direction == "similarity" else (same < other)


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_symmetry_as_declared(name):
    f, symmetric = FUNCTIONS[name], PROPERTIES[name][1]
    X, Z = _views()
    Y = X @ np.random.default_rng(1).standard_normal((8, 8)) + 0.5 * Z
    forward, backward = f(X, Y), f(Y, X)
    if symmetric:
        assert forward == pytest.approx(backward, rel=1e-9, abs=1e-12)
    else:
        assert forward != pytest.approx(backward, rel=1e-6)


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_every_measure_takes_normalize_rows(name):
    X, Z = _views()
    value = FUNCTIONS[name](X, Z, normalize_rows=True)
    assert value == pytest.approx(FUNCTIONS[name](X / np.linalg.norm(X, axis=1, keepdims=True),
                                                  Z / np.linalg.norm(Z, axis=1, keepdims=True)), rel=1e-9, abs=1e-12)


def _rotation(d, seed=3):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# pu's eps = 1e-8 added to the covariances is absolute, so its SVCCA moves with scale (by ~1e-9 here)
@pytest.mark.parametrize("f", [geometric.procrustes, geometric.shape_angular, kernel.rbf_cka, dcor.distance_correlation,
                               partial(cca.svcca, eps=0.0), cca.mean_cca, rsa.rsa, spectral.eigenspectrum])
def test_invariant_to_rotating_translating_and_scaling_one_side(f):
    """(RBF CKA: its median-heuristic bandwidth scales with the data.)"""
    X, Z = _views()
    Y = X + 0.7 * Z
    moved = 2.5 * Y @ _rotation(8) + 4.0
    if f is rsa.rsa:  # cosine RDMs move with translation; euclidean ones do not
        assert f(X, moved, metric="euclidean") == pytest.approx(f(X, Y, metric="euclidean"), rel=1e-10)
    elif f is spectral.eigenspectrum:  # the normalised spectrum is invariant too
        assert f(X, moved) == pytest.approx(f(X, Y), rel=1e-8, abs=1e-12)
    else:
        assert f(X, moved) == pytest.approx(f(X, Y), rel=1e-10)


def test_shape_metric_alpha_zero_is_invariant_to_any_invertible_map():
    X, Z = _views()
    Y = X + 0.7 * Z
    A = np.random.default_rng(4).standard_normal((8, 8)) + 3 * np.eye(8)
    assert geometric.shape_angular(X, Y @ A, alpha=0.0) == pytest.approx(geometric.shape_angular(X, Y, alpha=0.0), rel=1e-8)
    assert geometric.shape_angular(X, Y @ A, alpha=1.0) != pytest.approx(geometric.shape_angular(X, Y, alpha=1.0), rel=1e-3)


def test_procrustes_zero_pad_equals_pu_on_equal_dims_and_accepts_unequal():
    X, Z = _views()
    assert geometric.procrustes(X, Z, unequal_dims="zero_pad") == geometric.procrustes(X, Z)
    assert 0 < geometric.procrustes(X, Z[:, :5], unequal_dims="zero_pad") < 2


def test_svcca_keep_counts_dimensions_or_variance():
    X, Z = _views()
    Y = X + Z
    assert cca.svcca(X, Y, keep=8, eps=0.0) == pytest.approx(cca.mean_cca(X, Y), rel=1e-9)  # all kept
    assert cca.svcca(X, Y, keep=1.0, eps=0.0) == pytest.approx(cca.mean_cca(X, Y), rel=1e-9)


# --- tiling: the all-pairs sums do not depend on the tile size -------------------------------------
@pytest.mark.parametrize("key", [k for k in sorted(META["golden"]) if k.split("/")[0] in
                                 ("rbf_cka", "mmd", "rsa", "distance_correlation", "ksg_mutual_information",
                                  "cycle_knn", "lcs_knn", "edit_distance_knn")])
def test_small_tiles_equal_reference(key, monkeypatch):
    from samesky.metrics.measures import _tiles

    monkeypatch.setattr(_tiles, "TILE_BYTES", 8 * 200 * 7)  # 7 rows of 200, or 37 x 37 blocks: uneven last ones
    monkeypatch.setattr(information, "_KSG_ROWS", 7)
    golden = float(DATA[key])
    assert abs(ours(key) - golden) <= META["golden"][key]["tol"] * max(1.0, abs(golden))


# --- the exact/estimate switches -------------------------------------------------------------------
def test_spearman_rsa_refuses_beyond_exact_and_estimates_on_opt_in(monkeypatch):
    X, Z = _views(n=200)
    Y = X + Z
    exact = rsa.rsa(X, Y)
    monkeypatch.setattr(rsa, "EXACT_SPEARMAN_PAIRS", 1000)
    with pytest.raises(ValueError, match="sample_pairs"):
        rsa.rsa(X, Y)
    assert rsa.rsa(X, Y, method="pearson") == pytest.approx(rsa.rsa(X, Y, method="pearson", sample_pairs=None))
    estimate = rsa.rsa(X, Y, sample_pairs=20000, seed=1)
    assert estimate != exact and abs(estimate - exact) < 0.02


@pytest.mark.parametrize("kind", ["cosine", "correlation", "euclidean", "sqeuclidean"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sampled_pairs_are_scipys_distances_at_those_pairs(kind, dtype):
    from scipy.spatial.distance import cdist

    from samesky.metrics.measures._tiles import Pairwise

    X, Z = _views(n=60, d=12)
    X = (X + 3).astype(dtype)  # a mean far from 0: correlation's centring matters
    rng = np.random.default_rng(4)
    i, j = rng.integers(0, 60, 500), rng.integers(0, 60, 500)
    j[i == j] = (j[i == j] + 1) % 60
    s = 1 / np.linalg.norm(X.astype(np.float64), axis=1)
    for scale, rows in ((None, X.astype(np.float64)), (s, X.astype(np.float64) * s[:, None])):
        want = cdist(rows, rows, kind)[i, j]
        got = Pairwise(X, kind, scale).pairs(i, j)
        assert got.dtype == np.float64 and got.shape == (500,)
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 and kind == "correlation" else 1e-12,
                                   atol=1e-6 if dtype == np.float32 and kind == "correlation" else 1e-13)


def test_median_bandwidth_refuses_beyond_exact_and_estimates_on_opt_in(monkeypatch):
    X, Z = _views(n=200)
    exact = kernel.median_gamma(X)
    monkeypatch.setattr(kernel, "EXACT_MEDIAN_PAIRS", 1000)
    with pytest.raises(ValueError, match="median_sample"):
        kernel.rbf_cka(X, Z)
    assert kernel.median_gamma(X, median_sample=20000) == pytest.approx(exact, rel=0.05)
    assert kernel.rbf_cka(X, Z, gamma=0.1) == pytest.approx(kernel.rbf_cka(X, Z, gamma=0.1))


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_bad_input_is_refused_by_name(name):
    f = FUNCTIONS[name]
    X, Z = _views()
    with pytest.raises(ValueError, match=rf"{name}: X and Y must pair the same objects row by row, got 150 and 149"):
        f(X, Z[:-1])
    bad = X.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=rf"{name}: X has non-finite values \(NaN or inf\) in 1 rows, e.g. rows \[7\]"):
        f(bad, Z)
    zero = Z.copy()
    zero[3] = 0
    with pytest.raises(ValueError, match=rf"{name}: Y has 1 zero rows, which cannot be L2-normalised"):
        f(X, zero, normalize_rows=True)
    with pytest.raises(ValueError, match=rf"{name}: X must be a 2-d"):
        f(X[:, 0], Z)
    if PROPERTIES[name][2]:
        with pytest.raises(ValueError, match=rf"{name}: needs equal dimensions, got d_X=8 and d_Y=5"):
            f(X, Z[:, :5])
    else:
        assert np.isfinite(f(X, Z[:, :5]))


def test_bad_parameters_are_refused():
    X, Z = _views()
    with pytest.raises(ValueError, match="unequal_dims='pad'"):
        geometric.procrustes(X, Z, unequal_dims="pad")
    with pytest.raises(ValueError, match="alpha=1.5 must be between 0 and 1"):
        geometric.shape_angular(X, Z, alpha=1.5)
    with pytest.raises(ValueError, match="keep=9 dimensions, but the embedding has 8"):
        cca.svcca(X, Z, keep=9)
    with pytest.raises(ValueError, match="keep=1.5"):
        cca.svcca(X, Z, keep=1.5)
    with pytest.raises(ValueError, match="k=150 must be between 1 and N-1=149"):
        neighbours.jaccard(X, Z, k=150)
    with pytest.raises(ValueError, match="method='kendall'"):
        rsa.rsa(X, Z, method="kendall")
    with pytest.raises(ValueError, match="metric='geodesic'"):
        spectral.riemannian(X, Z, metric="geodesic")
    with pytest.raises(ValueError, match="cv=1 folds"):
        regression.linear_r2(X, Z, cv=1)
    with pytest.raises(ValueError, match=r"rbf_cka: gamma=-1.0 must be positive \(or None"):
        kernel.rbf_cka(X, Z, gamma=-1.0)
    with pytest.raises(ValueError, match="mmd: median_sample=0 must be a positive number of pairs"):
        kernel.mmd(X, Z, median_sample=0)
    with pytest.raises(ValueError, match="rsa: sample_pairs=2 must be at least 3 pairs"):
        rsa.rsa(X, Z, sample_pairs=2)
    with pytest.raises(ValueError, match="mean_cca: the covariance is singular"):
        cca.mean_cca(np.hstack([X, X[:, :1]]), Z)


# --- large inputs: float32 stays float32, nothing is copied whole -----------------------------------
@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_float32_inputs_give_the_float64_value(name):
    X, Z = _views()
    Y = X + Z
    f = FUNCTIONS[name]
    assert f(X.astype(np.float32), Y.astype(np.float32)) == pytest.approx(
        f(X.astype(np.float32).astype(np.float64), Y.astype(np.float32).astype(np.float64)), rel=1e-4, abs=1e-5)


def test_all_pairs_tiles_read_the_input_in_place():
    from samesky.metrics.measures._tiles import Pairwise

    X32 = np.ascontiguousarray(_views()[0], dtype=np.float32)
    P = Pairwise(X32, "sqeuclidean", np.ones(len(X32)))
    assert P.Z.data_ptr() == X32.ctypes.data and P.Z.dtype == torch.float32
    assert P.tile(0, 5).dtype == torch.float64
