"""Fibre spectra on the DESI and SDSS pixels: instrument resolution, sky-line noise, fibre
losses, bad pixels and SDSS's per-object wavelength windows."""
from __future__ import annotations

import numpy as np

from ..surveys import DESI_WAVELENGTH, SDSS_DLOGLAM, SDSS_LOGLAM0, get_survey, sdss_wavelength
from .cosmology import luminosity_distance_cm
from .population import enclosed_fraction, enclosed_fraction_truncated
from .sed import ABSORPTION, EM_LAM, line_luminosities, rest_continuum

C_KMS = 299792.458


FLUX_UNIT_SPECTRUM = "1e-17 erg/s/cm^2/Angstrom"


def desi_resolution(lam_obs):
    return np.interp(lam_obs, [3600.0, 5900.0, 7700.0, 9824.0], [2000.0, 3200.0, 4100.0, 5100.0])


def sdss_resolution(lam_obs):
    return np.interp(lam_obs, [3800.0, 6000.0, 9200.0], [1850.0, 2000.0, 2200.0])


def _sigma_function(survey: str):
    """Instrument (+ pixel) Gaussian sigma in observed Angstrom as a function of observed lambda."""
    if survey == "desi":
        return lambda lam: np.sqrt((lam / (2.3548 * desi_resolution(lam))) ** 2 + 0.8**2 / 12)
    dlam = lambda lam: lam * np.log(10) * SDSS_DLOGLAM  # noqa: E731
    return lambda lam: np.sqrt((lam / (2.3548 * sdss_resolution(lam))) ** 2 + dlam(lam) ** 2 / 12)


_SKY_LINES = None


def _sky_lines():
    """A fixed night-sky emission line list (vacuum A, relative strength): OI, Na, OH forest."""
    global _SKY_LINES
    if _SKY_LINES is None:
        fixed = np.array([[5578.9, 6.0], [5891.6, 1.5], [5897.6, 1.0], [6302.0, 3.0], [6365.5, 1.0]])
        r = np.random.default_rng(20240531)
        oh_lam = np.sort(r.uniform(6800, 10000, 120))
        oh_amp = r.exponential(1.5, 120) * (1 + (oh_lam - 6800) / 1600)
        _SKY_LINES = np.concatenate([fixed, np.stack([oh_lam, oh_amp], axis=1)])
    return _SKY_LINES


def _noise_profile(survey: str, lam: np.ndarray) -> np.ndarray:
    """Relative per-pixel noise at observed lambda (1-D): throughput edges and sky lines."""
    sig_fn = _sigma_function(survey)
    tp = np.clip(1 - 0.6 * ((lam - 6500.0) / 3300.0) ** 2, 0.25, 1.0)
    sky = np.zeros_like(lam)
    for lam0, amp in _sky_lines():
        s = sig_fn(lam0)
        near = np.abs(lam - lam0) < 8 * s
        sky[near] += amp * np.exp(-0.5 * ((lam[near] - lam0) / s) ** 2)
    return np.sqrt(1 + sky) / tp


def fiber_fraction(lat, diameter: float, seeing: float) -> np.ndarray:
    """Approximate fraction of the (rest 5500 A) light inside a fibre under Gaussian seeing."""
    rad = diameter / 2.0
    hs = 0.5 * seeing  # half-light radius of a Gaussian of FWHM `seeing`
    rb = np.hypot(lat["r_bulge_arcsec"], hs)
    rd = np.hypot(lat["r_disk_arcsec"], hs)
    bf = lat["bulge_fraction"]
    return bf * enclosed_fraction_truncated(rad, rb, lat["sersic_n"]) + (1 - bf) * enclosed_fraction(rad, rd, 1.0)


def _add_windowed(out, wave, pix_of, mu, sigma, amp, peak_norm: bool) -> None:
    """out[i] += amp[i] * G(wave[i]; mu[i], sigma[i]) on a window of pixels around mu[i].

    ``pix_of(lam)`` maps (N,) observed wavelengths to fractional pixel indices of each row;
    G is a unit-area Gaussian, or unit-peak when ``peak_norm``. Only ~12 sigma of pixels are
    evaluated per object instead of the whole spectrum.
    """
    n, length = wave.shape
    centre = pix_of(mu)
    ok = np.isfinite(centre) & (centre > -50) & (centre < length + 50)
    if not ok.any():
        return
    # Window half-width in pixels from the local pixel size at the line.
    step = np.abs(pix_of(mu * 1.0001) - centre) / (mu * 1e-4)  # pixels per Angstrom
    half = int(np.ceil(np.nanmax(np.where(ok, 6 * sigma * step, 0)))) + 1
    cols = np.rint(centre[:, None]).astype(np.int64) + np.arange(-half, half + 1)[None, :]
    inside = ok[:, None] & (cols >= 0) & (cols < length)
    cols_c = np.clip(cols, 0, length - 1)
    rows = np.broadcast_to(np.arange(n)[:, None], cols.shape)
    lam = wave[rows, cols_c]
    inside &= np.isfinite(lam)
    x = (np.where(inside, lam, 0.0) - mu[:, None]) / sigma[:, None]
    g = np.exp(-0.5 * x * x)
    if not peak_norm:
        g /= np.sqrt(2 * np.pi) * sigma[:, None]
    vals = np.where(inside, amp[:, None] * g, 0.0)
    np.add.at(out, (rows[inside], cols_c[inside]), vals[inside])


