"""The surveys samesky knows, and the crossmatch tables that hold them: one place for each survey's
facts (modality, bands and their archive names, pixel scales, shapes, wavelength grids, how the
simulated sky renders and selects it) and each table's columns (``LAYOUTS``).

Band order is the on-disk order of the Multimodal Universe crossmatches (and of our own
simulated sky), so a band name maps to a fixed flux index.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

IMAGE = "image"
SPECTRUM = "spectrum"
NMGY_ZERO_POINT = 22.5  # AB magnitude of one nanomaggy (Legacy Survey's flux unit)


def flux_factor(from_zero_point: float, to_zero_point: float) -> float:
    """Factor turning fluxes in a unit of AB zero point ``from_zero_point`` into ``to_zero_point``'s."""
    return float(10.0 ** ((float(to_zero_point) - float(from_zero_point)) / 2.5))


@dataclass(frozen=True)
class Selection:
    """The galaxies a crossmatch holds when simulated (``samesky.simulate.population``): of a
    crossmatch's surveys, the one of lowest ``rank`` sets them."""
    rank: int
    redshift_prior: tuple[float, float, float, float]  # truncated log-normal: (z_min, z_max, median, ln-sigma)
    mass_anchor: float  # flux-limited selection: mean log mass at z = 0.1 (rises as 1.8 log z)


@dataclass(frozen=True)
class Spectrograph:
    """A fibre spectrograph as the simulated sky renders it (``samesky.simulate.spectra``)."""
    fiber_diameter: float  # arcsec
    seeing: float  # FWHM, arcsec
    sigma0: float  # per-pixel noise scale (1e-17 erg/s/cm^2/Angstrom)
    bad_fraction: float  # pixels masked as bad


@dataclass(frozen=True)
class Survey:
    name: str
    label: str  # how tables and figures name it
    modality: str  # IMAGE or SPECTRUM
    order: int  # its place among table columns and figure panels (the reference survey, HSC, last)
    bands: tuple[str, ...] = ()  # images: on-disk band order
    shape: tuple[int, int] | None = None  # images: (H, W) cutout size
    pixel_scale: float | None = None  # images: arcsec / pixel (of every band unless pixel_scales says otherwise)
    rgb: tuple[str, str, str] | None = None  # images: default bands mapped to R, G, B
    wave_range: tuple[float, float] | None = None  # spectra: nominal coverage in Angstrom
    # images: AB magnitude of one flux unit in the Multimodal Universe cutouts (HSC 27, as AION's
    # codec assumes; Legacy 22.5, i.e. nanomaggies); a crossmatch may declare its own (attr zero_point)
    zero_point: float | None = None
    # images: arcsec / pixel per band (on-disk order) when bands differ, e.g. JWST NIRCam SW 0.02", LW 0.04"
    pixel_scales: tuple[float, ...] | None = None
    # counted in the pooled trend tests (report.trends); False for an out-of-domain survey whose
    # steps are reported on their own, as the paper does for SDSS (Appendix B)
    pooled: bool = True
    # Image instruments as the simulated sky (samesky.simulate) renders them; per band in ``bands`` order:
    filters: tuple[tuple[float, float], ...] = ()  # top-hat filter edges (observed Angstrom)
    psf_fwhm: tuple[float, ...] = ()  # median PSF FWHM (arcsec), times a per-object seeing factor
    depth: tuple[float, ...] = ()  # 5-sigma point-source depth (AB mag)
    psf: tuple[str, float | None] = ("gaussian", None)  # profile: 'kolmogorov', 'moffat' (beta) or 'gaussian'
    seeing_scatter: float = 0.0  # ln-scatter of the per-object seeing factor (0: space-based)
    # images: each of ``bands`` as the Multimodal Universe's parent samples name it (image_band)
    archive_bands: tuple[str, ...] = ()
    selection: Selection | None = None  # simulated: the galaxies its crossmatches hold
    spectrograph: Spectrograph | None = None  # spectra, simulated
    # images stored as 8-bit RGB composites (bands: the channels): the survey the simulated sky
    # renders, and its bands composed into R, G, B (``samesky.simulate.writers.rgb_composite``)
    composite_of: tuple[str, tuple[str, str, str]] | None = None

    def __post_init__(self):
        for name in ("filters", "psf_fwhm", "depth", *(("pixel_scales",) if self.pixel_scales else ())):
            values = getattr(self, name)
            if values and len(values) != len(self.bands):
                raise ValueError(f"survey {self.name!r}: {name} has {len(values)} values for {len(self.bands)} bands")

    def band_scale(self, band: str) -> float:
        """Pixel scale (arcsec / pixel) of one band."""
        return self.pixel_scales[self.band_index(band)] if self.pixel_scales else self.pixel_scale

    def band_index(self, band: str) -> int:
        try:
            return self.bands.index(band)
        except ValueError:
            raise KeyError(
                f"survey {self.name!r} has no band {band!r}; its bands are {list(self.bands)}"
            ) from None


