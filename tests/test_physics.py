"""The authors' physics tests (samesky.physics) against their own code's outputs, plus checks that
can fail: the cached-graph path equals a fresh graph, and bad inputs name the test.

Goldens: tests/golden/physics.npz, made by tests/golden/make_physics_golden.py from a checkout of
UniverseTBD/platonic-universe; physics.json says, per value, the reference (file:line, function,
parameters) and the tolerance on |ours - golden| / max(1, |golden|), elementwise.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from samesky import physics
from samesky.metrics import knn, stats

GOLDEN = Path(__file__).parent / "golden"
META = json.loads((GOLDEN / "physics.json").read_text())
DATA = np.load(GOLDEN / "physics.npz")
SPACES = {s: DATA[f"input_{s}"] for s in META["inputs"]["spaces"]}
PROPS = {p: DATA[f"property_{p}"] for p in META["inputs"]["properties"]}
WIDTH = 60  # the cached graphs' width here: wider than any k asked, so restriction is exercised
GRAPHS = {s: knn.knn_graph(Z, WIDTH) for s, Z in SPACES.items()}


def _probe(fn):
    return lambda g: (lambda r: [r["mean"], r["std"], *r["folds"]])(fn(SPACES[g["space"]], PROPS[g["property"]],
                                                                      **g["params"]))


def _on_graph(fn):
    return lambda g: fn(SPACES[g["space"]], PROPS[g["property"]], GRAPHS[g["space"]], **g["params"])


def _joint(g):
    res = physics.joint_neighbour_set_overlap(SPACES[g["space"]], PROPS, GRAPHS[g["space"]], **g["params"])
    assert res["properties_used"] == g["params"]["names"]
    return [res["joint_overlap"], res["n_properties"], res["n_samples"]]


def _purity(g):
    value, per_object = physics.knn_purity(GRAPHS[g["space"]][0], PROPS[g["property"]], **g["params"])
    return [value, *per_object]


def _wasserstein(g):
    p = g["params"]
    if p["neighbours"] == "minkowski":  # the authors' Euclidean lists, as they were fed
        nn1, nn2 = DATA["input_nn_minkowski_A"], DATA["input_nn_minkowski_B"]
    else:  # the project's cached cosine graphs
        nn1, nn2 = GRAPHS["A"][0], GRAPHS["B"][0]
    return physics.neighbourhood_wasserstein(nn1, nn2, PROPS[g["property"]], k=p["k"], standardize=p["standardize"])


OURS = {
    "ols_probe": _probe(physics.ols_probe),
    "boosting_probe": _probe(physics.boosting_probe),
    "neighbour_consistency": _on_graph(physics.neighbour_consistency),
    "neighbour_set_overlap": _on_graph(physics.neighbour_set_overlap),
    "distance_property_correlation": lambda g: physics.distance_property_correlation(
        SPACES[g["space"]], PROPS[g["property"]], **g["params"]),
    "joint_neighbour_set_overlap": _joint,
    "knn_purity": _purity,
    "neighbourhood_wasserstein": _wasserstein,
}


@pytest.mark.parametrize("key", sorted(META["golden"]))
def test_equals_reference(key):
    g = META["golden"][key]
    golden = DATA[key]
    ours = np.asarray(OURS[g["test"]](g), np.float64)
    assert ours.shape == golden.shape, key
    assert np.array_equal(np.isnan(ours), np.isnan(golden)), key
    ok = ~np.isnan(golden)
    assert np.all(np.abs(ours - golden)[ok] <= g["tol"] * np.maximum(1.0, np.abs(golden[ok]))), g["where"]


def test_every_test_has_a_golden():
    assert set(OURS) == {g["test"] for g in META["golden"].values()}


def test_goldens_drop_objects():
    """The goldens exercise the reference's clip and NaN handling (else restriction is untested)."""
    for name, y in PROPS.items():
        keep = physics.kept_rows(SPACES["A"], y)
        assert 0 < (~keep).sum() < 20, name
    assert np.isnan(PROPS["ssfr"]).sum() == 6


@pytest.mark.parametrize("fn", [physics.neighbour_consistency, physics.neighbour_set_overlap])
def test_cached_graph_equals_fresh_graph(fn):
    Z, y = SPACES["B"], PROPS["ssfr"]
    assert fn(Z, y, GRAPHS["B"], k=7) == fn(Z, y, None, k=7)


