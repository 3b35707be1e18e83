"""The embedded default data source: a simulated crossmatched sky.

``simulate_crossmatch(path, name, surveys, n, seed)`` writes one crossmatch file (schema in
:mod:`samesky.schema`) in which every row is *one latent galaxy* seen by every survey of the
crossmatch, plus its latent properties under ``/truth``. Alignment of embeddings with each other
and with the truth is therefore measurable.

Latent model (per object, all drawn from the seed)
--------------------------------------------------
* redshift: truncated log-normal whose median/range depends on the crossmatch (spectroscopic
  crossmatches are low-z, JWST ones high-z; see ``REDSHIFT_PRIORS``).
* log stellar mass: normal around a mean that rises as 1.8 log10(z) from a per-crossmatch anchor
  (``MASS_ANCHOR``: a rough flux-limited selection, e.g. SDSS ~10.6 at z = 0.1).
* star-formation state: quiescent with a probability rising with mass; log SFR from a main
  sequence (SF) or 1.8 dex below it (quiescent). The disk's young-light fraction follows sSFR.
* morphology: bulge-to-total light ratio (rest 5500 A) and bulge Sersic index (quantised to
  0.25 so galsim's Sersic tables are cached), both depending on the quiescent state; an
  exponential disk.
* size: mass-size relations (late / early type, evolving with z), physical kpc converted to
  arcsec with a flat LCDM cosmology (H0=70, Om0=0.3). ``r_half_arcsec`` is the exact
  circularised half-light radius of the composite bulge+disk profile at rest 5500 A
  (before PSF).
* shape: disk axis ratio (rounder for quiescent), bulge rounder than the disk, one position angle.
* dust: A_V rising with mass and inclination (disk; the bulge gets 20 %), a power-law
  attenuation curve (lambda/5500)^-0.7; nebular lines get 1.5x the stellar A_V; a hot-dust
  component (800 K) scaled with SFR and A_V shows up in the reddest JWST bands at low z.

SED and spectra
---------------
One analytic rest-frame SED per component (vectorised numpy, no per-pixel loops):
old population = 5200 K blackbody with a 4000 A break (D4000 rising with mass), UV cut-off and
metal absorption (Ca H+K, G band, Mg b, Fe5270, Na D, Ca triplet); young population = 11000 K
blackbody with a Balmer break and Balmer absorption; emission lines ([OII], Balmer series,
[OIII], [NII], [SII], Ly-alpha) from SFR (Kennicutt Halpha), with ratios depending on mass.
Normalisation is physical: L(5500) from the stellar mass and per-population M/L, observed flux
through the luminosity distance. Line and absorption features are Gaussians whose width is the
quadrature sum of intrinsic, velocity-dispersion, instrument (DESI R 2000-5100 rising with
wavelength, SDSS R ~2000) and pixel widths, i.e. the spectrum is evaluated at the instrument
resolution analytically. Wavelengths are vacuum (as in DESI and SDSS); e.g. H-alpha is at
6564.61 A rest.

Images and spectra are rendered from the same SED: the images through top-hat filters
(absorption features are ignored in broad-band photometry, a < 1 % effect; emission lines are
integrated analytically), the spectra on the survey grid. Spectra are fibre spectra: the whole
spectrum is scaled by the fraction of light inside the fibre (DESI 1.5", SDSS 3" diameter) under
the seeing, stored as ``truth/obs_<survey>_fiber_fraction``.

Units
-----
* images (HSC, Legacy, JWST): ``flux`` in nanomaggies per pixel (1 nmgy = 3631e-9 Jy, AB
  zero point 22.5); ``ivar`` in nmgy^-2. Sky noise is Gaussian with a per-band sigma derived
  from survey-like 5-sigma point-source depths (HSC-Wide, Legacy DR10, a CEERS-like JWST field),
  with a +-0.2 mag per-object jitter. No galaxy shot noise.
* spectra (DESI, SDSS): ``flux`` in 1e-17 erg/s/cm^2/A, ``ivar`` in its inverse square;
  ``mask`` True on bad pixels (a few random ones per spectrum, with a cosmic-ray-like spike in
  ``flux`` and ivar 0) and on padding. SDSS spectra start and end at a different log-lambda pixel
  per object: ``wavelength`` is (N, L) with NaN on the padding (flux 0, ivar 0, mask True).
Each survey group carries an attribute ``flux_unit``; the root carries ``simulation`` (JSON).

Images: bulge (Sersic) + exponential disk, sheared, each drawn once per survey with galsim at
the survey's sharpest-band PSF (HSC Kolmogorov, Legacy Moffat beta 2.8, JWST Gaussian at the
F090W mosaic resolution), then combined per band with the component band fluxes and blurred
by a Gaussian difference kernel (exact transfer function, FFT) so that band b has PSF FWHM
~ ``PSF_FWHM[survey][b]`` (times a per-object seeing factor for ground-based surveys). Faint
neighbour galaxies (shared sky positions, so the same neighbours appear in every survey where they
fall inside the cutout) and a random sub-pixel centring offset per survey are added.

Truth keys: physical latents without prefix (see ``TRUTH_KEYS``); observation-specific values
prefixed ``obs_<survey>_`` (PSF FWHM of the reference band, noise scale, fibre fraction) and
``phot_<survey>_<band>`` (total noiseless model flux per band in the image unit). ``d4000`` is
the narrow 4000 A break of the model continuum, ``restframe_g_r`` a rest-frame g-r colour (AB),
``halpha_flux`` / ``oiii_flux`` total observed line fluxes (1e-17 erg/s/cm^2, dust-attenuated).

``noise=False`` renders noiseless images and spectra (ivar still holds the nominal noise; bad
pixels are still masked but get no spike); ``neighbours=False`` drops the neighbour galaxies.
"""
from __future__ import annotations

import functools
import json
import logging
import time
import zlib
from typing import Sequence

import h5py
import numpy as np
from scipy import special, stats

from . import schema
from .surveys import (DESI_WAVELENGTH, IMAGE, NMGY_ZERO_POINT, SDSS_DLOGLAM, SDSS_LOGLAM0, get_survey,
                      sdss_wavelength)

log = logging.getLogger(__name__)

SIM_VERSION = 1
C_KMS = 299792.458
C_AAS = 2.99792458e18  # speed of light in Angstrom / s
NMGY_CGS = 3.631e-29  # erg/s/cm^2/Hz per nanomaggy
L_SUN_5500 = 5.2e29  # erg/s/A, solar luminosity density at 5500 A
UPSILON_OLD, UPSILON_YOUNG = 3.5, 0.25  # M/L (solar, at 5500 A) of the old / young population
HC_K = 1.4387769e8  # h c / k in Angstrom Kelvin
FLUX_UNIT_IMAGE = "nanomaggy"
FLUX_UNIT_SPECTRUM = "1e-17 erg/s/cm^2/Angstrom"

