"""Multimodal Universe-shaped snapshots: the builders' features, the simulated snapshots, their ingestion."""
import json
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

datasets = pytest.importorskip("datasets")

from samesky import mmu  # noqa: E402
from samesky.config import ConfigError, validate_config  # noqa: E402
from samesky.ingest import arrow_rows, ingest_hf  # noqa: E402
from samesky.plan import Plan  # noqa: E402
from samesky.preprocess import preprocess_spectra  # noqa: E402
from samesky.schema import SchemaError  # noqa: E402
from samesky.simulate import simulate_crossmatch, simulate_snapshot, truth_features  # noqa: E402
from samesky.surveys import LAYOUTS, flux_factor, get_survey  # noqa: E402

# Produced by the MMU builders themselves from a checkout (tests/golden/mmu_features.py).
GOLDEN = json.loads((Path(__file__).parent / "data" / "mmu_builder_features.json").read_text())
N = 6


def plain(features) -> dict:
    """Features as the golden file stores them (JSON: shapes as lists)."""
    return json.loads(json.dumps(datasets.Features(features).to_dict()))


@pytest.mark.parametrize("survey", ["hsc", "legacysurvey", "jwst", "desi", "sdss"])
def test_builder_features_field_by_field(survey):
    ours = plain(mmu.builder_features(survey))
    theirs = GOLDEN[survey]
    assert list(ours) == list(theirs)  # same columns, same order
    for name in theirs:
        assert ours[name] == theirs[name], name


@pytest.mark.parametrize("spectro", ["desi", "sdss"])
def test_cross_match_datasets_layout_is_left_updated_by_right(spectro):
    """mmu/utils.py L139-144: features = left.copy(); features.update(right): one object_id (HSC's), HSC's `image`."""
    merged = dict(GOLDEN[spectro])
    merged.update(GOLDEN["hsc"])
    ours = plain(mmu.crossmatch_features(f"Smith42/{spectro}_hsc_crossmatched"))
    assert list(ours) == list(merged) and ours == merged
    assert "image" in ours and "spectrum" in ours and "hsc_object_id" not in ours


@pytest.mark.parametrize("other", ["jwst", "legacysurvey"])
def test_prefixed_layout_has_both_ids_and_no_object_id(other):
    ours = plain(mmu.crossmatch_features(f"Smith42/{other}_hsc_crossmatched"))
    assert "object_id" not in ours
    for survey in (other, "hsc"):
        assert ours[f"{survey}_object_id"] == GOLDEN[survey]["object_id"]
        assert ours[f"{survey}_image"] == GOLDEN[survey]["image"]


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmu")
    out = {}
    for name, surveys in ((k, v.surveys) for k, v in LAYOUTS.items() if v.mmu):
        xm = name.split("/")[1].replace("_crossmatched", "")
        simulate_snapshot(root / xm, root / f"{xm}.truth.h5", xm, name, n=N, seed=5, file_rows=4)
        out[xm] = (root, name, list(surveys))
    return out


def _ingest(snapshots, xm, **kw):
    root, layout, surveys = snapshots[xm]
    path = root / f"{xm}.h5"
    ingest_hf(str(root / xm), path, name=xm, surveys=surveys, layout=layout, **kw)
    return path


