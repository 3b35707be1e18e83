"""What a reader sees before the numbers: a simulated or miniature run marked on every table and
figure (and a real one not), the tables' captions (metric, scale, interval, N, k), the p-value
floor, one word for a block, and the probes' scores named."""
import ast
import json
from pathlib import Path

import pytest
from report_fixtures import md_caption
from test_layers_report import files  # noqa: F401  (fixture)
from test_probes import probe_record
from test_report import PARAMS, rec, synthetic_records, write_json

from samesky.config import validate_config
from samesky.plan import Plan
from samesky.report import RunFacts, gather, gather_layers, gather_probes, write_probe_tables, write_tables
from samesky.report.captions import metric_caption
from samesky.report.figures import _figure, _styles, family_style
from samesky.report.layers import _best_figure, _heatmap, _with_size, best_layers
from samesky.report.probes import _ordered, _property_figure

SIMULATED = RunFacts(simulated=("jwst_hsc", "desi_hsc"), miniature=True, ci=0.95, subsampling_splits=200,
                     feature_space_draws=100)
NOTICE = "Simulated sky (jwst_hsc, desi_hsc), random-weight miniature models: not scientific results"
PROBE_PARAMS = {"vit-base": 86e6, "vit-large": 304e6, "specformer-base": 43e6}


def texts(fig) -> list[str]:
    """Every text of a figure: its own lines, titles, axis labels."""
    return [t.get_text() for t in fig.texts] + [label for ax in fig.axes for label in
                                                (ax.get_title(), ax.get_xlabel(), ax.get_ylabel())]


def test_plan_says_a_simulated_miniature_run_is_one_and_a_hub_run_is_not(demo_config, paper_config):
    demo = Plan(validate_config(demo_config))
    assert demo.report_facts("figures") == {"simulated": ["cosmos_web", "desi_hsc"], "miniature": True}
    assert RunFacts.of(demo.report_facts("figures")).notice == NOTICE.replace("jwst_hsc", "cosmos_web")
    assert demo.report_facts("tables") == {"simulated": ["cosmos_web", "desi_hsc"], "miniature": True, "ci": 0.95,
                                           "subsampling_splits": 50, "feature_space_draws": 100}
    assert demo.report_facts("probes")["ci"] == 0.95
    paper = Plan(validate_config(paper_config))
    assert paper.report_facts("figures") == {"simulated": [], "miniature": False}
    facts = RunFacts.of(paper.report_facts("tables"))
    assert facts.notice == "" and facts.size_axis() == "model parameters (log scale)"
    assert RunFacts.of({"simulated": ["a"], "miniature": False}).notice == "Simulated sky (a): not scientific results"
    assert RunFacts.of({"miniature": True}).notice == "Random-weight miniature models: not scientific results"
    with pytest.raises(ValueError, match="report stage must be 'tables', 'probes' or 'figures', got 'x'"):
        paper.report_facts("x")
    with pytest.raises(KeyError, match=r"unknown key\(s\) \['weights'\]"):
        RunFacts.of({"weights": "tiny"})


@pytest.fixture
def df(tmp_path):
    truth = [rec("truth", xm, "hsc", "vit-base", "truth", "latent-truth", null_draws=10) for xm in ("jwst_hsc",
                                                                                                     "desi_hsc")]
    return gather([write_json(tmp_path / "all.json", synthetic_records() + truth)], PARAMS)


def test_tables_of_a_simulated_run_say_so_and_a_real_run_does_not(df, tmp_path):
    write_tables(df, tmp_path / "sim", PARAMS, facts=SIMULATED)
    write_tables(df, tmp_path / "real", PARAMS)
    for name in ("table1_intramodal_mknn", "table2_crossmodal_mutual_info", "table_truth_mknn"):
        assert md_caption(tmp_path / "sim" / f"{name}.md").startswith(f"**{NOTICE}.**")
        assert (tmp_path / "sim" / f"{name}.tex").read_text().startswith(f"% {NOTICE[:60]}")
        assert "not scientific" not in (tmp_path / "real" / f"{name}.md").read_text()
    assert (tmp_path / "sim" / "trend_stats.md").read_text().startswith(f"**{NOTICE}.** **Trend statistics.**")
    assert (tmp_path / "real" / "trend_stats.md").read_text().startswith("**Trend statistics.**")
    # the CSVs stay data alone
    assert (tmp_path / "sim" / "table1_intramodal_mknn.csv").read_text().startswith("Model pairs,")


