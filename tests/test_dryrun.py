"""The workflow planned, not run: dry-runs of the paper's config (with the Slurm profile, the zoo,
COSMOS-Web, every layer), the layer rules on a small run, and configs refused before any job.
Apart from tests/test_workflow.py so that `make test`'s two workers share them with the demo run."""
import json
import re
import subprocess
import time

import pandas as pd
import pytest
import yaml
from test_workflow import PAPER, ROOT, SNAKEMAKE, job_blocks, job_counts, snakemake, write_config

from samesky.config import fill_defaults
from samesky.cost import PlanCost
from samesky.models.resources import embed_cpus
from samesky.plan import Plan


def slurm_profile(tmp_path) -> str:
    """profiles/slurm with its placeholders filled in, as a user edits it."""
    profile = tmp_path / "profile"
    profile.mkdir()
    text = (ROOT / "profiles/slurm/config.yaml").read_text()
    for placeholder, value in (("CHANGE_ME_account", "astro"), ("CHANGE_ME_cpu_partition", "cpu"),
                               ("CHANGE_ME_gpu_partition", "gpu")):
        text = text.replace(placeholder, value)
    assert "CHANGE_ME" not in yaml.safe_dump(yaml.safe_load(text))  # only comments still name them
    (profile / "config.yaml").write_text(text)
    return str(profile)


def test_a_profile_placeholder_fails_the_dry_run(tmp_path):
    proc = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "-n", "--profile", str(ROOT / "profiles/slurm"),
         "--configfile", str(ROOT / "config/config.yaml")], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode != 0
    assert "default-resources.slurm_account: 'CHANGE_ME_account' is a placeholder" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_paper_dry_run_with_slurm_profile(tmp_path, monkeypatch):
    start = time.perf_counter()
    proc = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "-n", "--profile", slurm_profile(tmp_path),
         "--configfile", str(ROOT / "config/config.yaml")],  # no --cores: the profile's lets jobs have their threads
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    seconds = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    counts = job_counts(out)
    assert counts["embed"] == 98  # 16 image models x 6 image (crossmatch, survey) + Specformer x 2
    assert counts["ingest_hf"] == 4
    assert counts["compare"] == 66 + 64 + 16
    assert counts["probe"] == 17 and counts["probe_report"] == 1  # DESI redshift Z: every DESI-HSC embedding
    assert counts["umap"] == 1  # their UMAP maps, in one job
    assert all("desi_hsc" in b for b in job_blocks(out, "probe"))
    # per-size GPU resources are shown for every embedding job, with the cores that feed its GPU
    embed_blocks = job_blocks(out, "embed")
    assert len(embed_blocks) == 98
    mem, cpus = {}, {}
    for block in embed_blocks:
        model = re.search(r"model=([a-z0-9-]+)", block).group(1)
        assert "gpu=1" in block
        mem[model] = int(re.search(r"mem_mb=(\d+)", block).group(1))
        cpus[model] = int(re.search(r"cpus_per_task=(\d+)", block).group(1))
    assert mem["dinov2-giant"] > mem["dinov2-small"] and mem["vit-huge"] > mem["vit-base"]
    assert cpus == {m: embed_cpus(m) for m in cpus} and cpus["dinov2-small"] > cpus["dinov2-giant"]
    # the profile's set-threads reach the jobs (the plugin asks --cpus-per-task=threads), uncapped
    knn = job_blocks(out, "knn_graph")
    assert len(knn) == 98 and all(re.search(r"^\s+threads: 8$", b, re.M) for b in knn)
    # the metric and probe jobs ask for what samesky.cost predicts from their shapes and threads; the profile sets none
    monkeypatch.chdir(tmp_path)  # the run's directory: no crossmatch file there (a demo's in ROOT would count)
    cost = PlanCost(Plan(fill_defaults(yaml.safe_load((ROOT / "config/config.yaml").read_text()))))
    for rule, threads in (("knn_graph", 8), ("compare", 4), ("probe", 1)):
        for block in job_blocks(out, rule):
            wildcards = dict(re.findall(r"(\w+)=([\w.@-]+)", re.search(r"wildcards: (.*)", block).group(1)))
            asked = {r: int(re.search(rf"\b{r}=(\d+)", block).group(1)) for r in ("mem_mb", "runtime")}
            assert asked == cost.resources(rule, wildcards, 1, threads), (rule, wildcards)
    (umap,) = job_blocks(out, "umap")  # no wildcards: every map in one job
    assert {r: int(re.search(rf"\b{r}=(\d+)", umap).group(1)) for r in ("mem_mb", "runtime")} == cost.resources("umap", {})
    giant = cost.resources("knn_graph", {"crossmatch": "legacysurvey_hsc", "survey": "hsc", "model": "dinov2-giant"})
    small = cost.resources("knn_graph", {"crossmatch": "jwst_hsc", "survey": "hsc", "model": "dinov2-small"})
    assert giant["mem_mb"] > small["mem_mb"] and giant["runtime"] > small["runtime"]
    print(f"paper dry-run took {seconds:.1f} s")