@pytest.mark.parametrize("xm", ["jwst_hsc", "legacysurvey_hsc", "desi_hsc", "sdss_hsc"])
def test_snapshot_files_are_shaped_as_the_builders_write(snapshots, xm):
    root, layout, surveys = snapshots[xm]
    files = sorted((root / xm / "data").glob("train-*.parquet"))
    assert [f.name for f in files] == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    meta = json.loads(pq.read_schema(files[0]).metadata[b"huggingface"])
    assert datasets.Features.from_dict(meta["info"]["features"]) == mmu.crossmatch_features(layout)
    ds = datasets.load_dataset(str(root / xm), split="train")
    assert len(ds) == N and ds.features == mmu.crossmatch_features(layout)
    row = ds.with_format("numpy")[0]
    hsc = row["image" if "image" in row else "hsc_image"]
    assert list(hsc["band"]) == ["hsc-g", "hsc-r", "hsc-i", "hsc-z", "hsc-y"]
    assert hsc["flux"].shape == (5, 160, 160) and hsc["scale"].tolist() == pytest.approx([0.168] * 5)
    if xm == "jwst_hsc":
        assert list(row["jwst_image"]["band"]) == list(get_survey("jwst").archive_bands)
        assert row["jwst_image"]["flux"].shape == (7, 96, 96)
        assert row["jwst_image"]["scale"].tolist() == pytest.approx([0.02] * 4 + [0.04] * 3)  # NIRCam SW / LW
    if xm == "legacysurvey_hsc":
        assert list(row["legacysurvey_image"]["band"]) == ["DES-G", "DES-R", "DES-I", "DES-Z"]
    if xm == "desi_hsc":
        assert row["spectrum"]["flux"].shape == (7781,) and 0 < row["Z"] < 2
    if xm == "sdss_hsc":  # each 4-row file padded to its longest row: lambda -1, ivar 0, mask True, flux edge
        lam = [np.asarray(r["spectrum"]["lambda"]) for r in ds.with_format("numpy")]
        assert len({len(x) for x in lam[:4]}) == 1 and len({len(x) for x in lam[4:]}) == 1
        padded = [x for x in lam if (x == -1).any()]
        assert padded
        for r in ds.with_format("numpy"):
            s = r["spectrum"]
            pad = s["lambda"] == -1
            assert (s["ivar"][pad] == 0).all() and s["mask"][pad].all()
            if pad.any():
                assert (s["flux"][pad] == s["flux"][~pad][-1]).all()
                assert (np.diff(s["lambda"][~pad]) > 0).all() and not pad[:(~pad).sum()].any()


@pytest.mark.parametrize("xm", ["jwst_hsc", "legacysurvey_hsc", "desi_hsc", "sdss_hsc"])
def test_snapshot_ingests_to_what_the_simulation_rendered(snapshots, xm, tmp_path):
    """Same galaxies as the direct writer: images (in the survey's unit), ids, spectra after preprocessing."""
    root, layout, surveys = snapshots[xm]
    path = _ingest(snapshots, xm)
    direct = tmp_path / "direct.h5"
    simulate_crossmatch(direct, xm, surveys, n=N, seed=5)
    with h5py.File(path, "r") as a, h5py.File(direct, "r") as b:
        hsc_ids = b["hsc/object_id"].asstr()[:]
        assert list(a["object_id"].asstr()[:]) == list(hsc_ids)  # the crossmatch id is HSC's
        np.testing.assert_allclose(a["hsc/flux"][:], b["hsc/flux"][:] * flux_factor(22.5, 27.0), rtol=1e-6)
        other = surveys[0]
        if other in ("jwst", "legacysurvey"):
            np.testing.assert_array_equal(a[f"{other}/flux"][:], b[f"{other}/flux"][:])
            assert list(a[f"{other}/object_id"].asstr()[:]) == list(b[f"{other}/object_id"].asstr()[:])
    ids, x = truth_features(root / f"{xm}.truth.h5", path)
    ids_direct, x_direct = truth_features(direct)
    assert list(ids) == list(hsc_ids)
    np.testing.assert_array_equal(x, x_direct)
    if other in ("desi", "sdss"):
        got = preprocess_spectra(path, other, tmp_path / "a.h5")
        want = preprocess_spectra(direct, other, tmp_path / "b.h5")
        with h5py.File(tmp_path / "a.h5", "r") as a, h5py.File(tmp_path / "b.h5", "r") as b:
            np.testing.assert_array_equal(a["mask"][:], b["mask"][:])
            if other == "desi":
                np.testing.assert_array_equal(a["data"][:], b["data"][:])
            else:  # MMU stores SDSS lambda as float32 (build_parent_sample.py L52): grids differ by ~1e-4 A
                np.testing.assert_allclose(a["data"][:], b["data"][:], rtol=1e-3, atol=1e-2)
                np.testing.assert_allclose(a["ivar"][:], b["ivar"][:], rtol=3e-3)
        if other == "sdss":  # the MMU padding (lambda = -1) was dropped and counted, not an abort
            with h5py.File(path, "r") as f:
                mmu_padding = int((f["sdss/wavelength"][:] == -1).sum())
            assert mmu_padding > 0 and got["padding_pixels"] == want["padding_pixels"] >= mmu_padding
            assert got["n_written"] == want["n_written"] == N


