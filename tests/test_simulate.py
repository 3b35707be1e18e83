"""Tests of the simulated crossmatched sky (samesky.simulate): schema, determinism, physics."""
from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
from scipy import ndimage, stats

from samesky import schema, simulate
from samesky.surveys import DESI_WAVELENGTH, get_survey

COMBOS = [["jwst", "hsc"], ["legacysurvey", "hsc"], ["desi", "hsc"], ["sdss", "hsc"]]
N = 16
HALPHA = simulate.HALPHA_REST


def _read(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(key, obj):
            if isinstance(obj, h5py.Dataset):
                out[key] = obj[()]
        f.visititems(visit)
        out["attrs"] = {k: f.attrs[k] for k in f.attrs}
    return out


@pytest.fixture(scope="module")
def combo_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    files = {}
    for surveys in COMBOS:
        name = f"{surveys[0]}_hsc"
        files[name] = d / f"{name}.h5"
        simulate.simulate_crossmatch(files[name], name=name, surveys=surveys, n=N, seed=7)
    return files


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Noiseless, neighbour-free low-z objects seen by HSC, DESI and SDSS at once."""
    path = tmp_path_factory.mktemp("clean") / "clean.h5"
    simulate.simulate_crossmatch(path, name="clean", surveys=["hsc", "desi", "sdss"], n=40, seed=11,
                                 noise=False, neighbours=False, redshift_range=(0.03, 0.33, 0.12, 0.5))
    return _read(path)


# ----------------------------------------------------------------------------- schema and shapes

@pytest.mark.parametrize("surveys", COMBOS, ids=lambda s: "+".join(s))
def test_schema_shapes_dtypes(combo_files, surveys):
    name = f"{surveys[0]}_hsc"
    path = combo_files[name]
    summary = schema.validate_crossmatch(path)
    assert summary == {"n": N, "surveys": surveys}
    with h5py.File(path, "r") as f:
        ids = schema.as_str_ids(f["object_id"][:])
        assert ids.tolist() == [f"{name}-{i:06d}" for i in range(N)]
        assert len(set(ids)) == N
        ra, dec = f["ra"][:], f["dec"][:]
        assert ra.dtype == np.float64 and np.ptp(dec) < 0.6 and np.all((ra >= 0) & (ra < 360))
        meta = json.loads(f.attrs["simulation"])
        assert meta["seed"] == 7 and meta["n"] == N and meta["surveys"] == surveys
        for s in surveys:
            sv = get_survey(s)
            g = f[s]
            own = schema.as_str_ids(g["object_id"][:])
            assert len(set(own)) == N
            flux = g["flux"]
            assert flux.dtype == np.float32
            if sv.modality == "image":
                assert flux.shape == (N, len(sv.bands)) + sv.shape
                assert list(g.attrs["bands"]) == list(sv.bands)
                assert g.attrs["pixel_scale"] == pytest.approx(sv.pixel_scale)
                assert list(g.attrs["pixel_scales"]) == pytest.approx([sv.band_scale(b) for b in sv.bands])
                assert g.attrs["flux_unit"] == "nanomaggy"
                ivar = g["ivar"][:]
                assert ivar.dtype == np.float32 and ivar.shape == flux.shape and np.all(ivar > 0)
                assert np.all(np.isfinite(flux[:]))
            else:
                assert g.attrs["flux_unit"].startswith("1e-17")
                assert g["mask"].dtype == bool and g["ivar"].dtype == np.float32
                wave = g["wavelength"][:]
                if s == "desi":
                    assert flux.shape == (N, 7781)
                    np.testing.assert_array_equal(wave, DESI_WAVELENGTH)
                else:
                    assert wave.ndim == 2 and wave.shape == flux.shape
                    pad = np.isnan(wave)
                    assert pad.any() and len(np.unique(np.nanmin(wave, axis=1))) > 1  # ragged starts
                    assert np.all(g["mask"][:][pad]) and np.all(g["ivar"][:][pad] == 0)
                    assert np.all(flux[:][pad] == 0)
                    lo, hi = np.nanmin(wave), np.nanmax(wave)
                    assert 3700 < lo < 3900 and 9000 < hi < 9400
                    # log-lambda grid: constant 1e-4 dex steps
                    steps = np.diff(np.log10(wave[0][~pad[0]]))
                    np.testing.assert_allclose(steps, 1e-4, rtol=1e-6)
                mask = g["mask"][:]
                assert 0 < (mask & ~np.isnan(np.atleast_2d(wave) * np.ones(mask.shape))).sum() < 0.01 * mask.size
                assert np.all(g["ivar"][:][mask] == 0)
        truth = f["truth"]
        for key in ("redshift", "log_mass", "quiescent", "log_sfr", "bulge_fraction", "sersic_n",
                    "r_half_arcsec", "ellipticity", "position_angle_deg", "restframe_g_r", "a_v"):
            assert truth[key].shape == (N,), key


def test_image_noise_levels(combo_files):
    """Pixel noise matches ivar; HSC is deeper than Legacy in nanomaggies per pixel."""
    with h5py.File(combo_files["legacysurvey_hsc"], "r") as f:
        sig = {}
        for s in ("hsc", "legacysurvey"):
            corner = f[s]["flux"][:, :, :20, :20]
            ivar = f[s]["ivar"][:, :, 0, 0]
            pulls = corner / (1 / np.sqrt(ivar))[:, :, None, None]
            robust_std = 1.4826 * np.median(np.abs(pulls - np.median(pulls)))
            assert robust_std == pytest.approx(1.0, abs=0.05)  # corners are (mostly) sky
            sig[s] = np.median(1 / np.sqrt(ivar), axis=0)
    assert np.all(sig["hsc"][:4] < sig["legacysurvey"] / 2)


# ----------------------------------------------------------------------------- determinism

def test_same_seed_identical_different_seed_differs(combo_files, tmp_path):
    ref = _read(combo_files["sdss_hsc"])
    again = tmp_path / "again.h5"
    simulate.simulate_crossmatch(again, name="sdss_hsc", surveys=["sdss", "hsc"], n=N, seed=7)
    same = _read(again)
    assert same.keys() == ref.keys()
    for key in ref:
        if key != "attrs":
            np.testing.assert_array_equal(same[key], ref[key], err_msg=key)
    other = tmp_path / "other.h5"
    simulate.simulate_crossmatch(other, name="sdss_hsc", surveys=["sdss", "hsc"], n=N, seed=8)
    diff = _read(other)
    assert not np.allclose(diff["truth/redshift"], ref["truth/redshift"])
    assert not np.allclose(diff["hsc/flux"], ref["hsc/flux"])
    assert not np.allclose(diff["sdss/flux"][:, :3000], ref["sdss/flux"][:, :3000])


def test_name_mixed_into_seed():
    prior = get_survey("hsc").selection.redshift_prior
    lat_a = simulate.draw_latents(50, simulate.seeding._rng(3, "jwst_hsc", "latents"), prior)
    lat_b = simulate.draw_latents(50, simulate.seeding._rng(3, "legacysurvey_hsc", "latents"), prior)
    lat_c = simulate.draw_latents(50, simulate.seeding._rng(3, "jwst_hsc", "latents"), prior)
    assert not np.allclose(lat_a["redshift"], lat_b["redshift"])
    np.testing.assert_array_equal(lat_a["redshift"], lat_c["redshift"])
    # crc32-based: a fixed, documented value (Python's hash() would change between processes)
    assert simulate.seeding._stable_key("jwst_hsc") == 0xFFFFFFFF & __import__("zlib").crc32(b"jwst_hsc")


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(KeyError, match="unknown survey"):
        simulate.simulate_crossmatch(tmp_path / "x.h5", "x", ["hsc", "euclid"], n=2, seed=0)
    import dataclasses

    from samesky import surveys

    bare = dataclasses.replace(surveys.SURVEYS["hsc"], name="hsc_bare", filters=(), psf_fwhm=(), depth=())
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(surveys.SURVEYS, "hsc_bare", bare)
        with pytest.raises(ValueError, match="survey 'hsc_bare' cannot be simulated: its surveys.Survey entry has no"):
            simulate.simulate_crossmatch(tmp_path / "x.h5", "x", ["hsc_bare"], n=2, seed=0)
    with pytest.raises(ValueError, match="survey 'legacysurvey': depth has 3 values for 4 bands"):
        dataclasses.replace(surveys.SURVEYS["legacysurvey"], depth=(24.7, 24.2, 23.8))
    with pytest.raises(ValueError):
        simulate.simulate_crossmatch(tmp_path / "x.h5", "x", ["hsc"], n=0, seed=0)
    with pytest.raises(ValueError):
        simulate.simulate_crossmatch(tmp_path / "x.h5", "x", ["hsc"], n=2, seed=-1)
    assert not (tmp_path / "x.h5").exists()


# ----------------------------------------------------------------------------- physics: images

def _gr(flux_g, flux_r):
    return -2.5 * np.log10(flux_g / flux_r)


def test_image_colours_follow_colour_model(clean):
    flux = clean["hsc/flux"].astype(np.float64)
    tot = flux.sum(axis=(2, 3))  # (N, 5) noiseless, no neighbours
    truth_g, truth_r = clean["truth/phot_hsc_g"], clean["truth/phot_hsc_r"]
    compact = clean["truth/r_half_arcsec"] < 2.5
    assert compact.sum() >= 15
    # Total flux captured by the 27" cutout matches the model photometry for compact objects.
    ratio = tot[compact, 1] / truth_r[compact]
    assert np.all((ratio > 0.85) & (ratio < 1.01)), ratio
    # Measured colours match the SED colour model.
    gr_img = _gr(tot[:, 0], tot[:, 1])
    gr_true = _gr(truth_g, truth_r)
    assert np.max(np.abs(gr_img - gr_true)[compact]) < 0.05
    # Quiescent galaxies are redder than star-forming ones, in the image and in rest frame.
    q = clean["truth/quiescent"].astype(bool)
    assert 3 <= q.sum() <= len(q) - 3
    assert gr_img[q].mean() > gr_img[~q].mean() + 0.3
    assert clean["truth/restframe_g_r"][q].min() > clean["truth/restframe_g_r"][~q].mean()
    # Colour rises with redshift at fixed type (k-correction) for quiescent galaxies.
    assert stats.spearmanr(clean["truth/redshift"][q], gr_img[q])[0] > 0.5


def _half_light_radius(img, scale):
    h, w = img.shape
    y, x = np.mgrid[:h, :w]
    tot = img.sum()
    cx, cy = (img * x).sum() / tot, (img * y).sum() / tot
    r = np.hypot(x - cx, y - cy).ravel()
    order = np.argsort(r)
    cum = np.cumsum(img.ravel()[order])
    return r[order][np.searchsorted(cum, 0.5 * cum[-1])] * scale


def test_half_light_radius_grows_with_truth(clean):
    scale = get_survey("hsc").pixel_scale
    i_band = get_survey("hsc").band_index("i")
    measured = np.array([_half_light_radius(im[i_band], scale) for im in clean["hsc/flux"]])
    true = clean["truth/r_half_arcsec"]
    assert stats.spearmanr(measured, true)[0] > 0.9
    # the PSF broadens: measured ~ sqrt(true^2 + (FWHM/2)^2), within the stamp's truncation
    expected = np.hypot(true, 0.5 * clean["truth/obs_hsc_psf_fwhm"])
    ok = true < 2.5
    np.testing.assert_allclose(np.median(measured[ok] / expected[ok]), 1.0, atol=0.2)


def test_same_galaxy_in_two_image_surveys(combo_files):
    """Legacy and HSC see the same galaxy: total fluxes in overlapping bands agree."""
    with h5py.File(combo_files["legacysurvey_hsc"], "r") as f:
        hsc_r = f["truth/phot_hsc_r"][:]
        ls_r = f["truth/phot_legacysurvey_r"][:]
        img_h = f["hsc/flux"][:, 1].sum(axis=(1, 2))
        img_l = f["legacysurvey/flux"][:, 1].sum(axis=(1, 2))
    assert stats.spearmanr(img_h, img_l)[0] > 0.9
    np.testing.assert_allclose(ls_r / hsc_r, 1.0, atol=0.25)  # similar r filters, same SED


# ----------------------------------------------------------------------------- physics: spectra

def _line_peak(wave, flux, centre, half=25.0):
    sel = np.abs(wave - centre) < half
    w, f = wave[sel], flux[sel]
    cont = np.median(f)
    k = np.argmax(f - cont)
    # parabolic refinement on the sampled peak
    if 0 < k < len(f) - 1:
        y0, y1, y2 = f[k - 1], f[k], f[k + 1]
        delta = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
        return w[k] + delta * (w[k + 1] - w[k]), f[k] - cont
    return w[k], f[k] - cont


def test_halpha_emission_at_redshifted_position(clean):
    z = clean["truth/redshift"]
    sf = clean["truth/quiescent"] == 0
    wave = clean["desi/wavelength"]
    found = 0
    for i in np.flatnonzero(sf):
        spec = np.where(clean["desi/mask"][i], np.nan, clean["desi/flux"][i])
        spec = np.where(np.isnan(spec), np.nanmedian(spec), spec)
        peak, amp = _line_peak(wave, spec, (1 + z[i]) * HALPHA)
        assert abs(peak - (1 + z[i]) * HALPHA) < 0.8, (i, peak, (1 + z[i]) * HALPHA)
        assert amp > 0
        found += 1
    assert found >= 10
    # Vacuum wavelengths (as DESI and SDSS): 6564.61 A vacuum is the 6562.8 A air line.
    assert abs(HALPHA / 1.00028 - 6562.8) < 0.1
    # Quiescent galaxies have a much smaller H-alpha equivalent width than star-forming ones.
    ew = np.empty(len(z))
    for i in range(len(z)):
        rest = wave / (1 + z[i])
        side = ((rest > 6480) & (rest < 6530)) | ((rest > 6610) & (rest < 6650))
        cont = np.median(clean["desi/flux"][i][side & ~clean["desi/mask"][i]])
        ew[i] = clean["truth/halpha_flux"][i] * clean["truth/obs_desi_fiber_fraction"][i] / cont / (1 + z[i])
    assert np.median(ew[sf]) > 10
    assert np.median(ew[~sf]) < 0.1 * np.median(ew[sf])


def test_desi_and_sdss_spectra_agree(clean):
    """Same template at the same redshift: DESI and SDSS agree after fibre correction and smoothing."""
    wd = clean["desi/wavelength"]
    for i in range(len(clean["truth/redshift"])):
        fd = clean["desi/flux"][i] / clean["truth/obs_desi_fiber_fraction"][i]
        ws, fs = clean["sdss/wavelength"][i], clean["sdss/flux"][i] / clean["truth/obs_sdss_fiber_fraction"][i]
        ok_s = ~clean["sdss/mask"][i]
        ok_d = ~clean["desi/mask"][i]
        fd = np.interp(wd, wd[ok_d], fd[ok_d])
        fs_on_d = np.interp(wd, ws[ok_s], fs[ok_s])
        overlap = (wd > np.nanmin(ws[ok_s]) + 50) & (wd < np.nanmax(ws[ok_s]) - 50)
        # smooth both to ~8 A sigma (10 DESI pixels) so the resolution difference washes out
        sd = ndimage.gaussian_filter1d(fd, 10)[overlap]
        ss = ndimage.gaussian_filter1d(fs_on_d, 10)[overlap]
        rel = np.abs(sd - ss) / np.abs(sd).mean()
        assert np.median(rel) < 0.01 and np.percentile(rel, 99) < 0.06, (i, np.median(rel), np.percentile(rel, 99))


def _blind_redshift(wave, flux, ivar, zgrid):
    """Emission-line redshift by a matched filter summed over the strong lines (no truth used)."""
    lines = np.array([3728.5, 4862.68, 5008.24, 6564.61, 6585.27])
    good = ivar > 0
    f = np.where(good, flux, 0.0)
    cont = ndimage.median_filter(f, size=121, mode="nearest")
    resid = (f - cont) * np.sqrt(ivar)
    snr = ndimage.gaussian_filter1d(resid, 2.0) * np.sqrt(2 * np.sqrt(np.pi) * 2.0)
    score = np.zeros_like(zgrid)
    for lam in lines:
        obs = lam * (1 + zgrid)
        inside = (obs > wave[0] + 5) & (obs < wave[-1] - 5)
        score += np.where(inside, np.interp(obs, wave, np.clip(snr, -5, 30)), 0.0)
    return zgrid[np.argmax(score)]


def test_redshift_recovered_from_emission_lines(tmp_path):
    path = tmp_path / "desi.h5"
    simulate.simulate_crossmatch(path, name="zfind", surveys=["desi"], n=40, seed=5)
    d = _read(path)
    z_true = d["truth/redshift"]
    sf = d["truth/quiescent"] == 0
    assert sf.sum() >= 15
    zgrid = np.arange(0.005, 1.0, 5e-5)
    dz = np.array([abs(_blind_redshift(DESI_WAVELENGTH, d["desi/flux"][i], d["desi/ivar"][i], zgrid) - z_true[i])
                   for i in np.flatnonzero(sf)])
    # A blind search can confuse lines for a rare object; the rest land within 1e-3 (mostly 1e-4).
    assert np.mean(dz < 1e-3) >= 0.85, np.sort(dz)
    assert np.median(dz) < 2e-4, np.sort(dz)


# ----------------------------------------------------------------------------- model internals

def test_composite_half_light_radius_exact():
    # pure disk / pure bulge give their own radius; a mixture lies in between
    r = simulate.composite_half_light_radius(np.array([0.0, 1.0, 0.5]), np.array([0.5, 0.5, 0.5]),
                                             np.array([4.0, 4.0, 4.0]), np.array([2.0, 2.0, 2.0]))
    np.testing.assert_allclose(r[:2], [2.0, 0.5], rtol=1e-6)
    assert 0.5 < r[2] < 2.0
    frac = 0.5 * simulate.enclosed_fraction_truncated(r[2], 0.5, 4.0) + 0.5 * simulate.enclosed_fraction(r[2], 2.0, 1.0)
    assert frac == pytest.approx(0.5, abs=1e-6)
    # the bulge is truncated as galsim renders it: 8 half-light radii, half-light radius preserved
    galsim = pytest.importorskip("galsim")
    bulge = galsim.Sersic(4.0, half_light_radius=1.0, trunc=simulate.BULGE_TRUNC)
    im = bulge.drawImage(nx=401, ny=401, scale=0.05, method="real_space").array
    y, x = np.mgrid[:401, :401]
    rr = np.hypot(x - 200, y - 200) * 0.05
    assert im[rr < 2].sum() / im.sum() == pytest.approx(simulate.enclosed_fraction_truncated(2.0, 1.0, 4.0), abs=2e-3)


def test_angular_size_follows_cosmology():
    # 1 arcsec is ~1.8 kpc at z=0.1 and ~8 kpc at z=1 (H0=70, Om0=0.3)
    np.testing.assert_allclose(simulate.kpc_per_arcsec([0.1, 1.0]), [1.84, 8.01], rtol=0.02)


def test_jwst_psf_sharpens_with_shorter_wavelength(combo_files):
    with h5py.File(combo_files["jwst_hsc"], "r") as f:
        img = f["jwst/flux"][:].astype(np.float64)
        r_half = f["truth/r_half_arcsec"][:]
    # For the most compact objects the F444W core is broader (lower peak surface-brightness fraction,
    # per arcsec^2: SW pixels are 0.02", LW 0.04") than F150W's.
    small = np.argsort(r_half)[:5]
    scales = np.array(get_survey("jwst").pixel_scales)
    peak_frac = img[small].max(axis=(2, 3)) / img[small].sum(axis=(2, 3)) / scales**2
    assert np.all(peak_frac[:, 2] > peak_frac[:, 6])


def test_jwst_short_wavelength_pixels_are_half_the_long(combo_files):
    """SW pixels are 0.02", LW 0.04": F200W binned 2x2 over the central 48 px is the same sky as F277W's
    central 24 px (and matches it far better than F200W's own central 24 px would)."""
    with h5py.File(combo_files["jwst_hsc"], "r") as f:
        assert list(f["jwst"].attrs["pixel_scales"]) == [0.02] * 4 + [0.04] * 3
    sky = simulate.simulate_sky("pix", ["jwst"], 4, 1, noise=False, neighbours=False)
    img = sky["groups"]["jwst"]["flux"].astype(np.float64)
    sw = img[:, 3, 24:72, 24:72].reshape(4, 24, 2, 24, 2).sum(axis=(2, 4))
    lw = img[:, 4, 36:60, 36:60]
    unbinned = img[:, 3, 36:60, 36:60]
    for i in range(4):
        same = np.corrcoef(sw[i].ravel(), lw[i].ravel())[0, 1]
        zoomed = np.corrcoef(unbinned[i].ravel(), lw[i].ravel())[0, 1]
        assert same > 0.97 and same > zoomed, (same, zoomed)


def test_truth_features_are_the_standardised_latents(combo_files):
    path = combo_files["desi_hsc"]
    ids, x = simulate.truth_features(path)
    with h5py.File(path) as f:
        assert ids.tolist() == [i.decode() if isinstance(i, bytes) else i for i in f["object_id"][:]]
        z = f["truth"]["redshift"][:]
        r = np.log10(f["truth"]["r_half_kpc"][:])
    assert x.shape == (len(ids), len(simulate.TRUTH_FEATURES)) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x[:, 0], (z - z.mean()) / z.std(), rtol=1e-5, atol=1e-5)
    j = simulate.TRUTH_FEATURES.index("r_half_kpc")
    np.testing.assert_allclose(x[:, j], (r - r.mean()) / r.std(), rtol=1e-4, atol=1e-4)


def test_truth_features_need_a_truth_group(tmp_path):
    from samesky.schema import SchemaError, write_crossmatch

    path = tmp_path / "real.h5"
    write_crossmatch(path, "x", ["a", "b"], [0, 0], [0, 0], {"hsc": {"flux": np.zeros((2, 5, 4, 4), np.float32)}})
    with pytest.raises(SchemaError, match="real.h5: no '/truth' group"):
        simulate.truth_features(path)


def test_the_crossmatch_selection_is_its_lowest_ranked_surveys(monkeypatch):
    """Spectroscopic surveys set a crossmatch's galaxies, then JWST, Legacy, HSC; a survey the
    simulation cannot select for is refused by name."""
    from samesky.simulate.population import selection
    from samesky.surveys import SURVEYS

    assert selection(["hsc", "jwst", "desi"]) == get_survey("desi").selection
    assert selection(["hsc", "legacysurvey", "jwst"]).redshift_prior == (0.1, 3.5, 1.0, 0.6)  # JWST's
    assert selection(["sdss", "desi"]).mass_anchor == 10.6
    monkeypatch.setitem(SURVEYS, "hsc", dataclasses.replace(get_survey("hsc"), selection=None))
    with pytest.raises(ValueError, match=r"^none of the surveys \['hsc'\] has a simulated selection"):
        simulate.simulate_sky("x", ["hsc"], 2, 0)


# ----------------------------------------------------------------------------- COSMOS-Web snapshot

COSMOS = "Ashodkh/cosmosweb-hsc-jwst-high-snr-pil2"


def test_cosmos_web_snapshot_is_the_hub_layout_and_ingests_to_the_rendered_sky(tmp_path):
    """A simulated COSMOS-Web snapshot: parquet with the layout's features (PIL images, LePhare
    columns), ingested through the real path: the row numbers are the ids of the truth, the images
    the 8-bit composites of the jwst and hsc renderings of the same galaxy, the catalogue the
    truth plus its scatter (photo-z within 5 sigma_z of z)."""
    import datasets
    from datasets import Features, Image, Value

    from samesky import mmu
    from samesky.ingest import ingest_hf
    from samesky.simulate.seeding import _rng
    from samesky.simulate.writers import catalogue_from_truth, rgb_composite

    n, seed, name = 10, 5, "cosmos_web"
    simulate.simulate_snapshot(tmp_path / "snap", tmp_path / "truth.h5", name, COSMOS, n, seed, file_rows=4)
    files = sorted((tmp_path / "snap" / "data").glob("train-*.parquet"))
    assert [f.name for f in files] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    cat = ["lephare_photozs", "lp_mass", "lp_ssfr", "mag_model_hsc-g", "mag_model_hsc-r"]
    features = Features({"jwst_images": Image(), "hsc_images": Image(), **{c: Value("float64") for c in cat}})
    assert mmu.crossmatch_features(COSMOS) == features
    table = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    assert table.features == features
    assert table[0]["hsc_images"].mode == "RGB" and table[0]["hsc_images"].size == (160, 160)

    ingest_hf(str(tmp_path / "snap"), tmp_path / "xm.h5", name=name, surveys=["cosmos_jwst", "cosmos_hsc"],
              layout=COSMOS)
    sky = simulate.simulate_sky(name, ["jwst", "hsc"], n, seed)
    with h5py.File(tmp_path / "xm.h5", "r") as f, h5py.File(tmp_path / "truth.h5", "r") as t:
        ids = list(f["object_id"].asstr()[:])
        assert ids == [str(i) for i in range(n)] == list(t["object_id"].asstr()[:])
        for survey, src, bands in (("cosmos_hsc", "hsc", ("z", "r", "g")),
                                   ("cosmos_jwst", "jwst", ("f444w", "f356w", "f277w"))):
            want = np.moveaxis(rgb_composite(sky["groups"][src], src, bands), -1, 1).astype(np.float32)
            np.testing.assert_array_equal(f[f"{survey}/flux"][:], want)
            assert 0 < want.mean() < 255
        props = {c: f[f"properties/{c}"][:] for c in cat}
        truth = {k: t[f"truth/{k}"][:] for k in t["truth"]}
    drawn = catalogue_from_truth(sky["truth"], cat, _rng(seed, name, "catalogue"))
    for c in cat:
        np.testing.assert_array_equal(props[c], drawn[c])
    np.testing.assert_array_equal(truth["log_mass"], sky["truth"]["log_mass"])
    z = truth["redshift"]
    assert np.all(np.abs(props["lephare_photozs"] - z) < 5 * 0.03 * (1 + z))
    assert np.all(np.abs(props["lp_mass"] - truth["log_mass"]) < 0.5)
    g = 22.5 - 2.5 * np.log10(truth["phot_hsc_g"])
    assert np.all(np.abs(props["mag_model_hsc-g"] - g) < 0.25)


def test_rgb_composite_is_one_stretch_for_every_object():
    """Brighter objects are brighter pixels: the stretch is set on the whole set, not per object."""
    from samesky.simulate.writers import rgb_composite

    flux = np.zeros((2, 5, 4, 4))
    flux[0, :, 0, 0], flux[1, :, 0, 0] = 1.0, 10.0
    arrays = {"flux": flux, "ivar": np.full(flux.shape, 1e4)}
    out = rgb_composite(arrays, "hsc", ("z", "r", "g"))
    assert out.dtype == np.uint8 and out.shape == (2, 4, 4, 3)
    assert out[1, 0, 0, 0] == 255 and 0 < out[0, 0, 0, 0] < 255 and out[0, 1, 1, 0] == 0
