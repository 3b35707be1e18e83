"""samesky.report.layers on hand-built per-pair layer CSVs (the compare_layers format): the tidy
table, the best block pair against the final layer, heatmap and figure files, and malformed files."""
import csv

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from samesky.plan import LAYER_FIELDS
from samesky.report import RecordError
from samesky.report.captions import RunFacts
from samesky.report.layers import (
    _heatmap,
    best_layers,
    gather_layers,
    write_best_figures,
    write_layer_heatmaps,
)

PARAMS = {"vit-base": 86e6, "vit-large": 304e6, "astropt-small": 22e6, "astropt-base": 86e6}


def grid(kind, xm, sa, ma, sb, mb, n_a, n_b, raw, cal, metric="mknn"):
    """Rows of one pair: block j of L at depth (j + 1) / L, and 'final' (index L, depth 1.0);
    raw[i][j] and cal[i][j] are indexed by (index_a, index_b), final last."""
    rows = []
    for i in range(n_a + 1):
        for j in range(n_b + 1):
            rows.append({
                "metric": metric, "crossmatch": xm, "kind": kind, "survey_a": sa, "model_a": ma,
                "survey_b": sb, "model_b": mb,
                "block_a": "final" if i == n_a else f"layer {i + 1}", "block_b": "final" if j == n_b else f"layer {j + 1}",
                "index_a": i, "index_b": j, "depth_a": 1.0 if i == n_a else (i + 1) / n_a,
                "depth_b": 1.0 if j == n_b else (j + 1) / n_b, "n": 500, "k": 10 if metric == "mknn" else "",
                "raw": raw[i][j], "calibrated": cal[i][j], "tau": 0.01, "p": 0.001, "alpha": 0.05,
                "null_draws": 100, "null_method": "permutation" if metric == "mknn" else "closed_form",
                "p_max": 0.02, "tau_max": 0.05, "calibrated_max": "" if cal[i][j] == "" else max(0.0, cal[i][j] - 0.04),
                "max_method": "" if cal[i][j] == "" else "max_null" if metric == "mknn" else "bonferroni"})
    return rows


def write(path, rows, columns=LAYER_FIELDS):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


# Crossmodal JWST vit-base (2 blocks) vs HSC vit-base (3 blocks); rows index_a 0, 1, final.
RAW = [[0.10, 0.20, 0.30, 0.25], [0.15, 0.40, 0.35, 0.30], [0.12, 0.33, 0.31, 0.28]]
CAL = [[0.00, 0.05, 0.10, 0.08], [0.02, 0.20, 0.12, 0.11], [0.01, 0.15, 0.13, 0.09]]


@pytest.fixture
def files(tmp_path):
    cross = grid("crossmodal", "jwst_hsc", "jwst", "vit-base", "hsc", "vit-base", 2, 3, RAW, CAL)
    # Intramodal HSC vit-base (3) vs vit-large (1): every calibrated score 0, so the raw score decides;
    # the final layer is the best raw pair.
    intra_raw = [[0.5, 0.1], [0.6, 0.2], [0.6, 0.3], [0.1, 0.9]]
    intra = grid("intramodal", "jwst_hsc", "hsc", "vit-base", "hsc", "vit-large", 3, 1, intra_raw,
                 [[0.0, 0.0]] * 4)
    cka = grid("crossmodal", "jwst_hsc", "jwst", "vit-base", "hsc", "vit-base", 2, 3, RAW, CAL, metric="cka_linear")
    return [write(tmp_path / "m" / "cross.csv", cross + cka), write(tmp_path / "m" / "intra.csv", intra)]


def test_gather_concatenates_every_row_in_order(files):
    df = gather_layers(files)
    assert list(df.columns) == list(LAYER_FIELDS)
    assert len(df) == 2 * 3 * 4 + 4 * 2
    cross = df[(df.metric == "mknn") & (df.kind == "crossmodal")]
    assert cross["raw"].tolist() == [v for row in RAW for v in row]
    assert cross["calibrated"].tolist() == [v for row in CAL for v in row]
    assert df.loc[df.metric == "cka_linear", "k"].isna().all() and (df.loc[df.metric == "mknn", "k"] == 10).all()
    assert df["block_a"].tolist()[:5] == ["layer 1"] * 4 + ["layer 2"]
    assert df["null_method"].tolist()[-1] == "permutation"
    assert df["n"].tolist() == [500] * len(df) and str(df["index_a"].dtype) == "Int64"


def test_best_against_final_exact(files):
    best = best_layers(gather_layers(files))
    assert best[["metric", "kind"]].values.tolist() == [["mknn", "crossmodal"], ["cka_linear", "crossmodal"],
                                                        ["mknn", "intramodal"]]
    cross = best.iloc[0]
    assert (cross.best_block_a, cross.best_block_b) == ("layer 2", "layer 2")
    assert (cross.best_depth_a, cross.best_depth_b) == (1.0, 2 / 3)
    assert (cross.best_raw, cross.best_calibrated, cross.best_p) == (0.40, 0.20, 0.001)
    assert (cross.best_calibrated_max, cross.best_p_max, cross.max_method) == (0.20 - 0.04, 0.02, "max_null")
    assert best.iloc[1].max_method == "bonferroni"
    assert (cross.final_raw, cross.final_calibrated) == (0.28, 0.09)
    assert cross.delta_raw == 0.40 - 0.28 and cross.delta_calibrated == 0.20 - 0.09
    intra = best.iloc[2]  # all calibrated 0: the best raw pair, here final x final itself
    assert (intra.best_block_a, intra.best_block_b, intra.best_raw) == ("final", "final", 0.9)
    assert (intra.delta_raw, intra.delta_calibrated) == (0.0, 0.0)