# Top-hat filters (observed Angstrom).
FILTERS: dict[str, dict[str, tuple[float, float]]] = {
    "hsc": {"g": (3950, 5400), "r": (5430, 6980), "i": (6940, 8420), "z": (8520, 9320), "y": (9280, 10390)},
    "legacysurvey": {"g": (4000, 5500), "r": (5630, 7150), "i": (7000, 8500), "z": (8500, 10000)},
    "jwst": {
        "f090w": (7950, 10050), "f115w": (10130, 12820), "f150w": (13310, 16680), "f200w": (17550, 22270),
        "f277w": (24160, 31270), "f356w": (31400, 40090), "f444w": (38800, 49860),
    },
}
# Median PSF FWHM (arcsec) per band; ground-based values are scaled per object by a seeing factor.
PSF_FWHM: dict[str, dict[str, float]] = {
    "hsc": {"g": 0.77, "r": 0.76, "i": 0.58, "z": 0.68, "y": 0.68},
    "legacysurvey": {"g": 1.45, "r": 1.30, "i": 1.20, "z": 1.15},
    "jwst": {"f090w": 0.045, "f115w": 0.050, "f150w": 0.058, "f200w": 0.070,
             "f277w": 0.110, "f356w": 0.135, "f444w": 0.160},
}
# PSF profile of the sharpest band: Kolmogorov (HSC), Moffat beta=2.8 truncated at 5 FWHM (Legacy,
# broad wings), Gaussian (JWST mosaics; diffraction-limited cores sampled at 0.02"/px (SW) and 0.04"/px (LW)).
PSF_KIND = {"hsc": ("kolmogorov", None), "legacysurvey": ("moffat", 2.8), "jwst": ("gaussian", None)}
SEEING_SCATTER = {"hsc": 0.12, "legacysurvey": 0.12, "jwst": 0.0}  # ln-scatter of the seeing factor
# 5-sigma point-source depth (AB mag).
DEPTH_5SIG: dict[str, dict[str, float]] = {
    "hsc": {"g": 26.5, "r": 26.1, "i": 25.9, "z": 25.1, "y": 24.4},
    "legacysurvey": {"g": 24.7, "r": 24.2, "i": 23.8, "z": 23.3},
    "jwst": {"f090w": 28.3, "f115w": 28.6, "f150w": 28.8, "f200w": 29.0,
             "f277w": 29.2, "f356w": 29.2, "f444w": 28.8},
}
# Spectrographs: fibre diameter (arcsec), seeing FWHM (arcsec), per-pixel noise scale (1e-17 units).
SPECTROGRAPH = {
    "desi": {"fiber_diameter": 1.5, "seeing": 1.1, "sigma0": 0.45, "bad_fraction": 1e-3},
    "sdss": {"fiber_diameter": 3.0, "seeing": 1.4, "sigma0": 1.0, "bad_fraction": 1e-3},
}
# Redshift priors per crossmatch flavour: (z_min, z_max, median, ln-sigma).
REDSHIFT_PRIORS = {
    "sdss": (0.02, 0.45, 0.12, 0.6),
    "desi": (0.02, 1.0, 0.25, 0.7),
    "jwst": (0.1, 3.5, 1.0, 0.6),
    "legacysurvey": (0.02, 1.2, 0.35, 0.6),
    "hsc": (0.02, 1.5, 0.5, 0.7),
}
# Flux-limited selection: mean log mass at z = 0.1 per crossmatch flavour (rises as 1.8 log z).
MASS_ANCHOR = {"sdss": 10.6, "desi": 9.9, "jwst": 8.2, "legacysurvey": 9.3, "hsc": 8.7}
H0, OM0 = 70.0, 0.3
BULGE_TRUNC = 8.0  # bulge Sersic profiles are truncated at 8 half-light radii (bounded FFTs)
MAX_R_HALF_ARCSEC = 6.0  # angular sizes capped here (very nearby giants would overfill the cutouts)

# Emission lines (vacuum rest Angstrom).
EM_NAMES = ("lya", "oii_3727", "oii_3730", "hdelta", "hgamma", "hbeta", "oiii_4960", "oiii_5008",
            "nii_6550", "halpha", "nii_6585", "sii_6718", "sii_6733")
EM_LAM = np.array([1215.67, 3727.09, 3729.88, 4102.89, 4341.68, 4862.68, 4960.30, 5008.24,
                   6549.86, 6564.61, 6585.27, 6718.29, 6732.67])
HALPHA_REST = 6564.61
# Absorption features: rest lambda, EW (A) in the old population, EW in the young one, intrinsic sigma (A).
ABSORPTION = np.array([
    # lam      EW_old EW_young sigma
    [3934.78, 9.0, 0.5, 3.0],   # Ca II K
    [3969.59, 7.0, 3.0, 3.0],   # Ca II H (+ H epsilon)
    [4102.89, 1.5, 6.0, 5.0],   # H delta
    [4305.00, 5.0, 0.5, 8.0],   # G band
    [4341.68, 1.5, 5.0, 5.0],   # H gamma
    [4862.68, 1.5, 4.0, 5.0],   # H beta
    [5176.70, 4.5, 0.3, 6.0],   # Mg b
    [5270.00, 2.5, 0.2, 4.0],   # Fe 5270
    [5895.60, 3.5, 0.5, 3.0],   # Na D
    [6564.61, 1.5, 3.0, 5.0],   # H alpha
    [8500.36, 1.0, 0.3, 2.0],   # Ca triplet
    [8544.44, 2.5, 0.5, 2.0],
    [8664.52, 2.0, 0.4, 2.0],
])
TRUTH_KEYS = ("redshift", "log_mass", "quiescent", "log_sfr", "log_ssfr", "young_fraction", "d4000",
              "restframe_g_r", "bulge_fraction", "sersic_n", "r_half_arcsec", "r_half_kpc",
              "r_bulge_arcsec", "r_disk_arcsec", "axis_ratio", "bulge_axis_ratio", "ellipticity",
              "position_angle_deg",
              "a_v", "vel_disp", "halpha_flux", "oiii_flux", "n_neighbours")


# ----------------------------------------------------------------------------- seeding

def _stable_key(value) -> int:
    return zlib.crc32(str(value).encode("utf-8")) & 0xFFFFFFFF


def _rng(seed: int, name: str, *keys) -> np.random.Generator:
    """A generator for one purpose, fixed by (seed, crossmatch name, keys); stable across runs."""
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    entropy = [int(seed), _stable_key(name)] + [_stable_key(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))


# ----------------------------------------------------------------------------- cosmology

_COSMO = None


def _cosmology():
    global _COSMO
    if _COSMO is None:
        from astropy.cosmology import FlatLambdaCDM

        _COSMO = FlatLambdaCDM(H0=H0, Om0=OM0, Tcmb0=0.0)
    return _COSMO


def kpc_per_arcsec(z) -> np.ndarray:
    return _cosmology().kpc_proper_per_arcmin(np.asarray(z, float)).value / 60.0


def luminosity_distance_cm(z) -> np.ndarray:
    return _cosmology().luminosity_distance(np.asarray(z, float)).to("cm").value


# ----------------------------------------------------------------------------- profiles

def _sersic_b(n):
    return special.gammaincinv(2.0 * n, 0.5)


