"""Cost of calibrated linear CKA with the closed-form permutation null (prints figures; not a test).

Per compared pair:  score alone (feature-space moments, O(N d^2))  vs  score + closed-form null
(exact moments from cached per-file invariants, Pearson III tau and p: O(1)), and, for scale,
one permutation draw of the old null (an O(N d^2) product per draw).
Per embedding file, once (cached by the knn_graph rule beside the kNN graph): the Gram
invariants, split into the feature-space part (O(N d^2)) and the all-pairs cube sum (O(N^2 d)),
next to that file's exact kNN graph build (also O(N^2 d)), which the workflow pays anyway.

Timings scale as: score, feature-space invariants ~ N d^2; cube sum, kNN graph ~ N^2 d; closed
null O(1). ``--extrapolate N`` prints the figures scaled to N by those laws.

Usage:
  python benchmarks/bench_calibration.py --n 10000 --d 1536 --extrapolate 100000
"""
from __future__ import annotations

import argparse
import time


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--d", type=int, default=1536)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--extrapolate", type=int, default=100000)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    import numpy as np
    import torch

    from samesky.metrics.cka import linear_cka_from
    from samesky.metrics.features import FeatureSpace
    from samesky.metrics.knn import knn_graph
    from samesky.metrics.rv_null import ClosedNull, _centred, _cube_sums, gram_invariants
    from samesky.metrics.stats import calibrated

    g = torch.Generator().manual_seed(0)
    latent = torch.randn(args.n, 32, generator=g)
    za = (latent @ torch.randn(32, args.d, generator=g) + torch.randn(args.n, args.d, generator=g)).numpy()
    zb = (latent @ torch.randn(32, args.d, generator=g) + torch.randn(args.n, args.d, generator=g)).numpy()
    print(f"N = {args.n}, d = {args.d}, torch threads = {torch.get_num_threads()}, device = {args.device or 'auto'}")

    t_score, score = timed(lambda: linear_cka_from(FeatureSpace(za, zb, device=args.device).moments()), args.repeat)
    t_inv, invs = timed(lambda: (gram_invariants(za, device=args.device), gram_invariants(zb, device=args.device)))
    xa = _centred(za, torch.device(args.device or "cpu"))
    t_cube, _ = timed(lambda: _cube_sums(xa, torch.zeros(args.n, dtype=torch.float64)))
    t_feat = t_inv / 2 - t_cube  # one file: feature-space part = total minus its all-pairs pass
    t_knn, _ = timed(lambda: knn_graph(za, 10, device=args.device))

    def closed():
        law = ClosedNull.of(invs[0]["linear"], invs[1]["linear"])
        tau = law.threshold(0.05)
        return law, tau, law.p_value(score), calibrated(score, tau)

    t_null, (law, tau, p, cal) = timed(closed, 20)
    space = FeatureSpace(za, zb, device=args.device)
    space.moments()
    pi = np.random.default_rng(0).permutation(args.n)
    t_draw, _ = timed(lambda: linear_cka_from(space.moments(pi=pi)), args.repeat)

    print(f"score {score:.4f}, null mean {law.mean:.3g} sd {law.std:.3g} skew {law.skew:.3g}, tau {tau:.4g}, "
          f"p {p:.3g}, calibrated {cal:.4f}")
    rows = [
        ("per pair: linear CKA score alone", t_score, 1),
        ("per pair: closed-form null (tau, p, calibrated)", t_null, 0),
        ("per pair: calibrated CKA = score + closed null", t_score + t_null, 1),
        ("per pair: one permutation draw (the drawn null makes feature_space_draws = 100)", t_draw, 1),
        ("per file: invariants, feature-space part", t_feat, 1),
        ("per file: invariants, all-pairs cube sums (both kernels, one pass)", t_cube, 2),
        ("per file: exact kNN graph build (k=10), for scale", t_knn, 2),
    ]
    scale = args.extrapolate / args.n
    print(f"\n| step | seconds at N={args.n} | extrapolated to N={args.extrapolate} |")
    print("|:--|--:|--:|")
    for name, t, power in rows:
        print(f"| {name} | {t:.4g} | {t * scale**power:.4g} |")
    print(f"\ncalibrated / score alone, per pair: {(t_score + t_null) / t_score:.4f}")
    print(f"per-file invariants / kNN graph build: {(t_inv / 2) / t_knn:.2f}")


if __name__ == "__main__":
    main()
