"""Why the percentile bootstrap over-covered CKA (prints figures; not a test).

On bench_coverage's data models at N = 1000: the SD of linear and unbiased CKA over the first
60 and over 1000 independent samples (the coverage study's seeds) against the mean SD of 150 bootstrap resamples of each of the first 12
samples, and the share of the biased HSIC(K, L) = sum_ij <x_i, x_j> <y_i, y_j> held by its
diagonal i = j, the term a pair of copies of one object repeats in a resample.

Usage:  python benchmarks/bench_bootstrap_cka.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_coverage import DataModel  # noqa: E402

from samesky.metrics.cka import linear_cka_from, unbiased_cka_from  # noqa: E402
from samesky.metrics.features import FeatureSpace  # noqa: E402
from samesky.metrics.stats import bootstrap_weights  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    with threadpool_limits(1):
        for name in ("latent", "clusters"):
            model = DataModel(name)
            scores, boot_sd, diag_share = [], [], []
            for rep in range(1000):
                Za, Zb = model.sample(1000, torch.Generator().manual_seed(rep))
                m = FeatureSpace(Za, Zb).moments()
                scores.append((linear_cka_from(m), unbiased_cka_from(m)))
                if rep < 12:  # a resample: each object repeated as often as it was drawn
                    resampled = (FeatureSpace(Za[rows], Zb[rows]).moments() for rows in
                                 (np.repeat(np.arange(1000), w.astype(int)) for w in bootstrap_weights(1000, 150, rep)))
                    boot = [(linear_cka_from(mb), unbiased_cka_from(mb)) for mb in resampled]
                    boot_sd.append(np.std(boot, axis=0, ddof=1))
                    diag_share.append(m.sum_ab / float((m.xy * m.xy).sum()))
            for count in (60, 1000):
                sd = np.std(scores[:count], axis=0, ddof=1)
                ratio = np.mean(boot_sd, axis=0) / sd
                print(f"{name}: SD over {count} samples linear {sd[0]:.5f} unbiased {sd[1]:.5f}; bootstrap SD / that "
                      f"SD linear {ratio[0]:.2f} unbiased {ratio[1]:.2f}; diagonal share of HSIC(K, L) "
                      f"{np.mean(diag_share):.3f}")


if __name__ == "__main__":
    main()
