"""Peak memory and wall time of each of the field's measures (samesky.metrics.measures) on two
random float32 (N, d) embeddings with shared structure (prints a table; not a unit test).

Each measure runs in its own subprocess, so its peak RSS (ru_maxrss) is its own; the "data" row
is the RSS of the two inputs alone. The issue's target is N = 102,000, d = 1536: every measure
under 3 GB, the all-pairs ones (rbf_cka, mmd, rsa, distance_correlation) within twice one exact
kNN graph build ("knn_graph" row). Spearman RSA beyond its exact range and the median bandwidths
run on their opt-in estimates (--sample pairs).

Wall and CPU seconds: on one thread (OMP_NUM_THREADS=1 ...) on a shared machine, compare CPU seconds.

Usage:
  python benchmarks/bench_measures.py --n 5000 --d 256
  python benchmarks/bench_measures.py --n 102000 --d 1536 --only data knn_graph rbf_cka procrustes
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CASES = {
    "data": None,
    "knn_graph": None,
    "jaccard": ("neighbours", "jaccard", {}),
    "cycle_knn": ("neighbours", "cycle_knn", {}),
    "lcs_knn": ("neighbours", "lcs_knn", {}),
    "edit_distance_knn": ("neighbours", "edit_distance_knn", {}),
    "rbf_cka": ("kernel", "rbf_cka", {"median_sample": "S"}),
    "mmd": ("kernel", "mmd", {"median_sample": "S"}),
    "rsa_pearson": ("rsa", "rsa", {"method": "pearson"}),
    "rsa_spearman": ("rsa", "rsa", {"sample_pairs": "S"}),
    "distance_correlation": ("dcor", "distance_correlation", {}),
    "ksg_mutual_information": ("information", "ksg_mutual_information", {}),
    "svcca": ("cca", "svcca", {}),
    "pwcca": ("cca", "pwcca", {}),
    "mean_cca": ("cca", "mean_cca", {}),
    "procrustes": ("geometric", "procrustes", {}),
    "shape_angular": ("geometric", "shape_angular", {"alpha": 0.5}),
    "frechet": ("geometric", "frechet", {}),
    "cosine_matched": ("geometric", "cosine_matched", {}),
    "linear_r2": ("regression", "linear_r2", {"cv": 5}),
    "tucker_congruence": ("spectral", "tucker_congruence", {}),
    "eigenspectrum": ("spectral", "eigenspectrum", {}),
    "riemannian": ("spectral", "riemannian", {}),
    "gaussian_kl": ("information", "gaussian_kl", {}),
    "gaussian_js": ("information", "gaussian_js", {}),
}


def embeddings(n: int, d: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 32), dtype=np.float32)
    out = []
    for _ in range(2):
        W = rng.standard_normal((32, d), dtype=np.float32)
        Z = np.empty((n, d), np.float32)
        for a in range(0, n, 8192):  # in chunks: the data's RSS is the data, not temporaries
            Z[a : a + 8192] = latent[a : a + 8192] @ W + rng.standard_normal((len(Z[a : a + 8192]), d), dtype=np.float32)
        out.append(Z)
    return out


def child(case: str, n: int, d: int, sample: int) -> None:
    X, Y = embeddings(n, d)
    t0, c0 = time.perf_counter(), time.process_time()
    value = None
    if case == "knn_graph":
        from samesky.metrics.knn import knn_graph

        knn_graph(X, 10)
    elif case != "data":
        import importlib

        module, name, params = CASES[case]
        f = getattr(importlib.import_module(f"samesky.metrics.measures.{module}"), name)
        value = f(X, Y, **{k: (sample if v == "S" else v) for k, v in params.items()})
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (ru_maxrss in KiB)
    print(json.dumps({"case": case, "wall_s": wall, "cpu_s": cpu, "peak_gib": rss, "value": value}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--sample", type=int, default=20_000, help="pairs for the opt-in estimates")
    ap.add_argument("--only", nargs="*", default=list(CASES))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.n, args.d, args.sample)
    print(f"N={args.n} d={args.d} float32 inputs ({2 * args.n * args.d * 4 / 2**30:.2f} GiB)")
    print(f"{'measure':26s} {'wall s':>9s} {'CPU s':>9s} {'peak GiB':>9s}  value")
    for case in args.only:
        out = subprocess.run([sys.executable, __file__, "--child", case, "--n", str(args.n), "--d", str(args.d),
                              "--sample", str(args.sample)], capture_output=True, text=True)
        if out.returncode:
            print(f"{case:26s} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        value = "" if r["value"] is None else f"{r['value']:.6g}"
        print(f"{case:26s} {r['wall_s']:9.2f} {r['cpu_s']:9.2f} {r['peak_gib']:9.3f}  {value}", flush=True)


if __name__ == "__main__":
    main()
