"""Spectra on the DESI grid: real SDSS DR18 spectra (shipped with ppxf) against specutils, real
DESI coadds (shipped with specutils' tests), and the masking/dropping rules."""
import logging
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import InverseVariance

from samesky import spectra
from samesky.ingest import desi_coadd_to_arrays
from samesky.preprocess import preprocess_spectra
from samesky.schema import SchemaError, read_provenance, write_crossmatch
from samesky.surveys import DESI_WAVELENGTH, get_survey, sdss_wavelength

ppxf = pytest.importorskip("ppxf")
specutils = pytest.importorskip("specutils")
from specutils import SpectralAxis, Spectrum  # noqa: E402
from specutils.manipulation import FluxConservingResampler  # noqa: E402

SDSS_FILES = sorted((Path(ppxf.__file__).parent / "spectra").glob("*_SDSS_DR18.fits"))
DESI_DIR = Path(specutils.__file__).parent / "io" / "default_loaders" / "tests" / "desi_test_data"
DESI_FILES = sorted(DESI_DIR.glob("coadd-*.fits"))


def read_sdss(path):
    d = fits.open(path)[1].data
    return (10.0 ** d["loglam"].astype(np.float64), d["flux"].astype(np.float64), d["ivar"].astype(np.float64),
            d["and_mask"] != 0)


def specutils_resample(wave, flux, ivar):
    spec = Spectrum(flux=flux * u.Unit("1e-17 erg / (s cm2 Angstrom)"), spectral_axis=wave * u.AA,
                    uncertainty=InverseVariance(ivar))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = FluxConservingResampler()(spec, DESI_WAVELENGTH * u.AA)
    return out.flux.value, out.uncertainty.array


def integral(edges, values, lo, hi):
    """Integral of a piecewise-constant density over [lo, hi]."""
    left, right = np.clip(edges[:-1], lo, hi), np.clip(edges[1:], lo, hi)
    return float(np.sum(values * (right - left)))


def sdss_crossmatch(path, masks=False):
    """Both ppxf SDSS spectra in one crossmatch: different lengths, NaN-padded per-row wavelengths."""
    rows = [read_sdss(p) for p in SDSS_FILES]
    width = max(len(r[0]) for r in rows)
    arrays = {"flux": np.zeros((len(rows), width), np.float32), "ivar": np.zeros((len(rows), width), np.float32),
              "mask": np.ones((len(rows), width), bool), "wavelength": np.full((len(rows), width), np.nan)}
    for i, (w, f, iv, m) in enumerate(rows):
        arrays["wavelength"][i, :len(w)], arrays["flux"][i, :len(w)], arrays["ivar"][i, :len(w)] = w, f, iv
        arrays["mask"][i, :len(w)] = m if masks else False
    write_crossmatch(path, "sdss_real", [p.stem for p in SDSS_FILES], [0.0] * len(rows), [0.0] * len(rows),
                     {"sdss": arrays})
    return rows


def read_out(path):
    import h5py

    with h5py.File(path, "r") as f:
        return (f["object_id"].asstr()[:], f["data"][:], f["ivar"][:], f["mask"][:], read_provenance(f))


def test_bin_edges_are_specutils_edges():
    w = sdss_wavelength(50, 300)
    np.testing.assert_allclose(spectra.bin_edges(w), SpectralAxis(w * u.AA).bin_edges.value, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="strictly increasing"):
        spectra.bin_edges(w[::-1])


