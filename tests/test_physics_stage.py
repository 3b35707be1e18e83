"""The physics tests as a stage of the probes (probes.physics): config, plan, job and report."""
import copy
import json

import numpy as np
import pandas as pd
import pytest

from samesky import physics, probes
from samesky.config import ConfigError, fill_defaults, validate_config
from samesky.metrics import knn
from samesky.plan import Plan
from samesky.report import RecordError, RunFacts, gather_physics, write_physics_table
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
    ({"tests": ["neighbourhood_wasserstein"], "params": {"neighbourhood_wasserstein": {"k": 60}}},
     "probes.physics.params.neighbourhood_wasserstein.k: 60 neighbours do not fit a quarter of crossmatch 'cosmos_web'"),
    ({"tests": ["neighbourhood_wasserstein"], "params": {"neighbourhood_wasserstein": {"standardise": True}}},
     "probes.physics.params.neighbourhood_wasserstein: physics test 'neighbourhood_wasserstein': unknown parameters "
     "['standardise']"),
    ({"tests": ["wasserstein"]}, "probes.physics.tests"),
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


def test_plan_lists_a_physics_pair_job_per_compared_pair_with_a_continuous_property(demo_config):
    """neighbourhood_wasserstein runs per intramodal and crossmodal comparison (not the self and
    truth ones) of a crossmatch with a continuous probed property, in rule physics_pair; the
    per-embedding physics jobs and their params do not see it."""
    from samesky import plan as plan_module

    assert set(physics.TESTS) - set(physics.EMBEDDING_TESTS) == set(plan_module.PAIR_PHYSICS_TESTS)
    assert demo_config["probes"]["physics"]["tests"][-1] == "neighbourhood_wasserstein"  # the demo runs it
    demo_config["probes"]["physics"]["tests"].pop()
    before = Plan(validate_config(copy.deepcopy(demo_config)))
    assert before.physics_pairs == [] and before.physics_pair_paths == []
    demo_config["probes"]["physics"]["tests"].append("neighbourhood_wasserstein")
    demo_config["probes"]["physics"]["params"] = {"neighbourhood_wasserstein": {"k": 5}}
    plan = Plan(validate_config(demo_config))
    pairs = [(c.kind, c.crossmatch, c.survey_a, c.model_a, c.survey_b, c.model_b) for c in plan.physics_pairs]
    assert pairs == [("crossmodal", "cosmos_web", "cosmos_jwst", "vit-base", "cosmos_hsc", "vit-base"),
                     ("intramodal", "desi_hsc", "hsc", "vit-base", "hsc", "vit-large"),
                     *(("crossmodal", "desi_hsc", "desi", "specformer-base", "hsc", m)
                       for m in ("vit-base", "vit-large", "aion-base", "aion@random-base"))]
    assert {c.kind for c in plan.comparisons} == {"intramodal", "crossmodal", "self", "truth"}
    assert plan.physics_pair_paths[1] == "results/demo/physics_pairs/desi_hsc/hsc/vit-base/hsc/vit-large.json"
    assert plan.physics_params("desi_hsc", pairs=True) == {
        "properties": ["redshift"], "tests": ["neighbourhood_wasserstein"],
        "params": {"neighbourhood_wasserstein": {"k": 5}}, "null_draws": 50, "subsampling_splits": 50,
        "alpha": 0.05, "ci": demo_config["probes"]["ci"], "seed": demo_config["probes"]["seed"]}
    assert plan.physics == before.physics and plan.physics_params("desi_hsc") == before.physics_params("desi_hsc")
    # a crossmatch without a continuous probed property has no physics_pair job; the test alone runs no physics job
    demo_config["probes"]["properties"]["desi_hsc"] = ["quiescent"]
    demo_config["probes"]["physics"]["tests"] = ["neighbourhood_wasserstein"]
    plan = Plan(validate_config(demo_config))
    assert [(c.crossmatch, c.kind) for c in plan.physics_pairs] == [("cosmos_web", "crossmodal")]
    assert plan.physics == [] and plan.physics_params("cosmos_web")["tests"] == []


