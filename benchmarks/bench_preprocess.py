"""Preprocessing throughput on CPU: images/s (160x160 HSC-like cutouts) and spectra/s (SDSS -> DESI grid).

    python benchmarks/bench_preprocess.py [--images 512] [--spectra 1000] [--specutils 10]

Images: the array core (``rescale_images``) and the whole file-to-file step (HDF5 read,
rescale, spool, write), plus the two-pass percentile estimate. Spectra: SDSS-like spectra
each on its own grid window (the worst case: one overlap matrix per spectrum), through
``preprocess_spectra`` and through the core ``resample``; against specutils'
``FluxConservingResampler`` called per spectrum, as the study would have.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from samesky import spectra
from samesky.preprocess import (
    compute_percentiles,
    preprocess_images,
    preprocess_spectra,
    rescale_images,
)
from samesky.schema import write_crossmatch, write_percentiles
from samesky.surveys import DESI_WAVELENGTH, sdss_wavelength


def hsc_like(n: int, rng) -> np.ndarray:
    """Sky noise plus a centred exponential disc, 5 bands of 160x160 float32."""
    yy, xx = np.mgrid[:160, :160] - 79.5
    r = np.hypot(xx, yy)
    disc = np.exp(-r / 8.0).astype(np.float32)
    scale = rng.lognormal(0, 1, size=(n, 5, 1, 1)).astype(np.float32)
    return (rng.normal(0, 0.02, size=(n, 5, 160, 160)).astype(np.float32) + scale * disc).astype(np.float32)


def timed(fn, repeat: int = 1) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--spectra", type=int, default=1000)
    ap.add_argument("--specutils", type=int, default=10, help="spectra resampled with specutils (slow)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        flux = hsc_like(args.images, rng)
        xm = tmp / "hsc.h5"
        write_crossmatch(xm, "bench", [f"o{i}" for i in range(args.images)], np.zeros(args.images),
                         np.zeros(args.images), {"hsc": {"flux": flux}})
        rgb_in = flux[:, [3, 1, 0]]
        low, high = np.percentile(rgb_in, 5, axis=(0, 2, 3)), np.percentile(rgb_in, 99, axis=(0, 2, 3))
        n = args.images
        rows.append(("images: rescale_images paper (in memory)",
                     n / timed(lambda: rescale_images(rgb_in, mode="paper", low=low, high=high), 3), "images/s"))
        rows.append(("images: rescale_images authors_arcsinh crop 28 (in memory)",
                     n / timed(lambda: rescale_images(rgb_in, mode="authors_arcsinh", low=low, high=high, crop=28), 3),
                     "images/s"))
        res = {}
        rows.append(("images: compute_percentiles (2 passes, HDF5)",
                     n / timed(lambda: res.update(compute_percentiles(xm, "hsc", bands=["z", "r", "g"]))), "images/s"))
        write_percentiles(tmp / "p.json", res)
        rows.append(("images: preprocess_images paper (HDF5 -> HDF5)",
                     n / timed(lambda: preprocess_images(xm, "hsc", tmp / "out.h5", bands=["z", "r", "g"],
                                                         percentiles_json=tmp / "p.json")), "images/s"))

        # SDSS-like spectra: ~3850 log-lambda pixels, each starting at its own grid offset
        m = args.spectra
        length = 3850
        starts = rng.integers(0, 300, size=m)
        wave = np.stack([sdss_wavelength(length, s) for s in starts])
        sflux = (rng.normal(10, 1, size=(m, length))).astype(np.float32)
        sivar = np.ones_like(sflux)
        write_crossmatch(tmp / "sdss.h5", "bench", [f"s{i}" for i in range(m)], np.zeros(m), np.zeros(m),
                         {"sdss": {"flux": sflux, "ivar": sivar, "mask": np.zeros(sflux.shape, bool), "wavelength": wave}})
        rows.append(("spectra: preprocess_spectra SDSS -> DESI (HDF5 -> HDF5)",
                     m / timed(lambda: preprocess_spectra(tmp / "sdss.h5", "sdss", tmp / "sdss_out.h5")), "spectra/s"))
        k = min(m, 200)
        rows.append(("spectra: resample core, one grid per spectrum",
                     k / timed(lambda: [spectra.resample(sflux[i], sivar[i], wave[i]) for i in range(k)]), "spectra/s"))
        mat = spectra.overlap_matrix(wave[0])
        rows.append(("spectra: resample core, batch sharing one grid",
                     m / timed(lambda: spectra.resample(sflux, sivar, wave[0], matrix=mat), 3), "spectra/s"))

        import astropy.units as u
        from astropy.nddata import InverseVariance
        from specutils import Spectrum
        from specutils.manipulation import FluxConservingResampler

        def run_specutils():
            resampler = FluxConservingResampler()
            for i in range(args.specutils):
                spec = Spectrum(flux=sflux[i].astype(np.float64) * u.Jy, spectral_axis=wave[i] * u.AA,
                                uncertainty=InverseVariance(sivar[i].astype(np.float64)))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    resampler(spec, DESI_WAVELENGTH * u.AA)

        rows.append(("spectra: specutils FluxConservingResampler, per spectrum",
                     args.specutils / timed(run_specutils), "spectra/s"))
    width = max(len(r[0]) for r in rows)
    for name, rate, unit in rows:
        print(f"{name:<{width}}  {rate:10.1f} {unit}")


if __name__ == "__main__":
    main()