# DESI coadd grid: 7781 pixels, 3600-9824 A at 0.8 A.
DESI_WAVELENGTH = np.round(3600.0 + 0.8 * np.arange(7781), 1)
# SDSS spectra: log10-lambda grid with 1e-4 dex pixels; a spectrum covers a window of it.
SDSS_LOGLAM0, SDSS_DLOGLAM = 3.5682, 1e-4


def sdss_wavelength(n_pix: int = 3864, start: int = 0) -> np.ndarray:
    """SDSS pixel centres in Angstrom: 10**(3.5682 + 1e-4 * (start + i))."""
    return 10.0 ** (SDSS_LOGLAM0 + SDSS_DLOGLAM * (start + np.arange(n_pix)))


SURVEYS: dict[str, Survey] = {
    s.name: s
    for s in (
        Survey("hsc", "HSC", IMAGE, 4, ("g", "r", "i", "z", "y"), (160, 160), 0.168, ("z", "r", "g"), zero_point=27.0,
               filters=((3950, 5400), (5430, 6980), (6940, 8420), (8520, 9320), (9280, 10390)),
               psf_fwhm=(0.77, 0.76, 0.58, 0.68, 0.68), depth=(26.5, 26.1, 25.9, 25.1, 24.4),
               psf=("kolmogorov", None), seeing_scatter=0.12,
               archive_bands=("hsc-g", "hsc-r", "hsc-i", "hsc-z", "hsc-y"),  # scripts/hsc/build_parent_sample.py L18, L107
               selection=Selection(4, (0.02, 1.5, 0.5, 0.7), 8.7)),
        Survey("legacysurvey", "Legacy", IMAGE, 1, ("g", "r", "i", "z"), (160, 160), 0.262, ("z", "r", "g"),
               zero_point=NMGY_ZERO_POINT,
               filters=((4000, 5500), (5630, 7150), (7000, 8500), (8500, 10000)),
               psf_fwhm=(1.45, 1.30, 1.20, 1.15), depth=(24.7, 24.2, 23.8, 23.3),
               psf=("moffat", 2.8), seeing_scatter=0.12,  # Moffat truncated at 5 FWHM: broad wings
               archive_bands=("DES-G", "DES-R", "DES-I", "DES-Z"),  # scripts/legacysurvey/legacysurvey.py L118
               selection=Selection(3, (0.02, 1.2, 0.35, 0.6), 9.3)),
        Survey(
            "jwst",
            "JWST",
            IMAGE,
            0,
            ("f090w", "f115w", "f150w", "f200w", "f277w", "f356w", "f444w"),
            (96, 96),
            0.04,
            ("f444w", "f277w", "f090w"),
            # MMU's JWST cutouts keep each mosaic's pixels: 0.02"/px for the short-wavelength bands,
            # 0.04"/px for the long (scripts/jwst/README.md L22, build_parent_sample.py L126-131; the
            # PRIMER SW mosaics are the exception at 0.04")
            pixel_scales=(0.02, 0.02, 0.02, 0.02, 0.04, 0.04, 0.04),
            filters=((7950, 10050), (10130, 12820), (13310, 16680), (17550, 22270), (24160, 31270),
                     (31400, 40090), (38800, 49860)),
            psf_fwhm=(0.045, 0.050, 0.058, 0.070, 0.110, 0.135, 0.160),
            depth=(28.3, 28.6, 28.8, 29.0, 29.2, 29.2, 28.8),
            psf=("gaussian", None),  # diffraction-limited cores of the mosaics
            archive_bands=("f090w", "f115w", "f150w", "f200w", "f277w", "f356w", "f444w"),  # scripts/jwst/jwst.py L119
            selection=Selection(2, (0.1, 3.5, 1.0, 0.6), 8.2),
        ),
        Survey("desi", "DESI", SPECTRUM, 2, wave_range=(3600.0, 9824.0),
               selection=Selection(1, (0.02, 1.0, 0.25, 0.7), 9.9), spectrograph=Spectrograph(1.5, 1.1, 0.45, 1e-3)),
        Survey("sdss", "SDSS", SPECTRUM, 3, wave_range=(3800.0, 9200.0), pooled=False,
               selection=Selection(0, (0.02, 0.45, 0.12, 0.6), 10.6), spectrograph=Spectrograph(3.0, 1.4, 1.0, 1e-3)),
        # COSMOS-Web (Ashodkh/cosmosweb-hsc-jwst-high-snr-pil2): HSC and JWST cutouts of one galaxy
        # stored as 8-bit RGB images, the channels the bands; which filters make each channel, the
        # cutout size and the pixel scales (HSC's native 0.168", COSMOS-Web's 0.03" NIRCam mosaics)
        # are inferred, not seen (docs/PAPER.md, COSMOS-Web). Simulated as composites of hsc's and
        # jwst's renderings (JWST's long-wavelength bands: one pixel scale).
        Survey("cosmos_hsc", "HSC (COSMOS-Web)", IMAGE, 4, ("red", "green", "blue"), None, 0.168,
               ("red", "green", "blue"), composite_of=("hsc", ("z", "r", "g"))),
        Survey("cosmos_jwst", "JWST (COSMOS-Web)", IMAGE, 0, ("red", "green", "blue"), None, 0.03,
               ("red", "green", "blue"), composite_of=("jwst", ("f444w", "f356w", "f277w"))),
    )
}


