"""Flux-conserving resampling of spectra onto the DESI grid, vectorised over spectra.

Semantics follow specutils' ``FluxConservingResampler`` (Carnall 2017): bin edges lie halfway
between pixel centres (the outer edges mirror the neighbouring half-width); an output pixel's
flux density is the overlap-weighted mean of the input pixels it overlaps, and its variance is
the sum of input variances times the squared normalised overlaps. The overlaps form one sparse
matrix per input grid, so a batch of spectra sharing a grid resamples with sparse products
instead of specutils' Python loop over output pixels.

Two deliberate differences from specutils, both on pixels it would not treat as clean either:

* an output pixel only partly covered by the input is masked (specutils keeps the partly
  covered pixel at the blue end and fills the red one with NaN);
* bad input pixels (mask set, non-finite flux, ivar <= 0 or non-finite) do not enter the flux:
  the flux is the overlap-weighted mean of the good pixels, and every output pixel touching a
  bad one is masked with ivar 0 (specutils' ivar is 0 there too, from an infinite variance, but
  its flux would carry the bad value).

Every output satisfies ``mask == (ivar == 0)``; masked pixels outside the input's coverage, or
with no good input at all, have flux 0.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .surveys import DESI_WAVELENGTH

# A row is "on the DESI grid" when every pixel centre is within this many Angstrom of DESI's
# (1/80 of a pixel; float32 storage of the grid is off by at most ~5e-4 A).
GRID_ATOL = 0.01
# Overlaps below this fraction of an output pixel are rounding noise between nearly equal edges.
_MIN_WEIGHT = 1e-9


def bin_edges(centres: np.ndarray) -> np.ndarray:
    """Pixel edges from strictly increasing centres, exactly as specutils' SpectralAxis does."""
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim != 1 or len(c) < 2:
        raise ValueError(f"need at least 2 wavelength centres, got shape {c.shape}")
    if not np.all(np.diff(c) > 0):
        raise ValueError("wavelength centres are not strictly increasing")
    edges = np.empty(len(c) + 1)
    edges[1:-1] = 0.5 * (c[1:] + c[:-1])
    edges[0] = c[0] - 0.5 * (c[1] - c[0])
    edges[-1] = c[-1] + 0.5 * (c[-1] - c[-2])
    return edges


def overlap_matrix(in_centres: np.ndarray, out_centres: np.ndarray = DESI_WAVELENGTH) -> tuple[sp.csr_matrix, np.ndarray]:
    """Return (W, covered): W[j, i] is the fraction of output pixel j overlapped by input pixel i.

    ``covered[j]`` is True when output pixel j lies entirely inside the input's coverage (then
    row j of W sums to 1).
    """
    e_in, e_out = bin_edges(in_centres), bin_edges(out_centres)
    points = np.union1d(e_in, e_out)
    mids = 0.5 * (points[1:] + points[:-1])
    i = np.searchsorted(e_in, mids, side="right") - 1
    j = np.searchsorted(e_out, mids, side="right") - 1
    n_in, n_out = len(e_in) - 1, len(e_out) - 1
    ok = (i >= 0) & (i < n_in) & (j >= 0) & (j < n_out)
    weight = np.diff(points)[ok] / np.diff(e_out)[j[ok]]
    keep = weight > _MIN_WEIGHT
    w = sp.csr_matrix((weight[keep], (j[ok][keep], i[ok][keep])), shape=(n_out, n_in))
    covered = (e_out[:-1] >= e_in[0]) & (e_out[1:] <= e_in[-1])
    return w, covered


def clean_pixels(flux: np.ndarray, ivar: np.ndarray, mask: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (flux, ivar, good): non-finite flux set to 0, and ivar 0 wherever a pixel is bad.

    A pixel is bad when masked, its flux is not finite, or its ivar is not finite and positive.
    """
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    good = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    if mask is not None:
        good &= ~np.asarray(mask, dtype=bool)
    return np.where(np.isfinite(flux), flux, 0.0), np.where(good, ivar, 0.0), good


def resample(flux: np.ndarray, ivar: np.ndarray, wavelength: np.ndarray, mask: np.ndarray | None = None,
             out_wavelength: np.ndarray = DESI_WAVELENGTH, matrix: tuple[sp.csr_matrix, np.ndarray] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample spectra (N, L) sharing one grid ``wavelength`` (L,) onto ``out_wavelength``.

    Returns (flux, ivar, mask) of shape (N, len(out_wavelength)): float32, float32, bool.
    ``matrix`` is a precomputed ``overlap_matrix(wavelength, out_wavelength)``, for reuse.
    """
    flux, ivar, good = clean_pixels(np.atleast_2d(flux), np.atleast_2d(ivar), None if mask is None else np.atleast_2d(mask))
    w, covered = matrix if matrix is not None else overlap_matrix(wavelength, out_wavelength)
    goodf = good.astype(np.float64)
    var = np.divide(1.0, ivar, out=np.zeros_like(ivar), where=good)
    # sparse (L_out, L_in) @ dense (L_in, N): every spectrum at once
    wsum = (w @ goodf.T).T
    num = (w @ (flux * goodf).T).T
    var_out = (w.multiply(w) @ var.T).T
    touched_bad = ((w > 0).astype(np.float64) @ (1.0 - goodf).T).T > 0
    has_good = wsum > _MIN_WEIGHT
    out_flux = np.divide(num, wsum, out=np.zeros_like(num), where=has_good & covered)
    out_mask = ~covered | touched_bad | ~has_good
    ok = ~out_mask & (var_out > 0)
    out_ivar = np.divide(wsum**2, var_out, out=np.zeros_like(var_out), where=ok).astype(np.float32)
    out_mask |= out_ivar == 0  # also an ivar too small for float32
    return out_flux.astype(np.float32), out_ivar, out_mask


def on_desi_grid(wavelength: np.ndarray) -> bool:
    """True when ``wavelength`` (L,) is the DESI coadd grid (within GRID_ATOL)."""
    w = np.asarray(wavelength, dtype=np.float64)
    return w.shape == DESI_WAVELENGTH.shape and bool(np.all(np.abs(w - DESI_WAVELENGTH) <= GRID_ATOL))
