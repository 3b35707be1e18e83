"""Flat LCDM (H0 = 70, Om0 = 0.3): angular scale and luminosity distance."""
from __future__ import annotations

import numpy as np

H0, OM0 = 70.0, 0.3


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