def enclosed_fraction(r, r_half, n):
    """Fraction of a circular Sersic profile's light inside radius r (untruncated)."""
    n = np.asarray(n, float)
    x = _sersic_b(n) * (np.asarray(r, float) / np.asarray(r_half, float)) ** (1.0 / n)
    return special.gammainc(2.0 * n, x)


@functools.lru_cache(maxsize=None)
def _trunc_hlr_ratio(n: float, trunc: float) -> float:
    """Untruncated / truncated half-light radius of a Sersic with the same scale radius.

    galsim's ``Sersic(n, half_light_radius=h, trunc=c*h)`` has half-light radius h *after*
    truncation; its light profile is that of an untruncated Sersic of half-light radius rho*h.
    """
    from scipy.optimize import brentq

    return brentq(lambda rho: enclosed_fraction(1.0, rho, n) - 0.5 * enclosed_fraction(trunc, rho, n), 1.0, 5.0)


def enclosed_fraction_truncated(r, r_half, n, trunc: float = None):
    """Enclosed light fraction of a Sersic truncated at ``trunc`` half-light radii (galsim convention)."""
    trunc = BULGE_TRUNC if trunc is None else trunc
    n = np.asarray(n, float)
    rho = np.vectorize(lambda v: _trunc_hlr_ratio(float(v), trunc))(n) if n.ndim else _trunc_hlr_ratio(float(n), trunc)
    r_half = np.asarray(r_half, float)
    frac = enclosed_fraction(r, rho * r_half, n) / enclosed_fraction(trunc * r_half, rho * r_half, n)
    return np.minimum(frac, 1.0)


def composite_half_light_radius(bulge_fraction, r_bulge, n_bulge, r_disk, iters: int = 60):
    """Circularised half-light radius of bulge + exponential disk, vectorised bisection.

    The bulge is a Sersic of index n truncated at ``BULGE_TRUNC`` of its half-light radius, as
    rendered; the exponential disk is not truncated.
    """
    bf = np.asarray(bulge_fraction, float)
    n_bulge = np.broadcast_to(np.asarray(n_bulge, float), np.shape(r_bulge))
    rho = np.vectorize(lambda v: _trunc_hlr_ratio(float(v), BULGE_TRUNC), otypes=[float])(n_bulge)  # also for none
    norm = enclosed_fraction(BULGE_TRUNC * np.asarray(r_bulge), rho * r_bulge, n_bulge)

    def f_bulge(r):
        return np.minimum(enclosed_fraction(r, rho * r_bulge, n_bulge) / norm, 1.0)

    lo = np.minimum(r_bulge, r_disk) * 0.999
    hi = np.maximum(r_bulge, r_disk) * 1.001
    for _ in range(iters):
        mid = np.sqrt(lo * hi)
        frac = bf * f_bulge(mid) + (1 - bf) * enclosed_fraction(mid, r_disk, 1.0)
        low = frac < 0.5
        lo = np.where(low, mid, lo)
        hi = np.where(low, hi, mid)
    return np.sqrt(lo * hi)


# ----------------------------------------------------------------------------- latents

def _flavour(surveys: Sequence[str]) -> str:
    """The survey that sets a crossmatch's selection: spectroscopic first, then JWST, Legacy, HSC."""
    for key in ("sdss", "desi", "jwst", "legacysurvey", "hsc"):
        if key in surveys:
            return key
    return "hsc"


def redshift_prior(surveys: Sequence[str]) -> tuple[float, float, float, float]:
    """(z_min, z_max, median, ln_sigma) of the crossmatch's truncated log-normal redshift prior."""
    return REDSHIFT_PRIORS[_flavour(surveys)]


def _truncated_lognormal(rng, n, zmin, zmax, median, sigma):
    lo, hi = stats.norm.cdf([(np.log(zmin) - np.log(median)) / sigma, (np.log(zmax) - np.log(median)) / sigma])
    u = rng.uniform(lo, hi, n)
    return np.exp(np.log(median) + sigma * stats.norm.ppf(u))


def draw_latents(n: int, rng: np.random.Generator, prior, mass_anchor: float = 9.0,
                 log_mass_shift=0.0) -> dict[str, np.ndarray]:
    """Physical latent properties of n galaxies (all (n,) arrays).

    ``mass_anchor`` is the mean log stellar mass at z = 0.1 of the (flux-limited) selection;
    the mean rises as 1.8 log10(z / 0.1), never below 9.3.
    """
    z = _truncated_lognormal(rng, n, *prior)
    lz = np.log10(1 + z)
    mean_logm = np.maximum(mass_anchor + 1.8 * np.log10(z / 0.1), 9.3)
    logm = np.clip(rng.normal(mean_logm, 0.45, n) - log_mass_shift, 8.0, 11.9)
    p_q = 0.04 + 0.9 * special.expit((logm - 10.55 - 0.4 * z) / 0.25)
    quiescent = rng.uniform(size=n) < p_q
    log_sfr_ms = 0.76 * (logm - 10.0) + 2.5 * lz
    log_sfr = log_sfr_ms + np.where(quiescent, rng.normal(-1.8, 0.4, n), rng.normal(0.0, 0.3, n))
    log_ssfr = log_sfr - logm
    young = 0.02 + 0.88 * special.expit((log_ssfr + 10.6 - 0.5 * lz) / 0.35)
    bulge_fraction = np.where(quiescent, rng.beta(5.0, 2.0, n), rng.beta(1.3, 5.0, n))
    n_raw = np.where(quiescent, rng.normal(4.0, 0.6, n), rng.normal(2.5, 0.8, n))
    sersic_n = np.round(np.clip(n_raw, 1.0, 6.0) * 4) / 4
    d4000_old = np.clip(1.55 + 0.25 * (logm - 10.0) + rng.normal(0, 0.05, n), 1.4, 2.2)
    # Sizes (kpc): van der Wel+14-like late / early relations.
    r_late = 10 ** (0.75 + 0.22 * (logm - 10.7) - 0.70 * lz + rng.normal(0, 0.16, n))
    r_early = 10 ** (0.60 + 0.75 * (logm - 10.7) - 1.30 * lz + rng.normal(0, 0.15, n))
    r_gal_kpc = np.where(quiescent, r_early, r_late)
    scale = kpc_per_arcsec(z)
    r_gal = np.minimum(r_gal_kpc / scale, MAX_R_HALF_ARCSEC)
    # Bulge ~2.5x more compact than the disk; both rescaled so the composite has r_gal.
    r_disk = 1.15 * np.exp(rng.normal(0, 0.1, n))
    r_bulge = 0.45 * np.exp(rng.normal(0, 0.15, n))
    unit = composite_half_light_radius(bulge_fraction, r_bulge, sersic_n, r_disk)
    r_disk = np.maximum(r_disk * r_gal / unit, 0.02)
    r_bulge = np.maximum(r_bulge * r_gal / unit, 0.015)
    r_half = composite_half_light_radius(bulge_fraction, r_bulge, sersic_n, r_disk)
    q = np.where(quiescent, rng.uniform(0.5, 1.0, n), rng.uniform(0.2, 1.0, n))
    q_bulge = 0.6 + 0.4 * q
    pa = rng.uniform(0.0, 180.0, n)
    a_v = np.where(
        quiescent,
        np.abs(rng.normal(0.0, 0.1, n)),
        np.clip(0.4 + 0.45 * (logm - 10.0) + rng.normal(0, 0.25, n), 0.0, 3.0) * (1 + 0.6 * (1 - q)),
    )
    vel_disp = 10 ** (2.2 + 0.28 * (logm - 11.0) + rng.normal(0, 0.05, n)) * np.where(quiescent, 1.0, 0.75)
    return {
        "redshift": z,
        "log_mass": logm,
        "quiescent": quiescent,
        "log_sfr": log_sfr,
        "log_ssfr": log_ssfr,
        "young_fraction": young,
        "d4000_old": d4000_old,
        "bulge_fraction": bulge_fraction,
        "sersic_n": sersic_n,
        "r_half_arcsec": r_half,
        "r_half_kpc": r_half * scale,
        "r_bulge_arcsec": r_bulge,
        "r_disk_arcsec": r_disk,
        "axis_ratio": q,
        "bulge_axis_ratio": q_bulge,
        "ellipticity": (1 - q) / (1 + q),
        "position_angle_deg": pa,
        "a_v": a_v,
        "vel_disp": vel_disp,
    }