def test_local_snapshot_config_needs_a_layout_and_names_the_key(breadth_config, tmp_path):
    breadth_config["crossmatches"]["desi_hsc"]["source"] = {"hf": {"dataset": str(tmp_path)}}
    with pytest.raises(ConfigError, match=r"crossmatches\.desi_hsc\.source\.hf\.layout: required"):
        validate_config(breadth_config)
    breadth_config["crossmatches"]["desi_hsc"]["source"]["hf"]["layout"] = "Smith42/sdss_hsc_crossmatched"
    with pytest.raises(ConfigError, match=r"crossmatches\.desi_hsc\.source\.hf\.layout: .* holds surveys"):
        validate_config(breadth_config)
    breadth_config["crossmatches"]["desi_hsc"]["source"]["hf"]["layout"] = "Smith42/nope"
    with pytest.raises(ConfigError, match=r"crossmatches\.desi_hsc\.source\.hf\.layout: unknown layout"):
        validate_config(breadth_config)


def test_hf_source_defaults_per_layout(breadth_config, tmp_path):
    xms = breadth_config["crossmatches"]
    xms["legacysurvey_hsc"]["source"] = {"hf": {"dataset": "Smith42/legacysurvey_hsc_crossmatched"}}
    xms["desi_hsc"]["source"] = {"hf": {"dataset": str(tmp_path), "layout": "Smith42/desi_hsc_crossmatched",
                                        "id_column": "Z"}}
    breadth_config["probes"]["properties"] = {"jwst_hsc": ["redshift", "quiescent"]}  # hub tables have no latents
    plan = Plan(validate_config(breadth_config))
    assert plan.hf_source("legacysurvey_hsc") == {"dataset": "Smith42/legacysurvey_hsc_crossmatched",
                                                  "layout": "Smith42/legacysurvey_hsc_crossmatched",
                                                  "id_column": "hsc_object_id", "limit": None, "drop_flat": {}}
    assert plan.hf_source("desi_hsc")["id_column"] == "Z"
    assert plan.hf_source("jwst_hsc") == {"dataset": "resources/simulated/jwst_hsc",
                                          "layout": "Smith42/jwst_hsc_crossmatched",
                                          "id_column": "hsc_object_id", "limit": None,
                                          "drop_flat": {"jwst": "f200w"}}


def test_simulate_needs_an_mmu_layout(breadth_config):
    breadth_config["crossmatches"]["desi_hsc"]["surveys"] = ["desi", "jwst"]
    breadth_config["reference_survey"] = "jwst"
    with pytest.raises(ConfigError, match=r"crossmatches\.\w+\.s"):
        validate_config(breadth_config)


def test_missing_id_column_is_an_error_naming_it(snapshots, tmp_path):
    root, layout, surveys = snapshots["legacysurvey_hsc"]
    with pytest.raises(SchemaError, match=r"no column for the object id \(id_column\) \(tried \['object_id'\]\); "
                                          r"columns are \[.*'hsc_object_id'"):
        ingest_hf(str(root / "legacysurvey_hsc"), tmp_path / "x.h5", name="x", surveys=surveys, layout=layout,
                  id_column="object_id")
    path = _ingest(snapshots, "legacysurvey_hsc", id_column="legacysurvey_object_id")
    with h5py.File(path, "r") as f:
        assert list(f["object_id"].asstr()[:]) == list(f["legacysurvey/object_id"].asstr()[:])
        assert list(f["hsc/object_id"].asstr()[:]) != list(f["object_id"].asstr()[:])


def test_sdss_padding_inside_a_spectrum_is_an_error(tmp_path):
    from samesky.schema import write_crossmatch
    from samesky.surveys import sdss_wavelength

    wave = np.tile(sdss_wavelength(40, 500).astype(np.float32), (2, 1)).astype(np.float64)
    wave[0, 30:] = -1  # a padded tail: fine
    wave[1, 10] = -1  # a hole: not padding
    arrays = {"flux": np.ones((2, 40), np.float32), "ivar": np.ones((2, 40), np.float32),
              "mask": wave <= 0, "wavelength": wave, "object_id": np.array(["a", "b"])}
    images = {"flux": np.ones((2, 5, 160, 160), np.float32)}
    write_crossmatch(tmp_path / "x.h5", "x", np.array(["a", "b"]), np.zeros(2), np.zeros(2),
                     {"sdss": arrays, "hsc": images})
    with pytest.raises(SchemaError, match=r"object_id 'b' has padding \(lambda <= 0 or NaN\) before its last valid"):
        preprocess_spectra(tmp_path / "x.h5", "sdss", tmp_path / "out.h5")


