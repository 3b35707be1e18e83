"""The KSG mutual information's compiled kernels (``measures._ksg``) against the torch computation
they replaced, kept here as the oracle: Chebyshev distances bit for bit ``torch.cdist(p=inf)``, and
the same per-object counts, so the same score, to the last bit."""
import numpy as np
import pytest
import torch

from samesky.metrics.measures import _ksg, information
from samesky.metrics.measures._inputs import checked


def _oracle_counts(X, Y, k, normalize_rows, rows=128):
    """The counts as ``ksg_mutual_information`` computed them before ``_ksg``: torch.cdist tiles,
    kthvalue of the joint distance, + 1e-10 in the dtype."""
    p = checked(X, Y, normalize_rows=normalize_rows)
    tx, ty = (torch.from_numpy(Z) * (1 if s is None else torch.from_numpy(s).to(torch.from_numpy(Z).dtype)[:, None])
              for Z, s in ((p.X, p.sx), (p.Y, p.sy)))
    nx, ny = np.empty(p.n, np.int64), np.empty(p.n, np.int64)
    for a in range(0, p.n, rows):
        dx = torch.cdist(tx[a : a + rows], tx, p=float("inf"))
        dy = torch.cdist(ty[a : a + rows], ty, p=float("inf"))
        eps = torch.kthvalue(torch.maximum(dx, dy), k + 1, dim=1).values[:, None] + 1e-10
        nx[a : a + rows] = ((dx <= eps).sum(1) - 1).numpy()
        ny[a : a + rows] = ((dy <= eps).sum(1) - 1).numpy()
    return nx, ny


def _oracle(X, Y, k=3, normalize_rows=False):
    from scipy.special import digamma

    nx, ny = _oracle_counts(X, Y, k, normalize_rows)
    return float(max(digamma(k) - np.mean(digamma(nx + 1.0) + digamma(ny + 1.0)) + digamma(len(X)), 0.0))


def _data(kind: str, dtype, n=150, seed=0):
    """Correlated sides (the score is above its clip at 0) with ties: integer grids (distances tie
    at the k-th neighbour), duplicated rows (eps = 0 + 1e-10) and a 1e-10 scale (where adding
    1e-10 moves eps by its own size)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    Y = np.hstack([X[:, :3] + 0.1 * rng.standard_normal((n, 3)), rng.standard_normal((n, 1))])
    if kind == "grid":
        X, Y = np.round(4 * X), np.round(4 * Y)
    elif kind == "duplicates":
        X[10:20], Y[10:20] = X[0], Y[0]
    elif kind == "tiny":
        X, Y = 1e-10 * X, 3e-10 * Y
    return X.astype(dtype), Y.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chebyshev_rows_are_torch_cdist_bit_for_bit(dtype):
    X = _data("plain", dtype, n=203)[0]
    s = (1 / np.linalg.norm(X.astype(np.float64), axis=1)).astype(dtype)
    idx = np.random.default_rng(1).permutation(203)
    out = np.empty((70, 203), dtype)
    _ksg.chebyshev_rows(X, s, idx, 5, 75, out)
    Z = torch.from_numpy(X)[idx] * torch.from_numpy(s)[idx][:, None]
    ref = torch.cdist(Z[5:75], Z, p=float("inf")).numpy()
    assert ref.dtype == dtype and np.array_equal(out, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["plain", "grid", "duplicates", "tiny"])
@pytest.mark.parametrize("normalize_rows", [False, True])
def test_counts_and_score_equal_the_torch_oracle(kind, dtype, normalize_rows, monkeypatch):
    X, Y = _data(kind, dtype)
    ksg = information._Ksg(X, Y, 3, normalize_rows)
    monkeypatch.setattr(information, "_KSG_ROWS", 7)  # uneven tiles
    nx, ny = information._tiled_counts(ksg, np.arange(len(X)), np.arange(len(X)))
    ox, oy = _oracle_counts(X, Y, 3, normalize_rows)
    assert np.array_equal(nx, ox) and np.array_equal(ny, oy)
    score = information.ksg_mutual_information(X, Y, normalize_rows=normalize_rows)
    # at the 1e-10 scale (rows not normalised) eps + 1e-10 takes in most objects: clipped at 0
    assert score == _oracle(X, Y, normalize_rows=normalize_rows) and (score > 0) == (kind != "tiny" or normalize_rows)


@pytest.mark.parametrize("budget", [information.KSG_MATRIX_BYTES, 0])  # kept matrices; tiles every call
@pytest.mark.parametrize("normalize_rows", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_estimator_draws_and_subsamples_equal_the_function_float_for_float(budget, normalize_rows, dtype,
                                                                          monkeypatch):
    from samesky.metrics.pair import Pair
    from samesky.metrics.registry import METRICS
    from samesky.metrics.stats import permutations

    monkeypatch.setattr(information, "KSG_MATRIX_BYTES", budget)
    X, Y = _data("grid", dtype, n=120)
    f = information.ksg_mutual_information

    def ksg(A, B):
        return f(A, B, normalize_rows=normalize_rows)
    pair = Pair(X, Y)
    est = METRICS["mi_ksg"].estimator(pair, normalize_rows=normalize_rows)
    perms = list(permutations(120, 4, 2))
    assert est.score() == ksg(X, Y) and [est.null(pi) for pi in perms] == [ksg(X, Y[pi]) for pi in perms]
    assert bool(pair.kept) == (budget > 0)
    rows = np.sort(np.random.default_rng(3).choice(120, 60, replace=False))
    sub = pair.subsample(rows, 0)
    inner = np.arange(0, 60, 2)
    nested = sub.subsample(inner, 0)  # a subsample's subsample reads the first pair's matrices
    assert nested.source[0] is pair and np.array_equal(nested.source[1], rows[inner])
    for part, keep in ((sub, rows), (nested, rows[inner])):
        est = METRICS["mi_ksg"].estimator(part, normalize_rows=normalize_rows)
        assert est.score() == ksg(X[keep], Y[keep]) and not part.kept
        pi = np.random.default_rng(4).permutation(len(keep))
        assert est.null(pi) == ksg(X[keep], Y[keep][pi])
    self_pair = Pair(X, X)
    assert METRICS["mi_ksg"].estimator(self_pair, normalize_rows=normalize_rows).null(perms[1]) == ksg(X, X[perms[1]])
    with pytest.raises(ValueError, match="permutes side B's 120 rows, got indices of shape \\(119,\\)"):
        METRICS["mi_ksg"].estimator(pair, normalize_rows=normalize_rows).null(perms[0][:119])
