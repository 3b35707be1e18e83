"""Fault injection: every stage fails loudly, names what is wrong, and never loses a result.

Each case asserts (1) an error naming the offending file, object or key, and (2) that the
previous output of the failing job is still there byte for byte (same mtime) with no temporary
file left beside it: writers are atomic (``schema.atomic_path``).

Fault classes: damaged/missing inputs of every format; wrong schema (band, shape, dtype, rows,
ids); NaN/inf/all-zero images and spectra; spectra off the expected grid; misaligned, missing
or duplicated ids between the two sides of a comparison (objects on one side only are left out
and counted); unknown model/survey names and invalid config values; an embedding job killed with SIGKILL; NaN embeddings reaching a metric job; a
full disk (real ENOSPC from /dev/full, and ENOSPC mid-write) and an unwritable results directory.
"""
import errno
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from samesky import embed as embed_mod
from samesky import schema
from samesky.config import ConfigError, validate_config
from samesky.embed import embed_file
from samesky.metrics.compare import compare_files
from samesky.metrics.knn import knn_file
from samesky.models import family_sizes, get_model, load_embedder, save_tiny
from samesky.plan import Plan
from samesky.preprocess import (
    compute_percentiles,
    preprocess_images,
    preprocess_spectra,
)
from samesky.schema import PERCENTILES_SCHEMA, write_percentiles
from samesky.surveys import DESI_WAVELENGTH, get_survey, sdss_wavelength

N_XM, N_EMB, K = 8, 40, 5
BANDS = ["z", "r", "g"]
CMP = {"kind": "crossmodal", "crossmatch": "desi_hsc", "survey_a": "desi", "model_a": "specformer-base",
       "survey_b": "hsc", "model_b": "vit-base"}
CMP_OPTS = dict(metrics=["mknn", "cka_linear"], k=K, null_draws=5, subsampling_splits=5, ci=0.9, seed=0,
                feature_space_draws=5)


# ---- helpers ------------------------------------------------------------------------------------
def snapshot(path: Path):
    return path.read_bytes(), path.stat().st_mtime_ns


def assert_intact(path: Path, snap) -> None:
    """The previous result is untouched and no temporary sibling was left behind."""
    assert path.exists(), f"{path} was removed"
    assert snapshot(path) == snap, f"{path} was modified"
    assert_no_tmp(path.parent)


def assert_no_tmp(directory: Path) -> None:
    if directory.is_dir():
        left = [p.name for p in directory.rglob(".*.tmp-*")]
        assert not left, f"temporary files left behind in {directory}: {left}"