def test_best_ties_go_to_the_shallower_pair(tmp_path):
    # best raw: layer 1 against layer 2 and against final (both at depth 1), and layer 2 against layer 1
    raw = [[0.1, 0.2, 0.2], [0.2, 0.1, 0.1], [0.1, 0.1, 0.1]]
    cal = [[0.1] * 3] * 3
    path = write(tmp_path / "tie.csv", grid("intramodal", "x", "hsc", "vit-base", "hsc", "vit-large", 2, 2, raw, cal))
    best = best_layers(gather_layers([path])).iloc[0]
    assert (best.best_block_a, best.best_block_b, best.best_depth_a, best.best_depth_b) == ("layer 1", "layer 2", 0.5, 1.0)


def test_heatmaps_named_per_pair_and_metric(files, tmp_path):
    out = tmp_path / "figs"
    paths = write_layer_heatmaps(gather_layers(files), out)
    assert sorted(p.relative_to(out).as_posix() for p in paths) == [
        "cka_linear/jwst_hsc_jwst_vit-base__hsc_vit-base.png",
        "mknn/jwst_hsc_hsc_vit-base__hsc_vit-large.png",
        "mknn/jwst_hsc_jwst_vit-base__hsc_vit-base.png",
    ]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_heatmaps_drawn_by_several_processes_are_the_same_files(files, tmp_path):
    df = gather_layers(files)
    serial = write_layer_heatmaps(df, tmp_path / "one")
    forked = write_layer_heatmaps(df, tmp_path / "two", workers=2)
    assert [p.relative_to(tmp_path / "two") for p in forked] == [p.relative_to(tmp_path / "one") for p in serial]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(serial, forked))


def test_heatmap_axes_are_depth_fractions_and_mark_the_best_cell(files):
    df = gather_layers(files)
    sub = df[(df.metric == "mknn") & (df.kind == "crossmodal")]
    fig = _heatmap(sub, {c: sub[c].iloc[0] for c in ("metric", "crossmatch", "kind", "survey_a", "model_a",
                                                      "survey_b", "model_b")}, RunFacts())
    calibrated, raw = fig.axes[:2]
    mesh = calibrated.collections[0]
    # x: HSC's 3 blocks at depth edges 0, 1/3, 2/3, 1, a gap, then the final strip; y: JWST's 2 blocks.
    z = mesh.get_array().reshape(4, 5)
    assert z[1, 1] == pytest.approx(20.0) and z[3, 4] == pytest.approx(9.0) and z.mask[:, 3].all()
    for ax in (calibrated, raw):
        (box,) = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert box.get_xy() == pytest.approx((1 / 3, 0.5)) and box.get_width() == pytest.approx(1 / 3)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.25", "0.5", "0.75", "1", "final"]
    assert np.ma.max(raw.collections[0].get_array()) == pytest.approx(40.0)  # MKNN raw in percent


def test_best_figure_per_metric_and_missing_params(files, tmp_path):
    best = best_layers(gather_layers(files))
    paths = write_best_figures(best, tmp_path, PARAMS)
    assert sorted(p.name for p in paths) == ["best_vs_params_cka_linear.png", "best_vs_params_mknn.png"]
    with pytest.raises(KeyError, match="vit-large"):
        write_best_figures(best, tmp_path, {"vit-base": 86e6})


