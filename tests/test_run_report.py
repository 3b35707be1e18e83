"""A run's own folder (results/<run_name>/), its README, its summary page and the report's layer atlas groups."""
import re

import pandas as pd
import pytest

from samesky import paths
from samesky.config import ConfigError, validate_config
from samesky.plan import Plan
from samesky.report import readme, summary
from samesky.report.layers import BEST_FIGURES, figure_group, heatmap_name


@pytest.mark.parametrize("name", ["demo", "platonic-universe", "run_2.1", "A" * 100])
def test_a_run_name_is_its_folder(name):
    run = paths.RunPaths(name)
    assert run.root == f"results/{name}"
    assert run.SCORES == f"results/{name}/tables/scores.csv"
    assert run.log("embed/x.log") == f"logs/{name}/embed/x.log"
    assert run.benchmark("embed/x.tsv") == f"results/{name}/benchmarks/embed/x.tsv"
    assert paths.RunPaths.SCORES == "tables/scores.csv"  # on the class: relative to the root


@pytest.mark.parametrize("name", ["", ".", "..", "../demo", "a/b", "-rf", ".hidden", "my run", "dé", "A" * 101, 3, None])
def test_a_run_name_that_is_not_one_folder_is_refused_by_key(name):
    with pytest.raises(ConfigError, match=r"^run_name: .* is not a folder name; the run's results go under "
                                          r"results/<run_name>/"):
        paths.RunPaths(name)


def test_the_plan_puts_every_result_under_the_run_and_refuses_a_bad_run_name(demo_config):
    plan = Plan(validate_config(demo_config))
    assert plan.run.root == "results/demo"
    assert all(f.startswith("results/demo/metrics/") for f in plan.metric_files())
    assert all(f.startswith("results/demo/probes/") for f in plan.probe_paths)
    demo_config["run_name"] = "../paper"
    with pytest.raises(ConfigError, match=r"^run_name: '../paper' is not a folder name"):
        validate_config(demo_config)


def test_every_folder_a_run_writes_is_described_in_its_readme():
    """The README's ENTRIES cover the first part of every RunPaths pattern and the benchmarks."""
    tops = {pattern.split("/")[0] for pattern in paths.RunPaths.patterns().values()} | {"benchmarks"}
    assert tops - {"README.md"} == set(readme.ENTRIES)


def test_the_readme_lists_the_present_folders_in_reading_order_and_leads_with_the_calibrated_tables():
    run = paths.RunPaths("demo")
    text = readme.run_readme(run, "mknn", ["tables", "metrics", "summary.html", "figures", "README.md"])
    assert text.startswith("# Run `demo`\n")
    rows = re.findall(r"^\| `([^`]+)` \|", text, flags=re.M)
    assert rows == ["summary.html", "tables/", "figures/", "metrics/"]  # ENTRIES order; no layers, probes
    first = re.findall(r"^\d\. `([^`]+)`", text, flags=re.M)
    assert first == ["summary.html", "tables/paper/table2_crossmodal_mknn_calibrated.md",
                     "tables/paper/table1_intramodal_mknn_calibrated.md",
                     "figures/figure1_crossmodal_mknn_calibrated.png", "tables/scores.csv"]
    assert summary.CALIBRATED_NOTE in text
    assert ("`make report` (with `CONFIG=` the run's config file, unless it is `config/demo.yaml`) builds "
            "`results/demo/report.html`") in text
    assert "`logs/demo/`" in text


def test_the_report_command_names_the_config_unless_it_is_the_demos():
    assert readme.report_command(["config/demo.yaml"]) == "make report"
    assert readme.report_command([]) == "make report"
    assert readme.report_command(["config/config.yaml"]) == "make report CONFIG=config/config.yaml"
    lines = readme.next_steps(paths.RunPaths("platonic-universe"), ["config/config.yaml"]).splitlines()
    assert lines == ["samesky run 'platonic-universe': read results/platonic-universe/README.md first (what each "
                     "folder holds, which tables and figures to open)",
                     "the Snakemake report: make report CONFIG=config/config.yaml  ->  "
                     "results/platonic-universe/report.html"]


def test_write_run_readme_reads_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = paths.RunPaths("demo")
    for folder in ("tables", "embeddings", "layer_figures"):
        (tmp_path / run.root / folder).mkdir(parents=True)
    out = readme.write_run_readme(run.README, run, ["cka_linear", "mknn"])
    text = out.read_text()
    assert re.findall(r"^\| `([^`]+)` \|", text, flags=re.M) == ["tables/", "layer_figures/", "embeddings/"]
    assert "table2_crossmodal_mknn_calibrated.md" in text  # MKNN leads whatever the config's order


def test_data_source_says_simulated_hub_or_local():
    assert summary.data_source({"source": {"simulate": {"n": 200, "seed": 1}}, "drop_flat": {"jwst": "f200w"}}) == (
        "simulated sky (n 200, seed 1); jwst rows with a flat f200w dropped")
    assert summary.data_source({"source": {"hf": {"dataset": "Smith42/desi_hsc_crossmatched", "limit": None}}}) == (
        "Hugging Face Hub dataset Smith42/desi_hsc_crossmatched")
    assert summary.data_source({"source": {"hf": {"dataset": "/data/desi_hsc", "limit": 500}}}) == (
        "local snapshot /data/desi_hsc, first 500 rows")
    assert summary.data_source({"source": {"path": "xm.h5"}}) == "crossmatch file xm.h5"


