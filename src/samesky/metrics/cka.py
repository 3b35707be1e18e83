"""Centred kernel alignment with linear kernels (Kornblith et al. 2019), in feature space.

Linear CKA = ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), the biased (V-statistic) HSIC ratio.

Unbiased CKA replaces each HSIC by the unbiased estimator of Song et al. (2012), as used for
CKA by Nguyen et al. (2021): with K = X X^T, L = Y Y^T, diagonals
zeroed (K~, L~),

    HSIC_u = [tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)).

It is invariant to translating X or Y, so the data are centred first; then with a_i = |xc_i|^2,
b_i = |yc_i|^2: tr(K~L~) = ||Xc^T Yc||^2 - sum a_i b_i, 1'K~1 = -sum a_i, 1'K~L~1 = sum a_i b_i:
only feature-space products and row norms, O(N d^2) time and O(d^2) memory.
The permutation null of both variants is also known in closed form (``rv_null``).
"""
from __future__ import annotations

import numpy as np
import torch

from .device import as_matrix, full_fp32, pick_device
from .features import FeatureSpace, Moments

_CHUNK = 8192


def _fro2(m) -> float:
    return float((m * m).sum())


def linear_cka_from(m: Moments) -> float:
    return linear_cka(_fro2(m.xy), _fro2(m.xx), _fro2(m.yy))


def linear_cka(xy2: float, xx2: float, yy2: float) -> float:
    """From the squared Frobenius norms of Xc^T Yc, Xc^T Xc and Yc^T Yc (the layer-wise stage
    computes the self terms once per block)."""
    return xy2 / np.sqrt(xx2 * yy2)


def _hsic_u(cross_fro2: float, sum_ab: float, sum_a: float, sum_b: float, n: float) -> float:
    return (cross_fro2 - sum_ab + sum_a * sum_b / ((n - 1) * (n - 2)) - 2 * sum_ab / (n - 2)) / (n * (n - 3))


def unbiased_cka_from(m: Moments) -> float:
    return unbiased_cka(_fro2(m.xy), _fro2(m.xx), _fro2(m.yy), m.sum_ab, m.sum_aa, m.sum_bb, m.sum_a, m.sum_b, m.n)


def unbiased_cka(xy2: float, xx2: float, yy2: float, sum_ab: float, sum_aa: float, sum_bb: float,
                 sum_a: float, sum_b: float, n: float) -> float:
    """From the squared Frobenius norms (as ``linear_cka``) and the ``Moments`` row-norm sums."""
    if n < 4:
        raise ValueError(f"unbiased CKA needs at least 4 objects, got {n:g}")
    kl = _hsic_u(xy2, sum_ab, sum_a, sum_b, n)
    kk = _hsic_u(xx2, sum_aa, sum_a, sum_a, n)
    ll = _hsic_u(yy2, sum_bb, sum_b, sum_b, n)
    if kk <= 0 or ll <= 0:
        raise ValueError("unbiased CKA is undefined: an embedding has non-positive unbiased HSIC "
                         "with itself (constant or degenerate features)")
    return kl / np.sqrt(kk * ll)


class CkaEstimator:
    """One CKA variant on a FeatureSpace; each null draw costs O(N d^2).

    ``invariants()`` (optional) returns both sides' ``rv_null.gram_invariants``; then
    ``closed_null()`` gives the exact null law without draws.
    """

    def __init__(self, space: FeatureSpace, unbiased: bool, invariants=None):
        self.space = space
        self.formula = unbiased_cka_from if unbiased else linear_cka_from
        self.variant = "unbiased" if unbiased else "linear"
        self._invariants = invariants

    def closed_null(self):
        """The null's Pearson type III law (``rv_null.ClosedNull``), or None without invariants."""
        from .rv_null import MIN_N, ClosedNull

        if self._invariants is None or self.space.n < MIN_N:
            return None
        a, b = self._invariants()
        return ClosedNull.of(a[self.variant], b[self.variant])

    def score(self) -> float:
        return self.formula(self.space.moments())

    def null(self, pi: np.ndarray) -> float:
        return self.formula(self.space.moments(pi=pi))


