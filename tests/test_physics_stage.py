"""The physics tests as a stage of the probes (probes.physics): config, plan, job and report."""
import json

import numpy as np
import pandas as pd
import pytest

from samesky import physics, probes
from samesky.config import ConfigError, validate_config
from samesky.metrics import knn
from samesky.plan import Plan
from samesky.report import RunFacts, gather_physics, write_physics_table
from samesky.schema import SchemaError, write_crossmatch, write_embeddings, write_knn

NEIGHBOURHOOD = ["neighbour_consistency", "neighbour_set_overlap", "knn_purity"]


def enable(config, tests, **physics_keys):
    config["probes"]["physics"] = {"tests": tests, **physics_keys}
    return config


def test_plan_lists_physics_jobs_and_hands_their_params_only_when_asked(breadth_config):
    plain = Plan(validate_config(breadth_config))
    assert plain.physics == [] and plain.physics_paths == []
    config = enable(breadth_config, ["ols_probe", *NEIGHBOURHOOD, "joint_neighbour_set_overlap"],
                    params={"knn_purity": {"k": 10, "n_bins": 5}}, null_draws=7, subsampling_splits=3)
    plan = Plan(validate_config(config))
    assert plan.physics == plan.probes and plan.physics  # every probed embedding; continuous properties only
    assert plan.physics_paths[0] == plan.run.PHYSICS.format(crossmatch=plan.physics[0][0], survey=plan.physics[0][1],
                                                            model=plan.physics[0][2])
    xm = plan.physics[0][0]
    params = plan.physics_params(xm)
    assert params == {"properties": [p for p in plan.probe_properties(xm) if p != "quiescent"],
                      "tests": ["ols_probe", *NEIGHBOURHOOD, "joint_neighbour_set_overlap"],
                      "params": {"knn_purity": {"k": 10, "n_bins": 5}}, "null_draws": 7, "subsampling_splits": 3,
                      "alpha": 0.05, "ci": config["probes"]["ci"], "seed": config["probes"]["seed"]}
    assert "quiescent" in plan.probe_properties(xm)
    assert plan.probe_params(xm) == plain.probe_params(xm)  # the probes do not rerun for a physics edit


@pytest.mark.parametrize("physics_keys, message", [
    ({"tests": ["ols_probe"], "params": {"knn_purity": {"k": 5}}},
     "probes.physics.params.knn_purity: 'knn_purity' is not among probes.physics.tests ['ols_probe']"),
    ({"tests": ["knn_purity"], "params": {"knn_purity": {"kk": 5}}},
     "probes.physics.params.knn_purity: physics test 'knn_purity': unknown parameters ['kk']"),
    ({"tests": ["knn_purity"], "params": {"knn_purity": {"k": 500}}},
     "probes.physics.params.knn_purity.k: 500 neighbours, but the cached kNN graphs hold 80 per object"),
    ({"tests": ["knn_purity"]}, "probes.physics.params.knn_purity.k: 50 neighbours do not fit a quarter of "
     "crossmatch 'cosmos_web' of at most 200 objects (crossmatches.cosmos_web.source.simulate.n), which its subsampling "
     "interval rescores (probes.physics.subsampling_splits); k must be below 50"),
    ({"tests": ["knn_purity"], "subsampling_splits": 0}, None),
    ({"tests": ["neighbourhood_wasserstein"]}, "probes.physics.tests"),
    ({"tests": ["ols_probe"], "null_draws": -1}, "probes.physics.null_draws"),
])
def test_physics_config_errors_name_the_key(demo_config, physics_keys, message):
    demo_config["probes"].update(physics=physics_keys, umap=False)  # the UMAP maps take knn_purity's params too
    if message is None:  # no subsampling interval: k = 50 of 200 objects is fine
        assert Plan(validate_config(demo_config)).physics_params("desi_hsc")["tests"] == ["knn_purity"]
        return
    with pytest.raises(ConfigError) as err:
        validate_config(demo_config)
    assert message in str(err.value)


def test_joint_overlap_needs_two_continuous_properties(demo_config):
    enable(demo_config, ["joint_neighbour_set_overlap"])  # the demo probes redshift and (categorical) quiescent
    with pytest.raises(ConfigError, match=r"^probes.physics.tests: joint_neighbour_set_overlap needs at least two "
                                          r"continuous probed properties; crossmatch 'desi_hsc' has \['redshift'\]"):
        validate_config(demo_config)


