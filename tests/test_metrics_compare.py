"""compare_files and knn_file: the metric stage's file-level entry points."""
import json
import logging

import h5py
import numpy as np
import pytest
import torch
from test_metrics import correlated

from samesky import schema
from samesky.metrics.compare import compare_files
from samesky.metrics.knn import knn_file
from samesky.report.records import FIELDS, read_records

N, K = 400, 10
ALL = ["mknn", "cka_linear", "cka_unbiased", "cknna", "mutual_info"]
SELF = {"kind": "self", "crossmatch": "desi_hsc", "survey_a": "hsc", "model_a": "vit-base",
        "survey_b": "hsc", "model_b": "vit-base"}
CROSS = {"kind": "crossmodal", "crossmatch": "legacysurvey_hsc", "survey_a": "legacysurvey",
         "model_a": "vit-base", "survey_b": "hsc", "model_b": "vit-base"}
OPTS = dict(k=K, null_draws=40, subsampling_splits=30, ci=0.9, seed=0, feature_space_draws=5)


def write_pair(tmp_path, name, ids, Z, k=K):
    emb, knn = tmp_path / f"{name}.h5", tmp_path / f"{name}.knn.h5"
    schema.write_embeddings(emb, ids, Z, {"model": name})
    knn_file(emb, knn, k)
    return emb, knn


@pytest.fixture
def files(tmp_path):
    Za, Zb = correlated(N, 12, 9)
    ids = np.array([f"obj{i:04d}" for i in range(N)])
    return ids, Za, Zb, write_pair(tmp_path, "a", ids, Za), write_pair(tmp_path, "b", ids, Zb)


def test_records_have_the_documented_fields_and_values(files, tmp_path):
    ids, Za, Zb, (ea, ka), (eb, kb) = files
    recs = compare_files(ea, eb, ka, kb, comparison=CROSS, metrics=ALL, **OPTS)
    assert [r["metric"] for r in recs] == ALL
    for r in recs:
        assert list(r) == [*FIELDS, "tau", "calibrated", "alpha", "null_method", "interval_method", "calibrated_low",
                           "calibrated_high"]
        assert r["calibrated_low"] <= r["calibrated"] <= r["calibrated_high"]  # the interval through the same map
        assert r["interval_method"] == "subsampling"  # every metric: the bootstrap over-covered CKA
        assert {f: r[f] for f in CROSS} == CROSS and r["n"] == N
        assert r["k"] == (K if r["metric"] in ("mknn", "cknna") else None)
        assert r["ci_low"] <= r["score"] <= r["ci_high"] or r["metric"] == "mutual_info"
        if r["null_method"] == "closed_form":  # CKA: exact null moments, Pearson III tail
            assert r["p_value"] < 1e-6
        else:
            assert r["p_value"] == pytest.approx(1 / 41) and r["null_method"] == "permutation"
        assert r["score"] > r["null_mean"] + 3 * r["null_std"]
        assert r["alpha"] == 0.05 and r["tau"] < r["score"] and 0 < r["calibrated"] < 1
    draws = {r["metric"]: (r["null_draws"], r["subsampling_splits"], r["null_method"]) for r in recs}
    assert draws == {"mknn": (40, 30, "permutation"), "cka_linear": (0, 5, "closed_form"),
                     "cka_unbiased": (0, 5, "closed_form"), "cknna": (40, 30, "permutation"),
                     "mutual_info": (40, 5, "permutation")}  # its subsamples recompute moments: capped too
    out = tmp_path / "metrics.json"
    out.write_text(json.dumps({"records": recs}))
    assert len(read_records(out)) == len(ALL)  # the report stage accepts them


