"""Compiled kernels of the KSG mutual information (``information.ksg_mutual_information``): exact
Chebyshev (max-norm) distances and the per-object KSG counts, in the inputs' dtype.

No fastmath: every distance is max_c |a_c - b_c| of the same float subtractions as
``torch.cdist(p=inf)``, so bit for bit its value (a maximum does not depend on the order it is taken
in), and every sum or comparison is the one ``torch`` makes. numba compiles them on first use and
caches the machine code beside this file (``cache=True``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

# Columns of a distance tile each thread fills: their transposed rows (d x 64) and the tile's slice
# (rows x 64) stay in cache while the inner loop runs over them, vectorised.
_COLS = 64


@njit(parallel=True, cache=True)
def chebyshev_rows(Z, s, idx, a, b, out):
    """out[r, j] = max_c |Z'[idx[a + r], c] - Z'[idx[j], c]| for r < b - a and every j < len(idx),
    Z' being Z with row i scaled by s[i] (s in Z's dtype: all ones to leave it as given)."""
    d, n, rows = Z.shape[1], len(idx), b - a
    head = np.empty((d, rows), Z.dtype)
    for r in range(rows):
        i = idx[a + r]
        for c in range(d):
            head[c, r] = Z[i, c] * s[i]
    for q in prange((n + _COLS - 1) // _COLS):
        j0 = q * _COLS
        m = min(_COLS, n - j0)
        cols = np.empty((d, m), Z.dtype)
        for jj in range(m):
            j = idx[j0 + jj]
            for c in range(d):
                cols[c, jj] = Z[j, c] * s[j]
        acc = np.zeros((rows, m), Z.dtype)
        for c in range(d):
            for r in range(rows):
                x = head[c, r]
                for jj in range(m):
                    acc[r, jj] = max(acc[r, jj], abs(cols[c, jj] - x))
        out[:, j0 : j0 + m] = acc


@njit(parallel=True, cache=True)
def ksg_counts(Dx, rx, cx, Dy, ry, cy, k, tiny, nx, ny):
    """For each object i < len(rx), over the objects j < len(cx) (itself included, at distance 0):
    its joint distances max(Dx[rx[i], cx[j]], Dy[ry[i], cy[j]]), eps_i the (k+1)-th smallest plus
    ``tiny`` (in the dtype), nx[i] / ny[i] the objects other than i with Dx / Dy <= eps_i."""
    n = len(cx)
    for i in prange(len(rx)):
        dx, dy = Dx[rx[i]], Dy[ry[i]]
        least = np.full(k + 1, np.inf, Dx.dtype)  # the k + 1 smallest joint distances, ascending
        for j in range(n):
            v = max(dx[cx[j]], dy[cy[j]])
            if v < least[k]:
                p = k
                while p > 0 and least[p - 1] > v:
                    least[p] = least[p - 1]
                    p -= 1
                least[p] = v
        eps = least[k] + tiny
        cnx, cny = 0, 0
        for j in range(n):
            cnx += dx[cx[j]] <= eps
            cny += dy[cy[j]] <= eps
        nx[i], ny[i] = cnx - 1, cny - 1
