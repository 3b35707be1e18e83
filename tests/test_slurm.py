"""The workflow on a real Slurm: a single-node cluster from Debian packages (tests/slurm_cluster.py),
`--executor slurm` with profiles/slurm-test, the GPU rules on the `gpu` partition with a (fake) GPU.

Needs root and apt (skipped otherwise); CI has both. Rerun alone with
    .venv/bin/python -m pytest -q -rs tests/test_slurm.py
"""
import copy
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_cluster import SlurmAlreadyRunning, SlurmCluster, ensure_installed, sh
from workflow_rules import local_rules, rules

from samesky import schema
from samesky.config import fill_defaults
from samesky.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm-test"
LOCAL_RULES = local_rules()
# Rules the Slurm run leaves out: precomputed_embedding needs embed.layers: final, and the run
# writes every block for the layer stage (tests/test_precomputed.py runs it); umap maps every
# embedding of a probed crossmatch side by side, so it would add each other embedding's chain to
# this run's shortest ones (a plain CPU job costed by samesky.cost, as physics, which runs here;
# the demo runs it, tests/test_workflow.py); physics_pair compares two embeddings, so it too would add
# another embedding's chain (its resources come from samesky.cost, as compare's, which runs here; the
# demo runs it).
NOT_ON_SLURM = {"precomputed_embedding", "umap", "physics_pair"}
GPU_RULES = {"embed", "knn_graph", "compare_layers"}  # profiles/slurm-test: knn_graph with block graphs
pytestmark = [pytest.mark.slurm, pytest.mark.slow]


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


def job_states(job_ids) -> dict[str, tuple[str, str, str]]:
    """{job id: (state, partition, node)} from squeue (the cluster keeps finished jobs for MinJobAge)."""
    out = sh(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i %T %P %N"], timeout=15).stdout
    return {i: (state, part, node) for i, state, part, node in (line.split() for line in out.splitlines())}


def check_every_job_ran_on_slurm(out, workdir, host, gpu_rules):
    """Each non-local job has a Slurm log and completed on the node; GPU rules ran on `gpu` with
    the GPU, in the job and in the step that runs the rule, the others on `cpu` without it."""
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
            assert states[batch["SLURM_JOB_ID"]] == ("COMPLETED", partition, host), (rule, batch)
            assert batch["SLURM_JOB_PARTITION"] == partition, (rule, batch)
            # the fake GPU (gres gpu:1, index 0) was allocated to the job, and its step, only if asked for
            assert batch["SLURM_JOB_GPUS"] == ("0" if gpu else ""), (rule, batch)
            assert batch["CUDA_VISIBLE_DEVICES"] == step["CUDA_VISIBLE_DEVICES"] == ("0" if gpu else ""), (rule, batch, step)
    return counts


def slurm_config(demo: dict, n=80, draws=20) -> dict:
    """config/demo.yaml, smaller: its crossmatch with spectra (desi_hsc) of n galaxies, the first
    size of the first image family and its untrained control, one probed property, fewer null and
    subsampling draws, and `embed.device: auto` (so that embedding jobs request a GPU)."""
    config = copy.deepcopy(demo)
    xm = config["metrics"]["null_crossmatch"]
    config["crossmatches"] = {xm: config["crossmatches"][xm]}
    config["crossmatches"][xm]["source"]["simulate"]["n"] = n
    config["crossmatches"][xm].pop("image_models", None)  # the demo's models on it are not configured here
    config["preprocess"]["percentile_source"] = {}
    family, sizes = next(iter(config["models"]["image"].items()))
    config["models"]["image"] = {family: sizes[:1]}
    config["models"]["untrained"] = [f"{family}-{sizes[0]}"]
    config["probes"].update(properties={xm: ["redshift"]}, categorical=[])
    config["probes"]["physics"].update(tests=["neighbour_consistency"], null_draws=draws, subsampling_splits=draws)
    config["metrics"].update(null_draws=draws, subsampling_splits=draws)
    config["embed"]["device"] = "auto"
    return config


def slurm_targets(plan: Plan) -> dict[str, str]:
    """One job of every submitted rule, through the shortest chains: the first image embedding's
    comparison with the latent truth, block by block too, and its probe (which bring the
    simulation, its ingestion and truth, percentiles, preprocessing, the tiny model, the
    embedding and both kinds of graph), and its physics tests; its survey's raw fluxes; the untrained
    control's weights."""
    (xm, survey, model), control = plan.embeddings[1], plan.image_models[-1]
    assert (survey, plan.models_for(xm, survey)) == (plan.reference, [model, control]), plan.embeddings
    truth = next(c for c in plan.comparisons if c.kind == "truth" and (c.survey_a, c.model_a) == (survey, model))
    return {"compare": plan.run.METRICS.format(**truth.as_dict()),
            "compare_layers": plan.run.LAYER_METRICS.format(**truth.as_dict()),
            "probe": plan.run.PROBE.format(crossmatch=xm, survey=survey, model=model),
            "physics": plan.run.PHYSICS.format(crossmatch=xm, survey=survey, model=model),
            "preprocess_flux": plan.run.PREPROCESSED_FLUX.format(crossmatch=xm, survey=survey),
            "build_random_model": plan.weights_source(control)}


def test_workflow_on_slurm(slurm, tmp_path, demo_config):
    """Every submitted rule of the workflow once, through `--executor slurm`: the embedding, its
    block graphs and the block x block scores on the GPU partition, the rest on `cpu`."""
    config = slurm_config(demo_config)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    plan = Plan(fill_defaults(copy.deepcopy(config)))
    targets = slurm_targets(plan)
    out, seconds = run_on_slurm(slurm, ROOT / "Snakefile", tmp_path, *targets.values(),  # before --configfile's list
                                "--configfile", str(configfile))
    print(f"the workflow's submitted rules on Slurm took {seconds:.0f} s")
    counts = check_every_job_ran_on_slurm(out, tmp_path, slurm.host, gpu_rules=GPU_RULES)
    assert {rule: n for rule, n in counts.items() if rule not in LOCAL_RULES} == \
        dict.fromkeys(rules() - LOCAL_RULES - NOT_ON_SLURM, 1), counts
    # what the jobs wrote: every metric of the truth comparison, for every block
    n, names = config["crossmatches"][plan.null_crossmatch]["source"]["simulate"]["n"], config["metrics"]["names"]
    records = json.loads((tmp_path / targets["compare"]).read_text())["records"]
    assert [(r["metric"], r["kind"], r["n"]) for r in records] == [(m, "truth", n) for m in names]
    blocks = pd.read_csv(tmp_path / targets["compare_layers"])
    assert set(blocks["metric"]) == set(names) and set(blocks["block_b"]) == {"final"} and (blocks["n"] == n).all()
    assert len(blocks) == len(names) * blocks["block_a"].nunique() > len(names)
    probe = json.loads((tmp_path / targets["probe"]).read_text())
    assert {r["property"] for r in probe["records"]} == {"redshift"}
    physics = json.loads((tmp_path / targets["physics"]).read_text())["records"]
    # every object but those the reference's 1-99% clip of the property leaves out
    assert [(r["test"], r["property"], r["n"] + r["n_excluded"]) for r in physics] == \
        [("neighbour_consistency", "redshift", n)] and 0 < physics[0]["n_excluded"] < 0.05 * n, physics
    ids, flux = schema.read_preprocessed(tmp_path / targets["preprocess_flux"])
    assert len(ids) == n and flux.dtype == "float32"
    assert any((tmp_path / targets["build_random_model"]).iterdir())
