"""CKNNA (Huh et al. 2024, "The Platonic Representation Hypothesis", appendix): CKA restricted
to mutual nearest neighbours, computed from the cached kNN graphs in O(N k).

    Align(K, L) = sum_i sum_j a(i, j) (K_ij - E_l K_il) (L_ij - E_l L_il),
    a(i, j) = 1[j in knn_K(i) and j in knn_L(i) and i != j],
    CKNNA = Align(K, L) / sqrt(Align(K, K) Align(L, L)).

K and L are cosine-similarity kernels (the kernels of the kNN graphs), so K_ij for a neighbour
j is the similarity stored in the graph, and the row mean E_l K_il (over all N objects l,
i included) is x_i . mean_l(x_l) for unit-normalised rows: O(N d) once.
Align(K, K) only involves knn_K(i), so it is unchanged by a permutation of side B.
"""
from __future__ import annotations

import numpy as np
import torch

from .device import as_matrix, pick_device
from .knn import normalise_rows
from .mknn import graph_prefix, transposed

_CHUNK = 8192


def row_mean_similarity(Z, *, device=None) -> np.ndarray:
    """E_l[cos(z_i, z_l)] over all objects l, for every i: x_i . mean(x), x = unit rows."""
    dev = pick_device(device, Z)
    Z = torch.as_tensor(Z)
    parts = [normalise_rows(as_matrix(Z[s : s + _CHUNK], dev)).double() for s in range(0, len(Z), _CHUNK)]
    mean = sum(p.sum(0) for p in parts) / len(Z)
    return torch.cat([p @ mean for p in parts]).cpu().numpy()


class CknnaFormulaEstimator:
    """CKNNA of one aligned pair from its graphs (indices, similarities) and row means."""

    def __init__(self, graph_a, graph_b, mean_a: np.ndarray, mean_b: np.ndarray, k: int):
        (ia, sa), (ib, sb) = graph_a, graph_b
        self.k = k
        self.aT = transposed(graph_prefix(ia, k, "graph A"))
        self.bT = transposed(graph_prefix(ib, k, "graph B"))
        # Centred similarities of the k neighbours, transposed to (k, N) like the indices.
        self.ca = np.ascontiguousarray((np.asarray(sa, np.float64)[:, :k] - mean_a[:, None]).T)
        self.cb = np.ascontiguousarray((np.asarray(sb, np.float64)[:, :k] - mean_b[:, None]).T)
        self.kk = (self.ca**2).sum(0)  # per-object terms of Align(K, K)
        self.ll = (self.cb**2).sum(0)
        self.kl = self._cross(self.aT, self.bT, self.cb, per_object=True)
        if self.kk.sum() <= 0 or self.ll.sum() <= 0:
            raise ValueError("CKNNA is undefined: an embedding's neighbour similarities all equal their row means")

    def _cross(self, a_idx, b_idx, b_centred, per_object=False):
        """Align(K, L) terms: sum over matched neighbours (A's p-th == B's q-th) of ca * cb."""
        n = a_idx.shape[1]
        out = np.zeros(n) if per_object else 0.0
        for q in range(b_idx.shape[0]):
            hit = np.flatnonzero(a_idx == b_idx[q])
            obj = hit % n
            terms = self.ca.flat[hit] * b_centred[q, obj]
            out = out + (np.bincount(obj, terms, minlength=n) if per_object else terms.sum())
        return out

    def _ratio(self, kl: float, kk: float, ll: float) -> float:
        return float(kl / np.sqrt(kk * ll))

    def score(self) -> float:
        return self._ratio(self.kl.sum(), self.kk.sum(), self.ll.sum())

    def null(self, pi: np.ndarray) -> float:
        """Side B's rows shuffled by ``pi``: object i meets B's graph row pi[i], relabelled."""
        p = pi.astype(self.aT.dtype, copy=False)
        kl = self._cross(np.take(p, self.aT), np.take(self.bT, p, axis=1), np.take(self.cb, pi, axis=1))
        return self._ratio(kl, self.kk.sum(), self.ll.sum())