def test_figures_of_a_simulated_miniature_run_say_so_and_name_the_real_models(df, files):  # noqa: F811
    styles = _styles(df)
    marked = texts(_figure(df, "crossmodal", "mknn", styles, SIMULATED))
    assert NOTICE in marked
    assert "size (parameters of the real model, log scale)" in marked
    intra = texts(_figure(df, "intramodal", "mknn", styles, SIMULATED))
    assert "size (parameters of the larger real model, log scale)" in intra
    real = texts(_figure(df, "crossmodal", "mknn", styles, RunFacts()))
    assert not any("not scientific" in t or "real model" in t for t in real)
    assert "model parameters (log scale)" in real
    # the layer atlas: heatmaps and best-vs-size figures
    layers = gather_layers(files)
    sub = layers[(layers.metric == "mknn") & (layers.kind == "crossmodal")]
    pair = {c: sub[c].iloc[0] for c in ("metric", "crossmatch", "kind", "survey_a", "model_a", "survey_b", "model_b")}
    assert NOTICE in texts(_heatmap(sub, pair, SIMULATED))
    assert not any("not scientific" in t for t in texts(_heatmap(sub, pair, RunFacts())))
    best = _with_size(best_layers(layers), {"vit-base": 86e6, "vit-large": 304e6})
    best = best[best.metric == "mknn"]
    assert NOTICE in texts(_best_figure(best, "mknn", _styles(best), SIMULATED))
    assert not any("not scientific" in t for t in texts(_best_figure(best, "mknn", _styles(best), RunFacts())))


def test_table_captions_name_metric_scale_interval_n_and_k(df, tmp_path):
    write_tables(df, tmp_path, PARAMS, ci=True, facts=SIMULATED)
    mknn = md_caption(tmp_path / "table1_intramodal_mknn.md")
    assert "**Table 1: intramodal MKNN.** MKNN: mutual k-nearest-neighbour overlap" in mknn
    assert "Scale: at most 1 (identical embeddings), shown in percent; higher is more aligned." in mknn
    assert ("[low, high]: 95% subsampling interval, score ± z SE; the SE from K = 100 random splits of the N "
            "objects, rescoring halves and quarters of each split") in mknn
    assert "N = 500 objects per comparison, k = 10 neighbours." in mknn
    # the neighbourhood metric has no cap: fewer splits than asked is stated without blaming one
    assert "100 of the 200 splits asked (metrics.subsampling_splits)." in mknn and "caps" not in mknn
    mi = md_caption(tmp_path / "table2_crossmodal_mutual_info.md")
    assert "Scale: nats, 0 for independent embeddings and unbounded above" in mi
    assert ("100 of the 200 splits asked (metrics.subsampling_splits): metrics.feature_space_draws caps them for "
            "this metric") in mi
    assert "π(HSC) vs HSC: the mean of the permutation null" in mi and "k = " not in mi
    # a distance says which way is aligned; N differs by crossmatch
    sub = df[(df.metric == "mknn") & (df.kind == "crossmodal")].assign(metric="procrustes")
    sub.loc[sub.crossmatch == "jwst_hsc", "n"] = 180
    text = metric_caption("T", sub, "procrustes", RunFacts(), ci=False)
    assert "Scale: a distance, 0 for identical embeddings; lower is more aligned." in text
    assert "N = 500 objects (desi_hsc), 180 (jwst_hsc)" in text and "[low, high]" not in text


