"""The workflow on a real Slurm: a single-node cluster from Debian packages (tests/slurm_cluster.py),
`--executor slurm` with profiles/slurm-test, embedding jobs on the `gpu` partition with a (fake) GPU.

Needs root and apt (skipped otherwise); CI has both. Rerun alone with
    .venv/bin/python -m pytest -q -rs tests/test_slurm.py
"""
import copy
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_cluster import SlurmAlreadyRunning, SlurmCluster, ensure_installed, sh

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm-test"


def _local_rules() -> set[str]:
    """Rules Snakemake runs itself, not submitted: `all` and every rule file's `localrules:`."""
    names = {"all"}
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.findall(r"^localrules:\n((?:    \w+,\n)+)", smk.read_text(), flags=re.M):
            names |= set(re.findall(r"\w+", block))
    return names


LOCAL_RULES = _local_rules()
pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TINY_SNAKEFILE = """
rule all:
    input: "cpu.txt", "gpu.txt"

rule cpu:
    output: "cpu.txt"
    shell: "hostname > {output}"

rule gpu:
    output: "gpu.txt"
    resources: gpu=1
    shell: "echo $CUDA_VISIBLE_DEVICES > {output}"
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = ensure_installed()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    except SlurmAlreadyRunning as e:
        pytest.skip(str(e))
    finally:
        cluster.stop()


def run_on_slurm(cluster, snakefile, workdir, *args, stall=600, ceiling=7200):
    """Run Snakemake with the Slurm test profile; on failure or a hang, fail with diagnostics.

    A hang is no job finishing for ``stall`` seconds (the slowest honest job takes well under a
    minute), or the run outliving ``ceiling``: safety nets, not timings, so a slow or shared
    machine only makes the run longer."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir),
           "--profile", str(PROFILE), *args]
    start = time.perf_counter()
    log = Path(workdir) / "snakemake-on-slurm.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True, cwd=workdir)
        done, last = -1, time.perf_counter()
        while proc.poll() is None:
            time.sleep(5)
            now, finished = time.perf_counter(), log.read_text(errors="replace").count("Finished job")
            if finished != done:
                done, last = finished, now
            if now - last > stall or now - start > ceiling:
                proc.kill()
                proc.wait()
                diagnostics = cluster.diagnostics()
                cluster.cancel_jobs()
                pytest.fail(f"Snakemake on Slurm hung: no job finished in {now - last:.0f} s ({finished} finished, "
                            f"{now - start:.0f} s in all); jobs cancelled.\n{diagnostics}\n"
                            f"--- snakemake (tail) ---\n{log.read_text(errors='replace')[-6000:]}"
                            f"{slurm_log_tails(workdir)}")
    seconds = time.perf_counter() - start
    out = log.read_text(errors="replace")
    if proc.returncode != 0:
        pytest.fail(f"Snakemake on Slurm exited {proc.returncode} after {seconds:.0f} s.\n"
                    f"{cluster.diagnostics()}\n--- snakemake (tail) ---\n{out[-6000:]}{slurm_log_tails(workdir)}")
    return out, seconds