def test_real_sdss_spectra_resampled_like_specutils_and_flux_conserved(tmp_path):
    assert len(SDSS_FILES) == 2, f"expected the two SDSS DR18 spectra shipped with ppxf, found {SDSS_FILES}"
    rows = sdss_crossmatch(tmp_path / "xm.h5")
    prov = preprocess_spectra(tmp_path / "xm.h5", "sdss", tmp_path / "out.h5")
    ids, flux, ivar, mask, _ = read_out(tmp_path / "out.h5")
    assert prov["resampled"] == 2 and prov["n_written"] == 2 and flux.shape == (2, 7781)
    assert list(ids) == [p.stem for p in SDSS_FILES]
    out_edges = spectra.bin_edges(DESI_WAVELENGTH)
    for i, (w, f, iv, _) in enumerate(rows):
        ref_flux, ref_ivar = specutils_resample(w, f, iv)
        valid = ~mask[i]
        # DESI pixels outside the SDSS coverage are masked with flux 0 and ivar 0
        e_in = spectra.bin_edges(w)
        inside = (out_edges[:-1] >= e_in[0]) & (out_edges[1:] <= e_in[-1])
        np.testing.assert_array_equal(valid, inside)
        assert np.all(flux[i][~valid] == 0) and np.all(ivar[i][~valid] == 0)
        assert 6500 < valid.sum() < 7000  # ~3800-9200 A of the 3600-9824 A grid
        # same values as specutils wherever we keep a pixel; specutils keeps one extra, partly
        # covered pixel at the blue end, which we mask
        assert np.isfinite(ref_flux[valid]).all()
        extra = np.flatnonzero(np.isfinite(ref_flux) & ~valid)
        assert len(extra) == 1 and extra[0] == np.flatnonzero(valid)[0] - 1
        np.testing.assert_allclose(flux[i][valid], ref_flux[valid], rtol=1e-5, atol=1e-5 * np.abs(ref_flux[valid]).max())
        np.testing.assert_allclose(ivar[i][valid], ref_ivar[valid], rtol=1e-5)
        # integrated flux over the overlap is conserved (< 1%; in fact to float32 precision)
        lo, hi = out_edges[:-1][valid][0], out_edges[1:][valid][-1]
        before, after = integral(e_in, f, lo, hi), integral(out_edges, flux[i].astype(np.float64), lo, hi)
        assert abs(after - before) / abs(before) < 1e-2
        assert abs(after - before) / abs(before) < 1e-5


def test_bad_input_pixels_mask_their_output_pixels(tmp_path):
    """SDSS and_mask pixels: touched DESI pixels are masked (ivar 0) but keep a finite flux."""
    rows = sdss_crossmatch(tmp_path / "xm.h5", masks=True)
    preprocess_spectra(tmp_path / "xm.h5", "sdss", tmp_path / "out.h5")
    _, flux, ivar, mask, _ = read_out(tmp_path / "out.h5")
    fully_bad = 0  # DESI pixels lying entirely inside one bad SDSS pixel
    for i, (w, f, iv, m) in enumerate(rows):
        assert m.sum() > 0
        clean_flux, clean_ivar, clean_mask = spectra.resample(f, iv, w)
        overlaps = (spectra.overlap_matrix(w)[0] > 0).astype(float)
        touched = overlaps @ m.astype(float) > 0
        some_good = overlaps @ (~m).astype(float) > 0
        np.testing.assert_array_equal(mask[i], clean_mask[0] | touched)
        np.testing.assert_array_equal(mask[i], ivar[i] == 0)
        np.testing.assert_array_equal(flux[i][~mask[i]], clean_flux[0][~mask[i]])
        # the flux of a touched pixel is the mean of its good inputs; with none it is 0
        assert np.isfinite(flux[i]).all()
        assert np.all(flux[i][touched & ~clean_mask[0] & some_good] != 0)
        assert np.all(flux[i][~some_good] == 0)
        fully_bad += int((touched & ~some_good).sum())
    assert fully_bad > 0


def test_nonfinite_flux_masked_and_empty_spectra_dropped(tmp_path, caplog):
    w = sdss_wavelength(300, 2000)
    flux = np.ones((3, 300), np.float32)
    flux[0, 100:103] = [np.nan, np.inf, -np.inf]
    flux[1] = np.nan
    write_crossmatch(tmp_path / "xm.h5", "t", ["a", "b", "c"], [0, 0, 0], [0, 0, 0],
                     {"sdss": {"flux": flux, "ivar": np.ones_like(flux), "mask": np.zeros(flux.shape, bool),
                               "wavelength": w}})
    with caplog.at_level(logging.INFO, logger="samesky"):
        prov = preprocess_spectra(tmp_path / "xm.h5", "sdss", tmp_path / "out.h5")
    ids, data, ivar, mask, stored = read_out(tmp_path / "out.h5")
    assert list(ids) == ["a", "c"]
    assert prov == stored
    assert prov["dropped"] == {"no_valid_pixels": 1, "all_zero": 0} and prov["dropped_examples"]["no_valid_pixels"] == ["b"]
    assert prov["nonfinite_flux_pixels"] == 303 and prov["spectra_with_nonfinite_flux"] == 2
    assert prov["distinct_input_grids"] == 1  # one overlap matrix served all three rows
    assert np.isfinite(data).all()
    # row a: DESI pixels overlapping the 3 bad pixels are masked, others equal 1 (flat spectrum)
    bad_lo, bad_hi = spectra.bin_edges(w)[100], spectra.bin_edges(w)[103]
    e = spectra.bin_edges(DESI_WAVELENGTH)
    hit = (e[1:] > bad_lo) & (e[:-1] < bad_hi)
    assert mask[0][hit].all() and hit.sum() >= 3
    np.testing.assert_allclose(data[0][~mask[0]], 1.0, rtol=1e-6)
    # masked pixels partly over good inputs keep the good inputs' mean (1); those wholly inside bad ones get 0
    partial = hit & (data[0] != 0)
    assert partial.any() and (hit & (data[0] == 0)).any()
    np.testing.assert_allclose(data[0][partial], 1.0, rtol=1e-6)
    np.testing.assert_array_equal(mask[0], mask[1] | hit)
    assert "dropped {'no_valid_pixels': 1, 'all_zero': 0}" in caplog.text and "303 non-finite flux pixels" in caplog.text


