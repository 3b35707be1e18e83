"""What a run costs: each metric- and probe-stage job's CPU time and peak memory from its shapes,
the cluster resources the rules ask for, and the whole run's cost before it starts (``samesky cost``).

A job's shapes (``Job``): its objects N, each side's final width d and block widths (the layers
file of ``embed.layers``), null draws, subsampling splits, its metrics (or physics tests) by name,
k and threads. Per rule, time and peak memory are sums of terms of known complexity (``FORMS``: a
kNN graph build is N^2 d, a held block N d bytes), with non-negative coefficients fitted (``fit``,
relative least squares) to ``MEASURED``: the jobs of ``benchmarks/bench_paper_scale.py`` through
Snakemake, each row its CPU seconds and exact peak RSS (``runtime.USAGE``). Metrics and physics
tests cost what each costs alone (``MEASURE_COSTS``: a score and a null draw at a few N and d, per
measure): a job's metric term is the sum of its metrics' scores, draws and splits
(``metric_seconds``), so a kNN measure on cached graphs costs milliseconds where an all-pairs
kernel costs minutes. Assumed, not measured: extra threads speed up the non-constant terms as
Amdahl's law with 80% parallel work (``PARALLEL``); a GPU job costs at most its CPU prediction.

Resources (``job_resources``): memory 1.25 x the predicted peak + 0.5 GB, minutes 1.5 x the
predicted time + 5, both x ``attempt_growth`` on retries, capped at the node's (config
``cluster``). A compare_layers job whose blocks do not all fit a node holds what its memory
leaves (``block_cache_mb``, a resource its script reads) and reads the others again, its time
grown by those reads (``_rereads``); a job whose least memory (one block a side) exceeds a node
is a ``ConfigError`` at plan time naming it (``check_fits_nodes``).
"""
from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Callable

import numpy as np

from .config import ConfigError
from .models.registry import get_model
from .models.resources import EMBED_RATES, attempt_growth, embed_cpus, resources_for

# ---- the measurements ----------------------------------------------------------------------
# python benchmarks/bench_paper_scale.py --json paper_scale.json (its DEFAULT_CASES) and --case
# 40000:768:1:2 (model dinov2-giant's files, Legacy Survey vs HSC, metrics mknn cka_linear
# cka_unbiased cknna mutual_info, k 10, null draws = subsampling splits = the case's draws, 1
# thread a job, --cores 1) on 2026-12-06, a 2-core machine shared with other engineers' jobs
# (load 5-13): CPU seconds and exact peak RSS are what a job used; its wall time there was 1.3-4x
# its CPU time. The rehearsal at the paper's size was added on 2026-12-07: --case 102000:1536:1:5
# --jobs 2 (load 4-7). The knn_graph rows were measured again on 2026-12-07 (the same cases,
# --rules knn_graph, --jobs 1, load 5-7) once the Gram invariants' all-pairs term came from the
# graph's own tiles (knn.graph_and_invariants). The physics and umap rows (physics: MEASURED_TESTS
# on one property; umap: both sides' maps) by --case 400:64:1:3 --case 2000:384:1:3 --case
# 10000:384:1:3 --rules physics umap (load 5-8). The 24-block rows: --case 102000:1536:24:5 --jobs 2
# --node-memory-gb 12 --resume over three sessions on 2026-12-07 (a kNN job's CPU adds its resumed
# blocks'; load 2-6; its compare job is the one-block rehearsal's at load 2-3, its compare_layers job
# MEASURED_CACHED's). The compare_layers rows were measured again on 2026-12-07 (--rules
# compare_layers --resume on the same cases' files, --jobs 1, load 2) once the CKA hook centred each
# cell's side B chunk by chunk (6ecc9da). Table and fit: docs/ARCHITECTURE.md, "Cost at the paper's shapes".
# rule, N, d, blocks, draws, CPU seconds, peak MB
MEASURED: tuple[tuple[str, int, int, int, int, float, float], ...] = (
    ('knn_graph', 2000, 384, 16, 5, 3.8, 359.0),
    ('knn_graph', 2000, 384, 16, 5, 3.2, 384.0),
    ('knn_graph', 2000, 1536, 4, 5, 6.7, 559.0),
    ('knn_graph', 2000, 1536, 4, 5, 6.8, 526.0),
    ('knn_graph', 2000, 1536, 4, 20, 7.8, 530.0),
    ('knn_graph', 2000, 1536, 4, 20, 7.0, 517.0),
    ('knn_graph', 5000, 768, 4, 5, 7.1, 653.0),
    ('knn_graph', 5000, 768, 4, 5, 7.3, 671.0),
    ('knn_graph', 5000, 1536, 4, 10, 13.8, 778.0),
    ('knn_graph', 5000, 1536, 4, 10, 14.7, 743.0),
    ('knn_graph', 10000, 1536, 2, 5, 18.1, 869.0),
    ('knn_graph', 10000, 1536, 2, 5, 18.5, 885.0),
    ('knn_graph', 20000, 384, 1, 3, 16.2, 688.0),
    ('knn_graph', 20000, 384, 1, 3, 14.5, 691.0),
    ('knn_graph', 40000, 768, 1, 2, 61.9, 1184.0),
    ('knn_graph', 40000, 768, 1, 2, 61.8, 1189.0),
    ('knn_graph', 102000, 1536, 1, 5, 530.0, 4548.0),
    ('knn_graph', 102000, 1536, 1, 5, 540.6, 4724.0),
    ('knn_graph', 102000, 1536, 24, 5, 6004.5, 4727.0),
    ('knn_graph', 102000, 1536, 24, 5, 5901.8, 4734.0),
    ('compare', 2000, 384, 16, 5, 2.8, 320.0),
    ('compare', 2000, 1536, 4, 5, 25.7, 506.0),
    ('compare', 2000, 1536, 4, 20, 100.3, 563.0),
    ('compare', 5000, 768, 4, 5, 6.1, 457.0),
    ('compare', 5000, 1536, 4, 10, 53.9, 721.0),
    ('compare', 10000, 1536, 2, 5, 40.7, 861.0),
    ('compare', 20000, 384, 1, 3, 4.3, 557.0),
    ('compare', 40000, 768, 1, 2, 13.5, 1050.0),
    ('compare', 102000, 1536, 1, 5, 202.6, 3704.0),
    ('compare', 102000, 1536, 24, 5, 171.8, 3693.0),
    ('compare_layers', 2000, 384, 16, 5, 6.1, 460.0),
    ('compare_layers', 2000, 1536, 4, 5, 15.5, 634.0),
    ('compare_layers', 2000, 1536, 4, 20, 16.1, 508.0),
    ('compare_layers', 5000, 768, 4, 5, 6.7, 707.0),
    ('compare_layers', 5000, 1536, 4, 10, 24.4, 946.0),
    ('compare_layers', 10000, 1536, 2, 5, 25.0, 982.0),
    ('compare_layers', 20000, 384, 1, 3, 4.4, 651.0),
    ('compare_layers', 40000, 768, 1, 2, 15.7, 1388.0),
    ('compare_layers', 102000, 1536, 1, 5, 126.0, 5393.0),
    ('probe', 2000, 384, 16, 5, 2.7, 245.0),
    ('probe', 2000, 1536, 4, 5, 3.8, 339.0),
    ('probe', 2000, 1536, 4, 20, 4.2, 340.0),
    ('probe', 5000, 768, 4, 5, 5.8, 389.0),
    ('probe', 5000, 1536, 4, 10, 9.8, 529.0),
    ('probe', 10000, 1536, 2, 5, 22.5, 841.0),
    ('probe', 20000, 384, 1, 3, 17.2, 498.0),
    ('probe', 40000, 768, 1, 2, 110.9, 1326.0),
    ('probe', 102000, 1536, 1, 5, 1357.2, 6785.0),
    ('probe', 102000, 1536, 24, 5, 1228.1, 6782.0),
    # physics_pair (one property, null draws = subsampling splits = the case's draws): its work as the rule
    # does it (samesky.probes.physics_pair_files on files of the case's shapes with random width-80 graphs,
    # imports included, one process per job) on 2026-12-07, the same shared 2-core machine (load 2-5)
    ('physics_pair', 2000, 384, 1, 5, 3.6, 415.0),
    ('physics_pair', 2000, 384, 1, 5, 3.5, 415.0),
    ('physics_pair', 2000, 1536, 1, 20, 6.7, 439.0),
    ('physics_pair', 2000, 1536, 1, 20, 5.3, 441.0),
    ('physics_pair', 5000, 768, 1, 5, 4.8, 455.0),
    ('physics_pair', 5000, 768, 1, 5, 4.6, 462.0),
    ('physics_pair', 10000, 1536, 1, 5, 5.3, 609.0),
    ('physics_pair', 10000, 1536, 1, 5, 4.8, 594.0),
    ('physics_pair', 20000, 384, 1, 3, 4.7, 555.0),
    ('physics_pair', 20000, 384, 1, 3, 4.5, 555.0),
    ('physics_pair', 45000, 768, 1, 2, 5.9, 908.0),
    ('physics_pair', 45000, 768, 1, 2, 6.5, 908.0),
    ('physics_pair', 102000, 1536, 1, 5, 25.3, 2261.0),
    ('physics_pair', 102000, 1536, 1, 5, 24.0, 2249.0),
    ('physics', 400, 64, 1, 3, 3.7, 440.0),
    ('physics', 2000, 384, 1, 3, 9.5, 632.0),
    ('physics', 10000, 384, 1, 3, 59.3, 1800.0),
    ('umap', 400, 64, 1, 3, 12.3, 628.0),
    ('umap', 2000, 384, 1, 3, 13.9, 645.0),
    ('umap', 10000, 384, 1, 3, 22.1, 706.0),
)
# compare_layers jobs run within a block cache (``block_cache_mb``, from a node's memory): rule, N, d,
# blocks, draws, block_cache_mb, CPU seconds (their block reads included: REREAD_SECONDS), peak MB
MEASURED_CACHED: tuple[tuple[str, int, int, int, int, float, float, float], ...] = (
    ('compare_layers', 102000, 1536, 24, 5, 2695, 4587.5, 7896.0),
)
MEASURED_METRICS = ("mknn", "cka_linear", "cka_unbiased", "cknna", "mutual_info")  # the schema's default names
MEASURED_K = 10
# the physics jobs' tests (one property: the joint overlap needs two; the boosting probe's 100
# trees a fold, refitted per draw, take minutes past 2,000 x 384: measured alone, MEASURE_COSTS)
MEASURED_TESTS = ("ols_probe", "neighbour_consistency", "distance_property_correlation", "neighbour_set_overlap",
                  "knn_purity")