def test_restricted_graph_is_the_kept_objects_graph():
    Z, y = SPACES["A"], PROPS["redshift"]
    keep = physics.kept_rows(Z, y)
    assert np.array_equal(physics.embedding_neighbours(Z, keep, 10, GRAPHS["A"]),
                          knn.knn_graph(Z[keep], 10)[0])


def test_constant_property_is_nan():
    Z = SPACES["A"]
    y = np.ones(len(Z))
    assert np.isnan(physics.neighbour_consistency(Z, y, GRAPHS["A"]))


def test_bad_inputs_name_the_test():
    Z, y = SPACES["A"], PROPS["mass"]
    with pytest.raises(physics.PhysicsError, match="neighbour_consistency: the kNN graph holds 60 neighbours per "
                                                   "object, fewer than k=61"):
        physics.neighbour_consistency(Z, y, GRAPHS["A"], k=61)
    with pytest.raises(physics.PhysicsError, match="ols_probe: 300 embeddings but 299 property values"):
        physics.ols_probe(Z, y[:-1])
    too_few = r"neighbour_set_overlap: 10 usable objects are too few \(needs at least 11\)"
    with pytest.raises(physics.PhysicsError, match=too_few):
        physics.neighbour_set_overlap(Z[:12], y[:12], k=10)  # the clip drops the extremes
    with pytest.raises(physics.PhysicsError, match=r"no object has a finite property value"):
        physics.distance_property_correlation(Z, np.full(len(Z), np.nan))
    with pytest.raises(physics.PhysicsError, match=r"joint_neighbour_set_overlap: no property \['age'\]"):
        physics.joint_neighbour_set_overlap(Z, PROPS, names=["mass", "age"])
    with pytest.raises(physics.PhysicsError, match="needs at least 2 properties"):
        physics.joint_neighbour_set_overlap(Z, PROPS, names=["mass"])
    with pytest.raises(physics.PhysicsError, match="nn2 has 299 rows for 300 values"):
        physics.neighbourhood_wasserstein(GRAPHS["A"][0], GRAPHS["B"][0][:-1], y)


# --- intervals and nulls ----------------------------------------------------------------------------
SETTINGS = {"null_draws": 4, "subsampling_splits": 3, "seed": 5}
FAST = {"boosting_probe": {"n_estimators": 5, "max_depth": 2}, "knn_purity": {"k": 10, "n_bins": 10},
        "ols_probe": {"pca_components": 8}}


@pytest.fixture(scope="module")
def records():
    props = {p: PROPS[p] for p in ("mass", "ssfr")}
    return {(r["test"], r["property"]): r
            for r in physics.physics_records(SPACES["A"], props, GRAPHS["A"], params=FAST, **SETTINGS)}


def test_records_score_the_reference_exact_functions(records):
    Z, g = SPACES["A"], GRAPHS["A"]
    assert set(records) == {(t, p) for t in physics.EMBEDDING_TESTS if t != "joint_neighbour_set_overlap"
                            for p in ("mass", "ssfr")} | {("joint_neighbour_set_overlap", "mass+ssfr")}
    for p in ("mass", "ssfr"):
        y = PROPS[p]
        assert records["ols_probe", p]["score"] == physics.ols_probe(Z, y, pca_components=8)["mean"]
        assert records["boosting_probe", p]["score"] == physics.boosting_probe(Z, y, **FAST["boosting_probe"])["mean"]
        assert records["neighbour_consistency", p]["score"] == physics.neighbour_consistency(Z, y, g)
        assert records["neighbour_set_overlap", p]["score"] == physics.neighbour_set_overlap(Z, y, g)
        assert records["distance_property_correlation", p]["score"] == physics.distance_property_correlation(Z, y)
        assert records["knn_purity", p]["score"] == physics.knn_purity(g[0], y, k=10, n_bins=10)[0]
    joint = physics.joint_neighbour_set_overlap(Z, {p: PROPS[p] for p in ("mass", "ssfr")}, g)
    assert records["joint_neighbour_set_overlap", "mass+ssfr"]["score"] == joint["joint_overlap"]
    assert records["neighbour_consistency", "ssfr"]["n"] + records["neighbour_consistency", "ssfr"]["n_excluded"] == 300
    assert records["neighbour_consistency", "ssfr"]["params"] == {"k": 10, "clip_percentiles": [1.0, 99.0]}


