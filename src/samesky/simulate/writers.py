"""Writers: a simulated sky as a crossmatch file (the simulation's own tests) or as a Multimodal
Universe snapshot plus its truth (the workflow's embedded default)."""
from __future__ import annotations

import json

import h5py
import numpy as np

from .. import schema
from ..surveys import DESI_WAVELENGTH, IMAGE, NMGY_ZERO_POINT, get_layout, get_survey
from .images import FLUX_UNIT_IMAGE
from .sky import simulate_sky
from .spectra import _sigma_function


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
    from .. import mmu

    lay = get_layout(layout, simulable=True)
    if lay.mmu is None:
        return _composite_snapshot(directory, truth_path, name, layout, n, seed, file_rows=file_rows, **kw)
    surveys = lay.surveys
    sky = simulate_sky(name, list(surveys), n, seed, **kw)
    examples = {s: mmu_examples(s, sky["groups"][s], sky["truth"], file_rows) for s in surveys}
    rows = (mmu.crossmatch_row(layout, {s: next(examples[s]) for s in surveys}) for _ in range(n))
    mmu.write_snapshot(directory, layout, rows, rows_per_file=file_rows)
    _write_truth(truth_path, sky["groups"]["hsc"]["object_id"], sky, layout, directory)
    return sky["meta"]


