"""Percentiles and image rescaling on constructed inputs with known answers."""
import importlib.util
import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from samesky.preprocess import (
    compute_percentiles,
    crop_zoom,
    preprocess_flux,
    preprocess_images,
    rescale_images,
)
from samesky.schema import (
    PERCENTILES_SCHEMA,
    SchemaError,
    read_percentiles,
    read_provenance,
    write_crossmatch,
    write_percentiles,
)
from samesky.surveys import get_survey


def image_crossmatch(path, flux, survey="hsc"):
    n = len(flux)
    write_crossmatch(path, "t", [f"o{i}" for i in range(n)], np.zeros(n), np.zeros(n), {survey: {"flux": flux}})
    return path


def percentiles_file(path, low, high, survey="hsc"):
    write_percentiles(path, {"schema": PERCENTILES_SCHEMA, "survey": survey, "percentiles": [5, 99],
                             "low": low, "high": high, "n_used": 1})
    return path


def read_out(path):
    with h5py.File(path, "r") as f:
        return f["object_id"].asstr()[:], f["data"][:], read_provenance(f)


# ---- percentiles ---------------------------------------------------------------------------------
def test_percentiles_exact_on_known_values(tmp_path):
    """z holds 0..399 over 4 images: p5 = 0.05 * 399 = 19.95, p99 = 0.99 * 399 = 395.01 (numpy 'linear')."""
    values = np.arange(400, dtype=np.float32).reshape(4, 10, 10)
    flux = np.ones((6, 5, 10, 10), np.float32)
    flux[:4, 3] = values                # z
    flux[:4, 1] = -values               # r
    flux[:4, 0] = 1000 + 0.5 * values   # g
    flux[4, 0] = 0.0                    # degenerate: g all zero
    flux[5, 1] = np.nan                 # degenerate: r all NaN
    xm = image_crossmatch(tmp_path / "xm.h5", flux)
    res = compute_percentiles(xm, "hsc", bands=["z", "r", "g"], percentiles=(5, 99))
    assert res["low"]["z"] == pytest.approx(19.95, abs=1e-9) and res["high"]["z"] == pytest.approx(395.01, abs=1e-9)
    assert res["low"]["r"] == pytest.approx(-379.05, abs=1e-9) and res["high"]["r"] == pytest.approx(-3.99, abs=1e-9)
    assert res["low"]["g"] == pytest.approx(1009.975, abs=1e-9) and res["high"]["g"] == pytest.approx(1197.505, abs=1e-9)
    assert res["n_used"] == 4 and res["skipped"] == {"all_nan": 1, "all_zero": 1}
    assert res["n_total"] == 6 and res["n_sampled"] == 6


@pytest.mark.parametrize("q", [(0, 100), (1, 99), (5, 99), (25, 75.5)])
def test_percentiles_equal_numpy_on_heavy_tailed_data_with_nans(tmp_path, q):
    rng = np.random.default_rng(1)
    flux = (rng.standard_cauchy((40, 5, 12, 12)) * 1e3).astype(np.float32)
    flux[:, :, :3, :3] = np.round(flux[:, :, :3, :3] / 1e3)  # many duplicates, -0.0 and +0.0
    flux[rng.random(flux.shape) < 0.05] = np.nan
    flux[0, 3, 0, 0], flux[1, 3, 0, 0] = np.inf, -np.inf     # non-finite pixels are ignored
    xm = image_crossmatch(tmp_path / "xm.h5", flux)
    res = compute_percentiles(xm, "hsc", bands=["z", "r", "g"], percentiles=q, max_images=25, seed=3, chunk_size=7)
    rows = np.sort(np.random.default_rng(3).choice(40, size=25, replace=False))
    for band, idx in (("z", 3), ("r", 1), ("g", 0)):
        pooled = flux[rows, idx].astype(np.float64)
        pooled = pooled[np.isfinite(pooled)]
        assert res["low"][band] == pytest.approx(np.percentile(pooled, q[0]), rel=1e-12, abs=1e-12)
        assert res["high"][band] == pytest.approx(np.percentile(pooled, q[1]), rel=1e-12, abs=1e-12)
    assert res["n_sampled"] == 25 and res["n_used"] == 25


