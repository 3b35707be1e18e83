"""samesky.report on small synthetic records: validation, column choice, formats, extra metrics."""
import json

import numpy as np
import pandas as pd
import pytest
from report_fixtures import md_table

from samesky.report import RecordError, gather, trend_stats, write_figures, write_tables
from samesky.report.tables import latex_escape, to_latex

PARAMS = {"vit-base": 86e6, "vit-large": 304e6, "vit-huge": 632e6,
          "dinov2-small": 22e6, "dinov2-base": 86e6, "specformer-base": 43e6}
IMAGE_MODELS = ["dinov2-small", "dinov2-base", "vit-base", "vit-large", "vit-huge"]


def rec(kind, xm, sa, ma, sb, mb, metric="mknn", score=0.05, **extra):
    r = {"kind": kind, "crossmatch": xm, "survey_a": sa, "model_a": ma, "survey_b": sb, "model_b": mb,
         "n": 500, "n_excluded": 0, "metric": metric, "k": 10 if metric == "mknn" else None, "score": score,
         "ci_low": score - 0.01, "ci_high": score + 0.01, "null_mean": 0.002, "null_std": 0.0005,
         "p_value": 0.001, "null_draws": 100, "subsampling_splits": 100}
    return {**r, **extra}


def synthetic_records():
    """JWST x HSC and DESI x HSC crossmatches, HSC intramodal in both, metrics mknn and mutual_info."""
    rng = np.random.default_rng(0)
    recs = []
    for metric in ("mknn", "mutual_info"):
        s = lambda metric=metric: float(rng.uniform(0.02, 0.3)) * (10 if metric == "mutual_info" else 1)  # noqa: E731
        for xm, other in (("jwst_hsc", "jwst"), ("desi_hsc", "desi")):
            surveys = ["hsc"] + ([other] if other == "jwst" else [])
            for survey in surveys:
                for fam in (IMAGE_MODELS[:2], IMAGE_MODELS[2:]):
                    recs += [rec("intramodal", xm, survey, a, survey, b, metric, s()) for a, b in zip(fam, fam[1:])]
            for m in IMAGE_MODELS:
                ma = m if other == "jwst" else "specformer-base"
                recs.append(rec("crossmodal", xm, other, ma, "hsc", m, metric, s()))
                if xm == "desi_hsc":
                    recs.append(rec("self", xm, "hsc", m, "hsc", m, metric, 1.0))
    return recs


def write_json(path, records):
    path.write_text(json.dumps({"records": records}))
    return path


@pytest.fixture
def df(tmp_path):
    return gather([write_json(tmp_path / "all.json", synthetic_records())], PARAMS)


def test_gather_tidy_columns(df):
    assert len(df) == len(synthetic_records())
    for col in ("family", "size_a", "size_b", "params_a", "params_b", "null_mean", "subsampling_splits"):
        assert col in df.columns
    row = df[(df.kind == "crossmodal") & (df.survey_a == "desi")].iloc[0]
    assert (row.family, row.size_a, row.params_a) == ("dinov2", "base", 43e6)  # family of the HSC side
    assert df.loc[df.metric == "mutual_info", "k"].isna().all()


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("null_std"), "missing field(s) 'null_std'"),
    (lambda r: r.update(kind="other"), "field 'kind'"),
    (lambda r: r.update(score=None), "field 'score'"),
    (lambda r: r.update(model_a="vit"), "field 'model_a'"),
    (lambda r: r.update(n="many"), "field 'n'"),
])
def test_gather_names_file_and_field(tmp_path, mutate, message):
    bad = rec("crossmodal", "jwst_hsc", "jwst", "vit-base", "hsc", "vit-base")
    mutate(bad)
    path = write_json(tmp_path / "bad.json", [bad])
    with pytest.raises(RecordError, match="bad.json: record 0") as err:
        gather([path])
    assert message in str(err.value)


def test_gather_rejects_bad_json_and_duplicates(tmp_path):
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(RecordError, match="broken.json: not valid JSON"):
        gather([tmp_path / "broken.json"])
    r = rec("crossmodal", "jwst_hsc", "jwst", "vit-base", "hsc", "vit-base")
    paths = [write_json(tmp_path / "a.json", [r]), write_json(tmp_path / "b.json", [r])]
    with pytest.raises(RecordError, match="duplicate record"):
        gather(paths)


def test_missing_params_is_a_clear_error(df, tmp_path):
    with pytest.raises(KeyError, match="vit-huge"):
        write_tables(df, tmp_path, {k: v for k, v in PARAMS.items() if k != "vit-huge"})
    # the spectrum model never orders a row, so its count is not needed
    write_tables(df, tmp_path, {k: v for k, v in PARAMS.items() if k != "specformer-base"})