def _write_truth(truth_path, ids: np.ndarray, sky: dict, layout: str, directory) -> None:
    with schema.atomic_path(truth_path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("object_id", data=ids.astype(object), dtype=schema.STR)
        g = f.create_group("truth")
        for key, value in sky["truth"].items():
            g.create_dataset(key, data=value)
        f.attrs["simulation"] = json.dumps(sky["meta"] | {"layout": layout, "snapshot": str(directory)}, sort_keys=True)


# Catalogue columns of a composite layout drawn from the truth: LePhare-like photo-z scatter
# sigma_z = 0.03 (1 + z), stellar mass and sSFR scatter (dex), magnitude scatter (mag).
PHOTO_Z_SCATTER, MASS_SCATTER, SSFR_SCATTER, MAG_SCATTER = 0.03, 0.1, 0.3, 0.05
# catalogue column: (truth key or the survey and band of a model flux, scatter)
COMPOSITE_CATALOGUE = {"lephare_photozs": ("redshift", None), "lp_mass": ("log_mass", MASS_SCATTER),
                       "lp_ssfr": ("log_ssfr", SSFR_SCATTER), "mag_model_hsc-g": (("hsc", "g"), MAG_SCATTER),
                       "mag_model_hsc-r": (("hsc", "r"), MAG_SCATTER)}


def _composite_snapshot(directory, truth_path, name: str, layout: str, n: int, seed: int, *, file_rows: int,
                        **kw) -> dict:
    """A layout of 8-bit RGB composites (COSMOS-Web's): each survey's ``composite_of`` rendered by
    the simulated sky and composed (``rgb_composite``), the catalogue drawn from the truth
    (``catalogue_from_truth``); the row number is the object id, as the layout has no id column."""
    from datasets import Image as ImageFeature
    from PIL import Image

    from .. import mmu
    from .seeding import _rng

    lay = get_layout(layout, simulable=True)
    sources = {s: get_survey(s).composite_of for s in lay.surveys}
    sky = simulate_sky(name, [src for src, _ in sources.values()], n, seed, **kw)
    images = {lay.columns[s][0]: rgb_composite(sky["groups"][src], src, bands) for s, (src, bands) in sources.items()}
    cat = catalogue_from_truth(sky["truth"], list(lay.catalogue), _rng(seed, name, "catalogue"))
    encode = ImageFeature().encode_example
    rows = ({**{col: encode(Image.fromarray(rgb[i], "RGB")) for col, rgb in images.items()},
             **{k: float(v[i]) for k, v in cat.items()}} for i in range(n))
    mmu.write_snapshot(directory, layout, rows, rows_per_file=file_rows)
    _write_truth(truth_path, np.array([str(i) for i in range(n)]), sky, layout, directory)
    return sky["meta"]


def rgb_composite(arrays: dict, survey: str, bands: tuple[str, str, str]) -> np.ndarray:
    """(N, H, W, 3) uint8: ``bands`` of one survey's rendered flux as R, G, B, each an asinh stretch
    softened at the band's median noise sigma and saturating at its 99.9th flux percentile over
    the whole set (one stretch for every object, so brightness carries over)."""
    s = get_survey(survey)
    flux = arrays["flux"][:, [s.band_index(b) for b in bands]].astype(np.float64)
    ivar = arrays["ivar"][:, [s.band_index(b) for b in bands]]
    sigma = np.nanmedian(np.where(ivar > 0, 1.0 / np.sqrt(np.maximum(ivar, 1e-30)), np.nan), axis=(0, 2, 3))
    top = np.percentile(flux, 99.9, axis=(0, 2, 3))
    scale = np.arcsinh(top / sigma)
    x = np.arcsinh(flux / sigma[None, :, None, None]) / scale[None, :, None, None]
    return np.moveaxis(np.rint(255 * np.clip(x, 0.0, 1.0)), 1, -1).astype(np.uint8)


def catalogue_from_truth(truth: dict, columns: list[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The catalogue ``columns`` (``COMPOSITE_CATALOGUE``) drawn from the latent truth: photo-z as
    redshift plus sigma_z = 0.03 (1 + z) (at least 0), mass and sSFR plus Gaussian scatter, AB
    magnitudes of the noiseless model flux (nanomaggies) plus scatter."""
    unknown = [c for c in columns if c not in COMPOSITE_CATALOGUE]
    if unknown:
        raise KeyError(f"no simulated catalogue column {unknown}; known: {list(COMPOSITE_CATALOGUE)}")
    out = {}
    for column in columns:
        source, scatter = COMPOSITE_CATALOGUE[column]
        if source == "redshift":
            z = truth["redshift"]
            out[column] = np.maximum(z + rng.normal(0.0, PHOTO_Z_SCATTER * (1 + z)), 0.0)
        elif isinstance(source, tuple):
            mag = NMGY_ZERO_POINT - 2.5 * np.log10(np.maximum(truth[f"phot_{source[0]}_{source[1]}"], 1e-12))
            out[column] = mag + rng.normal(0.0, scatter, len(mag))
        else:
            out[column] = truth[source] + rng.normal(0.0, scatter, len(truth[source]))
    return out


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
    from .. import mmu
    from ..surveys import flux_factor

    s = get_survey(survey)
    ids = arrays["object_id"]
    n = len(ids)
    cat = {k: np.full(n, np.nan, np.float32) for k in mmu.float_columns(survey)}
    if s.modality == IMAGE:
        fac = flux_factor(NMGY_ZERO_POINT, s.zero_point) if s.zero_point is not None else 1.0
        phot = {b: truth[f"phot_{survey}_{b}"] for b in s.bands}
        mag = {b: NMGY_ZERO_POINT - 2.5 * np.log10(np.maximum(phot[b], 1e-12)) for b in s.bands}
        seeing = truth[f"obs_{survey}_psf_fwhm"] / min(s.psf_fwhm)
        red = s.bands[-1]  # the reddest band: a single-band catalogue's (JWST's f444w)
        known = {"EBV": np.zeros(n), "SHAPE_R": truth["r_half_arcsec"], "mag_auto": mag[red], "flux_auto": phot[red],
                 "flux_radius": truth["r_half_arcsec"] / s.band_scale(red)}
        for b in s.bands:
            known |= {f"{b}_cmodel_mag": mag[b], f"{b}_cmodel_magerr": np.full(n, 0.01), f"a_{b}": np.zeros(n),
                      f"{b}_extendedness_value": np.ones(n), f"FLUX_{b.upper()}": phot[b]}
        cat |= {k: v for k, v in known.items() if k in cat}  # what the simulation knows, as each builder names it
        for i in range(n):
            flux, ivar = arrays["flux"][i] * np.float32(fac), arrays["ivar"][i] / np.float32(fac**2)
            mask = ivar > 0 if survey == "jwst" else np.zeros(flux.shape[1:], bool)
            bands = [{"band": name, "flux": flux[b], "ivar": ivar[b],
                      "mask": mask[b] if mask.ndim == 3 else mask,
                      "psf_fwhm": np.float32(s.psf_fwhm[b] * seeing[i]),
                      "scale": np.float32(s.band_scale(band))}
                     for b, (band, name) in enumerate(zip(s.bands, s.archive_bands))]
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


