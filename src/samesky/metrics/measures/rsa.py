"""Representational similarity analysis (Kriegeskorte et al. 2008) as pu defines it
(platonic-universe 6672072, src/pu/metrics/neighbors.py:131 ``rsa``): the RDM is scipy's
``pdist`` of the rows (default cosine distance), the score the Spearman or Pearson correlation
of the two RDMs' N (N - 1) / 2 entries.

Pearson is exact at any N from tiled sums (never an N x N matrix). Spearman needs the ranks of
all N (N - 1) / 2 distances: exact up to ``EXACT_SPEARMAN_PAIRS`` pairs (N ~ 5,800); beyond that
it refuses unless ``sample_pairs`` opts in to the estimate on that many random pairs.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata

from ._inputs import checked
from ._tiles import PAIR_KINDS, Pairwise, inner, square_edge, symmetric_blocks, tile_rows, total

# Two float64 RDMs plus their ranks: 2^24 pairs take ~0.5 GB.
EXACT_SPEARMAN_PAIRS = 2**24
RSA_METHODS = ("spearman", "pearson")


def _condensed(P: Pairwise) -> np.ndarray:
    """The RDM's upper triangle in pdist order (row-major i < j)."""
    n, rows, parts = P.n, tile_rows(P.n), []
    for a in range(0, n, rows):
        b = min(n, a + rows)
        upper = torch.arange(n)[None, :] > torch.arange(a, b)[:, None]
        parts.append(P.tile(a, b)[upper].numpy())
    return np.concatenate(parts)


def _pearson(u: np.ndarray, v: np.ndarray) -> float:
    u, v = u - u.mean(), v - v.mean()
    return float(u @ v / np.sqrt((u @ u) * (v @ v)))


def _tiled_pearson(Px: Pairwise, Py: Pairwise) -> float:
    """Pearson correlation over pairs i != j from blocks on and above the diagonal (each pair
    counted twice: the same correlation as over i < j)."""
    n = Px.n
    s = np.zeros(5)  # sum u, sum v, sum u^2, sum v^2, sum uv
    for r0, r1, c0, c1, w in symmetric_blocks(n, square_edge(n)):
        U, V = Px.block(r0, r1, c0, c1), Py.block(r0, r1, c0, c1)  # diagonal exactly 0: adds nothing
        s += w * np.array([total(U), total(V), inner(U, U), inner(V, V), inner(U, V)])
    m = n * (n - 1)
    cov = s[4] - s[0] * s[1] / m
    return float(cov / np.sqrt((s[2] - s[0] ** 2 / m) * (s[3] - s[1] ** 2 / m)))


def rsa(X, Y, *, method: str = "spearman", metric: str = "cosine", sample_pairs: int | None = None,
        seed: int = 0, normalize_rows: bool = False) -> float:
    """Correlation of the two RDMs (``metric`` a pdist distance: cosine, correlation, euclidean,
    sqeuclidean), Spearman (average ranks for ties, as scipy's spearmanr) or Pearson.
    Similarity in [-1, 1].

    ``sample_pairs`` (opt-in, approximate): the correlation over that many pairs i < j drawn
    uniformly with replacement (seeded), required for Spearman above EXACT_SPEARMAN_PAIRS pairs.
    """
    if method not in RSA_METHODS:
        raise ValueError(f"rsa: method={method!r}, expected one of {list(RSA_METHODS)}")
    if metric not in PAIR_KINDS:
        raise ValueError(f"rsa: metric={metric!r}, expected one of {list(PAIR_KINDS)}")
    p = checked(X, Y, normalize_rows=normalize_rows, measure="rsa", min_rows=3)
    n = p.n
    pairs = n * (n - 1) // 2
    if sample_pairs is not None:
        if sample_pairs < 3:
            raise ValueError(f"rsa: sample_pairs={sample_pairs} must be at least 3 pairs (or None: exact)")
        u, v = _sampled(p, metric, sample_pairs, seed)
    elif method == "pearson":
        return _tiled_pearson(Pairwise(p.X, metric, p.sx), Pairwise(p.Y, metric, p.sy))
    elif pairs <= EXACT_SPEARMAN_PAIRS:
        u, v = _condensed(Pairwise(p.X, metric, p.sx)), _condensed(Pairwise(p.Y, metric, p.sy))
    else:
        raise ValueError(f"rsa: exact Spearman needs the ranks of all {pairs:,} pairs (more than "
                         f"{EXACT_SPEARMAN_PAIRS:,}); pass sample_pairs=<m> for the estimate on m random pairs")
    if method == "spearman":
        u, v = rankdata(u), rankdata(v)
    return _pearson(u, v)


def _sampled(p, metric: str, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    i = rng.integers(0, p.n, m)
    j = (i + rng.integers(1, p.n, m)) % p.n  # uniform over j != i
    chunk = 2**13  # pairs whose rows are gathered at once
    return tuple(np.concatenate([P.pairs(i[a : a + chunk], j[a : a + chunk]) for a in range(0, m, chunk)])
                 for P in (Pairwise(p.X, metric, p.sx), Pairwise(p.Y, metric, p.sy)))
