"""Benchmarks of the physics probes (prints figures; not a unit test).

  time      one property of a random (N, d) embedding: continuous (ridge + kNN) and, with
            --categorical, a two-class property (logistic + kNN); seconds per probe call
  coverage  how often the bootstrap interval of the linear probe covers the analytic R-squared
            of y = x.w + noise (x ~ N(0, I_d)) over --trials seeds, and the mean bias

Usage:
  python benchmarks/bench_probes.py time --n 20000 --d 1536 --null-draws 100
  python benchmarks/bench_probes.py coverage --n 1000 --d 20 --trials 40
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one job, one thread (as the rule runs it)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from samesky import probes  # noqa: E402


def bench_time(args) -> None:
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(args.n, 16))
    x = (latent @ rng.normal(size=(16, args.d)) + rng.normal(size=(args.n, args.d))).astype(np.float32)
    y = latent[:, 0] + 0.5 * rng.normal(size=args.n)
    settings = dict(null_draws=args.null_draws, bootstrap_draws=args.bootstrap_draws,
                    pca_components=args.pca, folds=args.folds)
    cases = [("continuous", y)] + ([("categorical", (y > 0).astype(np.int64))] if args.categorical else [])
    for kind, target in cases:
        start = time.perf_counter()
        recs = probes.probe(x, target, kind, **settings)
        seconds = time.perf_counter() - start
        scores = ", ".join(f"{r['probe']} {r['score']:.3f}" for r in recs)
        print(f"{kind:12s} N={args.n} d={args.d} pca={args.pca} null_draws={args.null_draws} "
              f"bootstrap={args.bootstrap_draws}: {seconds:.1f} s ({scores})")


def bench_coverage(args) -> None:
    covered, bias = [], []
    for seed in range(args.trials):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(args.n, args.d))
        w = rng.normal(size=args.d)
        w /= np.linalg.norm(w)
        y = x @ w + rng.normal(scale=np.sqrt((1 - args.r2) / args.r2), size=args.n)
        rec = probes.probe(x, y, probes.CONTINUOUS, null_draws=0, bootstrap_draws=args.bootstrap_draws, seed=seed)[0]
        covered.append(rec["ci_low"] <= args.r2 <= rec["ci_high"])
        bias.append(rec["score"] - args.r2)
    print(f"coverage of R2={args.r2} by the 95% interval, N={args.n} d={args.d}, {args.trials} trials: "
          f"{np.mean(covered):.2f}; mean bias {np.mean(bias):+.4f} (sd {np.std(bias):.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=["time", "coverage"])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--pca", type=int, default=64)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--null-draws", type=int, default=100)
    parser.add_argument("--bootstrap-draws", type=int, default=1000)
    parser.add_argument("--categorical", action="store_true")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--r2", type=float, default=0.5)
    args = parser.parse_args()
    (bench_time if args.case == "time" else bench_coverage)(args)


if __name__ == "__main__":
    main()