# ----------------------------------------------------------------------------- SED

def _col(a):
    return np.asarray(a, float)[:, None]


def _planck_shape(lam, temp):
    """Blackbody B_lambda shape normalised to 1 at 5500 A."""
    x = HC_K / (lam * temp)
    x0 = HC_K / (5500.0 * temp)
    r = 5500.0 / lam
    r2 = r * r
    return (r2 * r2 * r) * (np.expm1(x0) / np.expm1(np.minimum(x, 700.0)))


def _break(lam, lam0, strength, width):
    return 1.0 / strength + (1.0 - 1.0 / strength) * special.expit((lam - lam0) / width)


def _dust(lam, a_v):
    return 10.0 ** (-0.4 * a_v * (lam / 5500.0) ** -0.7)


def component_luminosity_5500(lat):
    """Unattenuated L_lambda(5500 A) (erg/s/A) of the bulge and the disk."""
    bf, fy = lat["bulge_fraction"], lat["young_fraction"]
    upsilon = bf * UPSILON_OLD + (1 - bf) * ((1 - fy) * UPSILON_OLD + fy * UPSILON_YOUNG)
    l_tot = 10 ** lat["log_mass"] / upsilon * L_SUN_5500
    return bf * l_tot, (1 - bf) * l_tot


def line_luminosities(lat) -> np.ndarray:
    """Dust-attenuated emission line luminosities (N, K) in erg/s, K = len(EM_NAMES)."""
    logm = lat["log_mass"]
    ha = 10 ** lat["log_sfr"] / 7.9e-42
    hb = ha / 2.86
    r_oiii = np.clip(10 ** (0.1 - 0.5 * (logm - 10.0)), 0.1, 8.0)
    r_nii = np.clip(10 ** (-0.45 + 0.3 * (logm - 10.0)), 0.05, 0.6) * np.where(lat["quiescent"], 2.5, 1.0)
    r_oii = np.clip(10 ** (0.0 - 0.2 * (logm - 10.0)), 0.3, 2.0)
    oii = ha * r_oii
    oiii = hb * r_oiii
    nii = ha * r_nii
    lum = np.stack([
        ha * 8.7 * 0.05,  # Ly alpha with a small escape fraction
        oii * 0.42, oii * 0.58, ha / 11.1, ha / 6.1, hb, oiii / 2.98, oiii,
        nii / 3.05, ha, nii, ha * 0.2, ha * 0.15,
    ], axis=1)
    return lum * _dust(EM_LAM[None, :], 1.5 * _col(lat["a_v"]))


def _hot_dust(lat):
    """Amplitude (erg/s/A at 3 micron rest) of the 800 K hot-dust continuum of the disk."""
    return 1e37 * 10 ** lat["log_sfr"] * (1 - 10 ** (-0.4 * lat["a_v"])) / 0.5


def rest_continuum(lat, lam_rest) -> dict[str, np.ndarray]:
    """Rest-frame continuum L_lambda (erg/s/A) at lam_rest (N, M), dust-attenuated, by part.

    Parts: ``bulge_old``, ``disk_old``, ``disk_young``, ``hot`` (disk hot dust). No narrow
    features: absorption and emission lines are added at the instrument resolution by
    :func:`model_spectrum` and analytically by :func:`band_fluxes`.
    """
    lam = np.asarray(lam_rest, float)
    lb, ld = component_luminosity_5500(lat)
    d4000 = _col(lat["d4000_old"])
    uv_cut = special.expit((lam - 2600.0) / 250.0)
    old = _planck_shape(lam, 5200.0) * _break(lam, 4000.0, d4000, 40.0) * uv_cut
    young = _planck_shape(lam, 11000.0) * _break(lam, 3646.0, 1.25, 30.0) * (lam > 912.0)
    fy = _col(lat["young_fraction"])
    a_v = _col(lat["a_v"])
    dust_disk = _dust(lam, a_v)
    hot_norm = _planck_shape(np.array(30000.0), 800.0)
    return {
        "bulge_old": _col(lb) * old * _dust(lam, 0.2 * a_v),
        "disk_old": _col(ld) * (1 - fy) * old * dust_disk,
        "disk_young": _col(ld) * fy * young * dust_disk,
        "hot": _col(_hot_dust(lat)) * _planck_shape(lam, 800.0) / hot_norm,
    }


def rest_sed(lat, lam_rest) -> tuple[np.ndarray, np.ndarray]:
    """Rest-frame continuum L_lambda (erg/s/A) of (bulge, disk), each (N, M); no narrow features."""
    c = rest_continuum(lat, lam_rest)
    return c["bulge_old"], c["disk_old"] + c["disk_young"] + c["hot"]


def band_fluxes(lat, survey: str, n_grid: int = 96) -> np.ndarray:
    """Total model flux (nanomaggies) per band of bulge and disk: (N, B, 2)."""
    z = np.asarray(lat["redshift"], float)
    dl = luminosity_distance_cm(z)
    norm = 1.0 / (4 * np.pi * dl**2 * (1 + z))  # L_rest -> f_lambda,obs
    lum = line_luminosities(lat) / (4 * np.pi * dl[:, None] ** 2)  # line fluxes, erg/s/cm^2
    lam_line_obs = EM_LAM[None, :] * (1 + z[:, None])
    out = np.zeros((len(z), len(get_survey(survey).bands), 2))
    for b, band in enumerate(get_survey(survey).bands):
        l1, l2 = FILTERS[survey][band]
        lam_obs = np.linspace(l1, l2, n_grid)
        bulge, disk = rest_sed(lat, lam_obs[None, :] / (1 + z[:, None]))
        denom = C_AAS * np.log(l2 / l1)
        for c, comp in enumerate((bulge, disk)):
            f_lam = comp * norm[:, None]
            out[:, b, c] = np.trapezoid(f_lam * lam_obs, lam_obs, axis=1) / denom
        inband = (lam_line_obs >= l1) & (lam_line_obs <= l2)
        out[:, b, 1] += (lum * lam_line_obs * inband).sum(axis=1) / denom
    return out / NMGY_CGS


