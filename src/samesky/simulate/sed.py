"""Spectral energy distributions: analytic rest-frame continua, emission lines and absorption
features, and the band photometry and indices derived from them."""
from __future__ import annotations

import numpy as np
from scipy import special

from ..surveys import get_survey
from .cosmology import luminosity_distance_cm

C_AAS = 2.99792458e18  # speed of light in Angstrom / s
NMGY_CGS = 3.631e-29  # erg/s/cm^2/Hz per nanomaggy
L_SUN_5500 = 5.2e29  # erg/s/A, solar luminosity density at 5500 A
UPSILON_OLD, UPSILON_YOUNG = 3.5, 0.25  # M/L (solar, at 5500 A) of the old / young population
HC_K = 1.4387769e8  # h c / k in Angstrom Kelvin


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
    filters = get_survey(survey).filters  # top-hat, observed Angstrom
    out = np.zeros((len(z), len(filters), 2))
    for b, (l1, l2) in enumerate(filters):
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