def get_survey(name: str) -> Survey:
    try:
        return SURVEYS[name]
    except KeyError:
        raise KeyError(f"unknown survey {name!r}; known surveys: {sorted(SURVEYS)}") from None


@dataclass(frozen=True)
class Layout:
    """Where one crossmatch table holds each survey's data and the ids: column names tried in
    order, the first present wins. An image column holds a struct {'band': [...], 'flux': [...],
    'ivar', 'mask'} (or a list of per-band structs), or an 8-bit RGB PIL image (``datasets.Image``,
    COSMOS-Web's); a spectrum column {'flux', 'ivar', 'lambda', 'mask'} (``samesky.ingest``).
    ``object_id`` empty: the table has no id column, and the row number is the id."""
    columns: Mapping[str, tuple[str, ...]]  # per survey, in the table's order: its image or spectrum
    object_id: tuple[str, ...]  # the crossmatch id (the reference survey's own where both are present)
    survey_ids: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # kept as /<survey>/object_id
    # how the Multimodal Universe built the table (``samesky.mmu``: 'prefixed' or
    # 'cross_match_datasets'), which is how the simulated sky writes it; None: not an MMU set
    mmu: str | None = None
    ra: tuple[str, ...] = ("ra",)
    dec: tuple[str, ...] = ("dec",)
    # a table MMU did not build: its scalar catalogue columns as known (and as the simulated sky
    # writes them, {column: datasets dtype}); ingest keeps every scalar column the table has
    catalogue: Mapping[str, str] = field(default_factory=dict)

    @property
    def surveys(self) -> tuple[str, ...]:
        return tuple(self.columns)

    @property
    def simulable(self) -> bool:
        """The simulated sky can write it: an MMU table, or one of 8-bit composites (``Survey.composite_of``)."""
        return self.mmu is not None or all(SURVEYS[s].composite_of for s in self.columns)


