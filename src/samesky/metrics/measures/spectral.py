"""Spectral measures, as pu (platonic-universe 6672072, src/pu/metrics/spectral.py): Tucker
congruence, eigenspectrum distance, Riemannian distance between covariances. O(N d^2 + d^3) time
from streamed moments, O(d^2) memory beside the inputs."""
from __future__ import annotations

import numpy as np

from ._inputs import checked
from ._moments import moments

RIEMANNIAN_METRICS = ("log_euclidean", "affine_invariant")


def tucker_congruence(X, Y, *, normalize_rows: bool = False) -> float:
    """Mean |cosine| of matched columns (uncentred), pu spectral.py:12 ``tucker_congruence``.
    Similarity in [0, 1]; needs equal dimensions; an all-zero column counts 0."""
    p = checked(X, Y, normalize_rows=normalize_rows, same_dim=True, measure="tucker_congruence")
    num, xx, yy = (np.zeros(p.X.shape[1]) for _ in range(3))
    for _, _, x, y in p.blocks():
        num += np.einsum("ij,ij->j", x, y)
        xx += np.einsum("ij,ij->j", x, x)
        yy += np.einsum("ij,ij->j", y, y)
    den = np.sqrt(xx * yy)
    ok = den >= 1e-12  # pu's threshold
    return float(np.mean(np.where(ok, np.abs(num) / np.where(ok, den, 1.0), 0.0)))


def eigenspectrum(X, Y, *, normalize: bool = True, normalize_rows: bool = False) -> float:
    """L2 distance between the descending covariance eigenvalues (clipped at 0, the shorter
    spectrum zero-padded, each summing to 1 when ``normalize``), pu spectral.py:60 ``eigenspectrum``.
    Distance in [0, sqrt 2] when normalised (0: same spectrum)."""
    m = moments(checked(X, Y, normalize_rows=normalize_rows, measure="eigenspectrum"), cross=False)
    e1 = np.maximum(np.linalg.eigvalsh(m.cov("cxx"))[::-1], 0)
    e2 = np.maximum(np.linalg.eigvalsh(m.cov("cyy"))[::-1], 0)
    d = max(len(e1), len(e2))
    e1, e2 = np.pad(e1, (0, d - len(e1))), np.pad(e2, (0, d - len(e2)))
    if normalize:
        e1 = e1 / e1.sum() if e1.sum() > 1e-12 else e1
        e2 = e2 / e2.sum() if e2.sum() > 1e-12 else e2
    return float(np.linalg.norm(e1 - e2))


def riemannian(X, Y, *, metric: str = "log_euclidean", eps: float = 1e-6, normalize_rows: bool = False) -> float:
    """Distance between the covariances (n-1 divisor, + eps I as pu) on the SPD manifold,
    pu spectral.py:123 ``riemannian``: "log_euclidean" ||log S1 - log S2||_F or "affine_invariant"
    ||log(S1^-1/2 S2 S1^-1/2)||_F. Distance >= 0; needs equal dimensions.
    Matrix logarithms by symmetric eigendecomposition (pu: scipy's logm)."""
    if metric not in RIEMANNIAN_METRICS:
        raise ValueError(f"riemannian: metric={metric!r}, expected one of {list(RIEMANNIAN_METRICS)}")
    m = moments(checked(X, Y, normalize_rows=normalize_rows, same_dim=True, measure="riemannian"), cross=False)
    d = len(m.mx)
    S1, S2 = m.cov("cxx") + eps * np.eye(d), m.cov("cyy") + eps * np.eye(d)
    if metric == "log_euclidean":
        return float(np.linalg.norm(_logm(S1) - _logm(S2)))
    lam, V = np.linalg.eigh(S1)
    W = (V / np.sqrt(np.maximum(lam, eps))) @ V.T
    return float(np.linalg.norm(np.log(np.linalg.eigvalsh(W @ S2 @ W))))


def _logm(S: np.ndarray) -> np.ndarray:
    lam, V = np.linalg.eigh(S)
    return (V * np.log(lam)) @ V.T
