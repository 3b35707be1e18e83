"""The names of a simulated crossmatch's latent properties (its truth file's ``/truth``), known
without importing the simulator: the config checks ask which properties a probe may name.
``samesky.simulate`` writes exactly these (tests/test_simulate.py holds them equal)."""
from __future__ import annotations

from typing import Sequence

from .surveys import IMAGE, get_survey

TRUTH_KEYS = ("redshift", "log_mass", "quiescent", "log_sfr", "log_ssfr", "young_fraction", "d4000",
              "restframe_g_r", "bulge_fraction", "sersic_n", "r_half_arcsec", "r_half_kpc",
              "r_bulge_arcsec", "r_disk_arcsec", "axis_ratio", "bulge_axis_ratio", "ellipticity",
              "position_angle_deg",
              "a_v", "vel_disp", "halpha_flux", "oiii_flux", "n_neighbours")


def truth_keys(surveys: Sequence[str]) -> list[str]:
    """Every ``/truth`` key of a sky simulated for ``surveys``: the physical latents, then per
    survey its observation (``obs_<survey>_...``) and, for an image survey, its model fluxes
    (``phot_<survey>_<band>``); for a composite survey (``Survey.composite_of``), the survey it
    composes."""
    keys = list(TRUTH_KEYS)
    for s in surveys:
        s = (get_survey(s).composite_of or (s,))[0]  # a composite survey's sky renders the survey it composes
        survey = get_survey(s)
        if survey.modality == IMAGE:
            keys += [f"obs_{s}_psf_fwhm", f"obs_{s}_noise_scale", *(f"phot_{s}_{b}" for b in survey.bands)]
        else:
            keys += [f"obs_{s}_fiber_fraction", f"obs_{s}_noise_scale"]
    return keys