def model_spectrum(lat, survey: str, wavelength: np.ndarray, pix_of) -> np.ndarray:
    """Noiseless total-light spectrum (1e-17 erg/s/cm^2/A) at observed wavelengths (N, L).

    ``wavelength`` may hold NaN (padding; returned as 0). ``pix_of(lam)`` maps (N,) observed
    wavelengths to fractional pixel indices of each row (used to evaluate narrow features only
    near their centres). Absorption features multiply the old / young continua with a depth that
    conserves their equivalent width; emission lines are added to the disk. Every feature has the
    width sqrt(intrinsic^2 + velocity^2 + instrument^2 + pixel^2).
    """
    z = np.asarray(lat["redshift"], float)
    z1 = 1 + z
    lam = np.asarray(wavelength, float)
    valid = np.isfinite(lam)
    filled = np.where(valid, lam, 5000.0)
    cont = rest_continuum(lat, filled / z1[:, None])
    to_obs = 1.0 / (4 * np.pi * luminosity_distance_cm(z) ** 2 * z1) / 1e-17  # L_rest -> f_obs
    sig_fn = _sigma_function(survey)
    tau_old = np.zeros_like(filled)
    tau_young = np.zeros_like(filled)
    for lam_f, ew_old, ew_young, sig_f in ABSORPTION:
        mu = lam_f * z1
        sig = np.sqrt((sig_f * z1) ** 2 + (mu * lat["vel_disp"] / C_KMS) ** 2 + sig_fn(mu) ** 2)
        norm = np.sqrt(2 * np.pi) * sig
        # equivalent width is stretched by (1 + z) in the observed frame
        _add_windowed(tau_old, filled, pix_of, mu, sig, np.minimum(ew_old * z1 / norm, 0.9), True)
        _add_windowed(tau_young, filled, pix_of, mu, sig, np.minimum(ew_young * z1 / norm, 0.9), True)
    f = ((cont["bulge_old"] + cont["disk_old"]) * np.clip(1 - tau_old, 0.05, 1)
         + cont["disk_young"] * np.clip(1 - tau_young, 0.05, 1) + cont["hot"]) * to_obs[:, None]
    lum = line_luminosities(lat)
    flux_line = lum / (4 * np.pi * luminosity_distance_cm(z)[:, None] ** 2) / 1e-17
    vel = np.maximum(np.asarray(lat["vel_disp"], float) * 0.6, 40.0)
    for k, lam_k in enumerate(EM_LAM):
        mu = lam_k * z1
        sig = np.sqrt((mu * vel / C_KMS) ** 2 + sig_fn(mu) ** 2)
        _add_windowed(f, filled, pix_of, mu, sig, flux_line[:, k], False)
    return np.where(valid, f, 0.0)


def _subset(lat, sl):
    return {k: v[sl] for k, v in lat.items()}


def render_spectra(lat, survey: str, rng: np.random.Generator, noise: bool = True,
                   chunk: int = 256) -> tuple[dict, dict]:
    """Render flux, ivar, mask, wavelength for one spectroscopic survey; return (arrays, truth extras)."""
    n = len(lat["redshift"])
    spec = get_survey(survey).spectrograph
    if survey == "desi":
        wave = np.broadcast_to(DESI_WAVELENGTH, (n, DESI_WAVELENGTH.size))
        wave_out = DESI_WAVELENGTH.astype(np.float64)
        starts = np.zeros(n, np.int64)
        noise_prof = np.broadcast_to(_noise_profile(survey, DESI_WAVELENGTH), wave.shape)

        def pix_for(sl):
            return lambda lam: (lam - DESI_WAVELENGTH[0]) / 0.8
    else:
        start_nominal = int(round((np.log10(3800.0) - SDSS_LOGLAM0) / SDSS_DLOGLAM))
        end_nominal = int(round((np.log10(9200.0) - SDSS_LOGLAM0) / SDSS_DLOGLAM))
        starts = start_nominal + rng.integers(-15, 40, n)
        lengths = end_nominal + rng.integers(-40, 15, n) - starts
        length = int(lengths.max())
        col = np.arange(length)[None, :]
        glob = starts[:, None] + col  # global log-lambda pixel index
        valid = col < lengths[:, None]
        wave = np.where(valid, 10.0 ** (SDSS_LOGLAM0 + SDSS_DLOGLAM * glob), np.nan)
        wave_out = wave
        lo, hi = int(starts.min()), int(glob.max())
        grid_prof = _noise_profile(survey, sdss_wavelength(hi - lo + 1, lo))
        noise_prof = grid_prof[glob - lo]

        def pix_for(sl):
            st = starts[sl]
            return lambda lam: (np.log10(lam) - SDSS_LOGLAM0) / SDSS_DLOGLAM - st
    ffrac = fiber_fraction(lat, spec.fiber_diameter, spec.seeing)
    model = np.empty(wave.shape, np.float64)
    for a in range(0, n, chunk):
        sl = slice(a, min(a + chunk, n))
        model[sl] = model_spectrum(_subset(lat, sl), survey, wave[sl], pix_for(sl)) * ffrac[sl, None]
    valid = np.isfinite(wave)
    depth = np.exp(rng.normal(0.0, 0.25, n))
    sigma = spec.sigma0 * depth[:, None] * noise_prof
    flux = model + (sigma * rng.standard_normal(model.shape) if noise else 0.0)
    bad = (rng.uniform(size=model.shape) < spec.bad_fraction) & valid
    spikes = np.abs(rng.normal(0, 20, model.shape)) * sigma  # cosmic-ray-like, on bad pixels only
    flux = np.where(bad & noise, flux + spikes, flux)
    ivar = np.where(valid & ~bad, 1.0 / sigma**2, 0.0)
    flux = np.where(valid, flux, 0.0)
    arrays = {
        "flux": flux.astype(np.float32),
        "ivar": ivar.astype(np.float32),
        "mask": bad | ~valid,
        "wavelength": wave_out,
    }
    extras = {f"obs_{survey}_fiber_fraction": ffrac, f"obs_{survey}_noise_scale": depth}
    return arrays, extras




