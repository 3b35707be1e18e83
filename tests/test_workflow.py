"""The workflow as users run it: the demo end to end, reruns after config edits, paper dry-run."""
import copy
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_rules import rules

from samesky.config import fill_defaults
from samesky.models.registry import get_model
from samesky.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


PAPER = "results/platonic-universe"  # config/config.yaml's run
# The run's summary page and README: rewritten after any table they show or list
RUN_PAGES = {"summary": 1, "run_readme": 1}


def snakemake(workdir, *args, timeout=1200):
    proc = subprocess.run([*SNAKEMAKE, "-d", str(workdir), *args], capture_output=True, text=True, timeout=timeout)
    return proc


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a (dry-)run into {rule: count}."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            if parts and parts[0] == "total":
                break
            continue
        counts[parts[0]] = int(parts[1])
    return counts


def job_blocks(output: str, rule: str) -> list[str]:
    """The lines a (dry-)run prints for each job of ``rule`` (each block starts with a [date] line)."""
    blocks = re.split(r"^\[\w{3} \w{3} [ \d]\d [\d:]{8} \d{4}\]$", output, flags=re.M)
    return [b for b in blocks if re.search(rf"^(local)?rule {rule}:", b.strip(), re.M)]


def write_config(path, config):
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Run the embedded demo once into a temp dir (the same config `make demo` runs)."""
    workdir = tmp_path_factory.mktemp("demo")
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    cfg = write_config(workdir / "demo.yaml", config)
    start = time.perf_counter()
    # a hang's safety net: the tour takes a few minutes on 2 idle cores, several times that when shared
    proc = subprocess.run([sys.executable, "-m", "samesky.console", *SNAKEMAKE, "-d", str(workdir), "--cores", "2",
                           "--quiet", "rules", "--configfile", cfg], capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-6000:]  # as make demo: samesky.console, stderr folded in
    (workdir / "terminal.txt").write_text(proc.stdout + proc.stderr)
    return workdir, config, time.perf_counter() - start


# Rules the demo cannot run, and where they run instead.
NOT_IN_DEMO = {"precomputed_embedding": "needs embed.layers: final (the demo writes every block); "
                                        "tests/test_precomputed.py runs it",
               "ingest_hf": "the demo's crossmatches are simulated: ingest_simulated runs its script on them, and "
                            "the paper's dry runs (tests/test_dryrun.py) plan it"}


@pytest.mark.slow
def test_demo_runs_every_rule(demo_run):
    """The tour runs every rule of workflow/rules/*.smk (but NOT_IN_DEMO's) at least once."""
    workdir, _, _ = demo_run
    ran = job_counts((workdir / "terminal.txt").read_text())
    assert set(NOT_IN_DEMO) <= rules()
    assert rules() - set(ran) == set(NOT_IN_DEMO), ran


@pytest.mark.slow
def test_demo_writes_tables_and_figures(demo_run):
    workdir, config, seconds = demo_run
    print(f"demo run took {seconds:.0f} s")
    # the terminal shows progress and problems; each job's detail is in its log (the tables'
    # snapshots have no coordinates: said once, in the ingestion log). One line per finished job
    # (samesky.console), the header and job table: no block, warning or backend message.
    terminal = (workdir / "terminal.txt").read_text()
    jobs = sum(job_counts(terminal).values())
    progress = re.findall(r"^\[[\d:]{8}\] (\d+)/(\d+) \w+$", terminal, re.M)
    assert [int(done) for done, _ in progress] == list(range(1, jobs + 1)), terminal
    assert len(terminal.splitlines()) < 300 and len(terminal.splitlines()) <= jobs + 70, terminal
    assert not re.findall(r"^.*(?:WARNING|\[transformers\]|it/s|rule \w+:).*$", terminal, re.M)
    ingest_log = (workdir / "logs/ingest_simulated/desi_hsc.log").read_text()
    assert ingest_log.count("no ra/dec column") == 1 and "INFO samesky.ingest" in ingest_log
    scores = pd.read_csv(workdir / "results/demo/tables/scores.csv")
    assert set(scores["metric"]) == set(config["metrics"]["names"])
    tables = workdir / "results/demo/tables/paper"
    assert list(tables.glob("*.md")) and list(tables.glob("*.csv")) and list(tables.glob("*.tex"))
    assert list((workdir / "results/demo/figures").glob("*.png"))
    mknn = scores[scores["metric"] == "mknn"]
    assert mknn["score"].between(0, 1).all()
    self_rows = mknn[mknn["kind"] == "self"]
    assert (self_rows["score"] == 1.0).all()
    expected_null = config["metrics"]["k"] / (self_rows["n"] - 1)
    # the simulated sky's latent truth is recoverable: most embeddings of RGB images and spectra align
    # with it beyond the null (AION's tiny random-weight codecs on raw fluxes need not)
    truth = mknn[mknn["kind"] == "truth"]
    assert len(truth) == len(list((workdir / "results/demo/embeddings").rglob("*.h5"))) - len(config["crossmatches"])
    on_flux = truth["model_a"].map(lambda m: get_model(m).input_kind == "flux")
    assert on_flux.any() and (truth.loc[~on_flux, "p_value"] < 0.05).mean() > 0.7
    assert list(tables.glob("table_truth_mknn.md"))
    stderr = self_rows["null_std"] / config["metrics"]["null_draws"] ** 0.5
    assert ((self_rows["null_mean"] - expected_null).abs() < 5 * stderr + 1e-6).all()
    # calibrated scores beside the raw ones: every record, Tables 1-2, trend tests, figures
    assert scores["calibrated"].between(0, 1).all() and scores["tau"].notna().all()
    assert (scores["alpha"] == config["metrics"].get("alpha", 0.05)).all()
    assert (scores.loc[scores["metric"].str.startswith("cka"), "null_method"] == "closed_form").all()
    assert list(tables.glob("table2_crossmodal_mknn_calibrated.md")) and list(tables.glob("trend_stats_calibrated.csv"))
    assert list((workdir / "results/demo/figures").glob("figure1_crossmodal_mknn_calibrated.png"))


@pytest.mark.slow
def test_every_heavy_job_is_benchmarked_within_its_resources(demo_run):
    """benchmark: records every embed, kNN, compare, probe and compare_layers job (one kNN job per
    embedding writes its graph and its block graphs); embed jobs fit resources_for."""
    from samesky.models.resources import resources_for

    workdir, _, _ = demo_run
    bench = workdir / "results" / "demo" / "benchmarks"
    for rule, outputs, truth in (("embed", "results/demo/embeddings", False), ("knn_graph", "results/demo/knn", False),
                                 ("knn_graph", "results/demo/knn_layers", False), ("truth_knn_graph", "results/demo/knn", True),
                                 ("compare", "results/demo/metrics", None), ("probe", "results/demo/probes", None),
                                 ("compare_layers", "results/demo/layers_metrics", None)):
        made = {p.relative_to(workdir / outputs).with_suffix("") for p in (workdir / outputs).rglob("*.*")
                if truth is None or ("truth" in p.parts) == truth}
        recorded = {p.relative_to(bench / rule).with_suffix("") for p in (bench / rule).rglob("*.tsv")}
        assert made and recorded == made, (rule, outputs)
    for tsv in (bench / "embed").rglob("*.tsv"):
        row = pd.read_csv(tsv, sep="\t").iloc[0]
        limits = resources_for(tsv.stem)
        assert row["max_rss"] < limits["mem_mb"] and row["s"] < 60 * limits["runtime"], (tsv, dict(row))


@pytest.mark.slow
def test_demo_writes_probe_tables_and_figures(demo_run):
    """Every embedding of a probed crossmatch is probed for each of its properties, by both probes
    (DESI-HSC: the latent truth; COSMOS-Web: its catalogue columns), and mapped by UMAP for each
    continuous one."""
    workdir, config, _ = demo_run
    probes = pd.read_csv(workdir / "results/demo/tables/probes.csv")
    chosen, categorical = config["probes"]["properties"], set(config["probes"]["categorical"])
    assert set(chosen) == {"desi_hsc", "cosmos_web"} and set(probes["crossmatch"]) == set(chosen)
    for xm, properties in chosen.items():
        n_embeddings = len(list((workdir / "results/demo/embeddings" / xm).rglob("*.h5"))) - 1  # not the truth
        sub = probes[probes["crossmatch"] == xm]
        assert len(sub) == n_embeddings * len(properties) * 2 and set(sub["property"]) == set(properties), xm
    assert set(probes["probe"]) == {"linear", "knn"}
    assert set(probes.loc[probes["property"] == "quiescent", "metric"]) == {"balanced_accuracy"}
    assert (probes["n_excluded"] == 0).all() and (probes["null_draws"] == config["probes"]["null_draws"]).all()
    # the latent redshift is recoverable from most embeddings, well above the null
    linear = probes[(probes["probe"] == "linear") & (probes["property"] == "redshift")]
    assert (linear["score"] > linear["null_mean"] + 2 * linear["null_std"]).mean() > 0.7
    every = [prop for properties in chosen.values() for prop in properties]
    tables = workdir / "results/demo/tables/probes"
    assert {p.name for p in tables.glob("*.csv")} == {f"{prop}_{name}.csv" for prop in every for name in ("linear", "knn")}
    assert pd.read_csv(tables / "redshift_linear.csv").shape[0] == len(linear["model"].unique())
    assert {p.name for p in (workdir / "results/demo/probe_figures").glob("*.png")} == {
        *(f"probe_{p}.png" for p in every), *(f"alignment_physics_{xm}.png" for xm in chosen),
        *(f"physics_depth_{xm}.png" for xm in chosen)}
    # the physics tests of every block (the demo's layer atlas): each physics record again per block, at its depth
    physics_table = pd.read_csv(workdir / "results/demo/tables/physics.csv")
    blocks = pd.read_csv(workdir / "results/demo/tables/physics_layers.csv")
    embedding = ["crossmatch", "survey", "model"]
    per_block = blocks.groupby([*embedding, "block"]).size().droplevel("block")
    assert per_block.to_dict() == physics_table.groupby(embedding).size().to_dict()  # a row per test and property
    assert blocks["depth"].between(0, 1, inclusive="right").all() and blocks["ci_low"].notna().all()
    # UMAP maps (probes.umap): one figure per continuous probed property, kNN purity in each panel's title
    assert {p.name for p in (workdir / "results/demo/umap_figures").glob("*.png")} == {
        f"{xm}_{p}.png" for xm, properties in chosen.items() for p in properties if p not in categorical}
    # alignment against physics: every crossmodal MKNN comparison of a probed crossmatch beside what each of
    # its two embeddings knows (linear probe per property, neighbour consistency per continuous property)
    alignment = pd.read_csv(workdir / "results/demo/tables/alignment_physics.csv")
    scores = pd.read_csv(workdir / "results/demo/tables/scores.csv")
    crossmodal = scores[(scores["kind"] == "crossmodal") & (scores["metric"] == "mknn")]
    for xm, properties in chosen.items():
        pairs, sub = crossmodal[crossmodal["crossmatch"] == xm], alignment[alignment["crossmatch"] == xm]
        n_continuous = len(set(properties) - categorical)
        assert len(sub) == 2 * len(pairs) * (len(properties) + n_continuous) and sub["alignment"].notna().all(), xm
    assert set(alignment["measure"]) == {"linear probe", "neighbour_consistency"}
    # the trend test across DESI-HSC's trained models (COSMOS-Web runs one model: no trend to test)
    trend = pd.read_csv(workdir / "results/demo/tables/alignment_physics_trend.csv")
    pairs = crossmodal[crossmodal["crossmatch"] == "desi_hsc"]
    trained, desi = (~pairs["model_b"].str.contains("@random")).sum(), trend[trend["crossmatch"] == "desi_hsc"]
    assert set(desi["n"]) == {trained} and set(desi["method"]) == {f"exact ({math.factorial(trained):,} orderings)"}
    assert set(trend.loc[trend["crossmatch"] == "cosmos_web", "note"]) == {"fewer than 3 models"}
    assert (workdir / "results/demo/tables/alignment_physics.md").read_text().count("| desi_hsc |") == len(
        alignment[alignment["crossmatch"] == "desi_hsc"].drop_duplicates(["survey", "embedding_model", "compared_model"])
    ) + len(desi)
    # the Wasserstein neighbourhood distance (rule physics_pair): each intramodal and crossmodal pair of a probed
    # crossmatch, per continuous property
    pairs = pd.read_csv(workdir / "results/demo/tables/physics_pairs.csv")
    compared = scores[scores["kind"].isin(["intramodal", "crossmodal"]) & (scores["metric"] == "mknn")]
    side = ["kind", "crossmatch", "survey_a", "model_a", "survey_b", "model_b"]
    assert sorted(tuple(row) + (p,) for row in compared[side].itertuples(index=False, name=None)
                  for p in chosen[row[1]] if p not in categorical) == sorted(
        pairs[[*side, "property"]].itertuples(index=False, name=None))
    assert len(pairs) == 7 and set(pairs["test"]) == {"neighbourhood_wasserstein"}
    assert pairs["score"].ge(0).all() and pairs["ci_low"].notna().all() and pairs["p_value"].notna().all()
    assert "| neighbourhood_wasserstein |" in (workdir / "results/demo/tables/physics_pairs.md").read_text()


@pytest.mark.slow
def test_changing_probe_settings_reruns_only_probes(demo_run):
    workdir, config, _ = demo_run
    n_probed = len(list((workdir / "results/demo/probes").rglob("*.json")))
    counts = _rerun_counts(workdir, config, lambda c: c["probes"].update(pca_components=16))
    assert counts == {"probe": n_probed, "probe_report": 1, "run_readme": 1, "all": 1}
    # one crossmatch's properties rerun its probes only (DESI-HSC's continuous ones are unchanged)
    n_desi = len(list((workdir / "results/demo/probes/desi_hsc").rglob("*.json")))
    counts = _rerun_counts(workdir, config, lambda c: c["probes"].update(
        properties={**c["probes"]["properties"], "desi_hsc": ["redshift"]}, categorical=[]))
    assert counts == {"probe": n_desi, "probe_report": 1, "run_readme": 1, "all": 1}
    # another property of COSMOS-Web adds to its probes, physics tests (of its embeddings and of its compared
    # pairs) and UMAP maps only
    n_cosmos = len(list((workdir / "results/demo/probes/cosmos_web").rglob("*.json")))
    n_cosmos_pairs = len(list((workdir / "results/demo/physics_pairs/cosmos_web").rglob("*.json")))
    counts = _rerun_counts(workdir, config, lambda c: c["probes"]["properties"]["cosmos_web"].append("lp_ssfr"))
    assert n_cosmos_pairs == 1 and counts == {"probe": n_cosmos, "physics": n_cosmos, "physics_pair": n_cosmos_pairs,
                                              "probe_report": 1, "umap": 1, "run_readme": 1, "all": 1}


@pytest.mark.slow
def test_changing_the_physics_tests_reruns_only_their_jobs(demo_run):
    """probes.physics.tests: one physics job per embedding with a continuous probed property (the
    demo's redshift on DESI-HSC), on the graphs already made; changing the tests or their
    parameters reruns those jobs and the report, nothing else."""
    workdir, config, _ = demo_run
    n_probed = len(list((workdir / "results/demo/probes").rglob("*.json")))
    counts = _rerun_counts(workdir, config, lambda c: c["probes"].update(
        physics={"tests": ["neighbour_consistency", "knn_purity"], "params": {"knn_purity": {"k": 10}}}))
    # and the UMAP maps, whose k is the kNN purity's (the Wasserstein test of the compared pairs, left out, is gone)
    assert counts == {"physics": n_probed, "probe_report": 1, "umap": 1, "run_readme": 1, "all": 1}
    # the Wasserstein test's parameters rerun its physics_pair jobs only, one per compared pair
    n_pairs = len(list((workdir / "results/demo/physics_pairs").rglob("*.json")))
    counts = _rerun_counts(workdir, config, lambda c: c["probes"]["physics"].update(
        params={"neighbourhood_wasserstein": {"k": 5}}))
    assert n_pairs == 6 and counts == {"physics_pair": n_pairs, "probe_report": 1, "run_readme": 1, "all": 1}


@pytest.mark.slow
def test_second_run_has_nothing_to_do(demo_run):
    workdir, config, _ = demo_run
    proc = snakemake(workdir, "-n", "--cores", "2", "--configfile", str(workdir / "demo.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_demo_readme_and_report_open_on_the_summary(demo_run):
    """The run's README lists its folders; the end of a run says where to look; the Snakemake report
    (make report's command) opens on the summary page and files the layer atlas by crossmatch, pair
    and metric."""
    workdir, config, _ = demo_run
    readme = (workdir / "results/demo/README.md").read_text()
    listed = re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M)
    assert listed == ["summary.html", "tables/", "figures/", "layer_figures/", "probe_figures/", "umap_figures/", "metrics/",
                      "layers_metrics/", "probes/", "physics/", "physics_layers/", "physics_pairs/", "embeddings/", "layers/", "knn/", "knn_layers/", "preprocessed/",
                      "preprocessed_flux/", "benchmarks/"]
    assert "1. `summary.html`" in readme and "table2_crossmodal_mknn_calibrated.md" in readme
    for folder in listed:
        assert (workdir / "results/demo" / folder).exists(), folder
    cfg = str(workdir / "demo.yaml")
    # the end of a run that did something says where to look (a run with nothing to do ends before)
    proc = snakemake(workdir, "--cores", "1", "--configfile", cfg, "--forcerun", "run_readme")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert job_counts(proc.stderr) == {"run_readme": 1, "all": 1}
    assert proc.stdout.splitlines()[-2:] == [
        "samesky run 'demo': read results/demo/README.md first (what each folder holds, which tables and figures "
        "to open)", f"the Snakemake report: make report CONFIG={cfg}  ->  results/demo/report.html"]
    proc = snakemake(workdir, "--configfile", cfg, "--report", "results/demo/report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (workdir / "results/demo/report.html").read_text()
    summary = (workdir / "results/demo/summary.html").read_text()
    for part in ("Run <code>demo</code>: summary", "Table 1 – intramodal alignment (MKNN)",
                 "Table 2 – crossmodal alignment (MKNN)", "Figure 1 – model size vs crossmodal alignment (MKNN)",
                 "subsampling_splits = 50", "N = 200"):
        assert part in summary, part
    description = _report_var(page, "workflow_desc")
    assert description.index(summary.strip()) < description.index("About samesky")  # it opens on the summary
    categories, results = _report_var(page, "categories"), _report_var(page, "results")
    assert set(categories["Layer atlas"]) == {*config["crossmatches"], "tables", "best block pair vs size"}
    heatmaps = [results[path] for path in categories["Layer atlas"]["cosmos_web"]]
    assert {r["labels"]["metric"] for r in heatmaps} == set(config["metrics"]["names"])
    assert "JWST (COSMOS-Web) ViT Base vs HSC (COSMOS-Web) ViT Base" in {r["labels"]["pair"] for r in heatmaps}


def _report_var(page: str, name: str):
    """A variable of a Snakemake report page (each is JSON in a script of its own)."""
    return json.loads(re.search(rf"<script id=\"[^\"]+\">\s*var {name} = (.*?);\n\s*</script>", page,
                                flags=re.S).group(1))


def _rerun_counts(workdir, config, edit):
    config = copy.deepcopy(config)
    edit(config)
    cfg = write_config(workdir / "edited.yaml", config)
    proc = snakemake(workdir, "-n", "--cores", "2", "--configfile", cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return job_counts(proc.stdout + proc.stderr)


def _layer_jobs(workdir, under: str = "") -> dict[str, int]:
    """The layer stage's jobs that rerun with the comparisons below ``under`` (the demo writes
    every block: embed.layers: all): their block x block scores and the report (the block
    graphs rerun with the final ones, in the knn_graph jobs)."""
    return {"compare_layers": len(list((workdir / "results/demo/layers_metrics" / under).rglob("*.csv"))),
            "layers_report": 1}


def _graph_jobs(workdir, under: str = "") -> dict[str, int]:
    """The kNN jobs of the embeddings below ``under``: knn_graph per model embedding (final and
    block graphs), truth_knn_graph per latent truth."""
    files = list((workdir / "results/demo/embeddings" / under).rglob("*.h5"))
    truth = sum("truth" in f.parts for f in files)
    return {"knn_graph": len(files) - truth, **({"truth_knn_graph": truth} if truth else {})}


def _probe_jobs(workdir, under: str = "") -> dict[str, int]:
    """The probes of the embeddings below ``under`` and the report, if any is probed (the demo
    probes one crossmatch)."""
    n = len(list((workdir / "results/demo/probes" / under).rglob("*.json")))
    return {"probe": n, "probe_report": 1} if n else {}


@pytest.mark.slow
def test_changing_k_reruns_only_metrics(demo_run):
    workdir, config, _ = demo_run
    # the graphs of 8k = 40 neighbours cannot hold the UMAP maps' 50: they take 40 (a ConfigError says so)
    counts = _rerun_counts(workdir, config, lambda c: (c["metrics"].update(k=5), c["probes"]["physics"].update(
        params={"knn_purity": {"k": 40}})))
    n_comparisons = len(list((workdir / "results/demo/metrics").rglob("*.json")))
    # and the physics tests (of the embeddings and of the compared pairs) and the UMAP maps, which read the graphs
    n_physics = len(list((workdir / "results/demo/physics").rglob("*.json")))
    n_pairs = len(list((workdir / "results/demo/physics_pairs").rglob("*.json")))
    assert counts == {**_graph_jobs(workdir), "compare": n_comparisons, "aggregate": 1, "figures": 1, "all": 1,
                      "physics": n_physics, "physics_pair": n_pairs, "probe_report": 1, "umap": 1,
                      **_layer_jobs(workdir), **RUN_PAGES}


@pytest.mark.slow
def test_changing_knn_precision_reruns_the_graphs(demo_run):
    """The graph jobs rerun (their params changed); the compare jobs only because their inputs
    are rewritten (the same graphs, bit for bit), not through their own params."""
    workdir, config, _ = demo_run
    counts = _rerun_counts(workdir, config, lambda c: c["metrics"].update(knn_precision="bf16-screened"))
    assert {rule: counts[rule] for rule in _graph_jobs(workdir)} == _graph_jobs(workdir)


@pytest.mark.slow
def test_changing_null_draws_reruns_only_comparisons(demo_run):
    workdir, config, _ = demo_run
    counts = _rerun_counts(workdir, config, lambda c: c["metrics"].update(null_draws=100))
    n_comparisons = len(list((workdir / "results/demo/metrics").rglob("*.json")))
    # and the probe report, whose alignment-against-physics table reads the calibrated scores
    assert counts == {"compare": n_comparisons, "aggregate": 1, "figures": 1, "probe_report": 1, "all": 1,
                      **_layer_jobs(workdir), **RUN_PAGES}


@pytest.mark.slow
def test_changing_a_metric_parameter_reruns_only_comparisons(demo_run):
    """metrics.params reaches the compare jobs through their params, and nothing else."""
    workdir, config, _ = demo_run
    counts = _rerun_counts(workdir, config, lambda c: c["metrics"].update(params={"mutual_info": {"components": 8}}))
    n_comparisons = len(list((workdir / "results/demo/metrics").rglob("*.json")))
    assert counts == {"compare": n_comparisons, "aggregate": 1, "figures": 1, "probe_report": 1, "all": 1,
                      **_layer_jobs(workdir), **RUN_PAGES}


@pytest.mark.slow
def test_changing_jwst_channels_reruns_only_jwst(demo_run):
    """COSMOS-Web's JWST composites read in another channel order: its JWST side reruns, down to
    its probes, physics tests and UMAP maps, and nothing of HSC's."""
    workdir, config, _ = demo_run
    under = "cosmos_web/cosmos_jwst"
    counts = _rerun_counts(workdir, config, lambda c: c["preprocess"].setdefault("rgb", {}).update(
        cosmos_jwst=["blue", "green", "red"]))
    jwst_models = len(list((workdir / "results/demo/embeddings" / under).glob("*.h5")))
    jwst_comparisons = len(list((workdir / "results/demo/metrics" / under).rglob("*.json")))
    jwst_pairs = len(list((workdir / "results/demo/physics_pairs" / under).rglob("*.json")))
    assert jwst_pairs == 1 and counts == {
        "percentiles": 1, "preprocess": 1, "embed": jwst_models, "knn_graph": jwst_models,
        "compare": jwst_comparisons, **_probe_jobs(workdir, under), "physics": jwst_models, "physics_pair": jwst_pairs,
        "umap": 1, "aggregate": 1, "figures": 1, "all": 1, **_layer_jobs(workdir, under), **RUN_PAGES}


@pytest.mark.slow
def test_adding_a_model_adds_only_its_jobs(demo_run):
    """A new size runs where its crossmatches run the family (crossmatches.<name>.image_models):
    its tiny weights, its embedding and graphs, and only the comparisons, probes and physics
    tests the plan adds for it, then the reports."""
    workdir, config, _ = demo_run
    def add_huge(c):
        c["models"]["image"]["vit"].append("huge")

    counts = _rerun_counts(workdir, config, add_huge)
    edited = copy.deepcopy(config)
    add_huge(edited)
    before, after = Plan(fill_defaults(copy.deepcopy(config))), Plan(fill_defaults(edited))

    def new(jobs):
        return set(jobs(after)) - set(jobs(before))

    assert new(lambda p: p.embeddings) == {("desi_hsc", "hsc", "vit-huge")}  # COSMOS-Web runs vit-base only
    comparisons = new(lambda p: p.comparisons)
    assert {(c.kind, c.model_a, c.model_b) for c in comparisons} == {
        ("intramodal", "vit-large", "vit-huge"), ("crossmodal", "specformer-base", "vit-huge"),
        ("self", "vit-huge", "vit-huge"), ("truth", "vit-huge", "latent-truth")}
    assert counts == {"build_tiny_model": 1, "embed": 1, "knn_graph": 1, "compare": len(comparisons),
                      "probe": len(new(lambda p: p.probes)), "physics": len(new(lambda p: p.physics)),
                      "physics_pair": len(new(lambda p: p.physics_pairs)),  # its intramodal and crossmodal pairs
                      "aggregate": 1, "figures": 1, "probe_report": 1, "umap": 1, "all": 1,
                      # the layer stage: every pair above but the self pair
                      "compare_layers": len(comparisons) - 1, "layers_report": 1, **RUN_PAGES}


@pytest.mark.slow
def test_demo_runs_aion_on_raw_fluxes_and_its_untrained_control(demo_run):
    """AION takes raw-flux inputs (rule preprocess_flux), only for the surveys it has codecs for
    (HSC, not JWST); its untrained control (rule build_random_model) runs through the same jobs."""
    workdir, config, _ = demo_run
    assert config["models"]["image"]["aion"] == ["base"] and config["models"]["untrained"] == ["aion-base"]
    ran = job_counts((workdir / "terminal.txt").read_text())
    assert (ran["preprocess_flux"], ran["build_random_model"]) == (1, 1)  # DESI-HSC runs AION; COSMOS-Web does not
    flux = workdir / "results/demo/preprocessed_flux"
    assert {p.relative_to(flux).as_posix() for p in flux.rglob("*.h5")} == {"desi_hsc/hsc.h5"}
    embeddings = workdir / "results/demo/embeddings"
    for model in ("aion-base", "aion@random-base"):
        assert {p.relative_to(embeddings).parent.as_posix() for p in embeddings.rglob(f"{model}.h5")} == {
            "desi_hsc/hsc"}, model
    n = config["crossmatches"]["desi_hsc"]["source"]["simulate"]["n"]
    for model in ("aion-base", "aion@random-base"):
        target = workdir / f"results/demo/metrics/desi_hsc/desi/specformer-base/hsc/{model}.json"
        records = {r["metric"]: r for r in json.loads(target.read_text())["records"]}
        assert set(records) == set(config["metrics"]["names"])
        assert records["mknn"]["kind"] == "crossmodal" and (records["mknn"]["n"], records["mknn"]["n_excluded"]) == (n, 0)


@pytest.mark.slow
def test_changing_batch_size_reruns_nothing(demo_run):
    workdir, config, _ = demo_run
    assert _rerun_counts(workdir, config, lambda c: c["embed"].update(batch_size=7, shard_size=13)) == {}