def dn4000(lat, n_grid: int = 64) -> np.ndarray:
    """Narrow 4000 A break (Balogh+99: <f_nu> 4000-4100 / 3850-3950) of the model continuum."""
    out = []
    for l1, l2 in ((3850.0, 3950.0), (4000.0, 4100.0)):
        lam = np.linspace(l1, l2, n_grid)
        bulge, disk = rest_sed(lat, np.broadcast_to(lam, (len(lat["redshift"]), n_grid)))
        out.append(np.trapezoid((bulge + disk) * lam**2, lam, axis=1))
    return out[1] / out[0]


def restframe_color(lat, blue=(4050.0, 5500.0), red=(5500.0, 6950.0), n_grid: int = 96) -> np.ndarray:
    """Rest-frame g-r-like colour (AB mag) of the whole galaxy, lines included."""
    fnu = []
    lum = line_luminosities(lat)
    for l1, l2 in (blue, red):
        lam = np.linspace(l1, l2, n_grid)
        bulge, disk = rest_sed(lat, np.broadcast_to(lam, (len(lat["redshift"]), n_grid)))
        f = np.trapezoid((bulge + disk) * lam, lam, axis=1)
        f += (lum * EM_LAM * ((EM_LAM >= l1) & (EM_LAM <= l2))).sum(axis=1)
        fnu.append(f / np.log(l2 / l1))
    return -2.5 * np.log10(fnu[0] / fnu[1])


# ----------------------------------------------------------------------------- images

def _noise_sigma(survey: str, band: str, fwhm: float) -> float:
    """Per-pixel Gaussian sigma (nmgy) of a survey band from its 5-sigma point-source depth."""
    s = get_survey(survey)
    f5 = 10 ** (-0.4 * (DEPTH_5SIG[survey][band] - NMGY_ZERO_POINT))
    sig_psf = fwhm / 2.3548
    n_eff = max(4 * np.pi * sig_psf**2 / s.band_scale(band)**2, 1.0)
    return f5 / (5 * np.sqrt(n_eff))


def _draw_neighbours(n: int, rng: np.random.Generator, prior, mass_anchor: float) -> dict:
    """Faint neighbours: counts per object, sky offsets (arcsec) and their own latents."""
    counts = np.minimum(rng.poisson(0.8, n), 3)
    total = int(counts.sum())
    lat = draw_latents(total, rng, prior, mass_anchor, log_mass_shift=rng.uniform(0.3, 2.0, total))
    # Uniform in area between 1" and 20", plus a few close companions.
    radius = np.where(rng.uniform(size=total) < 0.15, rng.uniform(0.4, 2.0, total),
                      np.sqrt(rng.uniform(1.0, 400.0, total)))
    angle = rng.uniform(0, 2 * np.pi, total)
    owner = np.repeat(np.arange(n), counts)
    return {"counts": counts, "owner": owner, "dx": radius * np.cos(angle), "dy": radius * np.sin(angle), "lat": lat}


@functools.lru_cache(maxsize=None)
def _gsparams():
    import galsim

    # 1 % folding / 0.2 % maxk thresholds: accurate to well below the sky noise, and small FFTs.
    return galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3)


@functools.lru_cache(maxsize=None)
def _unit_psf(survey: str):
    import galsim

    kind, beta = PSF_KIND[survey]
    if kind == "moffat":
        return galsim.Moffat(beta=beta, fwhm=1.0, trunc=5.0, gsparams=_gsparams())
    if kind == "kolmogorov":
        return galsim.Kolmogorov(fwhm=1.0, gsparams=_gsparams())
    return galsim.Gaussian(fwhm=1.0, gsparams=_gsparams())


@functools.lru_cache(maxsize=None)
def _unit_sersic(n: float | None):
    """Unit-flux profile of half-light radius 1 arcsec, cached: n=None is the (untruncated)
    exponential disk, otherwise a bulge Sersic of index n truncated at ``BULGE_TRUNC``.

    Galaxies are dilated copies: galsim then computes a profile's k-space extent once per n
    instead of once per object (up to ~100 ms for a new Sersic index).
    """
    import galsim

    if n is None:
        return galsim.Exponential(half_light_radius=1.0, gsparams=_gsparams())
    return galsim.Sersic(n, half_light_radius=1.0, trunc=BULGE_TRUNC, gsparams=_gsparams())


def _galsim_psf(survey: str, fwhm: float):
    """The survey's reference PSF at ``fwhm`` arcsec: a cached unit-FWHM profile, dilated.

    Dilating reuses the profile's k-space tables and maxk/stepk, which galsim would otherwise
    recompute (slowly, for truncated Moffats) for every new FWHM.
    """
    return _unit_psf(survey).dilate(fwhm)


def _blur_bands(img: np.ndarray, sigma_pix: np.ndarray, pad: int = 8) -> np.ndarray:
    """Convolve (B, H, W) images band-wise with Gaussians of sigma_pix (exact transfer function).

    Reflect-padded by ``pad`` pixels and FFT'd in float32 (scipy.fft); the kernels are at most a
    couple of pixels wide, so the padding removes wrap-around.
    """
    if not np.any(sigma_pix > 0):
        return img
    from scipy import fft as sfft

    b, h, w = img.shape
    hp = sfft.next_fast_len(h + 2 * pad, real=True)
    wp = sfft.next_fast_len(w + 2 * pad, real=True)
    padded = np.pad(img.astype(np.float32, copy=False),
                    ((0, 0), (pad, hp - h - pad), (pad, wp - w - pad)), mode="reflect")
    ky = np.fft.fftfreq(hp)[:, None]
    kx = np.fft.rfftfreq(wp)[None, :]
    transfer = np.exp(-2 * np.pi**2 * sigma_pix[:, None, None] ** 2 * (kx**2 + ky**2)[None]).astype(np.float32)
    out = sfft.irfft2(sfft.rfft2(padded) * transfer, s=(hp, wp))
    return out[:, pad : pad + h, pad : pad + w]


