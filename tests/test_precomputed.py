"""Precomputed embeddings in the workflow (config ``models.precomputed``): the authors' published
Specformer DESI embeddings (a hub snapshot, column ``embeddings``, rows positional within the
crossmatch) stand in for ours, enter the DAG like any model's and are compared with ours."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_workflow import job_counts, snakemake, write_config

from samesky import schema, sources
from samesky.config import ConfigError, validate_config
from samesky.plan import Plan

ENTRY = {"crossmatch": "desi_hsc", "survey": "desi", "model": "specformer-base"}


def _config(demo_config, **entry):
    demo_config["embed"]["layers"] = "final"
    demo_config["models"]["precomputed"] = [{**ENTRY, "source": "specformer_desi", **entry}]
    return demo_config


def test_config_checks(demo_config):
    plan = Plan(validate_config(_config(demo_config, column="embeddings")))
    key = tuple(ENTRY.values())
    assert plan.precomputed() == {key: {**ENTRY, "source": "specformer_desi", "column": "embeddings", "id_column": None}}
    with pytest.raises(ConfigError, match=r"models.precomputed\[0\]: \('desi_hsc', 'jwst', 'specformer-base'\) is not "
                                          r"an embedding this config computes; on crossmatch 'desi_hsc' it computes \(survey, model\) "
                                          r"\[\('desi', 'specformer-base'\), \('hsc', 'vit-base'\)"):
        validate_config(_config(demo_config, survey="jwst"))
    _config(demo_config)["embed"]["layers"] = "all"
    with pytest.raises(ConfigError, match=r"precomputed embeddings have no blocks; set embed.layers: final"):
        Plan(demo_config)
    demo_config["crossmatches"]["desi_hsc"]["drop_flat"] = {"hsc": "g"}
    with pytest.raises(ConfigError, match=r"crossmatches.desi_hsc.drop_flat drops rows; give the id column"):
        validate_config(_config(demo_config))


def _crossmatch(path, ids, provenance=None):
    """A crossmatch file as far as the rule reads it: object ids and the ingestion's provenance."""
    with h5py.File(path, "w") as f:
        f.create_dataset("object_id", data=ids.astype(object), dtype=schema.STR)
        schema.write_provenance(f, provenance or {})
    return path


def test_import_positional_and_by_id(tmp_path, caplog):
    ids = np.array([f"x{i}" for i in range(5)])
    xm = _crossmatch(tmp_path / "xm.h5", ids)
    Z = np.arange(24, dtype=np.float32).reshape(6, 4)
    np.save(tmp_path / "z.npy", Z)
    out = tmp_path / "e.h5"
    assert sources.import_embeddings(out, {"source": str(tmp_path / "z.npy")}, xm, "xm") == "row"
    got_ids, got, prov = schema.read_embeddings(out)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_array_equal(got, Z[:5])  # the sixth row is beyond the crossmatch
    assert "rows from 5 on are left out" in caplog.text and prov["precomputed"]["pairing"] == "row"
    with pytest.raises(sources.SourceError, match=r"z.npy: 6 rows, fewer than the 7 objects of crossmatch 'xm'"):
        sources.import_embeddings(out, {"source": str(tmp_path / "z.npy")},
                                  _crossmatch(tmp_path / "x7.h5", np.array([f"x{i}" for i in range(7)])), "xm")
    dropped = _crossmatch(tmp_path / "d.h5", ids, {"duplicate_ids_dropped": {"n": 2}, "flat_rows_dropped": {"n": 0}})
    with pytest.raises(sources.SourceError, match=r"z.npy has no ids, but the rows of crossmatch 'xm' .* \(ingestion: "
                       r"\{'duplicate_ids_dropped': 2\}\); give id_column"):
        sources.import_embeddings(out, {"source": str(tmp_path / "z.npy")}, dropped, "xm")
    np.savez(tmp_path / "z.npz", embedding=Z, object_id=np.array(["x4", "x1", "q", "x0", "x2", "r"]))
    assert sources.import_embeddings(out, {"source": str(tmp_path / "z.npz")}, xm, "xm") == "id"
    got_ids, got, _ = schema.read_embeddings(out)
    assert got_ids.tolist() == ["x4", "x1", "x0", "x2"]
    np.testing.assert_array_equal(got, Z[[0, 1, 3, 4]])
    with pytest.raises(sources.SourceError, match=r"none of its ids \(e.g. \['x4', 'x1', 'q'\]\) is an object"):
        sources.import_embeddings(out, {"source": str(tmp_path / "z.npz")}, _crossmatch(tmp_path / "a.h5", np.array(["a"])), "xm")