def _one(tmp_path, mutate=None, columns=LAYER_FIELDS):
    rows = grid("crossmodal", "jwst_hsc", "jwst", "vit-base", "hsc", "vit-base", 2, 3, RAW, CAL)
    if mutate:
        mutate(rows)
    return write(tmp_path / "bad.csv", rows, columns)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r[3].update(kind="self"), "line 5: column 'kind' is 'self'"),
    (lambda r: r[2].update(raw="high"), "line 4: column 'raw' must be a finite number, got 'high'"),
    (lambda r: r[0].update(calibrated=""), "line 2: column 'calibrated' must be a finite number, and empty only "
     "where null_method is 'pairing_free' (no null is defined), got '' with null_method 'permutation'"),
    (lambda r: r[1].update(raw="inf"), "line 3: column 'raw' must be a finite number"),
    (lambda r: r[1].update(n=499.5), "line 3: column 'n' must be a finite integer, got '499.5'"),
    (lambda r: r[2].update(index_b="x"), "line 4: column 'index_b' must be a finite integer, got 'x'"),
    (lambda r: r[5].update(block_b=""), "line 7: column 'block_b' is empty"),
    (lambda r: r[4].update(null_method="bootstrap"), "line 6: column 'null_method' is 'bootstrap'"),
    (lambda r: r[4].update(max_method="holm"), "line 6: column 'max_method' is 'holm', expected one of "
     "('max_null', 'bonferroni') or empty"),
    (lambda r: r[2].update(p_max="nan"), "line 4: column 'p_max' must be a finite number, got 'nan'"),
    (lambda r: r[2].update(max_method=""), "line 4: column 'calibrated_max' must be empty exactly where "
     "max_method is, got '0.060000000000000005' with max_method ''"),
    (lambda r: r[4].update(null_method="pairing_free"), "line 6: column 'calibrated' must be a finite number, "
     "and empty only where null_method is 'pairing_free' (no null is defined), got '0.02' with null_method 'pairing_free'"),
    (lambda r: r[4].update(depth_a=0.75), "line 6: vit-base block 'layer 2' has index_a 1 and depth_a 0.75"),
    (lambda r: r[3].update(depth_b=0.5), "line 5: vit-base block 'final' has index_b 3 and depth_b 0.5"),
])
def test_malformed_rows_name_file_line_and_column(tmp_path, mutate, message):
    path = _one(tmp_path, mutate)
    with pytest.raises(RecordError, match="bad.csv: ") as err:
        gather_layers([path])
    assert message in str(err.value)


def test_a_pairing_free_measure_stays_in_the_table_and_out_of_the_best_and_heatmaps(files, tmp_path):
    """Its rows have no tau, p or calibrated score; the views built on the calibrated score leave it out."""
    free = grid("crossmodal", "jwst_hsc", "jwst", "vit-base", "hsc", "vit-base", 2, 3, RAW, [[""] * 4] * 3,
                metric="frechet")
    for row in free:
        row.update(tau="", p="", null_draws=0, null_method="pairing_free")
    df = gather_layers([*files, write(tmp_path / "m" / "free.csv", free)])
    rows = df[df.metric == "frechet"]
    assert len(rows) == 12 and rows[["calibrated", "tau", "p"]].isna().all().all()
    assert rows["raw"].tolist() == [v for row in RAW for v in row]
    assert set(best_layers(df).metric) == {"mknn", "cka_linear"}
    names = {p.relative_to(tmp_path / "h").parts[0] for p in write_layer_heatmaps(df, tmp_path / "h")}
    assert names == {"mknn", "cka_linear"}


def test_missing_column_empty_file_and_no_rows(tmp_path):
    path = _one(tmp_path, columns=[c for c in LAYER_FIELDS if c not in ("depth_b", "p")])
    with pytest.raises(RecordError, match=r"bad.csv: missing column\(s\) 'depth_b', 'p'"):
        gather_layers([path])
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(RecordError, match="empty.csv: not a layer metric CSV"):
        gather_layers([tmp_path / "empty.csv"])
    write(tmp_path / "header.csv", [])
    with pytest.raises(RecordError, match="header.csv: no rows"):
        gather_layers([tmp_path / "header.csv"])
    with pytest.raises(FileNotFoundError, match="absent.csv: layer metric file does not exist"):
        gather_layers([tmp_path / "absent.csv"])
    with pytest.raises(RecordError, match="no layer metric files"):
        gather_layers([])


def test_duplicates_across_files_and_missing_final(tmp_path):
    rows = grid("crossmodal", "jwst_hsc", "jwst", "vit-base", "hsc", "vit-base", 2, 3, RAW, CAL)
    a, b = write(tmp_path / "a.csv", rows), write(tmp_path / "b.csv", rows[:1])
    with pytest.raises(RecordError, match=r"duplicate layer row .*'block_a': 'layer 1'.*a.csv.*b.csv"):
        gather_layers([a, b])
    no_final = write(tmp_path / "c.csv", [r for r in rows if not (r["block_a"] == r["block_b"] == "final")])
    with pytest.raises(RecordError, match="no final x final row for .*'model_a': 'vit-base'"):
        best_layers(gather_layers([no_final]))
    assert isinstance(gather_layers([no_final]), pd.DataFrame)


def test_layers_table_reads_back_unchanged(files, tmp_path):
    df = gather_layers(files)
    df.to_csv(tmp_path / "layers.csv", index=False)  # what rule layers_report writes
    pd.testing.assert_frame_equal(gather_layers([tmp_path / "layers.csv"]), df)


def test_plan_lists_one_layer_csv_per_compared_pair(paper_config):
    from samesky.config import validate_config
    from samesky.plan import Plan

    assert Plan(validate_config(paper_config)).layer_metric_files() == []  # embed.layers: final
    paper_config.setdefault("embed", {})["layers"] = "all"
    plan = Plan(validate_config(paper_config))
    files = plan.layer_metric_files()
    assert len(files) == len(set(files)) == 66 + 64  # Tables 1 and 2; the self pairs have no block x block scores
    assert "results/platonic-universe/layers_metrics/jwst_hsc/jwst/dinov2-small/hsc/dinov2-small.csv" in files
    assert "results/platonic-universe/layers_metrics/desi_hsc/hsc/vit-base/hsc/vit-base.csv" not in files
