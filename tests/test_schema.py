"""The crossmatch schema: valid files pass, every kind of bad file fails naming file and key."""
import h5py
import numpy as np
import pytest

from samesky import schema
from samesky.surveys import DESI_WAVELENGTH


def _arrays(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "hsc": {"flux": rng.normal(size=(n, 5, 8, 8)).astype(np.float32)},
        "desi": {
            "flux": rng.normal(size=(n, DESI_WAVELENGTH.size)).astype(np.float32),
            "ivar": np.ones((n, DESI_WAVELENGTH.size), np.float32),
            "mask": np.zeros((n, DESI_WAVELENGTH.size), bool),
            "wavelength": DESI_WAVELENGTH,
        },
    }


def _write(path, n=4, **kw):
    ids = kw.pop("ids", [f"o{i}" for i in range(n)])
    schema.write_crossmatch(path, "desi_hsc", ids, np.zeros(n), np.zeros(n), kw.pop("surveys", _arrays(n)))


def test_roundtrip(tmp_path):
    path = tmp_path / "x.h5"
    _write(path)
    assert schema.validate_crossmatch(path) == {"n": 4, "surveys": ["hsc", "desi"]}
    assert schema.read_object_ids(path).tolist() == ["o0", "o1", "o2", "o3"]


def test_duplicate_ids_refused(tmp_path):
    with pytest.raises(schema.SchemaError, match=r"x.h5: object_id has 1 duplicates, e.g. \['o1'\]"):
        _write(tmp_path / "x.h5", ids=["o0", "o1", "o1", "o3"])
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f["hsc"].__delitem__("flux"), "missing dataset 'hsc/flux'"),
        (lambda f: f["hsc"].attrs.__setitem__("bands", ["g", "r", "i", "z"]), "'hsc' attribute 'bands'"),
        (lambda f: (f["hsc"].__delitem__("flux"), f["hsc"].create_dataset("flux", data=np.zeros((4, 4, 8, 8), np.float32))),
         r"'hsc/flux' has shape \(4, 4, 8, 8\), expected \(4, 5, 'any', 'any'\)"),
        (lambda f: (f["desi"].__delitem__("mask"), f["desi"].create_dataset("mask", data=np.zeros((4, 7781), np.float32))),
         "'desi/mask' has dtype float32"),
        (lambda f: f["desi"].__delitem__("wavelength"), "missing dataset 'desi/wavelength'"),
        (lambda f: f.attrs.__setitem__("surveys", ["hsc", "euclid"]), "unknown survey 'euclid'"),
        (lambda f: f.attrs.__setitem__("schema", "other/1"), "attribute 'schema'"),
    ],
)
def test_wrong_schema_names_key(tmp_path, mutate, message):
    path = tmp_path / "x.h5"
    _write(path)
    with h5py.File(path, "a") as f:
        mutate(f)
    with pytest.raises(schema.SchemaError, match=message):
        schema.validate_crossmatch(path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.h5: file does not exist"):
        schema.validate_crossmatch(tmp_path / "nothere.h5")
    path = tmp_path / "x.h5"
    _write(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(schema.SchemaError, match="not a readable HDF5 file"):
        schema.validate_crossmatch(path)


def test_atomic_write_keeps_previous_file_on_failure(tmp_path):
    path = tmp_path / "emb.h5"
    schema.write_embeddings(path, ["a", "b"], np.eye(2), {"model": "m"})
    bad = np.array([[1.0, np.nan], [0.0, 1.0]])
    with pytest.raises(schema.SchemaError, match=r"emb.h5: 1 rows contain NaN or inf, e.g. object_id \['a'\]"):
        schema.write_embeddings(path, ["a", "b"], bad, {"model": "m"})
    ids, emb, prov = schema.read_embeddings(path)
    assert ids.tolist() == ["a", "b"] and np.array_equal(emb, np.eye(2)) and prov == {"model": "m"}
    assert [p.name for p in tmp_path.iterdir()] == ["emb.h5"]


def test_knn_roundtrip_and_range_check(tmp_path):
    path = tmp_path / "knn.h5"
    schema.write_knn(path, ["a", "b", "c"], [[1], [2], [0]], [[0.5], [0.4], [0.3]], {"k": 1})
    ids, idx, sim, _ = schema.read_knn(path)
    assert idx[:, 0].tolist() == [1, 2, 0] and sim.dtype == np.float32
    schema.write_knn(path, ["a", "b", "c"], [[1], [3], [0]], [[0.5], [0.4], [0.3]], {"k": 1})
    with pytest.raises(schema.SchemaError, match="'indices' out of range"):
        schema.read_knn(path)
