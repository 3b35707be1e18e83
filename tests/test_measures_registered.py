"""The field's measures registered on the metric protocol (issue 27): each one's compare record is
its pure function's value (tests/test_measures.py holds those to the references), with its null,
p-value and calibration on the tail its declaration names, and each reaches the layer atlas."""
import importlib

import numpy as np
import pytest
from metric_fixtures import COMPARISON, INTERVALS, SETTINGS, write_pair

from samesky.metrics.compare import compare_files
from samesky.metrics.layers import compare_layer_files
from samesky.metrics.registry import METRICS
from samesky.metrics.stats import p_value, permutations, summarise
from samesky.schema import read_embeddings

MEASURES = [name for name, m in METRICS.items() if m.prepare.__qualname__.startswith("measures.")]
PLAIN = {**SETTINGS, "params": {}}


def _function(metric):
    _, module, function = metric.prepare.__qualname__.split(".")
    return getattr(importlib.import_module(f"samesky.metrics.measures.{module}"), function)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("measures"), dim=6)


def test_every_listed_measure_is_registered():
    assert len(MEASURES) == 22 and {"jaccard", "cka_rbf", "svcca", "procrustes", "rsa", "mi_ksg", "mmd",
                                    "distance_correlation", "shape_angular", "gaussian_js"} <= set(MEASURES)


@pytest.mark.parametrize("name", MEASURES)
def test_a_measure_scores_its_function_with_a_null_on_its_own_tail(pair, name):
    metric = METRICS[name]
    records = compare_files(pair["a"]["emb"], pair["b"]["emb"], pair["a"]["knn"], pair["b"]["knn"],
                            comparison=COMPARISON, metrics=[name], **PLAIN, **INTERVALS)
    rec, = records
    Za, Zb = (read_embeddings(pair[s]["emb"])[1] for s in "ab")
    params = {**metric.fixed, **metric.defaults, **({"k": SETTINGS["k"]} if metric.takes_k else {})}
    f = _function(metric)
    score = f(Za, Zb, **params)
    null = [f(Za, Zb[pi], **params) for pi in permutations(90, SETTINGS["feature_space_draws"], SETTINGS["seed"])]
    expected = summarise(score, null, np.empty(0), 0.95, alpha=SETTINGS["alpha"], scale=metric.scale)
    assert rec["score"] == score and rec["null_draws"] == SETTINGS["feature_space_draws"]
    assert rec["p_value"] == p_value(score, null, metric.direction) == expected["p_value"]
    assert (rec["tau"], rec["calibrated"]) == (expected["tau"], expected["calibrated"])
    assert rec["ci_low"] <= score <= rec["ci_high"] and rec["k"] == (SETTINGS["k"] if metric.takes_k else None)


def test_measures_reach_the_layer_atlas(pair):
    names = ["procrustes", "jaccard", "cka_rbf"]
    rows = compare_layer_files(pair["a"], pair["b"], comparison=COMPARISON, metrics=names, **PLAIN)
    assert len(rows) == 3 * 4 * 3
    cell = next(r for r in rows if (r["metric"], r["block_a"], r["block_b"]) == ("procrustes", "block1", "block0"))
    assert cell["null_draws"] == SETTINGS["feature_space_draws"] and cell["null_method"] == "permutation"
    from samesky.schema import LayersFile

    X, Y = (LayersFile(pair[s]["layers"]).block(j).astype(np.float32) for s, j in (("a", 1), ("b", 0)))
    assert cell["raw"] == _function(METRICS["procrustes"])(X, Y)