def test_paper_jwst_filter_drops_rows_with_a_flat_f200w(tmp_path):
    """Rows whose f200w has equal 5th and 99th percentiles (a cutout almost all zero-filled) are dropped."""
    from samesky.simulate import mmu_examples, simulate_sky

    layout = "Smith42/jwst_hsc_crossmatched"
    sky = simulate_sky("jwst_hsc", ["jwst", "hsc"], 8, 2)
    ex = {s: list(mmu_examples(s, sky["groups"][s], sky["truth"])) for s in ("jwst", "hsc")}
    for i, keep in ((1, 8), (3, 8), (5, 40)):  # keep a keep x keep corner; 8x8 < 1 % of 96x96, 40x40 is not
        f200w = ex["jwst"][i]["image"][3]
        assert f200w["band"] == "f200w"
        flat = np.zeros_like(f200w["flux"])
        flat[:keep, :keep] = np.abs(f200w["flux"][:keep, :keep]) + 1
        f200w["flux"] = flat
    rows = [mmu.crossmatch_row(layout, {s: ex[s][i] for s in ex}) for i in range(8)]
    mmu.write_snapshot(tmp_path / "snap", layout, rows)
    expected = [r["hsc_object_id"] for r in rows
                if np.nanpercentile(r["jwst_image"][3]["flux"], 5) == np.nanpercentile(r["jwst_image"][3]["flux"], 99)]
    assert expected == [rows[1]["hsc_object_id"], rows[3]["hsc_object_id"]]
    ingest_hf(str(tmp_path / "snap"), tmp_path / "xm.h5", name="jwst_hsc", surveys=["jwst", "hsc"], layout=layout,
              drop_flat={"jwst": "f200w"})
    with h5py.File(tmp_path / "xm.h5", "r") as f:
        kept = list(f["object_id"].asstr()[:])
        prov = json.loads(f.attrs["provenance"])
    assert kept == [r["hsc_object_id"] for r in rows if r["hsc_object_id"] not in expected]
    assert prov["flat_rows_dropped"] == {"bands": {"jwst": "f200w"}, "n": 2, "examples": expected}
    ingest_hf(str(tmp_path / "snap"), tmp_path / "all.h5", name="jwst_hsc", surveys=["jwst", "hsc"], layout=layout)
    with h5py.File(tmp_path / "all.h5", "r") as f:
        assert f["object_id"].shape == (8,)


def test_drop_flat_config_reaches_ingestion_and_names_bad_keys(breadth_config):
    breadth_config["crossmatches"]["jwst_hsc"]["drop_flat"] = {"jwst": "f200w"}
    assert Plan(validate_config(breadth_config)).hf_source("jwst_hsc")["drop_flat"] == {"jwst": "f200w"}
    breadth_config["crossmatches"]["jwst_hsc"]["drop_flat"] = {"jwst": "f201w"}
    with pytest.raises(ConfigError, match=r"crossmatches\.jwst_hsc\.drop_flat\.jwst: survey 'jwst' has no band"):
        validate_config(breadth_config)
    breadth_config["crossmatches"]["jwst_hsc"]["drop_flat"] = {"desi": "g"}
    with pytest.raises(ConfigError, match=r"crossmatches\.jwst_hsc\.drop_flat\.desi: 'desi' is not an image survey"):
        validate_config(breadth_config)


def test_paper_config_selects_as_the_authors(paper_config):
    plan = Plan(validate_config(paper_config))
    assert plan.hf_source("jwst_hsc")["drop_flat"] == {"jwst": "f200w"}
    for survey in ("hsc", "legacysurvey"):
        params = plan.preprocess_params(survey)
        assert (params["sample"], params["max_images"], params["source"]) == ("first", 10000, "legacysurvey_hsc")


