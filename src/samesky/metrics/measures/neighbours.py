"""Neighbourhood measures: Jaccard of kNN sets (pu) and platonic-rep's cycle_knn, lcs_knn and
edit_distance_knn, which compare the ordered kNN lists.

Each is a score of the two sides' kNN index lists (``GRAPH_SCORES``), so the registry runs it on
the cached graphs (``GraphEstimator``), with nulls by relabelling side B's graph instead of
rebuilding it: a permutation of B's rows permutes its graph's rows and renames its entries.

Cosine neighbours come from the project's exact tiled kNN kernel (``samesky.metrics.knn``,
float32 similarities, ties to the smaller index); platonic-rep ranks by the inner product of the
rows as given, so with ``normalize_rows=False`` its measures rank by raw inner products here too
(row tiles in the input's dtype: float64 inputs are ranked in float64).
"""
from __future__ import annotations

import numpy as np
import torch

from ..knn import knn_graph
from ._inputs import checked
from ._tiles import tile_rows


def _inner_product_knn(Z: np.ndarray, k: int) -> np.ndarray:
    """Each row's k largest inner products with the other rows, largest first (row tiles, in
    Z's own dtype)."""
    T = torch.from_numpy(np.ascontiguousarray(Z))
    n, rows, out = len(Z), tile_rows(len(Z)), []
    for a in range(0, n, rows):
        b = min(n, a + rows)
        S = T[a:b] @ T.T
        S[torch.arange(b - a), torch.arange(a, b)] = float("-inf")
        out.append(torch.topk(S, k, dim=1).indices.numpy())
    return np.concatenate(out)


def _neighbours(X, Y, k: int, normalize_rows: bool, measure: str, cosine: bool = False):
    """Checked pair's ordered kNN lists: cosine (the project's kernel, which normalises rows itself)
    when ``cosine`` or ``normalize_rows``, else by raw inner products."""
    p = checked(X, Y, normalize_rows=normalize_rows, measure=measure)
    if not 1 <= k <= p.n - 1:
        raise ValueError(f"{measure}: k={k} must be between 1 and N-1={p.n - 1}")
    if cosine or normalize_rows:
        return knn_graph(p.X, k)[0], knn_graph(p.Y, k)[0]
    return _inner_product_knn(p.X, k), _inner_product_knn(p.Y, k)


def _jaccard(A: np.ndarray, B: np.ndarray, k: int) -> float:
    inter = (A[:, :, None] == B[:, None, :]).sum(axis=(1, 2))
    return float(np.mean(inter / (2 * k - inter)))


def _cycle(A: np.ndarray, B: np.ndarray, k: int) -> float:
    back = A[B]  # (N, k, k): X-neighbours of each Y-neighbour
    return float(np.mean((back == np.arange(len(A))[:, None, None]).any(axis=(1, 2))))