def _with_zoo_block(text: str) -> str:
    """config/config.yaml with its commented block of families beyond the paper turned on."""
    head, rest = text.split("    # >>> beyond the paper", 1)
    block, tail = rest.split("    # <<< beyond the paper", 1)
    lines = [line.replace("    # ", "    ", 1) for line in block.splitlines()[1:] if re.match(r"    # [a-z0-9]+: \[", line)]
    assert len(lines) == 7, block
    return head + "\n".join(lines) + "\n" + tail.split("\n", 1)[1]


def test_paper_dry_run_with_the_zoo_block_turned_on(tmp_path):
    """The commented block of config/config.yaml: every new model embeds every image survey, with host memory,
    GPU memory and minutes growing with size."""
    from samesky.models.registry import family_sizes
    from samesky.models.resources import resources_for

    config = tmp_path / "config.yaml"
    config.write_text(_with_zoo_block((ROOT / "config/config.yaml").read_text()))
    zoo = yaml.safe_load(config.read_text())["models"]["image"]
    assert set(zoo) - {"astropt", "convnextv2", "dinov2", "ijepa", "vit"} == {
        "dinov3", "vitmae", "clip", "siglip2", "vjepa2", "llavaov", "paligemma2"}
    proc = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "-n", "--profile", slurm_profile(tmp_path), "--configfile", str(config),
         "--until", "embed"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    new = {f"{f}-{s}" for f in ("dinov3", "vitmae", "clip", "siglip2", "vjepa2", "llavaov", "paligemma2")
           for s in family_sizes(f)}
    assert len(new) == 23
    embed_blocks = job_blocks(out, "embed")
    assert len(embed_blocks) == 98 + 6 * 23  # the paper's jobs + each new model on the 6 image (crossmatch, survey)
    seen = {}
    for block in embed_blocks:
        model = re.search(r"model=([a-z0-9@-]+)", block).group(1)
        seen[model] = {r: int(re.search(rf"\b{r}=(\d+)", block).group(1)) for r in ("mem_mb", "runtime", "gpu_mem_mb")}
    assert new <= set(seen)
    for model in new:
        assert seen[model] == {r: resources_for(model)[r] for r in ("mem_mb", "runtime", "gpu_mem_mb")}
    for family in ("dinov3", "llavaov", "paligemma2"):
        sizes = family_sizes(family)
        small, large = seen[f"{family}-{sizes[0]}"], seen[f"{family}-{sizes[-1]}"]
        assert all(large[r] > small[r] for r in small), family
    assert seen["paligemma2-28b"]["gpu_mem_mb"] <= 80 * 1024 < seen["paligemma2-28b"]["gpu_mem_mb"] * 2


def _with_cosmos_web(text: str) -> str:
    """config/config.yaml with its commented COSMOS-Web crossmatch (and its probe properties) turned on."""
    out, inside, turned_on = [], False, 0
    for line in text.splitlines():
        if line.strip() in ("# >>> COSMOS-Web", "# <<< COSMOS-Web") or line.strip().startswith("# >>> COSMOS-Web:"):
            inside = ">>>" in line
            continue
        match = re.match(r"(\s*)# (\s*(cosmos_web|surveys|reference|source):.*)$", line) if inside else None
        if match:
            out.append(match.group(1) + match.group(2))
            turned_on += 1
        elif not inside:
            out.append(line)
    assert turned_on == 5, text
    return "\n".join(out) + "\n"