def test_percentile_sample_first_pools_the_first_rows_as_the_authors(tmp_path):
    """sample='first': the first max_images rows (the authors' `.take(10000)`), degenerate images pooled too."""
    rng = np.random.default_rng(2)
    flux = rng.normal(size=(30, 5, 10, 10)).astype(np.float32)
    flux[2] = 0.0  # an all-zero image among the first rows: pooled, as np.percentile over them would
    flux[20:] += 100.0  # rows past the sample would move the percentiles
    xm = image_crossmatch(tmp_path / "xm.h5", flux)
    res = compute_percentiles(xm, "hsc", bands=["z", "r", "g"], percentiles=(5, 99), max_images=12, sample="first",
                              chunk_size=5)
    for band, idx in (("z", 3), ("r", 1), ("g", 0)):
        pooled = flux[:12, idx].astype(np.float64).ravel()
        assert res["low"][band] == pytest.approx(np.percentile(pooled, 5), rel=1e-12)
        assert res["high"][band] == pytest.approx(np.percentile(pooled, 99), rel=1e-12)
    assert (res["n_sampled"], res["n_used"], res["sample"]) == (12, 12, "first")
    rand = compute_percentiles(xm, "hsc", bands=["z", "r", "g"], max_images=12, seed=4)
    assert rand["sample"] == "random" and rand["high"]["z"] != res["high"]["z"]
    with pytest.raises(ValueError, match="sample must be 'random' or 'first'"):
        compute_percentiles(xm, "hsc", bands=["z", "r", "g"], sample="top")


def test_percentile_subsample_is_deterministic_by_seed(tmp_path):
    flux = np.random.default_rng(0).normal(size=(30, 5, 8, 8)).astype(np.float32)
    xm = image_crossmatch(tmp_path / "xm.h5", flux)
    a = compute_percentiles(xm, "hsc", bands=["z", "r", "g"], max_images=10, seed=0)
    b = compute_percentiles(xm, "hsc", bands=["z", "r", "g"], max_images=10, seed=0)
    c = compute_percentiles(xm, "hsc", bands=["z", "r", "g"], max_images=10, seed=1)
    assert a == b and a["low"] != c["low"]


def test_percentiles_json_round_trip_and_checks(tmp_path):
    flux = np.random.default_rng(0).normal(size=(5, 7, 8, 8)).astype(np.float32)
    xm = image_crossmatch(tmp_path / "xm.h5", flux, survey="jwst")
    res = compute_percentiles(xm, "jwst", bands=["f444w", "f277w", "f090w"])
    write_percentiles(tmp_path / "p" / "jwst.json", res)
    stored = json.loads((tmp_path / "p" / "jwst.json").read_text())
    assert stored == json.loads(json.dumps(res))
    assert stored["source"] == str(xm) and stored["bands"] == ["f444w", "f277w", "f090w"] and stored["n_used"] == 5
    low, high, _ = read_percentiles(tmp_path / "p" / "jwst.json", "jwst", ["f444w", "f277w", "f090w"])
    np.testing.assert_allclose(low, [np.percentile(flux[:, i], 5) for i in (6, 4, 0)], rtol=1e-6)
    with pytest.raises(SchemaError, match=r"jwst\.json: percentiles are for survey 'jwst', not 'hsc'"):
        read_percentiles(tmp_path / "p" / "jwst.json", "hsc", ["z", "r", "g"])
    with pytest.raises(SchemaError, match=r"jwst\.json: no percentiles for band\(s\) \['f200w'\]"):
        read_percentiles(tmp_path / "p" / "jwst.json", "jwst", ["f444w", "f200w", "f090w"])
    with pytest.raises(SchemaError, match=r"xm\.h5: 'jwst' has no band \['u'\]"):
        compute_percentiles(xm, "jwst", bands=["f444w", "u", "f090w"])