# The DESI/SDSS sets (built by MMU's cross_match_datasets) name their HSC column `image` and carry
# one `object_id`; the JWST/Legacy sets prefix every column with its survey and have no `object_id`.
LAYOUTS: dict[str, Layout] = {
    "Smith42/jwst_hsc_crossmatched": Layout(
        {"jwst": ("jwst_image",), "hsc": ("hsc_image",)}, ("hsc_object_id",),
        {"jwst": ("jwst_object_id",), "hsc": ("hsc_object_id",)}, mmu="prefixed"),
    "Smith42/legacysurvey_hsc_crossmatched": Layout(
        {"legacysurvey": ("legacysurvey_image",), "hsc": ("hsc_image",)}, ("hsc_object_id",),
        {"legacysurvey": ("legacysurvey_object_id",), "hsc": ("hsc_object_id",)}, mmu="prefixed"),
    "Smith42/desi_hsc_crossmatched": Layout(
        {"desi": ("spectrum", "desi_spectrum"), "hsc": ("image", "hsc_image")}, ("object_id",),
        {"desi": ("desi_object_id", "targetid"), "hsc": ("hsc_object_id",)}, mmu="cross_match_datasets"),
    "Smith42/sdss_hsc_crossmatched": Layout(
        {"sdss": ("spectrum", "sdss_spectrum"), "hsc": ("image", "hsc_image")}, ("object_id",),
        {"sdss": ("sdss_object_id", "specobjid"), "hsc": ("hsc_object_id",)}, mmu="cross_match_datasets"),
    # The authors' COSMOS-Web set (UniverseTBD/platonic-universe 6672072, src/pu/pu_datasets/cosmosweb.py):
    # one row per galaxy, PIL images (encoded; ingest decodes them) and LePhare columns; no id or
    # coordinate column is read by their code, so none is assumed: the row number is the id.
    "Ashodkh/cosmosweb-hsc-jwst-high-snr-pil2": Layout(
        {"cosmos_jwst": ("jwst_images",), "cosmos_hsc": ("hsc_images",)}, (),
        catalogue={c: "float64" for c in ("lephare_photozs", "lp_mass", "lp_ssfr", "mag_model_hsc-g",
                                          "mag_model_hsc-r")}),
}


def _kind(layout: Layout, mmu: bool, simulable: bool) -> bool:
    return (layout.mmu is not None or not mmu) and (layout.simulable or not simulable)


def get_layout(name: str, *, mmu: bool = False, simulable: bool = False) -> Layout:
    """The layout ``name``; with ``mmu``, only one the Multimodal Universe built; with
    ``simulable``, only one the simulated sky writes."""
    known = [k for k, v in LAYOUTS.items() if _kind(v, mmu, simulable)]
    if name not in known:
        what = "Multimodal Universe layout" if mmu else "simulable layout" if simulable else "layout"
        raise KeyError(f"unknown {what} {name!r}; known: {sorted(known)}")
    return LAYOUTS[name]


def layout_for_surveys(surveys: Sequence[str], *, mmu: bool = False, simulable: bool = False) -> str | None:
    """The one layout (of the kinds ``get_layout`` names) holding exactly ``surveys``; None when
    there is none or several."""
    matches = [k for k, v in LAYOUTS.items() if sorted(v.surveys) == sorted(surveys) and _kind(v, mmu, simulable)]
    return matches[0] if len(matches) == 1 else None
