"""Gaussian mutual information between the top principal components of two embeddings.

What it estimates: I(U; V) in nats, where U and V are the projections of each embedding on its
own top-``components`` principal axes, under the assumption that (U, V) is jointly Gaussian:

    I = 1/2 [log det C_UU + log det C_VV - log det C_(U,V)] = -1/2 sum_i log(1 - rho_i^2),

with rho_i the canonical correlations. It measures linear dependence only (for non-Gaussian
data it is the MI of a Gaussian with the same covariance, not a bound on the true MI), it is
invariant to invertible linear maps of U and of V, and it is biased upwards by about
components^2 / (2 N) nats for independent data: read it against its permutation null.
Identical inputs (a self pair) have infinite MI; canonical correlations are clipped at
1 - 1e-9, so they score a large finite value (about 10 nats per component) instead.

PCA costs one O(N d^2) pass (shared with CKA) plus an O(d^3) eigendecomposition; afterwards a
null draw only recomputes an O(N r^2) covariance of the (N, r) scores, with the
principal axes kept from the full sample.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import solve_triangular

from .cells import BATCH_BYTES
from .device import pick_device
from .features import FeatureSpace

_CHUNK = 8192
_RHO_MAX = 1 - 1e-9


def _principal_scores(space: FeatureSpace, side: str, components: int) -> np.ndarray:
    """(N, r) whitened scores of one side on its top principal axes (near-null axes dropped)."""
    base = space.base
    Z, scatter, mean = (space.X, base.xx, space.mean_x) if side == "a" else (space.Y, base.yy, space.mean_y)
    evals, evecs = torch.linalg.eigh(scatter / space.n)
    evals, evecs = evals.flip(0)[:components], evecs.flip(1)[:, :components]
    keep = evals > evals[0] * 1e-10
    axes = (evecs[:, keep] / evals[keep].sqrt()).to(Z.device)
    parts = [(Z[s : s + _CHUNK] - mean).double() @ axes for s in range(0, space.n, _CHUNK)]
    return torch.cat(parts).cpu().numpy()


def principal_scores(Z, components: int, *, device=None) -> np.ndarray:
    """One embedding's centred principal scores, as ``MutualInfoEstimator`` computes them in any pair."""
    if len(Z) <= 2 * components:
        raise ValueError(f"mutual_info with {components} components needs more than {2 * components} objects, "
                         f"got {len(Z)}")
    return _centred(_principal_scores(FeatureSpace(Z, Z, device=device), "a", components))


def _centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(0)


def _mi_from_cov(caa: np.ndarray, cbb: np.ndarray, cab: np.ndarray) -> float:
    """-1/2 sum log(1 - rho^2) over the canonical correlations of a joint covariance."""
    la, lb = np.linalg.cholesky(caa), np.linalg.cholesky(cbb)
    m = solve_triangular(lb, solve_triangular(la, cab, lower=True).T, lower=True)
    rho = np.minimum(np.linalg.svd(m, compute_uv=False), _RHO_MAX)
    return float(-0.5 * np.log1p(-(rho**2)).sum())


class MutualInfoEstimator:
    """Gaussian MI of one aligned pair on fixed principal axes; O(N r^2) per draw."""

    def __init__(self, space: FeatureSpace, components: int):
        if components < 1:
            raise ValueError(f"components={components} must be >= 1")
        if space.n <= 2 * components:
            raise ValueError(f"mutual_info with {components} components needs more than "
                             f"{2 * components} objects, got {space.n}")
        # Scores of centred data; subtracting their mean only removes float round-off.
        u = _centred(_principal_scores(space, "a", components))
        self._set(u, u if space.same else _centred(_principal_scores(space, "b", components)))

    @classmethod
    def from_scores(cls, u: np.ndarray, v: np.ndarray) -> "MutualInfoEstimator":
        """The estimator of two sides' ``principal_scores`` (computed once per embedding when one
        side meets many others: the layer-wise stage)."""
        est = cls.__new__(cls)
        est._set(u, v)
        return est

    def _set(self, u: np.ndarray, v: np.ndarray) -> None:
        self.u, self.v = u, v
        n = len(self.u)
        self.cuu, self.cvv = self.u.T @ self.u / n, self.v.T @ self.v / n

    def score(self) -> float:
        return _mi_from_cov(self.cuu, self.cvv, self.u.T @ self.v / len(self.u))

    def null(self, pi: np.ndarray) -> float:
        """Side B shuffled: only the cross-covariance changes."""
        return _mi_from_cov(self.cuu, self.cvv, self.u.T @ self.v[pi] / len(self.u))


def layer_cells(A, B, cells, settings: dict, *, k: int, perms: np.ndarray, device=None,
                batched: bool | None = None) -> dict:
    """The layer atlas's Gaussian MI (``registry.Metric.layer_cells``): every cell and its
    permutation null, from each block's principal scores (one PCA per block, not per cell). On a
    CPU each draw is ``MutualInfoEstimator.null`` (equal to the compare job's draws); ``batched``
    (default: on a GPU) computes a batch of draws' cross-covariances as one product and their
    canonical correlations as one batched SVD in torch (equal to float round-off)."""
    return {name: _cells(A, B, cells, params["components"], perms, device, batched) for name, params in settings.items()}


def _cells(A, B, cells, components: int, perms: np.ndarray, device, batched: bool | None) -> dict:
    dev = pick_device(device)
    batched = dev.type != "cpu" if batched is None else batched
    scores_a = {i: principal_scores(A[i].Z.astype(np.float32), components, device=device) for i in {i for i, _ in cells}}
    scores_b = {j: principal_scores(B[j].Z.astype(np.float32), components, device=device) for j in {j for _, j in cells}}
    out = {}
    for i, j in cells:
        est = MutualInfoEstimator.from_scores(scores_a[i], scores_b[j])
        if not batched:
            out[(i, j)] = (est.score(), np.array([est.null(pi) for pi in perms]))
            continue
        with torch.inference_mode():
            U, V = (torch.as_tensor(x).to(dev) for x in (est.u, est.v))
            wa = torch.linalg.inv(torch.linalg.cholesky(torch.as_tensor(est.cuu).to(dev)))  # whitening
            wb = torch.linalg.inv(torch.linalg.cholesky(torch.as_tensor(est.cvv).to(dev)))
            batch = max(1, min(len(perms), BATCH_BYTES[dev.type] // (V.numel() * 8)))
            null = []
            for s in range(0, len(perms), batch):
                P = torch.as_tensor(perms[s : s + batch]).to(dev).long()
                cab = torch.einsum("nr,dns->drs", U, V[P]) / len(U)
                rho = torch.linalg.svdvals(wa @ cab @ wb.T).clamp(max=_RHO_MAX)
                null.append((-0.5 * torch.log1p(-(rho**2)).sum(1)).cpu().numpy())
        out[(i, j)] = (est.score(), np.concatenate(null) if null else np.empty(0))
    return out