def test_self_pair_scores_one_and_its_null_is_chance(files):
    _, _, _, (ea, ka), _ = files
    recs = compare_files(ea, ea, ka, ka, comparison=SELF, metrics=["mknn", "cka_linear", "cknna"],
                         **{**OPTS, "null_draws": 200})
    scores = {r["metric"]: r for r in recs}
    assert scores["mknn"]["score"] == 1.0
    assert scores["cka_linear"]["score"] == pytest.approx(1.0)
    # platonic-rep's release divides by sqrt(kk ll) + 1e-6, so a self pair scores just below 1
    assert 1 - 1e-3 < scores["cknna"]["score"] < 1.0
    null = scores["mknn"]
    assert null["null_mean"] == pytest.approx(K / (N - 1), abs=4 * null["null_std"] / np.sqrt(200))
    assert null["ci_low"] == null["ci_high"] == 1.0


def test_shuffled_side_b_is_realigned_by_id(files, tmp_path):
    ids, Za, Zb, (ea, ka), (eb, kb) = files
    order = np.random.default_rng(9).permutation(N)
    eb2, kb2 = write_pair(tmp_path, "b_shuffled", ids[order], Zb[order])
    plain = compare_files(ea, eb, ka, kb, comparison=CROSS, metrics=ALL, **OPTS)
    shuffled = compare_files(ea, eb2, ka, kb2, comparison=CROSS, metrics=ALL, **OPTS)
    for p, s in zip(plain, shuffled):
        exact = p["metric"] == "mknn"
        for field in ("score", "null_mean", "ci_low", "ci_high", "p_value"):
            assert s[field] == (p[field] if exact else pytest.approx(p[field], rel=1e-6, abs=1e-9)), (p["metric"], field)


def test_objects_on_one_side_only_are_left_out_exactly(files, tmp_path, caplog):
    """Scores on the common objects equal scores of files holding only those objects."""
    ids, Za, Zb, (ea, ka), _ = files
    keep = np.ones(len(ids), bool)
    keep[[3, 17, 250]] = False
    order = np.random.default_rng(2).permutation(len(ids))
    eb, kb = write_pair(tmp_path, "partial", ids[keep], Zb[keep])  # B lost 3 objects
    ec, kc = write_pair(tmp_path, "extra", np.r_[ids, ["stranger"]][order.tolist() + [len(ids)]],
                        np.r_[Zb, Zb[:1]][order.tolist() + [len(ids)]])  # B shuffled, one object A lacks
    ea_sub, ka_sub = write_pair(tmp_path, "a_sub", ids[keep], Za[keep])
    metrics = ["mknn", "cknna", "cka_linear"]
    with caplog.at_level(logging.WARNING, logger="samesky"):
        got = compare_files(ea, eb, ka, kb, comparison=CROSS, metrics=metrics, **OPTS)
    assert f"{ea}" in caplog.text and f"{eb}" in caplog.text and "3 only in the first" in caplog.text
    want = compare_files(ea_sub, eb, ka_sub, kb, comparison=CROSS, metrics=metrics, **OPTS)
    for g, w in zip(got, want):
        assert g["n"] == w["n"] == keep.sum() and g["n_excluded"] == 3 and w["n_excluded"] == 0
        for field in ("score", "null_mean", "p_value", "ci_low", "ci_high"):
            assert g[field] == pytest.approx(w[field], rel=1e-6, abs=1e-9), (g["metric"], field)
    got = compare_files(ea, ec, ka, kc, comparison=CROSS, metrics=metrics, **OPTS)
    want = compare_files(ea, write_pair(tmp_path, "b_whole", ids, Zb)[0], ka, None, comparison=CROSS,
                         metrics=metrics, **OPTS)
    assert [g["n_excluded"] for g in got] == [1] * 3
    assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], rel=1e-6)


def test_refuses_pairs_with_too_few_common_objects_and_duplicated_ids(files, tmp_path):
    ids, Za, Zb, (ea, ka), _ = files
    eb, kb = write_pair(tmp_path, "stranger", np.array([f"x{i}" for i in range(len(ids))]), Zb)
    with pytest.raises(schema.SchemaError, match=r"a\.h5 and .*stranger\.h5 share 0 objects, too few to compare "
                                                 r"at k=\d+: 400 object_id only in .*a\.h5 \(e\.g\. \['obj0000'"):
        compare_files(ea, eb, ka, kb, comparison=CROSS, metrics=["mknn"], **OPTS)
    dup = tmp_path / "dup.h5"
    with h5py.File(dup, "w") as f:  # written by hand: write_embeddings itself would refuse
        f.create_dataset("object_id", data=np.r_[ids[:-1], ids[:1]].astype(object), dtype=schema.STR)
        f.create_dataset("embedding", data=Zb)
    with pytest.raises(schema.SchemaError, match=r"dup\.h5: object_id has 1 duplicates, e\.g\. \['obj0000'\]"):
        compare_files(ea, dup, ka, ka, comparison=CROSS, metrics=["mknn"], **OPTS)