PARALLEL = 0.8  # assumed parallel fraction of a job's work beyond start-up (Amdahl), not measured


# ---- a job's shapes -------------------------------------------------------------------------
@dataclass(frozen=True)
class Side:
    """One embedding: its final width and its blocks' widths (none without a layers file)."""

    d: int
    blocks: tuple[int, ...] = ()

    @property
    def widths(self) -> tuple[int, ...]:
        return (*self.blocks, self.d)


@dataclass(frozen=True)
class Job:
    rule: str
    n: int
    a: Side
    b: Side | None = None  # the other side of a pair (compare, compare_layers)
    draws: int = 0  # null draws
    splits: int = 0  # subsampling splits (a probe: its bootstrap draws)
    metrics: tuple[str, ...] = MEASURED_METRICS  # compare, compare_layers: metrics.names
    feature_space_draws: int = 100  # metrics.feature_space_draws: the costly measures' cap on draws and splits
    cka_null: str = "closed_form"  # metrics.cka_null
    tests: tuple[str, ...] = ()  # physics: probes.physics.tests
    properties: int = 1  # physics: properties tested; umap: figures drawn
    maps: int = 1  # umap: embeddings mapped (of at most n objects each)
    k: int = MEASURED_K
    threads: int = 1
    gpu: bool = False  # on a GPU (the layer-wise graphs and cells of a GPU run): costed as on CPU, at most
    block_cache_mb: float | None = None  # compare_layers: the layer blocks it may hold (None: all; ``block_cache_mb``)

    @property
    def cells(self) -> int:
        return len(self.a.widths) * len(self.b.widths)

    @property
    def block_values(self) -> int:
        """Values in every layer block of both sides (a pair's)."""
        return self.n * (sum(self.a.blocks) + sum(self.b.blocks))

    @property
    def least_block_values(self) -> int:
        """Values in the widest layer block of each side: the least a compare_layers job holds."""
        return self.n * (max(self.a.blocks, default=0) + max(self.b.blocks, default=0))


Term = Callable[[Job], float]


@dataclass(frozen=True)
class Form:
    """One rule's time (CPU seconds) and peak memory (MB) as sums of named terms."""

    time: dict[str, Term]
    memory: dict[str, Term]
    measured: Term | None = None  # seconds measured alone (``MEASURE_COSTS``), added as they are, not fitted
    time_coef: tuple[float, ...] = field(default=(), compare=False)
    memory_coef: tuple[float, ...] = field(default=(), compare=False)


FLOAT16_PER_MB = 2**20 / 2  # layer blocks are float16


def _graph_work(job: Job) -> float:
    return job.n**2 * sum(job.a.widths)


def _held(job: Job) -> float:
    """Values a compare_layers job holds: both final embeddings and the layer blocks its cache
    holds (``metrics.layers.BlockCache``): every block, or within ``block_cache_mb`` (float16) at
    least the widest block of each side."""
    blocks = job.block_values
    if job.block_cache_mb is not None:
        blocks = min(blocks, max(job.least_block_values, job.block_cache_mb * FLOAT16_PER_MB))
    return job.n * (job.a.d + job.b.d) + blocks


def _rereads(job: Job) -> float:
    """Values a compare_layers job reads again when its cache holds fewer than all its blocks: at
    most side B's blocks once per block of side A (the cells in order, least recently used dropped)."""
    if job.rule != "compare_layers" or job.block_cache_mb is None:
        return 0.0
    if job.block_cache_mb * FLOAT16_PER_MB >= job.block_values:
        return 0.0
    return float(len(job.a.widths) * job.n * sum(job.b.blocks))


