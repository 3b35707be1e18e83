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
and compare_layers records and one side's probe, one job at a time (``--cores 1``), and one row per job: size, rule, wall seconds (the benchmark file's ``s``), and
the job's exact CPU seconds and peak RSS from its log's last line (``runtime.USAGE``; the benchmark
file samples both every 30 s, so its ``max_rss`` is kept beside them). ``samesky.cost`` fits CPU
seconds: on a shared machine wall time is CPU time stretched by whatever else runs.

    python benchmarks/bench_paper_scale.py --case 2000:1536:24:50     # N:d:blocks:draws, repeatable
    python benchmarks/bench_paper_scale.py --json out.json            # the default cases (about 50 min on 2 shared cores)
    python benchmarks/bench_paper_scale.py --case 102000:1536:24:5 --root R --resume   # again after a kill

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
from pathlib import Path

import numpy as np
import yaml
from bench_layers import LazyBlocks

from samesky import schema
from samesky.cost import bench_job, block_dims, predict
from samesky.paths import RunPaths
from samesky.runtime import USAGE
from samesky.surveys import get_survey

REPO = Path(__file__).resolve().parents[1]
RULES = ("knn_graph", "compare", "compare_layers", "probe")
# (N, d, blocks, draws): N from 2000 to 20000 (blocks, draws and at 20000 d fewer as it grows: a kNN
# graph costs N^2 d, a compare job's subsampling split d^3 + N d^2), d at N = 5000, draws and blocks
# at N = 2000
DEFAULT_CASES = ["2000:1536:4:20", "2000:1536:4:5", "2000:384:16:5", "5000:768:4:5", "5000:1536:4:10",
                 "10000:1536:2:5", "20000:384:1:3"]
METRICS = ["mknn", "cka_linear", "cka_unbiased", "cknna", "mutual_info"]  # the schema's default names


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
            "probes": {"properties": {"legacysurvey_hsc": ["Z"]}, "null_draws": draws, "bootstrap_draws": draws}}


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
               "probe": [run.PROBE.format(**side, survey="hsc")]}
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
                     "metrics": len(metrics), "seconds": round(float(got["s"]), 1),
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", action="append", help="N:d:blocks:draws (default: the cases behind samesky.cost)")
    p.add_argument("--model", default="dinov2-giant", help="the pair's model key (names the files)")
    p.add_argument("--metrics", nargs="+", default=METRICS)
    p.add_argument("--jobs", type=int, default=1, help="jobs at once (--cores; each job runs on one thread): "
                   "CPU seconds and peak RSS stay per job, wall times stretch if they share a core")
    p.add_argument("--rules", nargs="+", choices=RULES, default=RULES,
                   help="only these rules' jobs (and the kNN graphs they need)")
    p.add_argument("--node-memory-gb", type=float, help="config cluster.node_memory_gb: compare_layers holds the "
                   "blocks that memory leaves (samesky.cost.block_cache_mb), the others read again")
    p.add_argument("--json", type=Path, help="write every job's row here")
    p.add_argument("--root", type=Path, help="working folder (default: a temporary one, removed)")
    p.add_argument("--resume", action="store_true", help="with --root: keep a case's inputs and finished jobs "
                   "from an earlier, interrupted run of it, and resume its killed block graph jobs after their "
                   "last finished block (job CPU seconds add those blocks' own)")
    args = p.parse_args()
    if args.resume and not args.root:
        p.error("--resume needs --root (the earlier run's folder)")
    rows = []
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
