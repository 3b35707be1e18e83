"""The metric stage at the paper's shapes (issue 31): synthetic embeddings and layer files, then the
workflow's own rules through Snakemake, each job's time and peak memory read from its
``benchmark:`` file. The measurements behind ``samesky.cost`` (its ``MEASURED`` table).

One crossmodal pair (Legacy Survey vs HSC, one model on both), written where the embed jobs would
write them (``RunPaths.EMBEDDING`` and ``RunPaths.LAYERS``: float32 final embedding, float16 blocks
with the model's ``block_index`` / ``n_blocks``) without running any model: a latent structure
shared by both surveys (16 factors) seen through a random map and noise that falls with depth
(``bench_layers.LazyBlocks``), and a crossmatch file holding one property for the probe (Z, from the
latent factors; one-pixel cutouts, which no rule here reads). Then ``snakemake --allowed-rules
knn_graph compare compare_layers probe`` (the files above are taken as given) for the pair's compare
and compare_layers records and one side's probe (with ``--rules physics umap``: one side's physics
tests, ``cost.MEASURED_TESTS``, and both sides' UMAP maps), one job at a time (``--cores 1``), and
one row per job: size, rule, wall seconds (the benchmark file's ``s``), and
the job's exact CPU seconds and peak RSS from its log's last line (``runtime.USAGE``; the benchmark
file samples both every 30 s, so its ``max_rss`` is kept beside them). ``samesky.cost`` fits CPU
seconds: on a shared machine wall time is CPU time stretched by whatever else runs.

    python benchmarks/bench_paper_scale.py --case 2000:1536:24:50     # N:d:blocks:draws, repeatable
    python benchmarks/bench_paper_scale.py --json out.json            # the default cases (about 50 min on 2 shared cores)
    python benchmarks/bench_paper_scale.py --case 102000:1536:24:5 --root R --resume   # again after a kill

``--measure-costs`` measures instead each registered metric and physics test alone
(``samesky.cost.MEASURE_COSTS``): on a pair of (N, d) embeddings with shared structure, the CPU
seconds of a metric's estimator's construction and score (with its closed-form law where it
declares one: what a compare job does once) and of one null draw (the mean of a few), given the
pair's cached kNN graphs and Gram invariants (the knn_graph job's); a physics test's record
without draws, and each null draw beyond it. A metric that keeps per-pair quantities at a size
(``Metric.kept_bytes``: mi_ksg) gives two rows there: 'name:kept' (its draws read them) and 'name'
(recomputed every call, as above its budget). Run it on one thread:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_paper_scale.py \
        --measure-costs                                # about an hour on 2 shared cores
    ... --measure-costs --sizes 5000:768 --only svcca  # one metric at one size

The model's key only names the files; d and blocks are what the case says (--model's real block
count must be at least the case's: the files record n_blocks from the registry).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np
import yaml
from bench_layers import LazyBlocks

from samesky import schema
from samesky.cost import MEASURED_METRICS, MEASURED_TESTS, bench_job, block_dims, predict
from samesky.paths import RunPaths
from samesky.runtime import USAGE
from samesky.surveys import get_survey

REPO = Path(__file__).resolve().parents[1]
RULES = ("knn_graph", "compare", "compare_layers", "probe", "physics", "umap")
MEASURED_RULES = RULES[:4]  # the default cases' (physics and umap: --rules physics umap)
# (N, d, blocks, draws): N from 2000 to 20000 (blocks, draws and at 20000 d fewer as it grows: a kNN
# graph costs N^2 d, a compare job's subsampling split d^3 + N d^2), d at N = 5000, draws and blocks
# at N = 2000
DEFAULT_CASES = ["2000:1536:4:20", "2000:1536:4:5", "2000:384:16:5", "5000:768:4:5", "5000:1536:4:10",
                 "10000:1536:2:5", "20000:384:1:3"]


def config_for(run_name: str, model: str, blocks: int, draws: int, metrics: list[str],
               node_memory_gb: float | None = None) -> dict:
    family, size = model.split("-", 1)
    cluster = {} if node_memory_gb is None else {"cluster": {"node_memory_gb": node_memory_gb}}
    return {"run_name": run_name, "reference_survey": "hsc", **cluster,
            "crossmatches": {"legacysurvey_hsc": {"surveys": ["legacysurvey", "hsc"],
                                                  "source": {"path": "crossmatch.h5"}}},
            "models": {"weights": "hub", "image": {family: [size]}, "spectrum": "specformer-base"},
            "embed": {"device": "cpu", "layers": list(range(blocks))},
            "metrics": {"names": metrics, "null_draws": draws, "subsampling_splits": draws,
                        "null_crossmatch": "legacysurvey_hsc"},
            "probes": {"properties": {"legacysurvey_hsc": ["Z"]}, "null_draws": draws, "bootstrap_draws": draws,
                       "physics": {"tests": list(MEASURED_TESTS), "null_draws": draws, "subsampling_splits": draws},
                       "umap": True}}


def write_inputs(run: RunPaths, model: str, n: int, d: int, blocks: int) -> None:
    """The pair's embedding and layers files, and the crossmatch file the probe reads its property
    from (one-pixel cutouts: no rule here reads them; a redshift-like Z from the latent factors)."""
    latent = np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32)
    ids = np.array([f"obj{i:07d}" for i in range(n)])
    surveys = {name: {"flux": np.zeros((n, len(get_survey(name).bands), 1, 1), np.float32)}
               for name in ("legacysurvey", "hsc")}
    schema.write_crossmatch("crossmatch.h5", "legacysurvey_hsc", ids, np.zeros(n), np.zeros(n), surveys,
                            properties={"Z": np.exp(0.3 * latent[:, 0]).astype(np.float64)})
    total = len(block_dims(model))
    for seed, survey in enumerate(("legacysurvey", "hsc")):
        where = {"crossmatch": "legacysurvey_hsc", "survey": survey, "model": model}
        lazy = LazyBlocks(latent, blocks, d, seed)
        prov = {"model": model, "survey": survey, "synthetic": "bench_paper_scale"}
        for path in (run.EMBEDDING, run.LAYERS):
            Path(path.format(**where)).parent.mkdir(parents=True, exist_ok=True)
        schema.write_layers(run.LAYERS.format(**where), ids, lazy, [f"block {j + 1}" for j in range(blocks)],
                            {**prov, "block_index": list(range(blocks)), "n_blocks": total})
        schema.write_embeddings(run.EMBEDDING.format(**where), ids, lazy[blocks - 1], prov)


def run_case(root: Path, model: str, n: int, d: int, blocks: int, draws: int, metrics: list[str],
             jobs: int = 1, rules: tuple[str, ...] = RULES, node_memory_gb: float | None = None,
             resume: bool = False) -> list[dict]:
    run = RunPaths(f"scale-{n}-{d}-{blocks}-{draws}")
    cfg = root / f"{run.run_name}.yaml"
    resume = resume and cfg.is_file()  # the inputs are written last-but-one, before the config
    if not resume:
        cwd = Path.cwd()
        try:
            os.chdir(root)
            write_inputs(run, model, n, d, blocks)
        finally:
            os.chdir(cwd)
        cfg.write_text(yaml.safe_dump(config_for(run.run_name, model, blocks, draws, metrics, node_memory_gb)))
    pair = {"crossmatch": "legacysurvey_hsc", "survey_a": "legacysurvey", "model_a": model,
            "survey_b": "hsc", "model_b": model}
    side = {"crossmatch": "legacysurvey_hsc", "model": model}
    targets = {"knn_graph": [run.KNN.format(**side, survey=s) for s in ("legacysurvey", "hsc")],
               "compare": [run.METRICS.format(**pair)], "compare_layers": [run.LAYER_METRICS.format(**pair)],
               "probe": [run.PROBE.format(**side, survey="hsc")], "physics": [run.PHYSICS.format(**side, survey="hsc")],
               "umap": [run.UMAP_FIGURES]}
    targets = [t for rule in rules for t in targets[rule]]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", *targets, "--snakefile", str(REPO / "Snakefile"),
                    "--directory", str(root), "--configfile", str(cfg), "--cores", str(jobs), "--rerun-triggers", "mtime",
                    "--quiet", "rules", "--allowed-rules", *RULES, *(["--rerun-incomplete"] if resume else [])],
                   check=True)
    print(f"N={n} d={d} blocks={blocks} draws={draws}: {time.perf_counter() - start:.0f} s wall", flush=True)
    rows = []
    for tsv in sorted((root / run.root / "benchmarks").rglob("*.tsv")):
        job = tsv.relative_to(root / run.root / "benchmarks").with_suffix("")
        with open(tsv) as f:
            got = next(csv.DictReader(f, delimiter="\t"))
        used = USAGE.search((root / run.log(f"{job}.log")).read_text().rstrip().splitlines()[-1])
        earlier = resumed_cpu_seconds(root / run.KNN_LAYERS.format(**dict(zip(("crossmatch", "survey", "model"),
                                                                                job.parts[1:])))) \
            if job.parts[0] == "knn_graph" else 0.0
        rows.append({"rule": job.parts[0], "job": str(job), "n": n, "d": d, "blocks": blocks, "draws": draws,
                     "metrics": metrics, "seconds": round(float(got["s"]), 1),
                     "cpu_seconds": float(used["cpu_s"]) + earlier, "resumed_cpu_seconds": earlier,
                     "peak_mb": float(used["peak_mb"]), "benchmark_max_rss_mb": round(float(got["max_rss"]))})
    return rows


def resumed_cpu_seconds(knn_layers: Path) -> float:
    """CPU seconds of the blocks an earlier, killed run of the job finished (the job's last run
    resumed after them; its own log counts only the rest)."""
    if not knn_layers.is_file():
        return 0.0
    with schema.read_h5(knn_layers) as f:
        kept = set(schema.read_provenance(f).get("resumed_blocks", []))
        return sum(p["cpu_seconds"] for p in (schema.read_provenance(f[g]) for g in f if g.startswith("block_"))
                   if p["name"] in kept)


def _regimes(name: str, spec, n: int) -> list:
    """(row name, context) of each way the metric's estimator works at n objects: one that keeps
    per-pair quantities there (``Metric.keeps``: mi_ksg's distance matrices) keeping them
    ('name:kept', its draws read from them) and, its budget set to 0, recomputing every call."""
    if not spec.keeps(n):
        return [(name, nullcontext())]
    from samesky.metrics.measures import information

    return [(f"{name}:kept", nullcontext()), (name, mock.patch.object(information, "KSG_MATRIX_BYTES", 0))]


def measure_costs(n: int, d: int, params: dict, names: list[str], k: int = 10, draws: int = 3) -> list[dict]:
    """CPU seconds of one score and one null draw (one draw where a score takes over a second) of
    each of ``names``, registered metrics (``params``: config metrics.params) and physics tests
    (``physics.EMBEDDING_TESTS``, on one property; the joint test on two), on one (n, d) pair, the
    kNN graphs and Gram invariants given; a measure's sampled pairs 1,000,000 unless ``params`` say."""
    from samesky.metrics.knn import knn_graph
    from samesky.metrics.pair import Pair
    from samesky.metrics.registry import METRICS, graph_width
    from samesky.metrics.rv_null import gram_invariants
    from samesky.metrics.stats import permutations
    from samesky.physics import EMBEDDING_TESTS, physics_records
    from samesky.runtime import use_threads

    use_threads(1)  # torch's, the BLAS's and numba's threads
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((n, 16), dtype=np.float32)
    Za, Zb = (latent @ rng.standard_normal((16, d), dtype=np.float32) + rng.standard_normal((n, d), dtype=np.float32)
              for _ in range(2))
    graphs = [knn_graph(Z, graph_width(k)) for Z in (Za, Zb)]
    invariants = tuple(gram_invariants(Z) for Z in (Za, Zb))
    perms = list(permutations(n, draws, 0))
    rows = []

    def row(name, score_s, draw_s):
        rows.append({"name": name, "n": n, "d": d, "score_s": score_s, "draw_s": draw_s})
        print(f"    ({name!r}, {n}, {d}, {score_s:.3g}, {draw_s:.3g}),", flush=True)

    for name, spec in METRICS.items():
        if name not in names:
            continue
        # sampled pairs as the paper's config samples them where this one leaves them exact (refused at 10,000)
        settings = {**({"k": k} if spec.takes_k else {}), **{key: 1_000_000 for key in spec.pair_samples},
                    **params.get(name, {})}
        for label, regime in _regimes(name, spec, n):
            with regime:
                start = time.process_time()
                est = spec.estimator(Pair(Za, Zb, *graphs, invariants=invariants), **settings)
                est.score()
                if spec.closed_form:
                    est.closed_null()
                score_s = time.process_time() - start
                made = 0 if spec.pairing_free else 1 if spec.costly_draws and score_s > 1 else draws
                start = time.process_time()
                for pi in perms[:made]:
                    est.null(pi)
                row(label, score_s, (time.process_time() - start) / max(made, 1))
    properties = {"p": latent[:, 0] + 0.1 * latent[:, 1], "q": latent[:, 2]}
    for name in EMBEDDING_TESTS:
        if name not in names:
            continue
        given = properties if name == "joint_neighbour_set_overlap" else {"p": properties["p"]}
        record = partial(physics_records, Za, given, graphs[0], tests=[name], subsampling_splits=0)
        start = time.process_time()
        record(null_draws=0)
        score_s = time.process_time() - start
        made = 1 if score_s > 1 else draws
        start = time.process_time()
        record(null_draws=made)
        row(name, score_s, max(time.process_time() - start - score_s, 0.0) / made)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", action="append", help="N:d:blocks:draws (default: the cases behind samesky.cost)")
    p.add_argument("--model", default="dinov2-giant", help="the pair's model key (names the files)")
    p.add_argument("--metrics", nargs="+", default=list(MEASURED_METRICS))
    p.add_argument("--jobs", type=int, default=1, help="jobs at once (--cores; each job runs on one thread): "
                   "CPU seconds and peak RSS stay per job, wall times stretch if they share a core")
    p.add_argument("--rules", nargs="+", choices=RULES, default=MEASURED_RULES,
                   help="only these rules' jobs (and the kNN graphs they need)")
    p.add_argument("--node-memory-gb", type=float, help="config cluster.node_memory_gb: compare_layers holds the "
                   "blocks that memory leaves (samesky.cost.block_cache_mb), the others read again")
    p.add_argument("--measure-costs", action="store_true",
                   help="each metric and physics test alone (samesky.cost.MEASURE_COSTS)")
    p.add_argument("--sizes", nargs="+", default=["2000:384", "2000:1536", "5000:384", "5000:1536", "10000:384",
                                                  "10000:1536"],
                   help="--measure-costs: N:d of the metrics")
    p.add_argument("--physics-sizes", nargs="+", default=["400:64", "400:384", "2000:64", "2000:384"],
                   help="--measure-costs: N:d of the physics tests (the boosting probe's 100 trees take minutes at "
                        "2000 x 384 already)")
    p.add_argument("--only", nargs="+", help="--measure-costs: only these metrics and tests")
    p.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml",
                   help="--measure-costs: the metrics' parameters of this config (metrics.params)")
    p.add_argument("--json", type=Path, help="write every job's row here")
    p.add_argument("--root", type=Path, help="working folder (default: a temporary one, removed)")
    p.add_argument("--resume", action="store_true", help="with --root: keep a case's inputs and finished jobs "
                   "from an earlier, interrupted run of it, and resume its killed block graph jobs after their "
                   "last finished block (job CPU seconds add those blocks' own)")
    args = p.parse_args()
    if args.resume and not args.root:
        p.error("--resume needs --root (the earlier run's folder)")
    rows = []
    if args.measure_costs:
        params = yaml.safe_load(args.config.read_text())["metrics"].get("params", {})
        from samesky.metrics.registry import METRICS as REGISTERED
        from samesky.physics import EMBEDDING_TESTS

        for sizes, names in ((args.sizes, list(REGISTERED)), (args.physics_sizes, list(EMBEDDING_TESTS))):
            for size in sizes:
                rows += measure_costs(*map(int, size.split(":")), params, [m for m in names if m in (args.only or names)])
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for case in args.case or DEFAULT_CASES:
            n, d, blocks, draws = map(int, case.split(":"))
            rows += run_case(root, args.model, n, d, blocks, draws, args.metrics, args.jobs, tuple(args.rules),
                             args.node_memory_gb, args.resume)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
    print("| rule | N | d | blocks | draws | wall s | CPU s | predicted CPU s | peak MB | predicted MB |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        seconds, peak = predict(bench_job(r["rule"], r["n"], r["d"], r["blocks"], r["draws"], r["metrics"]))
        print(f"| {r['rule']} | {r['n']} | {r['d']} | {r['blocks']} | {r['draws']} | {r['seconds']:.0f} | "
              f"{r['cpu_seconds']:.1f} | {seconds:.1f} ({seconds / r['cpu_seconds'] - 1:+.0%}) | {r['peak_mb']:.0f} | "
              f"{peak:.0f} ({peak / r['peak_mb'] - 1:+.0%}) |")


if __name__ == "__main__":
    main()
