"""Calibrated scores in the report: records, calibrated Tables 1-2, calibrated trend tests and figures."""
import pandas as pd
import pytest
from report_fixtures import md_table
from test_report import PARAMS, rec, synthetic_records, write_json

from samesky.report import RecordError, gather, trend_stats, write_figures, write_tables
from samesky.report.records import calibrated_view


def calibrated_records():
    """The synthetic records with a calibrated score of half the raw one (tau from it), its
    interval +- 0.005."""
    out = []
    for r in synthetic_records():
        cal = 1.0 if r["kind"] == "self" else r["score"] / 2
        out.append({**r, "calibrated": cal, "tau": r["score"] / 4, "alpha": 0.05, "null_method": "permutation",
                    "calibrated_low": cal - 0.005, "calibrated_high": cal + 0.005})
    return out


@pytest.fixture
def cdf(tmp_path):
    return gather([write_json(tmp_path / "cal.json", calibrated_records())], PARAMS)


def test_records_carry_calibration_and_old_records_read_as_missing(cdf, tmp_path):
    row = cdf[(cdf.kind == "crossmodal") & (cdf.metric == "mknn")].iloc[0]
    assert row.calibrated == pytest.approx(row.score / 2) and row.alpha == 0.05 and row.null_method == "permutation"
    old = gather([write_json(tmp_path / "old.json", synthetic_records())], PARAMS)
    assert old["calibrated"].isna().all() and old["tau"].isna().all()


@pytest.mark.parametrize("field, value, message", [
    ("calibrated", "high", "field 'calibrated' must be a number or null"),
    ("null_method", "bootstrap", "field 'null_method' is 'bootstrap'"),
])
def test_bad_calibration_fields_are_named(tmp_path, field, value, message):
    bad = rec("crossmodal", "jwst_hsc", "jwst", "vit-base", "hsc", "vit-base", **{field: value})
    with pytest.raises(RecordError, match="bad.json: record 0") as err:
        gather([write_json(tmp_path / "bad.json", [bad])])
    assert message in str(err.value)


def test_calibrated_view_swaps_the_score_and_its_interval_and_drops_the_null(cdf, tmp_path):
    view = calibrated_view(cdf)
    assert "self" not in set(view.kind)
    assert (view.score == cdf.loc[cdf.kind != "self", "calibrated"]).all()
    assert (view.ci_low == view.calibrated_low).all() and (view.ci_high == view.calibrated_high).all()
    assert view[["null_mean", "null_std"]].isna().all().all()
    old = calibrated_view(gather([write_json(tmp_path / "old.json", [
        {k: v for k, v in r.items() if not k.startswith("calibrated_")} for r in calibrated_records()])], PARAMS))
    assert old[["ci_low", "ci_high"]].isna().all().all()  # records written before the calibrated interval


def test_calibrated_tables_sit_beside_the_raw_ones(cdf, tmp_path):
    names = {p.name for p in write_tables(cdf, tmp_path, PARAMS)}
    for metric in ("mknn", "mutual_info"):
        for stem in ("table1_intramodal", "table2_crossmodal"):
            assert {f"{stem}_{metric}{t}.{ext}" for t in ("", "_calibrated") for ext in ("csv", "md", "tex")} <= names
    assert {"trend_stats_calibrated.csv", "trend_stats_calibrated.md", "trend_steps_calibrated.csv"} <= names
    raw = md_table(tmp_path / "table1_intramodal_mknn.md")
    cal = md_table(tmp_path / "table1_intramodal_mknn_calibrated.md")
    assert raw[0] == cal[0]  # same columns
    cell = cdf[(cdf.kind == "intramodal") & (cdf.crossmatch == "desi_hsc") & (cdf.model_a == "vit-large")
               & (cdf.metric == "mknn")].calibrated.iloc[0]
    assert cal[-1].startswith("| ViT Large vs Huge | ")
    assert cal[-1].endswith(f"| {100 * cell:.1f}% [{100 * cell - 0.5:.1f}, {100 * cell + 0.5:.1f}] |")  # with its interval
    md2 = md_table(tmp_path / "table2_crossmodal_mknn_calibrated.md")
    assert md2[0] == "| Model | JWST vs HSC | DESI vs HSC |"  # no null column


def test_calibrated_trends_count_the_calibrated_scores(tmp_path):
    # raw scores grow with size, calibrated ones do not: the two trend tests disagree
    recs = [rec("crossmodal", "jwst_hsc", "jwst", m, "hsc", m, score=s, calibrated=c, tau=0.1, alpha=0.05)
            for m, s, c in (("vit-base", 0.1, 0.0), ("vit-large", 0.2, 0.0), ("vit-huge", 0.3, 0.0))]
    df = gather([write_json(tmp_path / "t.json", recs)], PARAMS)
    raw = trend_stats(df).query("scope == 'all'").iloc[0]
    cal = trend_stats(calibrated_view(df)).query("scope == 'all'").iloc[0]
    assert (raw.increases, raw.comparisons) == (2, 2)
    assert (cal.increases, cal.comparisons) == (0, 2)
    write_tables(df, tmp_path / "t", PARAMS)
    stats = pd.read_csv(tmp_path / "t" / "trend_stats_calibrated.csv")
    assert stats.query("scope == 'all'").increases.iloc[0] == 0