# ---- each measure alone: a metric's or physics test's score and null draw ---------------------
# OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_paper_scale.py
# --measure-costs (its default sizes: metrics at N = 2,000, 5,000, 10,000 x d = 384, 1,536, physics
# tests at N = 400, 2,000 x d = 64, 384; config/config.yaml's metrics.params, a million sampled
# pairs for the measures that sample them) on 2026-12-07, the 2-core machine shared with other
# engineers' jobs (load 4-8), each size its own run; mi_ksg's rows again on 2026-12-07 (--only mi_ksg, load
# 4-5, NUMBA_NUM_THREADS=1) with its compiled kernels, both ways: 'mi_ksg:kept' keeping both distance
# matrices (a draw reads them), 'mi_ksg' recomputing them every call (above 17,677 objects). CPU seconds of one score (the
# estimator built on the cached graphs and Gram invariants, its closed-form law included) and of
# one null draw; a physics test's record without draws (one property; the joint test two) and each
# draw beyond it. RSA's rows remeasured after its sampled pairs' distances became numpy gathers
# (``Pairwise.pairs``, 4-5x faster), the same day, at load 3.
# measure, N, d, score CPU seconds, draw CPU seconds
MEASURE_COSTS: tuple[tuple[str, int, int, float, float], ...] = (
    ('mknn', 2000, 384, 0.000397, 0.000102),
    ('mknn', 2000, 1536, 0.000336, 0.000111),
    ('mknn', 5000, 384, 0.00071, 0.000189),
    ('mknn', 5000, 1536, 0.000476, 0.000181),
    ('mknn', 10000, 384, 0.00103, 0.000365),
    ('mknn', 10000, 1536, 0.000885, 0.000323),
    ('cka_linear', 2000, 384, 0.0236, 0.00832),
    ('cka_linear', 2000, 1536, 0.331, 0.121),
    ('cka_linear', 5000, 384, 0.0572, 0.0205),
    ('cka_linear', 5000, 1536, 0.906, 0.322),
    ('cka_linear', 10000, 384, 0.113, 0.0386),
    ('cka_linear', 10000, 1536, 1.62, 0.569),
    ('cka_unbiased', 2000, 384, 0.0214, 0.00841),
    ('cka_unbiased', 2000, 1536, 0.325, 0.118),
    ('cka_unbiased', 5000, 384, 0.0636, 0.0249),
    ('cka_unbiased', 5000, 1536, 0.84, 0.279),
    ('cka_unbiased', 10000, 384, 0.108, 0.0388),
    ('cka_unbiased', 10000, 1536, 1.61, 0.543),
    ('cknna', 2000, 384, 0.00542, 0.000804),
    ('cknna', 2000, 1536, 0.00329, 0.000774),
    ('cknna', 5000, 384, 0.0375, 0.00313),
    ('cknna', 5000, 1536, 0.011, 0.00292),
    ('cknna', 10000, 384, 0.0523, 0.00323),
    ('cknna', 10000, 1536, 0.0543, 0.00354),
    ('cknna_formula', 2000, 384, 0.00356, 0.000185),
    ('cknna_formula', 2000, 1536, 0.0162, 0.000206),
    ('cknna_formula', 5000, 384, 0.0142, 0.000753),
    ('cknna_formula', 5000, 1536, 0.0494, 0.00043),
    ('cknna_formula', 10000, 384, 0.0259, 0.000714),
    ('cknna_formula', 10000, 1536, 0.0749, 0.000618),
    ('mutual_info', 2000, 384, 0.157, 0.000242),
    ('mutual_info', 2000, 1536, 1.91, 0.000146),
    ('mutual_info', 5000, 384, 0.133, 0.000553),
    ('mutual_info', 5000, 1536, 2.6, 0.00028),
    ('mutual_info', 10000, 384, 0.178, 0.000482),
    ('mutual_info', 10000, 1536, 3.69, 0.000532),
    ('jaccard', 2000, 384, 0.00593, 0.000397),
    ('jaccard', 2000, 1536, 0.0006, 0.000373),
    ('jaccard', 5000, 384, 0.00818, 0.00164),
    ('jaccard', 5000, 1536, 0.00122, 0.000948),
    ('jaccard', 10000, 384, 0.00813, 0.00203),
    ('jaccard', 10000, 1536, 0.00232, 0.00188),
    ('cycle_knn', 2000, 384, 0.000571, 0.000486),
    ('cycle_knn', 2000, 1536, 0.000528, 0.000448),
    ('cycle_knn', 5000, 384, 0.00255, 0.00279),
    ('cycle_knn', 5000, 1536, 0.00155, 0.00109),
    ('cycle_knn', 10000, 384, 0.00308, 0.00353),
    ('cycle_knn', 10000, 1536, 0.00337, 0.00364),
    ('lcs_knn', 2000, 384, 0.00188, 0.00161),
    ('lcs_knn', 2000, 1536, 0.00193, 0.00167),
    ('lcs_knn', 5000, 384, 0.00635, 0.00579),
    ('lcs_knn', 5000, 1536, 0.00425, 0.00363),
    ('lcs_knn', 10000, 384, 0.00835, 0.00742),
    ('lcs_knn', 10000, 1536, 0.00819, 0.00809),
    ('edit_distance_knn', 2000, 384, 0.00171, 0.00159),
    ('edit_distance_knn', 2000, 1536, 0.00191, 0.00152),
    ('edit_distance_knn', 5000, 384, 0.00594, 0.00548),
    ('edit_distance_knn', 5000, 1536, 0.0039, 0.00397),
    ('edit_distance_knn', 10000, 384, 0.00758, 0.0073),
    ('edit_distance_knn', 10000, 1536, 0.00797, 0.00805),
    ('cka_rbf', 2000, 384, 7.21, 7.23),
    ('cka_rbf', 2000, 1536, 33.1, 32.8),
    ('cka_rbf', 5000, 384, 9.39, 7.58),
    ('cka_rbf', 5000, 1536, 41.7, 38.7),
    ('cka_rbf', 10000, 384, 8.76, 8.5),
    ('cka_rbf', 10000, 1536, 42.5, 43),
    ('mmd', 5000, 384, 3.91, 4.94e-06),
    ('mmd', 5000, 1536, 22.1, 6.5e-06),
    ('mmd', 10000, 384, 6, 4.38e-06),
    ('mmd', 10000, 1536, 24.5, 4.31e-06),
    ('svcca', 2000, 384, 0.0924, 0.0879),
    ('svcca', 2000, 1536, 2.4, 2.47),
    ('svcca', 5000, 384, 0.146, 0.146),
    ('svcca', 5000, 1536, 3.44, 3.76),
    ('svcca', 10000, 384, 0.236, 0.233),
    ('svcca', 10000, 1536, 4.98, 5.42),
    ('pwcca', 2000, 384, 0.0968, 0.101),
    ('pwcca', 2000, 1536, 2.86, 2.92),
    ('pwcca', 5000, 384, 0.176, 0.162),
    ('pwcca', 5000, 1536, 4.33, 4.79),
    ('pwcca', 10000, 384, 0.236, 0.242),
    ('pwcca', 10000, 1536, 5.77, 5.72),
    ('mean_cca', 2000, 384, 0.0898, 0.0909),
    ('mean_cca', 2000, 1536, 4.17, 3.95),
    ('mean_cca', 5000, 384, 0.139, 0.141),
    ('mean_cca', 5000, 1536, 5.3, 5.21),
    ('mean_cca', 10000, 384, 0.216, 0.233),
    ('mean_cca', 10000, 1536, 5.34, 5.28),
    ('procrustes', 2000, 384, 0.042, 0.0416),
    ('procrustes', 2000, 1536, 1.29, 1.31),
    ('procrustes', 5000, 384, 0.09, 0.0916),
    ('procrustes', 5000, 1536, 2, 2.18),
    ('procrustes', 10000, 384, 0.17, 0.171),
    ('procrustes', 10000, 1536, 2.72, 3.16),
    ('cosine_matched', 2000, 384, 0.0104, 0.00742),
    ('cosine_matched', 2000, 1536, 0.0415, 0.0446),
    ('cosine_matched', 5000, 384, 0.0169, 0.0198),
    ('cosine_matched', 5000, 1536, 0.193, 0.101),
    ('cosine_matched', 10000, 384, 0.0333, 0.0385),
    ('cosine_matched', 10000, 1536, 0.279, 0.295),
    ('frechet', 2000, 384, 0.0429, 4e-06),
    ('frechet', 2000, 1536, 1.53, 3.42e-06),
    ('frechet', 5000, 384, 0.0686, 3.89e-06),
    ('frechet', 5000, 1536, 1.91, 5.25e-06),
    ('frechet', 10000, 384, 0.111, 3e-06),
    ('frechet', 10000, 1536, 2.42, 4.84e-06),
    ('shape_angular', 2000, 384, 0.0551, 0.0577),
    ('shape_angular', 2000, 1536, 2.18, 2.11),
    ('shape_angular', 5000, 384, 0.103, 0.103),
    ('shape_angular', 5000, 1536, 2.87, 2.97),
    ('shape_angular', 10000, 384, 0.181, 0.182),
    ('shape_angular', 10000, 1536, 3.78, 3.97),
    ('rsa', 2000, 384, 1.89, 1.98),
    ('rsa', 2000, 1536, 9.05, 8.47),
    ('rsa', 5000, 384, 2.15, 2.12),
    ('rsa', 5000, 1536, 7.74, 8.11),
    ('rsa', 10000, 384, 2.1, 2.08),
    ('rsa', 10000, 1536, 6.91, 7.19),
    ('linear_r2', 2000, 384, 0.074, 0.0723),
    ('linear_r2', 2000, 1536, 3.97, 4.19),
    ('linear_r2', 5000, 384, 0.133, 0.126),
    ('linear_r2', 5000, 1536, 4.79, 5.49),
    ('linear_r2', 10000, 384, 0.24, 0.223),
    ('linear_r2', 10000, 1536, 6.35, 5.95),
    ('linear_r2_both', 2000, 384, 0.116, 0.116),
    ('linear_r2_both', 2000, 1536, 8.02, 8.26),
    ('linear_r2_both', 5000, 384, 0.162, 0.166),
    ('linear_r2_both', 5000, 1536, 8.61, 9.42),
    ('linear_r2_both', 10000, 384, 0.308, 0.285),
    ('linear_r2_both', 10000, 1536, 9.77, 10.5),
    ('tucker', 2000, 384, 0.00314, 0.00223),
    ('tucker', 2000, 1536, 0.00762, 0.0094),
    ('tucker', 5000, 384, 0.00619, 0.00698),
    ('tucker', 5000, 1536, 0.0215, 0.0273),
    ('tucker', 10000, 384, 0.0156, 0.0171),
    ('tucker', 10000, 1536, 0.0454, 0.0952),
    ('eigenspectrum', 2000, 384, 0.0287, 3.29e-06),
    ('eigenspectrum', 2000, 1536, 0.627, 3.19e-06),
    ('eigenspectrum', 5000, 384, 0.0568, 2.21e-06),
    ('eigenspectrum', 5000, 1536, 1.12, 1e-05),
    ('eigenspectrum', 10000, 384, 0.108, 1.17e-05),
    ('eigenspectrum', 10000, 1536, 1.65, 3.67e-06),
    ('riemannian', 2000, 384, 0.0476, 2.66e-06),
    ('riemannian', 2000, 1536, 1.77, 5.1e-06),
    ('riemannian', 5000, 384, 0.0755, 4.86e-06),
    ('riemannian', 5000, 1536, 2.35, 5.62e-06),
    ('riemannian', 10000, 384, 0.136, 1.11e-05),
    ('riemannian', 10000, 1536, 2.81, 6.31e-06),
    ('gaussian_kl', 2000, 384, 0.0318, 3.46e-06),
    ('gaussian_kl', 2000, 1536, 0.802, 3.57e-06),
    ('gaussian_kl', 5000, 384, 0.058, 3.73e-06),
    ('gaussian_kl', 5000, 1536, 1.31, 8.68e-06),
    ('gaussian_kl', 10000, 384, 0.118, 9.79e-06),
    ('gaussian_kl', 10000, 1536, 1.79, 7.11e-06),
    ('gaussian_js', 2000, 384, 0.0429, 3.98e-06),
    ('gaussian_js', 2000, 1536, 1.38, 3.55e-06),
    ('gaussian_js', 5000, 384, 0.074, 4.4e-06),
    ('gaussian_js', 5000, 1536, 1.89, 4.2e-06),
    ('gaussian_js', 10000, 384, 0.128, 1.38e-05),
    ('gaussian_js', 10000, 1536, 2.35, 7.05e-06),
    ('mi_ksg:kept', 2000, 384, 0.501, 0.0122),
    ('mi_ksg', 2000, 384, 0.191, 0.191),
    ('mi_ksg:kept', 2000, 1536, 0.698, 0.012),
    ('mi_ksg', 2000, 1536, 0.707, 0.713),
    ('mi_ksg:kept', 5000, 384, 1.7, 0.0868),
    ('mi_ksg', 5000, 384, 1.19, 1.19),
    ('mi_ksg:kept', 5000, 1536, 5.06, 0.0716),
    ('mi_ksg', 5000, 1536, 4.52, 4.96),
    ('mi_ksg:kept', 10000, 384, 6.37, 0.287),
    ('mi_ksg', 10000, 384, 4.69, 5.2),
    ('mi_ksg:kept', 10000, 1536, 19.1, 0.286),
    ('mi_ksg', 10000, 1536, 17.9, 18.1),
    ('distance_correlation', 2000, 384, 0.0796, 0.0812),
    ('distance_correlation', 2000, 1536, 0.297, 0.272),
    ('distance_correlation', 5000, 384, 0.41, 0.415),
    ('distance_correlation', 10000, 384, 1.33, 1.26),
    ('ols_probe', 400, 64, 0.0174, 0.00233),
    ('ols_probe', 400, 384, 0.0694, 0.0241),
    ('ols_probe', 2000, 64, 0.0196, 0.00742),
    ('ols_probe', 2000, 384, 0.21, 0.0676),
    ('boosting_probe', 400, 64, 1.98, 2.06),
    ('boosting_probe', 400, 384, 9.25, 9.58),
    ('boosting_probe', 2000, 64, 10.4, 10.5),
    ('boosting_probe', 2000, 384, 61.1, 64.7),
    ('neighbour_consistency', 400, 64, 0.00102, 0),
    ('neighbour_consistency', 400, 384, 0.00087, 0),
    ('neighbour_consistency', 2000, 64, 0.00162, 0.000231),
    ('neighbour_consistency', 2000, 384, 0.00238, 0.000231),
    ('distance_property_correlation', 400, 64, 0.0263, 0.0218),
    ('distance_property_correlation', 400, 384, 0.0312, 0.0189),
    ('distance_property_correlation', 2000, 64, 1.07, 0.793),
    ('distance_property_correlation', 2000, 384, 1.11, 0.664),
    ('neighbour_set_overlap', 400, 64, 0.0027, 0.0013),
    ('neighbour_set_overlap', 400, 384, 0.0024, 0.00138),
    ('neighbour_set_overlap', 2000, 64, 0.00652, 0.0038),
    ('neighbour_set_overlap', 2000, 384, 0.00607, 0.0034),
    ('joint_neighbour_set_overlap', 400, 64, 0.00327, 0.00274),
    ('joint_neighbour_set_overlap', 400, 384, 0.00281, 0.00247),
    ('joint_neighbour_set_overlap', 2000, 64, 0.00823, 0.00706),
    ('joint_neighbour_set_overlap', 2000, 384, 0.00707, 0.00666),
    ('knn_purity', 400, 64, 0.000689, 0.000186),
    ('knn_purity', 400, 384, 0.000793, 0.000142),
    ('knn_purity', 2000, 64, 0.00106, 0.000781),
    ('knn_purity', 2000, 384, 0.00119, 0.000964),
)
# A measure's cost is a sum of these (fitted per measure, ``measure_fit``): per-call overhead,
# sampled pairs of d values (RSA's, the RBF bandwidth's), per-object work (kNN lists), a pass
# over the data, moments N d^2, their eigendecomposition d^3, all pairs' elementwise work (kernel
# values, ranks) N^2 and their products N^2 d.
MEASURE_TERMS: dict[str, Callable[[float, float], float]] = {
    "1": lambda n, d: 1.0, "d": lambda n, d: d, "N": lambda n, d: n, "N d": lambda n, d: n * d,
    "N d^2": lambda n, d: n * d * d, "d^3": lambda n, d: d**3, "N^2": lambda n, d: n * n,
    "N^2 d": lambda n, d: n * n * d}


