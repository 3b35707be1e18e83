"""Geometric measures: orthogonal Procrustes, cosine of matched rows, Frechet (Bures-Wasserstein)
distance between Gaussians, and netrep's angular shape metric. All from streamed moments
(``_moments``): O(N d^2) time, O(d^2) memory beside the inputs.
"""
from __future__ import annotations

import numpy as np

from ._inputs import checked
from ._moments import moments, padded

UNEQUAL_DIMS = ("error", "zero_pad")


def _nuclear(M: np.ndarray) -> float:
    return float(np.linalg.svd(M, compute_uv=False).sum())


def procrustes(X, Y, *, unequal_dims: str = "error", normalize_rows: bool = False) -> float:
    """Orthogonal Procrustes distance, as pu defines it (platonic-universe 6672072,
    src/pu/metrics/geometric.py:12 ``procrustes``): centre both, divide each by its Frobenius
    norm, find the rotation R minimising ||X R - Y||_F, return that residual norm,
    sqrt(2 - 2 ||Xc' Yc||_* / (|Xc| |Yc|)).

    Distance in [0, 2] (0: equal up to rotation, translation and scale; near 0 it carries an
    absolute rounding error ~1e-8, the square root of float64's).
    ``unequal_dims``: "error" (pu: equal dimensions required) or "zero_pad" (pad the narrower
    side with zero columns, as netrep's ``LinearMetric(zero_pad=True)``; R is then a partial isometry).
    """
    if unequal_dims not in UNEQUAL_DIMS:
        raise ValueError(f"procrustes: unequal_dims={unequal_dims!r}, expected one of {list(UNEQUAL_DIMS)}")
    p = checked(X, Y, normalize_rows=normalize_rows, same_dim=unequal_dims == "error", measure="procrustes")
    m = moments(p)
    nx, ny = np.sqrt(np.trace(m.cxx)), np.sqrt(np.trace(m.cyy))
    if nx == 0 or ny == 0:
        raise ValueError("procrustes: an embedding is constant across objects (zero norm after centring)")
    return float(np.sqrt(max(2 - 2 * _nuclear(m.cxy / (nx * ny)), 0.0)))


def cosine_matched(X, Y, *, normalize_rows: bool = True) -> float:
    """Mean cosine similarity of matched rows (row i of X with row i of Y), as pu
    (geometric.py:59 ``cosine_similarity``). Similarity in [-1, 1]; needs equal dimensions.

    Cosine normalises rows by definition, so ``normalize_rows`` only changes whether zero rows
    are an error (True) or count as cosine 0 (False, pu's handling).
    """
    p = checked(X, Y, normalize_rows=normalize_rows, same_dim=True, measure="cosine_matched")
    total = 0.0
    for _, _, x, y in p.blocks():
        nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
        nx[nx == 0], ny[ny == 0] = 1.0, 1.0
        total += float(np.sum((x / nx[:, None]) * (y / ny[:, None])))
    return total / p.n


def _psd_sqrt(S: np.ndarray) -> np.ndarray:
    lam, V = np.linalg.eigh(S)
    return (V * np.sqrt(np.maximum(lam, 0))) @ V.T


def frechet(X, Y, *, normalize_rows: bool = False) -> float:
    """Frechet (2-Wasserstein) distance between Gaussians fitted to X and Y, as pu
    (geometric.py:89 ``frechet``): sqrt(|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr (S1^1/2 S2 S1^1/2)^1/2),
    covariances with the n-1 divisor; the narrower side is zero-padded (pu's choice).

    Distance >= 0 (0: equal means and covariances). The matrix square roots are taken by
    symmetric eigendecomposition (pu uses scipy's sqrtm; they agree where it is accurate).
    """
    p = checked(X, Y, normalize_rows=normalize_rows, measure="frechet")
    m = padded(moments(p, cross=False))
    diff = m.mx - m.my
    S1, S2 = m.cov("cxx"), m.cov("cyy")
    R = _psd_sqrt(S1)
    cross = np.sqrt(np.maximum(np.linalg.eigvalsh(R @ S2 @ R), 0)).sum()
    return float(np.sqrt(max(diff @ diff + np.trace(S1) + np.trace(S2) - 2 * cross, 0.0)))


def _whitener(C: np.ndarray, alpha: float, eigval_tol: float) -> np.ndarray:
    """netrep's partial whitening Z of data with centred X'X = C (X @ Z is whitened by 1 - alpha,
    total variance kept)."""
    if alpha > 1 - eigval_tol:
        return np.eye(C.shape[0])
    lam, V = np.linalg.eigh(C)
    lam = np.maximum(lam, eigval_tol)
    d = alpha + (1 - alpha) * lam**-0.5
    kept = np.sum(alpha**2 * lam + 2 * alpha * (1 - alpha) * lam**0.5 + (1 - alpha) ** 2)
    d *= np.sqrt(lam.sum() / kept)
    return (V * d) @ V.T


def shape_angular(X, Y, *, alpha: float = 1.0, normalize_rows: bool = False, eigval_tol: float = 1e-7) -> float:
    """netrep's angular shape metric (ahwillia/netrep 0186b8a, netrep/metrics/linear.py:15
    ``LinearMetric(alpha, center_columns=True, zero_pad=True, score_method="angular")`` with
    ``whiten`` at netrep/utils.py:178 and ``angular_distance`` at utils.py:114).

    Centre, partially whiten each side (alpha = 1: rotations only, the angular Procrustes
    distance; alpha = 0: full whitening, any invertible linear map, a CCA distance), align by the
    best rotation, return the angle arccos(<X Zx U, Y Zy V> / (|X Zx| |Y Zy|)).
    Distance in [0, pi/2] (0: equal up to the allowed transformations); a metric on shapes.
    The narrower side is zero-padded (alpha < 1 needed for padded sides to align fully).
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"shape_angular: alpha={alpha} must be between 0 and 1")
    p = checked(X, Y, normalize_rows=normalize_rows, measure="shape_angular")
    m = padded(moments(p))
    Zx, Zy = _whitener(m.cxx, alpha, eigval_tol), _whitener(m.cyy, alpha, eigval_tol)
    inner = _nuclear(Zx.T @ m.cxy @ Zy)
    norms = np.sqrt(np.trace(Zx.T @ m.cxx @ Zx) * np.trace(Zy.T @ m.cyy @ Zy))
    return float(np.arccos(np.clip(inner / norms, -1.0, 1.0)))
