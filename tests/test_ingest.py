"""Ingestion, offline: fixture tables in the Multimodal Universe crossmatch column layout."""
import json
import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # the hub is never contacted by these tests
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

datasets = pytest.importorskip("datasets")
from datasets import Array2D, Features, List, Value  # noqa: E402

from samesky.ingest import image_arrays, ingest_hf  # noqa: E402
from samesky.preprocess import preprocess_spectra  # noqa: E402
from samesky.schema import SchemaError, validate_crossmatch  # noqa: E402
from samesky.surveys import (  # noqa: E402
    DESI_WAVELENGTH,
    LAYOUTS,
    Layout,
    get_layout,
    get_survey,
    layout_for_surveys,
    sdss_wavelength,
)

H = 8
COSMOS = "Ashodkh/cosmosweb-hsc-jwst-high-snr-pil2"
HSC = ["HSC-G", "HSC-R", "HSC-I", "HSC-Z", "HSC-Y"]
LEGACY = ["DES-G", "DES-R", "DES-I", "DES-Z"]


def image_feature(struct_of_lists=True):
    if struct_of_lists:  # {'band': [...], 'flux': [...], ...}
        return {"band": List(Value("string")), "flux": List(Array2D((H, H), "float32")),
                "ivar": List(Array2D((H, H), "float32")), "mask": List(Array2D((H, H), "bool"))}
    return List({"band": Value("string"), "flux": Array2D((H, H), "float32")})  # a list of per-band structs


def image_value(i, bands, struct_of_lists=True):
    """Band named X of object i holds the constant i + 0.1 * (index of X in the survey's order) + pixel ramp."""
    ramp = np.arange(H * H, dtype=np.float32).reshape(H, H) / 1000
    order = "GRIZY"
    planes = [np.float32(i + 0.1 * order.index(b[-1])) + ramp for b in bands]
    if struct_of_lists:
        return {"band": bands, "flux": np.stack(planes), "ivar": np.ones((len(bands), H, H), np.float32),
                "mask": np.zeros((len(bands), H, H), bool)}
    return [{"band": b, "flux": p} for b, p in zip(bands, planes)]


def spectrum_feature():
    return {"flux": List(Value("float32")), "ivar": List(Value("float32")), "lambda": List(Value("float32")),
            "mask": List(Value("bool"))}


def sdss_value(i, length=60, start=1000):
    return {"flux": np.full(length, i, np.float32), "ivar": np.ones(length, np.float32),
            "lambda": sdss_wavelength(length, start).astype(np.float32), "mask": np.zeros(length, bool)}


def legacy_table(path, n=5):
    """legacysurvey_hsc_crossmatched layout; HSC bands stored in a shuffled order (named)."""
    feat = Features({"hsc_image": image_feature(), "legacysurvey_image": image_feature(),
                     "hsc_object_id": Value("string"), "legacysurvey_object_id": Value("string"),
                     "ra": Value("float64"), "dec": Value("float64"), "hsc_a_g": Value("float32")})
    rows = {"hsc_image": [image_value(i, HSC[::-1]) for i in range(n)],
            "legacysurvey_image": [image_value(10 + i, LEGACY) for i in range(n)],
            "hsc_object_id": [f"obj{i}" for i in range(n)], "legacysurvey_object_id": [f"ls{i}" for i in range(n)],
            "ra": [150.0 + i for i in range(n)],
            "dec": [2.0 - i for i in range(n)], "hsc_a_g": [0.1] * n}
    datasets.Dataset.from_dict(rows, features=feat).to_parquet(str(path))
    return path