def test_the_summary_puts_the_tables_and_figure_1_calibrated_beside_raw_and_says_what_ran(tmp_path, demo_config):
    facts = Plan(validate_config(demo_config)).summary_params()
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    tables.mkdir()
    figures.mkdir()
    for stem in ("table1_intramodal_mknn", "table2_crossmodal_mknn"):
        pd.DataFrame({"Model": ["ViT Base"], "HSC": [f"{stem} raw"]}).to_csv(tables / f"{stem}.csv", index=False)
        pd.DataFrame({"Model": ["ViT Base"], "HSC": [f"{stem} cal"]}).to_csv(tables / f"{stem}_calibrated.csv",
                                                                           index=False)
    (figures / "figure1_crossmodal_mknn.png").write_bytes(b"raw-png")
    (figures / "figure1_crossmodal_mknn_calibrated.png").write_bytes(b"cal-png")
    scores = tmp_path / "scores.csv"
    pd.DataFrame({"crossmatch": ["desi_hsc", "desi_hsc", "cosmos_web"], "metric": ["mknn", "cka_linear", "mknn"],
                  "n": [200, 200, 187]}).to_csv(scores, index=False)
    page = summary.write_summary(tmp_path / "summary.html", facts, scores, tables, figures,
                                 versions={"python": "3.11.0", "samesky": "0.1"}).read_text()
    order = [page.index(s) for s in ("Table 1 – intramodal alignment (MKNN)", "table1_intramodal_mknn cal",
                                     "table1_intramodal_mknn raw", "Table 2 – crossmodal alignment (MKNN)",
                                     "table2_crossmodal_mknn cal", "table2_crossmodal_mknn raw",
                                     "Figure 1", "base64,Y2FsLXBuZw==", "base64,cmF3LXBuZw==", "What ran", "Software")]
    assert order == sorted(order)  # calibrated before (beside) raw, the run after the results
    assert page.index("Simulated sky (cosmos_web, desi_hsc), random-weight miniature models: not scientific results") \
        < order[0]  # said before any result
    real = {**facts, "marking": {"simulated": [], "miniature": False}}  # Plan.report_facts of hub data and weights
    assert "not scientific results" not in summary.write_summary(tmp_path / "real.html", real, scores, tables,
                                                                 figures, versions={}).read_text()
    for row in ("<th style='text-align:left;padding-right:1em'>run_name</th><td>demo</td>",
                "<td>JWST (COSMOS-Web) + HSC (COSMOS-Web), N = 187; simulated sky (n 200, seed 1); image models "
                "vit-base</td>",
                "<td>DESI + HSC, N = 200; simulated sky (n 200, seed 3)</td>",  # all the run's image models
                "<td>vit-base, vit-large, aion-base, aion@random-base</td>", "<td>specformer-base</td>",
                "<td>k = 10, null_draws = 50, subsampling_splits = 50</td>",
                "<td>3.11.0</td>"):
        assert row in page, row


def test_a_missing_table_is_said_not_drawn(tmp_path, demo_config):
    (tmp_path / "t").mkdir()
    (tmp_path / "f").mkdir()
    pd.DataFrame({"crossmatch": ["desi_hsc"], "metric": ["mknn"], "n": [200]}).to_csv(tmp_path / "s.csv", index=False)
    page = summary.write_summary(tmp_path / "s.html", Plan(validate_config(demo_config)).summary_params(),
                                 tmp_path / "s.csv",
                                 tmp_path / "t", tmp_path / "f", versions={}).read_text()
    assert page.count("not in this run (no comparison of this kind)") == 6
    assert "JWST (COSMOS-Web) + HSC (COSMOS-Web), N = not scored" in page


def test_layer_figures_are_grouped_by_crossmatch_pair_and_metric(demo_config):
    plan = Plan(validate_config(demo_config))
    pairs = [c.as_dict() for c in plan.layer_comparisons()]
    pair = next(p for p in pairs if p["crossmatch"] == "cosmos_web" and p["kind"] == "crossmodal")
    name = heatmap_name({**pair, "metric": "cka_linear"}).removesuffix(".png")
    assert figure_group(name, pairs) == {"crossmatch": "cosmos_web", "metric": "cka_linear",
                                         "pair": "JWST (COSMOS-Web) ViT Base vs HSC (COSMOS-Web) ViT Base"}
    truth = next(p for p in pairs if p["kind"] == "truth" and p["crossmatch"] == "desi_hsc")
    got = figure_group(heatmap_name({**truth, "metric": "mknn"}).removesuffix(".png"), pairs)
    assert got["crossmatch"] == "desi_hsc" and got["pair"].endswith(" vs latent truth")
    assert figure_group("best_vs_params_mknn", pairs) == {"crossmatch": BEST_FIGURES, "pair": "every pair",
                                                          "metric": "mknn"}
    with pytest.raises(ValueError, match="'mknn/nope' is no heatmap of the compared pairs"):
        figure_group("mknn/nope", pairs)