def prior_result(good: Path, out: Path):
    """Put a previous good result at ``out`` (with an old mtime) and snapshot it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(good, out)
    os.utime(out, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    return snapshot(out)


def raises_naming(exc, path, *fragments):
    """pytest.raises whose message must contain str(path) and every fragment (literal text)."""
    pattern = "".join(f"(?=.*{re.escape(str(s))})" for s in (path, *fragments))
    return pytest.raises(exc, match=re.compile(pattern, re.S))


def h5_write(path: Path, **datasets) -> Path:
    """An HDF5 file written by hand (bypassing the schema writers' own checks)."""
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            value = np.asarray(value)
            if value.dtype.kind == "U":
                f.create_dataset(key, data=value.astype(object), dtype=schema.STR)
            else:
                f.create_dataset(key, data=value)
    return path


def spectra_arrays(n, flux=None, **over):
    flux = np.random.default_rng(5).uniform(1, 2, (n, len(DESI_WAVELENGTH))).astype(np.float32) if flux is None else flux
    arrays = {"flux": flux, "ivar": np.ones_like(flux), "mask": np.zeros(flux.shape, bool),
              "wavelength": DESI_WAVELENGTH}
    arrays.update(over)
    return arrays


def ids_of(n, prefix="o"):
    return np.array([f"{prefix}{i}" for i in range(n)])


# ---- shared good files (built once) -----------------------------------------------------------------
@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    rng = np.random.default_rng(0)
    xm = d / "xm.h5"
    flux = rng.lognormal(size=(N_XM, 5, 8, 8)).astype(np.float32)
    schema.write_crossmatch(xm, "desi_hsc", ids_of(N_XM), np.zeros(N_XM), np.zeros(N_XM),
                            {"hsc": {"flux": flux}, "desi": spectra_arrays(N_XM)})
    pct = d / "hsc.json"
    write_percentiles(pct, compute_percentiles(xm, "hsc", bands=BANDS))
    pre = d / "pre.h5"
    preprocess_images(xm, "hsc", pre, bands=BANDS, percentiles_json=pct)
    pre_spec = d / "pre_desi.h5"
    preprocess_spectra(xm, "desi", pre_spec)
    emb, knn = d / "emb.h5", d / "knn.h5"
    schema.write_embeddings(emb, ids_of(N_EMB), rng.normal(size=(N_EMB, 6)), {"model": "m"})
    knn_file(emb, knn, K)
    return {"dir": d, "crossmatch": xm, "percentiles": pct, "preprocessed": pre, "pre_desi": pre_spec,
            "embedding": emb, "knn": knn}


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    return save_tiny("vit-base", tmp_path_factory.mktemp("vit"))


# ---- 1. damaged or missing input files, of every format ------------------------------------------
DAMAGED_KEY = {"crossmatch": "hsc/flux", "preprocessed": "data", "embedding": "embedding", "knn": "indices"}


def damage(src: Path, dst: Path, how: str, key: str) -> Path:
    data = src.read_bytes()
    if how == "missing":
        return dst
    if how == "truncated":
        dst.write_bytes(data[: len(data) // 2])
    elif how == "header_overwritten":  # superblock gone: not recognisable as HDF5
        dst.write_bytes(b"\0" * 512 + data[512:])
    elif how == "object_header_overwritten":  # the file opens, one dataset's metadata is garbage
        with h5py.File(src, "r") as f:
            addr = h5py.h5o.get_info(f[key].id).addr
        dst.write_bytes(data[:addr] + b"\xde\xad\xbe\xef" * 4 + data[addr + 16:])
    elif how == "empty":
        dst.write_bytes(b"")
    return dst


def _consumers(kind, bad, good, vit, out_dir):
    """(label, call, output path of the job or None, previous good result for that output)."""
    if kind == "crossmatch":
        return [
            ("validate_crossmatch", lambda: schema.validate_crossmatch(bad), None, None),
            ("compute_percentiles", lambda: compute_percentiles(bad, "hsc", bands=BANDS), None, None),
            ("preprocess_images", lambda: preprocess_images(bad, "hsc", out_dir / "hsc.h5", bands=BANDS,
                                                            percentiles_json=good["percentiles"]),
             out_dir / "hsc.h5", good["preprocessed"]),
            ("preprocess_spectra", lambda: preprocess_spectra(bad, "desi", out_dir / "desi.h5"),
             out_dir / "desi.h5", good["pre_desi"]),
        ]
    if kind == "preprocessed":
        return [
            ("read_preprocessed", lambda: schema.read_preprocessed(bad), None, None),
            ("embed_file", lambda: embed_file(bad, out_dir / "vit-base.h5", model_key="vit-base", source=vit,
                                              device="cpu"), out_dir / "vit-base.h5", good["embedding"]),
        ]
    if kind == "embedding":
        return [
            ("read_embeddings", lambda: schema.read_embeddings(bad), None, None),
            ("knn_file", lambda: knn_file(bad, out_dir / "knn.h5", K), out_dir / "knn.h5", good["knn"]),
            ("compare_files/a", lambda: compare_files(bad, good["embedding"], None, good["knn"], comparison=CMP,
                                                      **CMP_OPTS), None, None),
            ("compare_files/b", lambda: compare_files(good["embedding"], bad, good["knn"], None, comparison=CMP,
                                                      **CMP_OPTS), None, None),
        ]
    return [
        ("read_knn", lambda: schema.read_knn(bad), None, None),
        ("compare_files", lambda: compare_files(good["embedding"], good["embedding"], good["knn"], bad,
                                                comparison=CMP, **CMP_OPTS), None, None),
    ]


@pytest.mark.parametrize("how", ["missing", "empty", "truncated", "header_overwritten", "object_header_overwritten"])
@pytest.mark.parametrize("kind", ["crossmatch", "preprocessed", "embedding", "knn"])
def test_damaged_or_missing_input_fails_naming_the_file(kind, how, good, vit, tmp_path):
    bad = damage(good[kind], tmp_path / f"damaged_{kind}.h5", how, DAMAGED_KEY[kind])
    expected = FileNotFoundError if how == "missing" else schema.SchemaError
    fragment = {"missing": "does not exist", "object_header_overwritten": "unreadable HDF5 content"}.get(
        how, "not a readable HDF5 file")
    for label, call, out, previous in _consumers(kind, bad, good, vit, tmp_path / "out"):
        snap = prior_result(previous, out) if out else None
        with raises_naming(expected, bad, fragment):
            call()
        if out:
            assert_intact(out, snap)
            assert not out.with_name(out.name + ".shards").exists(), label


# ---- 2. wrong schema: missing band, wrong shape/dtype/rows, bad ids ------------------------------
def _edit_copy(src: Path, dst: Path, edit) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        edit(f)
    return dst


def _replace(key, value, dtype=None):
    def edit(f):
        attrs = dict(f[key].attrs)
        del f[key]
        f.create_dataset(key, data=value, dtype=dtype)
        f[key].attrs.update(attrs)
    return edit


def _set_attr(key, name, value):
    def edit(f):
        f[key].attrs[name] = value
    return edit


CROSSMATCH_FAULTS = {
    "band_missing_from_flux": (_replace("hsc/flux", np.ones((N_XM, 4, 8, 8), np.float32)),
                               "'hsc/flux' has shape (8, 4, 8, 8), expected (8, 5, 'any', 'any')"),
    "bands_attribute_wrong": (_set_attr("hsc", "bands", ["g", "r", "i", "z", "u"]), "'hsc' attribute 'bands'"),
    "flux_3d": (_replace("hsc/flux", np.ones((N_XM, 5, 8), np.float32)), "'hsc/flux' has shape (8, 5, 8)"),
    "flux_rows_differ_from_ids": (_replace("hsc/flux", np.ones((N_XM - 1, 5, 8, 8), np.float32)),
                                  "'hsc/flux' has shape (7, 5, 8, 8)"),
    "flux_int_dtype": (_replace("hsc/flux", np.ones((N_XM, 5, 8, 8), np.int16)), "'hsc/flux' has dtype int16"),
    "flux_str_dtype": (_replace("hsc/flux", np.full((N_XM, 5, 8, 8), "1.0", object), schema.STR),
                       "'hsc/flux' has dtype object"),
    "object_id_missing": (lambda f: f.__delitem__("object_id"), "missing dataset 'object_id'"),
    "object_id_duplicated": (_replace("object_id", np.array(["o0"] * N_XM, object), schema.STR),
                             "object_id has 7 duplicates, e.g. ['o0']"),
    "spectrum_mask_float": (_replace("desi/mask", np.zeros((N_XM, 7781), np.float32)), "'desi/mask' has dtype float32"),
    "spectrum_ivar_missing": (lambda f: f.__delitem__("desi/ivar"), "missing dataset 'desi/ivar'"),
    "spectrum_wavelength_short": (_replace("desi/wavelength", DESI_WAVELENGTH[:100]),
                                  "'desi/wavelength' has shape (100,)"),
    "survey_group_missing": (lambda f: f.__delitem__("hsc"), "missing group 'hsc'"),
    "unknown_survey_listed": (lambda f: f.attrs.__setitem__("surveys", ["hsc", "desi", "euclid"]),
                              "unknown survey 'euclid'"),
    "schema_attribute_wrong": (lambda f: f.attrs.__setitem__("schema", "other/9"), "attribute 'schema' is 'other/9'"),
}


@pytest.mark.parametrize("fault", sorted(CROSSMATCH_FAULTS))
def test_crossmatch_with_wrong_schema_is_refused_by_every_reader(fault, good, tmp_path):
    edit, message = CROSSMATCH_FAULTS[fault]
    bad = _edit_copy(good["crossmatch"], tmp_path / "xm.h5", edit)
    out_img, out_spec = tmp_path / "out" / "hsc.h5", tmp_path / "out" / "desi.h5"
    snaps = prior_result(good["preprocessed"], out_img), prior_result(good["pre_desi"], out_spec)
    calls = [lambda: schema.validate_crossmatch(bad),
             lambda: compute_percentiles(bad, "hsc", bands=BANDS),
             lambda: preprocess_images(bad, "hsc", out_img, bands=BANDS, percentiles_json=good["percentiles"]),
             lambda: preprocess_spectra(bad, "desi", out_spec)]
    for call in calls:
        with raises_naming(schema.SchemaError, bad, message):
            call()
    assert_intact(out_img, snaps[0])
    assert_intact(out_spec, snaps[1])


def test_requested_band_absent_names_band_and_file(good, tmp_path):
    out = tmp_path / "hsc.h5"
    snap = prior_result(good["preprocessed"], out)
    with raises_naming(schema.SchemaError, good["crossmatch"], "'hsc' has no band ['u']"):
        preprocess_images(good["crossmatch"], "hsc", out, bands=["u", "r", "g"], percentiles_json=good["percentiles"])
    with raises_naming(schema.SchemaError, good["crossmatch"], "'hsc' has no band ['u']"):
        compute_percentiles(good["crossmatch"], "hsc", bands=["u", "r", "g"])
    with raises_naming(schema.SchemaError, good["percentiles"], "no percentiles for band(s) ['i']"):
        preprocess_images(good["crossmatch"], "hsc", out, bands=["i", "r", "g"], percentiles_json=good["percentiles"])
    assert_intact(out, snap)


@pytest.mark.parametrize("fault, message", [
    ("missing", "percentiles file does not exist"),
    ("truncated", "not valid JSON"),
    ("other_survey", "percentiles are for survey 'jwst', not 'hsc'"),
    ("low_not_below_high", "need finite low < high"),
])
def test_bad_percentiles_file_is_refused_naming_it(fault, message, good, tmp_path):
    rec = json.loads(good["percentiles"].read_text())
    bad = tmp_path / "hsc.json"
    if fault == "truncated":
        bad.write_text(good["percentiles"].read_text()[:40])
    elif fault == "other_survey":
        bad.write_text(json.dumps({**rec, "survey": "jwst"}))
    elif fault == "low_not_below_high":
        bad.write_text(json.dumps({**rec, "high": rec["low"]}))
    out = tmp_path / "out.h5"
    snap = prior_result(good["preprocessed"], out)
    with raises_naming((schema.SchemaError, FileNotFoundError), bad, message):
        preprocess_images(good["crossmatch"], "hsc", out, bands=BANDS, percentiles_json=bad)
    assert_intact(out, snap)


IDS = ids_of(6)
IMG = np.zeros((6, 3, 8, 8), np.uint8)
PREPROCESSED_FAULTS = {
    "data_missing": (dict(object_id=IDS), "missing dataset 'data'"),
    "rows_differ_from_ids": (dict(object_id=IDS, data=IMG[:5]), "'data' has 5 rows for 6 object ids"),
    "channels_last": (dict(object_id=IDS, data=IMG.transpose(0, 2, 3, 1)), "'data' has shape (6, 8, 8, 3)"),
    "float_images": (dict(object_id=IDS, data=IMG.astype(np.float32)),
                     "raw flux images (3 bands) need provenance 'survey' and 'bands'"),
    "float64_images": (dict(object_id=IDS, data=IMG.astype(np.float64)), "dtype float64, expected images"),
    "string_data": (dict(object_id=IDS, data=np.array(["x"] * 6)), "'data' has dtype object"),
    "duplicate_ids": (dict(object_id=np.r_[IDS[:5], IDS[:1]], data=IMG), "object_id has 1 duplicates, e.g. ['o0']"),
    "numeric_ids": (dict(object_id=np.arange(6), data=IMG), "'object_id' has dtype int64"),
    "spectra_for_an_image_model": (dict(object_id=IDS, data=np.ones((6, 7781), np.float32)),
                                   "holds spectrum inputs, but model 'vit-base' embeds rgb inputs"),
}


@pytest.mark.parametrize("fault", sorted(PREPROCESSED_FAULTS))
def test_preprocessed_file_with_wrong_schema_is_refused_before_embedding(fault, good, vit, tmp_path):
    datasets, message = PREPROCESSED_FAULTS[fault]
    bad = h5_write(tmp_path / "pre.h5", **datasets)
    out = tmp_path / "emb" / "vit-base.h5"
    snap = prior_result(good["embedding"], out)
    with raises_naming(schema.SchemaError, bad, message):
        embed_file(bad, out, model_key="vit-base", source=vit, device="cpu")
    assert_intact(out, snap)
    assert not out.with_name(out.name + ".shards").exists()


Z6 = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
EMBEDDING_FAULTS = {
    "embedding_missing": (dict(object_id=IDS), "missing dataset 'embedding'"),
    "embedding_1d": (dict(object_id=IDS, embedding=Z6[:, 0]), "'embedding' has shape (6,)"),
    "embedding_int": (dict(object_id=IDS, embedding=Z6.astype(np.int64)), "'embedding' has dtype int64"),
    "rows_differ_from_ids": (dict(object_id=IDS, embedding=Z6[:5]), "'embedding' has shape (5, 4)"),
    "float_ids": (dict(object_id=np.arange(6.0), embedding=Z6), "'object_id' has dtype float64"),
    "duplicate_ids": (dict(object_id=np.r_[IDS[:5], IDS[1:2]], embedding=Z6), "1 duplicates, e.g. ['o1']"),
}


@pytest.mark.parametrize("fault", sorted(EMBEDDING_FAULTS))
def test_embedding_file_with_wrong_schema_is_refused(fault, good, tmp_path):
    datasets, message = EMBEDDING_FAULTS[fault]
    bad = h5_write(tmp_path / "emb.h5", **datasets)
    out = tmp_path / "knn" / "emb.h5"
    snap = prior_result(good["knn"], out)
    with raises_naming(schema.SchemaError, bad, message):
        schema.read_embeddings(bad)
    with raises_naming(schema.SchemaError, bad, message):
        knn_file(bad, out, 2)
    assert_intact(out, snap)


IDX = np.array([[1, 2], [2, 3], [3, 4], [4, 5], [5, 0], [0, 1]])
SIM = np.full((6, 2), 0.5, np.float32)
KNN_FAULTS = {
    "similarity_missing": (dict(object_id=IDS, indices=IDX), "missing dataset 'similarity'"),
    "similarity_shape": (dict(object_id=IDS, indices=IDX, similarity=SIM[:, :1]), "'similarity' has shape (6, 1)"),
    "indices_float": (dict(object_id=IDS, indices=IDX.astype(float), similarity=SIM), "'indices' has dtype float64"),
    "indices_rows": (dict(object_id=IDS, indices=IDX[:5], similarity=SIM[:5]), "'indices' has shape (5, 2)"),
    "indices_out_of_range": (dict(object_id=IDS, indices=IDX + 1, similarity=SIM), "'indices' out of range [0, 6)"),
    "self_as_neighbour": (dict(object_id=IDS, indices=np.c_[np.arange(6), IDX[:, 0]], similarity=SIM),
                          "own neighbour (self must be excluded), e.g. object_id ['o0', 'o1'"),
    "nan_similarity": (dict(object_id=IDS, indices=IDX, similarity=np.where(np.arange(6)[:, None] == 3, np.nan, SIM)),
                       "'similarity': 1 rows contain NaN or inf, e.g. object_id ['o3']"),
    "duplicate_ids": (dict(object_id=np.r_[IDS[:5], IDS[2:3]], indices=IDX, similarity=SIM),
                      "1 duplicates, e.g. ['o2']"),
}


@pytest.mark.parametrize("fault", sorted(KNN_FAULTS))
def test_knn_file_with_wrong_schema_is_refused(fault, tmp_path):
    datasets, message = KNN_FAULTS[fault]
    bad = h5_write(tmp_path / "knn.h5", **datasets)
    with raises_naming(schema.SchemaError, bad, message):
        schema.read_knn(bad)


# ---- 3. NaN / inf / all-zero images and spectra, spectra off their grid ---------------------------
def test_bad_images_are_dropped_or_filled_and_counted_with_example_ids(tmp_path):
    rng = np.random.default_rng(2)
    flux = rng.lognormal(size=(8, 5, 8, 8)).astype(np.float32)
    z, r, g = (get_survey("hsc").band_index(b) for b in BANDS)
    flux[1, r] = np.nan                    # a used channel with no finite pixel
    flux[2] = 0                            # an empty cutout
    flux[3, g, :2, :3] = np.inf            # 6 non-finite pixels: filled, image kept
    flux[3, z, 0, 0] = np.nan              # + 1
    flux[4, z] = -np.inf                   # a whole channel infinite
    flux[5, :, :, :] = 3.0                 # constant: nothing to rescale
    flux[6, get_survey("hsc").band_index("i")] = np.nan  # an unused band: irrelevant
    xm = tmp_path / "xm.h5"
    schema.write_crossmatch(xm, "t", ids_of(8), np.zeros(8), np.zeros(8), {"hsc": {"flux": flux}})
    pct = tmp_path / "hsc.json"
    write_percentiles(pct, {"schema": PERCENTILES_SCHEMA, "survey": "hsc", "percentiles": [5, 99],
                            "low": dict.fromkeys(BANDS, 0.5), "high": dict.fromkeys(BANDS, 4.0), "n_used": 8})
    prov = preprocess_images(xm, "hsc", tmp_path / "out.h5", bands=BANDS, percentiles_json=pct)
    with h5py.File(tmp_path / "out.h5", "r") as f:
        kept, stored = f["object_id"].asstr()[:].tolist(), schema.read_provenance(f)
    assert prov == stored
    assert prov["dropped"] == {"all_nan": 2, "all_zero": 1, "no_signal": 1}
    assert prov["dropped_examples"] == {"all_nan": ["o1", "o4"], "all_zero": ["o2"], "no_signal": ["o5"]}
    assert prov["nonfinite_pixels_filled"] == 7 and prov["n_input"] == 8 and prov["n_written"] == 4
    assert kept == ["o0", "o3", "o6", "o7"]


def test_every_image_dropped_is_an_error_not_an_empty_file(good, tmp_path):
    xm = tmp_path / "xm.h5"
    schema.write_crossmatch(xm, "t", ids_of(3), np.zeros(3), np.zeros(3), {"hsc": {"flux": np.zeros((3, 5, 8, 8))}})
    out = tmp_path / "out.h5"
    snap = prior_result(good["preprocessed"], out)
    with raises_naming(schema.SchemaError, xm, "all 3 'hsc' images were dropped", "'all_zero': ['o0', 'o1', 'o2']"):
        preprocess_images(xm, "hsc", out, bands=BANDS, percentiles_json=good["percentiles"])
    assert_intact(out, snap)


def test_bad_spectra_are_masked_or_dropped_and_counted_with_example_ids(tmp_path):
    flux = np.random.default_rng(3).uniform(1, 2, (7, 7781)).astype(np.float32)
    ivar = np.ones_like(flux)
    flux[1, 10:15] = np.nan                # 5 bad pixels: masked, kept
    flux[1, 20] = np.inf                   # + 1
    flux[2] = np.nan                       # nothing valid: dropped
    flux[3] = 0                            # all-zero flux with positive ivar: no signal, dropped
    ivar[4] = 0                            # no valid pixel: dropped
    flux[5, :100] = 0                      # partly zero: kept
    xm = tmp_path / "xm.h5"
    schema.write_crossmatch(xm, "t", ids_of(7), np.zeros(7), np.zeros(7), {"desi": spectra_arrays(7, flux, ivar=ivar)})
    prov = preprocess_spectra(xm, "desi", tmp_path / "out.h5")
    with h5py.File(tmp_path / "out.h5", "r") as f:
        kept, data, out_ivar, mask = f["object_id"].asstr()[:].tolist(), f["data"][:], f["ivar"][:], f["mask"][:]
        assert schema.read_provenance(f) == prov
    assert kept == ["o0", "o1", "o5", "o6"]
    assert prov["dropped"] == {"no_valid_pixels": 2, "all_zero": 1}
    assert prov["dropped_examples"] == {"no_valid_pixels": ["o2", "o4"], "all_zero": ["o3"]}
    assert prov["nonfinite_flux_pixels"] == 6 + 7781 and prov["spectra_with_nonfinite_flux"] == 2
    assert np.isfinite(data).all() and np.array_equal(mask, out_ivar == 0)
    assert mask[1].sum() == 6 and mask[1, 10:15].all() and mask[1, 20] and not mask[[0, 2, 3]].any()


def test_desi_spectrum_off_the_desi_grid_names_file_key_and_object(good, tmp_path):
    wave = np.tile(DESI_WAVELENGTH, (4, 1))
    wave[2] += 0.4  # half a pixel off
    xm = tmp_path / "xm.h5"
    schema.write_crossmatch(xm, "t", ids_of(4), np.zeros(4), np.zeros(4), {"desi": spectra_arrays(4, wavelength=wave)})
    out = tmp_path / "out.h5"
    snap = prior_result(good["pre_desi"], out)
    with raises_naming(schema.SchemaError, xm, "'desi/wavelength' of object_id 'o2' is not the DESI grid"):
        preprocess_spectra(xm, "desi", out)
    assert_intact(out, snap)


def test_spectra_on_a_grid_outside_the_desi_range_are_an_error(good, tmp_path):
    """SDSS wavelengths in nm instead of Angstrom: nothing overlaps the DESI grid."""
    w = sdss_wavelength(300, 2000) / 10
    flux = np.ones((3, 300), np.float32)
    xm = tmp_path / "xm.h5"
    schema.write_crossmatch(xm, "t", ids_of(3), np.zeros(3), np.zeros(3),
                            {"sdss": spectra_arrays(3, flux, wavelength=w)})
    out = tmp_path / "out.h5"
    snap = prior_result(good["pre_desi"], out)
    with raises_naming(schema.SchemaError, xm, "all 3 'sdss' spectra were dropped", "'no_valid_pixels': ['o0'"):
        preprocess_spectra(xm, "sdss", out)
    assert_intact(out, snap)


# ---- 4. misaligned, missing or duplicated ids between the sides of a comparison -----------------
@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(4)
    Za = rng.normal(size=(N_EMB, 8)).astype(np.float32)
    Zb = (Za @ rng.normal(size=(8, 8)) + 0.5 * rng.normal(size=(N_EMB, 8))).astype(np.float32)
    ids = ids_of(N_EMB, "g")
    files = {}
    for name, (i, Z) in {"a": (ids, Za), "b": (ids, Zb)}.items():
        files[name] = (d / f"{name}.h5", d / f"{name}.knn.h5")
        schema.write_embeddings(files[name][0], i, Z, {})
        knn_file(*files[name], K)
    return d, ids, Za, Zb, files


def _side(d, name, ids, Z, knn=True):
    emb = d / f"{name}.h5"
    schema.write_embeddings(emb, ids, Z, {})
    if knn:
        knn_file(emb, d / f"{name}.knn.h5", K)
    return emb, (d / f"{name}.knn.h5" if knn else None)


def test_reordered_side_gives_the_same_score_as_the_aligned_one(pair, tmp_path):
    _, ids, _, Zb, files = pair
    order = np.random.default_rng(5).permutation(N_EMB)
    eb, kb = _side(tmp_path, "b_shuffled", ids[order], Zb[order])
    (ea, ka), (eb0, kb0) = files["a"], files["b"]
    aligned = compare_files(ea, eb0, ka, kb0, comparison=CMP, **CMP_OPTS)
    shuffled = compare_files(ea, eb, ka, kb, comparison=CMP, **CMP_OPTS)
    for a, s in zip(aligned, shuffled):
        assert s["n"] == a["n"] == N_EMB
        for field in ("score", "null_mean", "p_value", "ci_low", "ci_high"):
            assert s[field] == pytest.approx(a[field], rel=1e-6, abs=1e-9), (a["metric"], field)
    # the side fed in the wrong order scores as a misaligned pair would (so re-alignment mattered)
    scrambled = compare_files(ea, h5_write(tmp_path / "lie.h5", object_id=ids, embedding=Zb[order]), ka, None,
                              comparison=CMP, **CMP_OPTS)
    assert scrambled[0]["score"] < aligned[0]["score"] / 2


def test_objects_on_one_side_only_are_left_out_and_counted_never_misaligned(pair, tmp_path):
    _, ids, Za, Zb, files = pair
    ea, ka = files["a"]
    renamed = ids.astype(object)
    renamed[7] = "g_stranger"
    eb, kb = _side(tmp_path, "renamed", renamed, Zb)
    keep = np.arange(N_EMB) != 7
    ea_sub, ka_sub = _side(tmp_path, "a_sub", ids[keep], Za[keep])
    eb_sub, kb_sub = _side(tmp_path, "b_sub", ids[keep], Zb[keep])
    got = compare_files(ea, eb, ka, kb, comparison=CMP, **CMP_OPTS)
    want = compare_files(ea_sub, eb_sub, ka_sub, kb_sub, comparison=CMP, **CMP_OPTS)
    for g, w in zip(got, want):
        assert (g["n"], g["n_excluded"]) == (N_EMB - 1, 2) and w["n_excluded"] == 0
        assert g["score"] == pytest.approx(w["score"], rel=1e-6), g["metric"]
    few = _side(tmp_path, "few", ids[: K + 1], Zb[: K + 1], knn=False)[0]
    with raises_naming(schema.SchemaError, ea, few, f"share {K + 1} objects, too few to compare at k={K}",
                       f"{N_EMB - K - 1} object_id only in {ea}"):
        compare_files(ea, few, ka, None, comparison=CMP, **CMP_OPTS)


def test_duplicated_ids_are_refused_naming_the_file_and_ids(pair, tmp_path):
    _, ids, _, Zb, files = pair
    ea, ka = files["a"]
    dup = h5_write(tmp_path / "dup.h5", object_id=np.r_[ids[:-1], ids[3:4]], embedding=Zb)
    for args in ((ea, dup, ka, None), (dup, ea, None, ka)):
        with raises_naming(schema.SchemaError, dup, "object_id has 1 duplicates, e.g. ['g3']"):
            compare_files(*args, comparison=CMP, **CMP_OPTS)


def test_knn_graph_of_another_order_or_file_is_refused(pair, tmp_path):
    _, ids, _, Zb, files = pair
    order = np.random.default_rng(6).permutation(N_EMB)
    eb, _ = _side(tmp_path, "b_shuffled", ids[order], Zb[order], knn=False)
    with raises_naming(schema.SchemaError, files["b"][1], eb, "does not belong", "same objects in a different order"):
        compare_files(files["a"][0], eb, files["a"][1], files["b"][1], comparison=CMP, **CMP_OPTS)


# ---- 5. unknown model or survey names; invalid config values --------------------------------------
def test_unknown_model_and_survey_names_fail_naming_the_key(good, tmp_path):
    with pytest.raises(KeyError, match=r"unknown model 'vit-gigantic'; known models: \[.*'vit-base'"):
        get_model("vit-gigantic")
    with pytest.raises(KeyError, match=r"unknown model family 'vitt'; known families: \[.*'vit'"):
        family_sizes("vitt")
    with pytest.raises(KeyError, match=r"unknown survey 'euclid'; known surveys: \[.*'hsc'"):
        get_survey("euclid")
    with pytest.raises(KeyError, match=r"unknown model 'specformer-huge'"):
        load_embedder("specformer-huge", tmp_path, device="cpu")
    with pytest.raises(KeyError, match=r"unknown model 'astropt-tiny'"):
        save_tiny("astropt-tiny", tmp_path / "astropt-tiny")
    assert not (tmp_path / "astropt-tiny").exists()
    out = tmp_path / "emb" / "x.h5"
    with pytest.raises(KeyError, match=r"unknown model 'dinov3-base'"):
        embed_file(good["preprocessed"], out, model_key="dinov3-base", device="cpu")
    assert not out.parent.exists()
    with pytest.raises(KeyError, match=r"unknown survey 'euclid'"):
        preprocess_spectra(good["crossmatch"], "euclid", tmp_path / "o.h5")
    with pytest.raises(ValueError, match=r"survey 'hsc' is not a spectrum survey"):
        preprocess_spectra(good["crossmatch"], "hsc", tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["crossmatches"]["desi_hsc"].update(surveys=["desi", "euclid"]),
     "crossmatches.desi_hsc.surveys: unknown survey 'euclid'; known surveys: ['cosmos_hsc', 'cosmos_jwst', 'desi'"),
    (lambda c: c["models"].update(spectrum="specformer-huge"), "models.spectrum: unknown model 'specformer-huge'"),
    (lambda c: c["models"]["image"].update(vit=["base", "huge2"]), "models.image.vit[1]: unknown size 'huge2'"),
    (lambda c: c["metrics"].update(k="ten"), "metrics.k: 'ten' is not of type 'integer'"),
    (lambda c: c["embed"].update(precision="fp8"), "embed.precision: 'fp8' is not one of"),
])
def test_invalid_config_values_name_the_key(breadth_config, edit, message):
    """Before any job: the schema and the planner (surveys are the registry's, samesky.surveys)."""
    edit(breadth_config)
    with pytest.raises(ConfigError) as err:
        Plan(validate_config(breadth_config))
    assert message in str(err.value)


# ---- 6. an embedding job killed with SIGKILL, then rerun ---------------------------------------------
KILL_CHILD = """
import sys, time
from samesky import embed
from samesky.runtime import setup_logging
setup_logging(None)
embed_rows = embed._embed_rows
def slow(*args):  # the real computation, paced so the test can kill the job between shards
    time.sleep(0.15)
    return embed_rows(*args)
embed._embed_rows = slow
embed.embed_file(sys.argv[1], sys.argv[2], model_key="vit-base", source=sys.argv[3], device="cpu",
                 batch_size=2, shard_size=2, workers=int(sys.argv[4]))
"""


@pytest.mark.parametrize("workers", [0, 2])  # input prepared in this process / in 2 worker processes
def test_embedding_killed_with_sigkill_resumes_from_its_shards(workers, vit, tmp_path, caplog, monkeypatch):
    n = 24
    pre = tmp_path / "pre.h5"
    data = np.random.default_rng(7).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    schema.write_preprocessed(pre, ids_of(n), data, {"test": "sigkill"})
    out = tmp_path / "emb" / "vit-base.h5"
    shard_dir = out.with_name(out.name + ".shards")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "child.log"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(pre), str(out), str(vit), str(workers)], env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 120
    try:
        while len(list(shard_dir.glob("shard-*.npz"))) < 2:
            assert proc.poll() is None, f"job ended before it could be killed: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"no shard within 120 s: {log.read_text()[-2000:]}"
            assert not out.exists(), "final file appeared before the shards were done"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("shard-*.npz")}
    n_shards = n // 2
    assert 2 <= len(done) < n_shards
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*")), "partial final file after kill"

    saved, save = [], embed_mod._save_shard

    def recording_save(path, *args):
        assert path.name not in done, f"completed shard {path} was computed again"
        saved.append(path.name)
        save(path, *args)

    monkeypatch.setattr(embed_mod, "_save_shard", recording_save)
    with caplog.at_level(logging.INFO, logger="samesky"):
        embed_file(pre, out, model_key="vit-base", source=vit, device="cpu", batch_size=2, shard_size=2,
                   workers=workers)
    resumed = sorted(int(m) - 1 for m in re.findall(rf"shard (\d+)/{n_shards} \(rows \d+-\d+\) resumed", caplog.text))
    assert resumed == sorted(int(name[6:12]) for name in done)
    assert sorted(saved) == sorted(f"shard-{i:06d}.npz" for i in range(n_shards) if i not in resumed)
    assert not shard_dir.exists()
    assert_no_tmp(out.parent)

    monkeypatch.setattr(embed_mod, "_save_shard", save)
    whole = embed_file(pre, tmp_path / "whole.h5", model_key="vit-base", source=vit, device="cpu",
                       batch_size=2, shard_size=2)
    ids_r, emb_r, prov_r = schema.read_embeddings(out)
    ids_w, emb_w, prov_w = schema.read_embeddings(whole)
    assert ids_r.tolist() == ids_w.tolist() == ids_of(n).tolist()
    assert emb_r.dtype == np.float32 and emb_r.shape == emb_w.shape
    np.testing.assert_allclose(emb_r, emb_w, rtol=1e-5, atol=1e-6)
    assert prov_r["fingerprint"] == prov_w["fingerprint"]