def test_legacy_layout_from_parquet_bands_by_name(tmp_path):
    src = legacy_table(tmp_path / "train-0000.parquet")
    summary = ingest_hf(str(src), tmp_path / "xm.h5", name="legacysurvey_hsc", surveys=["legacysurvey", "hsc"],
                        layout="Smith42/legacysurvey_hsc_crossmatched", chunk_size=2)
    assert summary == {"n": 5, "surveys": ["legacysurvey", "hsc"]}
    with h5py.File(tmp_path / "xm.h5", "r") as f:
        assert list(f["object_id"].asstr()[:]) == [f"obj{i}" for i in range(5)]  # hsc_object_id, no object_id
        assert list(f["hsc/object_id"].asstr()[:]) == [f"obj{i}" for i in range(5)]
        assert list(f["legacysurvey/object_id"].asstr()[:]) == [f"ls{i}" for i in range(5)]  # both ids kept
        np.testing.assert_array_equal(f["ra"][:], 150.0 + np.arange(5))
        np.testing.assert_array_equal(f["dec"][:], 2.0 - np.arange(5))
        hsc = f["hsc/flux"][:]
        assert hsc.shape == (5, 5, H, H) and list(f["hsc"].attrs["bands"]) == ["g", "r", "i", "z", "y"]
        # stored Y, Z, I, R, G; re-ordered by name to g, r, i, z, y
        np.testing.assert_allclose(hsc[3, :, 0, 0], 3 + 0.1 * np.arange(5), rtol=1e-6)
        np.testing.assert_allclose(f["legacysurvey/flux"][2, :, 0, 0], 12 + 0.1 * np.arange(4), rtol=1e-6)
        assert "ivar" not in f["hsc"]  # image ivar/mask only on request
        assert f.attrs["name"] == "legacysurvey_hsc"


def test_streaming_and_non_streaming_give_the_same_file(tmp_path):
    src = legacy_table(tmp_path / "t.parquet")
    for streaming in (True, False):
        ingest_hf(str(src), tmp_path / f"xm{streaming}.h5", name="x", surveys=["legacysurvey", "hsc"],
                  streaming=streaming, image_ivar_mask=True, limit=3)
    with h5py.File(tmp_path / "xmTrue.h5", "r") as a, h5py.File(tmp_path / "xmFalse.h5", "r") as b:
        assert a["object_id"].shape == (3,)
        for key in ("hsc/flux", "hsc/ivar", "hsc/mask", "legacysurvey/flux"):
            np.testing.assert_array_equal(a[key][:], b[key][:])
        assert a["hsc/mask"].dtype == bool


def test_desi_layout_from_save_to_disk_with_list_of_band_structs(tmp_path):
    feat = Features({"image": image_feature(struct_of_lists=False), "spectrum": spectrum_feature(),
                     "object_id": Value("string"), "ra": Value("float64"), "dec": Value("float64")})
    n = 3
    spec = [{"flux": np.full(7781, i, np.float32), "ivar": np.ones(7781, np.float32),
             "lambda": DESI_WAVELENGTH.astype(np.float32), "mask": np.arange(7781) < i} for i in range(n)]
    rows = {"image": [image_value(i, HSC, struct_of_lists=False) for i in range(n)], "spectrum": spec,
            "object_id": ["39627866878511337", "39627866878514741", "616088619186127404"],
            "ra": [1.0, 2.0, 3.0], "dec": [4.0, 5.0, 6.0]}
    datasets.Dataset.from_dict(rows, features=feat).save_to_disk(str(tmp_path / "desi_disk"))
    ingest_hf(str(tmp_path / "desi_disk"), tmp_path / "xm.h5", name="desi_hsc", surveys=["desi", "hsc"])
    with h5py.File(tmp_path / "xm.h5", "r") as f:
        assert f["desi/wavelength"].shape == (7781,)  # one shared grid, stored once
        np.testing.assert_array_equal(f["desi/flux"][:, 100], [0, 1, 2])
        np.testing.assert_array_equal(f["desi/mask"][:, :3], np.arange(3)[None, :] < np.arange(3)[:, None])
        np.testing.assert_allclose(f["hsc/flux"][1, :, 0, 0], 1 + 0.1 * np.arange(5), rtol=1e-6)
        assert list(f["object_id"].asstr()[:]) == rows["object_id"]
    prov = preprocess_spectra(tmp_path / "xm.h5", "desi", tmp_path / "pre.h5")
    assert prov["passed_through"] == 3 and prov["n_written"] == 2  # row 0 is all zero flux: dropped
    assert prov["dropped_examples"]["all_zero"] == [rows["object_id"][0]]


def sdss_table(path, ids, lengths, with_images=True, id_name="object_id"):
    cols = {"spectrum": spectrum_feature(), id_name: Value("string"), "ra": Value("float64"), "dec": Value("float64")}
    rows = {"spectrum": [sdss_value(int(i[3:]), n, 1000 + 7 * k) for k, (i, n) in enumerate(zip(ids, lengths))],
            id_name: list(ids), "ra": [float(i[3:]) for i in ids], "dec": [0.0] * len(ids)}
    if with_images:
        cols["image"] = image_feature()
        rows["image"] = [image_value(int(i[3:]), HSC) for i in ids]
    datasets.Dataset.from_dict(rows, features=Features(cols)).to_parquet(str(path))
    return path