def test_shared_survey_gets_one_column_per_crossmatch(tmp_path):
    truth = [rec("truth", xm, "hsc", "vit-base", "truth", "latent-truth") for xm in ("jwst_hsc", "desi_hsc")]
    df = gather([write_json(tmp_path / "all.json", synthetic_records() + truth)], PARAMS)
    write_tables(df, tmp_path, PARAMS)
    header = md_table(tmp_path / "table1_intramodal_mknn.md")[0]
    assert header == "| Model pairs | JWST | HSC (JWST crossmatch) | HSC (DESI crossmatch) |"  # the truth is no survey
    md2 = md_table(tmp_path / "table2_crossmodal_mknn.md")
    assert md2[0] == "| Model | JWST vs HSC | DESI vs HSC | π(HSC) vs HSC |"
    assert [line.split(" | ")[0][2:] for line in md2[2:]] == [
        "DINOv2 Small", "DINOv2 Base", "ViT Base", "ViT Large", "ViT Huge"]
    cell = df[(df.kind == "intramodal") & (df.crossmatch == "desi_hsc") & (df.model_a == "vit-large")
              & (df.metric == "mknn")].score.iloc[0]
    last = md_table(tmp_path / "table1_intramodal_mknn.md")[-1]
    assert last.startswith("| ViT Large vs Huge | ") and last.endswith(f"| {100 * cell:.1f}% |")


def test_extra_metric_tables_and_trends(df, tmp_path):
    names = {p.name for p in write_tables(df, tmp_path, PARAMS)}
    for metric in ("mknn", "mutual_info"):
        for stem in ("table1_intramodal", "table2_crossmodal"):
            assert {f"{stem}_{metric}.{ext}" for ext in ("csv", "md", "tex")} <= names
    assert {"trend_stats.csv", "trend_stats.md", "trend_steps.csv"} <= names
    mi = md_table(tmp_path / "table2_crossmodal_mutual_info.md")
    assert "%" not in "\n".join(mi[2:])  # mutual information is not a fraction
    stats = trend_stats(df)
    assert set(stats.metric) == {"mknn", "mutual_info"}
    pooled = stats[(stats.scope == "all") & (stats.kind == "intramodal")]
    assert (pooled.comparisons == 3).all()  # vit: 2 rows = 1 step per column x 3 columns; dinov2: 1 row, no step


def test_trends_ties_are_not_increases(tmp_path):
    recs = [rec("crossmodal", "jwst_hsc", "jwst", m, "hsc", m, score=s)
            for m, s in (("vit-base", 0.1), ("vit-large", 0.1), ("vit-huge", 0.2))]
    stats = trend_stats(gather([write_json(tmp_path / "t.json", recs)]), PARAMS)
    row = stats[stats.scope == "all"].iloc[0]
    assert (row.increases, row.comparisons, row.p_value) == (1, 2, 0.75)


def test_latex_escaping():
    assert latex_escape("49.7% & π_x") == r"49.7\% \& $\pi$\_x"
    tex = to_latex(pd.DataFrame({"Model": ["A&B"], "JWST vs HSC": ["1.0%"]}))
    assert tex.splitlines()[0] == r"\begin{tabular}{lr}"
    assert r"A\&B & 1.0\% \\" in tex
    assert tex.count(r"\\") == 2 and "\\bottomrule" in tex


def test_figures_from_scores_csv(df, tmp_path):
    df.to_csv(tmp_path / "scores.csv", index=False)  # the figures rule reads the tidy CSV back
    paths = write_figures(pd.read_csv(tmp_path / "scores.csv"), tmp_path / "fig", PARAMS)
    expected = {f"{stem}_{metric}.{ext}" for stem in ("figure1_crossmodal", "figure_intramodal")
                for metric in ("mknn", "mutual_info") for ext in ("png", "pdf")}
    assert {p.name for p in paths} == expected
    assert all(p.stat().st_size > 5_000 for p in paths)


def test_figures_drawn_by_several_processes_are_the_same_files(df, tmp_path):
    """PNG and PDF byte for byte (PDFs carry no creation date), so a redraw changes no file."""
    serial = write_figures(df, tmp_path / "one", PARAMS)
    forked = write_figures(df, tmp_path / "two", PARAMS, workers=2)
    assert [p.name for p in forked] == [p.name for p in serial] and len(serial) == 8
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(serial, forked))


