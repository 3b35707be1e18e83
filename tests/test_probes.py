"""Physics probes: scores against analytic values and scikit-learn's own cross-validation, no
leakage from held-out rows, permutation nulls at chance, per-object properties on disk, reports."""
import json

import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import balanced_accuracy_score, r2_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.preprocessing import Normalizer, StandardScaler

from samesky import probes
from samesky.config import ConfigError, validate_config
from samesky.metrics import stats
from samesky.plan import Plan
from samesky.report import gather_probes, write_probe_figures, write_probe_tables
from samesky.report.probes import probe_tables
from samesky.schema import SchemaError, read_properties, write_crossmatch, write_embeddings

SETTINGS = dict(folds=5, pca_components=64, knn_k=10, seed=3)


def linear_data(n, d, r2_true, seed):
    """x ~ N(0, I_d); y = x.w + noise with var(x.w) / var(y) = r2_true: the population R-squared."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    w /= np.linalg.norm(w)  # var(x.w) = 1
    y = x @ w + rng.normal(scale=np.sqrt((1 - r2_true) / r2_true), size=n)
    return x, y


def records(x, y, kind, **kw):
    return {r["probe"]: r for r in probes.probe(x, y, kind, **{**SETTINGS, **kw})}


@pytest.mark.parametrize("r2_true", [0.2, 0.5, 0.8])
def test_linear_probe_recovers_the_analytic_r2(r2_true):
    x, y = linear_data(3000, 20, r2_true, seed=int(r2_true * 10))
    rec = records(x, y, probes.CONTINUOUS, null_draws=20, bootstrap_draws=500)["linear"]
    assert rec["ci_low"] <= r2_true <= rec["ci_high"]
    assert abs(rec["score"] - r2_true) < 0.04
    assert rec["pca_components"] == 20 and rec["metric"] == "r2" and rec["n"] == 3000
    assert rec["p_value"] == pytest.approx(1 / 21)  # no shuffled target comes close


def test_scores_equal_scikit_learns_cross_validated_predictions():
    """The pooled out-of-fold score is r2_score / balanced_accuracy_score of cross_val_predict
    on the same folds with the same pipelines: the fold mechanics have an outside oracle."""
    x, y = linear_data(400, 30, 0.6, seed=1)
    cv = KFold(5, shuffle=True, random_state=SETTINGS["seed"])
    rec = records(x, y, probes.CONTINUOUS, null_draws=0, bootstrap_draws=0, pca_components=8)
    lin = probes.linear_probe(probes.CONTINUOUS, 8, SETTINGS["seed"])
    assert rec["linear"]["score"] == pytest.approx(r2_score(y, cross_val_predict(lin, x, y, cv=cv)), abs=1e-12)
    knn = probes.knn_probe(probes.CONTINUOUS, 10)
    assert rec["knn"]["score"] == pytest.approx(r2_score(y, cross_val_predict(knn, x, y, cv=cv)), abs=1e-12)
    assert rec["linear"]["ci_low"] is None and rec["linear"]["null_mean"] is None

    labels = np.digitize(y, np.quantile(y, [0.5, 0.8]))  # three unbalanced classes
    cv = StratifiedKFold(5, shuffle=True, random_state=SETTINGS["seed"])
    rec = records(x, labels, probes.CATEGORICAL, null_draws=0, bootstrap_draws=0, pca_components=8)
    for name, pipe in (("linear", probes.linear_probe(probes.CATEGORICAL, 8, SETTINGS["seed"])),
                       ("knn", probes.knn_probe(probes.CATEGORICAL, 10))):
        expected = balanced_accuracy_score(labels, cross_val_predict(pipe, x, labels, cv=cv))
        assert rec[name]["score"] == pytest.approx(expected, abs=1e-12)
        assert rec[name]["metric"] == "balanced_accuracy" and rec[name]["chance"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("kind", [probes.CONTINUOUS, probes.CATEGORICAL])
def test_null_draws_equal_refitting_the_whole_pipeline(kind):
    """The null reuses each fold's fitted transforms and neighbour lists: exactly what refitting
    every pipeline on the shuffled targets gives."""
    x, y = linear_data(150, 12, 0.5, seed=7)
    if kind == probes.CATEGORICAL:
        y = (y > np.median(y)).astype(np.int64)
    shuffled = probes.shuffled_targets(y, 3, seed=5)
    first = next(stats.permutations(len(y), 1, 5))
    assert np.array_equal(shuffled[:, 0], y[first])  # the metrics' permutation stream
    _, null_pred, _ = probes.out_of_fold(x, y, kind, shuffled, folds=5, n_components=6, knn_k=7, seed=0)
    splits = probes.folds_of(y, kind, 5, 0)
    for j in range(3):
        for name, pipe in (("linear", probes.linear_probe(kind, 6, 0)), ("knn", probes.knn_probe(kind, 7))):
            refit = cross_val_predict(pipe, x, shuffled[:, j], cv=splits)
            np.testing.assert_allclose(null_pred[name][:, j], refit, rtol=1e-9, atol=1e-9)


def test_shuffled_targets_score_about_zero_or_below():
    """No information: R-squared near 0 (ridge) or below (kNN predicts noisy local means,
    expected -1/k), balanced accuracy at chance, and the nulls agree with the observed scores."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(600, 40))
    y = rng.normal(size=600)
    rec = records(x, y, probes.CONTINUOUS, null_draws=30, bootstrap_draws=200)
    assert -0.05 < rec["linear"]["score"] < 0.02 and rec["linear"]["ci_low"] < 0
    assert -0.25 < rec["knn"]["score"] < 0.0
    assert abs(rec["knn"]["null_mean"] + 1 / SETTINGS["knn_k"]) < 0.05
    for r in rec.values():
        assert r["p_value"] > 0.05
        assert abs(r["score"] - r["null_mean"]) < 4 * r["null_std"]
    classes = rng.integers(0, 3, 600)
    rec = records(x, classes, probes.CATEGORICAL, null_draws=6, bootstrap_draws=200)
    for r in rec.values():
        assert abs(r["score"] - 1 / 3) < 0.06 and abs(r["null_mean"] - 1 / 3) < 0.03
        assert abs(r["score"] - r["null_mean"]) < 4 * r["null_std"]