def hsc_table(path, ids):
    feat = Features({"image": image_feature(), "object_id": Value("string"), "ra": Value("float64"),
                     "dec": Value("float64")})
    rows = {"image": [image_value(int(i[3:]), HSC) for i in ids], "object_id": list(ids),
            "ra": [float(i[3:]) for i in ids], "dec": [0.0] * len(ids)}
    datasets.Dataset.from_dict(rows, features=feat).to_parquet(str(path))
    return path


def test_sdss_layout_ragged_spectra_padded_with_per_row_grids(tmp_path):
    src = sdss_table(tmp_path / "sdss.parquet", ["obj0", "obj1", "obj2", "obj3"], [50, 60, 55, 60])
    ingest_hf(str(src), tmp_path / "xm.h5", name="sdss_hsc", surveys=["sdss", "hsc"], chunk_size=3)
    with h5py.File(tmp_path / "xm.h5", "r") as f:
        wave, flux, mask = f["sdss/wavelength"][:], f["sdss/flux"][:], f["sdss/mask"][:]
    assert wave.shape == flux.shape == (4, 60)
    assert np.isnan(wave[0, 50:]).all() and mask[0, 50:].all() and (flux[0, 50:] == 0).all()
    np.testing.assert_allclose(wave[1, :60], sdss_wavelength(60, 1007), rtol=1e-6)
    assert not mask[1].any() and np.isnan(wave[2, 55:]).all()
    prov = preprocess_spectra(tmp_path / "xm.h5", "sdss", tmp_path / "pre.h5")
    assert prov["resampled"] == 4 and prov["distinct_input_grids"] == 4


def test_separately_stored_sides_realigned_by_id(tmp_path):
    ids = [f"obj{i}" for i in range(6)]
    (tmp_path / "hsc").mkdir()
    hsc_table(tmp_path / "hsc" / "train-00000-of-00001.parquet", ids)
    hsc = tmp_path / "hsc"  # a directory of parquet files, as on the hub
    shuffled = [ids[k] for k in (4, 2, 0, 5, 1, 3)]
    sdss = sdss_table(tmp_path / "sdss.parquet", shuffled, [40] * 6, with_images=False)
    ingest_hf({"hsc": str(hsc), "sdss": str(sdss)}, tmp_path / "xm.h5", name="sdss_hsc", surveys=["hsc", "sdss"],
              chunk_size=4)
    validate_crossmatch(tmp_path / "xm.h5")
    with h5py.File(tmp_path / "xm.h5", "r") as f:
        assert list(f["object_id"].asstr()[:]) == ids
        # object i's spectrum is the constant i: rows re-aligned, not joined by row order
        np.testing.assert_array_equal(f["sdss/flux"][:, 0], np.arange(6))
        np.testing.assert_allclose(f["hsc/flux"][:, 0, 0, 0], np.arange(6), rtol=1e-6)
        assert f["sdss/wavelength"].shape == (6, 40)
        np.testing.assert_allclose(f["sdss/wavelength"][0], sdss_wavelength(40, 1000 + 7 * 2), rtol=1e-6)


def test_sides_with_per_survey_id_columns_and_limit(tmp_path):
    ids = [f"obj{i}" for i in range(6)]
    hsc = hsc_table(tmp_path / "hsc.parquet", ids)
    sdss = sdss_table(tmp_path / "sdss.parquet", ids[::-1], [40] * 6, with_images=False, id_name="hsc_object_id")
    ingest_hf({"hsc": str(hsc), "sdss": str(sdss)}, tmp_path / "xm.h5", name="x", surveys=["hsc", "sdss"],
              id_column={"hsc": "object_id", "sdss": "hsc_object_id"}, limit=3)
    with h5py.File(tmp_path / "xm.h5", "r") as f:
        assert list(f["object_id"].asstr()[:]) == ids[:3]
        np.testing.assert_array_equal(f["sdss/flux"][:, 0], [0, 1, 2])


