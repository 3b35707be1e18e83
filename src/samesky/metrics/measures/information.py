"""Information-theoretic measures, as pu (platonic-universe 6672072, src/pu/metrics/information.py):
KL and Jensen-Shannon divergences between fitted Gaussians, and the KSG kNN mutual information
(the project's Gaussian mutual information is ``samesky.metrics.mutual_info``)."""
from __future__ import annotations

import numpy as np
from scipy.special import digamma

from . import _ksg
from ._inputs import checked
from ._moments import moments

# Rows of a Chebyshev-distance tile in ``ksg_mutual_information`` (tile memory: 2 x rows x N values).
_KSG_ROWS = 128
# ``KsgEstimator`` keeps a pair's N x N Chebyshev distance matrices, both sides together (one for a
# self pair), when they take at most this many bytes in the inputs' dtype: N <= 17,677 in float32
# (12,500 in float64), so that with the inputs every measure stays under 3 GB (issue 27).
KSG_MATRIX_BYTES = 2_500_000_000


def _gaussians(X, Y, eps: float, normalize_rows: bool, measure: str):
    """Both sides' means and covariances (n-1 divisor) + eps I, pu information.py:13
    ``_gaussian_params``, from streamed moments."""
    m = moments(checked(X, Y, normalize_rows=normalize_rows, same_dim=True, measure=measure), cross=False)
    d = len(m.mx)
    return m.mx, m.cov("cxx") + eps * np.eye(d), m.my, m.cov("cyy") + eps * np.eye(d)


def _kl(mu1, S1, mu2, S2) -> float:
    d = len(mu1)
    inv2 = np.linalg.inv(S2)
    diff = mu2 - mu1
    logdet = np.linalg.slogdet(S2)[1] - np.linalg.slogdet(S1)[1]
    return 0.5 * (np.trace(inv2 @ S1) + diff @ inv2 @ diff - d + logdet)


def gaussian_kl(X, Y, *, eps: float = 1e-6, normalize_rows: bool = False) -> float:
    """KL(N_X || N_Y) between Gaussians fitted to X and Y (covariance + eps I), pu
    information.py:39 ``kl_divergence``. Distance-like (asymmetric), >= 0 (clipped at 0 as pu),
    in nats; needs equal dimensions."""
    return float(max(_kl(*_gaussians(X, Y, eps, normalize_rows, "gaussian_kl")), 0.0))


def gaussian_js(X, Y, *, eps: float = 1e-6, normalize_rows: bool = False) -> float:
    """Jensen-Shannon divergence of fitted Gaussians, pu information.py:93 ``js_divergence``:
    the mixture M is moment-matched by a Gaussian (mean (mu1+mu2)/2, covariance
    (S1+S2)/2 + (mu1-mu2)(mu1-mu2)'/4), JS = (KL(P||M) + KL(Q||M))/2, each KL clipped at 0.
    Distance, symmetric, >= 0 in nats (not bounded by log 2, the mixture being approximated);
    needs equal dimensions."""
    mu1, S1, mu2, S2 = _gaussians(X, Y, eps, normalize_rows, "gaussian_js")
    mu_m, diff = (mu1 + mu2) / 2, mu1 - mu2
    S_m = (S1 + S2) / 2 + np.outer(diff, diff) / 4
    return float((max(_kl(mu1, S1, mu_m, S_m), 0.0) + max(_kl(mu2, S2, mu_m, S_m), 0.0)) / 2)


def ksg_mutual_information(X, Y, *, k: int = 3, normalize_rows: bool = False) -> float:
    """Kraskov-Stoegbauer-Grassberger kNN estimate of I(X; Y) in nats, as pu information.py:153
    ``mutual_information`` (k = 3): eps_i = distance to the k-th neighbour in the joint space
    under the max norm, n_x(i), n_y(i) = other objects within eps_i + 1e-10 in each marginal,
    MI = psi(k) - <psi(n_x + 1) + psi(n_y + 1)> + psi(N), clipped at 0 as pu.

    Similarity >= 0. Exact, computed in row tiles of Chebyshev distances (never an N x N
    matrix; ``_ksg``: compiled, bit for bit ``torch.cdist(p=inf)``), in the inputs' dtype:
    O(N^2 (d_X + d_Y)) time, O(N * 128) memory. ``KsgEstimator`` answers a pair's null draws and
    subsamples from cached distance matrices where they fit.
    """
    return _Ksg(X, Y, k, normalize_rows).mi(_tiled_counts)