@cache
def measure_fit() -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    """Per measure of ``MEASURE_COSTS``, the coefficients of ``MEASURE_TERMS`` of its score and
    of its null draw (``_nnls_relative``)."""
    rows: dict[str, list] = {}
    for name, n, d, score, draw in MEASURE_COSTS:
        rows.setdefault(name, []).append(([t(n, d) for t in MEASURE_TERMS.values()], score, draw))
    return {name: (_nnls_relative([x for x, _, _ in r], [s for _, s, _ in r]),
                   _nnls_relative([x for x, _, _ in r], [max(q, 1e-6) for _, _, q in r])) for name, r in rows.items()}


def measure_seconds(name: str, n: float, d: float) -> tuple[float, float]:
    """(score, null draw) CPU seconds of measure ``name`` on n objects of width d; one never
    measured costs as the dearest measured one at that shape (an upper bound until it is)."""
    x = np.array([t(n, d) for t in MEASURE_TERMS.values()])
    fits = measure_fit()
    if name not in fits:
        return max((measure_seconds(other, n, d) for other in fits), key=sum)
    score, draw = fits[name]
    return float(x @ score), float(x @ draw)


def metric_seconds(name: str, job: Job, d_a: float, d_b: float, layered: bool = False) -> float:
    """CPU seconds of metric ``name`` on one pair of widths of ``job``: its score, its null draws
    (``Metric.null_draws_made``: none for a closed-form law, which a layer cell always takes) and
    its subsampling splits (``Metric.splits_made``; each rescores the halves and, for the
    neighbourhood interval, the quarters). A pair of widths costs the mean of the two same-width
    pairs: exact for work per side, within the arithmetic-geometric mean for a cross product."""
    return _metric_seconds(name, job.n, d_a, d_b, job.draws, job.splits, job.feature_space_draws,
                           layered or job.cka_null == "closed_form")


@cache
def _metric_seconds(name: str, n: int, d_a: float, d_b: float, draws: int, splits: int, cap: int,
                    closed_form: bool) -> float:
    from .metrics.registry import QUARTER_INTERVALS, get_metric

    spec = get_metric(name)
    # a metric keeping per-pair quantities at n (Metric.keeps): its ':kept' rows, a subsample's score
    # read from them as a draw is
    kept = spec.keeps(n)
    measure = f"{name}:kept" if kept else name

    def score_draw(rows):
        (sa, qa), (sb, qb) = measure_seconds(measure, rows, d_a), measure_seconds(measure, rows, d_b)
        return (sa + sb) / 2, (qa + qb) / 2

    score, draw = score_draw(n)
    made = 0 if spec.closed_form and closed_form else spec.null_draws_made(draws, cap)
    sub = 1 if kept else 0
    split = 2 * score_draw(n / 2)[sub] + (4 * score_draw(n / 4)[sub] if spec.interval in QUARTER_INTERVALS else 0.0)
    return score + made * draw + spec.splits_made(splits, cap) * split


def _metrics(job: Job, measured: bool = True) -> float:
    """Seconds of a compare job's metrics (``metric_seconds``) that its rows measured in jobs
    (``MEASURED_METRICS``: fitted, since they share moments there), or of the others (as alone)."""
    return sum(metric_seconds(name, job, job.a.d, job.b.d) for name in job.metrics
               if (name in MEASURED_METRICS) == measured)


def _split_decompositions(job: Job) -> float:
    """sum(d^3) a side for each subsampling split a feature-space metric rescores
    (``Metric.splits_made``: at most metrics.feature_space_draws), none without one."""
    from .metrics.registry import get_metric

    splits = max((spec.splits_made(job.splits, job.feature_space_draws) for spec in map(get_metric, job.metrics)
                  if spec.costly_splits), default=0)
    return float(splits * (job.a.d**3 + job.b.d**3))


def _moments(job: Job) -> float:
    """1 where a metric with a batched layer hook reads the blocks' features (their moments), else 0."""
    from .metrics.registry import get_metric

    return float(any(get_metric(name).layer_cells is not None and not get_metric(name).uses_knn
                     for name in job.metrics))