def test_second_format_keeps_the_layout_of_the_first(tmp_path):
    """``save`` lays out once: the PDF's axes sit where constrained layout put them for the PNG."""
    from unittest import mock

    import matplotlib.pyplot as plt
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    from samesky.report.figures import DPI, save

    def draw():
        fig, axes = plt.subplots(1, 2, layout="constrained")
        axes[0].set_ylabel("a long label " * 3)
        return fig

    fig = draw()
    with mock.patch.object(ConstrainedLayoutEngine, "execute", autospec=True,
                           side_effect=ConstrainedLayoutEngine.execute) as layout:
        save(fig, [tmp_path / "f.png", tmp_path / "f.pdf"])
    assert layout.call_count == 1
    reference = draw()
    reference.savefig(tmp_path / "r.png", dpi=DPI)
    assert [a.get_position().bounds for a in fig.axes] == [a.get_position().bounds for a in reference.axes]
    assert fig.axes[0].get_position().x0 != plt.rcParams["figure.subplot.left"]  # the layout did move them
    pdf = (tmp_path / "f.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and b"CreationDate" not in pdf


def control_records():
    """JWST x HSC crossmodal MKNN of ViT (rising) and its untrained control vit@random (falling)."""
    scores = {"vit-base": 0.10, "vit-large": 0.12, "vit-huge": 0.15,
              "vit@random-base": 0.030, "vit@random-large": 0.020, "vit@random-huge": 0.025}
    return [rec("crossmodal", "jwst_hsc", "jwst", m, "hsc", m, score=s) for m, s in scores.items()], scores


CONTROL_PARAMS = {**PARAMS, **{f"vit@random-{s}": PARAMS[f"vit-{s}"] for s in ("base", "large", "huge")}}


def test_untrained_control_gets_its_own_trend_rows(tmp_path):
    recs, _ = control_records()
    stats = trend_stats(gather([write_json(tmp_path / "c.json", recs)]), CONTROL_PARAMS)
    rows = {(r.scope, r.group): (r.increases, r.comparisons) for r in stats.itertuples()}
    assert rows[("all", "all")] == (2, 2)  # the trained ViT alone: never pooled with its control
    assert rows[("family", "ViT")] == (2, 2)
    assert rows[("all", "all (untrained)")] == (1, 2)  # base -> large falls, large -> huge rises
    assert rows[("family", "ViT (untrained)")] == (1, 2)
    assert rows[("column", "JWST vs HSC (untrained)")] == (1, 2)
    assert list(stats.group).index("all (untrained)") > list(stats.group).index("ViT")  # controls come after


def test_figure1_draws_the_untrained_control_dashed_in_its_family_colour(tmp_path):
    from samesky.report.captions import RunFacts
    from samesky.report.figures import _figure, _styles
    from samesky.report.records import attach_params

    recs, scores = control_records()
    df = attach_params(gather([write_json(tmp_path / "c.json", recs)]), CONTROL_PARAMS)
    styles = _styles(df)
    assert list(styles) == ["vit", "vit@random"]
    fig = _figure(df, "crossmodal", "mknn", styles, RunFacts())
    lines = {c.get_label(): c.lines[0] for c in fig.axes[0].containers}  # errorbar: (data line, caps, bars)
    trained, control = lines["ViT"], lines["ViT (untrained)"]
    assert trained.get_linestyle() == "-" and control.get_linestyle() == "--"
    assert control.get_color() == trained.get_color() and control.get_marker() == trained.get_marker()
    assert control.get_markerfacecolor() == "white"
    np.testing.assert_allclose(control.get_ydata(), [100 * scores[f"vit@random-{s}"] for s in ("base", "large", "huge")])
    np.testing.assert_allclose(trained.get_ydata(), [100 * scores[f"vit-{s}"] for s in ("base", "large", "huge")])
    paths = write_figures(df, tmp_path / "fig", CONTROL_PARAMS)
    assert {p.name for p in paths} == {"figure1_crossmodal_mknn.png", "figure1_crossmodal_mknn.pdf"}


def test_a_family_has_one_colour_in_every_figure(df):
    """Its colour and marker come from the registry, not from which families a figure holds."""
    from samesky.report.figures import _styles, family_style

    only_vit = df[df.family == "vit"]
    assert _styles(df)["vit"] == _styles(only_vit)["vit"] == family_style("vit")
    assert _styles(df)["dinov2"]["color"] != _styles(df)["vit"]["color"]
    assert {k: family_style("vit@random")[k] for k in ("color", "marker")} == family_style("vit")
    styles = {family_style(f)["color"] + family_style(f)["marker"] for f in ("vit", "dinov2", "convnextv2", "ijepa",
                                                                           "astropt", "specformer", "aion", "dinov3")}
    assert len(styles) == 8  # distinct looks, whatever the registry's length


def test_an_embedding_is_named_survey_family_size_and_a_control_says_so_last():
    from samesky.report.records import embedding_label

    assert embedding_label("hsc", "dinov2-giant") == "HSC DINOv2 Giant"
    assert embedding_label("hsc", "aion@random-base") == "HSC AION-1 Base (untrained)"
    assert embedding_label("desi", "specformer-base") == "DESI Specformer Base"