def test_printed_p_values_state_their_floor(df, tmp_path):
    write_tables(df, tmp_path, PARAMS)
    truth = md_caption(tmp_path / "table_truth_mknn.md")
    assert "p >= 1/(1+K) with K null draws: p >= 0.091 at K = 10" in truth
    assert "p >=" not in md_caption(tmp_path / "table1_intramodal_mknn.md")  # no p-values printed there
    closed = df[df.kind == "truth"].assign(null_method="closed_form")
    assert "; exact closed-form nulls." in metric_caption("T", closed, "mknn", RunFacts(), ci=False, p_values=True)


def probe_records(kind):
    metric = "r2" if kind == "continuous" else "balanced_accuracy"
    recs = [{**probe_record(m, s, "desi_hsc", "z", name, 0.5), "kind": kind, "metric": metric, "null_draws": 10,
             "knn_k": 7} for name in ("linear", "knn")
            for m, s in (("vit-base", "hsc"), ("vit-large", "hsc"), ("specformer-base", "desi"))]
    return recs


@pytest.mark.parametrize("kind, named", [
    ("continuous", ["z: linear probe, R².", "Score: regression R²", "ridge regression"]),
    ("categorical", ["z: linear probe, balanced accuracy.", "Score: classification balanced accuracy",
                     "logistic regression"]),
])
def test_probe_tables_name_their_score_interval_null_floor_and_mark_the_run(tmp_path, kind, named):
    (tmp_path / "p.json").write_text(json.dumps({"records": probe_records(kind)}))
    probes = gather_probes([tmp_path / "p.json"])
    write_probe_tables(probes, tmp_path / "sim", PROBE_PARAMS, SIMULATED)
    linear = md_caption(tmp_path / "sim" / "z_linear.md")
    assert linear.startswith(f"**{NOTICE}.**")
    assert all(words in linear for words in named)
    assert "95% percentile bootstrap interval over the out-of-fold predictions (K = 1000 resamples" in linear
    assert "K = 10 draws; its p-values (probes.csv) are one-sided, so p >= 1/(1+K) with K null draws: p >= 0.091" in linear
    assert "N = 300 objects per embedding." in linear
    assert f"cosine 7-nearest-neighbour {'regression' if kind == 'continuous' else 'classification'}" in md_caption(
        tmp_path / "sim" / "z_knn.md")
    write_probe_tables(probes, tmp_path / "real", PROBE_PARAMS)
    assert not md_caption(tmp_path / "real" / "z_linear.md").startswith("**Simulated")


def test_probe_figures_mark_the_run_and_keep_the_family_colours(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"records": probe_records("continuous")}))
    probes = _ordered(gather_probes([tmp_path / "p.json"]), PROBE_PARAMS)
    styles = {f: family_style(f) for f in dict.fromkeys(probes["family"])}
    fig = _property_figure("z", probes, styles, SIMULATED)
    assert NOTICE in texts(fig) and "size (parameters of the real model, log scale)" in texts(fig)
    colours = {bars.get_label(): bars.lines[0].get_color() for ax in fig.axes for bars in ax.containers}
    assert colours["ViT (linear)"] == colours["ViT (kNN)"] == family_style("vit")["color"]
    assert colours["Specformer (linear)"] == family_style("specformer")["color"]
    assert not any("not scientific" in t for t in texts(_property_figure("z", probes, styles, RunFacts())))


def test_every_family_calls_its_blocks_blocks():
    """The heatmaps and layers tables name blocks as the adapters' block_names do: one word,
    'block' (the schema's block_positions), never 'layer'."""
    models = Path(__file__).resolve().parents[1] / "src" / "samesky" / "models"
    named = {}
    for path in models.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "block_names":
                returned = [n for r in ast.walk(node) if isinstance(r, ast.Return) for n in ast.walk(r)
                            if isinstance(n, ast.JoinedStr)]
                named[f"{path.stem}:{node.lineno}"] = ["".join(v.value if isinstance(v, ast.Constant) else "{}"
                                                               for v in n.values) for n in returned]
    assert len(named) >= 6
    for where, words in named.items():
        assert all("block" in w and "layer" not in w.lower() for w in words), (where, words)
    assert sum(map(len, named.values())) >= 8  # every adapter's names were read
