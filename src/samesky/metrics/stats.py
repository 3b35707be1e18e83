"""Seeded permutation nulls, bootstrap resamples and their summary, shared by every metric.

Draws come from streams fixed by ``seed`` alone (torch's generator for permutations, numpy's
for resamples), one draw at a time, so draw d is the same permutation (or resample) for every
metric of a comparison and for any number of draws: a metric that makes fewer draws (CKA) uses
the first ones.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

def permutations(n: int, draws: int, seed: int) -> Iterator[np.ndarray]:
    """``draws`` random permutations of range(n) (int64), reproducible from ``seed``.

    torch.randperm: half the cost of numpy's permutation, which is a third of an MKNN null draw.
    """
    g = torch.Generator().manual_seed(seed)
    for _ in range(draws):
        yield torch.randperm(n, generator=g).numpy()


def bootstrap_weights(n: int, draws: int, seed: int) -> Iterator[np.ndarray]:
    """``draws`` bootstrap resamples of n objects, as per-object counts (float64, summing to n)."""
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        yield np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)


def p_value(score: float, null: np.ndarray) -> float:
    """One-sided permutation p-value with the +1 correction: (1 + #{null >= score}) / (1 + draws)."""
    return float((1 + np.count_nonzero(np.asarray(null) >= score)) / (1 + len(null)))


def threshold_rank(draws: int, alpha: float) -> int:
    """ceil((1 - alpha)(K + 1)): the rank (1-based) of tau among the observed score and K draws.

    Computed on a 1e-9 grid so that e.g. alpha = 0.05, K = 19 gives 19, not 20 (0.95 * 20 is
    19.000000000000004 in floating point).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")
    return math.ceil(round((1 - alpha) * (draws + 1), 9))


def permutation_threshold(score: float, null: np.ndarray, alpha: float) -> float:
    """tau: the ceil((1 - alpha)(K + 1))-th smallest of {score} and the K null draws.

    Under the null the observed score is exchangeable with the draws, so P(score > tau) <= alpha
    exactly (the calibrated score is 0 with probability >= 1 - alpha).
    """
    pool = np.sort(np.append(np.asarray(null, float), score))
    return float(pool[threshold_rank(len(pool) - 1, alpha) - 1])


def calibrated(score: float, tau: float, scale: str = "unit") -> float:
    """max(0, (s - tau) / (s_max - tau)): the share of the room above the null's (1 - alpha)
    level that the score reaches.

    ``scale='unit'``: s_max = 1 (MKNN, CKA, CKNNA: identical embeddings score 1).
    ``scale='nats'`` (mutual information, unbounded): s_max = infinity nats. Both s and tau are
    first mapped by Linfoot's informational coefficient of correlation r(I) = sqrt(1 - exp(-2 I)),
    monotone from [0, inf) onto [0, 1) (r = |rho| for one Gaussian pair, r -> 1 as I -> inf), so
    s_max = inf becomes 1 and the rule above applies unchanged; tau stays in nats in the records
    (a monotone map commutes with the order statistic that defines it).
    """
    if scale == "nats":
        score, tau = (math.sqrt(-math.expm1(-2 * max(v, 0.0))) for v in (score, tau))
    elif scale != "unit":
        raise ValueError(f"scale must be 'unit' or 'nats', got {scale!r}")
    if tau >= 1:
        return 0.0
    return max(0.0, (score - tau) / (1 - tau))


def summarise(score: float, null: np.ndarray, boot: np.ndarray, ci: float, *, alpha: float = 0.05,
              scale: str = "unit") -> dict:
    """The statistics fields of a metric record; None where no draws were made.

    ``calibrated``/``tau`` follow ``permutation_threshold`` and ``calibrated`` at level ``alpha``.
    """
    if not 0 < ci < 1 or not 0 < alpha < 1:
        raise ValueError(f"ci={ci} and alpha={alpha} must be in (0, 1)")
    null, boot = np.asarray(null, float), np.asarray(boot, float)
    out = {"ci_low": None, "ci_high": None, "null_mean": None, "null_std": None, "p_value": None,
           "null_draws": len(null), "bootstrap_draws": len(boot), "tau": None, "calibrated": None,
           "alpha": alpha, "null_method": "permutation" if len(null) else None}
    if len(boot):
        lo, hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
        out.update(ci_low=float(lo), ci_high=float(hi))
    if len(null):
        out.update(null_mean=float(null.mean()), null_std=float(null.std(ddof=1)) if len(null) > 1 else 0.0,
                   p_value=p_value(score, null))
        tau = permutation_threshold(score, null, alpha)
        out.update(tau=tau, calibrated=calibrated(score, tau, scale))
    return out
