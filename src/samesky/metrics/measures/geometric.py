"""Geometric measures: orthogonal Procrustes, cosine of matched rows, Frechet (Bures-Wasserstein)
distance between Gaussians, and netrep's angular shape metric. All O(N d^2) time, O(N d + d^2) memory.
"""
from __future__ import annotations

import numpy as np

from ._inputs import centred, padded, paired

UNEQUAL_DIMS = ("error", "zero_pad")


def procrustes(X, Y, *, unequal_dims: str = "error", normalize_rows: bool = False) -> float:
    """Orthogonal Procrustes distance, as pu defines it (platonic-universe 6672072,
    src/pu/metrics/geometric.py:12 ``procrustes``): centre both, divide each by its Frobenius
    norm, find the rotation R minimising ||X R - Y||_F, return that residual norm.

    Distance in [0, 2] (0: equal up to rotation, translation and scale).
    ``unequal_dims``: "error" (pu: equal dimensions required) or "zero_pad" (pad the narrower
    side with zero columns, as netrep's ``LinearMetric(zero_pad=True)``; R is then a partial isometry).
    """
    if unequal_dims not in UNEQUAL_DIMS:
        raise ValueError(f"procrustes: unequal_dims={unequal_dims!r}, expected one of {list(UNEQUAL_DIMS)}")
    X, Y = paired(X, Y, normalize_rows=normalize_rows, same_dim=unequal_dims == "error", measure="procrustes")
    X, Y = padded(centred(X), centred(Y))
    nx, ny = np.linalg.norm(X), np.linalg.norm(Y)
    if nx == 0 or ny == 0:
        raise ValueError("procrustes: an embedding is constant across objects (zero norm after centring)")
    X, Y = X / nx, Y / ny
    U, _, Vt = np.linalg.svd(X.T @ Y)
    return float(np.linalg.norm(X @ (U @ Vt) - Y))


def cosine_matched(X, Y, *, normalize_rows: bool = True) -> float:
    """Mean cosine similarity of matched rows (row i of X with row i of Y), as pu
    (geometric.py:59 ``cosine_similarity``). Similarity in [-1, 1]; needs equal dimensions.

    Cosine normalises rows by definition, so ``normalize_rows`` only changes whether zero rows
    are an error (True) or count as cosine 0 (False, pu's handling).
    """
    X, Y = paired(X, Y, normalize_rows=normalize_rows, same_dim=True, measure="cosine_matched")
    nx, ny = np.linalg.norm(X, axis=1), np.linalg.norm(Y, axis=1)
    nx[nx == 0], ny[ny == 0] = 1.0, 1.0
    return float(np.mean(np.sum((X / nx[:, None]) * (Y / ny[:, None]), axis=1)))


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
    X, Y = paired(X, Y, normalize_rows=normalize_rows, measure="frechet")
    X, Y = padded(X, Y)
    diff = X.mean(axis=0) - Y.mean(axis=0)
    n = X.shape[0]
    S1 = centred(X).T @ centred(X) / (n - 1)
    S2 = centred(Y).T @ centred(Y) / (n - 1)
    R = _psd_sqrt(S1)
    cross = np.sqrt(np.maximum(np.linalg.eigvalsh(R @ S2 @ R), 0)).sum()
    return float(np.sqrt(max(diff @ diff + np.trace(S1) + np.trace(S2) - 2 * cross, 0.0)))


def _whitener(X: np.ndarray, alpha: float, eigval_tol: float) -> np.ndarray:
    """netrep's partial whitening Z (X @ Z is whitened by 1 - alpha, total variance kept)."""
    if alpha > 1 - eigval_tol:
        return np.eye(X.shape[1])
    lam, V = np.linalg.eigh(X.T @ X)
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
    X, Y = paired(X, Y, normalize_rows=normalize_rows, measure="shape_angular")
    X, Y = padded(centred(X), centred(Y))
    Xw, Yw = X @ _whitener(X, alpha, eigval_tol), Y @ _whitener(Y, alpha, eigval_tol)
    U, _, Vt = np.linalg.svd(Xw.T @ Yw)
    A, B = Xw @ U, Yw @ Vt.T
    corr = np.dot(A.ravel(), B.ravel()) / (np.linalg.norm(A) * np.linalg.norm(B))
    return float(np.arccos(np.clip(corr, -1.0, 1.0)))
