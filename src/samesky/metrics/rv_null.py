"""The permutation null of linear and unbiased CKA in closed form (no draws).

Linear CKA is Escoufier's RV coefficient of the centred features: with W = Xc Xc^T (N x N,
symmetric, rows summing to 0), CKA = T / sqrt(tr Wx^2 tr Wy^2), T = tr(Wx P Wy P^T), and a
permutation P of side B changes only T. Unbiased CKA has the same form with W the U-centred
Gram matrix (Szekely and Rizzo 2014: zero diagonal, rows summing to 0; <Kx^U, Ky^U> / (N(N-3))
is the unbiased HSIC), so both share one null.

The first three moments of T over all N! permutations are exact functions of nine invariants
of each side (Kazi-Aoual, Hitier, Sabatier and Lebreton 1995, CSDA 20:643; used for RV tests by
Josse, Pages and Husson 2008, CSDA 53:82): N, tr W, tr W^2, tr W^3, sum W_ii^2, sum W_ii^3,
sum_ij W_ij^3, w' W w and sum_i W_ii (W^2)_ii (w = diag W). A Pearson type III law with those
mean, variance and skewness gives the p-value and the threshold tau; tests compare the moments
with exhaustive enumeration (exact) and the law with Monte-Carlo permutations.

Cost: the invariants of one embedding file are computed once (``gram_invariants``): all but
sum W_ij^3 in feature space, O(N d^2); sum W_ij^3 in one tiled pass over all pairs, O(N^2 d),
about the cost of the file's kNN graph, or from that graph's own tiles when the kNN job computes
both (``knn.graph_and_invariants``). A pair's null then costs O(1).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .device import as_matrix, full_fp32, pick_device

_TILE = 4096
MIN_N = 6  # the third moment divides by N (N-1) ... (N-5)


@dataclass(frozen=True)
class Invariants:
    """Permutation invariants of one symmetric N x N matrix W whose rows sum to 0."""

    n: int
    tr: float  # tr W
    tr2: float  # tr W^2
    tr3: float  # tr W^3
    s2: float  # sum_i W_ii^2
    s3: float  # sum_i W_ii^3
    u: float  # sum_ij W_ij^3
    b: float  # w' W w, w = diag W
    r: float  # sum_i W_ii (W^2)_ii

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "invariants") -> "Invariants":
        try:
            return cls(**{f: (int(d[f]) if f == "n" else float(d[f])) for f in cls.__dataclass_fields__})
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: malformed Gram invariants {d!r} ({err})") from None


def _centred(Z, device) -> torch.Tensor:
    """Centred copy in the input precision (float32 embeddings: fast tile products)."""
    dtype = torch.float64 if torch.as_tensor(Z).dtype == torch.float64 else torch.float32
    X = as_matrix(Z, device, dtype)
    return X - X.double().mean(0).to(dtype)


def _chunked(X: torch.Tensor, fn, combine) -> torch.Tensor:
    """``combine`` of ``fn`` over row chunks, each product in the input precision (float32
    embeddings: fast GEMM, as the score's own moments), results in float64."""
    with full_fp32():
        return combine([fn(X[s : s + _TILE]).double() for s in range(0, X.shape[0], _TILE)])


def _cube_sums(X: torch.Tensor, Xd: torch.Tensor, u: torch.Tensor, d: torch.Tensor, w2_diag: torch.Tensor,
               xu: torch.Tensor, off: float | None = None) -> tuple[float, float]:
    """(sum_ij G_ij^3, sum_ij W_ij^3) for G = X X^T and its U-centred form W = G + u_i + u_j off the
    diagonal, 0 on it (``gram_invariants``' Xd = X in float64, d = diag G, (G^2)_ii, X^T u). One all-pairs pass, for the off-diagonal sum of G_ij^3 only: tiles on and
    above the diagonal (G is symmetric), products and cubes in the input precision, each tile's
    sum in float64. The diagonal is d (float64); W's sum is that pass plus O(N d) terms, from
    (g + u_i + u_j)^3 expanded: sum_{i!=j} g^2 u_i = sum_i u_i ((G^2)_ii - d_i^2), sum_{i!=j} g u_i^2 =
    sum_i u_i^2 ((G 1)_i - d_i), sum_{i!=j} g u_i u_j = |X^T u|^2 - sum_i d_i u_i^2. Without a float64
    tile and a second cube per pair, ``gram_invariants`` took 0.75x the CPU time at N = 20,000,
    d = 1536 and 0.33x at N = 9,000, d = 64 (one thread), as close to float64 as before. ``off``: that
    pass's sum, when already known (summed from the kNN graph's tiles: ``knn.graph_and_invariants``)."""
    n = X.shape[0]
    if off is None:
        off = 0.0
        with full_fp32():
            for i0 in range(0, n, _TILE):
                for j0 in range(i0, n, _TILE):
                    g = X[i0 : i0 + _TILE] @ X[j0 : j0 + _TILE].T
                    if i0 == j0:
                        g.fill_diagonal_(0)
                    off += float(torch.sum(g.pow_(3), dtype=torch.float64)) * (1 if i0 == j0 else 2)
    g1 = Xd @ Xd.sum(0)  # G 1: zero up to round-off for centred X
    u2, su, su2, su3 = u * u, float(u.sum()), float((u * u).sum()), float((u**3).sum())
    squares = 2 * float(u @ (w2_diag - d * d))  # sum_{i!=j} g^2 (u_i + u_j)
    linear = 2 * float(u2 @ (g1 - d)) + 2 * (float(xu @ xu) - float(d @ u2))  # sum_{i!=j} g (u_i + u_j)^2
    shifts = 2 * n * su3 + 6 * su2 * su - 8 * su3  # sum_{i!=j} (u_i + u_j)^3
    return off + float((d**3).sum()), off + 3 * squares + 3 * linear + shifts


def _tr2_tr3(m: torch.Tensor) -> tuple[float, float]:
    """(tr m^2, tr m^3) with one matrix product."""
    m2 = m @ m
    return float((m * m.T).sum()), float((m2 * m.T).sum())


def gram_invariants(Z, *, device=None, off_cube: float | None = None) -> dict[str, Invariants]:
    """{'linear': invariants of Xc Xc^T, 'unbiased': of the U-centred Gram matrix} of one embedding.

    Two O(N d^2) products (X^T X and X (X^T X); input precision, float64 sums), O(d^3) traces in
    float64, and one tiled all-pairs pass for both cube sums (skipped when ``off_cube``, its sum
    sum_{i != j} (Xc Xc^T)_ij^3, is given); no N x N matrix is held.
    """
    dev = pick_device(device, Z)
    X = _centred(Z, dev)
    n = X.shape[0]
    if n < MIN_N:
        raise ValueError(f"the closed-form CKA null needs at least {MIN_N} objects, got {n}")
    Xd = X.double()
    C = _chunked(X, lambda x: x.T @ x, sum)
    d = (Xd * Xd).sum(1)  # diag of G = Xc Xc^T
    Cx = C.to(X.dtype)
    w2_diag = _chunked(X, lambda x: ((x @ Cx).double() * x.double()).sum(1), torch.cat)  # (G^2)_ii
    xd = Xd.T @ d
    s = float(d.sum())
    # U-centred: W = G + diag(e) + u 1' + 1 u' (zero diagonal) = A + diag(e), with A = Zu M Zu',
    # Zu = [Xc, u, 1], M = diag(I, [[0, 1], [1, 0]]): tr W^2, tr W^3 from (d + 2)-square
    # products plus diagonals: tr(A^2 E) = sum e_i (A^2)_ii, tr(A E^2) = sum e_i^2 A_ii.
    u = d / (n - 2) - s / (2 * (n - 1) * (n - 2))
    e = s / ((n - 1) * (n - 2)) - d * n / (n - 2)
    xu = Xd.T @ u
    gram = torch.zeros(C.shape[0] + 2, C.shape[0] + 2, dtype=torch.float64, device=C.device)
    gram[:-2, :-2] = C
    gram[:-2, -2] = gram[-2, :-2] = xu  # X^T 1 = 0: centred
    gram[-2, -2], gram[-2, -1], gram[-1, -1] = u @ u, u.sum(), n
    gram[-1, -2] = gram[-2, -1]
    M = torch.eye(gram.shape[0], dtype=torch.float64, device=C.device)
    M[-2:, -2:] = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    a_diag = d + 2 * u
    a2_diag = w2_diag + 2 * (Xd @ xu) + n * u**2 + 2 * u * u.sum() + u @ u
    tr2_a, tr3_a = _tr2_tr3(M @ gram)
    tr2 = tr2_a + 2 * float(e @ a_diag) + float((e**2).sum())
    tr3 = tr3_a + 3 * float(e @ a2_diag) + 3 * float((e**2) @ a_diag) + float((e**3).sum())
    cube_lin, cube_unb = _cube_sums(X, Xd, u, d, w2_diag, xu, off_cube)
    c_tr2, c_tr3 = _tr2_tr3(C)
    linear = Invariants(n, s, c_tr2, c_tr3, float((d**2).sum()), float((d**3).sum()), cube_lin,
                        float(xd @ xd), float(d @ w2_diag))
    unbiased = Invariants(n, 0.0, tr2, tr3, 0.0, 0.0, cube_unb, 0.0, 0.0)
    return {"linear": linear, "unbiased": unbiased}


def invariants_record(Z, *, device=None, off_cube: float | None = None) -> dict:
    """``gram_invariants`` as plain JSON-ready dicts (cached in the kNN graph file's provenance)."""
    return {kind: inv.to_dict() for kind, inv in gram_invariants(Z, device=device, off_cube=off_cube).items()}


def _third_raw_moment(x: Invariants, y: Invariants) -> float:
    """E[T^3] over all permutations (Kazi-Aoual et al. 1995), as a sum of terms symmetric in x, y."""
    n = float(x.n)

    def sym(f):
        return f(x, y) + f(y, x)

    total = (
        n**2 * (n + 1) * (n**2 + 15 * n - 4) * x.s3 * y.s3
        + 4 * (n**4 - 8 * n**3 + 19 * n**2 - 4 * n - 16) * x.u * y.u
        + 24 * (n**2 - n - 4) * sym(lambda a, b: a.u * b.b)
        + 6 * (n**4 - 8 * n**3 + 21 * n**2 - 6 * n - 24) * x.b * y.b
        + 12 * (n**4 - n**3 - 8 * n**2 + 36 * n - 48) * x.r * y.r
        + 12 * (n**3 - 2 * n**2 + 9 * n - 12) * sym(lambda a, b: a.tr * a.s2 * b.r)
        + 3 * (n**4 - 4 * n**3 - 2 * n**2 + 9 * n - 12) * x.tr * y.tr * x.s2 * y.s2
        + 24 * (n**3 - 3 * n**2 - 2 * n + 8) * sym(lambda a, b: a.r * b.u)
        + 24 * (n**3 - 2 * n**2 - 3 * n + 12) * sym(lambda a, b: a.r * b.b)
        + 12 * (n**2 - n + 4) * sym(lambda a, b: a.tr * a.s2 * b.u)
        + 6 * (2 * n**3 - 7 * n**2 - 3 * n + 12) * sym(lambda a, b: a.tr * a.s2 * b.b)
        - 2 * n * (n - 1) * (n**2 - n + 4) * sym(lambda a, b: (2 * a.u + 3 * a.b) * b.s3)
        - 3 * n * (n - 1) ** 2 * (n + 4) * sym(lambda a, b: (a.tr * a.s2 + 4 * a.r) * b.s3)
        + 2 * n * (n - 1) * (n - 2) * sym(lambda a, b: (a.tr**3 + 6 * a.tr * a.tr2 + 8 * a.tr3) * b.s3)
        + x.tr**3 * ((n**3 - 9 * n**2 + 23 * n - 14) * y.tr**3 + 6 * (n - 4) * y.tr * y.tr2 + 8 * y.tr3)
        + 6 * x.tr * x.tr2 * ((n - 4) * y.tr**3 + (n**3 - 9 * n**2 + 24 * n - 14) * y.tr * y.tr2 + 4 * (n - 3) * y.tr3)
        + 8 * x.tr3 * (y.tr**3 + 3 * (n - 3) * y.tr * y.tr2 + (n**3 - 9 * n**2 + 26 * n - 22) * y.tr3)
        - 16 * sym(lambda a, b: a.tr**3 * b.u)
        - 6 * (2 * n**2 - 10 * n + 16) * sym(lambda a, b: a.tr * a.tr2 * b.u)
        - 8 * (3 * n**2 - 15 * n + 16) * sym(lambda a, b: a.tr3 * b.u)
        - (6 * n**2 - 30 * n + 24) * sym(lambda a, b: a.tr**3 * b.b)
        - 6 * (4 * n**2 - 20 * n + 24) * sym(lambda a, b: a.tr * a.tr2 * b.b)
        - 8 * (3 * n**2 - 15 * n + 24) * sym(lambda a, b: a.tr3 * b.b)
        - (n - 2) * (
            24 * sym(lambda a, b: a.tr**3 * b.r)
            + 6 * (2 * n**2 - 10 * n + 24) * sym(lambda a, b: a.tr * a.tr2 * b.r)
            + 8 * (3 * n**2 - 15 * n + 24) * sym(lambda a, b: a.tr3 * b.r)
            + (3 * n**2 - 15 * n + 6) * sym(lambda a, b: a.tr**3 * b.tr * b.s2)
            + 6 * (n**2 - 5 * n + 6) * sym(lambda a, b: a.tr * a.tr2 * b.tr * b.s2)
            + 48 * sym(lambda a, b: a.tr3 * b.tr * b.s2)
        )
    )
    return total / (n * (n - 1) * (n - 2) * (n - 3) * (n - 4) * (n - 5))


def statistic_moments(x: Invariants, y: Invariants) -> tuple[float, float, float]:
    """(mean, variance, skewness) of T = tr(Wx P Wy P^T) over uniformly random permutations P."""
    if x.n != y.n:
        raise ValueError(f"invariants describe {x.n} and {y.n} objects; they must be the same objects")
    if x.n < MIN_N:
        raise ValueError(f"the closed-form CKA null needs at least {MIN_N} objects, got {x.n}")
    n = float(x.n)
    mean = x.tr * y.tr / (n - 1)
    fx, fy = ((n - 1) * a.tr2 - a.tr**2 for a in (x, y))
    gx, gy = (n * (n + 1) * a.s2 - (n - 1) * (a.tr**2 + 2 * a.tr2) for a in (x, y))
    var = 2 * fx * fy / ((n - 1) ** 2 * (n + 1) * (n - 2)) + gx * gy / ((n + 1) * n * (n - 1) * (n - 2) * (n - 3))
    if var <= 0:
        return mean, 0.0, 0.0
    k3 = _third_raw_moment(x, y) - 3 * mean * var - mean**3
    return mean, var, k3 / var**1.5


@dataclass(frozen=True)
class ClosedNull:
    """The null law of a CKA score: Pearson type III with exact mean, sd and skewness."""

    mean: float
    std: float
    skew: float

    @classmethod
    def of(cls, x: Invariants, y: Invariants) -> "ClosedNull":
        mean, var, skew = statistic_moments(x, y)
        norm = np.sqrt(x.tr2 * y.tr2)
        return cls(mean / norm, np.sqrt(var) / norm, skew)

    def p_value(self, score: float) -> float:
        """P(null >= score) under the fitted law."""
        if self.std == 0:
            return float(score <= self.mean)
        return pearson3_sf((score - self.mean) / self.std, self.skew)

    def threshold(self, alpha: float) -> float:
        """tau: the law's (1 - alpha) quantile."""
        if self.std == 0:
            return self.mean
        return pearson3_ppf(1 - alpha, self.skew) * self.std + self.mean


# Pearson type III, standardised (mean 0, sd 1, skewness ``skew``): for skew != 0,
# beta (x - zeta) ~ Gamma(alpha), beta = 2 / skew, alpha = beta^2, zeta = -alpha / beta; below
# |skew| = 1.6e-5 the normal law. These are scipy.stats.pearson3's own formulas (its sf and ppf,
# to the last bit: tests), on scipy.special alone: importing scipy.stats cost each CKA job 0.65 s.
NORMAL_SKEW = 0.000016


def _gamma_form(skew: float) -> tuple[float, float, float]:
    """(beta, alpha, zeta) of a standardised Pearson III law with this (non-normal) skew."""
    beta = 2.0 / skew
    alpha = beta**2
    return beta, alpha, 0.0 - alpha / beta


def pearson3_sf(z: float, skew: float) -> float:
    """P(X > z) for a standardised Pearson III variable X."""
    from scipy import special

    if abs(skew) < NORMAL_SKEW:
        return float(special.ndtr(-z))
    beta, alpha, zeta = _gamma_form(skew)
    t = beta * (z - zeta)
    if skew > 0:
        return 1.0 if t <= 0 else float(special.gammaincc(alpha, t))
    return 0.0 if t <= 0 else float(special.gammainc(alpha, t))


def pearson3_ppf(q: float, skew: float) -> float:
    """The q-quantile of a standardised Pearson III variable."""
    from scipy import special

    if abs(skew) < NORMAL_SKEW:
        return float(special.ndtri(q))
    beta, alpha, zeta = _gamma_form(skew)
    return float(special.gammaincinv(alpha, q if skew > 0 else 1 - q) / beta + zeta)