def test_next_write_removes_temporaries_of_killed_writers(tmp_path):
    out = tmp_path / "emb.h5"
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from samesky.schema import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half a file')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"), str(out)])
    assert killed.returncode == -signal.SIGKILL
    (stale,) = tmp_path.glob(".emb.h5.tmp-*")
    killed_pid = int(stale.name.rsplit("-", 1)[1])
    assert stale == schema.temporary_of(out, killed_pid)
    assert stale.read_bytes() == b"half a file" and not out.exists()
    live = schema.temporary_of(out, os.getppid())  # a writer still running: not ours to delete
    live.write_bytes(b"in progress")
    other = out.with_name(f".{out.name}.tmp-otherhost-{killed_pid}")  # another node of a shared file system
    other.write_bytes(b"in progress")
    schema.write_embeddings(out, ["a", "b"], np.eye(2, dtype=np.float32), {})
    assert schema.read_embeddings(out)[0].tolist() == ["a", "b"]
    assert not stale.exists() and live.exists() and other.exists()


# ---- 7. a metric job on embeddings with NaN / inf refuses to report a number ----------------------
@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_metric_job_refuses_non_finite_embeddings(pair, bad_value, tmp_path):
    _, ids, Za, _, files = pair
    Zbad = Za.copy()
    Zbad[[4, 9], 1] = bad_value
    bad = h5_write(tmp_path / "bad.h5", object_id=ids, embedding=Zbad)  # bypasses write_embeddings' check
    message = "2 rows contain NaN or inf, e.g. object_id ['g4', 'g9']"
    for args in ((bad, files["a"][0], None, files["a"][1]), (files["a"][0], bad, files["a"][1], None), (bad, bad, None, None)):
        with raises_naming(schema.SchemaError, bad, message):
            compare_files(*args, comparison=CMP, **CMP_OPTS)
    out = tmp_path / "knn" / "bad.h5"
    snap = prior_result(files["a"][1], out)
    with raises_naming(schema.SchemaError, bad, message):
        knn_file(bad, out, K)
    assert_intact(out, snap)