# ---- rescaling -------------------------------------------------------------------------------------
def test_paper_rescale_exact_values_and_nan_fill():
    x = np.array([[[[-1, 0], [0.5, 2]], [[0, 1], [2, 3]], [[1, 2], [3, np.nan]]]], np.float32)
    rgb, reason, filled = rescale_images(x, mode="paper", low=[0, 0, 0], high=[1, 2, 4])
    assert rgb.dtype == np.uint8 and list(reason) == [""] and filled == 1
    np.testing.assert_array_equal(rgb[0, 0], [[0, 0], [127, 255]])      # clip to [0, 1], floor(255 y)
    np.testing.assert_array_equal(rgb[0, 1], [[0, 127], [255, 255]])
    np.testing.assert_array_equal(rgb[0, 2], [[63, 127], [191, 0]])     # NaN -> the low percentile -> 0


def test_bands_selected_by_name_into_rgb(tmp_path):
    ramp = np.arange(16, dtype=np.float32).reshape(4, 4) / 15  # 0..1
    flux = np.stack([ramp * (b + 1) for b in range(5)])[None]  # band k spans [0, k + 1]
    xm = image_crossmatch(tmp_path / "xm.h5", flux)
    p = percentiles_file(tmp_path / "p.json", {b: 0.0 for b in "grizy"}, {"g": 1.0, "r": 2.0, "z": 4.0, "i": 2.0})
    preprocess_images(xm, "hsc", tmp_path / "out.h5", bands=["z", "r", "g"], percentiles_json=p)
    _, data, prov = read_out(tmp_path / "out.h5")
    expect_z = ((ramp * 4 / 4).clip(0, 1).astype(np.float32) * np.float32(255)).astype(np.uint8)
    np.testing.assert_array_equal(data[0, 0], expect_z)            # R <- z (index 3)
    np.testing.assert_array_equal(data[0, 1], (ramp * np.float32(255)).astype(np.uint8))  # G <- r: 2 ramp / 2
    np.testing.assert_array_equal(data[0, 2], (ramp * np.float32(255)).astype(np.uint8))  # B <- g
    assert prov["bands_rgb"] == ["z", "r", "g"] and prov["percentiles"]["high"] == [4.0, 2.0, 1.0]
    # the same with bands i, r, g: R now comes from i, whose range [0, 3] is clipped at 2
    preprocess_images(xm, "hsc", tmp_path / "out2.h5", bands=["i", "r", "g"], percentiles_json=p)
    _, data2, _ = read_out(tmp_path / "out2.h5")
    expect_i = ((ramp * 3 / 2).clip(0, 1).astype(np.float32) * np.float32(255)).astype(np.uint8)
    np.testing.assert_array_equal(data2[0, 0], expect_i)


def test_degenerate_images_dropped_with_counts(tmp_path, caplog):
    rng = np.random.default_rng(0)
    flux = rng.uniform(0.1, 0.9, size=(7, 5, 6, 6)).astype(np.float32)
    flux[1, 3] = np.nan            # z all NaN
    flux[2, 0] = 0.0               # g all zero
    flux[3, 1] = -5.0              # r entirely below its low percentile: constant after clipping
    flux[4, 3, 2, 2] = np.nan      # one NaN pixel: filled, kept
    flux[5, 0, :3] = np.nan        # g partly NaN, rest zero: all zero among finite pixels
    flux[5, 0, 3:] = 0.0
    flux[6, 2] = np.nan            # i all NaN: not a selected band, kept
    xm = image_crossmatch(tmp_path / "xm.h5", flux)
    p = percentiles_file(tmp_path / "p.json", {b: 0.0 for b in "grizy"}, {b: 1.0 for b in "grizy"})
    with caplog.at_level(logging.INFO, logger="samesky"):
        prov = preprocess_images(xm, "hsc", tmp_path / "out.h5", bands=["z", "r", "g"], percentiles_json=p, chunk_size=3)
    ids, data, stored = read_out(tmp_path / "out.h5")
    assert list(ids) == ["o0", "o4", "o6"] and data.shape == (3, 3, 6, 6)
    assert prov == stored
    assert prov["dropped"] == {"all_nan": 1, "all_zero": 2, "no_signal": 1}
    assert prov["dropped_examples"] == {"all_nan": ["o1"], "all_zero": ["o2", "o5"], "no_signal": ["o3"]}
    assert prov["n_input"] == 7 and prov["n_written"] == 3 and prov["nonfinite_pixels_filled"] == 1
    assert data[1, 0, 2, 2] == 0  # the filled pixel is black
    np.testing.assert_array_equal(data[0], (flux[0, [3, 1, 0]] * np.float32(255)).astype(np.uint8))
    assert "wrote 3 of 7 images" in caplog.text and "'all_zero': 2" in caplog.text
    assert not list(tmp_path.glob(".*spool"))  # temporary row files are gone


