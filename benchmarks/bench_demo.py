"""Wall and CPU time of the whole demo, for one or more revisions, alternated (prints a table).

Each run clones the revision (``git clone`` of this repository), byte-compiles its package when
its Makefile's demo does, and runs ``snakemake --cores C`` there with this environment's Python
packages and the clone's ``src`` first on the path: ``make demo`` without the venv step. Runs of
different revisions alternate (A B A B ...), so a drift in the machine's speed falls on both; the
summary is the median per revision. CPU seconds are those of Snakemake and every job it waited for
(``RUSAGE_CHILDREN``); the per-rule rows sum the jobs' ``benchmark:`` records.

Usage (idle machine; a run of the demo takes a few minutes on 2 cores, of daf56d9's about ten):
  python benchmarks/bench_demo.py HEAD                    # one run of the checked-out code
  python benchmarks/bench_demo.py 637779a HEAD --repeats 2
"""
from __future__ import annotations

import argparse
import collections
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from bench_startup import benchmark_records

ROOT = Path(__file__).resolve().parents[1]


def run_demo(rev: str, cores: int, workdir: Path) -> dict:
    """Clone ``rev`` into ``workdir`` and time its demo; return wall, CPU, jobs and per-rule (wall, CPU)."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(workdir)], check=True)
    subprocess.run(["git", "checkout", "-q", rev], cwd=workdir, check=True)
    env = {**os.environ, "PYTHONPATH": str(workdir / "src")}
    if "compileall" in (workdir / "Makefile").read_text():
        subprocess.run([sys.executable, "-m", "compileall", "-q", "src"], cwd=workdir, env=env, check=True)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([snakemake, "--cores", str(cores)], cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{rev}: the demo failed:\n{proc.stderr[-3000:]}")
    records = benchmark_records(workdir).groupby("rule")
    rules = {rule: (wall, records["cpu_time"].sum()[rule]) for rule, wall in records["s"].sum().items()}
    jobs = sum(1 for line in proc.stderr.splitlines() if line.startswith("Finished job"))
    return {"wall": wall, "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "jobs": jobs, "rules": rules}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("revs", nargs="+", help="git revisions of this repository")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    revs = [subprocess.run(["git", "rev-parse", "--short", r], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.strip() for r in args.revs]
    runs = collections.defaultdict(list)
    for rep in range(args.repeats):
        for rev in revs:
            workdir = Path(tempfile.mkdtemp(prefix=f"demo-{rev}-"))
            try:
                got = run_demo(rev, args.cores, workdir / "repo")
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            runs[rev].append(got)
            print(f"# run {rep + 1}/{args.repeats} of {rev}: {got['wall']:.1f} s wall, {got['cpu']:.0f} CPU-s, "
                  f"{got['jobs']} jobs", flush=True)
    print(f"{'revision':10s} {'runs':>4s} {'wall s':>8s} {'CPU s':>7s} {'jobs':>5s}   "
          "benchmarked rules: job wall s / CPU s, summed over jobs (median of runs)")
    for rev in revs:
        r = runs[rev]
        rules = {name: [median(x["rules"][name][i] for x in r) for i in (0, 1)] for name in sorted(r[0]["rules"])}
        print(f"{rev:10s} {len(r):4d} {median(x['wall'] for x in r):8.1f} {median(x['cpu'] for x in r):7.0f} "
              f"{r[0]['jobs']:5d}   " + ", ".join(f"{k} {w:.0f}/{c:.0f}" for k, (w, c) in rules.items()))


if __name__ == "__main__":
    main()