@pytest.mark.parametrize("path", DESI_FILES, ids=lambda p: p.name)
def test_real_desi_coadd_loads_into_schema_and_passes_through(tmp_path, path):
    assert DESI_FILES, f"no DESI coadd test data under {DESI_DIR}"
    arrays = desi_coadd_to_arrays(path)
    n = len(arrays["object_id"])
    assert n == 5 and arrays["flux"].shape == (5, 7781) and arrays["ivar"].shape == (5, 7781)
    np.testing.assert_array_equal(arrays["wavelength"], DESI_WAVELENGTH)
    h = fits.open(path)
    b_flux, b_ivar = h["B_FLUX"].data.astype(np.float64), h["B_IVAR"].data.astype(np.float64)
    r_flux, r_ivar = h["R_FLUX"].data.astype(np.float64), h["R_IVAR"].data.astype(np.float64)
    usable = sum(((h[f"{a}_IVAR"].data > 0) & (h[f"{a}_MASK"].data == 0)).any(axis=1) for a in "BRZ") > 0
    live = np.flatnonzero(usable)
    assert 1 <= len(live) < 5  # the test files keep some real spectra and zero out the others
    j = live[0]
    # blue-only pixel (4000 A): the b arm itself; b/r overlap pixel (5780 A): ivar-weighted mean
    k = int(round((4000 - 3600) / 0.8))
    assert arrays["flux"][j, k] == np.float32(b_flux[j, k]) and arrays["ivar"][j, k] == np.float32(b_ivar[j, k])
    k = int(round((5780 - 3600) / 0.8))
    kb, kr = k, int(round((5780 - 5760) / 0.8))
    good_b, good_r = b_ivar[j, kb] > 0, r_ivar[j, kr] > 0
    assert good_b and good_r
    expect = (b_ivar[j, kb] * b_flux[j, kb] + r_ivar[j, kr] * r_flux[j, kr]) / (b_ivar[j, kb] + r_ivar[j, kr])
    np.testing.assert_allclose(arrays["flux"][j, k], expect, rtol=1e-6)
    np.testing.assert_allclose(arrays["ivar"][j, k], b_ivar[j, kb] + r_ivar[j, kr], rtol=1e-6)

    # into our schema (float32 wavelengths, as the hub stores them), then through preprocessing
    desi = {k: arrays[k] for k in ("flux", "ivar", "mask")} | {"wavelength": arrays["wavelength"].astype(np.float32)}
    write_crossmatch(tmp_path / "xm.h5", "desi_real", arrays["object_id"], arrays["ra"], arrays["dec"], {"desi": desi})
    prov = preprocess_spectra(tmp_path / "xm.h5", "desi", tmp_path / "out.h5")
    ids, data, ivar, mask, _ = read_out(tmp_path / "out.h5")
    assert prov["passed_through"] == 5 and prov["resampled"] == 0
    assert prov["dropped"] == {"no_valid_pixels": 5 - len(live), "all_zero": 0} and list(ids) == list(arrays["object_id"][live])
    np.testing.assert_array_equal(data, arrays["flux"][live])
    np.testing.assert_array_equal(mask, arrays["mask"][live])
    np.testing.assert_array_equal(mask, ivar == 0)


