"""Cost of the layer-wise atlas (issue 15): one pair of L-block models, every block x every block.

Ours: one kNN graph (and Gram invariants) per block, ``knn_layers_file`` per side plus the final
embeddings' ``knn_file``: 2 (L + 1) graph builds; then ``compare_layer_files`` with MKNN
(relabelled null, --draws draws) and linear CKA (closed-form null) on all (L + 1)^2 cells.

The other way (the authors' current code): every block pair rebuilds both graphs and draws the
CKA null as --draws feature-space products (a d_a x N x d_b product each); MKNN's null draws are
counted at our relabelled cost (generous to that way). Measured on --naive-cells cells and
--naive-draws draws, extrapolated to (L + 1)^2 cells and --draws draws.

    python benchmarks/bench_layers.py                                    # the issue's size (about an hour on 2 cores)
    python benchmarks/bench_layers.py --n 5000 --d 256 --blocks 8 --draws 200   # minutes
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from samesky import schema


def side_paths(root: Path, name: str) -> dict:
    return {"emb": root / f"{name}.h5", "knn": root / f"{name}.knn.h5", "layers": root / f"{name}.layers.h5",
            "knn_layers": root / f"{name}.knn_layers.h5"}


class LazyBlocks:
    """Block j generated on access (write_layers reads one at a time): a latent structure shared by
    both sides, seen through a different random map and noise level at every depth."""

    def __init__(self, latent, blocks: int, d: int, seed: int):
        self.latent, self.blocks, self.d, self.seed = latent, blocks, d, seed

    def __len__(self):
        return self.blocks

    def __getitem__(self, j):
        if j >= self.blocks:
            raise IndexError(j)
        rng = np.random.default_rng([self.seed, j])
        noise = 2.0 * (1 - (j + 1) / self.blocks) + 0.5
        Z = np.tanh(self.latent @ rng.standard_normal((self.latent.shape[1], self.d), np.float32) / 4)
        return (Z + noise * rng.standard_normal(Z.shape, np.float32)).astype(np.float32)


def prepare(root: Path, n: int, d: int, blocks: int) -> None:
    latent = np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32)
    ids = np.array([f"obj{i:06d}" for i in range(n)])
    for s, name in enumerate("ab"):
        paths, layers = side_paths(root, name), LazyBlocks(latent, blocks, d, s)
        schema.write_layers(paths["layers"], ids, layers, [f"block {j + 1}" for j in range(blocks)], {"model": name})
        schema.write_embeddings(paths["emb"], ids, layers[blocks - 1], {"model": name})


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def ours(root: Path, k: int, draws: int, metrics: list[str]) -> tuple[float, float, int]:
    from samesky.metrics.knn import knn_file
    from samesky.metrics.layers import compare_layer_files, knn_layers_file
    from samesky.schema import LayersFile

    start, builds = time.perf_counter(), 0
    for name in "ab":
        p = side_paths(root, name)
        cka = any(m.startswith("cka") for m in metrics)
        knn_layers_file(p["layers"], p["knn_layers"], k, invariants=cka)
        knn_file(p["emb"], p["knn"], k, invariants=cka)
        builds += len(LayersFile(p["layers"]).names) + 1
    graphs = time.perf_counter() - start
    comparison = {"kind": "crossmodal", "crossmatch": "bench", "survey_a": "a", "model_a": "a-x",
                  "survey_b": "b", "model_b": "b-x"}
    rows = compare_layer_files(side_paths(root, "a"), side_paths(root, "b"), comparison=comparison,
                               metrics=metrics, k=k, null_draws=draws, seed=0)
    total = time.perf_counter() - start
    best = max(rows, key=lambda r: r["calibrated"])
    print(f"  {len(rows)} rows; best calibrated {best['metric']} {best['calibrated']:.3f} at {best['block_a']} x "
          f"{best['block_b']}")
    return graphs, total, builds


def naive_cell(root: Path, k: int, draws: int, naive_draws: int, cell: int) -> float:
    """One block pair the other way: both graphs rebuilt, MKNN and CKA nulls drawn per cell."""
    from samesky.metrics.cka import CkaEstimator
    from samesky.metrics.features import FeatureSpace
    from samesky.metrics.knn import knn_graph
    from samesky.metrics.mknn import MknnEstimator
    from samesky.metrics.stats import permutations
    from samesky.schema import LayersFile

    Za = LayersFile(side_paths(root, "a")["layers"]).block(cell).astype(np.float32)
    Zb = LayersFile(side_paths(root, "b")["layers"]).block(cell).astype(np.float32)
    t = time.perf_counter()
    ga, gb = knn_graph(Za, k)[0], knn_graph(Zb, k)[0]
    t_graphs = time.perf_counter() - t
    perms = list(permutations(len(Za), naive_draws, 1))
    est = MknnEstimator(ga, gb, k)
    t = time.perf_counter()
    for pi in perms:
        est.null(pi)
    t_mknn = (time.perf_counter() - t) / naive_draws
    cka = CkaEstimator(FeatureSpace(Za, Zb), unbiased=False)
    t = time.perf_counter()
    cka.score()
    t_score = time.perf_counter() - t
    t = time.perf_counter()
    for pi in perms:
        cka.null(pi)
    t_cka = (time.perf_counter() - t) / naive_draws
    per_cell = t_graphs + t_score + draws * (t_mknn + t_cka)
    print(f"  naive cell {cell}: 2 graph builds {t_graphs:.2f} s, CKA score {t_score:.3f} s, per draw: MKNN "
          f"{t_mknn * 1e3:.2f} ms + CKA {t_cka:.3f} s -> {per_cell:.1f} s per cell")
    return per_cell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--blocks", type=int, default=24)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--metrics", default="mknn,cka_linear", help="ours: the metrics compared (mknn alone: no invariants)")
    ap.add_argument("--naive-cells", type=int, default=1)
    ap.add_argument("--naive-draws", type=int, default=3)
    ap.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.prepare:
        prepare(args.prepare, args.n, args.d, args.blocks)
        return
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # The data are written by a child process, so that peak RSS is the comparison's own.
        subprocess.run([sys.executable, __file__, "--prepare", str(root), "--n", str(args.n), "--d", str(args.d),
                        "--blocks", str(args.blocks)], check=True)
        L = args.blocks
        print(f"pair of {L}-block models, N={args.n}, d={args.d}, k={args.k}, {args.draws} null draws, metrics "
              f"{args.metrics} (CKA: closed-form null), {args.threads} threads")
        graphs, total, builds = ours(root, args.k, args.draws, args.metrics.split(","))
        peak = rss_gb()
        what = "graph builds with Gram invariants" if "cka" in args.metrics else "graph builds"
        print(f"ours: {total:.1f} s total ({graphs:.1f} s for {builds} {what}, "
              f"{total - graphs:.1f} s for {(L + 1) ** 2} cells), peak RSS {peak:.2f} GB")
        cells = [round(c) for c in np.linspace(0, L - 1, args.naive_cells)]
        per_cell = np.mean([naive_cell(root, args.k, args.draws, args.naive_draws, c) for c in cells])
        naive = per_cell * (L + 1) ** 2
        print(f"naive: {naive:.0f} s extrapolated ({(L + 1) ** 2} cells x {per_cell:.1f} s; "
              f"{2 * (L + 1) ** 2} graph builds)")
        print(f"ratio naive / ours: {naive / total:.0f}x")


if __name__ == "__main__":
    main()