def test_unmatched_ids_are_refused(tmp_path):
    ids = [f"obj{i}" for i in range(5)]
    hsc = hsc_table(tmp_path / "hsc.parquet", ids)
    sdss = sdss_table(tmp_path / "sdss.parquet", ids[:4][::-1] + ["obj9"], [30] * 5, with_images=False)
    with pytest.raises(SchemaError, match=r"1 ids of 'hsc' \(\S*hsc\.parquet\) are not in 'sdss' "
                                          r"\(\S*sdss\.parquet\), e.g. \['obj4'\]; 1 ids of 'sdss' are not in 'hsc', "
                                          r"e.g. \['obj9'\]"):
        ingest_hf({"hsc": str(hsc), "sdss": str(sdss)}, tmp_path / "xm.h5", name="x", surveys=["hsc", "sdss"])
    assert not (tmp_path / "xm.h5").exists() and not list(tmp_path.glob(".*side.h5"))


def test_a_layout_mmu_did_not_build_is_ingested_but_never_simulated(tmp_path, monkeypatch):
    """A second JWST-HSC table (as a COSMOS-Web crossmatch would be): one Layout entry, read by
    name; the simulated sky keeps the MMU layout of the same surveys."""
    name = "someone/jwst_hsc_other"
    monkeypatch.setitem(LAYOUTS, name, Layout({"jwst": ("jwst_images",), "hsc": ("hsc_images",)}, ("object_id",)))
    jwst = [f"F{b[1:].upper()}" for b in get_survey("jwst").bands]
    feat = Features({"hsc_images": image_feature(), "jwst_images": image_feature(), "object_id": Value("string")})
    rows = {"hsc_images": [image_value(i, HSC) for i in range(2)],
            "jwst_images": [{"band": jwst, "flux": np.full((7, H, H), i, np.float32),
                             "ivar": np.ones((7, H, H), np.float32), "mask": np.zeros((7, H, H), bool)}
                            for i in range(2)], "object_id": ["a", "b"]}
    datasets.Dataset.from_dict(rows, features=feat).to_parquet(str(tmp_path / "t.parquet"))
    ingest_hf(str(tmp_path / "t.parquet"), tmp_path / "xm.h5", name="x", surveys=["jwst", "hsc"], layout=name)
    with h5py.File(tmp_path / "xm.h5", "r") as f:
        assert list(f["object_id"].asstr()[:]) == ["a", "b"] and f["jwst/flux"].shape == (2, 7, H, H)
        np.testing.assert_array_equal(f["jwst/flux"][1], np.ones((7, H, H)))
    assert layout_for_surveys(["hsc", "jwst"]) is None  # two tables hold them: ingestion asks which
    assert layout_for_surveys(["hsc", "jwst"], mmu=True) == "Smith42/jwst_hsc_crossmatched"
    with pytest.raises(KeyError, match=r"unknown Multimodal Universe layout 'someone/jwst_hsc_other'; known: \["):
        get_layout(name, mmu=True)


def test_clear_errors_for_missing_columns_and_bands(tmp_path):
    src = legacy_table(tmp_path / "t.parquet")
    with pytest.raises(SchemaError, match=r"t\.parquet: no column for survey 'jwst' \(tried \['jwst_image'\]\); "
                                          r"columns are \['hsc_image', 'legacysurvey_image'"):
        ingest_hf(str(src), tmp_path / "xm.h5", name="x", surveys=["jwst", "hsc"], layout="Smith42/jwst_hsc_crossmatched")
    with pytest.raises(SchemaError, match=r"obj1'?: no band \['y'\] among \['g', 'r', 'i', 'z'\]"):
        image_arrays(image_value(1, HSC[:4]), "hsc", "t.parquet: column 'image' of object_id 'obj1'")
    with pytest.raises(ValueError, match="no column layout for surveys"):
        ingest_hf(str(src), tmp_path / "xm.h5", name="x", surveys=["jwst", "legacysurvey"])
    assert set(LAYOUTS) == {f"Smith42/{s}_hsc_crossmatched" for s in ("jwst", "legacysurvey", "desi", "sdss")} | {
        COSMOS}


def test_repeated_object_ids_keep_the_first_row(tmp_path, caplog):
    src = sdss_table(tmp_path / "s.parquet", ["obj0", "obj1", "obj0", "obj2"], [30] * 4)
    ingest_hf(str(src), tmp_path / "xm.h5", name="x", surveys=["sdss", "hsc"])
    with h5py.File(tmp_path / "xm.h5", "r") as f:
        assert list(f["object_id"].asstr()[:]) == ["obj0", "obj1", "obj2"]
        np.testing.assert_allclose(f["sdss/wavelength"][0], sdss_wavelength(30, 1000), rtol=1e-6)  # row 0, not row 2
        prov = json.loads(f.attrs["provenance"])
    assert prov["duplicate_ids_dropped"] == {"n": 1, "examples": ["obj0"]}
    assert prov["columns"] == {"sdss": "spectrum", "hsc": "image"} and prov["object_id_column"] == "object_id"
    assert "dropped 1 rows repeating an earlier object id" in caplog.text