def _pair_files(tmp_path, n=120, seed=5):
    """A crossmatch file with properties Z and mass, two embeddings of its objects (side B in
    another order and with one object more) and their cached graphs: the files and the arrays of
    the common objects in side A's order."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0, 2, n + 1)
    mass = z + rng.normal(scale=0.3, size=n + 1)
    ids = np.array([f"o{i}" for i in range(n + 1)])
    xm = tmp_path / "xm.h5"
    write_crossmatch(xm, "t", ids, np.zeros(n + 1), np.zeros(n + 1),
                     {"hsc": {"flux": np.zeros((n + 1, 5, 4, 4), np.float32)}}, properties={"Z": z, "mass": mass})
    za = (z[:, None] + 0.3 * rng.normal(size=(n + 1, 6))).astype(np.float32)
    zb = (z[:, None] + 0.6 * rng.normal(size=(n + 1, 4))).astype(np.float32)
    order = rng.permutation(n + 1)  # side B: every object, in another order; side A: all but the last
    files = {}
    for side, ids_s, x in (("a", ids[:n], za[:n]), ("b", ids[order], zb[order])):
        files[f"emb_{side}"], files[f"knn_{side}"] = tmp_path / f"emb_{side}.h5", tmp_path / f"knn_{side}.h5"
        write_embeddings(files[f"emb_{side}"], ids_s, x, {})
        write_knn(files[f"knn_{side}"], ids_s, *knn.knn_graph(x, 40), {})
    return xm, files, (za[:n], zb[:n], {"Z": z[:n], "mass": mass[:n]})


def test_physics_pair_job_records_are_wasserstein_records_on_its_inputs(tmp_path):
    """The job pairs side B with side A by object id (as the compare jobs do), reads the properties
    by id, and writes exactly ``physics.wasserstein_record`` on the common objects' arrays and graphs."""
    xm, files, (za, zb, props) = _pair_files(tmp_path)
    settings = dict(null_draws=9, subsampling_splits=3, ci=0.9, alpha=0.1, seed=3)
    params = {"neighbourhood_wasserstein": {"k": 7}}
    got = probes.physics_pair_files(files["emb_a"], files["knn_a"], files["emb_b"], files["knn_b"], [xm],
                                    ["Z", "mass"], tests=["neighbourhood_wasserstein"], params=params, **settings)
    want = [{**physics.wasserstein_record(za, zb, props[p], knn.knn_graph(za, 40), knn.knn_graph(zb, 40), k=7,
                                          **settings), "property": p} for p in ("Z", "mass")]
    for rec in want:
        rec["n_excluded"] += 1  # the object on side B only
    assert got == want
    assert [(r["test"], r["property"], r["n"], r["n_excluded"], r["null_draws"]) for r in got] == [
        ("neighbourhood_wasserstein", "Z", 120, 1, 9), ("neighbourhood_wasserstein", "mass", 120, 1, 9)]
    assert got[0]["score"] < got[0]["null_mean"] and got[0]["p_value"] == 1 / 10  # both spaces order by Z
    assert got[0]["params"] == {"k": 7, "standardize": True}


def test_physics_pair_job_errors_name_the_file_or_key(tmp_path):
    xm, files, _ = _pair_files(tmp_path)
    args = [files["emb_a"], files["knn_a"], files["emb_b"], files["knn_b"], [xm]]
    settings = dict(tests=["neighbourhood_wasserstein"], null_draws=2, subsampling_splits=1, ci=0.9, alpha=0.1, seed=0)
    with pytest.raises(SchemaError, match=r"no per-object property \['lp_mass'\] in \[.*xm.h5'\]; they have "):
        probes.physics_pair_files(*args, ["lp_mass"], **settings)
    with pytest.raises(physics.PhysicsError, match=r"physics test 'neighbourhood_wasserstein': unknown parameters \['kk'\]"):
        probes.physics_pair_files(*args, ["Z"], params={"neighbourhood_wasserstein": {"kk": 3}}, **settings)
    # the graph of side B handed as side A's: it does not belong to side A's embedding
    with pytest.raises(SchemaError, match=r"knn_b.h5 does not belong to .*emb_a.h5 \(1 object_id differ"):
        probes.physics_pair_files(files["emb_a"], files["knn_b"], *args[2:], ["Z"], **settings)
    # two embeddings of different objects: too few in common to pair
    write_embeddings(files["emb_b"], [f"x{i}" for i in range(50)], np.zeros((50, 3), np.float32) + 1, {})
    write_knn(files["knn_b"], [f"x{i}" for i in range(50)], *knn.knn_graph(np.eye(50, 3, dtype=np.float32) + 1, 40), {})
    with pytest.raises(SchemaError, match=r"emb_a.h5 and .*emb_b.h5 share 0 objects, too few to compare at k=10"):
        probes.physics_pair_files(*args, ["Z"], **settings)
    with pytest.raises(physics.PhysicsError, match=r"physics of a pair: \['knn_purity'\] test one embedding"):
        physics.pair_records(np.eye(20), np.eye(20), {"Z": np.arange(20.0)}, tests=["knn_purity"])


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


