"""The galaxy population: latent properties per object (redshift, mass, star formation, morphology,
size, shape, dust), profile half-light radii, and the faint neighbours."""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
from scipy import special, stats

from ..surveys import Selection, get_survey
from .cosmology import kpc_per_arcsec

BULGE_TRUNC = 8.0  # bulge Sersic profiles are truncated at 8 half-light radii (bounded FFTs)
MAX_R_HALF_ARCSEC = 6.0  # angular sizes capped here (very nearby giants would overfill the cutouts)


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




def selection(surveys: Sequence[str]) -> Selection:
    """The selection of a crossmatch of ``surveys`` (``surveys.Selection``): that of its survey of
    lowest rank (spectroscopic first, then JWST, Legacy, HSC)."""
    ranked = [get_survey(s).selection for s in surveys if get_survey(s).selection is not None]
    if not ranked:
        raise ValueError(f"none of the surveys {list(surveys)} has a simulated selection (surveys.Survey.selection)")
    return min(ranked, key=lambda sel: sel.rank)


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