class _Ksg:
    """A checked pair, as ``ksg_mutual_information`` reads it: each side in its own dtype with the
    row scales ``normalize_rows`` applies (ones: none), and k clamped as pu clamps it."""

    def __init__(self, X, Y, k: int, normalize_rows: bool):
        p = checked(X, Y, normalize_rows=normalize_rows, measure="ksg_mutual_information")
        if k < 1:
            raise ValueError(f"ksg_mutual_information: k={k} must be >= 1")
        self.n, self.k = p.n, min(k, max(1, p.n - 1))  # pu's clamp
        self.sides = [(np.ascontiguousarray(Z), np.ones(p.n, Z.dtype) if s is None else s.astype(Z.dtype))
                      for Z, s in ((p.X, p.sx), (p.Y, p.sy))]
        self.dtype = p.X.dtype

    def mi(self, counts, ix=None, iy=None) -> float:
        """The KSG estimate from ``counts(self, ix, iy) -> (nx, ny)`` of the objects whose X rows are
        ``ix`` and Y rows ``iy`` (default: all, in order)."""
        every = np.arange(self.n)
        ix, iy = every if ix is None else ix, every if iy is None else iy
        nx, ny = counts(self, ix, iy)
        n = len(ix)
        mi = digamma(self.k) - np.mean(digamma(nx + 1.0) + digamma(ny + 1.0)) + digamma(n)
        return float(max(mi, 0.0))

    def counts_from(self, Dx, rx, cx, Dy, ry, cy):
        """``_ksg.ksg_counts`` of objects i < len(rx) against j < len(cx), as int64 arrays."""
        nx, ny = np.empty(len(rx), np.int64), np.empty(len(rx), np.int64)
        _ksg.ksg_counts(Dx, rx, cx, Dy, ry, cy, self.k, self.dtype.type(1e-10), nx, ny)
        return nx, ny

    def matrix(self, side: int) -> np.ndarray:
        """Side ``side``'s N x N Chebyshev distances, filled in row tiles."""
        every = np.arange(self.n)
        D = np.empty((self.n, self.n), self.dtype)
        for a in range(0, self.n, _KSG_ROWS):
            self.distances(side, every, a, min(self.n, a + _KSG_ROWS), D[a : a + _KSG_ROWS])
        return D

    def distances(self, side: int, idx, a: int, b: int, out=None) -> np.ndarray:
        """Chebyshev distances of side ``side``'s rows idx[a:b] to its rows idx."""
        Z, s = self.sides[side]
        out = np.empty((b - a, len(idx)), Z.dtype) if out is None else out
        _ksg.chebyshev_rows(Z, s, np.ascontiguousarray(idx, np.int64), a, b, out)
        return out


def _tiled_counts(ksg: _Ksg, ix, iy):
    """KSG counts from row tiles of both sides' distances, computed here (O(N * 128) memory)."""
    n = len(ix)
    nx, ny = np.empty(n, np.int64), np.empty(n, np.int64)
    for a in range(0, n, _KSG_ROWS):
        b = min(n, a + _KSG_ROWS)
        local, every = np.arange(b - a), np.arange(n)
        nx[a:b], ny[a:b] = ksg.counts_from(ksg.distances(0, ix, a, b), local, every,
                                           ksg.distances(1, iy, a, b), local, every)
    return nx, ny


def ksg_kept_bytes(n: int, itemsize: int = 4, sides: int = 2) -> int:
    """The bytes of the distance matrices ``KsgEstimator`` keeps for a pair of n objects: ``sides``
    n x n matrices of ``itemsize`` bytes where they fit ``KSG_MATRIX_BYTES``, else 0 (none kept; the
    registry's ``kept_bytes`` of mi_ksg)."""
    size = sides * n * n * itemsize
    return size if size <= KSG_MATRIX_BYTES else 0


class KsgEstimator:
    """mi_ksg on a ``metrics.pair.Pair`` (``registry``): ``score()``, and ``null(pi)``, side B's
    rows permuted (``Zb[pi]``), each equal to ``ksg_mutual_information`` on those arrays, float for
    float. When both sides' N x N distance matrices fit ``KSG_MATRIX_BYTES`` they are computed once,
    kept in ``pair.kept``, and every call on the pair, and on its subsamples (``Pair.subsample``:
    the intervals), reads them in O(N^2): the joint distance of i and j under ``pi`` is
    max(Dx[i, j], Dy[pi_i, pi_j]). Otherwise each call computes its distance tiles,
    O(N^2 (d_X + d_Y)). A subsample never computes matrices of its own (it is scored once)."""

    def __init__(self, pair, *, k: int, normalize_rows: bool):
        self.pair, self.key = pair, ("ksg_chebyshev", normalize_rows)
        self.ksg = _Ksg(pair.Za, pair.Zb, k, normalize_rows)

    def _matrices(self):
        """(Dx, Dy, rows): the kept distance matrices and this pair's objects' rows in them, or None."""
        if self.pair.source is not None:
            origin, rows = self.pair.source
            kept = origin.kept.get(self.key)
            return None if kept is None else (*kept, rows)
        if self.key not in self.pair.kept:
            if not ksg_kept_bytes(self.ksg.n, self.ksg.dtype.itemsize, 1 if self.pair.same else 2):
                return None
            Dx = self.ksg.matrix(0)
            self.pair.kept[self.key] = (Dx, Dx if self.pair.same else self.ksg.matrix(1))
        return (*self.pair.kept[self.key], np.arange(self.ksg.n))

    def _mi(self, iy) -> float:
        """The estimate on this pair's objects, side B's rows ``iy`` of them (None: as given)."""
        kept = self._matrices()
        if kept is None:
            return self.ksg.mi(_tiled_counts, None, iy)
        Dx, Dy, rows = kept
        iy = rows if iy is None else rows[iy]
        return self.ksg.mi(lambda ksg, ix, iy: ksg.counts_from(Dx, ix, ix, Dy, iy, iy), rows, iy)

    def score(self) -> float:
        return self._mi(None)

    def null(self, pi) -> float:
        pi = np.asarray(pi, np.int64)
        if pi.shape != (self.ksg.n,):
            raise ValueError(f"ksg_mutual_information: a null draw permutes side B's {self.ksg.n} rows, got "
                             f"indices of shape {pi.shape}")
        return self._mi(np.arange(self.ksg.n)[pi])  # indexing checks the range