def test_plan_tests_every_block_with_the_layer_atlas_unless_asked_not_to(breadth_config):
    """Per block: with embed.layers not final, the physics jobs' block files, and block graphs as
    wide as the widest neighbourhood test (k = metrics.k unless a test needs more)."""
    config = enable(copy.deepcopy(breadth_config), ["knn_purity"], params={"knn_purity": {"k": 30}},
                    subsampling_splits=0)
    plan = Plan(validate_config(config))
    assert plan.layers() != "final" and plan.physics_per_block()
    assert plan.physics_layers_paths == [plan.run.PHYSICS_LAYERS.format(crossmatch=xm, survey=s, model=m)
                                         for xm, s, m in plan.physics]
    assert plan.block_graph_width() == 30
    narrow = Plan(validate_config(enable(copy.deepcopy(breadth_config), ["knn_purity", "neighbour_consistency"],
                                         params={"knn_purity": {"k": 8}}, subsampling_splits=0)))
    assert narrow.config["metrics"]["k"] >= 10 and narrow.block_graph_width() is None and narrow.physics_layers_paths
    off = Plan(validate_config(enable(copy.deepcopy(breadth_config), ["knn_purity"], per_block=False,
                                      params={"knn_purity": {"k": 30}}, subsampling_splits=0)))
    assert off.physics_layers_paths == [] and off.block_graph_width() is None and off.physics
    final = copy.deepcopy(config)
    final["embed"]["layers"] = "final"
    final = Plan(validate_config(final))
    assert final.physics_layers_paths == [] and final.block_graph_width() is None


def test_physics_block_records_are_physics_records_on_each_block(tmp_path):
    """Every block of the layers file, on its cached block graph, as ``physics.physics_records``
    gives on the same arrays, with the block's name, index and depth; a too narrow block graph is
    an error naming the block."""
    from samesky.metrics.layers import knn_layers_file
    from samesky.schema import write_layers

    rng = np.random.default_rng(8)
    n = 100
    z = rng.uniform(0, 2, n)
    ids = [f"o{i}" for i in range(n)]
    xm = tmp_path / "xm.h5"
    write_crossmatch(xm, "t", ids, np.zeros(n), np.zeros(n), {"hsc": {"flux": np.zeros((n, 5, 4, 4), np.float32)}},
                     properties={"Z": z})
    blocks = [np.column_stack([z * w, rng.normal(size=(n, 4))]).astype(np.float16) for w in (0.1, 1.0, 3.0)]
    layers, block_graphs = tmp_path / "layers.h5", tmp_path / "knn_layers.h5"
    write_layers(layers, ids, blocks, ["b1", "b2", "b3"], {"block_index": [1, 3, 5], "n_blocks": 6})
    knn_layers_file(layers, block_graphs, 5, width=20)
    tests = ["ols_probe", "neighbour_consistency", "knn_purity"]
    settings = dict(null_draws=3, subsampling_splits=2, ci=0.9, alpha=0.1, seed=3)
    params = {"knn_purity": {"k": 20, "n_bins": 4}}
    got = probes.physics_block_files(layers, block_graphs, [xm], ["Z"], tests=tests, params=params, **settings)
    assert len(got) == 3 * 3
    for j, (name, index) in enumerate([("b1", 1), ("b2", 3), ("b3", 5)]):
        Z = blocks[j].astype(np.float32)
        want = physics.physics_records(Z, {"Z": z}, knn.knn_graph(Z, 20), tests=tests, params=params, **settings)
        assert [r for r in got if r["block"] == name] == [
            {**r, "block": name, "block_index": index, "depth": (index + 1) / 6} for r in want]
    with pytest.raises(physics.PhysicsError, match=r"layers.h5: block 'b1': the kNN graph holds 20 neighbours per "
                                                  r"object, fewer than k=30"):
        probes.physics_block_files(layers, block_graphs, [xm], ["Z"], tests=["knn_purity"],
                                   params={"knn_purity": {"k": 30}}, **settings)