def render_images(lat, survey: str, rng: np.random.Generator, neighbours: dict | None,
                  noise: bool = True) -> tuple[dict, dict]:
    """Render (N, B, H, W) flux and ivar for one image survey; return (arrays, truth extras)."""
    import galsim

    s = get_survey(survey)
    n = len(lat["redshift"])
    nb = len(s.bands)
    h, w = s.shape
    scales = np.array([s.band_scale(b) for b in s.bands])  # per band (JWST: SW 0.02", LW 0.04")
    gsp = _gsparams()
    fwhm_med = np.array([PSF_FWHM[survey][b] for b in s.bands])
    ref = int(np.argmin(fwhm_med))
    seeing = np.exp(rng.normal(0.0, SEEING_SCATTER[survey], n)) if SEEING_SCATTER[survey] > 0 else np.ones(n)
    depth_jitter = 10 ** (0.4 * rng.uniform(-0.2, 0.2, n))  # noise scale factor per object
    offsets = rng.uniform(-0.5, 0.5, (n, 2))
    sigma0 = np.array([_noise_sigma(survey, b, f) for b, f in zip(s.bands, fwhm_med)])
    comp_flux = band_fluxes(lat, survey)  # (N, B, 2)
    have_nb = neighbours is not None and len(neighbours["owner"]) > 0
    if have_nb:
        nb_lat = neighbours["lat"]
        nb_flux = band_fluxes(nb_lat, survey).sum(axis=2)  # (M, B)
        nb_index = np.concatenate([[0], np.cumsum(neighbours["counts"])])
    flux = np.empty((n, nb, h, w), np.float32)
    ivar = np.empty((n, nb, h, w), np.float32)
    # galsim image coordinates: pixel (x, y) centres at 1..w, 1..h; the cutout centre is the true centre.
    cx, cy = (w + 1) / 2.0, (h + 1) / 2.0
    for i in range(n):
        fwhm = fwhm_med * seeing[i]
        psf = _galsim_psf(survey, fwhm[ref])
        beta = (90.0 + lat["position_angle_deg"][i]) * galsim.degrees
        bulge = _unit_sersic(float(lat["sersic_n"][i])).dilate(lat["r_bulge_arcsec"][i])
        bulge = bulge.shear(q=lat["bulge_axis_ratio"][i], beta=beta)
        disk = _unit_sersic(None).dilate(lat["r_disk_arcsec"][i])
        disk = disk.shear(q=lat["axis_ratio"][i], beta=beta)
        img = np.empty((nb, h, w), np.float32)
        for scale in np.unique(scales):  # the same sky at each pixel scale: offsets in arcsec
            sel = scales == scale
            off = offsets[i] * scales.max() / scale
            comps = np.stack([galsim.Convolve(c, psf, gsparams=gsp).drawImage(
                nx=w, ny=h, scale=scale, offset=tuple(off)).array for c in (bulge, disk)])
            img[sel] = np.einsum("bc,chw->bhw", comp_flux[i][sel].astype(np.float32), comps)
            if have_nb:
                for j in range(nb_index[i], nb_index[i + 1]):
                    x = cx + off[0] + neighbours["dx"][j] / scale
                    y = cy + off[1] + neighbours["dy"][j] / scale
                    r_j = nb_lat["r_half_arcsec"][j]
                    margin = 4 * r_j / scale + 8
                    if not (-margin < x < w + 1 + margin and -margin < y < h + 1 + margin):
                        continue
                    n_j = float(nb_lat["sersic_n"][j]) if nb_lat["bulge_fraction"][j] > 0.5 else None
                    prof = _unit_sersic(n_j).dilate(r_j).shear(
                        q=nb_lat["axis_ratio"][j], beta=nb_lat["position_angle_deg"][j] * galsim.degrees)
                    conv = galsim.Convolve(prof, psf, gsparams=gsp)
                    size = min(conv.getGoodImageSize(scale), 2 * max(h, w))
                    stamp = conv.drawImage(nx=size, ny=size, scale=scale, center=galsim.PositionD(x, y))
                    sb = stamp.bounds
                    x0, x1 = max(sb.xmin, 1), min(sb.xmax, w)
                    y0, y1 = max(sb.ymin, 1), min(sb.ymax, h)
                    if x0 > x1 or y0 > y1:
                        continue
                    cut = stamp.array[y0 - sb.ymin : y1 - sb.ymin + 1, x0 - sb.xmin : x1 - sb.xmin + 1]
                    img[sel, y0 - 1 : y1, x0 - 1 : x1] += nb_flux[j][sel].astype(np.float32)[:, None, None] * cut
        sig_kernel = np.sqrt(np.maximum(fwhm**2 - fwhm[ref] ** 2, 0.0)) / 2.3548 / scales
        img = _blur_bands(img, sig_kernel)
        sigma = (sigma0 * depth_jitter[i]).astype(np.float32)
        out = flux[i]
        if noise:
            rng.standard_normal(dtype=np.float32, out=out)
            out *= sigma[:, None, None]
            out += img
        else:
            out[...] = img
        ivar[i] = (1.0 / sigma**2)[:, None, None]
    extras = {
        f"obs_{survey}_psf_fwhm": fwhm_med[ref] * seeing,
        f"obs_{survey}_noise_scale": depth_jitter,
    }
    for b, band in enumerate(s.bands):
        extras[f"phot_{survey}_{band}"] = comp_flux[:, b, :].sum(axis=1)
    return {"flux": flux, "ivar": ivar}, extras


# ----------------------------------------------------------------------------- spectra

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
    spec = SPECTROGRAPH[survey]
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
    ffrac = fiber_fraction(lat, spec["fiber_diameter"], spec["seeing"])
    model = np.empty(wave.shape, np.float64)
    for a in range(0, n, chunk):
        sl = slice(a, min(a + chunk, n))
        model[sl] = model_spectrum(_subset(lat, sl), survey, wave[sl], pix_for(sl)) * ffrac[sl, None]
    valid = np.isfinite(wave)
    depth = np.exp(rng.normal(0.0, 0.25, n))
    sigma = spec["sigma0"] * depth[:, None] * noise_prof
    flux = model + (sigma * rng.standard_normal(model.shape) if noise else 0.0)
    bad = (rng.uniform(size=model.shape) < spec["bad_fraction"]) & valid
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


# ----------------------------------------------------------------------------- ids and sky

def _survey_ids(survey: str, n: int, rng: np.random.Generator) -> np.ndarray:
    i = np.arange(n)
    if survey == "hsc":
        vals = 36407000000000000 + i * 9973 + rng.integers(0, 9973, n)
        return np.array([str(v) for v in vals])
    if survey == "desi":
        vals = 39627000000000000 + i * 7919 + rng.integers(0, 7919, n)
        return np.array([str(v) for v in vals])
    if survey == "sdss":
        plate0, mjd = int(rng.integers(266, 3000)), int(rng.integers(51600, 54600))
        return np.array([f"{plate0 + k // 640:04d}-{mjd:05d}-{k % 640 + 1:04d}" for k in i])
    if survey == "legacysurvey":
        brick = int(rng.integers(100000, 600000))
        return np.array([f"dr10-{brick + k // 5000}-{k % 5000}" for k in i])
    return np.array([f"{survey}-{k:06d}" for k in i])


