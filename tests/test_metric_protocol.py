"""The metric protocol (issue 26): the six metrics' records unchanged by it, and a metric defined
and registered here, in one line, reaching every stage with no other file touched."""
import json
from pathlib import Path

import numpy as np
import pytest
from metric_fixtures import COMPARISON, INTERVALS, METRICS, SETTINGS, write_pair

from samesky.metrics.compare import compare_files
from samesky.metrics.layers import compare_layer_files
from samesky.metrics.registry import get_metric
from samesky.metrics.stats import calibrated_interval, p_value, permutations

GOLDEN = json.loads((Path(__file__).parent / "golden" / "protocol_records.json").read_text())
PLAIN = {**SETTINGS, "params": {}}  # the settings without MI's parameters, for pairs without MI


def assert_as_before(got: list[dict], golden: list[dict]) -> None:
    """Every field equal, but a closed-form null's floats (CKA's: from Gram invariants whose float32
    cube pass was reordered since, rv_null._cube_sums) to 1e-8 relative (measured: at most 1.6e-9)."""
    assert len(got) == len(golden)
    for new, old in zip(got, golden):
        assert new.keys() == old.keys()
        for f, v in old.items():
            if new["null_method"] == "closed_form" and isinstance(v, float) and new[f] != v:
                assert new[f] == pytest.approx(v, rel=1e-8), (new["metric"], f)
            else:
                assert new[f] == v, (new["metric"], f)


@pytest.mark.parametrize("exclude", [0, 4])
def test_records_and_layer_rows_equal_those_before_the_protocol(tmp_path, exclude):
    """Every field of every compare record and layer row, value for value, as daf56d9 computed
    them (tests/golden/make_protocol_golden.py): all six metrics, with and without objects on one
    side only."""
    s = write_pair(tmp_path, exclude)
    records = compare_files(s["a"]["emb"], s["b"]["emb"], s["a"]["knn"], s["b"]["knn"], comparison=COMPARISON,
                            metrics=METRICS, **SETTINGS, **INTERVALS)
    rows = compare_layer_files(s["a"], s["b"], comparison=COMPARISON, metrics=METRICS, **SETTINGS)
    golden = GOLDEN[f"exclude{exclude}"]
    assert_as_before([{f: r[f] for f in old} for r, old in zip(json.loads(json.dumps(records)), golden["records"])],
                     golden["records"])
    for r in records:  # added since: the calibrated score's interval, the score's through the same map
        assert (r["calibrated_low"], r["calibrated_high"]) == calibrated_interval(r["ci_low"], r["ci_high"], r["tau"],
                                                                                  get_metric(r["metric"]).scale)
        assert r["calibrated_low"] <= r["calibrated"] <= r["calibrated_high"]
    added = ("p_max", "tau_max", "calibrated_max", "max_method")  # since: the maximum over cells (layers.max_corrected)
    assert_as_before([{f: v for f, v in r.items() if f not in added} for r in json.loads(json.dumps(rows))],
                     golden["layer_rows"])
    assert {r["max_method"] for r in rows} == {"max_null", "bonferroni"} and all(r["p_max"] >= r["p"] for r in rows)
    assert len(rows) == len(METRICS) * 4 * 3 and {r["null_method"] for r in rows} == {"permutation", "closed_form"}


class MatchedCosine:
    """The toy metric's estimator: the mean cosine of matched rows (object i on both sides)."""

    def __init__(self, pair):
        self.a, self.b = (np.asarray(Z, np.float64) / np.linalg.norm(Z, axis=1, keepdims=True) for Z in (pair.Za, pair.Zb))

    def score(self) -> float:
        return float((self.a * self.b).sum(1).mean())

    def null(self, pi) -> float:
        return float((self.a * self.b[pi]).sum(1).mean())


@pytest.fixture
def toy(monkeypatch):
    from samesky.metrics.registry import METRICS, Metric

    monkeypatch.setitem(METRICS, "matched_cosine", Metric("matched_cosine", "matched cosine", MatchedCosine, equal_dims=True))
    return "matched_cosine"