def _products(job: Job) -> float:
    """N sum(d_a) sum(d_b): every cell's cross product where a metric's layer hook multiplies each
    cell's two blocks (``Metric.cell_products``: the CKAs'), else 0."""
    from .metrics.registry import get_metric

    if not any(get_metric(name).cell_products for name in job.metrics):
        return 0.0
    return float(job.n * sum(job.a.widths) * sum(job.b.widths))


def metric_cells(name: str, job: Job) -> float:
    """Seconds of metric ``name`` on every layer cell of a compare_layers job (``metric_seconds``):
    a cell's cost is the mean of its two same-width pairs', so the cells' sum is each side's sum
    over its widths times the other side's count of widths."""
    return sum(len(other.widths) * count * metric_seconds(name, job, w, w, layered=True) / 2
               for own, other in ((job.a, job.b), (job.b, job.a)) for w, count in Counter(own.widths).items())


def _cells(job: Job, hooked: bool) -> float:
    """Seconds of the layer cells of a compare_layers job's metrics with (or without) a batched
    hook (``Metric.layer_cells``)."""
    from .metrics.registry import get_metric

    return sum(metric_cells(name, job) for name in job.metrics if (get_metric(name).layer_cells is not None) == hooked)


def _sampled_pairs(job: Job) -> float:
    """Pairs the distance-property correlation ranks (the reference's ``max_samples`` of a physics
    job's objects, all pairs: its memory), none without that test."""
    from .physics import DEFAULTS

    if "distance_property_correlation" not in job.tests:
        return 0.0
    return float(min(job.n, DEFAULTS["distance_property_correlation"]["max_samples"]) ** 2)


def physics_seconds(job: Job) -> float:
    """Seconds of a physics job's tests (``physics.TESTS``): each test per property (the joint
    overlap once), its score, its null draws and its subsampling splits (the halves and, for a
    neighbourhood test, the quarters), each draw as measured beside the score; on the final
    embedding and, with probes.physics.per_block, on every block (``Side.widths``)."""
    from .physics import TESTS

    total = 0.0
    for d in job.a.widths:
        for name in job.tests:
            (score, draw), half, quarter = (measure_seconds(name, n, d) for n in (job.n, job.n / 2, job.n / 4))
            split = 2 * half[0] + (4 * quarter[0] if TESTS[name].neighbourhood else 0.0)
            times = 1 if name == "joint_neighbour_set_overlap" else job.properties
            total += times * (score + job.draws * draw + job.splits * split)
    return total


FORMS: dict[str, Form] = {
    # knn_graph: one exact graph per width (final and every block): N^2 d each, and per pair of
    # objects a selection step and the invariants' cube, whatever d (N^2 a width); its Gram
    # invariants (CKA's closed-form null) N d^2 and d^3, I/O N d; memory: the widest block in
    # float32 and a 4096 x N tile
    "knn_graph": Form(
        time={"1": lambda j: 1.0, "N^2 sum(d)": _graph_work, "N^2 widths": lambda j: float(j.n**2 * len(j.a.widths)),
              "N sum(d^2)": lambda j: j.n * sum(w * w for w in j.a.widths),
              "sum(d^3)": lambda j: float(sum(w**3 for w in j.a.widths)), "N sum(d)": lambda j: j.n * sum(j.a.widths)},
        memory={"1": lambda j: 1.0, "N max(d)": lambda j: j.n * max(j.a.widths), "N": lambda j: float(j.n)}),
    # compare: both final embeddings; every metric's score, null draws and subsampling splits as
    # measured alone (``metric_seconds``: the default five fitted, as the measured jobs ran them,
    # sharing their moments; the others added as measured alone, sharing nothing), per split the
    # cached graphs restricted to its subsamples, and the halves' eigendecompositions (MI's
    # principal axes, d^3 a side) beyond their share alone
    "compare": Form(
        time={"1": lambda j: 1.0, "metrics": _metrics, "N splits": lambda j: float(j.n * j.splits),
              "splits sum(d^3)": _split_decompositions},
        memory={"1": lambda j: 1.0, "N (d_a + d_b)": lambda j: j.n * (j.a.d + j.b.d)},
        measured=lambda j: _metrics(j, measured=False)),
    # compare_layers: every (block_a, block_b) cell of every metric, the metrics with a batched hook
    # (``_cells``) fitted, their scores and draws apart (a hook shares a block's work across its
    # cells), the others (``drawn_cells``: the estimator per cell, as measured alone) added as
    # measured; per block the hooks' moments N d^2 and their eigendecomposition d^3, per cell the
    # CKAs' cross product N d_a d_b (``_products``);
    # memory: the blocks it holds (float16; ``_held``: every one, measured) and both final
    # embeddings, and a cell's working copies
    "compare_layers": Form(
        time={"1": lambda j: 1.0, "hooked cell scores": lambda j: _cells(replace(j, draws=0), True),
              "hooked cell draws": lambda j: _cells(j, True) - _cells(replace(j, draws=0), True),
              "N sum(d_a) sum(d_b) cell products": _products,
              "sum(d^3) moments": lambda j: sum(w**3 for w in (*j.a.widths, *j.b.widths)) * _moments(j),
              "N sum(d^2) moments": lambda j: j.n * sum(w * w for w in (*j.a.widths, *j.b.widths)) * _moments(j)},
        memory={"1": lambda j: 1.0, "N sum(d_a + d_b) held": _held,
                "N max(d)": lambda j: j.n * max((*j.a.widths, *j.b.widths))},
        measured=lambda j: _cells(j, False)),
    # probe: cross-validated fits on N x d (PCA to 64 components per fold; the kNN probe's
    # neighbours N^2 d), refitted for every null draw (draws); its bootstrap resamples N
    # predictions (splits: probes.bootstrap_draws)
    "probe": Form(
        time={"1": lambda j: 1.0, "N d": lambda j: float(j.n * j.a.d), "N^2 d": lambda j: float(j.n**2 * j.a.d),
              "N d draws": lambda j: float(j.n * j.a.d * j.draws), "N splits": lambda j: float(j.n * j.splits)},
        memory={"1": lambda j: 1.0, "N d": lambda j: float(j.n * j.a.d)}),
    # physics: its tests as measured alone (``physics_seconds``); memory: the embedding and its
    # graph, and the distance-property correlation's all pairs of its sample (``_sampled_pairs``)
    "physics": Form(
        time={"1": lambda j: 1.0, "tests": physics_seconds},
        memory={"1": lambda j: 1.0, "N d": lambda j: float(j.n * j.a.d), "sampled pairs": _sampled_pairs}),
    # umap: umap-learn's import and kernels' compilation once, then 200 epochs over each map's
    # objects and their n_neighbors (its kNN graph, cached); memory: one embedding at a time
    "umap": Form(
        time={"1": lambda j: 1.0, "maps N": lambda j: float(j.maps * j.n)},
        memory={"1": lambda j: 1.0, "N d": lambda j: float(j.n * j.a.d)}),
}
FORMS["truth_knn_graph"] = FORMS["knn_graph"]  # the same code (knn_file) on the latent truth
# physics_pair: both embeddings and graphs read, N (d_a + d_b); per property and subsampling split
# both graphs restricted to its halves and quarters (their rows normalised, N (d_a + d_b)); every
# null draw and subsample rescored on N objects' neighbours (draws and splits: per property, summed)
FORMS["physics_pair"] = Form(
    time={"1": lambda j: 1.0, "N (d_a + d_b)": lambda j: float(j.n * (j.a.d + j.b.d)),
          "N (d_a + d_b) splits": lambda j: float(j.n * (j.a.d + j.b.d) * j.splits),
          "N (draws + splits)": lambda j: float(j.n * (j.draws + j.splits))},
    memory={"1": lambda j: 1.0, "N (d_a + d_b)": lambda j: float(j.n * (j.a.d + j.b.d))})


def bench_job(rule: str, n: int, d: int, blocks: int, draws: int, metrics: tuple[str, ...] = MEASURED_METRICS) -> Job:
    """A job of ``benchmarks/bench_paper_scale.py``: one model on both sides of the pair, its
    metrics (measured: the five default ones), the case's draws as null draws and subsampling
    splits (probe: its bootstrap draws); physics: ``MEASURED_TESTS`` on one property; umap: both
    sides' maps, one figure."""
    side = Side(d, (d,) * blocks if rule in ("knn_graph", "compare_layers") else ())
    pair = rule in ("compare", "compare_layers", "physics_pair")
    return Job(rule, n, side, side if pair else None, draws=draws,
               splits=draws if rule in ("compare", "probe", "physics", "physics_pair") else 0,
               metrics=tuple(metrics), tests=MEASURED_TESTS if rule == "physics" else (),
               maps=2 if rule == "umap" else 1)