def test_layers_files_can_be_dropped_once_used(tmp_path, demo_config):
    """embed.keep_layers false: every layers file is temp, removed once its kNN job and every
    compare_layers job reading it are done (and only those)."""
    demo_config["embed"]["keep_layers"] = False
    proc = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "-n", "--cores", "2", "--configfile",
                           write_config(tmp_path / "config.yaml", demo_config)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    removed = set(re.findall(r"^Would remove temporary output (\S+)$", out, re.M))
    plan = Plan(fill_defaults(demo_config))
    assert removed == {plan.run.LAYERS.format(crossmatch=xm, survey=s, model=m) for xm, s, m in plan.embeddings}
    assert len(removed) == 7  # the demo's seven model embeddings: none is missed


def test_paper_dry_run_with_cosmos_web_turned_on(tmp_path):
    """The commented COSMOS-Web crossmatch of config/config.yaml: turned on, the paper run plans its
    ingestion, every image model on both its surveys (knn graphs beside), its intramodal pairs, the
    crossmodal pairs against its own reference (cosmos_hsc) and the probes of its LePhare columns."""
    config = tmp_path / "config.yaml"
    config.write_text(_with_cosmos_web((ROOT / "config/config.yaml").read_text()))
    loaded = yaml.safe_load(config.read_text())
    assert loaded["crossmatches"]["cosmos_web"]["reference"] == "cosmos_hsc"
    proc = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "-n", "--profile", slurm_profile(tmp_path), "--configfile", str(config)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    counts = job_counts(out)
    assert counts["ingest_hf"] == 5
    assert counts["embed"] == 98 + 16 * 2 and counts["knn_graph"] == 98 + 16 * 2
    assert counts["compare"] == (66 + 2 * 11) + (64 + 16) + 16  # intramodal, crossmodal, self
    assert counts["probe"] == 17 + 16 * 2
    cosmos = [b for b in job_blocks(out, "compare") if "crossmatch=cosmos_web" in b]
    assert len(cosmos) == 2 * 11 + 16
    assert sum("survey_a=cosmos_jwst" in b and "survey_b=cosmos_hsc" in b for b in cosmos) == 16  # crossmodal
    assert sum("survey_a=cosmos_hsc" in b and "survey_b=cosmos_hsc" in b for b in cosmos) == 11  # intramodal
    assert sum("crossmatch=cosmos_web" in b for b in job_blocks(out, "probe")) == 32
    assert any("crossmatch=cosmos_web" in b for b in job_blocks(out, "ingest_hf"))


def test_paper_dry_run_with_all_layers(tmp_path):
    """embed.layers: all makes each embedding's kNN job also write its block graphs, on a GPU (no
    job more), and adds one compare_layers job per crossmodal and intramodal pair (not the self
    pairs; the paper has no latent truth), each on a GPU; the layers file is an output of the
    embed job. The DAG is built in seconds of CPU (printed; the limit is a safety net)."""
    import resource

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["embed"]["layers"] = "all"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "-n", "--profile", slurm_profile(tmp_path),
         "--configfile", write_config(tmp_path / "layers.yaml", config)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    counts = job_counts(out)
    assert counts["embed"] == 98 and counts["knn_graph"] == 98 and counts["compare"] == 66 + 64 + 16
    assert "knn_layers" not in counts and counts["compare_layers"] == 66 + 64
    graphs = job_blocks(out, "knn_graph")
    assert len(graphs) == 98 and all("gpu=1" in b and f"{PAPER}/knn_layers/" in b and f"{PAPER}/layers/" in b
                                     for b in graphs)
    blocks = job_blocks(out, "compare_layers")
    assert len(blocks) == 130 and all("gpu=1" in b and f"{PAPER}/knn_layers/" in b for b in blocks)
    print(f"paper dry-run with layers: {seconds:.1f} s wall, {cpu:.1f} s CPU")
    assert cpu < 60  # a safety net; about 3 s on 2 idle cores