def test_raw_flux_keeps_every_band_fills_nan_with_zero_and_drops_degenerate_images(tmp_path):
    rng = np.random.default_rng(0)
    flux = rng.normal(size=(6, 4, 5, 5)).astype(np.float32)
    flux[1, 2] = np.nan            # a band all NaN: dropped
    flux[2, 0] = 0.0               # a band all zero: dropped
    flux[3, 1, 2, 2] = np.inf      # one bad pixel: set to 0, kept
    flux[4, 3, 0] = np.nan         # a NaN row: set to 0, kept
    xm = image_crossmatch(tmp_path / "xm.h5", flux, survey="legacysurvey")
    prov = preprocess_flux(xm, "legacysurvey", tmp_path / "flux.h5", chunk_size=4)
    ids, data, stored = read_out(tmp_path / "flux.h5")
    assert list(ids) == ["o0", "o3", "o4", "o5"] and data.dtype == np.float32 and data.shape == (4, 4, 5, 5)
    assert stored == prov and prov["bands"] == ["g", "r", "i", "z"] and prov["survey"] == "legacysurvey"
    assert prov["dropped"] == {"all_nan": 1, "all_zero": 1} and prov["dropped_examples"]["all_nan"] == ["o1"]
    assert prov["nonfinite_pixels_filled"] == 1 + 5
    want = np.nan_to_num(flux[[0, 3, 4, 5]], nan=0.0, posinf=0.0)
    np.testing.assert_array_equal(data, want)
    from samesky.schema import FLUX, validate_preprocessed

    assert validate_preprocessed(tmp_path / "flux.h5") == FLUX
    assert (prov["zero_point"], prov["flux_scaled_by"]) == (22.5, 1.0)
    flux[:, 0] = 0.0
    with pytest.raises(SchemaError, match=r"all 6 'legacysurvey' images were dropped"):
        preprocess_flux(image_crossmatch(tmp_path / "zero.h5", flux, survey="legacysurvey"), "legacysurvey",
                        tmp_path / "none.h5")
    assert not (tmp_path / "none.h5").exists()


def test_raw_flux_is_converted_to_the_survey_zero_point(tmp_path):
    flux = np.random.default_rng(1).uniform(0.1, 1.0, size=(3, 5, 4, 4)).astype(np.float32)
    xm = image_crossmatch(tmp_path / "xm.h5", flux)  # HSC, declared in nanomaggies (as the simulation writes)
    with h5py.File(xm, "a") as f:
        f["hsc"].attrs["zero_point"] = 22.5
    prov = preprocess_flux(xm, "hsc", tmp_path / "flux.h5")
    _, data, _ = read_out(tmp_path / "flux.h5")
    assert prov["zero_point"] == 27.0 and prov["flux_scaled_by"] == pytest.approx(10**1.8)
    np.testing.assert_allclose(data, flux * 10**1.8, rtol=1e-6)


GOLDEN_ARCSINH = Path(__file__).parent / "data" / "authors_arcsinh.npz"


