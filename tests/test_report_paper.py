"""The paper's own Table 1 and Table 2, fed through samesky.report as metric records.

Values typed from "The Platonic Universe" (Tables 1-3). The paper gives no crossmatch for its
HSC intramodal column; the fixture puts it in the Legacy x HSC crossmatch.
"""
import json

import pandas as pd
import pytest
from report_fixtures import md_table

from samesky.report import gather, trend_stats, write_figures, write_tables
from samesky.report.trends import trend_steps

# Table 3 parameter counts.
PARAMS = {
    "astropt-small": 15e6, "astropt-base": 95e6, "astropt-large": 850e6,
    "convnextv2-nano": 15e6, "convnextv2-tiny": 28e6, "convnextv2-base": 89e6, "convnextv2-large": 198e6,
    "dinov2-small": 22e6, "dinov2-base": 86e6, "dinov2-large": 304e6, "dinov2-giant": 1.1e9,
    "ijepa-huge": 630e6, "ijepa-giant": 1.0e9,
    "vit-base": 86e6, "vit-large": 304e6, "vit-huge": 632e6,
    "specformer-base": 43e6,
}
# Table 1: (model_a, model_b): JWST, Legacy, HSC in percent.
TABLE1 = {
    ("astropt-small", "astropt-base"): (49.7, 8.1, 10.3),
    ("astropt-base", "astropt-large"): (56.2, 10.0, 13.5),
    ("convnextv2-nano", "convnextv2-tiny"): (33.3, 4.5, 5.3),
    ("convnextv2-tiny", "convnextv2-base"): (29.5, 3.8, 4.4),
    ("convnextv2-base", "convnextv2-large"): (35.8, 6.3, 7.8),
    ("dinov2-small", "dinov2-base"): (32.8, 4.2, 4.6),
    ("dinov2-base", "dinov2-large"): (32.1, 5.6, 5.7),
    ("dinov2-large", "dinov2-giant"): (40.2, 10.2, 10.9),
    ("vit-base", "vit-large"): (28.7, 3.1, 4.3),
    ("vit-large", "vit-huge"): (32.6, 4.4, 5.0),
}
# Table 2: model: JWST vs HSC, Legacy vs HSC, DESI vs HSC, SDSS vs HSC, pi(HSC) vs HSC in percent.
TABLE2 = {
    "astropt-small": (5.44, 0.34, 0.39, 0.44, 0.04),
    "astropt-base": (6.70, 0.49, 0.52, 0.50, 0.05),
    "astropt-large": (7.07, 0.65, 0.55, 0.47, 0.05),
    "convnextv2-nano": (6.69, 1.28, 0.37, 0.36, 0.03),
    "convnextv2-tiny": (6.96, 1.11, 0.34, 0.43, 0.04),
    "convnextv2-base": (7.19, 1.73, 0.35, 0.46, 0.04),
    "convnextv2-large": (7.20, 1.92, 0.41, 0.41, 0.04),
    "dinov2-small": (7.03, 1.42, 0.28, 0.34, 0.05),
    "dinov2-base": (6.91, 1.55, 0.29, 0.43, 0.04),
    "dinov2-large": (6.98, 1.86, 0.31, 0.37, 0.04),
    "dinov2-giant": (7.11, 1.95, 0.31, 0.45, 0.04),
    "ijepa-huge": (6.40, 0.97, 0.30, 0.44, 0.04),
    "ijepa-giant": (6.93, 2.12, 0.38, 0.39, 0.04),
    "vit-base": (6.75, 0.89, 0.31, 0.43, 0.04),
    "vit-large": (6.92, 2.25, 0.36, 0.41, 0.05),
    "vit-huge": (7.11, 1.96, 0.37, 0.43, 0.04),
}
N = {"jwst_hsc": 1670, "legacysurvey_hsc": 102000, "desi_hsc": 18600, "sdss_hsc": 2320}


def record(kind, xm, sa, ma, sb, mb, pct, null_pct=0.04):
    score = pct / 100
    return {"kind": kind, "crossmatch": xm, "survey_a": sa, "model_a": ma, "survey_b": sb, "model_b": mb,
            "n": N[xm], "n_excluded": 0, "metric": "mknn", "k": 10, "score": score, "ci_low": score * 0.9, "ci_high": score * 1.1,
            "null_mean": null_pct / 100, "null_std": 0.0001, "p_value": 0.001, "null_draws": 1000,
            "subsampling_splits": 1000}


def paper_records():
    recs = []
    for (a, b), values in TABLE1.items():
        for (survey, xm), v in zip([("jwst", "jwst_hsc"), ("legacysurvey", "legacysurvey_hsc"),
                                    ("hsc", "legacysurvey_hsc")], values):
            recs.append(record("intramodal", xm, survey, a, survey, b, v))
    for m, (jwst, legacy, desi, sdss, null) in TABLE2.items():
        recs.append(record("crossmodal", "jwst_hsc", "jwst", m, "hsc", m, jwst))
        recs.append(record("crossmodal", "legacysurvey_hsc", "legacysurvey", m, "hsc", m, legacy))
        recs.append(record("crossmodal", "desi_hsc", "desi", "specformer-base", "hsc", m, desi))
        recs.append(record("crossmodal", "sdss_hsc", "sdss", "specformer-base", "hsc", m, sdss))
        recs.append(record("self", "desi_hsc", "hsc", m, "hsc", m, 100.0, null_pct=null))
    return recs


