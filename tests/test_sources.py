"""Embedding sources: every format read to the same arrays and ids, every bad input refused by name."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from samesky import sources
from samesky.schema import write_embeddings

RNG = np.random.default_rng(3)
Z = RNG.normal(size=(7, 4)).astype(np.float32)
IDS = np.array([f"id{i}" for i in range(7)])


def _vectors(array, fixed=True):
    flat = pa.array(array.ravel())
    return pa.FixedSizeListArray.from_arrays(flat, array.shape[1]) if fixed else pa.array(array.tolist())


def _same(emb, ids=IDS):
    np.testing.assert_array_equal(emb.array, Z)
    assert emb.array.dtype == np.float32
    if ids is None:
        assert emb.positional
    else:
        np.testing.assert_array_equal(emb.ids, ids)


def test_hdf5_npy_npz(tmp_path):
    write_embeddings(tmp_path / "e.h5", IDS, Z, {})
    _same(sources.load(tmp_path / "e.h5"))
    np.save(tmp_path / "e.npy", Z.astype(np.float64))
    _same(sources.load(tmp_path / "e.npy"), None)
    np.savez(tmp_path / "e.npz", embedding=Z, object_id=IDS, other=np.zeros((7, 2)))
    _same(sources.load(tmp_path / "e.npz"))
    np.savez(tmp_path / "f.npz", vecs=Z, name=IDS)
    _same(sources.load(tmp_path / "f.npz", id_column="name"))  # the only 2-D array, ids named


def test_parquet_layouts(tmp_path):
    # the authors' pu run layout: one column per survey, no ids
    pq.write_table(pa.table({"vit_base_hsc": _vectors(Z), "vit_base_jwst": _vectors(Z[::-1].copy())}), tmp_path / "r.parquet")
    _same(sources.load(tmp_path / "r.parquet", column="vit_base_hsc"), None)
    # their hub files: a list<float> column 'embeddings' beside scalar columns
    pq.write_table(pa.table({"embeddings": _vectors(Z, fixed=False), "z": np.arange(7.0)}), tmp_path / "h.parquet")
    hub = sources.load(tmp_path / "h.parquet")
    _same(hub, None)
    assert hub.column == "embeddings" and hub.description.endswith("column 'embeddings'")
    # plain, with ids (ints become strings)
    pq.write_table(pa.table({"object_id": IDS, "v": _vectors(Z, fixed=False)}), tmp_path / "p.parquet")
    _same(sources.load(tmp_path / "p.parquet"))
    pq.write_table(pa.table({"targetid": np.arange(7), "v": _vectors(Z)}), tmp_path / "t.parquet")
    _same(sources.load(tmp_path / "t.parquet", id_column="targetid"), np.arange(7).astype(str))


def test_hugging_face_snapshots(tmp_path):
    snap = tmp_path / "snap" / "data"
    snap.mkdir(parents=True)
    for i, rows in enumerate((slice(0, 4), slice(4, 7))):  # shards in path order
        pq.write_table(pa.table({"embeddings": _vectors(Z[rows], fixed=False)}), snap / f"train-0000{i}-of-00002.parquet")
    _same(sources.load(tmp_path / "snap"), None)
    import datasets

    datasets.Dataset.from_dict({"object_id": IDS.tolist(), "embedding": Z.tolist()}).save_to_disk(str(tmp_path / "saved"))
    _same(sources.load(tmp_path / "saved"))


def test_data_frames():
    _same(sources.load(pd.DataFrame({"object_id": IDS, "emb": list(Z)})))
    _same(sources.load(pd.DataFrame(Z, columns=list("abcd"))), None)  # scalar columns form the vector
    _same(sources.load(Z), None)


@pytest.mark.parametrize("table, kwargs, message", [
    ({"object_id": IDS, "v": _vectors(Z)}, {"column": "embeddings"},
     r"no column 'embeddings'; columns there: \['object_id', 'v'\]"),
    ({"object_id": IDS, "v": _vectors(Z)}, {"id_column": "name"}, r"no id column 'name'; columns there"),
    ({"v": [[1.0, 2.0]] * 5 + [[1.0], [1.0, 2.0, 3.0]]}, {}, r"column 'v': ragged vectors: 2 rows are not 2 long, "
     r"e.g. rows \[5, 6\] \(lengths \[1, 3\]\)"),
    ({"v": [["a", "b"]] * 7}, {}, r"column 'v': vectors of string, not numbers"),
    ({"v": [[1.0, 2.0]] * 3 + [None] * 4}, {}, r"column 'v': 4 rows have no vector, e.g. rows \[3, 4, 5, 6\]"),
    ({"v": [[1.0, None]] + [[1.0, 2.0]] * 6}, {}, r"column 'v': 1 rows hold missing values, e.g. rows \[0\]"),
    ({"v": np.arange(7.0)}, {"column": "v"}, r"column 'v': type double, not a column of vectors"),
    ({"a": _vectors(Z), "b": _vectors(Z)}, {}, r"2 vector columns \['a', 'b'\]; name the embeddings' column"),
    ({"object_id": ["x"] * 7, "v": _vectors(Z)}, {}, r"1 duplicate ids|6 duplicate ids, e.g. \['x'\]"),
])
def test_bad_parquet(tmp_path, table, kwargs, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(table), path)
    with pytest.raises(sources.SourceError, match=message) as err:
        sources.load(path, **kwargs)
    assert str(path) in str(err.value)


def test_non_finite_rows_are_named(tmp_path):
    bad = Z.copy()
    bad[2, 1], bad[5, 0] = np.nan, np.inf
    with pytest.raises(sources.SourceError, match=r"2 of 7 rows contain NaN or infinite values \(as float32\), "
                       r"e.g. object_id \['id2', 'id5'\] \(rows \[2, 5\]\)"):
        sources.load(pd.DataFrame({"object_id": IDS, "v": list(bad)}))
    np.save(tmp_path / "b.npy", np.array([[1.0, 2.0], [1e300, 0.0]]))  # overflows float32
    with pytest.raises(sources.SourceError, match=r"b.npy: 1 of 2 rows .* e.g. rows \[1\] \(0-based\)"):
        sources.load(tmp_path / "b.npy")


def test_empty_and_unreadable_files(tmp_path):
    (tmp_path / "e.parquet").write_bytes(b"")
    with pytest.raises(sources.SourceError, match=r"e.parquet: empty file"):
        sources.load(tmp_path / "e.parquet")
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(sources.SourceError, match=r"x.parquet: not a readable parquet file"):
        sources.load(tmp_path / "x.parquet")
    pq.write_table(pa.table({"v": pa.array([], type=pa.list_(pa.float32()))}), tmp_path / "z.parquet")
    with pytest.raises(sources.SourceError, match=r"z.parquet: no rows \(columns: \['v'\]\)"):
        sources.load(tmp_path / "z.parquet")
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(sources.SourceError, match=r"s.npy: embeddings must be numbers, got dtype <U1"):
        sources.load(tmp_path / "s.npy")
    (tmp_path / "e.csv").write_text("1,2\n")
    with pytest.raises(sources.SourceError, match=r"unknown embedding format '.csv'"):
        sources.load(tmp_path / "e.csv")
    with pytest.raises(FileNotFoundError, match="nope.npy: no such file"):
        sources.load(tmp_path / "nope.npy")


def test_pairing():
    ided = sources.load(pd.DataFrame({"object_id": IDS, "v": list(Z)}))
    positional = sources.load(Z[:5], name="B")
    assert sources.pairing(ided, ided) == "id"
    assert sources.pairing(ided, sources.load(Z, name="B")) == "row"
    with pytest.raises(sources.SourceError, match=r"data frame column 'v' has 7 rows and B has 5, and B has no ids"):
        sources.pairing(ided, positional)