def test_calibrated_figures_beside_raw(cdf, tmp_path):
    cdf.to_csv(tmp_path / "scores.csv", index=False)
    paths = write_figures(pd.read_csv(tmp_path / "scores.csv"), tmp_path / "fig", PARAMS)
    expected = {f"{stem}_{metric}{t}.{ext}" for stem in ("figure1_crossmodal", "figure_intramodal")
                for metric in ("mknn", "mutual_info") for t in ("", "_calibrated") for ext in ("png", "pdf")}
    assert {p.name for p in paths} == expected
    assert all(p.stat().st_size > 5_000 for p in paths)


def test_calibrated_figures_share_one_zero_based_scale_with_error_bars(cdf):
    import matplotlib

    matplotlib.use("Agg")
    from samesky.report.captions import RunFacts
    from samesky.report.figures import _figure, _styles
    from samesky.report.records import attach_params

    df = attach_params(cdf, PARAMS)
    fig = _figure(calibrated_view(df), "crossmodal", "mknn", _styles(df), RunFacts(), "calibrated score")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    top = 100 * calibrated_view(df).query("kind == 'crossmodal' and metric == 'mknn'").calibrated_high.max()
    assert len(axes) == 2 and all(ax.get_ylim() == (0.0, pytest.approx(top * 1.08)) for ax in axes)
    assert "from 0, same scale in every panel" in axes[0].get_ylabel()
    assert all(ax.containers for ax in axes)  # error bars drawn


def test_raw_axes_carry_the_metric_unit(cdf):
    import matplotlib

    matplotlib.use("Agg")
    from samesky.report.captions import RunFacts
    from samesky.report.figures import _figure, _styles
    from samesky.report.records import attach_params

    df = attach_params(cdf, PARAMS)
    labels = {m: _figure(df, "crossmodal", m, _styles(df), RunFacts()).axes[0].get_ylabel() for m in ("mknn", "mutual_info")}
    assert labels == {"mknn": "crossmodal MKNN score (%)", "mutual_info": "crossmodal mutual information score (nats)"}


NO_NULL = {"null_mean": None, "null_std": None, "p_value": None, "null_draws": 0, "tau": None, "calibrated": None,
           "calibrated_low": None, "calibrated_high": None, "alpha": 0.05, "null_method": "pairing_free"}


def pairing_free_records():
    """The calibrated records plus the same comparisons scored by a pairing-free measure (Frechet):
    a score and its interval, no null (as compare writes them), with truth records."""
    truth = [rec("truth", xm, "hsc", "vit-base", "truth", "latent-truth", metric=metric)
             for xm in ("jwst_hsc", "desi_hsc") for metric in ("mknn", "frechet")]
    free = [{**r, "metric": "frechet", **NO_NULL} for r in synthetic_records() if r["metric"] == "mknn"]
    return calibrated_records() + free + [{**r, **NO_NULL} if r["metric"] == "frechet" else r for r in truth]


def test_a_pairing_free_measure_has_raw_tables_and_figures_and_no_calibrated_ones(tmp_path):
    from report_fixtures import md_caption

    from samesky.report.captions import NO_NULL as SAYS

    df = gather([write_json(tmp_path / "free.json", pairing_free_records())], PARAMS)
    assert set(df.loc[df.metric == "frechet", "null_method"]) == {"pairing_free"}
    assert set(calibrated_view(df).metric) == {"mknn", "mutual_info"}
    names = {p.name for p in write_tables(df, tmp_path / "t", PARAMS)}
    assert {f"{stem}_frechet.md" for stem in ("table1_intramodal", "table2_crossmodal", "table_truth")} <= names
    assert not {n for n in names if "frechet_calibrated" in n} and "table1_intramodal_mknn_calibrated.md" in names
    assert md_table(tmp_path / "t" / "table2_crossmodal_frechet.md")[0] == "| Model | JWST vs HSC | DESI vs HSC |"
    assert md_table(tmp_path / "t" / "table2_crossmodal_mknn.md")[0].endswith("| π(HSC) vs HSC |")
    truth = md_table(tmp_path / "t" / "table_truth_frechet.md")
    assert truth[2] == "| ViT Base | 0.05 | 0.05 |"  # the score alone: no '(null ..., p=...)'
    assert "(null 0.20%, p=0.001)" in md_table(tmp_path / "t" / "table_truth_mknn.md")[2]
    for stem in ("table2_crossmodal", "table_truth"):
        caption = md_caption(tmp_path / "t" / f"{stem}_frechet.md")
        assert SAYS in caption and "π(" not in caption and "p: the one-sided" not in caption
        assert SAYS not in md_caption(tmp_path / "t" / f"{stem}_mknn.md")
    assert SAYS.startswith("No permutation null, p-value or calibrated score is defined: the measure compares")
    paths = {p.name for p in write_figures(df[df.metric != "mutual_info"], tmp_path / "f", PARAMS)}
    assert {"figure1_crossmodal_frechet.png", "figure1_crossmodal_mknn_calibrated.png"} <= paths
    assert not {p for p in paths if "frechet_calibrated" in p}


def test_a_pairing_free_measure_gets_no_null_band_even_from_records_with_a_null(tmp_path):
    """Records written before the declaration carry a 'null' equal to the score: no band is drawn from it."""
    from samesky.report.captions import RunFacts
    from samesky.report.figures import _figure, _styles

    old = [{**r, "metric": m} for r in synthetic_records() if r["metric"] == "mknn" for m in ("mknn", "frechet")]
    df = gather([write_json(tmp_path / "old.json", old)], PARAMS)
    bands = {m: [p.get_label() for p in _figure(df, "crossmodal", m, _styles(df), RunFacts()).axes[0].patches]
             for m in ("mknn", "frechet")}
    assert bands == {"mknn": ["permutation null (±2σ)"], "frechet": []}