def measured_jobs() -> list[tuple[Job, float, float]]:
    """``MEASURED`` and ``MEASURED_CACHED`` as (job, CPU seconds, peak MB)."""
    return [*((bench_job(rule, n, d, blocks, draws), seconds, peak)
              for rule, n, d, blocks, draws, seconds, peak in MEASURED),
            *((replace(bench_job(rule, n, d, blocks, draws), block_cache_mb=cache_mb), seconds, peak)
              for rule, n, d, blocks, draws, cache_mb, seconds, peak in MEASURED_CACHED)]


def _nnls_relative(rows: list[list[float]], targets: list[float]) -> tuple[float, ...]:
    """Non-negative coefficients minimising the sum of squared relative errors: the least-squares
    solution on every subset of the terms, the best one that is non-negative (exact for the few
    terms of a form; numpy only, as every workflow parse fits)."""
    A = np.array(rows, float) / np.array(targets, float)[:, None]
    scale = np.abs(A).max(axis=0)
    scale[scale == 0] = 1.0
    A, y, p = A / scale, np.ones(len(targets)), A.shape[1]
    best, best_err = np.zeros(p), float(len(targets))  # all zero: every relative error is -1
    for subset in itertools.chain.from_iterable(itertools.combinations(range(p), r) for r in range(1, p + 1)):
        coef = np.zeros(p)
        coef[list(subset)] = np.linalg.lstsq(A[:, subset], y, rcond=None)[0]
        err = float(np.sum((A @ coef - y) ** 2))
        if coef.min() >= 0 and err < best_err - 1e-12:
            best, best_err = coef, err
    return tuple(float(c) for c in best / scale)


@cache
def fit() -> dict[str, Form]:
    """Every rule's form with its coefficients fitted to ``MEASURED`` (the rules it measured)."""
    data = measured_jobs()
    out = {}
    for rule, form in FORMS.items():
        rows = [(job, s, mb) for job, s, mb in data if job.rule == ("knn_graph" if rule == "truth_knn_graph" else rule)]
        if not rows:
            continue
        # fitted: what the form's terms price (the measured-alone seconds and the block reads apart)
        fitted = [s - (form.measured(j) if form.measured else 0.0) - REREAD_SECONDS * _rereads(j) for j, s, _ in rows]
        time_coef = _nnls_relative([[t(j) for t in form.time.values()] for j, _, _ in rows], fitted)
        memory_coef = _nnls_relative([[t(j) for t in form.memory.values()] for j, _, _ in rows],
                                     [mb for _, _, mb in rows])
        out[rule] = replace(form, time_coef=time_coef, memory_coef=memory_coef)
    return out


def _speedup(threads: int) -> float:
    return 1.0 / ((1 - PARALLEL) + PARALLEL / max(int(threads), 1))


MOST_THREADS = 64  # the most threads ``threads_needed`` considers (the model's speedup is 4.8x there)


def threads_needed(job: Job, max_hours: float) -> int | None:
    """The fewest threads that bring ``job``'s predicted time within ``max_hours`` (by the model's
    80% parallel work), or None where even MOST_THREADS do not."""
    for threads in (1, 2, 4, 8, 16, 32, MOST_THREADS):
        if predict(replace(job, threads=threads))[0] <= max_hours * 3600:
            return threads
    return None


# Seconds per value a compare_layers job reads again (``_rereads``): a 102,000 x 1536 float16 block
# read from a layers file in the page cache (0.16 s) and restricted to common rows (0.16 s),
# measured on 2026-12-07 on the 2-core development machine (load 6); on a shared filesystem more.
REREAD_SECONDS = 2.0e-9


def predict(job: Job) -> tuple[float, float]:
    """(seconds, peak MB) of ``job`` by its rule's fitted form (and its re-read blocks, ``_rereads``)."""
    forms = fit()
    if job.rule not in forms:
        raise KeyError(f"rule {job.rule!r} has no cost model; modelled: {sorted(forms)}")
    form = forms[job.rule]
    terms = [c * t(job) for c, t in zip(form.time_coef, form.time.values())]
    if form.measured:
        terms.append(form.measured(job))
    seconds = terms[0] + sum(terms[1:]) / _speedup(job.threads) + REREAD_SECONDS * _rereads(job)
    peak = sum(c * t(job) for c, t in zip(form.memory_coef, form.memory.values())) + _kept_mb(job)
    return seconds, peak


def _kept_mb(job: Job) -> float:
    """MB a comparison job's metrics keep for a pair (``Metric.kept_bytes``: mi_ksg's distance
    matrices), added as they are to the fitted peak (the measured jobs ran without them)."""
    if job.rule not in ("compare", "compare_layers"):
        return 0.0
    from .metrics.registry import get_metric

    return sum(spec.kept_bytes(job.n) for spec in map(get_metric, job.metrics) if spec.kept_bytes) / 2**20


# ---- cluster resources ----------------------------------------------------------------------
MEMORY_MARGIN, MEMORY_FLOOR_MB = 1.25, 500
TIME_MARGIN, TIME_FLOOR_MIN = 1.5, 5


def job_resources(job: Job, attempt: int = 1, node_memory_gb: float | None = None,
                  max_runtime_hours: float | None = None) -> dict[str, int]:
    """mem_mb and runtime (minutes) to ask for ``job``: the prediction with margins, grown on
    retries (``attempt_growth``), at most a node's memory and the longest runtime allowed; for
    compare_layers also ``block_cache_mb``, the blocks it may hold in that memory (all of them
    unless the node caps it: then it reads blocks again, and its time says so)."""
    seconds, peak = predict(job)
    grow = attempt_growth(attempt)
    mem = math.ceil((MEMORY_MARGIN * peak + MEMORY_FLOOR_MB) * grow)
    if node_memory_gb is not None:
        mem = min(mem, int(node_memory_gb * 1024))
    out = {"mem_mb": mem}
    if job.rule == "compare_layers":
        out["block_cache_mb"] = block_cache_mb(job, mem)
        seconds = predict(replace(job, block_cache_mb=out["block_cache_mb"]))[0]
    minutes = math.ceil((TIME_MARGIN * seconds / 60 + TIME_FLOOR_MIN) * grow)
    if max_runtime_hours is not None:
        minutes = min(minutes, int(max_runtime_hours * 60))
    return {**out, "runtime": minutes}


def least_memory(job: Job) -> float:
    """The smallest peak (MB) ``job`` can run in: a compare_layers job holding one block a side."""
    return predict(replace(job, block_cache_mb=0) if job.rule == "compare_layers" else job)[1]


def block_cache_mb(job: Job, mem_mb: float) -> int:
    """The layer blocks (MB of float16) a compare_layers job given ``mem_mb`` may hold: the values
    whose predicted peak, at the request's margins, fills ``mem_mb`` (every block when nothing
    caps the request)."""
    per_value = fit()["compare_layers"].memory_coef[list(FORMS["compare_layers"].memory).index("N sum(d_a + d_b) held")]
    if per_value <= 0:
        return math.ceil(job.block_values / FLOAT16_PER_MB)
    spare = (mem_mb - MEMORY_FLOOR_MB) / MEMORY_MARGIN - least_memory(job)  # MB beyond one block a side
    values = job.least_block_values + spare / per_value
    return max(0, math.ceil(min(values, job.block_values) / FLOAT16_PER_MB))


@cache
def block_dims(key: str, tiny: bool = False) -> tuple[int, ...]:
    """The width of each of a model's blocks (what ``embed.layers: all`` writes), from its
    architecture (its tiny build's with ``tiny``)."""
    spec = get_model(key)
    arch = spec.arch_for(tiny)
    config = arch.get("config", {})
    if "depths" in config:  # ConvNeXt V2: every block of every stage, at its stage's width
        return tuple(w for depth, w in zip(config["depths"], config["hidden_sizes"]) for _ in range(depth))
    if "blocks" in arch:
        tower = "vision_config" if arch["blocks"].startswith("vision") else "text_config"
        config = config.get(tower, config)
    if "num_hidden_layers" in config:
        return (config["hidden_size"],) * config["num_hidden_layers"]
    if "model_args" in arch:  # AstroPT
        return (arch["model_args"]["n_embd"],) * arch["model_args"]["n_layer"]
    if "hyper_parameters" in arch:  # Specformer
        return (arch["hyper_parameters"]["embed_dim"],) * arch["hyper_parameters"]["num_layers"]
    if "image" in arch and "spectrum" in arch:  # AstroCLIP: the tower of its modality
        tower = arch["image"] if spec.modality == "image" else arch["spectrum"]
        return (tower["embed_dim"],) * tower.get("depth", tower.get("num_layers", 0))
    if "model" in arch and "encoder_depth" in arch["model"]:  # AION: its encoder
        return (arch["model"]["dim"],) * arch["model"]["encoder_depth"]
    raise ValueError(f"model {key!r}: its block count and widths are not in its registry architecture")