# ---- 8. full disk, unwritable results directory -------------------------------------------------
def _dev_full_at_tmp(out: Path) -> Path:
    """Make the writer's temporary file a link to /dev/full: every write fails with a real ENOSPC."""
    tmp = schema.temporary_of(out)
    tmp.symlink_to("/dev/full")
    return tmp


def _writers(good, vit, out_dir):
    """(label, output path, previous good result, the job writing it)."""
    pct = {"schema": PERCENTILES_SCHEMA, "survey": "hsc", "percentiles": [5, 99], "low": {}, "high": {}}
    return [
        ("write_embeddings", out_dir / "emb.h5", good["embedding"],
         lambda o: schema.write_embeddings(o, ["a", "b"], np.eye(2), {})),
        ("knn_file", out_dir / "knn.h5", good["knn"], lambda o: knn_file(good["embedding"], o, K)),
        ("preprocess_images", out_dir / "pre.h5", good["preprocessed"],
         lambda o: preprocess_images(good["crossmatch"], "hsc", o, bands=BANDS, percentiles_json=good["percentiles"])),
        ("preprocess_spectra", out_dir / "desi.h5", good["pre_desi"],
         lambda o: preprocess_spectra(good["crossmatch"], "desi", o)),
        ("write_percentiles", out_dir / "hsc.json", good["percentiles"], lambda o: write_percentiles(o, pct)),
        ("embed_file", out_dir / "vit.h5", good["embedding"],
         lambda o: embed_file(good["preprocessed"], o, model_key="vit-base", source=vit, device="cpu")),
    ]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_fails_cleanly_naming_the_path(good, vit, tmp_path):
    for label, out, previous, job in _writers(good, vit, tmp_path):
        snap = prior_result(previous, out)
        if label == "embed_file":  # the first shard is the first thing written
            shard_dir = out.with_name(out.name + ".shards")
            shard_dir.mkdir()
            tmp, final = _dev_full_at_tmp(shard_dir / "shard-000000.npz"), shard_dir / "shard-000000.npz"
        else:
            tmp, final = _dev_full_at_tmp(out), out
        with pytest.raises(OSError) as err:
            job(out)
        assert err.value.errno == errno.ENOSPC, (label, err.value)
        assert str(final) in str(err.value) and "No space left on device" in str(err.value), (label, err.value)
        assert not tmp.is_symlink() and not tmp.exists(), label
        assert_intact(out, snap)