@pytest.mark.parametrize("xm", ["desi_hsc", "legacysurvey_hsc"])
def test_catalogue_columns_are_kept_as_properties(snapshots, xm, tmp_path):
    """Every scalar column the builders declare reaches /properties, row for row by id (DESI's Z for the probes)."""
    from samesky.schema import read_properties

    root, layout, surveys = snapshots[xm]
    path = _ingest(snapshots, xm)
    ds = datasets.load_dataset(str(root / xm), split="train").with_format("numpy")
    declared = [k for k, v in mmu.crossmatch_features(layout).items()
                if isinstance(v, datasets.Value) and k not in ("object_id", "hsc_object_id", f"{surveys[0]}_object_id")]
    ids, props = read_properties(path)
    assert sorted(props) == sorted(declared)
    row_of = {str(r["object_id" if "object_id" in r else "hsc_object_id"]): r for r in ds}
    key = "Z" if xm == "desi_hsc" else "hsc_mag_g" if "hsc_mag_g" in declared else declared[0]
    want = np.array([row_of[i][key] for i in ids], dtype=np.float64)
    np.testing.assert_array_equal(props[key].astype(np.float64), want)
    if xm == "desi_hsc":
        assert np.isfinite(props["Z"]).all() and 0 < props["Z"].min()


def _same(ours, theirs, where="row") -> None:
    """Equal values, structure for structure (``datasets`` may give a list where we give an array)."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), where
        for key in theirs:
            _same(ours[key], theirs[key], f"{where}.{key}")
    elif theirs is None:
        assert ours is None, where
    elif isinstance(theirs, (list, tuple)) or (isinstance(theirs, np.ndarray) and theirs.dtype == object):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _same(a, b, f"{where}[{i}]")
    else:
        a, b = np.asarray(ours), np.asarray(theirs)
        assert a.shape == b.shape, (where, a.shape, b.shape)
        if a.dtype != b.dtype:  # datasets casts list values to float32 / int64; we keep the declared type
            assert (a.dtype, b.dtype) in ((np.float64, np.float32), (np.int32, np.int64)), (where, a.dtype, b.dtype)
            a = a.astype(b.dtype)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where


@pytest.mark.parametrize("xm", ["jwst_hsc", "legacysurvey_hsc", "desi_hsc", "sdss_hsc"])
def test_arrow_rows_equal_the_datasets_numpy_rows(snapshots, xm):
    """Ingestion converts Arrow batches itself (``arrow_rows``); the oracle is ``datasets``' own numpy
    format, row by row, on files shaped as the builders write them (a batch crosses a file boundary)."""
    root = snapshots[xm][0]
    ds = datasets.load_dataset(str(root / xm), split="train", streaming=True)
    # every column but the encoded Image ones (legacy's blob model), which ingestion never reads
    ds = ds.select_columns([c for c, f in ds.features.items() if not isinstance(f, datasets.Image)])
    theirs = list(ds.with_format("numpy"))
    ours = [row for batch in ds.with_format("arrow").iter(batch_size=5) for row in arrow_rows(batch, xm)]
    assert len(ours) == len(theirs) == N
    for i, (a, b) in enumerate(zip(ours, theirs)):
        _same(a, b, f"{xm} row {i}")


def test_arrow_rows_of_band_structs_ragged_lists_and_nulls():
    feats = datasets.Features({
        "image": datasets.List({"band": datasets.Value("string"), "flux": datasets.Array2D((3, 2), "float32")}),
        "spectrum": {"flux": datasets.List(datasets.Value("float32")), "lambda": datasets.List(datasets.Value("float64"))},
        "object_id": datasets.Value("int64"), "z": datasets.Value("float32"), "note": datasets.Value("string")})
    rng = np.random.default_rng(0)
    rows = {"image": [[{"band": b, "flux": rng.normal(size=(3, 2)).astype(np.float32)} for b in "gri"[: 1 + i % 3]]
                      for i in range(7)],
            "spectrum": [{"flux": rng.normal(size=4 + i).astype(np.float32), "lambda": np.arange(4.0 + i)} for i in range(7)],
            "object_id": list(range(100, 107)), "z": [0.1, None, 0.3, 0.4, None, 0.6, 0.7],
            "note": ["a", None, "c", "d", "e", None, "g"]}
    ds = datasets.Dataset.from_dict(rows, features=feats)
    theirs = list(ds.with_format("numpy"))
    for size in (7, 3):  # whole, and batches that are slices of the table
        ours = [row for batch in ds.with_format("arrow").iter(batch_size=size) for row in arrow_rows(batch, "t")]
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _same(a, b, f"batch {size} row {i}")