def _sky_positions(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ra0, dec0 = rng.uniform(0, 360), rng.uniform(-5, 45)
    dec = dec0 + rng.uniform(-0.25, 0.25, n)
    ra = (ra0 + rng.uniform(-0.25, 0.25, n) / np.cos(np.radians(dec0))) % 360.0
    return ra, dec


# ----------------------------------------------------------------------------- entry point

def simulate_sky(name: str, surveys: list[str], n: int, seed: int, *, noise: bool = True, neighbours: bool = True,
                 redshift_range: tuple | None = None) -> dict:
    """Render ``n`` galaxies seen by ``surveys``: {ids, ra, dec, groups: {survey: arrays}, truth, meta}.

    Deterministic: the same arguments give byte-identical arrays. The crossmatch name is mixed
    into the seed with crc32, so different crossmatches hold different galaxies; the galaxies
    also depend on the crossmatch's selection (redshift prior and mass anchor, set by its
    spectroscopic survey if any, else JWST, Legacy, HSC), not on the other surveys listed.
    Independent random streams (latents, neighbours, sky positions, each survey's rendering)
    mean adding a survey does not change what the others see.
    ``noise=False`` gives noiseless images and spectra (ivar still the nominal noise level);
    ``neighbours=False`` drops the faint neighbour galaxies; ``redshift_range`` overrides the
    crossmatch's redshift prior with (z_min, z_max, median, ln_sigma).
    """
    surveys = list(surveys)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(set(surveys)) != len(surveys) or not surveys:
        raise ValueError(f"surveys must be a non-empty list without repeats, got {surveys}")
    for s in surveys:
        get_survey(s)  # unknown names raise KeyError listing the known ones
    t0 = time.perf_counter()
    prior = redshift_prior(surveys) if redshift_range is None else tuple(redshift_range)
    anchor = MASS_ANCHOR[_flavour(surveys)]
    lat = draw_latents(n, _rng(seed, name, "latents"), prior, anchor)
    nbrs = _draw_neighbours(n, _rng(seed, name, "neighbours"), prior, anchor) if neighbours else None
    ra, dec = _sky_positions(n, _rng(seed, name, "sky"))
    truth = {k: lat[k] for k in TRUTH_KEYS if k in lat}
    truth["quiescent"] = lat["quiescent"].astype(np.int8)
    truth["restframe_g_r"] = restframe_color(lat)
    truth["d4000"] = dn4000(lat)
    z = lat["redshift"]
    dl2 = 4 * np.pi * luminosity_distance_cm(z) ** 2
    lum = line_luminosities(lat)
    truth["halpha_flux"] = lum[:, EM_NAMES.index("halpha")] / dl2 / 1e-17
    truth["oiii_flux"] = lum[:, EM_NAMES.index("oiii_5008")] / dl2 / 1e-17
    truth["n_neighbours"] = nbrs["counts"].astype(np.int16) if nbrs is not None else np.zeros(n, np.int16)
    groups: dict[str, dict] = {}
    units: dict[str, str] = {}
    for s in surveys:
        survey = get_survey(s)
        rng = _rng(seed, name, "render", s)
        t = time.perf_counter()
        if survey.modality == IMAGE:
            arrays, extras = render_images(lat, s, rng, nbrs, noise=noise)
            units[s] = FLUX_UNIT_IMAGE
        else:
            arrays, extras = render_spectra(lat, s, rng, noise=noise)
            units[s] = FLUX_UNIT_SPECTRUM
        arrays["object_id"] = _survey_ids(s, n, _rng(seed, name, "ids", s))
        groups[s] = arrays
        truth.update(extras)
        log.info("simulate %s: rendered %s for %d objects in %.1f s", name, s, n, time.perf_counter() - t)
    meta = {"generator": "samesky.simulate", "version": SIM_VERSION, "seed": int(seed), "n": int(n),
            "surveys": surveys, "noise": bool(noise), "neighbours": bool(neighbours),
            "redshift_prior": list(prior), "mass_anchor": anchor, "cosmology": {"H0": H0, "Om0": OM0},
            "flux_units": units}
    log.info("simulate %s: %d objects, surveys %s, %.1f s", name, n, surveys, time.perf_counter() - t0)
    return {"ids": np.array([f"{name}-{i:06d}" for i in range(n)]), "ra": ra, "dec": dec, "groups": groups,
            "truth": truth, "meta": meta}


def simulate_crossmatch(path, name: str, surveys: list[str], n: int, seed: int, **kw) -> None:
    """Write a simulated sky (``simulate_sky``) straight to a crossmatch file, any set of surveys,
    with its latent properties under ``/truth``: the simulation's own tests and small fixtures.
    The workflow instead writes Multimodal Universe snapshots (``simulate_snapshot``) and ingests them."""
    sky = simulate_sky(name, surveys, n, seed, **kw)
    units = sky["meta"]["flux_units"]
    with schema.atomic_path(path) as tmp:
        schema.write_crossmatch(tmp, name, sky["ids"], sky["ra"], sky["dec"], sky["groups"], truth=sky["truth"])
        with h5py.File(tmp, "a") as f:
            f.attrs["simulation"] = json.dumps(sky["meta"], sort_keys=True)
            for s, unit in units.items():
                f[s].attrs["flux_unit"] = unit
                if unit == FLUX_UNIT_IMAGE:
                    f[s].attrs["zero_point"] = NMGY_ZERO_POINT


def simulate_snapshot(directory, truth_path, name: str, layout: str, n: int, seed: int, *,
                      file_rows: int = 64, **kw) -> dict:
    """Simulate a crossmatch into a Multimodal Universe-shaped snapshot (``samesky.mmu``) plus its truth.

    ``directory`` receives ``data/train-*.parquet`` in ``layout``'s columns, written as the MMU
    builders write them (see :func:`mmu_examples`); ``truth_path`` an HDF5 file of the latent
    properties keyed by the crossmatch's object id (the HSC object id, in every layout).
    ``file_rows``: rows per builder file (SDSS rows are padded to the longest of their file).
    Returns the simulation's metadata.
    """
    from . import mmu

    kind, surveys = mmu.LAYOUTS[layout] if layout in mmu.LAYOUTS else (None, None)
    if surveys is None:
        raise KeyError(f"unknown Multimodal Universe layout {layout!r}; known: {sorted(mmu.LAYOUTS)}")
    sky = simulate_sky(name, list(surveys), n, seed, **kw)
    examples = {s: mmu_examples(s, sky["groups"][s], sky["truth"], file_rows) for s in surveys}
    rows = (mmu.crossmatch_row(layout, {s: next(examples[s]) for s in surveys}) for _ in range(n))
    mmu.write_snapshot(directory, layout, rows, rows_per_file=file_rows)
    ids = sky["groups"]["hsc"]["object_id"]
    with schema.atomic_path(truth_path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("object_id", data=ids.astype(object), dtype=schema.STR)
        g = f.create_group("truth")
        for key, value in sky["truth"].items():
            g.create_dataset(key, data=value)
        f.attrs["simulation"] = json.dumps(sky["meta"] | {"layout": layout, "snapshot": str(directory)}, sort_keys=True)
    return sky["meta"]


def mmu_examples(survey: str, arrays: dict, truth: dict, file_rows: int = 64):
    """Yield one MMU builder example per object from a survey's simulated arrays.

    Images go to the survey's on-disk unit (``Survey.zero_point``; HSC's is AB 27), per band a
    struct of band/flux/ivar/mask/psf_fwhm/scale as the builders yield them (Legacy's one mask
    for all bands, as its builder reads ``image_mask[i]``; JWST's mask is ``ivar > 0``, as its
    parent sample writes it). Spectra as float32 on the survey's pixels; SDSS rows padded to the
    longest row of their ``file_rows``-row file the way MMU's SDSS parent sample does (lambda
    -1, ivar 0, mask True, flux and lsf_sigma edge-repeated). Catalogue columns the simulation
    does not model are NaN.
    """
    from . import mmu
    from .surveys import flux_factor

    s = get_survey(survey)
    ids = arrays["object_id"]
    n = len(ids)
    floats = {"hsc": mmu.HSC_FLOAT, "legacysurvey": mmu.LEGACY_FLOAT, "jwst": mmu.JWST_FLOAT,
              "desi": mmu.DESI_FLOAT, "sdss": mmu.SDSS_FLOAT + mmu.SDSS_FLUX}[survey]
    cat = {k: np.full(n, np.nan, np.float32) for k in floats}
    if s.modality == IMAGE:
        fac = flux_factor(NMGY_ZERO_POINT, s.zero_point) if s.zero_point is not None else 1.0
        phot = {b: truth[f"phot_{survey}_{b}"] for b in s.bands}
        mag = {b: NMGY_ZERO_POINT - 2.5 * np.log10(np.maximum(phot[b], 1e-12)) for b in s.bands}
        seeing = truth[f"obs_{survey}_psf_fwhm"] / min(PSF_FWHM[survey].values())
        if survey == "hsc":
            for b in s.bands:
                cat[f"{b}_cmodel_mag"], cat[f"{b}_cmodel_magerr"] = mag[b], np.full(n, 0.01)
                cat[f"a_{b}"], cat[f"{b}_extendedness_value"] = np.zeros(n), np.ones(n)
        elif survey == "legacysurvey":
            cat["EBV"] = np.zeros(n)
            for b in s.bands:
                cat[f"FLUX_{b.upper()}"] = phot[b]
            cat["SHAPE_R"] = truth["r_half_arcsec"]
        else:
            cat["mag_auto"] = mag["f444w"]
            cat["flux_auto"] = phot["f444w"]
            cat["flux_radius"] = truth["r_half_arcsec"] / s.band_scale("f444w")
        for i in range(n):
            flux, ivar = arrays["flux"][i] * np.float32(fac), arrays["ivar"][i] / np.float32(fac**2)
            mask = ivar > 0 if survey == "jwst" else np.zeros(flux.shape[1:], bool)
            bands = [{"band": name, "flux": flux[b], "ivar": ivar[b],
                      "mask": mask[b] if mask.ndim == 3 else mask,
                      "psf_fwhm": np.float32(PSF_FWHM[survey][band] * seeing[i]),
                      "scale": np.float32(s.band_scale(band))}
                     for b, (band, name) in enumerate(zip(s.bands, mmu.BAND_NAMES[survey]))]
            ex = {"image": bands, **{k: float(v[i]) for k, v in cat.items()}, "object_id": str(ids[i])}
            if survey == "legacysurvey":
                ex |= {"blobmodel": None, "rgb": None, "object_mask": None,
                       "catalog": [{k: (float(cat[k][i]) if k in cat else np.nan) for k in mmu.LEGACY_CATALOG}
                                   | {"X": 80.0, "Y": 80.0}]}
            yield ex
        return
    cat["Z"] = truth["redshift"]
    sigma_fn = _sigma_function(survey)
    if survey == "desi":
        cat["ZERR"] = np.full(n, 1e-5)
        wave = DESI_WAVELENGTH.astype(np.float32)
        lsf = sigma_fn(DESI_WAVELENGTH).astype(np.float32)
        for i in range(n):
            yield {"spectrum": {"flux": arrays["flux"][i], "ivar": arrays["ivar"][i], "lsf_sigma": lsf,
                                "lambda": wave, "mask": arrays["mask"][i]},
                   **{k: float(v[i]) for k, v in cat.items()}, "ZWARN": True, "object_id": str(ids[i])}
        return
    cat["Z_ERR"], cat["VDISP"], cat["VDISP_ERR"] = np.full(n, 1e-5), truth["vel_disp"], np.full(n, 10.0)
    valid = np.isfinite(arrays["wavelength"])
    lengths = valid.sum(axis=1)
    for a in range(0, n, file_rows):
        width = int(lengths[a:a + file_rows].max())
        for i in range(a, min(a + file_rows, n)):
            k, pad = int(lengths[i]), width - int(lengths[i])
            wave = arrays["wavelength"][i, :k]
            row = {"flux": np.pad(arrays["flux"][i, :k], (0, pad), mode="edge"),
                   "ivar": np.pad(arrays["ivar"][i, :k], (0, pad)),
                   "lsf_sigma": np.pad(sigma_fn(wave).astype(np.float32), (0, pad), mode="edge"),
                   "lambda": np.pad(wave.astype(np.float32), (0, pad), constant_values=-1),
                   "mask": np.pad(arrays["mask"][i, :k], (0, pad), constant_values=True)}
            yield {"spectrum": row, **{key: float(v[i]) for key, v in cat.items()}, "ZWARNING": True,
                   "object_id": str(ids[i])}


# ----------------------------------------------------------------------------- truth as a space

# Physical latents that every survey of a crossmatch sees (nuisances such as position angle or
# neighbours are left out); sizes and line-free quantities in log where they span decades.
TRUTH_FEATURES = ("redshift", "log_mass", "log_ssfr", "restframe_g_r", "d4000", "bulge_fraction",
                  "sersic_n", "r_half_kpc", "axis_ratio")


def truth_features(truth_path, crossmatch_path=None) -> tuple[np.ndarray, np.ndarray]:
    """(object_id, z-scored latent properties (N, F) float32): the simulation's ground truth as
    an embedding space, so alignment of any model with the physics can be scored like any pair.

    ``truth_path``: a file with ``object_id`` and ``/truth`` (a snapshot's truth file, or a
    crossmatch written by ``simulate_crossmatch``). With ``crossmatch_path``, rows follow that
    crossmatch's object ids (each must have a truth row).
    """
    with schema.read_h5(truth_path) as f:
        if "truth" not in f:
            raise schema.SchemaError(f"{truth_path}: no '/truth' group (only simulated crossmatches have one)")
        missing = [k for k in TRUTH_FEATURES if k not in f["truth"]]
        if missing:
            raise schema.SchemaError(f"{truth_path}: '/truth' lacks {missing}")
        ids = schema.as_str_ids(f["object_id"][:])
        cols = [np.asarray(f["truth"][k][:], np.float64) for k in TRUTH_FEATURES]
    if crossmatch_path is not None:
        with schema.read_h5(crossmatch_path) as f:
            want = schema.as_str_ids(f["object_id"][:])
        row = {v: i for i, v in enumerate(ids)}
        absent = [str(v) for v in want if v not in row]
        if absent:
            raise schema.SchemaError(f"{crossmatch_path}: {len(absent)} object ids have no row in {truth_path}, "
                                     f"e.g. {absent[:5]}")
        take = np.array([row[v] for v in want], dtype=np.int64)
        ids, cols = want, [c[take] for c in cols]
    cols[TRUTH_FEATURES.index("r_half_kpc")] = np.log10(cols[TRUTH_FEATURES.index("r_half_kpc")])
    x = np.stack(cols, axis=1)
    std = x.std(axis=0)
    return ids, ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)