def _centred(block, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """A block's centred float32 copy and its column means (accumulated in float64, as
    ``features.FeatureSpace``)."""
    X = as_matrix(block.Z, dev)
    mean = sum(X[s : s + _CHUNK].double().sum(0) for s in range(0, len(X), _CHUNK)) / len(X)
    return X - mean.to(X.dtype), mean


def _self_terms(X: torch.Tensor) -> dict:
    """The self terms of both CKAs (``cka.Moments``'s) of a centred block."""
    xx = torch.zeros(X.shape[1], X.shape[1], dtype=torch.float64, device=X.device)
    with full_fp32():
        for s in range(0, len(X), _CHUNK):
            xx += (X[s : s + _CHUNK].T @ X[s : s + _CHUNK]).double()
    a = (X.double() ** 2).sum(1)
    return {"xx2": float((xx * xx).sum()), "a": a, "sum_a": float(a.sum()), "sum_aa": float((a * a).sum())}


def _cross(X: torch.Tensor, Z, mean: torch.Tensor) -> torch.Tensor:
    """Xc^T Yc in float64 (float32 products), X centred and Y = ``Z`` centred by ``mean`` chunk by
    chunk as it is multiplied: no centred copy of Z is made (the same values as ``_centred``'s)."""
    xy = torch.zeros(X.shape[1], Z.shape[1], dtype=torch.float64, device=X.device)
    shift = mean.to(torch.float32)
    with full_fp32():
        for s in range(0, len(X), _CHUNK):
            xy += (X[s : s + _CHUNK].T @ (as_matrix(Z[s : s + _CHUNK], X.device) - shift)).double()
    return xy


def layer_cells(A, B, cells, settings: dict, *, k: int, perms, device=None) -> dict:
    """The layer atlas's CKAs (``registry.Metric.layer_cells``; ``settings[name]['unbiased']``
    picks the variant): every cell with its closed-form null from each block's invariants
    (computed here for blocks whose invariants were not cached for these rows: an O(N^2 d) pass
    each). Both variants share each cell's one d_a x N x d_b product; no draws."""
    from .rv_null import ClosedNull, gram_invariants

    dev = pick_device(device)
    for block in {id(b): b for b in [*A, *B]}.values():
        if block.invariants is None:
            block.invariants = gram_invariants(block.Z.astype(np.float32), device=dev)
    mb, means = [], []
    for b in B:
        Y, mean = _centred(b, dev)
        mb.append(_self_terms(Y))
        means.append(mean)
        del Y
    out = {name: {} for name in settings}
    n = len(A[-1].Z)  # the final block's rows: held, not read
    for turn, i in enumerate(sorted({i for i, _ in cells})):
        X, _ = _centred(A[i], dev)
        ma = _self_terms(X)
        row = [j for a, j in cells if a == i]
        # every other row of cells backwards: the blocks the cache kept last are read first
        for j in row[::-1] if turn % 2 else row:
            xy = _cross(X, B[j].Z, means[j])
            xy2, sum_ab = float((xy * xy).sum()), float(ma["a"] @ mb[j]["a"])
            for name, params in settings.items():
                variant = "unbiased" if params["unbiased"] else "linear"
                score = (unbiased_cka(xy2, ma["xx2"], mb[j]["xx2"], sum_ab, ma["sum_aa"], mb[j]["sum_aa"],
                                      ma["sum_a"], mb[j]["sum_a"], n) if params["unbiased"]
                         else linear_cka(xy2, ma["xx2"], mb[j]["xx2"]))
                out[name][(i, j)] = (float(score), ClosedNull.of(A[i].invariants[variant], B[j].invariants[variant]))
    return out