def test_refuses_non_finite_embeddings(files, tmp_path):
    ids, Za, Zb, (ea, ka), (eb, kb) = files
    bad = tmp_path / "nan.h5"
    Zbad = Zb.copy()
    Zbad[5, 2] = np.nan
    with h5py.File(bad, "w") as f:
        f.create_dataset("object_id", data=ids.astype(object), dtype=schema.STR)
        f.create_dataset("embedding", data=Zbad)
    with pytest.raises(schema.SchemaError, match=r"nan\.h5: 1 rows contain NaN or inf, e\.g\. object_id \['obj0005'\]"):
        compare_files(ea, bad, ka, kb, comparison=CROSS, metrics=["cka_linear"], **OPTS)


def test_refuses_knn_files_of_other_embeddings_or_too_small_k(files, tmp_path):
    ids, Za, Zb, (ea, ka), (eb, kb) = files
    eb2, _ = write_pair(tmp_path, "b2", ids[::-1], Zb[::-1])
    with pytest.raises(schema.SchemaError, match=r"a\.knn\.h5 does not belong to .*b2\.h5 \(same objects in a different order\)"):
        compare_files(ea, eb2, ka, ka, comparison=CROSS, metrics=["mknn"], **OPTS)
    eb3, _ = write_pair(tmp_path, "b3", np.char.add(ids, "x"), Zb)
    with pytest.raises(schema.SchemaError, match=r"b\.knn\.h5 does not belong to .*b3\.h5 \(800 object_id differ"):
        compare_files(eb3, eb3, kb, kb, comparison=SELF, metrics=["mknn"], **OPTS)
    small = tmp_path / "small.knn.h5"
    knn_file(eb, small, 5)
    with pytest.raises(schema.SchemaError, match=r"small\.knn\.h5: graph has k_max=5 < requested k=10"):
        compare_files(ea, eb, ka, small, comparison=CROSS, metrics=["cknna"], **OPTS)


def test_knn_file_writes_graph_with_provenance_and_refuses_zero_rows(files, tmp_path):
    ids, Za, _, (ea, ka), _ = files
    got_ids, idx, sim, prov = schema.read_knn(ka)
    assert np.array_equal(got_ids, ids) and idx.shape == (N, K)
    assert prov["k"] == K and prov["source"] == str(ea) and prov["torch"] == torch.__version__
    assert prov["device"] in ("cpu", "cuda", "cuda:0") and prov["precision"] == "fp32"
    knn_file(ea, tmp_path / "screened.knn.h5", K, precision="bf16-screened")  # the same graph, bit for bit
    _, idx_s, sim_s, prov_s = schema.read_knn(tmp_path / "screened.knn.h5")
    assert np.array_equal(idx_s, idx) and np.array_equal(sim_s, sim) and prov_s["precision"] == "bf16-screened"
    Z0 = Za.copy()
    Z0[33] = 0
    emb = tmp_path / "zero.h5"
    schema.write_embeddings(emb, ids, Z0, {})
    with pytest.raises(ValueError, match=r"zero\.h5: 1 embeddings have zero norm .* object_id \['obj0033'\]"):
        knn_file(emb, tmp_path / "zero.knn.h5", K)
    assert not (tmp_path / "zero.knn.h5").exists()


