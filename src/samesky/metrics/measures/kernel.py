"""Kernel measures with Gaussian (RBF) kernels, as pu (platonic-universe 6672072,
src/pu/metrics/kernel.py): RBF CKA and MMD. Sums are accumulated over ~64 MB blocks (``_tiles``;
symmetric kernels only on and above the diagonal), never holding an N x N matrix: O(N^2 d) time,
a few blocks of memory beside the inputs.

The bandwidth default is pu's median heuristic, gamma = 1 / (2 median^2), the median over
distinct pairs at positive distance (pu ``_base.rbf_kernel``, _base.py:106). It is exact up to
``EXACT_MEDIAN_PAIRS`` pairs; beyond that pass ``gamma``, or opt in to a median estimated from
``median_sample`` random pairs.
"""
from __future__ import annotations

import numpy as np
import torch

from ._inputs import checked
from ._tiles import Pairwise, centred_sums, square_edge, symmetric_blocks, tile_rows, total

# Pairs whose distances are held at once for an exact median: 2^25 pairs (N ~ 8,200) is 256 MB.
EXACT_MEDIAN_PAIRS = 2**25
# Sampled pairs whose rows are gathered at once.
_CHUNK = 2**14


def median_gamma(Z: np.ndarray, *, median_sample: int | None = None, seed: int = 0, measure: str = "rbf") -> float:
    """pu's median-heuristic gamma = 1 / (2 m^2), m the median distance over pairs i < j at
    positive distance (1 if m < 1e-12). ``median_sample`` (opt-in, approximate): m from that many
    random pairs instead, required when N (N - 1) / 2 exceeds EXACT_MEDIAN_PAIRS."""
    return _median_gamma([(np.asarray(Z), None)], median_sample, seed, measure)


def _median_gamma(sides, median_sample: int | None, seed: int, measure: str) -> float:
    """``median_gamma`` of the rows of several (matrix, row scales or None) stacked (MMD pools X and Y)."""
    n = sum(len(Z) for Z, _ in sides)
    if median_sample is not None and median_sample < 1:
        raise ValueError(f"{measure}: median_sample={median_sample} must be a positive number of pairs")
    if median_sample is not None:
        rng = np.random.default_rng(seed)
        i, j = rng.integers(0, n, median_sample), rng.integers(0, n, median_sample)
        i, j = i[i != j], j[i != j]
        d = np.concatenate([np.linalg.norm(_gather(sides, i[a : a + _CHUNK]) - _gather(sides, j[a : a + _CHUNK]), axis=1)
                            for a in range(0, len(i), _CHUNK)])
    elif n * (n - 1) // 2 <= EXACT_MEDIAN_PAIRS:
        P = Pairwise(_gather(sides, np.arange(n)), "euclidean")
        rows = tile_rows(n)
        parts = []
        for a in range(0, n, rows):
            b = min(n, a + rows)
            upper = torch.arange(n)[None, :] > torch.arange(a, b)[:, None]
            parts.append(P.tile(a, b)[upper].numpy())
        d = np.concatenate(parts)
    else:
        raise ValueError(f"{measure}: the exact median-heuristic bandwidth needs all {n * (n - 1) // 2:,} pairwise "
                         f"distances (more than {EXACT_MEDIAN_PAIRS:,}); pass gamma, or median_sample=<pairs> "
                         "for an estimated median")
    d = d[d > 0]
    m = float(np.median(d)) if len(d) else 0.0
    return 1.0 / (2 * (m if m >= 1e-12 else 1.0) ** 2)


def _gather(sides, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of the stacked sides as float64, scaled."""
    out = np.empty((len(idx), sides[0][0].shape[1]))
    offset = 0
    for Z, s in sides:
        at = (idx >= offset) & (idx < offset + len(Z))
        local = idx[at] - offset
        out[at] = np.asarray(Z[local], np.float64) * (1.0 if s is None else s[local, None])
        offset += len(Z)
    return out


def _check_gamma(gamma, measure: str) -> None:
    if gamma is not None and not gamma > 0:
        raise ValueError(f"{measure}: gamma={gamma} must be positive (or None: the median heuristic)")


def _rbf(P: Pairwise, gamma: float, other: Pairwise | None = None):
    return lambda r0, r1, c0, c1: P.block(r0, r1, c0, c1, other).mul_(-gamma).exp_()


def rbf_cka(X, Y, *, gamma: float | None = None, median_sample: int | None = None,
            normalize_rows: bool = False) -> float:
    """CKA with Gaussian kernels exp(-gamma |x - x'|^2), pu kernel.py:17 ``cka(kernel="rbf")``:
    biased HSIC, tr(K H L H) / sqrt(tr(K H K H) tr(L H L H)); ``gamma=None`` takes each side's own
    median-heuristic gamma (``median_gamma``), a given gamma serves both.
    Similarity in [0, 1] (0 where a kernel is constant, pu's guard)."""
    p = checked(X, Y, normalize_rows=normalize_rows, measure="rbf_cka")
    _check_gamma(gamma, "rbf_cka")
    gx = gamma if gamma is not None else _median_gamma([(p.X, p.sx)], median_sample, 0, "rbf_cka")
    gy = gamma if gamma is not None else _median_gamma([(p.Y, p.sy)], median_sample, 0, "rbf_cka")
    Px, Py = Pairwise(p.X, "sqeuclidean", p.sx), Pairwise(p.Y, "sqeuclidean", p.sy)
    n = p.n
    return centred_sums(_rbf(Px, gx), _rbf(Py, gy), n).alignment()


def mmd(X, Y, *, gamma: float | None = None, median_sample: int | None = None, normalize_rows: bool = False) -> float:
    """Biased maximum mean discrepancy with a Gaussian kernel, pu kernel.py:71 ``mmd(kernel="rbf")``:
    sqrt(max(mean K_XX + mean K_YY - 2 mean K_XY, 0)); ``gamma=None`` takes the median-heuristic
    gamma of the pooled 2N rows. Distance >= 0 (0: same distribution); needs equal dimensions.
    Compares the two clouds as distributions in one space: the row pairing is not used."""
    p = checked(X, Y, normalize_rows=normalize_rows, same_dim=True, measure="mmd")
    _check_gamma(gamma, "mmd")
    if gamma is None:
        gamma = _median_gamma([(p.X, p.sx), (p.Y, p.sy)], median_sample, 0, "mmd")
    Px, Py = Pairwise(p.X, "sqeuclidean", p.sx), Pairwise(p.Y, "sqeuclidean", p.sy)
    n, b = p.n, square_edge(p.n)
    sxx = syy = sxy = 0.0
    for r0, r1, c0, c1, w in symmetric_blocks(n, b):
        sxx += w * total(_rbf(Px, gamma)(r0, r1, c0, c1))
        syy += w * total(_rbf(Py, gamma)(r0, r1, c0, c1))
    for r0 in range(0, n, b):  # K_XY is not symmetric: every block
        for c0 in range(0, n, b):
            sxy += total(_rbf(Px, gamma, Py)(r0, min(n, r0 + b), c0, min(n, c0 + b)))
    return float(np.sqrt(max((sxx + syy - 2 * sxy) / n**2, 0.0)))