def spiked(seed=0, n=100, d=2000, spike=0.5):
    """d >> n, y carried by one weak direction: in-sample PCA scores are inflated relative to
    out-of-sample ones, so a PCA fitted on all rows (test rows included) inflates R-squared."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    y = rng.normal(size=n)
    return rng.normal(size=(n, d)) + spike * d ** 0.25 * np.outer(y, u), y


def test_transforms_fitted_on_all_rows_would_inflate_r2_and_are_not():
    x, y = spiked()
    rec = records(x, y, probes.CONTINUOUS, null_draws=0, bootstrap_draws=0, pca_components=5)["linear"]
    pipe = probes.linear_probe(probes.CONTINUOUS, 5, SETTINGS["seed"])
    cv = probes.folds_of(y, probes.CONTINUOUS, 5, SETTINGS["seed"])
    leaky = r2_score(y, cross_val_predict(pipe[-1], pipe[:-1].fit_transform(x), y, cv=cv))
    honest = r2_score(y, cross_val_predict(pipe, x, y, cv=cv))
    assert leaky > honest + 0.2  # the construction: leakage inflates R-squared a lot
    assert rec["score"] == pytest.approx(honest, abs=1e-12)


def test_every_transform_is_fitted_on_training_rows_only(monkeypatch):
    """Spy on every fitted transform: each fit sees exactly one fold's training rows."""
    x, y = linear_data(120, 10, 0.5, seed=2)
    row_of = {row.tobytes(): i for i, row in enumerate(x)}
    fitted = []

    def spy(cls, method):
        original = getattr(cls, method)

        def wrapper(self, X, *args, **kwargs):
            fitted.append((cls.__name__, frozenset(row_of.get(np.asarray(r).tobytes(), -1) for r in X), len(X)))
            return original(self, X, *args, **kwargs)
        monkeypatch.setattr(cls, method, wrapper)

    for cls in (StandardScaler, Normalizer):
        spy(cls, "fit")
    spy(PCA, "fit_transform")
    spy(PCA, "fit")
    records(x, y, probes.CONTINUOUS, null_draws=4, bootstrap_draws=0, folds=4)
    trains = {frozenset(train.tolist()) for train, _ in probes.folds_of(y, probes.CONTINUOUS, 4, SETTINGS["seed"])}
    assert {name for name, _, _ in fitted} == {"StandardScaler", "Normalizer", "PCA"}
    for name, rows, n_rows in fitted:
        assert n_rows == 90  # 3 of 4 folds of 120
        if name != "PCA":  # PCA sees standardised rows: only its row count can be matched
            assert rows in trains
    assert sum(name == "StandardScaler" for name, _, _ in fitted) == 4  # once per fold, nulls reuse it