def test_physics_depth_figure_draws_a_line_per_model(tmp_path):
    import matplotlib.pyplot as plt

    from samesky.report import write_physics_depth_figures

    recs = [{**physics_record(m, "hsc", "neighbour_consistency", "Z", 0.1 * j + (m == "vit-large"), 0.01),
             "block": f"b{j}", "block_index": j, "depth": (j + 1) / 4}
            for m in ("vit-base", "vit-large") for j in range(4)]
    (tmp_path / "b.json").write_text(json.dumps({"records": recs}))
    df = gather_physics([tmp_path / "b.json"], blocks=True)
    assert list(df["depth"]) == [0.25, 0.5, 0.75, 1.0] * 2 and list(df["block"][:2]) == ["b0", "b1"]
    drawn = []
    real = plt.Figure.savefig
    monkey = pytest.MonkeyPatch()
    monkey.setattr(plt.Figure, "savefig", lambda fig, path, **kw: (drawn.append(
        [(line.get_label(), list(line.get_xdata()), list(line.get_ydata())) for ax in fig.axes for line in ax.lines]),
        real(fig, path, **kw))[1])
    try:
        paths = write_physics_depth_figures(df, tmp_path / "figs", {"vit-base": 86e6, "vit-large": 304e6})
    finally:
        monkey.undo()
    assert [p.name for p in paths] == ["physics_depth_desi_hsc.png", "physics_depth_desi_hsc.pdf"]
    lines = drawn[0]
    assert [label for label, _, _ in lines] == ["ViT Base", "ViT Large"]
    assert lines[1][1] == [0.25, 0.5, 0.75, 1.0] and lines[1][2] == pytest.approx([1.0, 1.1, 1.2, 1.3])
    with pytest.raises(RecordError, match="b.json: record 0 is missing field.*'depth'"):
        (tmp_path / "b.json").write_text(json.dumps({"records": [physics_record("vit-base", "hsc", "knn_purity", "Z",
                                                                                 0.3, 0.1)]}))
        gather_physics([tmp_path / "b.json"], blocks=True)


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


def test_physics_pair_table_and_caption(tmp_path):
    def record(kind, survey_a, model_a, model_b, prop, score, p):
        return {"kind": kind, "crossmatch": "desi_hsc", "survey_a": survey_a, "model_a": model_a, "survey_b": "hsc",
                "model_b": model_b, **physics_record(model_a, survey_a, "neighbourhood_wasserstein", prop, score, p)}

    recs = [record("crossmodal", "desi", "specformer-base", "vit-base", "redshift", 0.6, 0.5),
            record("intramodal", "hsc", "vit-base", "vit-large", "redshift", 0.3, 0.01),
            record("crossmodal", "desi", "specformer-base", "vit-base", "mass", 0.7, 0.02)]
    (tmp_path / "a.json").write_text(json.dumps({"records": recs}))
    df = gather_physics([tmp_path / "a.json"], pairs=True)
    assert list(df.columns[:6]) == ["kind", "crossmatch", "survey_a", "model_a", "survey_b", "model_b"]
    assert "survey" not in df.columns and "model" not in df.columns
    csv, md = write_physics_table(df, tmp_path / "physics_pairs.csv", tmp_path / "physics_pairs.md", {},
                                  RunFacts(ci=0.95), pairs=True)
    assert pd.read_csv(csv)[["kind", "model_b", "property", "score"]].values.tolist() == [
        ["crossmodal", "vit-base", "redshift", 0.6], ["intramodal", "vit-large", "redshift", 0.3],
        ["crossmodal", "vit-base", "mass", 0.7]]
    caption, table = md.read_text().split("\n\n", 1)
    assert caption.startswith("**The authors' physics tests of two embeddings of the same objects")
    assert ("Tests: neighbourhood_wasserstein (pu src/pu/metrics/physics.py:559 wass_distance; lower knows more, 0 "
            "at best)") in caption
    assert "Permutation null: B's objects paired at random with A's" in caption and "p >= 0.048 at K = 20" in caption
    assert "N = 150 objects per pair" in caption
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows == ["| Test | Property | Crossmatch | Kind | A | B | Score |",
                    "| neighbourhood_wasserstein | mass | desi_hsc | crossmodal | Specformer Base (DESI) | ViT Base (HSC) | "
                    "0.700 [0.600, 0.800], p = 0.02 |",
                    "| neighbourhood_wasserstein | redshift | desi_hsc | intramodal | ViT Base (HSC) | ViT Large (HSC) | "
                    "0.300 [0.200, 0.400], p = 0.01 |",
                    "| neighbourhood_wasserstein | redshift | desi_hsc | crossmodal | Specformer Base (DESI) | ViT Base "
                    "(HSC) | 0.600 [0.500, 0.700], p = 0.5 |"]
    empty = write_physics_table(gather_physics([], pairs=True), tmp_path / "e.csv", tmp_path / "e.md", {}, pairs=True)
    assert "No physics tests of compared pairs ran (config probes.physics.tests has no neighbourhood_wasserstein)" in \
        empty[1].read_text()
    del recs[0]["model_b"]
    (tmp_path / "b.json").write_text(json.dumps({"records": recs}))
    with pytest.raises(ValueError, match=r"b.json: record 0 is missing field\(s\) 'model_b'"):
        gather_physics([tmp_path / "b.json"], pairs=True)