def test_desi_off_grid_is_an_error_unless_resampling_is_asked(tmp_path):
    w = DESI_WAVELENGTH + 0.4  # half a pixel off
    flux = np.ones((2, 7781), np.float32)
    write_crossmatch(tmp_path / "xm.h5", "t", ["a", "b"], [0, 0], [0, 0],
                     {"desi": {"flux": flux, "ivar": flux, "mask": np.zeros(flux.shape, bool), "wavelength": w}})
    with pytest.raises(SchemaError, match=r"xm\.h5: 'desi/wavelength' of object_id 'a' is not the DESI grid"):
        preprocess_spectra(tmp_path / "xm.h5", "desi", tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
    prov = preprocess_spectra(tmp_path / "xm.h5", "desi", tmp_path / "out.h5", resample_off_grid=True)
    _, data, _, mask, _ = read_out(tmp_path / "out.h5")
    assert prov["resampled"] == 2
    assert mask[:, 0].all() and not mask[:, 1:].any()  # the red-shifted grid only half covers the first pixel
    np.testing.assert_allclose(data[~mask], 1.0, rtol=1e-6)


def test_real_sdss_spectra_in_the_mmu_layout_have_their_padding_dropped(tmp_path):
    """The two SDSS DR18 spectra as MMU's SDSS builder writes one file (float32 lambda; rows padded to
    the longest with lambda -1, ivar 0, mask True, flux edge-repeated: scripts/sdss/build_parent_sample.py
    L97-104), in a sdss_hsc snapshot: ingested and preprocessed exactly like the unpadded spectra."""
    from samesky import mmu
    from samesky.ingest import ingest_hf

    layout = "Smith42/sdss_hsc_crossmatched"
    rows = [read_sdss(p) for p in SDSS_FILES]
    lengths = [len(r[0]) for r in rows]
    width = max(lengths)
    assert len(set(lengths)) == 2  # one of the two is padded
    out = []
    for k, (path, (w, f, iv, m)) in enumerate(zip(SDSS_FILES, rows)):
        pad = width - len(w)
        spectrum = {"flux": np.pad(f.astype(np.float32), (0, pad), mode="edge"),
                    "ivar": np.pad(iv.astype(np.float32), (0, pad)),
                    "lsf_sigma": np.pad(np.ones(len(w), np.float32), (0, pad), mode="edge"),
                    "lambda": np.pad(w.astype(np.float32), (0, pad), constant_values=-1),
                    "mask": np.pad(m, (0, pad), constant_values=True)}
        hsc = [{"band": b, "flux": np.full((160, 160), k + 1.0 + i, np.float32), "ivar": np.ones((160, 160), np.float32),
                "mask": np.zeros((160, 160), bool), "psf_fwhm": 0.7, "scale": 0.168}
               for i, b in enumerate(get_survey("hsc").archive_bands)]
        parts = {"sdss": {"spectrum": spectrum, **{c: np.nan for c in mmu.SDSS_FLOAT + mmu.SDSS_FLUX},
                          "ZWARNING": True, "object_id": f"specobj{k}"},
                 "hsc": {"image": hsc, **{c: np.nan for c in mmu.HSC_FLOAT}, "object_id": path.stem}}
        out.append(mmu.crossmatch_row(layout, parts))
    mmu.write_snapshot(tmp_path / "snap", layout, out)
    ingest_hf(str(tmp_path / "snap"), tmp_path / "mmu.h5", name="sdss_hsc", surveys=["sdss", "hsc"], layout=layout)
    got = preprocess_spectra(tmp_path / "mmu.h5", "sdss", tmp_path / "a.h5")
    ref = {"flux": np.zeros((2, width), np.float32), "ivar": np.zeros((2, width), np.float32),
           "mask": np.ones((2, width), bool), "wavelength": np.full((2, width), np.nan)}
    for i, (w, f, iv, m) in enumerate(rows):
        n = len(w)
        ref["wavelength"][i, :n] = w.astype(np.float32)
        ref["flux"][i, :n], ref["ivar"][i, :n], ref["mask"][i, :n] = f, iv, m
    write_crossmatch(tmp_path / "ref.h5", "ref", [p.stem for p in SDSS_FILES], [0.0, 0.0], [0.0, 0.0], {"sdss": ref})
    want = preprocess_spectra(tmp_path / "ref.h5", "sdss", tmp_path / "b.h5")
    assert got["padding_pixels"] == want["padding_pixels"] == width - min(lengths)
    assert got["spectra_with_padding"] == 1 and got["n_written"] == 2
    a, b = read_out(tmp_path / "a.h5"), read_out(tmp_path / "b.h5")
    assert list(a[0]) == [p.stem for p in SDSS_FILES]
    for x, y in zip(a[1:4], b[1:4]):
        np.testing.assert_array_equal(x, y)