def xm_with(tmp_path, n=200, properties=None, truth=None, name="xm.h5"):
    path = tmp_path / name
    flux = np.zeros((n, 5, 4, 4), np.float32)
    write_crossmatch(path, "t", [f"o{i}" for i in range(n)], np.zeros(n), np.zeros(n), {"hsc": {"flux": flux}},
                     truth=truth, properties=properties)
    return path


def test_properties_and_truth_read_through_one_reader(tmp_path):
    z = np.linspace(0, 1, 6)
    path = xm_with(tmp_path, 6, properties={"Z": z, "SPECTYPE": np.array(["GALAXY", "QSO"] * 3)},
                   truth={"redshift": z[::-1]})
    ids, cols = read_properties(path, ["Z", "redshift", "SPECTYPE"])
    assert ids.tolist() == [f"o{i}" for i in range(6)]
    assert np.array_equal(cols["Z"], z) and np.array_equal(cols["redshift"], z[::-1])
    assert cols["SPECTYPE"].tolist() == ["GALAXY", "QSO"] * 3
    assert set(read_properties(path)[1]) == {"Z", "SPECTYPE", "redshift"}
    with pytest.raises(SchemaError, match=r"no per-object property \['mass'\].*it has \['SPECTYPE', 'Z', 'redshift'\]"):
        read_properties(path, ["Z", "mass"])
    clash = xm_with(tmp_path, 6, properties={"Z": z}, truth={"Z": z}, name="clash.h5")
    with pytest.raises(SchemaError, match=r"\['Z'\] are in both"):
        read_properties(clash, ["Z"])
    with pytest.raises(SchemaError, match=r"'properties/Z' has shape \(5,\), expected \(6,\)"):
        xm_with(tmp_path, 6, properties={"Z": z[:5]}, name="short.h5")


def truth_file(path, ids, **columns):
    """A simulation's truth file: object ids (any order, any superset) and /truth columns."""
    with h5py.File(path, "w") as f:
        f.create_dataset("object_id", data=np.asarray(ids, dtype=object), dtype=h5py.string_dtype())
        for name, values in columns.items():
            f.create_dataset(f"truth/{name}", data=values)
    return path


def test_probe_files_joins_sources_by_object_id_and_excludes_missing_values(tmp_path):
    x, y = linear_data(200, 8, 0.7, seed=4)
    quiescent = (y > 0.3).astype(np.int8)
    z = y.copy()
    z[:7] = np.nan  # missing catalogue values
    xm = xm_with(tmp_path, properties={"Z": z})
    flip = np.arange(210)[::-1]  # truth rows in another order, with 10 objects the crossmatch lost
    truth = truth_file(tmp_path / "xm.truth.h5", [f"o{i}" for i in flip],
                       quiescent=np.concatenate([quiescent, np.zeros(10, np.int8)])[flip])
    order = np.random.default_rng(0).permutation(200)[:180]  # another order; 20 dropped upstream
    emb = tmp_path / "emb.h5"
    write_embeddings(emb, [f"o{i}" for i in order], x[order], {})
    recs = probes.probe_files(emb, [xm, truth], ["Z", "quiescent"], categorical=["quiescent"], null_draws=5,
                              bootstrap_draws=50, **SETTINGS)
    by = {(r["property"], r["probe"]): r for r in recs}
    kept = order[~np.isnan(z[order])]
    assert by["Z", "linear"]["n"] == len(kept) and by["Z", "linear"]["n_excluded"] == np.isnan(z[order]).sum()
    direct = probes.probe(x[kept].astype(np.float32), y[kept], probes.CONTINUOUS, null_draws=5, bootstrap_draws=50,
                          **SETTINGS)
    assert by["Z", "linear"]["score"] == direct[0]["score"] > 0.5
    direct = probes.probe(x[order].astype(np.float32), quiescent[order].astype(np.int64), probes.CATEGORICAL,
                          null_draws=5, bootstrap_draws=50, **SETTINGS)
    assert by["quiescent", "linear"]["score"] == direct[0]["score"] > 0.8
    assert by["quiescent", "linear"]["kind"] == "categorical" and by["quiescent", "linear"]["classes"] == ["0", "1"]
    with pytest.raises(SchemaError, match=r"no per-object property \['log_mass'\].*they have"):
        probes.probe_files(emb, [xm, truth], ["log_mass"], **SETTINGS)
    with pytest.raises(SchemaError, match=r"several files \(ambiguous\): \{'Z'"):
        probes.probe_files(emb, [xm, truth_file(tmp_path / "z.h5", [f"o{i}" for i in range(200)], Z=z)], ["Z"],
                           **SETTINGS)
    write_embeddings(emb, ["o1", "stranger"], x[:2], {})
    with pytest.raises(SchemaError, match=r"xm.h5: 1 object ids of the embedding have no row, e.g. \['stranger'\]"):
        probes.probe_files(emb, [xm], ["Z"], **SETTINGS)