def test_physics_job_records_are_physics_records_on_its_inputs(tmp_path):
    """The job reads the embedding, its cached graph and the properties by object id, and writes
    exactly what ``physics.physics_records`` gives on the same arrays."""
    rng = np.random.default_rng(5)
    n = 120
    z = rng.uniform(0, 2, n)
    x = np.column_stack([z, rng.normal(size=(n, 5))]).astype(np.float32) + 0.1 * rng.normal(size=(n, 6)).astype(
        np.float32)
    mass = z + rng.normal(scale=0.3, size=n)
    ids = [f"o{i}" for i in range(n)]
    xm = tmp_path / "xm.h5"
    write_crossmatch(xm, "t", ids, np.zeros(n), np.zeros(n), {"hsc": {"flux": np.zeros((n, 5, 4, 4), np.float32)}},
                     properties={"Z": z, "mass": mass})
    order = rng.permutation(n)  # the embedding in another order than the crossmatch
    emb, graph_path = tmp_path / "emb.h5", tmp_path / "knn.h5"
    write_embeddings(emb, [ids[i] for i in order], x[order], {})
    indices, similarity = knn.knn_graph(x[order], 40)
    write_knn(graph_path, [ids[i] for i in order], indices, similarity, {})
    tests = ["ols_probe", *NEIGHBOURHOOD, "joint_neighbour_set_overlap", "distance_property_correlation"]
    settings = dict(null_draws=4, subsampling_splits=2, ci=0.9, alpha=0.1, seed=3)
    params = {"knn_purity": {"k": 10, "n_bins": 5}}
    got = probes.physics_files(emb, graph_path, [xm], ["Z", "mass"], tests=tests, params=params, **settings)
    want = physics.physics_records(x[order], {"Z": z[order], "mass": mass[order]}, (indices, similarity),
                                   tests=tests, params=params, **settings)
    assert got == want
    assert len(got) == 2 * 5 + 1 and {r["test"] for r in got} == set(tests)
    for rec in got:
        assert rec["null_draws"] == 4 and rec["subsampling_splits"] == 2 and rec["ci_low"] is not None
    ols = next(r for r in got if r["test"] == "ols_probe" and r["property"] == "Z")
    assert ols["score"] > 0.5 and ols["p_value"] == 1 / 5
    write_knn(graph_path, ids, indices, similarity, {})  # the crossmatch's order: not the embedding's
    with pytest.raises(SchemaError, match=r"knn.h5: the kNN graph's object ids are not those of .*emb.h5 in its order"):
        probes.physics_files(emb, graph_path, [xm], ["Z"], tests=["knn_purity"], **settings)


def physics_record(model, survey, test, prop, score, p):
    return {"crossmatch": "desi_hsc", "survey": survey, "model": model, "test": test, "property": prop,
            "score": score, "ci_low": score - 0.1, "ci_high": score + 0.1, "null_mean": 0.0, "null_std": 0.05,
            "p_value": p, "calibrated": score, "alpha": 0.05, "null_draws": 20, "subsampling_splits": 10, "n": 150,
            "n_excluded": 4, "params": {"k": 10}, "reference": physics.TESTS[test].reference}


def test_physics_table_and_caption(tmp_path):
    params = {"vit-base": 86_000_000, "vit-large": 304_000_000, "specformer-base": 43_000_000}
    recs = [physics_record(m, s, t, "Z", score, p)
            for t in ("knn_purity", "neighbour_consistency")
            for m, s, score, p in (("vit-large", "hsc", 0.5, 0.01), ("vit-base", "hsc", 0.4, 0.2),
                                   ("specformer-base", "desi", 0.9, 1 / 21))]
    (tmp_path / "a.json").write_text(json.dumps({"records": recs}))
    df = gather_physics([tmp_path / "a.json"])
    csv, md = write_physics_table(df, tmp_path / "physics.csv", tmp_path / "physics.md", params,
                                  RunFacts(simulated=("desi_hsc",), ci=0.95))
    tidy = pd.read_csv(csv)
    assert len(tidy) == 6 and tidy.loc[0, "params"] == '{"k": 10}'
    text = md.read_text()
    caption, table = text.split("\n\n", 1)
    assert caption.startswith("**Simulated sky (desi_hsc): not scientific results.** **The authors' physics tests")
    assert ("Tests: neighbour_consistency (pu src/pu/metrics/physics.py:182 neighbor_property_consistency; lower knows "
            "more, 0 at best); knn_purity (pu experiments/platonic/compute/pu_umap.py:238 knn_purity; higher knows "
            "more, 1 at best).") in caption
    assert "[low, high]: 95% subsampling interval, score ± z SE, the SE from K = 10 splits" in caption
    assert "K = 20 draws; p is one-sided" in caption and "p >= 0.048 at K = 20" in caption
    assert "N = 150 objects per embedding" in caption
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0] == "| Test | Property | Model | DESI (desi_hsc) | HSC (desi_hsc) |"
    assert rows[1] == "| neighbour_consistency | Z | Specformer Base | 0.900 [0.800, 1.000], p = 0.048 | — |"
    assert rows[2] == "| neighbour_consistency | Z | ViT Base | — | 0.400 [0.300, 0.500], p = 0.2 |"
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| neighbour_consistency"] * 3 + ["| knn_purity"] * 3
    empty = write_physics_table(gather_physics([]), tmp_path / "e.csv", tmp_path / "e.md", params)
    assert pd.read_csv(empty[0]).empty and "No physics tests ran" in empty[1].read_text()
    del recs[0]["p_value"]
    (tmp_path / "b.json").write_text(json.dumps({"records": recs}))
    with pytest.raises(ValueError, match=r"b.json: record 0 is missing field\(s\) 'p_value'"):
        gather_physics([tmp_path / "b.json"])
