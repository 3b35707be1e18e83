"""CKNNA as released in platonic-rep (``AlignmentMetrics.cknna``, default ``unbiased=True``), which
made the Platonic Representation Hypothesis figures, computed from the cached kNN graphs in O(N k).

With unit-normalised rows (cosine kernels K, L, as platonic-rep's ``compute_score`` normalises)
and the mask M_ij = 1[j in kNN_A(i)] 1[j in kNN_B(i)] (self excluded, not symmetric):

    CKNNA = HSIC_u(M o K, M o L) / (sqrt(HSIC_u(M_A o K, M_A o K) HSIC_u(M_B o L, M_B o L)) + 1e-6),
    HSIC_u(P, Q) = [sum(P o Q^T) + sum(P) sum(Q) / ((m-1)(m-2)) - 2 sum(P Q) / (m-2)] / (m (m-3)),

with m = N (Song et al. 2012's unbiased HSIC applied to the masked kernels, as released; the
1e-6 in the denominator is the release's, kept so scores equal it). Every term is a sum over the
mask's edges (i, j): sum(P o Q^T) over edges whose reverse (j, i) is an edge too, and
sum(P Q) = sum_l (column sum of P at l)(row sum of Q at l). The paper's appendix formula is
``cknna_formula`` (``cknna``).

Null: side B permuted by pi relabels B's graph (object i meets B's row pi[i]), exact like MKNN's.
Bootstrap: objects resampled as integer weights c on the full-sample graph: each sum over an
index i is weighted by c_i and m = sum c (neighbourhoods are those of the full sample).
"""
from __future__ import annotations

import numpy as np

from .mknn import graph_prefix, transposed

EPS = 1e-6  # platonic-rep's denominator guard


def _hsic(i, j, kv, lv, recip, w, n: int) -> float:
    """Weighted unbiased HSIC of the masked kernels from the mask's edges (i -> j) and kernel values."""
    wij = w[i] * w[j]
    m = float(w.sum())
    t1 = float((wij * kv * lv)[recip].sum())
    sk, sl = float(wij @ kv), float(wij @ lv)
    col = np.bincount(j, w[i] * kv, minlength=n)  # sum_i c_i P_il, weighted by c_l below
    row = np.bincount(i, w[j] * lv, minlength=n)
    t3 = float((w * col * row).sum())
    return (t1 + sk * sl / ((m - 1) * (m - 2)) - 2 * t3 / (m - 2)) / (m * (m - 3))


DENSE_TABLE_MAX = 2**26  # n^2 entries (64 MiB of bools) up to which _reciprocal uses a table


def _reciprocal(i, j, n: int) -> np.ndarray:
    """Whether each edge (i, j) has its reverse (j, i) among the edges (edges are distinct).

    Up to n^2 = DENSE_TABLE_MAX a boolean n x n table answers it by one scatter and one gather
    (about 30 times faster than sorting at n = 1500, k = 50: the subsampling draws of the
    coverage study); beyond, the edge keys are sorted and searched. Both give the same answer."""
    if not len(i):
        return np.zeros(0, bool)
    if n * n <= DENSE_TABLE_MAX:
        table = np.zeros(n * n, bool)
        table[i * n + j] = True
        return table[j * n + i]
    order = np.sort(i * n + j)
    rev = j * n + i
    pos = np.minimum(np.searchsorted(order, rev), len(order) - 1)
    return order[pos] == rev


class CknnaHsicEstimator:
    """platonic-rep's CKNNA of one aligned pair from its graphs (indices, cosine similarities)."""

    def __init__(self, graph_a, graph_b, k: int):
        if k < 2:
            raise ValueError(f"CKNNA needs k >= 2 (as released), got k={k}")
        (ia, sa), (ib, sb) = graph_a, graph_b
        self.k = k
        self.aT = transposed(graph_prefix(ia, k, "graph A"))
        self.bT = transposed(graph_prefix(ib, k, "graph B"))
        self.n = self.aT.shape[1]
        if self.n < 4:
            raise ValueError(f"CKNNA (unbiased HSIC) needs at least 4 objects, got {self.n}")
        self.sa = np.ascontiguousarray(np.asarray(sa, np.float64)[:, :k].T)
        self.sb = np.ascontiguousarray(np.asarray(sb, np.float64)[:, :k].T)
        self.self_edges = [self._self_edges(self.aT, self.sa), self._self_edges(self.bT, self.sb)]
        self.cross_edges = self._cross_edges(self.aT, self.bT, self.sb, np.arange(self.n))

    def _self_edges(self, gT, sT):
        i = np.tile(np.arange(self.n), gT.shape[0])
        j = gT.ravel().astype(np.int64)
        v = sT.ravel()
        return i, j, v, v, _reciprocal(i, j, self.n)

    def _cross_edges(self, a_idx, b_idx, sb, rows_b):
        """Edges (i, j) with A's p-th neighbour j of i equal to B's q-th neighbour of row rows_b[i]
        (``a_idx`` already in B's labels), with K from A's graph and L from B's."""
        n = self.n
        hits_p, hits_i, lv = [], [], []
        for q in range(b_idx.shape[0]):
            flat = np.flatnonzero(a_idx == b_idx[q])
            hits_p.append(flat // n)
            hits_i.append(flat % n)
            lv.append(sb[q, rows_b[flat % n]])
        p, i = np.concatenate(hits_p), np.concatenate(hits_i)
        j = self.aT[p, i].astype(np.int64)
        return i, j, self.sa[p, i], np.concatenate(lv), _reciprocal(i, j, n)

    def _score(self, cross, w) -> float:
        kk = _hsic(*self.self_edges[0], w, self.n)
        ll = _hsic(*self.self_edges[1], w, self.n)
        return float(_hsic(*cross, w, self.n) / (np.sqrt(kk * ll) + EPS))

    def score(self) -> float:
        return self._score(self.cross_edges, np.ones(self.n))

    def null(self, pi: np.ndarray) -> float:
        """Side B's rows shuffled by ``pi``: object i meets B's graph row pi[i], relabelled."""
        p = pi.astype(self.aT.dtype, copy=False)
        cross = self._cross_edges(np.take(p, self.aT), np.take(self.bT, p, axis=1), self.sb, pi)
        return self._score(cross, np.ones(self.n))

    def bootstrap(self, weights: np.ndarray) -> float:
        return self._score(self.cross_edges, np.asarray(weights, np.float64))