def test_bad_targets_are_refused_naming_the_property(tmp_path):
    with pytest.raises(probes.ProbeError, match="SPECTYPE.*list the property under probes.categorical"):
        probes.targets(np.array(["GALAXY", "QSO"]), probes.CONTINUOUS, "property 'SPECTYPE'")
    x = np.zeros((40, 3))
    with pytest.raises(probes.ProbeError, match=r"class counts \[38, 2\]"):
        probes.probe(x, np.array([0] * 38 + [1] * 2), probes.CATEGORICAL, where="property 'q'")
    with pytest.raises(probes.ProbeError, match="12 objects are too few"):
        probes.probe(np.zeros((12, 3)), np.zeros(12), probes.CONTINUOUS)
    x = np.random.default_rng(0).normal(size=(40, 3))
    x[3, 1] = np.nan  # scikit-learn's own checks are off inside the probe: ours must catch it
    with pytest.raises(probes.ProbeError, match="property 'z': features or targets contain NaN or inf"):
        probes.probe(x, np.arange(40.0), probes.CONTINUOUS, where="property 'z'")
    emb = tmp_path / "emb.h5"
    write_embeddings(emb, [f"o{i}" for i in range(40)], np.nan_to_num(x).astype(np.float32), {})
    with h5py.File(emb, "r+") as f:  # our writer refuses NaN: a file from elsewhere
        f["embedding"][3, 1] = np.nan
    with pytest.raises(SchemaError, match=r"emb.h5: 1 rows contain NaN or inf, e.g. object_id \['o3'\]"):
        probes.probe_files(emb, [], ["z"], **SETTINGS)


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.update(properties={"nope_hsc": ["Z"]}), "probes.properties.nope_hsc: not a configured crossmatch"),
    (lambda p: p.update(categorical=["SPECTYPE"]), "probes.categorical[0]: 'SPECTYPE' is not among the probed"),
    (lambda p: p.update(folds=1), "probes.folds"),
    (lambda p: p.update(pca_components=0), "probes.pca_components"),
    (lambda p: p.update(properties="Z"), "probes.properties"),
    (lambda p: p.update(properties=["Z/1"]), "probes.properties"),
    (lambda p: p.update(knn=3), "probes"),
])
def test_probe_config_errors_name_the_key(paper_config, edit, message):
    edit(paper_config["probes"])
    with pytest.raises(ConfigError) as err:
        validate_config(paper_config)
    assert message in str(err.value)


