"""Row tiles of all-pairs matrices (never an N x N matrix): the machinery of the all-pairs measures.

A tile is rows [a, a + b) of a pairwise matrix (squared distances, distances, kernels) against all
N objects, a block rows [r0, r1) against [c0, c1), in torch float64; each holds about ``TILE_BYTES``.
Sums over a symmetric matrix visit only the blocks on and above the diagonal (``symmetric_blocks``),
as the kNN kernel does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TILE_BYTES = 64 * 2**20
PAIR_KINDS = ("sqeuclidean", "euclidean", "cosine", "correlation")


def tile_rows(n: int, width: int | None = None) -> int:
    return max(1, min(n, TILE_BYTES // (8 * (width or n))))


class Pairwise:
    """Tiles of one pairwise matrix of the rows of Z (``kind`` in PAIR_KINDS; cosine and
    correlation are distances 1 - cos, as scipy's pdist), rows scaled by ``s`` (normalize_rows)
    if given. Z is used in place, in its own dtype: a float32 input is multiplied in float32, the
    tile is then float64. Only "correlation" copies Z (its rows centred). The diagonal is exactly 0."""

    def __init__(self, Z: np.ndarray, kind: str, s: np.ndarray | None = None):
        if kind not in PAIR_KINDS:
            raise ValueError(f"unknown pairwise distance {kind!r}, expected one of {list(PAIR_KINDS)}")
        Z = np.ascontiguousarray(Z)
        if kind == "correlation":
            Z = Z - Z.mean(axis=1, keepdims=True)  # row scales do not change a correlation
            s = None
        self.Z, self.kind, self.n = torch.from_numpy(Z), kind, Z.shape[0]
        sq = torch.from_numpy(_row_sq(Z))
        if kind in ("cosine", "correlation"):
            if (sq == 0).any():
                raise ValueError(f"{kind} distance is undefined for {int((sq == 0).sum())} rows of zero norm"
                                 + (" after centring" if kind == "correlation" else ""))
            self.scale, self.sq = 1 / sq.sqrt(), None
        else:
            self.scale = None if s is None else torch.from_numpy(s)
            self.sq = sq if s is None else sq * self.scale**2

    def tile(self, a: int, b: int, other: "Pairwise | None" = None) -> torch.Tensor:
        """Rows [a, b) of this set against all rows of ``other`` (default: itself), as float64."""
        return self.block(a, b, 0, (other or self).n, other).double()

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """The entries (i_k, j_k), i_k != j_k, summed in float64 from those rows alone (differences
        for the Euclidean kinds, not the tiles' expansion): what a sampled estimator reads. numpy
        gathers and einsum: 4x torch's index_select at 8,192 pairs of 1536 dimensions."""
        Z = self.Z.numpy()
        if self.kind in ("cosine", "correlation"):
            scale = self.scale.numpy()
            return 1 - np.einsum("ij,ij->i", Z[i], Z[j], dtype=np.float64) * scale[i] * scale[j]
        A, B = Z[i].astype(np.float64), Z[j].astype(np.float64)
        if self.scale is not None:
            scale = self.scale.numpy()
            A *= scale[i, None]
            B *= scale[j, None]
        A -= B
        sq = np.einsum("ij,ij->i", A, A)
        return sq if self.kind == "sqeuclidean" else np.sqrt(sq)

    def block(self, r0: int, r1: int, c0: int, c1: int, other: "Pairwise | None" = None) -> torch.Tensor:
        """Rows [r0, r1) of this set against rows [c0, c1) of ``other`` (default: itself), in the
        inputs' dtype (float32 inputs: float32 blocks, summed by the callers in float64), computed
        in place: one block of memory."""
        o = other or self
        rows = self.Z[r0:r1] if self.Z.dtype == o.Z.dtype else self.Z[r0:r1].to(o.Z.dtype)
        T = rows @ o.Z[c0:c1].T
        if self.scale is not None:
            T.mul_(self.scale[r0:r1, None].to(T.dtype))
        if o.scale is not None:
            T.mul_(o.scale[None, c0:c1].to(T.dtype))
        if self.kind in ("cosine", "correlation"):
            T.neg_().add_(1)
        else:
            T.mul_(-2).add_(self.sq[r0:r1, None].to(T.dtype)).add_(o.sq[None, c0:c1].to(T.dtype)).clamp_(min=0)
            if self.kind == "euclidean":
                T.sqrt_()
        if other is None:  # the objects in both ranges: exactly 0 to themselves
            lo, hi = max(r0, c0), min(r1, c1)
            if lo < hi:
                at = torch.arange(lo, hi)
                T[at - r0, at - c0] = 0
        return T


def inner(A: torch.Tensor, B: torch.Tensor) -> float:
    """sum(A o B) of two blocks (one BLAS dot, no temporary)."""
    return float(torch.dot(A.reshape(-1), B.reshape(-1)))


def total(A: torch.Tensor) -> float:
    """sum(A) of a block: row sums in its dtype, their sum in float64 (no float64 copy)."""
    return float(A.sum(1).double().sum())


def symmetric_blocks(n: int, b: int):
    """Square blocks (r0, r1, c0, c1, weight) on and above the diagonal of a symmetric N x N
    matrix: an off-diagonal block stands for its transpose too (weight 2), so sums over the whole
    matrix cost half the products."""
    for r0 in range(0, n, b):
        for c0 in range(r0, n, b):
            yield r0, min(n, r0 + b), c0, min(n, c0 + b), 1 if r0 == c0 else 2


def square_edge(n: int) -> int:
    """Edge of the square blocks: about TILE_BYTES per float64 block."""
    return max(1, min(n, int((TILE_BYTES // 8) ** 0.5)))


def _row_sq(Z: np.ndarray) -> np.ndarray:
    """Squared L2 norm of each row, in float64 row blocks."""
    out = np.empty(Z.shape[0])
    for a in range(0, Z.shape[0], 4096):
        block = np.asarray(Z[a : a + 4096], np.float64)
        out[a : a + 4096] = np.einsum("ij,ij->i", block, block)
    return out


@dataclass
class CentredSums:
    """sum(K o L), sum(K o K), sum(L o L) and the row sums of K and L, for HSIC-type statistics:
    tr(K H L H) = sum(K o L) - 2/n <rK, rL> + sum(K) sum(L) / n^2 (H the centring matrix)."""

    kl: float
    kk: float
    ll: float
    rk: np.ndarray
    rl: np.ndarray

    @property
    def n(self) -> int:
        return len(self.rk)

    def centred(self, which: str) -> float:
        s, a, b = {"kl": (self.kl, self.rk, self.rl), "kk": (self.kk, self.rk, self.rk),
                   "ll": (self.ll, self.rl, self.rl)}[which]
        n = self.n
        return float(s - 2 / n * (a @ b) + a.sum() * b.sum() / n**2)

    def alignment(self) -> float:
        """tr(KHLH) / sqrt(tr(KHKH) tr(LHLH)); 0 where the denominator is < 1e-12 (pu's guard)."""
        den = np.sqrt(self.centred("kk") * self.centred("ll"))
        return 0.0 if den < 1e-12 else self.centred("kl") / den


def centred_sums(kernel_x, kernel_y, n: int) -> CentredSums:
    """Accumulate ``CentredSums`` of symmetric K and L from their blocks ``kernel_x(r0, r1, c0, c1)``
    on and above the diagonal (``symmetric_blocks``)."""
    kl = kk = ll = 0.0
    rk, rl = np.zeros(n), np.zeros(n)
    for r0, r1, c0, c1, w in symmetric_blocks(n, square_edge(n)):
        K, L = kernel_x(r0, r1, c0, c1), kernel_y(r0, r1, c0, c1)
        kl += w * inner(K, L)
        kk += w * inner(K, K)
        ll += w * inner(L, L)
        rk[r0:r1] += K.sum(1).double().numpy()
        rl[r0:r1] += L.sum(1).double().numpy()
        if w == 2:
            rk[c0:c1] += K.sum(0).double().numpy()
            rl[c0:c1] += L.sum(0).double().numpy()
    return CentredSums(kl, kk, ll, rk, rl)