def job_counts(output: str) -> dict[str, int]:
    """{rule: count} from the first 'Job stats' table Snakemake prints."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def slurm_logs(workdir) -> dict[str, list[Path]]:
    """{rule: [job logs]}: the plugin writes .snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log."""
    logs = {}
    for path in sorted((Path(workdir) / ".snakemake" / "slurm_logs").rglob("*.log")):
        rule = next(p for p in path.parts if p.startswith("rule_"))[len("rule_"):]
        logs.setdefault(rule, []).append(path)
    return logs


def slurm_log_tails(workdir, n: int = 3, tail: int = 1500) -> str:
    paths = sorted((Path(workdir) / ".snakemake" / "slurm_logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)
    return "".join(f"\n--- {p} (tail) ---\n{p.read_text(errors='replace')[-tail:]}" for p in paths[-n:])


def job_envs(log: Path) -> list[dict[str, str]]:
    """What Slurm gave the job, as printed into its log by the cluster's TaskProlog: one line for
    the batch step, one for the `srun` step in which the plugin runs the rule."""
    lines = re.findall(r"^slurm-test-env: (.*)$", log.read_text(errors="replace"), re.M)
    assert len(lines) == 2, f"expected a 'slurm-test-env' line (TaskProlog) for the batch and the srun step in {log}"
    return [dict(item.split("=", 1) for item in line.split()) for line in lines]


def job_states(job_ids) -> dict[str, tuple[str, str]]:
    """{job id: (state, partition)} from squeue (the cluster keeps finished jobs for MinJobAge)."""
    out = sh(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i %T %P"], timeout=15).stdout
    return {i: (state, part) for i, state, part in (line.split() for line in out.splitlines())}


def check_every_job_ran_on_slurm(out, workdir, gpu_rules):
    """Each non-local job has a Slurm log and completed; GPU rules ran on `gpu` with the GPU."""
    counts = job_counts(out)
    logs = slurm_logs(workdir)
    submitted = {rule: n for rule, n in counts.items() if rule not in LOCAL_RULES}
    assert {rule: len(paths) for rule, paths in logs.items()} == submitted, \
        f"Slurm logs per rule vs Snakemake's job stats {counts}"
    envs = {rule: [job_envs(p) for p in paths] for rule, paths in logs.items()}
    states = job_states([batch["SLURM_JOB_ID"] for rule_envs in envs.values() for batch, _ in rule_envs])
    for rule, rule_envs in envs.items():
        gpu = rule in gpu_rules
        for batch, step in rule_envs:
            partition = "gpu" if gpu else "cpu"
            assert states[batch["SLURM_JOB_ID"]] == ("COMPLETED", partition), (rule, batch)
            assert batch["SLURM_JOB_PARTITION"] == partition, (rule, batch)
            # the fake GPU (gres gpu:1, index 0) was allocated to the job, and its step, only if asked for
            assert batch["SLURM_JOB_GPUS"] == ("0" if gpu else ""), (rule, batch)
            assert batch["CUDA_VISIBLE_DEVICES"] == step["CUDA_VISIBLE_DEVICES"] == ("0" if gpu else ""), (rule, batch, step)
    return counts


def test_tiny_workflow_on_slurm(slurm, tmp_path):
    """The Slurm machinery alone, on a two-job workflow: submission, status, the GPU partition."""
    (tmp_path / "Snakefile").write_text(TINY_SNAKEFILE)
    out, seconds = run_on_slurm(slurm, tmp_path / "Snakefile", tmp_path,
                                "--set-resources", "gpu:slurm_partition=gpu")
    print(f"tiny workflow on Slurm took {seconds:.0f} s")
    assert (tmp_path / "cpu.txt").read_text().strip() == slurm.host
    assert (tmp_path / "gpu.txt").read_text().strip() == "0"  # CUDA_VISIBLE_DEVICES of the job step
    assert check_every_job_ran_on_slurm(out, tmp_path, gpu_rules={"gpu"}) == {"cpu": 1, "gpu": 1, "all": 1}


def reduced_demo_config(demo: dict, keep=("desi_hsc",), n=80, families=1, draws=50) -> dict:
    """config/demo.yaml, smaller: the crossmatch(es) `keep` of n galaxies, the first image family(ies)
    with two sizes, fewer null draws and subsampling splits, and `embed.device: auto` (so that embedding jobs
    request a GPU). The default still has every rule and comparison kind (intramodal, crossmodal
    image-spectrum, self) in 18 Slurm jobs. Each job costs two Snakemake start-ups besides its
    script (15-30 s in all on 2 cores): ("desi_hsc", "jwst_hsc") with two families is 57 jobs,
    too many for 10 minutes."""
    config = copy.deepcopy(demo)
    config["crossmatches"] = {name: config["crossmatches"][name] for name in keep}
    for xm in config["crossmatches"].values():
        xm["source"]["simulate"]["n"] = n
    for survey, crossmatch in list(config["preprocess"].get("percentile_source", {}).items()):
        if crossmatch not in keep:
            config["preprocess"]["percentile_source"][survey] = next(
                name for name in keep if survey in config["crossmatches"][name]["surveys"])
    assert config["metrics"]["null_crossmatch"] in keep
    config["models"]["image"] = {family: sizes[:2] for family, sizes in list(config["models"]["image"].items())[:families]}
    config["metrics"].update(null_draws=draws, subsampling_splits=draws)
    config["embed"]["device"] = "auto"
    return config


def test_demo_on_slurm(slurm, tmp_path, demo_config):
    """The demo (reduced) end to end through `--executor slurm`, embeddings and the layer stage on
    the GPU partition."""
    config = reduced_demo_config(demo_config)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    out, seconds = run_on_slurm(slurm, ROOT / "Snakefile", tmp_path, "--configfile", str(configfile))
    print(f"reduced demo on Slurm took {seconds:.0f} s")
    counts = check_every_job_ran_on_slurm(out, tmp_path, gpu_rules={"embed", "knn_graph", "compare_layers"})
    assert {"simulate_snapshot", "percentiles", "preprocess", "build_tiny_model", "embed", "knn_graph",
            "compare", "truth_knn_graph", "compare_layers"} <= set(counts), counts
    scores = pd.read_csv(tmp_path / "results/demo/tables/scores.csv")
    assert len(scores) == counts["compare"] * len(config["metrics"]["names"])
    assert set(scores["metric"]) == set(config["metrics"]["names"])
    assert list((tmp_path / "results/demo/figures").glob("*.png"))