@pytest.mark.slow
def test_layer_rules_score_every_block_pair(tmp_path):
    """Rules knn_graph (with its block graphs) and compare_layers on layers files (written here as the
    embed job writes them): one graph job per embedding, one CSV per pair, and its final x final rows
    equal the compare job's records exactly; the latent truth scores every block."""
    import numpy as np

    from samesky import schema

    config = yaml.safe_load((ROOT / "tests" / "breadth.yaml").read_text())  # has legacysurvey_hsc
    config["embed"]["layers"] = "all"
    config["metrics"].update(null_draws=30, subsampling_splits=5)
    rng = np.random.default_rng(0)
    n, stem = 300, "legacysurvey_hsc/legacysurvey"
    ids = np.array([f"id{i:03d}" for i in range(n)])
    latent = rng.standard_normal((n, 5))
    for model, blocks in [("vit-base", 3), ("vit-large", 4)]:
        Z = [(latent @ rng.standard_normal((5, 16)) + rng.standard_normal((n, 16))).astype(np.float32)
             for _ in range(blocks)]
        schema.write_layers(tmp_path / f"results/demo/layers/{stem}/{model}.h5", ids, Z,
                            [f"layer {j + 1}" for j in range(blocks)], {"model": model})
        schema.write_embeddings(tmp_path / f"results/demo/embeddings/{stem}/{model}.h5", ids, Z[-1], {"model": model})
    schema.write_embeddings(tmp_path / "results/demo/embeddings/legacysurvey_hsc/truth/latent-truth.h5", ids[::-1],
                            latent[::-1].astype(np.float32), {"model": "truth"})
    pair, truth = f"{stem}/vit-base/legacysurvey/vit-large", f"{stem}/vit-base/truth/latent-truth"
    proc = snakemake(tmp_path, f"results/demo/layers_metrics/{pair}.csv", f"results/demo/layers_metrics/{truth}.csv",
                     f"results/demo/metrics/{pair}.json", "--cores", "2", "--configfile",
                     write_config(tmp_path / "layers.yaml", config),
                     "--allowed-rules", "knn_graph", "truth_knn_graph", "compare_layers", "compare")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert job_counts(proc.stdout + proc.stderr) == {"knn_graph": 2, "truth_knn_graph": 1, "compare_layers": 2,
                                                     "compare": 1}
    rows = pd.read_csv(tmp_path / f"results/demo/layers_metrics/{pair}.csv")
    assert len(rows) == len(config["metrics"]["names"]) * 4 * 5
    final = rows[(rows.block_a == "final") & (rows.block_b == "final")].set_index("metric")
    for rec in json.loads((tmp_path / f"results/demo/metrics/{pair}.json").read_text())["records"]:
        assert (final.loc[rec["metric"]].raw, final.loc[rec["metric"]].tau, final.loc[rec["metric"]].p) == (
            rec["score"], rec["tau"], rec["p_value"])
    # the job held the blocks its memory leaves (resource block_cache_mb, from samesky.cost): all 3 + 4, read once
    log = (tmp_path / f"logs/demo/compare_layers/{pair}.log").read_text()
    reads, held = map(int, re.search(r"(\d+) block reads \(held at most (\d+) bytes\)", log).groups())
    assert reads == 3 + 4 and held >= 2**20 and held % 2**20 == 0
    truth_rows = pd.read_csv(tmp_path / f"results/demo/layers_metrics/{truth}.csv")
    assert set(truth_rows.block_b) == {"final"} and len(truth_rows) == len(config["metrics"]["names"]) * 4
    assert (truth_rows.kind == "truth").all() and (truth_rows.n == n).all()


def test_invalid_config_fails_before_any_job(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config["models"]["image"]["vit"] = ["base", "enormous"]
    proc = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", write_config(tmp_path / "bad.yaml", config), timeout=300)
    assert proc.returncode != 0
    assert "models.image.vit[1]: unknown size 'enormous'" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