# ---- the jobs of a plan -----------------------------------------------------------------------
# The paper's crossmatches before ingestion (its section 2; COSMOS-Web: the authors' 45,000 rows,
# docs/PAPER.md): an ingested or simulated crossmatch's own count wins (``PlanCost.sizes``).
PAPER_SIZES = {"Smith42/jwst_hsc_crossmatched": 1_667, "Smith42/legacysurvey_hsc_crossmatched": 102_000,
               "Smith42/desi_hsc_crossmatched": 18_600, "Smith42/sdss_hsc_crossmatched": 2_320,
               "Ashodkh/cosmosweb-hsc-jwst-high-snr-pil2": 45_000}
UNKNOWN_N = max(PAPER_SIZES.values())  # a hub crossmatch not yet ingested, of unknown size


@dataclass(frozen=True)
class Planned:
    """One job of a plan: its rule, wildcards and shapes."""

    rule: str
    wildcards: dict
    job: Job | None  # None: embed (costed by ``models.resources``)


class PlanCost:
    """The cost of a ``Plan``'s jobs: their shapes (``jobs``), resources (``resources``), the
    plan-time check that each fits a node (``check_fits_nodes``) and the run's summary (``summary``)."""

    def __init__(self, plan):
        self.plan = plan
        self.cluster = plan.config["cluster"]
        self.tiny = plan.config["models"]["weights"] == "tiny"
        self.sizes = {name: self._size(name) for name in plan.crossmatches}

    def _size(self, name: str) -> tuple[int, str]:
        """(N, where it comes from) of crossmatch ``name``."""
        from pathlib import Path

        from .schema import open_h5

        source = self.plan.source(name)
        if "simulate" in source:
            return int(source["simulate"]["n"]), "simulate.n"
        path = self.plan.crossmatch_path(name)
        if Path(path).exists():
            with open_h5(path) as f:
                return int(f["object_id"].shape[0]), path
        dataset = source.get("hf", {}).get("dataset")
        if dataset in PAPER_SIZES:
            return PAPER_SIZES[dataset], "the paper"
        return UNKNOWN_N, "unknown before ingestion: assumed"

    def side(self, survey: str, model: str, blocks: bool) -> Side:
        from .latent_keys import TRUTH_KEYS
        from .plan import TRUTH_SURVEY

        if survey == TRUTH_SURVEY:
            return Side(len(TRUTH_KEYS))  # about: the latent properties the truth embedding holds
        spec = get_model(model)
        d = spec.tiny.get("dim", spec.dim) if self.tiny else spec.dim
        layers = self.plan.layers()
        if not blocks or layers == "final":
            return Side(d)
        dims = block_dims(model, self.tiny)
        chosen = dims if layers == "all" else [dims[j] for j in layers if -len(dims) <= j < len(dims)]
        return Side(d, tuple(chosen))

    def job(self, rule: str, wildcards, threads: int = 1) -> Job:
        """The shapes of one job of ``rule`` (a modelled rule) named by ``wildcards``."""
        w = dict(wildcards.items()) if hasattr(wildcards, "items") else dict(wildcards)
        if rule == "umap":
            return self._umap_job(threads)
        n = self.sizes[w["crossmatch"]][0]
        gpu = self.plan.layers() != "final" and self.plan.embed_params()["device"] != "cpu"
        m = self.plan.config["metrics"]
        if rule in ("knn_graph", "truth_knn_graph"):
            return Job(rule, n, self.side(w["survey"], w["model"], rule == "knn_graph"), threads=threads,
                       gpu=gpu and rule == "knn_graph")
        if rule == "probe":
            p = self.plan.config["probes"]
            return Job(rule, n, self.side(w["survey"], w["model"], False), draws=p["null_draws"],
                       splits=p["bootstrap_draws"], threads=threads)
        if rule == "physics_pair":  # draws and splits of every property it tests
            phys, props = self.plan.config["probes"]["physics"], len(self.plan.physics_properties(w["crossmatch"]))
            return Job(rule, n, self.side(w["survey_a"], w["model_a"], False), self.side(w["survey_b"], w["model_b"], False),
                       draws=phys["null_draws"] * props, splits=phys["subsampling_splits"] * props, threads=threads)
        if rule == "physics":
            p = self.plan.config["probes"]["physics"]
            return Job(rule, n, self.side(w["survey"], w["model"], self.plan.physics_per_block()), draws=p["null_draws"],
                       splits=p["subsampling_splits"], tests=tuple(self.plan.physics_tests()),
                       properties=len(self.plan.physics_properties(w["crossmatch"])), threads=threads)
        layered = rule == "compare_layers"
        a = self.side(w["survey_a"], w["model_a"], layered)
        b = self.side(w["survey_b"], w["model_b"], layered)
        return Job(rule, n, a, b, draws=m["null_draws"], splits=0 if layered else m["subsampling_splits"],
                   metrics=tuple(m["names"]), feature_space_draws=m["feature_space_draws"], cka_null=m["cka_null"],
                   k=m["k"], threads=threads, gpu=gpu and layered)

    def _umap_job(self, threads: int = 1) -> Job:
        """The umap job (one for every map, ``Plan.umap_maps``): its maps, each costed at the largest
        crossmatch's objects and the widest embedding (an upper bound), and its figures."""
        maps = self.plan.umap_maps
        n = max(self.sizes[m["crossmatch"]][0] for m in maps)
        d = max(self.side(m["survey"], m["model"], False).d for m in maps)
        figures = sum(len(self.plan.physics_properties(xm)) for xm in {m["crossmatch"] for m in maps})
        return Job("umap", n, Side(d), maps=len(maps), properties=figures, threads=threads)

    def resources(self, rule: str, wildcards, attempt: int = 1, threads: int = 1) -> dict[str, int]:
        """mem_mb and runtime of one job (``job_resources``), within the node (config ``cluster``)."""
        return job_resources(self.job(rule, wildcards, threads), attempt, self.cluster["node_memory_gb"],
                             self.cluster["max_runtime_hours"])

    def as_run(self, job: Job) -> Job:
        """``job`` with the block cache its first attempt is given (compare_layers; others as they are)."""
        if job.rule != "compare_layers":
            return job
        budget = job_resources(job, 1, self.cluster["node_memory_gb"])["block_cache_mb"]
        return replace(job, block_cache_mb=budget)

    def jobs(self) -> list[Planned]:
        """Every embed, metric-stage and probe-stage job of the plan."""
        from .plan import TRUTH_SURVEY

        plan, out = self.plan, []
        precomputed = plan.precomputed()
        for xm, survey, model in plan.embeddings:
            w = {"crossmatch": xm, "survey": survey, "model": model}
            if (xm, survey, model) not in precomputed:
                out.append(Planned("embed", w, None))
            out.append(Planned("knn_graph", w, self.job("knn_graph", w)))
        truths = {(c.crossmatch, c.model_b) for c in plan.comparisons if c.survey_b == TRUTH_SURVEY}
        for xm, model in sorted(truths):
            w = {"crossmatch": xm, "survey": TRUTH_SURVEY, "model": model}
            out.append(Planned("truth_knn_graph", w, self.job("truth_knn_graph", w)))
        for rule, comparisons in (("compare", plan.comparisons), ("compare_layers", plan.layer_comparisons())):
            for c in comparisons:
                w = {key: value for key, value in c.as_dict().items() if key != "kind"}
                out.append(Planned(rule, w, self.job(rule, w)))
        for rule, embeddings in (("probe", plan.probes), ("physics", plan.physics)):
            for xm, survey, model in embeddings:
                w = {"crossmatch": xm, "survey": survey, "model": model}
                out.append(Planned(rule, w, self.job(rule, w)))
        for c in plan.physics_pairs:
            w = {key: value for key, value in c.as_dict().items() if key != "kind"}
            out.append(Planned("physics_pair", w, self.job("physics_pair", w)))
        if plan.umap_maps:
            out.append(Planned("umap", {}, self._umap_job()))
        return out

    def check_fits_nodes(self) -> None:
        """Every job's least peak memory (``least_memory``: a compare_layers job holding one block
        a side) fits a node (``cluster.node_memory_gb``), before any job."""
        limit = self.cluster["node_memory_gb"]
        for planned in self.jobs():
            if planned.job is None:
                continue
            peak = least_memory(planned.job)
            if peak > limit * 1024:
                job = planned.job
                sides = [job.a] + ([job.b] if job.b else [])
                shapes = "; ".join(f"d={s.d}, {len(s.blocks)} blocks of {sum(s.blocks)} dimensions in all"
                                   for s in sides)
                names = ", ".join(f"{k}={v}" for k, v in planned.wildcards.items())
                raise ConfigError(
                    f"cluster.node_memory_gb: job {planned.rule} ({names}) is predicted to need {peak / 1024:.1f} GB "
                    f"(N={job.n}; {shapes}), more than a node's {limit:g} GB; run it on a larger node and raise "
                    f"cluster.node_memory_gb, or write fewer blocks (embed.layers: a list), or leave the model out")

    def embed_cost(self, w: dict) -> tuple[float, float, float]:
        """(GPU seconds, CPU seconds, requested MB) of one embed job: N at the model's catalogue rate
        (``EMBED_RATES``; twice that with blocks), its cores for as long."""
        key = w["model"].replace("@random", "")
        layers = self.plan.layers() != "final"
        seconds = self.sizes[w["crossmatch"]][0] / EMBED_RATES[key][0] * (2 if layers else 1)
        return seconds, seconds * embed_cpus(key), resources_for(w["model"], layers=layers)["mem_mb"]

    def disk_bytes(self, planned: Planned) -> float:
        """Bytes one job writes: float32 embeddings, float16 blocks, graphs (int64 + float32 a
        neighbour), records, figures."""
        w, job = planned.wildcards, planned.job
        if planned.rule == "umap":
            return 500_000 * job.properties  # a figure's PNG and PDF
        n = self.sizes[w["crossmatch"]][0]
        if planned.rule == "embed":
            side = self.side(w["survey"], w["model"], True)
            return n * side.d * 4 + n * sum(side.blocks) * 2
        if planned.rule in ("knn_graph", "truth_knn_graph"):
            return n * 12 * (self.plan.graph_width() + job.k * len(job.a.blocks))
        if planned.rule == "compare":
            return 2_000 * len(job.metrics)
        if planned.rule == "compare_layers":
            return 400 * job.cells * len(job.metrics)
        return 20_000  # a probe's, physics or physics_pair job's records

    def summary(self) -> dict:
        """Per rule: jobs, CPU-hours, GPU-hours, the largest peak memory (GB), disk (GB); the totals,
        the critical path (hours: the slowest embed -> graph -> comparison chain) and each metric's
        CPU-hours in the comparisons as measured alone (``metric_seconds``: what leaving it out saves)."""
        rows: dict[str, dict] = {}
        wall: dict[tuple, float] = {}
        over = []
        by_metric = dict.fromkeys(self.plan.config["metrics"]["names"], 0.0)
        for planned in self.jobs():
            job = planned.job
            for name in by_metric if planned.rule in ("compare", "compare_layers") else ():
                by_metric[name] += (metric_cells(name, job) if planned.rule == "compare_layers"
                                    else metric_seconds(name, job, job.a.d, job.b.d)) / 3600
            row = rows.setdefault(planned.rule, {"jobs": 0, "cpu_h": 0.0, "gpu_h": 0.0, "peak_gb": 0.0, "disk_gb": 0.0})
            if planned.job is None:
                gpu_s, cpu_s, mem = self.embed_cost(planned.wildcards)
                row["gpu_h"] += gpu_s / 3600
                seconds = gpu_s
            else:
                seconds, mem = predict(self.as_run(planned.job))
                cpu_s = seconds
                if planned.job.gpu:  # it holds a GPU for as long (at most: its CPU prediction)
                    row["gpu_h"] += seconds / 3600
                if seconds > self.cluster["max_runtime_hours"] * 3600:
                    over.append(threads_needed(self.as_run(planned.job), self.cluster["max_runtime_hours"]))
            row["jobs"] += 1
            row["cpu_h"] += cpu_s / 3600
            row["peak_gb"] = max(row["peak_gb"], mem / 1024)
            row["disk_gb"] += self.disk_bytes(planned) / 1e9
            wall[(planned.rule, *planned.wildcards.values())] = seconds
        total = {key: sum(r[key] for r in rows.values()) for key in ("jobs", "cpu_h", "gpu_h", "disk_gb")}
        total["peak_gb"] = max(r["peak_gb"] for r in rows.values())
        return {"rules": rows, "total": total, "critical_path_h": self._critical_path(wall) / 3600,
                "over_max_runtime": len(over), "max_runtime_hours": self.cluster["max_runtime_hours"],
                "threads_needed": max((t for t in over if t), default=None),
                "beyond_threads": sum(t is None for t in over), "sizes": self.sizes, "metrics_h": by_metric}

    def _critical_path(self, wall: dict) -> float:
        def side(xm, survey, model):
            if ("knn_graph", xm, survey, model) not in wall:  # the latent truth: no embed job
                return wall.get(("truth_knn_graph", xm, survey, model), 0.0)
            return wall.get(("embed", xm, survey, model), 0.0) + wall[("knn_graph", xm, survey, model)]

        longest = 0.0
        for rule, comparisons in (("compare", self.plan.comparisons), ("compare_layers", self.plan.layer_comparisons())):
            for c in comparisons:
                before = max(side(c.crossmatch, c.survey_a, c.model_a), side(c.crossmatch, c.survey_b, c.model_b))
                longest = max(longest, before + wall[(rule, c.crossmatch, c.survey_a, c.model_a, c.survey_b,
                                                      c.model_b)])
        return longest