def _golden_inputs():
    spec = importlib.util.spec_from_file_location("golden_arcsinh", Path(__file__).parent / "golden" / "authors_arcsinh.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.inputs


@pytest.mark.parametrize("survey, crop", [("hsc", 28), ("legacysurvey", 18), ("jwst", None)])
def test_authors_arcsinh_equals_the_authors_code(tmp_path, survey, crop):
    """Percentiles (crop, zoom, pooled p1/p99) and uint8 RGB equal the authors' own functions run
    from a checkout (tests/golden/authors_arcsinh.py), for the same raw fluxes."""
    gold = np.load(GOLDEN_ARCSINH)
    flux = _golden_inputs()(survey)
    xm = image_crossmatch(tmp_path / "xm.h5", flux, survey=survey)
    rgb = list(get_survey(survey).rgb)
    res = compute_percentiles(xm, survey, bands=rgb, percentiles=(1, 99), sample="first", crop=crop)
    names = list(gold[f"{survey}_bands"])  # the authors' g, r, z order; ours R, G, B = z, r, g
    for band, p1, p99 in zip(names, gold[f"{survey}_p1"], gold[f"{survey}_p99"]):
        assert res["low"][band] == pytest.approx(p1, rel=1e-6, abs=1e-7)
        assert res["high"][band] == pytest.approx(p99, rel=1e-6, abs=1e-7)
    low = [gold[f"{survey}_p1"][names.index(b)] for b in rgb]
    high = [gold[f"{survey}_p99"][names.index(b)] for b in rgb]
    idx = [get_survey(survey).band_index(b) for b in rgb]
    out, reason, _ = rescale_images(flux[:, idx], mode="authors_arcsinh", low=low, high=high, crop=crop)
    assert list(reason) == [""] * len(flux)
    np.testing.assert_array_equal(out.transpose(0, 2, 3, 1), gold[f"{survey}_rgb"])  # bit-identical
    write_percentiles(tmp_path / "p.json", res)
    prov = preprocess_images(xm, survey, tmp_path / "out.h5", bands=rgb, percentiles_json=tmp_path / "p.json",
                             mode="authors_arcsinh", crop=crop)
    _, data, _ = read_out(tmp_path / "out.h5")
    assert data.shape == (len(flux), 3, 96, 96) and prov["crop"] == crop
    assert np.abs(data.astype(int) - out.astype(int)).max() <= 1  # our own percentiles (float64) vs theirs
    if crop is not None:
        with pytest.raises(SchemaError, match=f"percentiles were computed with crop {crop}, "):
            preprocess_images(xm, survey, tmp_path / "o2.h5", bands=rgb, percentiles_json=tmp_path / "p.json",
                              mode="authors_arcsinh", crop=crop - 1)


def test_crop_zoom_is_the_authors_crop():
    """resize_galaxy_to_fit(force_extent=(68, 92, 68, 92)) on 160 px keeps rows/cols 66:94 (28 px)."""
    x = np.arange(160 * 160, dtype=np.float32).reshape(1, 1, 160, 160)
    z = crop_zoom(x, 28)
    assert z.shape == (1, 1, 96, 96)
    assert z[0, 0, 0, 0] == x[0, 0, 66, 66] and z[0, 0, -1, -1] == x[0, 0, 93, 93]
    assert crop_zoom(x, None) is x
    with pytest.raises(ValueError, match="crop must be in"):
        crop_zoom(x, 0)
    with pytest.raises(ValueError, match="unknown preprocessing mode 'arcsinh'"):
        rescale_images(np.ones((1, 3, 4, 4)), mode="arcsinh")


def test_image_modes_need_percentiles(tmp_path):
    flux = np.random.default_rng(0).lognormal(size=(4, 7, 12, 12)).astype(np.float32)
    xm = image_crossmatch(tmp_path / "xm.h5", flux, survey="jwst")
    for mode in ("paper", "authors_arcsinh"):
        with pytest.raises(ValueError, match=f"mode '{mode}' needs percentiles_json"):
            preprocess_images(xm, "jwst", tmp_path / "o.h5", bands=["f444w", "f277w", "f090w"], mode=mode)