def test_plan_probes_every_embedding_of_the_probed_crossmatches(paper_config, breadth_config):
    paper = Plan(validate_config(paper_config))
    assert sorted(paper.probes) == sorted(job for job in paper.embeddings if job[0] == "desi_hsc")
    assert len(paper.probes) == 17  # 16 image models on HSC + the spectrum model on DESI
    assert paper.probe_params("desi_hsc")["properties"] == ["Z"]
    assert paper.probe_params("jwst_hsc")["properties"] == []
    assert paper.property_files("desi_hsc") == ["resources/crossmatches/desi_hsc.h5"]
    demo = Plan(validate_config(breadth_config))
    # the simulated desi_hsc has its own file: a demo run never hands it to the paper's run
    assert demo.property_files("desi_hsc") == ["resources/simulated/desi_hsc.h5", "resources/simulated/desi_hsc.truth.h5"]
    assert sorted(demo.probes) == sorted(demo.embeddings)
    params = demo.probe_params("jwst_hsc")
    assert params["categorical"] == ["quiescent"] and "quiescent" in params["properties"]
    import inspect
    assert set(params) <= set(inspect.signature(probes.probe_files).parameters) | set(
        inspect.signature(probes.probe).parameters)
    breadth_config.pop("probes")
    assert Plan(validate_config(breadth_config)).probes == []  # nothing probed by default


def probe_record(model, survey, crossmatch, prop, name, score):
    return {"crossmatch": crossmatch, "survey": survey, "model": model, "property": prop, "kind": "continuous",
            "probe": name, "metric": "r2", "score": score, "ci_low": score - 0.05, "ci_high": score + 0.05,
            "null_mean": 0.0, "null_std": 0.01, "p_value": 0.01, "null_draws": 100, "bootstrap_draws": 1000,
            "n": 300, "n_excluded": 0, "folds": 5, "chance": 0.0}


def test_probe_tables_rows_models_by_size_columns_surveys(tmp_path):
    params = {"vit-base": 86_000_000, "vit-large": 304_000_000, "astropt-small": 22_000_000,
              "specformer-base": 43_000_000}
    recs = [probe_record(m, s, "desi_hsc", "Z", name, score)
            for name in ("linear", "knn")
            for m, s, score in (("vit-large", "hsc", 0.61), ("vit-base", "hsc", 0.52), ("astropt-small", "hsc", 0.4),
                                ("specformer-base", "desi", 0.9))]
    (tmp_path / "a.json").write_text(json.dumps({"records": recs}))
    df = gather_probes([tmp_path / "a.json"])
    tables = probe_tables(df, params)
    assert list(tables) == [("Z", "linear"), ("Z", "knn")]
    table = tables["Z", "linear"]
    assert table.columns.tolist() == ["Model", "DESI (desi_hsc)", "HSC (desi_hsc)"]
    assert table["Model"].tolist() == ["AstroPTv2 Small", "Specformer Base", "ViT Base", "ViT Large"]
    assert table["HSC (desi_hsc)"].tolist() == ["0.400 [0.350, 0.450]", "—", "0.520 [0.470, 0.570]",
                                                "0.610 [0.560, 0.660]"]
    written = write_probe_tables(df, tmp_path / "tables", params)
    assert sorted(p.name for p in written) == sorted(f"Z_{n}.{s}" for n in ("linear", "knn") for s in ("csv", "md", "tex"))
    assert pd.read_csv(tmp_path / "tables" / "Z_knn.csv").shape == (4, 3)
    figures = write_probe_figures(df, tmp_path / "figures", params)
    assert sorted(p.name for p in figures) == ["probe_Z.pdf", "probe_Z.png"]
    with pytest.raises(KeyError, match="vit-large"):
        write_probe_figures(df, tmp_path / "figures", {k: v for k, v in params.items() if k != "vit-large"})
    del recs[0]["score"]
    (tmp_path / "b.json").write_text(json.dumps({"records": recs}))
    with pytest.raises(ValueError, match=r"b.json: record 0 is missing field\(s\) 'score'"):
        gather_probes([tmp_path / "b.json"])


def test_probe_jobs_do_not_import_torch():
    """A probe job draws its null permutations in numpy (metrics.stats.randperm_numpy, equal to
    torch's): loading torch would cost it about a second of start-up."""
    import subprocess
    import sys

    code = ("import sys, numpy as np, samesky.probes as p\n"
            "y = p.shuffled_targets(np.arange(30.0), 4, 1)\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "print(y[:, 0].astype(int).tolist())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import torch

    want = torch.randperm(30, generator=torch.Generator().manual_seed(1)).tolist()
    assert proc.stdout.split("\n")[0] == str(want)