def test_cka_null_closed_form_uses_cached_invariants_or_draws(files, tmp_path):
    ids, Za, Zb, (ea, ka), (eb, kb) = files
    ka2, kb2 = tmp_path / "a.inv.knn.h5", tmp_path / "b.inv.knn.h5"
    knn_file(ea, ka2, K, invariants=True)
    knn_file(eb, kb2, K, invariants=True)
    cached = schema.read_knn(ka2)[3]["gram_invariants"]
    from samesky.metrics.rv_null import gram_invariants

    fresh = gram_invariants(Za)
    for kind in ("linear", "unbiased"):  # u: the kNN job sums it from the graph's tiles
        for field, value in cached[kind].items():
            assert value == pytest.approx(getattr(fresh[kind], field), rel=1e-4 if field == "u" else 1e-9,
                                          abs=1e-6), (kind, field)
    metrics = ["cka_linear", "cka_unbiased"]
    with_cache = compare_files(ea, eb, ka2, kb2, comparison=CROSS, metrics=metrics, **OPTS)
    computed = compare_files(ea, eb, ka, kb, comparison=CROSS, metrics=metrics, **OPTS)
    for c, w in zip(with_cache, computed):
        for field in ("null_mean", "null_std", "p_value", "tau", "calibrated"):
            assert c[field] == pytest.approx(w[field], rel=1e-9, abs=1e-300), field
    drawn = compare_files(ea, eb, ka, kb, comparison=CROSS, metrics=metrics, cka_null="permutation", **OPTS)
    assert [(r["null_draws"], r["null_method"]) for r in drawn] == [(5, "permutation")] * 2
    for d, c in zip(drawn, computed):  # 5 draws: the drawn null's mean is near the exact one
        assert d["null_mean"] == pytest.approx(c["null_mean"], abs=4 * c["null_std"])
    with pytest.raises(ValueError, match="cka_null must be"):
        compare_files(ea, eb, ka, kb, comparison=CROSS, metrics=metrics, cka_null="exact", **OPTS)


def _gaussian_mi(X, Y, r):
    """Gaussian MI of the top-r principal component scores of each side, by the log-det formula."""
    def top(Z):
        Zc = Z - Z.mean(0)
        _, vecs = np.linalg.eigh(Zc.T @ Zc)
        return Zc @ vecs[:, ::-1][:, :r]

    joint = np.cov(np.hstack([top(X), top(Y)]), rowvar=False)
    logdet = [np.linalg.slogdet(c)[1] for c in (joint[:r, :r], joint[r:, r:], joint)]
    return 0.5 * (logdet[0] + logdet[1] - logdet[2])


def test_metric_params_reach_their_metric_and_only_it(files):
    """config metrics.params -> Plan.metric_params()['params'] -> compare_files(params=...)."""
    ids, Za, Zb, (ea, ka), (eb, kb) = files
    metrics = ["mknn", "mutual_info"]
    opts = {**OPTS, "null_draws": 5, "subsampling_splits": 0}
    got = {r["metric"]: r for r in compare_files(ea, eb, ka, kb, comparison=CROSS, metrics=metrics,
                                                 params={"mutual_info": {"components": 3}}, **opts)}
    other = {r["metric"]: r for r in compare_files(ea, eb, ka, kb, comparison=CROSS, metrics=metrics,
                                                   params={"mutual_info": {"components": 5}}, **opts)}
    z_a, z_b = Za.astype(np.float64), Zb.astype(np.float64)
    assert got["mutual_info"]["score"] == pytest.approx(_gaussian_mi(z_a, z_b, 3), rel=1e-5)
    assert other["mutual_info"]["score"] == pytest.approx(_gaussian_mi(z_a, z_b, 5), rel=1e-5)
    assert got["mknn"] == other["mknn"]  # the other metrics are untouched
    with pytest.raises(KeyError, match=r"parameters given for metric\(s\) \['cka_linear'\], which are not among"):
        compare_files(ea, eb, ka, kb, comparison=CROSS, metrics=metrics, params={"cka_linear": {}}, **opts)
    with pytest.raises(TypeError, match=r"metric 'mutual_info' takes parameters \['components'\], not \['dims'\]"):
        compare_files(ea, eb, ka, kb, comparison=CROSS, metrics=metrics, params={"mutual_info": {"dims": 3}}, **opts)
