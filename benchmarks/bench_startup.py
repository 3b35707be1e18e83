"""Start-up cost of the workflow's jobs, and the job-seconds of a finished run.

Each job is one Python process: its start-up (the Snakemake preamble plus the script's imports)
is paid once per job, and the demo has ~170 jobs. Per script, this prints the best-of-N wall time
of those imports and whether they load torch (about a second on its own); with --run DIR, the
seconds that the run's benchmarks, DIR/results/<run_name>/benchmarks, record per rule (embed, knn_graph, compare).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_startup.py --repeat 3 [--run . [--run-name demo]]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def script_imports(path: Path) -> str:
    lines = [line for line in path.read_text().splitlines()
             if re.match(r"(from \S+ )?import ", line) and "__future__" not in line]
    return "\n".join(["import pickle, snakemake.script", *lines])  # the preamble unpickles a Snakemake object


def startup(code: str, repeat: int) -> tuple[float, bool]:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('torch' in sys.modules)"],
                              capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - start)
    return best, proc.stdout.strip().endswith("True")


def benchmark_records(workdir: Path, run_name: str = "demo") -> pd.DataFrame:
    """One row per job of a finished run in ``workdir`` that kept a ``benchmark:`` record: its rule,
    wall seconds ``s`` and ``cpu_time``. The records are under results/<run_name>/benchmarks, or
    results/benchmarks for a revision from before each run had its own folder (bench_demo.py)."""
    bench = workdir / "results" / run_name / "benchmarks"
    if not bench.exists():
        bench = workdir / "results" / "benchmarks"
    rows = [(tsv.relative_to(bench).parts[0], *pd.read_csv(tsv, sep="\t")[["s", "cpu_time"]].iloc[0])
            for tsv in bench.rglob("*.tsv")]
    return pd.DataFrame(rows, columns=["rule", "s", "cpu_time"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="script names (default: every script)")
    ap.add_argument("--run", type=Path, help="a working directory after a run: sum its benchmark records")
    ap.add_argument("--run-name", default="demo", help="the run's run_name (its folder under results/)")
    args = ap.parse_args()
    print(f"{'script':20s} {'start-up s':>10s}  torch")
    for path in sorted((ROOT / "workflow" / "scripts").glob("*.py")):
        if args.only and path.stem not in args.only:
            continue
        seconds, torch = startup(script_imports(path), args.repeat)
        print(f"{path.stem:20s} {seconds:10.2f}  {'yes' if torch else 'no'}", flush=True)
    if args.run:
        df = benchmark_records(args.run, args.run_name).groupby("rule")["s"].agg(["count", "sum", "mean"])
        print(df.round(2).to_string())
        print(f"total job-seconds recorded: {df['sum'].sum():.1f}")


if __name__ == "__main__":
    main()
