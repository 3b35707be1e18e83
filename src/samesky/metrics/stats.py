"""Seeded permutation nulls, resamples and their summary, shared by every metric.

Draws come from streams fixed by ``seed`` alone (torch's generator for permutations, numpy's
for resamples and half-samples), one draw at a time, so draw d is the same permutation (or
resample) for every metric of a comparison and for any number of draws: a metric that makes
fewer draws (CKA) uses the first ones.

Intervals. Metrics without neighbourhoods (CKA, MI) get the percentile bootstrap. Neighbourhood
metrics (MKNN, CKNNA) cannot: an object's score depends on which other objects are in the
sample, so reweighting per-object terms on the full-sample graph ignores how neighbourhoods
vary between samples (its 95% interval covered 82-87%), and recomputing neighbourhoods on a
bootstrap resample sees only ~0.63 N distinct objects, a sparser sample with a different
expected score. They get a delete-d jackknife instead (Shao and Wu 1989, Ann. Stat. 17:1176):
each draw keeps a random half of the objects without replacement, r = n // 2 of them, and
rescores the metric with every neighbourhood recomputed on that half. For a statistic that is
asymptotically linear, theta_S ~ theta + mean_{i in S} psi_i, the spread of half-sample scores
over S is var(psi) (n - r) / (r n), so

    SE^2 = (r / d) var_S(theta_S),   d = n - r,

estimates var(theta_n) whatever psi is, including the part of psi that comes from object i
changing other objects' neighbourhoods (which the fixed-graph bootstrap missed); a shift of the
half-sample scores (sparser neighbourhoods) cancels in var_S. The interval is score +- z SE.
Shao and Wu need d / sqrt(n) -> inf and r -> inf, which halves satisfy. Coverage is checked by
benchmarks/bench_coverage.py.
"""
from __future__ import annotations

from statistics import NormalDist
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


def half_samples(n: int, draws: int, seed: int) -> Iterator[np.ndarray]:
    """``draws`` random halves of range(n) (n // 2 objects, without replacement), reproducible
    from ``seed``. Rows come sorted, so a half keeps the sample's order (and its kNN tie order)."""
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        yield np.sort(rng.permutation(n)[: n // 2])


def half_sample_interval(score: float, draws, n: int, ci: float) -> tuple[float, float]:
    """Delete-d jackknife normal interval from half-sample scores of an n-object sample (module
    docstring): score -+ z_{(1 + ci) / 2} sqrt((r / d) var(draws)), r = n // 2, d = n - r."""
    draws = np.asarray(draws, float)
    r = n // 2
    se = float(np.sqrt(r / (n - r) * draws.var(ddof=1))) if len(draws) > 1 else 0.0
    z = NormalDist().inv_cdf((1 + ci) / 2)
    return score - z * se, score + z * se


def p_value(score: float, null: np.ndarray) -> float:
    """One-sided permutation p-value with the +1 correction: (1 + #{null >= score}) / (1 + draws)."""
    return float((1 + np.count_nonzero(np.asarray(null) >= score)) / (1 + len(null)))


def summarise(score: float, null: np.ndarray, boot: np.ndarray, ci: float, *, half_sample_n: int | None = None) -> dict:
    """The statistics fields of a metric record; None where no draws were made.

    ``boot`` holds bootstrap scores (percentile interval) or, with ``half_sample_n`` = n, the
    scores of half-samples of n objects (jackknife interval, ``half_sample_interval``)."""
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci} must be in (0, 1)")
    null, boot = np.asarray(null, float), np.asarray(boot, float)
    out = {"ci_low": None, "ci_high": None, "null_mean": None, "null_std": None, "p_value": None,
           "null_draws": len(null), "bootstrap_draws": len(boot)}
    if len(boot):
        lo, hi = (half_sample_interval(score, boot, half_sample_n, ci) if half_sample_n is not None
                  else np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2]))
        out.update(ci_low=float(lo), ci_high=float(hi))
    if len(null):
        out.update(null_mean=float(null.mean()), null_std=float(null.std(ddof=1)) if len(null) > 1 else 0.0,
                   p_value=p_value(score, null))
    return out