def _figure(x: float) -> str:
    """Whole numbers from 1000, one decimal below, two significant digits below 1 (a demo's jobs
    take minutes, not hours)."""
    return f"{x:.0f}" if x >= 1000 else f"{x:.1f}" if x >= 0.95 or x == 0 else f"{x:.2g}"


def format_summary(summary: dict, title: str) -> str:
    """A summary (``PlanCost.summary``) as a plain-text table."""
    lines = [title, f"{'rule':<17}{'jobs':>6}{'CPU-h':>11}{'GPU-h':>11}{'peak GB':>9}{'disk GB':>10}"]
    for rule, r in [*summary["rules"].items(), ("total", summary["total"])]:
        lines.append(f"{rule:<17}{r['jobs']:>6}" + "".join(f"{_figure(r[key]):>{width}}" for key, width in
                                                           (("cpu_h", 11), ("gpu_h", 11), ("peak_gb", 9), ("disk_gb", 10))))
    lines.append(f"critical path: {_figure(summary['critical_path_h'])} h (slowest embed -> kNN graph -> comparison, "
                 f"one thread a metric job)")
    dearest = sorted(summary["metrics_h"].items(), key=lambda item: -item[1])
    rest = f", the other {len(dearest) - 6} together {_figure(sum(h for _, h in dearest[6:]))}" if len(dearest) > 6 else ""
    lines.append("metrics' CPU-h in the comparisons, each alone: "
                 + ", ".join(f"{name} {_figure(h)}" for name, h in dearest[:6]) + rest)
    over, beyond = summary["over_max_runtime"], summary["beyond_threads"]
    if over > beyond:
        lines.append(f"{over - beyond} jobs run past cluster.max_runtime_hours ({summary['max_runtime_hours']:g} h) on "
                     f"one thread and within it on {summary['threads_needed']} threads: give their rules at least that many "
                     f"threads (set-threads in the Slurm profile)")
    if beyond:
        lines.append(f"{beyond} jobs run past cluster.max_runtime_hours ({summary['max_runtime_hours']:g} h) even on "
                     f"{MOST_THREADS} threads: leave out their dearest metrics (above), or run them on a partition "
                     f"that allows longer jobs and raise cluster.max_runtime_hours")
    return "\n".join(lines)


def config_cost(config: dict) -> str:
    """The cost report of a config (``samesky cost``): the crossmatch sizes it assumes, then the
    summary as configured and with the other choice of blocks (``embed.layers`` final <-> all)."""
    import copy

    from .config import fill_defaults
    from .plan import Plan

    out = []
    configured = fill_defaults(copy.deepcopy(config))["embed"]["layers"]
    for layers in (configured, "all" if configured == "final" else "final"):
        variant = copy.deepcopy(config)
        variant.setdefault("embed", {})["layers"] = layers
        cost = PlanCost(Plan(fill_defaults(variant)))
        if not out:
            out.append("objects per crossmatch: " + ", ".join(f"{name} {n:,} ({where})"
                                                             for name, (n, where) in cost.sizes.items()))
        cost.check_fits_nodes()
        out.append(format_summary(cost.summary(), f"\nembed.layers: {layers}"
                                  + (" (as configured)" if layers == configured else "")))
    out.append("\nMetric and probe jobs: CPU-hours and peak memory by samesky.cost's model (fitted to "
               "benchmarks/bench_paper_scale.py on CPU, each metric and physics test as measured alone); a job on a "
               "GPU (the layer-wise ones of a GPU run) counts its CPU hours as GPU-hours, an upper bound. Embed: GPU-hours at models.resources.EMBED_RATES, "
               "memory as requested.")
    return "\n".join(out)
