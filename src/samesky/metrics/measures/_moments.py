"""Means and centred second moments of a pair, streamed over float64 row blocks: what the
covariance-based measures (Procrustes, CCA, shape metrics, Gaussian divergences, spectra, ridge)
need, in O(d^2) memory whatever N (two passes: means, then centred products, as numpy's
``Z - Z.mean(0)`` followed by a product)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._inputs import BLOCK_ROWS, Pair


@dataclass
class Moments:
    """n, the means, and the centred sums of products Xc'Xc, Yc'Yc, Xc'Yc (not divided by n)."""

    n: int
    mx: np.ndarray
    my: np.ndarray
    cxx: np.ndarray
    cyy: np.ndarray
    cxy: np.ndarray | None

    def cov(self, which: str) -> np.ndarray:
        """Covariance with the n - 1 divisor (numpy's np.cov)."""
        return getattr(self, which) / (self.n - 1)


def moments(p: Pair, a: int = 0, b: int | None = None, cross: bool = True) -> Moments:
    """Moments of rows [a, b) of the pair (all rows by default)."""
    b = p.n if b is None else b
    part = Pair(p.X[a:b], p.Y[a:b], None if p.sx is None else p.sx[a:b], None if p.sy is None else p.sy[a:b])
    dx, dy, n = p.X.shape[1], p.Y.shape[1], b - a
    sx, sy = np.zeros(dx), np.zeros(dy)
    for _, _, x, y in part.blocks(BLOCK_ROWS):
        sx += x.sum(axis=0)
        sy += y.sum(axis=0)
    mx, my = sx / n, sy / n
    cxx, cyy = np.zeros((dx, dx)), np.zeros((dy, dy))
    cxy = np.zeros((dx, dy)) if cross else None
    for _, _, x, y in part.blocks(BLOCK_ROWS):
        x, y = x - mx, y - my
        cxx += x.T @ x
        cyy += y.T @ y
        if cross:
            cxy += x.T @ y
    return Moments(n, mx, my, cxx, cyy, cxy)


def combined(parts: list[Moments]) -> Moments:
    """The moments of the union of row sets (Chan et al.'s pairwise update, no cancellation)."""
    n = sum(m.n for m in parts)
    mx = sum(m.n * m.mx for m in parts) / n
    my = sum(m.n * m.my for m in parts) / n
    cxx = sum(m.cxx + m.n * np.outer(m.mx - mx, m.mx - mx) for m in parts)
    cyy = sum(m.cyy + m.n * np.outer(m.my - my, m.my - my) for m in parts)
    cxy = sum(m.cxy + m.n * np.outer(m.mx - mx, m.my - my) for m in parts)
    return Moments(n, mx, my, cxx, cyy, cxy)


def padded(m: Moments) -> Moments:
    """The moments of the pair with the narrower side zero-padded to the wider's dimension."""
    d = max(len(m.mx), len(m.my))

    def pad(A, rows, cols):
        return np.pad(A, ((0, rows - A.shape[0]), (0, cols - A.shape[1])))

    return Moments(m.n, np.pad(m.mx, (0, d - len(m.mx))), np.pad(m.my, (0, d - len(m.my))),
                   pad(m.cxx, d, d), pad(m.cyy, d, d), None if m.cxy is None else pad(m.cxy, d, d))