def test_disk_full_mid_write_leaves_no_partial_file(good, tmp_path, monkeypatch):
    out = tmp_path / "emb.h5"
    snap = prior_result(good["embedding"], out)
    create = h5py.Group.create_dataset
    seen = []

    def filling_disk(self, name, *args, **kwargs):
        if name == "embedding":  # object_id already written to the temporary file
            seen.extend(p.name for p in tmp_path.glob(".emb.h5.tmp-*"))
            raise OSError(errno.ENOSPC, "No space left on device")
        return create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", filling_disk)
    with raises_naming(OSError, out, "No space left on device") as err:
        schema.write_embeddings(out, ["a", "b"], np.eye(2), {})
    assert err.value.errno == errno.ENOSPC and seen == [schema.temporary_of(out).name]
    assert_intact(out, snap)
    monkeypatch.undo()

    # chunked preprocessed writer: the disk fills after the first chunk
    out = tmp_path / "pre.h5"
    snap = prior_result(good["preprocessed"], out)
    append, calls = schema.RowWriter.append, []

    def append_then_full(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return append(self, *args, **kwargs)

    monkeypatch.setattr(schema.RowWriter, "append", append_then_full)
    with raises_naming(OSError, out, "No space left on device"):
        preprocess_images(good["crossmatch"], "hsc", out, bands=BANDS, percentiles_json=good["percentiles"],
                          chunk_size=3)
    assert len(calls) == 2
    assert_intact(out, snap)


def test_unwritable_results_directory_fails_cleanly_naming_the_path(good, vit, tmp_path, monkeypatch):
    # Tests may run as root, where chmod does not stop writes: use a results "directory" that is a
    # regular file (mkdir fails), and a file system refusing the final rename (EROFS).
    blocker = tmp_path / "results"
    blocker.write_text("not a directory")
    for label, out, _, job in _writers(good, vit, blocker / "sub"):
        with pytest.raises(OSError) as err:
            job(out)
        assert err.value.errno in (errno.ENOTDIR, errno.EEXIST), (label, err.value)
        assert str(out) in str(err.value), (label, err.value)
    assert blocker.read_text() == "not a directory"

    def read_only_fs(src, dst):
        raise OSError(errno.EROFS, "Read-only file system")

    for label, out, previous, job in _writers(good, vit, tmp_path / "ro"):
        snap = prior_result(previous, out)
        with monkeypatch.context() as m:
            m.setattr(schema.os, "replace", read_only_fs)
            with pytest.raises(OSError) as err:
                job(out)
        assert err.value.errno == errno.EROFS and str(out) in str(err.value), (label, err.value)
        assert_intact(out, snap)


def test_compare_output_json_is_atomic(good, tmp_path, monkeypatch):
    """The compare rule writes its records through atomic_path: a failing write keeps the old JSON."""
    out = tmp_path / "metrics.json"
    out.write_text(json.dumps({"records": [{"score": 0.5}]}))
    snap = snapshot(out)
    records = compare_files(good["embedding"], good["embedding"], good["knn"], good["knn"],
                            comparison={**CMP, "kind": "self"}, **CMP_OPTS)
    _dev_full_at_tmp(out)
    with raises_naming(OSError, out, "No space left on device"):
        with schema.atomic_path(out) as tmp:
            tmp.write_text(json.dumps({"records": records}))
    assert_intact(out, snap)
