"""A simulated sky: every galaxy of a crossmatch seen by each of its surveys, with its latent truth
(``simulate_sky``), and that truth as an embedding space (``truth_features``)."""
from __future__ import annotations

import logging
import time

import numpy as np

from .. import schema
from ..latent_keys import TRUTH_KEYS
from ..surveys import IMAGE, get_survey
from .cosmology import H0, OM0, luminosity_distance_cm
from .images import FLUX_UNIT_IMAGE, render_images
from .population import _draw_neighbours, draw_latents, selection
from .sed import EM_NAMES, dn4000, line_luminosities, restframe_color
from .seeding import _rng
from .spectra import FLUX_UNIT_SPECTRUM, render_spectra

log = logging.getLogger(__name__)

SIM_VERSION = 1


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
        spec = get_survey(s)  # unknown names raise KeyError listing the known ones
        if spec.modality == IMAGE and not (spec.filters and spec.psf_fwhm and spec.depth):
            raise ValueError(f"survey {s!r} cannot be simulated: its surveys.Survey entry has no filters, "
                             f"psf_fwhm and depth")
    t0 = time.perf_counter()
    chosen = selection(surveys)
    prior = chosen.redshift_prior if redshift_range is None else tuple(redshift_range)
    anchor = chosen.mass_anchor
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