def test_a_metric_registered_in_one_line_reaches_every_stage(tmp_path, toy):
    """Compare record, layer atlas cell, calibrated table row and figure, nothing but the entry."""
    from samesky.report import gather, write_figures, write_tables
    from samesky.schema import write_metric_records

    s = write_pair(tmp_path, dim=6)
    files = []
    for model in ("vit-base", "vit-large"):
        comparison = {**COMPARISON, "model_a": model, "model_b": model}
        records = compare_files(s["a"]["emb"], s["b"]["emb"], s["a"]["knn"], s["b"]["knn"], comparison=comparison,
                                metrics=["mknn", toy], **PLAIN, **INTERVALS)
        files.append(tmp_path / f"{model}.json")
        write_metric_records(files[-1], records)
    rec = records[1]
    direct = MatchedCosine(type("P", (), {"Za": _read(s["a"]["emb"]), "Zb": _read(s["b"]["emb"])}))
    null = [direct.null(pi) for pi in permutations(90, SETTINGS["feature_space_draws"], SETTINGS["seed"])]
    assert rec["metric"] == toy and rec["score"] == direct.score() and rec["k"] is None
    assert rec["null_draws"] == SETTINGS["feature_space_draws"]  # a feature-space null: capped draws
    assert rec["null_method"] == "permutation" and rec["ci_low"] < rec["score"] < rec["ci_high"]
    assert rec["p_value"] == p_value(direct.score(), null) and rec["null_mean"] == pytest.approx(np.mean(null))

    params = {"vit-base": 86_000_000, "vit-large": 304_000_000}
    df = gather(files, params)
    write_tables(df, tmp_path / "tables", params)
    table = (tmp_path / "tables" / f"table2_crossmodal_{toy}_calibrated.csv").read_text().splitlines()
    assert len(table) == 3 and table[1].startswith("ViT Base,")
    figures = write_figures(df, tmp_path / "figures", params)
    assert tmp_path / "figures" / f"figure1_crossmodal_{toy}_calibrated.png" in figures

    rows = compare_layer_files(s["a"], s["b"], comparison=COMPARISON, metrics=[toy], **PLAIN)
    assert len(rows) == 4 * 3 and {r["metric"] for r in rows} == {toy}
    cell = next(r for r in rows if (r["block_a"], r["block_b"]) == ("block1", "block0"))
    assert cell["null_draws"] == SETTINGS["feature_space_draws"] and cell["null_method"] == "permutation"
    final = next(r for r in rows if (r["block_a"], r["block_b"]) == ("final", "final"))
    assert final["raw"] == rec["score"]


def test_a_metric_that_needs_equal_dimensions_refuses_others_by_name(tmp_path, toy):
    s = write_pair(tmp_path)
    with pytest.raises(ValueError, match="metric 'matched_cosine' needs both sides of one dimension, got 12 and 11"):
        compare_files(s["a"]["emb"], s["b"]["emb"], s["a"]["knn"], s["b"]["knn"], comparison=COMPARISON,
                      metrics=[toy], **PLAIN, **INTERVALS)


def _read(path):
    from samesky.schema import read_embeddings

    return read_embeddings(path)[1]


def test_a_distance_is_calibrated_and_tested_on_its_lower_tail():
    """The mirror image of a similarity: null draws 1..19, a score beyond them on the aligned side."""
    from samesky.metrics.stats import summarise

    null = np.arange(1.0, 20.0)
    distance = summarise(0.5, null, np.empty(0), 0.95, alpha=0.05, scale="distance")
    similarity = summarise(19.5, null, np.empty(0), 0.95, alpha=0.05, scale="nats")
    assert (distance["p_value"], distance["tau"], distance["calibrated"]) == (1 / 20, 1.0, 0.5)  # 1 - 0.5 / 1
    assert (similarity["p_value"], similarity["tau"]) == (1 / 20, 19.0)
    worse = summarise(1.5, null, np.empty(0), 0.95, alpha=0.05, scale="distance")
    assert (worse["p_value"], worse["calibrated"]) == (2 / 20, 0.0)


def test_trends_and_axes_read_a_distance_as_aligned_when_lower(tmp_path, monkeypatch):
    from test_report import PARAMS, rec, write_json

    from samesky.metrics.registry import METRICS, Metric
    from samesky.report import gather, trend_stats
    from samesky.report.records import calibrated_view, score_axis

    monkeypatch.setitem(METRICS, "toy_distance", Metric("toy_distance", "toy distance", MatchedCosine, scale="distance"))
    recs = [rec("crossmodal", "jwst_hsc", "jwst", m, "hsc", m, metric="toy_distance", score=s, calibrated=c,
                tau=1.0, alpha=0.05) for m, s, c in (("vit-base", 0.9, 0.1), ("vit-large", 0.5, 0.5), ("vit-huge", 0.6, 0.4))]
    df = gather([write_json(tmp_path / "t.json", recs)], PARAMS)
    raw, cal = (trend_stats(view).query("scope == 'all'").iloc[0] for view in (df, calibrated_view(df)))
    assert (raw.increases, raw.comparisons) == (cal.increases, cal.comparisons) == (1, 2)  # base -> large only
    assert score_axis("toy_distance", "score") == " (lower is more aligned)"
    assert score_axis("toy_distance", "calibrated score") == score_axis("mknn", "score") == ""


def test_a_parameter_defaulting_to_none_declares_its_type():
    """An optional setting (default None) must declare its type; a config sets it to null or a
    positive value of that type (RBF CKA's sampled median, RSA's sampled pairs, ridge's folds)."""
    from samesky.metrics.registry import METRICS as REGISTERED
    from samesky.metrics.registry import Metric

    with pytest.raises(ValueError, match=r"metric 'toy': parameters \['gamma'\] default to None: declare their types"):
        Metric("toy", "toy", MatchedCosine, {"gamma": None})
    REGISTERED["cka_rbf"].check_params({"median_sample": 1_000_000, "gamma": None}, "metrics.params.cka_rbf")
    REGISTERED["linear_r2_both"].check_params({"cv": 5}, "metrics.params.linear_r2_both")
    with pytest.raises(ValueError, match="metrics.params.linear_r2_both.cv: expected a positive int or null, got -2"):
        REGISTERED["linear_r2_both"].check_params({"cv": -2}, "metrics.params.linear_r2_both")
