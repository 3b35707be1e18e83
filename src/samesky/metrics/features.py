"""Second moments of two aligned embeddings in feature space: O(N d^2), never an N x N Gram matrix.

CKA and the Gaussian mutual information only need X^T X, Y^T Y, X^T Y of the centred
embeddings and per-object squared norms. They are accumulated over row chunks: each chunk
product runs in the input precision (float32 embeddings: fast GEMM) and is summed into float64,
so the error does not grow with N. A permutation of side B only changes X^T Y.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .device import as_matrix, full_fp32, pick_device

_CHUNK = 8192


@dataclass
class Moments:
    """Centred second moments of one (possibly permuted) pair; float64 on CPU."""

    n: float  # number of objects
    xx: torch.Tensor  # (dA, dA) sum_i xc_i xc_i^T
    yy: torch.Tensor  # (dB, dB)
    xy: torch.Tensor  # (dA, dB) sum_i xc_i yc_i^T
    sum_a: float  # sum_i |xc_i|^2
    sum_b: float
    sum_ab: float  # sum_i |xc_i|^2 |yc_i|^2
    sum_aa: float
    sum_bb: float


class FeatureSpace:
    """Two aligned embeddings (row i = the same object) on one device, ready for moments."""

    def __init__(self, Za, Zb, *, device=None):
        self.device = pick_device(device, Za)
        dtype = torch.float64 if torch.as_tensor(Za).dtype == torch.float64 else torch.float32
        self.X = as_matrix(Za, self.device, dtype)
        self.Y = self.X if Zb is Za else as_matrix(Zb, self.device, dtype)
        if self.X.shape[0] != self.Y.shape[0]:
            raise ValueError(f"sides have {self.X.shape[0]} and {self.Y.shape[0]} rows; they must be the same objects")
        self.n = self.X.shape[0]
        self._base: Moments | None = None
        # Set with the base moments (centring of every draw's side B; scores for PCA).
        self.mean_x = self.mean_y = self._sq_a = self._sq_b = None
        self._cache: tuple[object, object, Moments] | None = None

    @property
    def same(self) -> bool:
        return self.Y is self.X

    def mean(self, Z: torch.Tensor) -> torch.Tensor:
        """Column means in float64, accumulated over row chunks."""
        total = torch.zeros(Z.shape[1], dtype=torch.float64, device=self.device)
        for s in range(0, self.n, _CHUNK):
            total += Z[s : s + _CHUNK].double().sum(0)
        return total / self.n

    def moments(self, pi: np.ndarray | None = None) -> Moments:
        """Moments of the pair, side B permuted by ``pi`` (None: as given).

        The last result is cached by identity of ``pi`` (the cache keeps it alive, so identity
        cannot be reused), so several metrics scoring the same draw share one O(N d^2) pass.
        """
        if self._cache is not None and self._cache[0] is pi:
            return self._cache[1]
        result = self.base if pi is None else self._permuted(pi)
        self._cache = (pi, result)
        return result

    @property
    def base(self) -> Moments:
        if self._base is None:
            self._base = self._accumulate()
        return self._base

    def _accumulate(self) -> Moments:
        mx = self.mean(self.X).to(self.X.dtype)
        my = mx if self.same else self.mean(self.Y).to(self.Y.dtype)
        dA, dB = self.X.shape[1], self.Y.shape[1]
        xx = torch.zeros(dA, dA, dtype=torch.float64, device=self.device)
        yy = xx if self.same else torch.zeros(dB, dB, dtype=torch.float64, device=self.device)
        xy = xx if self.same else torch.zeros(dA, dB, dtype=torch.float64, device=self.device)
        sq_a, sq_b = [], []
        with full_fp32():
            for s in range(0, self.n, _CHUNK):
                x = self.X[s : s + _CHUNK] - mx
                xx += (x.T @ x).double()
                sq_a.append((x * x).sum(1).double())
                if not self.same:
                    y = self.Y[s : s + _CHUNK] - my
                    yy += (y.T @ y).double()
                    xy += (x.T @ y).double()
                    sq_b.append((y * y).sum(1).double())
        a = torch.cat(sq_a)
        b = a if self.same else torch.cat(sq_b)
        self.mean_x, self.mean_y, self._sq_a, self._sq_b = mx, my, a, b  # permutation draws reuse all but X^T Y
        ones = torch.ones_like(a)  # the sums as dot products, as every record so far computed them (bit for bit)
        return Moments(float(ones.sum()), xx.cpu(), yy.cpu(), xy.cpu(), float(ones @ a), float(ones @ b),
                       float(ones @ (a * b)), float(ones @ (a * a)), float(ones @ (b * b)))

    def _permuted(self, pi: np.ndarray) -> Moments:
        base = self.base
        p = torch.as_tensor(pi, device=self.device)
        mx, my = self.mean_x, self.mean_y
        xy = torch.zeros(self.X.shape[1], self.Y.shape[1], dtype=torch.float64, device=self.device)
        with full_fp32():
            for s in range(0, self.n, _CHUNK):
                xy += ((self.X[s : s + _CHUNK] - mx).T @ (self.Y[p[s : s + _CHUNK]] - my)).double()
        sum_ab = float(self._sq_a @ self._sq_b[p])
        return Moments(base.n, base.xx, base.yy, xy.cpu(), base.sum_a, base.sum_b, sum_ab,
                       base.sum_aa, base.sum_bb)
