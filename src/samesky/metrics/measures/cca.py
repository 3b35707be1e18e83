"""Canonical-correlation measures: SVCCA (pu's variance-kept and platonic-rep's fixed-dimension
variants), PWCCA as pu, and the mean canonical correlation. O(N d^2 + d^3)."""
from __future__ import annotations

import numbers

import numpy as np

from ._inputs import centred, paired


def _inv_sqrt(S: np.ndarray) -> np.ndarray:
    lam, V = np.linalg.eigh(S)
    if lam.min() <= 0:
        raise ValueError("the covariance is singular (collinear or constant features, or d >= N): "
                         "canonical correlations are undefined; pass eps > 0 to regularise")
    return (V / np.sqrt(lam)) @ V.T


def _canonical(A: np.ndarray, B: np.ndarray, eps: float):
    """Canonical correlations of A and B (centred here), descending and clipped to [0, 1], with
    eps I added to both covariances (n-1 divisor), as pu cca.py:44 ``_cca_correlations``.
    Also returns A's whitening S_AA^-1/2 and the left singular vectors, for PWCCA."""
    A, B = centred(A), centred(B)
    n = A.shape[0]
    Wa = _inv_sqrt(A.T @ A / (n - 1) + eps * np.eye(A.shape[1]))
    Wb = _inv_sqrt(B.T @ B / (n - 1) + eps * np.eye(B.shape[1]))
    U, rho, _ = np.linalg.svd(Wa @ (A.T @ B / (n - 1)) @ Wb)
    return np.clip(rho, 0, 1), Wa, U


def _reduce(Z: np.ndarray, keep, standardize: bool) -> np.ndarray:
    """Centred Z projected on its leading singular directions (U S): ``keep`` a float in (0, 1]
    keeps the fewest that explain that fraction of the variance (pu cca.py:11 ``_svd_reduce``),
    an int keeps that many (platonic-rep's ``cca_dim``)."""
    Z = centred(Z)
    if standardize:  # platonic-rep metrics.py:132: unit (n-1) standard deviation, + 1e-8
        Z = Z / (Z.std(axis=0, ddof=1) + 1e-8)
    U, S, _ = np.linalg.svd(Z, full_matrices=False)
    if isinstance(keep, numbers.Integral) and not isinstance(keep, bool):
        if not 1 <= keep <= len(S):
            raise ValueError(f"svcca: keep={keep} dimensions, but the embedding has {len(S)}")
        k = int(keep)
    elif isinstance(keep, numbers.Real) and 0 < keep <= 1:
        ratio = np.cumsum(S**2 / (S**2).sum())
        k = min(int(np.searchsorted(ratio, keep)) + 1, len(S))
    else:
        raise ValueError(f"svcca: keep={keep!r} must be a variance fraction in (0, 1] or a number of dimensions")
    return U[:, :k] * S[:k]


def svcca(X, Y, *, keep=0.99, standardize: bool = False, eps: float = 1e-8, normalize_rows: bool = False) -> float:
    """SVCCA (Raghu et al. 2017): mean canonical correlation of the leading singular subspaces.

    pu (platonic-universe 6672072, src/pu/metrics/cca.py:96 ``svcca``): ``keep=0.99`` of the
    variance, centred only, covariances regularised by ``eps=1e-8`` (the defaults).
    platonic-rep (dcd76ba, metrics.py:129 ``svcca``): ``keep=10`` (its ``cca_dim``),
    ``standardize=True``, ``eps=0``; it finds the subspace with the randomised
    ``torch.svd_lowrank`` and the correlations with sklearn's iterative CCA, this is the exact value
    they approximate. Similarity in [0, 1].
    """
    X, Y = paired(X, Y, normalize_rows=normalize_rows, measure="svcca")
    rho, _, _ = _canonical(_reduce(X, keep, standardize), _reduce(Y, keep, standardize), eps)
    return float(np.mean(rho))


def pwcca(X, Y, *, keep=0.99, eps: float = 1e-8, normalize_rows: bool = False) -> float:
    """PWCCA as pu defines it (cca.py:138 ``pwcca``): SVD-reduce both sides as ``svcca``, then
    weight X's canonical correlations by the variances (1/N divisor) of X's canonical variates,
    normalised over all of X's kept dimensions.

    Note pu's weights: canonical variates have unit variance by construction, so the weights are
    nearly equal (Morcos et al. 2018 weight by the variates' projection on the activations); and
    when X keeps more dimensions than Y the weights used sum to less than 1. Similarity in [0, 1],
    asymmetric.
    """
    X, Y = paired(X, Y, normalize_rows=normalize_rows, measure="pwcca")
    A = _reduce(X, keep, False)
    rho, Wa, U = _canonical(A, _reduce(Y, keep, False), eps)
    weights = np.var(A @ (Wa @ U), axis=0)
    if weights.sum() < 1e-12:
        return float(np.mean(rho))
    weights = weights / weights.sum()
    m = min(len(rho), len(weights))
    return float(np.sum(rho[:m] * weights[:m]))


def mean_cca(X, Y, *, eps: float = 0.0, normalize_rows: bool = False) -> float:
    """Mean of the min(d_X, d_Y) canonical correlations of X and Y, no reduction (the CCA
    similarity of the family surveyed by Klabunde et al. 2023, repsim). Similarity in [0, 1];
    ``eps`` > 0 regularises the covariances (needed when d >= N or features are collinear)."""
    X, Y = paired(X, Y, normalize_rows=normalize_rows, measure="mean_cca")
    try:
        rho, _, _ = _canonical(X, Y, eps)
    except ValueError as err:
        raise ValueError(f"mean_cca: {err}") from None
    return float(np.mean(rho[: min(X.shape[1], Y.shape[1])]))
