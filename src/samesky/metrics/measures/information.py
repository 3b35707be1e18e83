"""Information-theoretic measures, as pu (platonic-universe 6672072, src/pu/metrics/information.py):
KL and Jensen-Shannon divergences between fitted Gaussians, and the KSG kNN mutual information
(the project's Gaussian mutual information is ``samesky.metrics.mutual_info``)."""
from __future__ import annotations

import numpy as np
import torch
from scipy.special import digamma

from ._inputs import checked
from ._moments import moments

# Rows of a Chebyshev-distance tile in ``ksg_mutual_information`` (tile memory: rows x N x 8 bytes).
_KSG_ROWS = 128


def _gaussians(X, Y, eps: float, normalize_rows: bool, measure: str):
    """Both sides' means and covariances (n-1 divisor) + eps I, pu information.py:13
    ``_gaussian_params``, from streamed moments."""
    m = moments(checked(X, Y, normalize_rows=normalize_rows, same_dim=True, measure=measure), cross=False)
    d = len(m.mx)
    return m.mx, m.cov("cxx") + eps * np.eye(d), m.my, m.cov("cyy") + eps * np.eye(d)


def _kl(mu1, S1, mu2, S2) -> float:
    d = len(mu1)
    inv2 = np.linalg.inv(S2)
    diff = mu2 - mu1
    logdet = np.linalg.slogdet(S2)[1] - np.linalg.slogdet(S1)[1]
    return 0.5 * (np.trace(inv2 @ S1) + diff @ inv2 @ diff - d + logdet)


def gaussian_kl(X, Y, *, eps: float = 1e-6, normalize_rows: bool = False) -> float:
    """KL(N_X || N_Y) between Gaussians fitted to X and Y (covariance + eps I), pu
    information.py:39 ``kl_divergence``. Distance-like (asymmetric), >= 0 (clipped at 0 as pu),
    in nats; needs equal dimensions."""
    return float(max(_kl(*_gaussians(X, Y, eps, normalize_rows, "gaussian_kl")), 0.0))


def gaussian_js(X, Y, *, eps: float = 1e-6, normalize_rows: bool = False) -> float:
    """Jensen-Shannon divergence of fitted Gaussians, pu information.py:93 ``js_divergence``:
    the mixture M is moment-matched by a Gaussian (mean (mu1+mu2)/2, covariance
    (S1+S2)/2 + (mu1-mu2)(mu1-mu2)'/4), JS = (KL(P||M) + KL(Q||M))/2, each KL clipped at 0.
    Distance, symmetric, >= 0 in nats (not bounded by log 2, the mixture being approximated);
    needs equal dimensions."""
    mu1, S1, mu2, S2 = _gaussians(X, Y, eps, normalize_rows, "gaussian_js")
    mu_m, diff = (mu1 + mu2) / 2, mu1 - mu2
    S_m = (S1 + S2) / 2 + np.outer(diff, diff) / 4
    return float((max(_kl(mu1, S1, mu_m, S_m), 0.0) + max(_kl(mu2, S2, mu_m, S_m), 0.0)) / 2)


def ksg_mutual_information(X, Y, *, k: int = 3, normalize_rows: bool = False) -> float:
    """Kraskov-Stoegbauer-Grassberger kNN estimate of I(X; Y) in nats, as pu information.py:153
    ``mutual_information`` (k = 3): eps_i = distance to the k-th neighbour in the joint space
    under the max norm, n_x(i), n_y(i) = other objects within eps_i + 1e-10 in each marginal,
    MI = psi(k) - <psi(n_x + 1) + psi(n_y + 1)> + psi(N), clipped at 0 as pu.

    Similarity >= 0. Exact, computed in row tiles of Chebyshev distances (never an N x N
    matrix), in the inputs' dtype: O(N^2 (d_X + d_Y)) time, O(N * 128) memory.
    """
    p = checked(X, Y, normalize_rows=normalize_rows, measure="ksg_mutual_information")
    n = p.n
    if k < 1:
        raise ValueError(f"ksg_mutual_information: k={k} must be >= 1")
    k = min(k, max(1, n - 1))  # pu's clamp
    tx, ty = (_rows_as_given(Z, s) for Z, s in ((p.X, p.sx), (p.Y, p.sy)))
    nx, ny = np.empty(n), np.empty(n)
    for a in range(0, n, _KSG_ROWS):
        dx = torch.cdist(tx[a : a + _KSG_ROWS], tx, p=float("inf"))
        dy = torch.cdist(ty[a : a + _KSG_ROWS], ty, p=float("inf"))
        # the (k+1)-th smallest joint distance counting the object itself (0): the k-th neighbour
        eps = torch.kthvalue(torch.maximum(dx, dy), k + 1, dim=1).values[:, None] + 1e-10
        nx[a : a + _KSG_ROWS] = ((dx <= eps).sum(1) - 1).numpy()
        ny[a : a + _KSG_ROWS] = ((dy <= eps).sum(1) - 1).numpy()
    mi = digamma(k) - np.mean(digamma(nx + 1) + digamma(ny + 1)) + digamma(n)
    return float(max(mi, 0.0))


def _rows_as_given(Z: np.ndarray, s: np.ndarray | None) -> torch.Tensor:
    """Z in its own dtype, rows scaled by ``s`` (a copy only then)."""
    T = torch.from_numpy(np.ascontiguousarray(Z))
    return T if s is None else T * torch.from_numpy(s).to(T.dtype)[:, None]
