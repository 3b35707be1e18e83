"""Two aligned embeddings and everything metrics derive from them, each computed at most once.

Row i of both sides is the same object. kNN graphs may come from cached files (at any
k_max >= k); otherwise they are computed on first use. A self pair (``Zb is Za``) shares
every derived quantity between its sides.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from .cknna_formula import row_mean_similarity
from .features import FeatureSpace
from .knn import knn_graph, restrict_graph

Graph = tuple[np.ndarray, np.ndarray]  # (indices (N, k) int64, similarity (N, k) float32)


class Pair:
    def __init__(self, Za, Zb, graph_a: Graph | None = None, graph_b: Graph | None = None, *, device=None,
                 invariants: tuple[dict | None, dict | None] = (None, None), memo: dict | None = None,
                 keys: tuple | None = None, source: tuple | None = None):
        """``memo``: a dict shared by pairs that share sides (the cells of the layer atlas), where
        per-side quantities (``row_means``) are kept by the side's identity, computed once: its
        ``keys`` (a layer block's, whose rows may be read again from its file) or else the array's.
        ``source``: (pair, rows) when this pair is that pair's objects ``rows`` (``subsample``),
        whose ``kept`` quantities an estimator may read for them."""
        if len(Za) != len(Zb):
            raise ValueError(f"sides have {len(Za)} and {len(Zb)} rows; row i must be the same object on both")
        self.Za, self.Zb, self.device = Za, Zb, device
        self.same = Zb is Za
        self.memo = {} if memo is None else memo
        self.keys = keys
        self._graphs = [graph_a, graph_a if self.same else graph_b]
        self._invariants = list(invariants)
        self.source = source
        self.kept = {}  # what an estimator keeps for this pair alone and its subsamples (not ``memo``)

    @property
    def n(self) -> int:
        return len(self.Za)

    @property
    def dims(self) -> tuple[int, int]:
        return self.Za.shape[1], self.Zb.shape[1]

    def per_side(self, what: str, fn) -> tuple:
        """``fn(Z)`` of each side, kept in ``memo`` under (what, the side's identity)."""
        out = []
        for side, Z in enumerate((self.Za, self.Zb)):
            key = (what, id(Z) if self.keys is None else self.keys[side])
            if key not in self.memo:
                # an array's id is kept alive with it (it cannot be reused); a key needs no array
                self.memo[key] = (Z if self.keys is None else None, fn(Z))
            out.append(self.memo[key][1])
        return tuple(out)

    def graphs(self, k: int) -> tuple[Graph, Graph]:
        """Both sides' kNN graphs with at least k columns (computed here if not given)."""
        for side, Z in enumerate((self.Za, self.Zb)):
            g = self._graphs[side]
            if g is None or g[0].shape[1] < k:
                if side == 1 and self.same:
                    self._graphs[1] = self._graphs[0]
                else:
                    self._graphs[side] = knn_graph(Z, k, device=self.device)
        return self._graphs[0], self._graphs[1]

    def subsample(self, rows: np.ndarray, k: int) -> "Pair":
        """The pair restricted to objects ``rows`` (sorted), with exact kNN graphs of those
        objects alone, restricted from this pair's graphs (``knn.restrict_graph``: only rows
        that lost too many cached neighbours are recomputed). Each object appears once, so no
        object can neighbour a copy of itself. ``k = 0``: no graphs (metrics without them)."""
        Za = self.Za[rows]
        Zb = Za if self.same else self.Zb[rows]
        source = (self, rows) if self.source is None else (self.source[0], self.source[1][rows])
        if not k:
            return Pair(Za, Zb, device=self.device, source=source)
        # A kept fraction f of the objects needs about k / f cached columns; twice that leaves
        # few rows short (registry.graph_width), and reading no more keeps each draw O(n k).
        width = -(-2 * k * self.n // len(rows))
        ga, gb = ((i[:, :width], s[:, :width]) for i, s in self.graphs(k))
        sub_a = restrict_graph(*ga, rows, Za, k)[:2]
        sub_b = sub_a if self.same else restrict_graph(*gb, rows, Zb, k)[:2]
        return Pair(Za, Zb, sub_a, sub_b, device=self.device, source=source)

    @cached_property
    def space(self) -> FeatureSpace:
        return FeatureSpace(self.Za, self.Zb, device=self.device)

    @cached_property
    def gram_invariants(self) -> tuple[dict, dict]:
        """Both sides' ``rv_null.gram_invariants`` (given, e.g. cached with the kNN graph, or computed)."""
        from .rv_null import gram_invariants

        for side, Z in enumerate((self.Za, self.Zb)):
            if self._invariants[side] is None:
                self._invariants[side] = (self._invariants[0] if side == 1 and self.same
                                          else gram_invariants(Z, device=self.device))
        return self._invariants[0], self._invariants[1]

    @cached_property
    def row_means(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean cosine similarity of each object to all objects, per side (for CKNNA's formula)."""
        return self.per_side("row_means", lambda Z: row_mean_similarity(Z, device=self.device))