def _expected(score, nulls, draws, n, k, scale):
    return stats.summarise(score, np.array(nulls), np.array(draws), 0.95, scale=scale, interval="subsampling",
                           knn=(n, k) if k else None)


def test_null_and_interval_rescore_the_test_on_shuffled_targets_and_subsamples(records):
    """Each null draw is the public function on the kept targets permuted; each subsample's score is
    the function on that subsample alone (its own fresh graph, its own folds)."""
    Z, y = SPACES["A"], PROPS["ssfr"]
    keep = physics.kept_rows(Z, y)
    Zk, yk, n = Z[keep], y[keep], int(keep.sum())
    for test, k, scale, fn in (
            ("neighbour_consistency", 10, "distance", lambda Z_, y_: physics.neighbour_consistency(
                Z_, y_, None, clip_percentiles=None)),
            ("ols_probe", None, "unit", lambda Z_, y_: physics.ols_probe(
                Z_, y_, pca_components=8, clip_percentiles=None)["mean"])):
        nulls = [fn(Zk, yk[p]) for p in stats.permutations(n, 4, 5)]
        draws = [[fn(Zk[rows], yk[rows]) for rows in split[:6 if k else 2]] for split in stats.quarter_splits(n, 3, 5)]
        expected = _expected(fn(Zk, yk), nulls, draws, n, k, scale)
        got = records[test, "ssfr"]
        for field in ("ci_low", "ci_high", "null_mean", "null_std", "p_value", "tau", "calibrated"):
            assert got[field] == pytest.approx(expected[field], rel=1e-9, abs=1e-12), (test, field)


def test_wasserstein_record():
    Z1, Z2, y = SPACES["A"], SPACES["B"], PROPS["mass"]
    rec = physics.wasserstein_record(Z1, Z2, y, GRAPHS["A"], GRAPHS["B"], **SETTINGS)
    per_object = physics.neighbourhood_wasserstein(GRAPHS["A"][0], GRAPHS["B"][0], y)
    assert rec["score"] == float(np.mean(per_object))
    nulls = []
    for p in stats.permutations(300, 4, 5):  # B's rows shuffled: its graph of the shuffled rows
        nulls.append(np.mean(physics.neighbourhood_wasserstein(GRAPHS["A"][0], knn.knn_graph(Z2[p], 10)[0], y)))
    assert rec["null_mean"] == pytest.approx(np.mean(nulls), rel=1e-12)
    assert rec["score"] < rec["null_mean"] and rec["interval_method"] == "subsampling"
    same = physics.wasserstein_record(Z1, Z1, y, GRAPHS["A"], GRAPHS["A"], null_draws=19, subsampling_splits=3)
    assert (same["score"], same["ci_low"], same["ci_high"], same["calibrated"]) == (0.0, 0.0, 0.0, 1.0)


def test_statistics_bad_settings_name_the_test():
    Z, props = SPACES["A"], {"mass": PROPS["mass"]}
    with pytest.raises(physics.PhysicsError, match=r"unknown physics test 'purity'; known tests: \['ols_probe'"):
        physics.physics_records(Z, props, tests=["purity"])
    with pytest.raises(physics.PhysicsError, match=r"physics test 'knn_purity': unknown parameters \['bins'\]"):
        physics.physics_records(Z, props, tests=["knn_purity"], params={"knn_purity": {"bins": 5}})
    with pytest.raises(physics.PhysicsError, match=r"parameters for tests \['ols_probe'\] that do not run"):
        physics.physics_records(Z, props, tests=["knn_purity"], params={"ols_probe": {"folds": 3}})
    with pytest.raises(physics.PhysicsError, match="knn_purity's subsampling interval needs a quarter of the 300 "
                                                   "objects to hold more than k=80"):
        physics.physics_records(Z, props, None, tests=["knn_purity"], params={"knn_purity": {"k": 80}})
    with pytest.raises(physics.PhysicsError, match="knn_purity is undefined on some subsamples of its 300 objects"):
        physics.physics_records(Z, props, GRAPHS["A"], tests=["knn_purity"], subsampling_splits=2)