def _lcs(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Longest common subsequence length of each row pair (dynamic programme, all rows at once)."""
    n, k = A.shape
    prev = np.zeros((n, k + 1), np.int64)
    for i in range(k):
        cur = np.zeros_like(prev)
        for j in range(k):
            cur[:, j + 1] = np.where(A[:, i] == B[:, j], prev[:, j] + 1, np.maximum(prev[:, j + 1], cur[:, j]))
        prev = cur
    return prev[:, k]


def _levenshtein(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Edit distance (insertions, deletions, substitutions) of each row pair, all rows at once."""
    n, k = A.shape
    prev = np.tile(np.arange(k + 1), (n, 1))
    for i in range(k):
        cur = np.empty_like(prev)
        cur[:, 0] = i + 1
        for j in range(k):
            sub = prev[:, j] + (A[:, i] != B[:, j])
            cur[:, j + 1] = np.minimum(sub, np.minimum(cur[:, j], prev[:, j + 1]) + 1)
        prev = cur
    return prev[:, k]


def _lcs_mean(A: np.ndarray, B: np.ndarray, k: int, per_k: bool = False) -> float:
    return float(np.mean(_lcs(A, B)) / (k if per_k else 1))


def _edit(A: np.ndarray, B: np.ndarray, k: int) -> float:
    return float(1 - np.mean(_levenshtein(A, B)) / k)


# measure -> (score of the two (N, k) index lists (A, B, k, **options), whether its neighbours are
# always cosine: otherwise cosine only under normalize_rows, raw inner products without)
GRAPH_SCORES = {"jaccard": (_jaccard, True), "cycle_knn": (_cycle, False), "lcs_knn": (_lcs_mean, False),
                "edit_distance_knn": (_edit, False)}


def jaccard(X, Y, *, k: int = 10, normalize_rows: bool = False) -> float:
    """Mean over objects of |N_X(i) & N_Y(i)| / |N_X(i) | N_Y(i)|, N the k cosine nearest
    neighbours (self excluded), pu (platonic-universe 6672072) src/pu/metrics/neighbors.py:85
    ``jaccard``. Similarity in [0, 1]. Cosine neighbours do not depend on ``normalize_rows``.
    pu clamps k >= N to N - 1; here that is an error."""
    return _jaccard(*_neighbours(X, Y, k, normalize_rows, "jaccard", cosine=True), k)


def cycle_knn(X, Y, *, k: int = 10, normalize_rows: bool = True) -> float:
    """Fraction of objects i that are among the X-neighbours of one of their Y-neighbours
    (i -> N_Y(i) -> N_X(.) returns to i), platonic-rep (dcd76ba) metrics.py:39 ``cycle_knn``
    (``compute_knn_accuracy``, metrics.py:258). Similarity in [0, 1]; asymmetric."""
    return _cycle(*_neighbours(X, Y, k, normalize_rows, "cycle_knn"), k)


def lcs_knn(X, Y, *, k: int = 10, normalize_rows: bool = True, per_k: bool = False) -> float:
    """Mean length of the longest common subsequence of the two ordered kNN lists (nearest
    first), platonic-rep metrics.py:88 ``lcs_knn`` (``longest_ordinal_sequence``, metrics.py:288).
    Similarity in [0, k] (not divided by k, as the reference); ``per_k`` divides it by k, into
    [0, 1] (as the registry runs it, so that it calibrates like the other unit-scale measures)."""
    return _lcs_mean(*_neighbours(X, Y, k, normalize_rows, "lcs_knn"), k, per_k)


def edit_distance_knn(X, Y, *, k: int = 10, normalize_rows: bool = True) -> float:
    """1 - mean Levenshtein distance between the ordered kNN lists / k, platonic-rep
    metrics.py:164 ``edit_distance_knn`` (torchaudio's ``edit_distance``). Similarity in [0, 1]."""
    return _edit(*_neighbours(X, Y, k, normalize_rows, "edit_distance_knn"), k)


class GraphEstimator:
    """A measure of ``GRAPH_SCORES`` on one aligned pair (``metrics.pair.Pair``), as the registry
    calls estimators: its score equals the pure function's. Cosine neighbours are the pair's kNN
    graphs (cached, or built once); raw inner-product neighbours (``normalize_rows=False`` for
    platonic-rep's measures) are built here. ``null(pi)``: side B's rows permuted by ``pi`` gives
    the graph whose row i is object pi[i]'s, its entries renamed by pi's inverse, O(N k) a draw;
    with exactly tied similarities the relabelled graph keeps B's tie order, as MKNN's does."""

    def __init__(self, measure: str, pair, *, k: int, normalize_rows: bool, **options):
        self.fn, cosine = GRAPH_SCORES[measure]
        self.k, self.options = k, options
        if cosine or normalize_rows:
            if not 1 <= k <= pair.n - 1:
                raise ValueError(f"{measure}: k={k} must be between 1 and N-1={pair.n - 1}")
            (ia, _), (ib, _) = pair.graphs(k)
            self.A, self.B = (np.ascontiguousarray(g[:, :k], dtype=np.int64) for g in (ia, ib))
        else:
            self.A, self.B = _neighbours(pair.Za, pair.Zb, k, False, measure)

    def score(self) -> float:
        return self.fn(self.A, self.B, self.k, **self.options)

    def null(self, pi: np.ndarray) -> float:
        inverse = np.empty(len(pi), np.int64)
        inverse[pi] = np.arange(len(pi))
        return self.fn(self.A, inverse[self.B[pi]], self.k, **self.options)