@pytest.fixture(scope="module")
def paper_df(tmp_path_factory):
    d = tmp_path_factory.mktemp("metrics")
    paths = []
    for i, rec in enumerate(paper_records()):
        paths.append(d / f"{i}.json")
        paths[-1].write_text(json.dumps({"records": [rec]}))
    return gather(paths, PARAMS)


def _row(stats, kind, scope, group):
    hit = stats[(stats.kind == kind) & (stats.scope == scope) & (stats.group == group)]
    assert len(hit) == 1, (kind, scope, group, stats)
    return hit.iloc[0]


def test_paper_trend_statistics(paper_df):
    stats = trend_stats(paper_df)
    intra = _row(stats, "intramodal", "all", "all")
    assert (intra.increases, intra.comparisons) == (14, 18)
    assert intra.p_value == pytest.approx(1.54e-2, rel=3e-3)
    cross = _row(stats, "crossmodal", "all", "all except SDSS")
    assert (cross.increases, cross.comparisons) == (28, 33)
    assert cross.p_value == pytest.approx(3.31e-5, rel=3e-3)
    sdss = _row(stats, "crossmodal", "column", "SDSS vs HSC")
    assert (sdss.increases, sdss.comparisons) == (6, 11)
    assert sdss.p_value == pytest.approx(0.5)
    per_column = {r.group: (r.increases, r.comparisons) for r in stats[stats.scope == "column"].itertuples()}
    assert per_column == {"JWST": (4, 6), "Legacy": (5, 6), "HSC": (5, 6), "JWST vs HSC": (10, 11),
                          "Legacy vs HSC": (9, 11), "DESI vs HSC": (9, 11), "SDSS vs HSC": (6, 11)}


def test_paper_counts_need_strict_increases_and_sdss_apart(paper_df):
    """The other plausible rules do not give the paper's numbers."""
    steps = trend_steps(paper_df)
    cross = steps[(steps.kind == "crossmodal") & (steps.survey != "sdss")]
    assert (cross.score_to >= cross.score_from).sum() == 29  # ties as increases (DINOv2 DESI 0.31 -> 0.31)
    everything = steps[steps.kind == "crossmodal"]
    assert (everything.increase.sum(), len(everything)) == (34, 44)  # SDSS pooled in


def test_paper_tables_round_trip(paper_df, tmp_path):
    paths = write_tables(paper_df, tmp_path, PARAMS)
    names = {p.name for p in paths}
    assert {"table1_intramodal_mknn.md", "table2_crossmodal_mknn.tex", "trend_stats.md"} <= names
    md1 = md_table(tmp_path / "table1_intramodal_mknn.md")
    assert md1[0] == "| Model pairs | JWST | Legacy | HSC |"
    assert "| AstroPTv2 Small vs Base | 49.7% | 8.1% | 10.3% |" in md1
    assert "| DINOv2 Large vs Giant | 40.2% | 10.2% | 10.9% |" in md1
    assert "| ConvNeXtv2 Tiny vs Base | 29.5% | 3.8% | 4.4% |" in md1
    md2 = md_table(tmp_path / "table2_crossmodal_mknn.md")
    assert md2[0] == "| Model | JWST vs HSC | Legacy vs HSC | DESI vs HSC | SDSS vs HSC | π(HSC) vs HSC |"
    body = {line.split(" | ")[0].lstrip("| "): line for line in md2[2:]}
    assert body["ConvNeXtv2 Nano"] == "| ConvNeXtv2 Nano | 6.69% | 1.28% | 0.37% | 0.36% | 0.03% |"
    assert body["ViT Large"] == "| ViT Large | 6.92% | 2.25% | 0.36% | 0.41% | 0.05% |"
    assert len(body) == 16
    # every paper value is in its cell
    csv2 = pd.read_csv(tmp_path / "table2_crossmodal_mknn.csv").set_index("Model")
    assert csv2.loc["IJEPA Giant", "Legacy vs HSC"] == "2.12%"
    assert csv2.loc["AstroPTv2 Base", "π(HSC) vs HSC"] == "0.05%"
    # families and sizes in parameter order (smallest model first)
    assert [line.split(" | ")[0][2:] for line in md2[2:]][:5] == [
        "AstroPTv2 Small", "AstroPTv2 Base", "AstroPTv2 Large", "ConvNeXtv2 Nano", "ConvNeXtv2 Tiny"]
    tex = (tmp_path / "table1_intramodal_mknn.tex").read_text()
    assert r"AstroPTv2 Small vs Base & 49.7\% & 8.1\% & 10.3\% \\" in tex
    assert r"$\pi$(HSC) vs HSC" in (tmp_path / "table2_crossmodal_mknn.tex").read_text()


def test_paper_tables_with_ci(paper_df, tmp_path):
    write_tables(paper_df, tmp_path, PARAMS, ci=True)
    md1 = "\n".join(md_table(tmp_path / "table1_intramodal_mknn.md"))
    assert "| AstroPTv2 Small vs Base | 49.7% [44.7, 54.7] |" in md1


def test_paper_figures(paper_df, tmp_path):
    paths = write_figures(paper_df, tmp_path, PARAMS)
    assert sorted(p.name for p in paths) == [
        "figure1_crossmodal_mknn.pdf", "figure1_crossmodal_mknn.png",
        "figure_intramodal_mknn.pdf", "figure_intramodal_mknn.png"]
    for p in paths:
        assert p.stat().st_size > 10_000
    assert (tmp_path / "figure1_crossmodal_mknn.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