def cosmos_table(path, n=4, mode="RGB", shapes=((12, 10), (9, 9))):
    """COSMOS-Web's layout: PIL images (stored encoded) and LePhare columns, no id column. Channel
    c of object i's image holds i + 10 c + a pixel ramp (JWST's 100 more)."""
    from PIL import Image as PILImage

    def rgb(i, shape, offset):
        ramp = np.arange(shape[0] * shape[1]).reshape(shape) % 7
        return np.stack([i + 10 * c + offset + ramp for c in range(3)], axis=-1).astype(np.uint8)

    cat = ["lephare_photozs", "lp_mass", "lp_ssfr", "mag_model_hsc-g", "mag_model_hsc-r"]
    feat = Features({"hsc_images": datasets.Image(), "jwst_images": datasets.Image(),
                     **{c: Value("float64") for c in cat}})
    pixels = {"hsc_images": [rgb(i, shapes[0], 0) for i in range(n)],
              "jwst_images": [rgb(i, shapes[1], 100) for i in range(n)]}
    rows = {k: [PILImage.fromarray(a).convert(mode) for a in v] for k, v in pixels.items()}
    rows |= {c: [0.5 * i + j for i in range(n)] for j, c in enumerate(cat)}
    datasets.Dataset.from_dict(rows, features=feat).to_parquet(str(path))
    return pixels


def test_cosmos_web_layout_decodes_pil_images_numbers_rows_and_keeps_lephare_columns(tmp_path):
    """The authors' COSMOS-Web table (images as PIL images, encoded on disk): the images come back
    as the stored 8-bit values, channels first, ids are the row numbers, the LePhare columns
    (dashes and all) are properties; the plan picks the layout from the surveys."""
    pixels = cosmos_table(tmp_path / "c.parquet")
    assert layout_for_surveys(["cosmos_hsc", "cosmos_jwst"]) == COSMOS
    ingest_hf(str(tmp_path / "c.parquet"), tmp_path / "xm.h5", name="cosmos_web",
              surveys=["cosmos_jwst", "cosmos_hsc"], layout=COSMOS, limit=3)
    with h5py.File(tmp_path / "xm.h5", "r") as f:
        assert list(f["object_id"].asstr()[:]) == ["0", "1", "2"]
        for survey, column in (("cosmos_hsc", "hsc_images"), ("cosmos_jwst", "jwst_images")):
            assert list(f[survey].attrs["bands"]) == ["red", "green", "blue"]
            assert f[f"{survey}/flux"].dtype == np.float32
            np.testing.assert_array_equal(f[f"{survey}/flux"][:], np.moveaxis(np.stack(pixels[column][:3]), -1, 1))
        assert sorted(f["properties"]) == ["lephare_photozs", "lp_mass", "lp_ssfr", "mag_model_hsc-g",
                                           "mag_model_hsc-r"]
        np.testing.assert_array_equal(f["properties/mag_model_hsc-g"][:], [3.0, 3.5, 4.0])
        assert json.loads(f.attrs["provenance"])["object_id_column"] == "row number"
    validate_crossmatch(tmp_path / "xm.h5")


def test_cosmos_web_images_other_than_8_bit_rgb_are_refused(tmp_path):
    cosmos_table(tmp_path / "c.parquet", mode="L")
    with pytest.raises(SchemaError, match=r"c\.parquet: column 'jwst_images' of object_id '0': image mode 'L', "
                                          r"expected 8-bit 'RGB'"):
        ingest_hf(str(tmp_path / "c.parquet"), tmp_path / "xm.h5", name="c", surveys=["cosmos_jwst", "cosmos_hsc"],
                  layout=COSMOS)
    with pytest.raises(SchemaError, match=r"here: an RGB image, but survey 'hsc' has bands \['g', 'r', 'i', 'z', "
                                          r"'y'\]"):
        image_arrays({"bytes": b"", "path": None}, "hsc", "here")
