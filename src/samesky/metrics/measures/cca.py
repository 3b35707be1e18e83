"""Canonical-correlation measures: SVCCA (pu's variance-kept and platonic-rep's fixed-dimension
variants), PWCCA as pu, and the mean canonical correlation. From streamed moments (``_moments``):
O(N d^2 + d^3) time, O(d^2) memory beside the inputs.

The SVD reduction U S of the centred data is the data in the eigenbasis of its covariance, so
every covariance the references form from reduced data is T' C T for a d x k transform T.
"""
from __future__ import annotations

import numbers

import numpy as np

from ._inputs import checked
from ._moments import Moments, moments


def _inv_sqrt(S: np.ndarray) -> np.ndarray:
    lam, V = np.linalg.eigh(S)
    if lam.min() <= 0:
        raise ValueError("the covariance is singular (collinear or constant features, or d >= N): "
                         "canonical correlations are undefined; pass eps > 0 to regularise")
    return (V / np.sqrt(lam)) @ V.T


def _canonical(Saa: np.ndarray, Sbb: np.ndarray, Sab: np.ndarray, n: int, eps: float):
    """Canonical correlations from centred sums of products (covariances with the n-1 divisor,
    + eps I), descending and clipped to [0, 1], as pu cca.py:44 ``_cca_correlations``.
    Also returns A's whitening S_AA^-1/2 and the left singular vectors, for PWCCA."""
    Wa = _inv_sqrt(Saa / (n - 1) + eps * np.eye(len(Saa)))
    Wb = _inv_sqrt(Sbb / (n - 1) + eps * np.eye(len(Sbb)))
    U, rho, _ = np.linalg.svd(Wa @ (Sab / (n - 1)) @ Wb)
    return np.clip(rho, 0, 1), Wa, U


def _reduction(C: np.ndarray, n: int, keep, standardize: bool) -> np.ndarray:
    """T with centred Z @ T = the leading singular coordinates U S of centred Z (C = Zc'Zc):
    ``keep`` a float in (0, 1] keeps the fewest that explain that fraction of the variance
    (pu cca.py:11 ``_svd_reduce``), an int keeps that many (platonic-rep's ``cca_dim``)."""
    scale = np.ones(len(C))
    if standardize:  # platonic-rep metrics.py:132: unit (n-1) standard deviation, + 1e-8
        scale = 1 / (np.sqrt(np.diag(C) / (n - 1)) + 1e-8)
        C = C * np.outer(scale, scale)
    lam, V = np.linalg.eigh(C)
    lam, V = np.maximum(lam[::-1], 0), V[:, ::-1]
    rank = min(len(lam), n)  # U S of an N x d matrix has min(N, d) columns
    if isinstance(keep, numbers.Integral) and not isinstance(keep, bool):
        if not 1 <= keep <= rank:
            raise ValueError(f"svcca: keep={keep} dimensions, but the embedding has {rank}")
        k = int(keep)
    elif isinstance(keep, numbers.Real) and 0 < keep <= 1:
        ratio = np.cumsum(lam[:rank] / lam.sum())
        k = min(int(np.searchsorted(ratio, keep)) + 1, rank)
    else:
        raise ValueError(f"svcca: keep={keep!r} must be a variance fraction in (0, 1] or a number of dimensions")
    return scale[:, None] * V[:, :k]


def _reduced(m: Moments, keep, standardize: bool):
    Tx, Ty = _reduction(m.cxx, m.n, keep, standardize), _reduction(m.cyy, m.n, keep, standardize)
    return Tx.T @ m.cxx @ Tx, Ty.T @ m.cyy @ Ty, Tx.T @ m.cxy @ Ty


def svcca(X, Y, *, keep=0.99, standardize: bool = False, eps: float = 1e-8, normalize_rows: bool = False) -> float:
    """SVCCA (Raghu et al. 2017): mean canonical correlation of the leading singular subspaces.

    pu (platonic-universe 6672072, src/pu/metrics/cca.py:96 ``svcca``): ``keep=0.99`` of the
    variance, centred only, covariances regularised by ``eps=1e-8`` (the defaults).
    platonic-rep (dcd76ba, metrics.py:129 ``svcca``): ``keep=10`` (its ``cca_dim``),
    ``standardize=True``, ``eps=0``; it finds the subspace with the randomised
    ``torch.svd_lowrank`` and the correlations with sklearn's iterative CCA, this is the exact value
    they approximate. Similarity in [0, 1].
    """
    m = moments(checked(X, Y, normalize_rows=normalize_rows, measure="svcca"))
    rho, _, _ = _canonical(*_reduced(m, keep, standardize), m.n, eps)
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
    m = moments(checked(X, Y, normalize_rows=normalize_rows, measure="pwcca"))
    Saa, Sbb, Sab = _reduced(m, keep, False)
    rho, Wa, U = _canonical(Saa, Sbb, Sab, m.n, eps)
    A = Wa @ U
    weights = np.einsum("ij,ik,kj->j", A, Saa, A) / m.n
    if weights.sum() < 1e-12:
        return float(np.mean(rho))
    weights = weights / weights.sum()
    k = min(len(rho), len(weights))
    return float(np.sum(rho[:k] * weights[:k]))


def mean_cca(X, Y, *, eps: float = 0.0, normalize_rows: bool = False) -> float:
    """Mean of the min(d_X, d_Y) canonical correlations of X and Y, no reduction (beyond pu and
    platonic-rep; oracle: statsmodels' exact ``CanCorr``). Similarity in [0, 1]; ``eps`` > 0
    regularises the covariances (needed when d >= N or features are collinear)."""
    m = moments(checked(X, Y, normalize_rows=normalize_rows, measure="mean_cca"))
    try:
        rho, _, _ = _canonical(m.cxx, m.cyy, m.cxy, m.n, eps)
    except ValueError as err:
        raise ValueError(f"mean_cca: {err}") from None
    return float(np.mean(rho))
