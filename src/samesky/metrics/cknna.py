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
``cknna_formula`` (module ``cknna_formula``).

Null: side B permuted by pi relabels B's graph (object i meets B's row pi[i]), exact like MKNN's.
"""
from __future__ import annotations

import numpy as np
import torch

from .cells import BATCH_BYTES, by_a, by_b
from .device import pick_device
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


class CknnaEstimator:
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


def _reverse_positions(aT: np.ndarray) -> np.ndarray:
    """For A's p-th edge (o -> x = aT[p, o]): the flat index r * n + x of the reverse edge
    (x -> o) when o is x's r-th neighbour, else -1. Fixed by A's graph: no draw changes it."""
    k, n = aT.shape
    x = aT.astype(np.int64)
    back = aT[:, x] == np.arange(n)  # (r, p, o): x's r-th neighbour is o
    return np.where(back.any(0), back.argmax(0) * n + x, -1)


def cknna_nulls(graphs_a, graphs_b, cells, k: int, perms: np.ndarray, *, device=None, batched: bool | None = None
                ) -> tuple[dict, dict[tuple[int, int], np.ndarray]]:
    """platonic-rep's CKNNA (this module) of every cell of graphs_a[i] x graphs_b[j]
    ((indices, similarities), n x >= k) and its relabelled null over the rows of ``perms``
    (``CknnaEstimator.null``; equal to float round-off: sums run in another order).

    Dense per draw: H[p, o] = A's p-th edge (o -> x) is also a B edge of the relabelled graph;
    its kernel values K = sa[p, o], L = B's similarity of that neighbour in row pi[o]; the three
    HSIC sums are sums over H, a scatter over x and the reverse edges (``_reverse_positions``).
    The self HSICs of each block do not change under permutation: computed once per block.
    ``batched`` as ``mknn_nulls``."""
    dev = pick_device(device)
    batched = dev.type != "cpu" if batched is None else batched
    if k < 2:
        raise ValueError(f"CKNNA needs k >= 2 (as released), got k={k}")

    def side(graph, where):
        gT = transposed(graph_prefix(graph[0], k, where))
        sT = np.ascontiguousarray(np.asarray(graph[1], np.float64)[:, :k].T)
        n = gT.shape[1]
        i, j, v = np.tile(np.arange(n), k), gT.ravel().astype(np.int64), sT.ravel()
        return gT, sT, _hsic(i, j, v, v, _reciprocal(i, j, n), np.ones(n), n)

    A = [side(g, "graph A") for g in graphs_a]
    B = [side(g, "graph B") for g in graphs_b]
    n = A[0][0].shape[1]
    if n < 4:
        raise ValueError(f"CKNNA (unbiased HSIC) needs at least 4 objects, got {n}")
    rev = {i: _reverse_positions(A[i][0]) for i in {i for i, _ in cells}}
    used_b = sorted({j for _, j in cells})

    def hsic(t1, sk, sl, t3):
        return (t1 + sk * sl / ((n - 1) * (n - 2)) - 2 * t3 / (n - 2)) / (n * (n - 3))

    def cross_np(i, pa, pb, sbp):
        aT, sa, _ = A[i]
        hit = pa == pb[0]
        lv = hit * sbp[0]
        for q in range(1, k):
            e = pa == pb[q]
            hit |= e
            lv += e * sbp[q]
        kv = hit * sa
        col = np.bincount(aT.ravel(), kv.ravel(), minlength=n)
        back = np.where(rev[i] >= 0, hit.ravel()[np.maximum(rev[i], 0).ravel()].reshape(hit.shape), False)
        return hsic(float((kv * lv)[back].sum()), float(kv.sum()), float(lv.sum()), float(col @ lv.sum(0)))

    def ratio(cross, i, j):
        return cross / (np.sqrt(A[i][2] * B[j][2]) + EPS)

    identity = np.arange(n, dtype=A[0][0].dtype)
    scores = {(i, j): float(ratio(cross_np(i, A[i][0], B[j][0], B[j][1]), i, j)) for i, j in cells}
    null = {c: np.empty(len(perms)) for c in cells}
    if not batched:
        for d, pi in enumerate(perms):
            p = pi.astype(identity.dtype, copy=False)
            pb = {j: (np.take(B[j][0], p, axis=1), np.take(B[j][1], pi, axis=1)) for j in used_b}
            for i, js in by_a(cells).items():
                pa = np.take(p, A[i][0])
                for j in js:
                    null[(i, j)][d] = ratio(cross_np(i, pa, *pb[j]), i, j)
        return scores, null
    with torch.inference_mode():
        used_a = by_a(cells)
        ta = {i: torch.as_tensor(A[i][0]).to(dev).long() for i in used_a}
        sa = {i: torch.as_tensor(A[i][1]).to(dev) for i in used_a}
        back = {i: torch.as_tensor(rev[i]).to(dev) for i in used_a}
        tb = {j: (torch.as_tensor(B[j][0]).to(dev), torch.as_tensor(B[j][1]).to(dev)) for j in used_b}
        batch = max(1, min(len(perms), BATCH_BYTES[dev.type] // (80 * k * n)))  # ~10 (D, k, n) arrays
        for s in range(0, len(perms), batch):
            P = torch.as_tensor(perms[s : s + batch]).to(dev)
            P64 = P.long()
            D = len(P)
            for j, is_ in by_b(cells).items():
                g, v = tb[j][0][:, P64], tb[j][1][:, P64]  # (k, D, n)
                for i in is_:
                    pa = P[:, ta[i]]  # (D, k, n)
                    valid = back[i] >= 0
                    hit = pa == g[0][:, None]
                    lv = hit * v[0][:, None]
                    for q in range(1, k):
                        e = pa == g[q][:, None]
                        hit |= e
                        lv += e * v[q][:, None]
                    kv = hit * sa[i]
                    col = torch.zeros(D, n, dtype=kv.dtype, device=dev).scatter_add_(
                        1, ta[i].reshape(1, -1).expand(D, -1), kv.reshape(D, -1))
                    rev_hit = hit.reshape(D, -1)[:, back[i].clamp(min=0).reshape(-1)].reshape(hit.shape) & valid
                    t1 = (kv * lv * rev_hit).sum((1, 2))
                    cross = hsic(t1, kv.sum((1, 2)), lv.sum((1, 2)), (col * lv.sum(1)).sum(1))
                    null[(i, j)][s : s + D] = ratio(cross.cpu().numpy(), i, j)
    return scores, null


def layer_cells(A, B, cells, settings: dict, *, k: int, perms: np.ndarray, device=None) -> dict:
    """The layer atlas's CKNNA (``registry.Metric.layer_cells``): every cell and its relabelled
    null from the blocks' cached graphs (``cknna_nulls``)."""
    scores, null = cknna_nulls([b.graph for b in A], [b.graph for b in B], cells, k, perms, device=device)
    return {name: {c: (scores[c], null[c]) for c in cells} for name in settings}