@pytest.mark.slow
def test_physics_pair_rule_writes_wasserstein_records(tmp_path, demo_config):
    """Rule physics_pair through Snakemake on an intramodal pair's files (the graphs cached beside
    them): its records are the comparison's fields and ``physics.wasserstein_record`` on the same
    arrays and graphs, per property."""
    from test_workflow import job_counts, snakemake, write_config

    from samesky.schema import read_knn

    xm, files, (za, zb, props) = _pair_files(tmp_path)
    where = {"a": "results/demo/{}/desi_hsc/hsc/vit-base.h5", "b": "results/demo/{}/desi_hsc/hsc/vit-large.h5"}
    for side, pattern in where.items():
        for kind, folder in (("emb", "embeddings"), ("knn", "knn")):
            target = tmp_path / pattern.format(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            files[f"{kind}_{side}"].rename(target)
    demo_config["crossmatches"]["desi_hsc"]["source"] = {"path": str(xm)}
    demo_config["probes"].update(properties={"desi_hsc": ["Z", "mass"]}, categorical=[])
    demo_config["probes"]["physics"].update(tests=["neighbourhood_wasserstein"], null_draws=9, subsampling_splits=3)
    cfg = write_config(tmp_path / "c.yaml", demo_config)
    target = "results/demo/physics_pairs/desi_hsc/hsc/vit-base/hsc/vit-large.json"
    proc = snakemake(tmp_path, target, "--cores", "1", "--configfile", cfg, "--allowed-rules", "physics_pair",
                     timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert job_counts(proc.stdout + proc.stderr) == {"physics_pair": 1}
    got = json.loads((tmp_path / target).read_text())["records"]
    graphs = [read_knn(tmp_path / where[side].format("knn"))[1:3] for side in "ab"]
    rows_b = [int(i[1:]) for i in read_knn(tmp_path / where["b"].format("knn"))[0]]  # side B: by id, in A's order
    order = np.argsort(rows_b)[:len(za)]
    graph_b = knn.restrict_graph(*graphs[1], order, zb, graphs[1][0].shape[1])[:2]
    pair = {"kind": "intramodal", "crossmatch": "desi_hsc", "survey_a": "hsc", "model_a": "vit-base", "survey_b": "hsc",
            "model_b": "vit-large"}
    filled = fill_defaults(demo_config)["probes"]
    settings = {"ci": filled["ci"], "seed": filled["seed"], "alpha": 0.05}
    want = [{**pair, **physics.wasserstein_record(za, zb, props[p], graphs[0], graph_b, null_draws=9,
                                                  subsampling_splits=3, **settings), "property": p}
            for p in ("Z", "mass")]
    for rec in want:
        rec["n_excluded"] += 1  # the object on side B only
    assert got == json.loads(json.dumps(want))
    bench = pd.read_csv(tmp_path / "results/demo/benchmarks/physics_pair/desi_hsc/hsc/vit-base/hsc/vit-large.tsv",
                        sep="\t")
    print(f"physics_pair job: {bench.loc[0, 'cpu_time']:.1f} CPU-s, {bench.loc[0, 's']:.1f} s wall")
