"""Image rendering: galsim profiles through each survey's PSF, per-band blur, pixel scales and
sky noise."""
from __future__ import annotations

import functools

import numpy as np

from ..surveys import NMGY_ZERO_POINT, get_survey
from .population import BULGE_TRUNC
from .sed import band_fluxes

FLUX_UNIT_IMAGE = "nanomaggy"


# Each survey's filters, PSF (FWHM per band, profile, seeing scatter) and depths are fields of its
# surveys.Survey entry.


def _noise_sigma(survey: str, band: str, fwhm: float) -> float:
    """Per-pixel Gaussian sigma (nmgy) of a survey band from its 5-sigma point-source depth."""
    s = get_survey(survey)
    f5 = 10 ** (-0.4 * (s.depth[s.band_index(band)] - NMGY_ZERO_POINT))
    sig_psf = fwhm / 2.3548
    n_eff = max(4 * np.pi * sig_psf**2 / s.band_scale(band)**2, 1.0)
    return f5 / (5 * np.sqrt(n_eff))



def _gsparams():
    import galsim

    # 1 % folding / 0.2 % maxk thresholds: accurate to well below the sky noise, and small FFTs.
    return galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3)


@functools.lru_cache(maxsize=None)
def _unit_psf(survey: str):
    import galsim

    kind, beta = get_survey(survey).psf
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
    fwhm_med = np.array(s.psf_fwhm)
    ref = int(np.argmin(fwhm_med))
    seeing = np.exp(rng.normal(0.0, s.seeing_scatter, n)) if s.seeing_scatter > 0 else np.ones(n)
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