def test_authors_embeddings_stand_in_for_ours(tmp_path, demo_config):
    """The rule writes the snapshot's rows under the crossmatch's ids; the compare job then scores
    them against our HSC embeddings exactly as ``samesky compare`` does."""
    n = 60
    rng = np.random.default_rng(2)
    ids = np.array([f"desi_hsc_{i:04d}" for i in range(n)])
    _crossmatch(tmp_path / "xm.h5", ids, {"duplicate_ids_dropped": {"n": 0}})
    hsc = rng.normal(size=(n, 8)).astype(np.float32)
    schema.write_embeddings(tmp_path / "results/demo/embeddings/desi_hsc/hsc/vit-base.h5", ids, hsc, {})
    theirs = (hsc @ rng.normal(size=(8, 6)) + rng.normal(size=(n, 6))).astype(np.float32)
    snap = tmp_path / "specformer_desi" / "data"
    snap.mkdir(parents=True)
    pq.write_table(pa.table({"embeddings": pa.array(theirs.tolist(), type=pa.list_(pa.float32()))}),
                   snap / "train-00000-of-00001.parquet")
    config = _config(demo_config, source=str(tmp_path / "specformer_desi"), column="embeddings")
    config["crossmatches"]["desi_hsc"]["source"] = {"path": str(tmp_path / "xm.h5")}
    config["probes"].update(properties={}, categorical=[])  # the file has no properties to probe
    config["metrics"].update(names=["mknn"], null_draws=20, subsampling_splits=5)
    cfg = write_config(tmp_path / "c.yaml", config)
    pair = "desi_hsc/desi/specformer-base/hsc/vit-base"
    proc = snakemake(tmp_path, f"results/demo/metrics/{pair}.json", "--cores", "1", "--configfile", cfg,
                     "--allowed-rules", "precomputed_embedding", "knn_graph", "compare", timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert job_counts(proc.stdout + proc.stderr) == {"precomputed_embedding": 1, "knn_graph": 2, "compare": 1}
    got_ids, got, prov = schema.read_embeddings(tmp_path / "results/demo/embeddings/desi_hsc/desi/specformer-base.h5")
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_array_equal(got, theirs)
    assert prov["precomputed"]["pairing"] == "row" and prov["precomputed"]["column"] == "embeddings"
    (rec,) = json.loads((tmp_path / f"results/demo/metrics/{pair}.json").read_text())["records"]
    import samesky

    mine = samesky.compare(tmp_path / "specformer_desi", hsc, metrics=["mknn"], null_draws=20, subsampling_splits=5)
    assert mine.loc[0, "pairing"] == "row"
    for field in ("score", "null_mean", "p_value", "calibrated", "ci_low", "ci_high"):
        assert mine.loc[0, field] == rec[field]
    # every other embedding is still made by rule embed
    dry = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", cfg, "--forceall", timeout=600)
    assert dry.returncode == 0, dry.stderr[-4000:]
    counts = job_counts(dry.stdout + dry.stderr)
    config["models"]["precomputed"] = []
    base = job_counts(snakemake(tmp_path, "-n", "--cores", "1", "--configfile", write_config(tmp_path / "b.yaml", config),
                                "--forceall", timeout=600).stdout)
    assert counts["precomputed_embedding"] == 1 and counts["embed"] == base["embed"] - 1
