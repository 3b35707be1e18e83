"""The embedded default data source: a simulated crossmatched sky.

``simulate_snapshot(directory, truth_path, name, layout, n, seed)`` writes one crossmatch as a
Multimodal Universe snapshot (``samesky.mmu``) in which every row is *one latent galaxy* seen by
every survey of the crossmatch, and its latent properties beside it, keyed by object id;
``simulate_crossmatch(path, name, surveys, n, seed)`` writes any set of surveys straight to a
crossmatch file with the properties under ``/truth``. Alignment of embeddings with each other
and with the truth is therefore measurable.

Modules: ``seeding`` (random streams), ``cosmology``, ``population`` (latents, profiles,
neighbours), ``sed`` (SEDs, lines, photometry), ``images`` (galsim rendering, PSFs, pixel scales,
noise), ``spectra`` (fibre spectra), ``sky`` (``simulate_sky``, the truth as a space) and
``writers`` (crossmatch file, MMU snapshot).

Latent model (per object, all drawn from the seed)
--------------------------------------------------
* redshift: truncated log-normal whose median/range depends on the crossmatch (spectroscopic
  crossmatches are low-z, JWST ones high-z; ``surveys.Selection``, on each survey's entry).
* log stellar mass: normal around a mean that rises as 1.8 log10(z) from a per-crossmatch anchor
  (``Selection.mass_anchor``: a rough flux-limited selection, e.g. SDSS ~10.6 at z = 0.1).
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
~ ``surveys.Survey.psf_fwhm`` (times a per-object seeing factor for ground-based surveys). Faint
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

from .cosmology import kpc_per_arcsec, luminosity_distance_cm  # noqa: F401
from .population import (  # noqa: F401
    BULGE_TRUNC,
    composite_half_light_radius,
    draw_latents,
    enclosed_fraction,
    enclosed_fraction_truncated,
)
from .sed import HALPHA_REST  # noqa: F401
from .sky import TRUTH_FEATURES, TRUTH_KEYS, simulate_sky, truth_features  # noqa: F401
from .writers import mmu_examples, simulate_crossmatch, simulate_snapshot  # noqa: F401
