"""Seeded permutation nulls, bootstrap resamples and their summary, shared by every metric.

Draws come from streams fixed by ``seed`` alone (torch's generator for permutations, numpy's
for resamples), one draw at a time, so draw d is the same permutation (or resample) for every
metric of a comparison and for any number of draws: a metric that makes fewer draws (CKA) uses
the first ones.
"""
from __future__ import annotations

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


def summarise(score: float, null: np.ndarray, boot: np.ndarray, ci: float) -> dict:
    """The statistics fields of a metric record; None where no draws were made."""
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci} must be in (0, 1)")
    null, boot = np.asarray(null, float), np.asarray(boot, float)
    out = {"ci_low": None, "ci_high": None, "null_mean": None, "null_std": None, "p_value": None,
           "null_draws": len(null), "bootstrap_draws": len(boot)}
    if len(boot):
        lo, hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
        out.update(ci_low=float(lo), ci_high=float(hi))
    if len(null):
        out.update(null_mean=float(null.mean()), null_std=float(null.std(ddof=1)) if len(null) > 1 else 0.0,
                   p_value=p_value(score, null))
    return out
