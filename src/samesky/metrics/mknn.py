"""Mutual k-nearest-neighbour alignment (the paper's metric) from cached kNN graphs, O(N k).

MKNN(A, B) = mean_i |N_k^A(i) ∩ N_k^B(i)| / k. Graph rows are sorted nearest first, so a graph
stored at k_max gives N_k as its first k columns for any k <= k_max.

Permutation null without recomputing a graph: shuffling the rows of B by ``pi`` (row i of the
shuffled B is object pi[i]) gives the graph ``inv_pi[g_b[pi]]``, so object i's overlap is
``|pi[N^A(i)] ∩ N^B(pi[i])|``: two gathers and k^2 comparisons per object, done on (k, N)
transposed copies so that every comparison runs over a contiguous row of N. With exactly tied
similarities in B, the relabelled graph keeps B's tie order where a recomputed graph would
re-break ties by the shuffled indices: both are exact kNN graphs of the shuffled data.
"""
from __future__ import annotations

import numpy as np
import torch

from .cells import BATCH_BYTES, by_a, by_b
from .device import pick_device
from .knn import knn_graph


def graph_prefix(indices, k: int, where: str = "kNN graph") -> np.ndarray:
    """The k nearest neighbours of every row of a stored graph (nearest first), as int64."""
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[1] < k:
        raise ValueError(f"{where}: has k_max={indices.shape[-1]} < requested k={k}")
    return indices[:, :k].astype(np.int64, copy=False)


def transposed(indices: np.ndarray) -> np.ndarray:
    """(N, k) neighbour rows -> contiguous (k, N) int32 (halves the memory traffic of the null)."""
    return np.ascontiguousarray(indices.T, dtype=np.int32 if indices.shape[0] < 2**31 else np.int64)


def matches(aT: np.ndarray, bT: np.ndarray) -> np.ndarray:
    """(k, N) bool: whether A's p-th neighbour of object i is among B's neighbours of i.

    Rows of a graph hold distinct neighbours, so each True is one element of the intersection.
    """
    hit = aT == bT[0]
    for q in range(1, bT.shape[0]):
        hit |= aT == bT[q]
    return hit


def overlaps(ga, gb, k: int) -> np.ndarray:
    """Per-object |N_k^A(i) ∩ N_k^B(i)| (int) from two graphs of the same objects, same order."""
    a, b = graph_prefix(ga, k, "graph A"), graph_prefix(gb, k, "graph B")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"graphs have {a.shape[0]} and {b.shape[0]} rows; they must describe the same objects")
    return matches(transposed(a), transposed(b)).sum(axis=0)


def mknn_from_graphs(ga, gb, k: int) -> float:
    """MKNN score from two cached graphs (rows = the same objects in the same order)."""
    counts = overlaps(ga, gb, k)
    return float(counts.sum() / (k * len(counts)))


def mknn(Za, Zb, k: int = 10, *, device=None, chunk_size: int | None = None) -> float:
    """MKNN of two embeddings of the same objects (row i = same object; dimensions may differ)."""
    ga, _ = knn_graph(Za, k, device=device, chunk_size=chunk_size)
    gb = ga if Zb is Za else knn_graph(Zb, k, device=device, chunk_size=chunk_size)[0]
    return mknn_from_graphs(ga, gb, k)


class MknnEstimator:
    """MKNN of one aligned pair, with O(N k) null draws."""

    def __init__(self, ga, gb, k: int):
        self.k = k
        self.aT = transposed(graph_prefix(ga, k, "graph A"))
        self.bT = transposed(graph_prefix(gb, k, "graph B"))
        self.counts = matches(self.aT, self.bT).sum(axis=0)

    def score(self) -> float:
        return float(self.counts.sum() / (self.k * len(self.counts)))

    def null(self, pi: np.ndarray) -> float:
        """Score with side B's rows shuffled by ``pi`` (graph relabelled, not recomputed)."""
        p = pi.astype(self.aT.dtype, copy=False)
        hits = matches(np.take(p, self.aT), np.take(self.bT, p, axis=1))
        return np.count_nonzero(hits) / (self.k * len(pi))


def mknn_nulls(graphs_a, graphs_b, cells, k: int, perms: np.ndarray, *, device=None, batched: bool | None = None
               ) -> tuple[dict, dict[tuple[int, int], np.ndarray]]:
    """MKNN of every cell (i, j) of graphs_a[i] x graphs_b[j] (neighbour indices, (n, >= k)) and
    its relabelled null over the rows of ``perms`` (``MknnEstimator.null``: object o meets side
    B's graph row pi[o], relabelled): for draw pi and cell (i, j), |pi[N^A_i(o)] ∩ N^B_j(pi[o])|
    summed over objects o, as integers, so each draw equals the estimator's exactly. A draw's
    relabelled graphs are made once per block, not per cell.

    ``batched`` (default: on a GPU) runs a batch of draws at once in torch; on a CPU numpy's
    comparisons are ~10x faster than torch's, so draws go one at a time there."""
    dev = pick_device(device)
    batched = dev.type != "cpu" if batched is None else batched
    aT = [transposed(graph_prefix(g, k, "graph A")) for g in graphs_a]  # (k, n) int32, contiguous rows
    bT = [transposed(graph_prefix(g, k, "graph B")) for g in graphs_b]
    n = aT[0].shape[1]
    scores = {(i, j): int(np.count_nonzero(matches(aT[i], bT[j]))) / (k * n) for i, j in cells}
    null = {c: np.empty(len(perms)) for c in cells}
    used_b = sorted({j for _, j in cells})
    if not batched:
        for d, pi in enumerate(perms):
            p = pi.astype(aT[0].dtype, copy=False)
            pb = {j: np.take(bT[j], p, axis=1) for j in used_b}
            for i, js in by_a(cells).items():
                pa = np.take(p, aT[i])
                for j in js:
                    null[(i, j)][d] = np.count_nonzero(matches(pa, pb[j])) / (k * n)
        return scores, null
    with torch.inference_mode():
        ta = [torch.as_tensor(a).to(dev).long() for a in aT]  # index tensors
        tb = [torch.as_tensor(b).to(dev) for b in bT]  # gathered values
        batch = max(1, min(len(perms), BATCH_BYTES[dev.type] // (12 * k * n)))  # pa, pb, hit, a compare
        for s in range(0, len(perms), batch):
            P = torch.as_tensor(perms[s : s + batch]).to(dev)
            P64 = P.long()
            for j, is_ in by_b(cells).items():
                pb = tb[j][:, P64]  # (k, D, n): B's row pi[o], in B's labels
                for i in is_:
                    pa = P[:, ta[i]]  # (D, k, n): A's neighbours of o, relabelled by pi
                    hit = pa == pb[0][:, None]
                    for q in range(1, k):
                        hit |= pa == pb[q][:, None]
                    null[(i, j)][s : s + len(P)] = hit.sum(dim=(1, 2)).cpu().numpy() / (k * n)
    return scores, null


def layer_cells(A, B, cells, settings: dict, *, k: int, perms: np.ndarray, device=None) -> dict:
    """The layer atlas's MKNN (``registry.Metric.layer_cells``): every cell and its relabelled
    null from the blocks' cached graphs (``mknn_nulls``)."""
    scores, null = mknn_nulls([b.graph[0] for b in A], [b.graph[0] for b in B], cells, k, perms, device=device)
    return {name: {c: (scores[c], null[c]) for c in cells} for name in settings}
