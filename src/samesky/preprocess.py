"""Model-ready inputs: RGB uint8 images and spectra on the DESI grid, streamed in chunks.

Images, mode ``paper`` (section 2 of the study): three bands chosen by name become R, G, B
(HSC/Legacy z, r, g; JWST f444w, f277w, f090w); each channel is clipped to its survey-wide
[p_low, p_high] percentiles (5th/99th, from up to 10000 images, ``compute_percentiles``) and
scaled to [0, 1]; then uint8 = floor(255 * value), as the study's code did.

Images, mode ``authors_arcsinh`` (the authors' later recipe, UniverseTBD/platonic-universe at
6672072: ``src/pu/preprocess.py`` L176-284, ``src/pu/zoom.py`` L58-126, ``src/pu/percentiles.py``):
HSC and Legacy cutouts are cropped to their central ``crop`` pixels (28 for HSC, 18 for Legacy:
what ``resize_galaxy_to_fit(force_extent=(68, 92, ...) / (72, 88, ...))`` keeps of a 160 px
cutout) and zoomed to 96 px with ``scipy.ndimage.zoom(order=1)``; JWST is left at 96 px. Each
channel, with its survey-wide 1st/99th percentiles p1/p99 (computed over the same cropped and
zoomed images), becomes ``clip(arcsinh(20 t) / arcsinh(20), 0, 1)`` with t = (x - p1) / (p99 -
p1); then uint8 = floor(255 * value), in the authors' float precisions.

Both modes fill non-finite pixels deliberately with the channel's low percentile (black) and
count them, and drop degenerate images with a reason: ``all_nan`` (a channel with no finite
pixel), ``all_zero`` (a channel whose finite pixels are all 0) and ``no_signal`` (a channel
constant after the stretch). Counts go to
the log and to the output's provenance. Image ivar/mask arrays are not used (the study ignored
them).
"""
from __future__ import annotations

import logging
from typing import Sequence

import h5py
import numpy as np

from . import spectra
from .schema import (
    PERCENTILES_SCHEMA,
    SchemaError,
    as_str_ids,
    open_h5,
    preprocessed_writer,
    read_percentiles,
    validate_crossmatch,
)
from .surveys import DESI_WAVELENGTH, IMAGE, SPECTRUM, flux_factor, get_survey

log = logging.getLogger(__name__)

REASONS = ("all_nan", "all_zero", "no_signal")
_EXAMPLES = 5  # object ids recorded per drop reason


# ---- reading crossmatch files ----------------------------------------------------------------
def _survey_group(f: h5py.File, path, survey: str, modality: str) -> h5py.Group:
    if get_survey(survey).modality != modality:
        raise ValueError(f"survey {survey!r} is not a {modality} survey")
    if survey not in f or "flux" not in f[survey]:
        raise SchemaError(f"{path}: missing dataset '{survey}/flux'")
    return f[survey]


def _band_indices(group: h5py.Group, path, survey: str, bands: Sequence[str]) -> list[int]:
    """On-disk indices of ``bands`` by name, from the file's own 'bands' attribute."""
    on_disk = [str(b) for b in group.attrs.get("bands", get_survey(survey).bands)]
    if len(bands) != 3:
        raise ValueError(f"need exactly 3 bands for R, G, B, got {list(bands)}")
    missing = [b for b in bands if b not in on_disk]
    if missing:
        raise SchemaError(f"{path}: '{survey}' has no band {missing}; its bands are {on_disk}")
    return [on_disk.index(b) for b in bands]


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(start + size, n)


# ---- percentiles: exact, over streamed chunks, in bounded memory -----------------------------
def _sortable(x: np.ndarray) -> np.ndarray:
    """Map float32 values to uint32 keys whose integer order is the float order."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return np.where(u >> 31, ~u, u | np.uint32(0x80000000))


def _unsortable(key: int) -> float:
    k = np.uint32(key)
    u = k ^ np.uint32(0x80000000) if k >> 31 else ~k
    return float(np.array(u, dtype=np.uint32).view(np.float32))


def _degenerate(x: np.ndarray) -> np.ndarray:
    """Per image (N, C, H, W): '' or the reason to drop it before any scaling."""
    finite = np.isfinite(x)
    any_finite = finite.any(axis=(2, 3))
    nonzero = (finite & (x != 0)).any(axis=(2, 3))
    reason = np.full(len(x), "", dtype=object)
    reason[~nonzero.all(axis=1)] = "all_zero"
    reason[~any_finite.all(axis=1)] = "all_nan"
    return reason


class _OrderStatistics:
    """Exact order statistics of streamed float32 values in O(2**16) memory, in two passes.

    Pass 1 histograms the top 16 bits of the order-preserving keys; pass 2 histograms the low
    16 bits inside the few top bins that hold the wanted ranks, which pins each rank exactly.
    """

    def __init__(self, channels: int):
        self.top = np.zeros((channels, 1 << 16), np.int64)
        self.low: list[dict[int, np.ndarray]] = [{} for _ in range(channels)]

    def add(self, c: int, values: np.ndarray, second_pass: bool) -> None:
        keys = _sortable(values[np.isfinite(values)])
        hi = keys >> 16
        if not second_pass:
            self.top[c] += np.bincount(hi, minlength=1 << 16)
            return
        for b, hist in self.low[c].items():
            hist += np.bincount(keys[hi == b] & 0xFFFF, minlength=1 << 16)

    def count(self, c: int) -> int:
        return int(self.top[c].sum())

    def _locate(self, c: int, rank: int) -> tuple[int, int]:
        cum = np.cumsum(self.top[c])
        b = int(np.searchsorted(cum, rank, side="right"))
        return b, rank - (int(cum[b - 1]) if b else 0)

    def plan(self, c: int, ranks: Sequence[int]) -> None:
        for r in ranks:
            self.low[c].setdefault(self._locate(c, r)[0], np.zeros(1 << 16, np.int64))

    def value(self, c: int, rank: int) -> float:
        b, within = self._locate(c, rank)
        lo = int(np.searchsorted(np.cumsum(self.low[c][b]), within, side="right"))
        return _unsortable((b << 16) | lo)


def _ranks(n: int, q: float) -> tuple[int, int, float]:
    """numpy's default ('linear') percentile: position q/100 * (n - 1) between two ranks."""
    pos = q / 100.0 * (n - 1)
    k = int(np.floor(pos))
    return k, min(k + 1, n - 1), pos - k


def compute_percentiles(crossmatch_path, survey: str, *, bands: Sequence[str], percentiles=(5, 99),
                        max_images: int = 10000, seed: int = 0, sample: str = "random", crop: int | None = None,
                        chunk_size: int = 256) -> dict:
    """Channel-wise percentiles of ``bands`` over up to ``max_images`` images of ``survey``.

    ``sample``: ``random``, a uniform random subset drawn with ``seed``, degenerate images (a
    channel all NaN or all zero) left out and counted; ``first``, the first ``max_images`` rows
    as the authors' code takes them (``load_dataset(...).take(10000)``), every image pooled.
    All images are used if there are fewer. ``crop``: the pixels of each image are those of
    ``crop_zoom(image, crop)`` (authors_arcsinh). Non-finite pixels are ignored. Values equal
    ``numpy.percentile`` over all pooled finite pixels of the used images (default 'linear'
    method), computed exactly in two streamed passes.
    """
    lo_q, hi_q = (float(q) for q in percentiles)
    if not 0 <= lo_q < hi_q <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {list(percentiles)}")
    if sample not in ("random", "first"):
        raise ValueError(f"sample must be 'random' or 'first', got {sample!r}")
    validate_crossmatch(crossmatch_path)
    with open_h5(crossmatch_path) as f:
        group = _survey_group(f, crossmatch_path, survey, IMAGE)
        idx = _band_indices(group, crossmatch_path, survey, bands)
        flux = group["flux"]
        n_total = flux.shape[0]
        rows = np.arange(n_total)
        if n_total > max_images:
            rows = rows[:max_images] if sample == "first" else np.sort(
                np.random.default_rng(seed).choice(n_total, size=max_images, replace=False))
        stats = _OrderStatistics(3)
        skipped = {"all_nan": 0, "all_zero": 0}
        for second in (False, True):
            for a, b in _chunks(len(rows), chunk_size):
                sel = rows[a:b]
                x = flux[sel[0]:sel[-1] + 1] if len(rows) == n_total else flux[sel]
                x = x[:, idx].astype(np.float32, copy=False)
                reason = _degenerate(x) if sample == "random" else np.full(len(x), "", object)
                if not second:
                    for r in skipped:
                        skipped[r] += int((reason == r).sum())
                x = crop_zoom(x[reason == ""], crop)
                for c in range(3):
                    stats.add(c, x[:, c], second)
            if not second:
                for c, band in enumerate(bands):
                    n = stats.count(c)
                    if n == 0:
                        raise SchemaError(f"{crossmatch_path}: '{survey}/flux' band {band!r} has no finite pixel "
                                          f"in the {len(rows)} sampled images")
                    stats.plan(c, [r for q in (lo_q, hi_q) for r in _ranks(n, q)[:2]])
    values = {}
    for c, band in enumerate(bands):
        out = []
        for q in (lo_q, hi_q):
            k0, k1, t = _ranks(stats.count(c), q)
            v0, v1 = stats.value(c, k0), stats.value(c, k1)
            out.append(v0 + (v1 - v0) * t)
        values[band] = out
    n_used = len(rows) - sum(skipped.values())
    log.info("percentiles %s of %s (%s): %d images used of %d sampled (%d in file); skipped %s; %s",
             [lo_q, hi_q], survey, crossmatch_path, n_used, len(rows), n_total, skipped, values)
    return {
        "schema": PERCENTILES_SCHEMA, "survey": survey, "source": str(crossmatch_path), "bands": list(bands),
        "percentiles": [lo_q, hi_q], "low": {b: v[0] for b, v in values.items()},
        "high": {b: v[1] for b, v in values.items()}, "n_total": n_total, "n_sampled": len(rows),
        "n_used": n_used, "skipped": skipped, "max_images": max_images, "seed": seed, "sample": sample, "crop": crop,
    }


# ---- image rescaling (pure functions on arrays) ----------------------------------------------
def _to_uint8(y: np.ndarray) -> np.ndarray:
    return (y.astype(np.float32) * np.float32(255)).astype(np.uint8)


MODES = ("paper", "authors_arcsinh")
ZOOMED_SIDE = 96  # authors_arcsinh: crops are zoomed to 96 px (resize_galaxy_to_fit's target_size)
STRETCH = 20  # authors_arcsinh: arcsinh(20 t) / arcsinh(20) (flux_to_pil's stretch_alpha)


def crop_zoom(x: np.ndarray, crop: int | None) -> np.ndarray:
    """The central ``crop`` x ``crop`` pixels of (N, C, H, W) images zoomed to 96 px, bilinear, with
    ``scipy.ndimage.zoom(order=1)`` as the authors' ``resize_galaxy_to_fit``; None: unchanged."""
    if crop is None:
        return x
    from scipy import ndimage

    h, w = x.shape[-2:]
    if not 0 < crop <= min(h, w):
        raise ValueError(f"crop must be in (0, {min(h, w)}] pixels, got {crop}")
    top, left = h // 2 - crop // 2, w // 2 - crop // 2
    f = ZOOMED_SIDE / crop
    return ndimage.zoom(x[..., top:top + crop, left:left + crop], (1, 1, f, f), order=1)


def rescale_images(x: np.ndarray, *, mode: str = "paper", low=None, high=None, crop: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Turn (N, 3, H, W) fluxes (R, G, B order) into uint8 RGB; see the module docstring.

    Returns (rgb uint8 (N, 3, H', W'), reason (N,) object array: '' for kept images, else the
    drop reason, n_filled: non-finite pixels filled in the kept images). Dropped rows of ``rgb``
    are 0. ``low``/``high`` (3,): each channel's percentiles. ``crop``: authors_arcsinh only.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W), got {x.shape}")
    if mode not in MODES:
        raise ValueError(f"unknown preprocessing mode {mode!r}; expected one of {list(MODES)}")
    reason = _degenerate(x)
    if mode == "authors_arcsinh":
        x = crop_zoom(x, crop)
    low32 = np.asarray(low, np.float32).reshape(1, 3, 1, 1)
    high32 = np.asarray(high, np.float32).reshape(1, 3, 1, 1)
    bad = ~np.isfinite(x)
    if mode == "paper":
        y = np.clip((np.where(bad, low32, x) - low32) / (high32 - low32), 0, 1)
    else:  # the authors' dtypes: float32 arithmetic, then a float64 scalar divisor
        t = (np.where(bad, low32, x) - low32) / (high32 - low32)
        y = np.clip(np.arcsinh(np.float32(STRETCH) * t) / np.arcsinh(np.float64(STRETCH)), 0, 1)
    flat = y.reshape(len(y), 3, -1)
    constant = (flat.max(axis=2) == flat.min(axis=2)).any(axis=1)
    reason[(reason == "") & constant] = "no_signal"
    keep = reason == ""
    n_filled = int(bad[keep].sum())
    y = np.where(keep.reshape(-1, 1, 1, 1), y, 0)
    return _to_uint8(y) if mode == "paper" else (y * 255).astype(np.uint8), reason, n_filled


def preprocess_images(crossmatch_path, survey: str, out_path, *, bands: Sequence[str], percentiles_json=None,
                      mode: str = "paper", crop: int | None = None, chunk_size: int = 256) -> dict:
    """Write RGB uint8 images (N_kept, 3, H, W) of ``survey`` to ``out_path``; return provenance.

    ``bands``: the band names mapped to R, G, B. ``percentiles_json``: the survey's
    ``write_percentiles`` file. ``crop``: authors_arcsinh mode only, the central pixels kept
    before zooming to 96 px (None: no crop or zoom). Reads and writes ``chunk_size`` images at
    a time.
    """
    if mode not in MODES:
        raise ValueError(f"unknown preprocessing mode {mode!r}; expected one of {list(MODES)}")
    if percentiles_json is None:
        raise ValueError(f"mode {mode!r} needs percentiles_json (from write_percentiles)")
    if mode == "paper" and crop is not None:
        raise ValueError("crop is for mode 'authors_arcsinh' only")
    prov = {"source": str(crossmatch_path), "survey": survey, "mode": mode, "bands_rgb": list(bands), "crop": crop}
    dropped = {r: 0 for r in REASONS}
    examples: dict[str, list[str]] = {r: [] for r in REASONS}
    n_filled = 0
    validate_crossmatch(crossmatch_path)
    with open_h5(crossmatch_path) as f:
        group = _survey_group(f, crossmatch_path, survey, IMAGE)
        idx = _band_indices(group, crossmatch_path, survey, bands)
        low, high, rec = read_percentiles(percentiles_json, survey, bands)
        if rec.get("crop") != crop:
            raise SchemaError(f"{percentiles_json}: percentiles were computed with crop {rec.get('crop')}, "
                              f"the images are preprocessed with crop {crop}")
        prov["percentiles"] = {"file": str(percentiles_json), "percentiles": rec["percentiles"],
                               "low": low.tolist(), "high": high.tolist(), "n_used": rec.get("n_used")}
        flux = group["flux"]
        ids = as_str_ids(f["object_id"][:])
        n, _, h, w = flux.shape
        if crop is not None:
            h = w = ZOOMED_SIDE
        kept = np.zeros(n, bool)
        with preprocessed_writer(out_path, {"data": ((3, h, w), np.uint8)}) as writer:
            for a, b in _chunks(n, chunk_size):
                rgb, reason, filled = rescale_images(flux[a:b][:, idx], mode=mode, low=low, high=high, crop=crop)
                n_filled += filled
                _count_drops(reason, ids[a:b], dropped, examples)
                kept[a:b] = reason == ""
                writer.append(ids[a:b][kept[a:b]], data=rgb[kept[a:b]])
            _refuse_empty(crossmatch_path, survey, "images", n, dropped, examples)
            prov.update(n_input=n, n_written=int(kept.sum()), dropped=dropped, dropped_examples=examples,
                        nonfinite_pixels_filled=n_filled)
            writer.provenance = prov
    log.info("%s/%s -> %s: wrote %d of %d images (mode %s, bands %s); dropped %s; filled %d non-finite pixels",
             crossmatch_path, survey, out_path, prov["n_written"], n, mode, list(bands), dropped, n_filled)
    return prov


def preprocess_flux(crossmatch_path, survey: str, out_path, *, chunk_size: int = 256) -> dict:
    """Write the raw fluxes of every band of ``survey`` (N_kept, B, H, W) float32 to ``out_path``.

    For models that take fluxes themselves (AION, AstroCLIP). Fluxes are converted to the
    survey's unit (``Survey.zero_point``, what the models were trained on) when the crossmatch
    declares another ``zero_point`` (the simulation writes nanomaggies). Images with a band that
    is all NaN or all zero are dropped (as for RGB, counted with examples); other non-finite
    pixels become 0 (the codecs cannot take NaN) and are counted. Provenance names the survey,
    the bands and the zero point.
    """
    validate_crossmatch(crossmatch_path)
    dropped = {r: 0 for r in REASONS[:2]}
    examples: dict[str, list[str]] = {r: [] for r in dropped}
    n_filled = 0
    with open_h5(crossmatch_path) as f:
        group = _survey_group(f, crossmatch_path, survey, IMAGE)
        bands = [str(b) for b in group.attrs.get("bands", get_survey(survey).bands)]
        zero_point, scale = _flux_scale(group.attrs.get("zero_point"), get_survey(survey).zero_point)
        flux, ids = group["flux"], as_str_ids(f["object_id"][:])
        n, n_bands, h, w = flux.shape
        kept = np.zeros(n, bool)
        with preprocessed_writer(out_path, {"data": ((n_bands, h, w), np.float32)}) as writer:
            for a, b in _chunks(n, chunk_size):
                x = np.asarray(flux[a:b], dtype=np.float32)
                reason = _degenerate(x)
                x *= np.float32(scale)
                _count_drops(reason, ids[a:b], dropped, examples)
                kept[a:b] = reason == ""
                x = x[kept[a:b]]
                bad = ~np.isfinite(x)
                n_filled += int(bad.sum())
                writer.append(ids[a:b][kept[a:b]], data=np.where(bad, np.float32(0), x))
            _refuse_empty(crossmatch_path, survey, "images", n, dropped, examples)
            writer.provenance = {"source": str(crossmatch_path), "survey": survey, "bands": bands, "kind": "flux",
                                 "zero_point": zero_point, "flux_scaled_by": scale,
                                 "pixel_scale": _float_or_none(group.attrs.get("pixel_scale")), "n_input": n,
                                 "n_written": int(kept.sum()), "dropped": dropped, "dropped_examples": examples,
                                 "nonfinite_pixels_filled": n_filled}
            prov = writer.provenance
    log.info("%s/%s -> %s: wrote raw fluxes of %d of %d images (bands %s); dropped %s; set %d non-finite pixels to 0",
             crossmatch_path, survey, out_path, prov["n_written"], n, bands, dropped, n_filled)
    return prov


def _flux_scale(declared, survey_zp) -> tuple[float | None, float]:
    """(zero point of the written fluxes, factor applied): the survey's unit where both are known."""
    if declared is None or survey_zp is None:
        return _float_or_none(survey_zp if declared is None else declared), 1.0
    return float(survey_zp), flux_factor(declared, survey_zp)


def _float_or_none(x) -> float | None:
    return None if x is None else float(x)


def _refuse_empty(path, survey: str, what: str, n: int, dropped: dict, examples: dict) -> None:
    """An output with no object left is an error (wrong grid, bands, units...), not a result."""
    if n and sum(dropped.values()) == n:
        shown = {r: e for r, e in examples.items() if e}
        raise SchemaError(f"{path}: all {n} '{survey}' {what} were dropped ({dropped}, e.g. object_id "
                          f"{shown}); nothing left to write")


def _count_drops(reason: np.ndarray, ids: np.ndarray, dropped: dict, examples: dict) -> None:
    for r in dropped:
        hit = ids[reason == r]
        dropped[r] += len(hit)
        examples[r] += hit[:max(0, _EXAMPLES - len(examples[r]))].tolist()


# ---- spectra -------------------------------------------------------------------------------------
def preprocess_spectra(crossmatch_path, survey: str, out_path, *, resample_off_grid: bool | None = None,
                       chunk_size: int = 512) -> dict:
    """Write spectra of ``survey`` on the DESI grid: data (N_kept, 7781) float32, ivar, mask.

    Rows already on the DESI grid pass through (values unchanged but non-finite flux, set to 0);
    other rows are resampled flux-conservingly
    (``samesky.spectra``), one overlap matrix per distinct input grid. For DESI an off-grid row
    is an error unless ``resample_off_grid`` is True; for other surveys resampling is the point
    (default True). A padded tail (MMU's SDSS builder pads each file's rows to its longest with
    lambda = -1; our ragged rows carry NaN) is dropped before resampling and counted
    (``padding_pixels``). Non-finite flux is masked and counted; masked pixels have ivar 0; spectra
    with no unmasked pixel left (``no_valid_pixels``) or whose unmasked flux is all 0
    (``all_zero``: no signal, and identical embeddings) are dropped and counted. If every
    spectrum is dropped, nothing is written and a SchemaError says why.
    """
    if resample_off_grid is None:
        resample_off_grid = survey != "desi"
    counts = {"passed_through": 0, "resampled": 0, "nonfinite_flux_pixels": 0, "spectra_with_nonfinite_flux": 0,
              "padding_pixels": 0, "spectra_with_padding": 0, "distinct_input_grids": 0}
    dropped = {"no_valid_pixels": 0, "all_zero": 0}
    examples: dict[str, list[str]] = {"no_valid_pixels": [], "all_zero": []}
    grids: set[bytes] = set()
    n_out = len(DESI_WAVELENGTH)
    validate_crossmatch(crossmatch_path)
    with open_h5(crossmatch_path) as f:
        group = _survey_group(f, crossmatch_path, survey, SPECTRUM)
        for key in ("ivar", "mask", "wavelength"):
            if key not in group:
                raise SchemaError(f"{crossmatch_path}: missing dataset '{survey}/{key}'")
        flux_ds, ivar_ds, mask_ds, wave_ds = (group[k] for k in ("flux", "ivar", "mask", "wavelength"))
        ids = as_str_ids(f["object_id"][:])
        n = flux_ds.shape[0]
        shared_wave = wave_ds[:] if wave_ds.ndim == 1 else None
        kept = np.zeros(n, bool)
        rows = {"data": ((n_out,), np.float32), "ivar": ((n_out,), np.float32), "mask": ((n_out,), bool)}
        with preprocessed_writer(out_path, rows) as writer:
            for a, b in _chunks(n, chunk_size):
                flux, ivar, mask = flux_ds[a:b], ivar_ds[a:b], mask_ds[a:b].astype(bool)
                wave = np.broadcast_to(shared_wave, flux.shape) if shared_wave is not None else wave_ds[a:b]
                on_grid = np.isfinite(wave) & (wave > 0)  # padding: lambda <= 0 (MMU SDSS) or NaN (ragged rows)
                pad = ~on_grid
                counts["padding_pixels"] += int(pad.sum())
                counts["spectra_with_padding"] += int(pad.any(axis=1).sum())
                nonfinite = ~np.isfinite(flux) & on_grid
                counts["nonfinite_flux_pixels"] += int(nonfinite.sum())
                counts["spectra_with_nonfinite_flux"] += int(nonfinite.any(axis=1).sum())
                out = _spectra_on_desi_grid(flux, ivar, mask, wave, ids[a:b], crossmatch_path, survey,
                                            resample_off_grid, grids, counts)
                signal = ((out[0] != 0) & ~out[2]).any(axis=1)
                reason = np.where(out[2].all(axis=1), "no_valid_pixels", np.where(signal, "", "all_zero"))
                _count_drops(reason, ids[a:b], dropped, examples)
                kept[a:b] = reason == ""
                k = kept[a:b]
                writer.append(ids[a:b][k], data=out[0][k], ivar=out[1][k], mask=out[2][k])
            counts["distinct_input_grids"] = len(grids)
            _refuse_empty(crossmatch_path, survey, "spectra", n, dropped, examples)
            prov = {"source": str(crossmatch_path), "survey": survey, "grid": "desi", "n_input": n,
                    "n_written": int(kept.sum()), "dropped": dropped, "dropped_examples": examples, **counts,
                    "method": "pass-through on the DESI grid; otherwise flux-conserving resampling "
                              "(specutils FluxConservingResampler semantics, samesky.spectra)"}
            writer.provenance = prov
    log.info("%s/%s -> %s: wrote %d of %d spectra (%d passed through, %d resampled from %d grids); dropped %s; "
             "%d non-finite flux pixels in %d spectra masked; %d padding pixels (lambda <= 0 or NaN) in %d spectra "
             "dropped before resampling", crossmatch_path, survey, out_path, prov["n_written"],
             n, counts["passed_through"], counts["resampled"], len(grids), dropped, counts["nonfinite_flux_pixels"],
             counts["spectra_with_nonfinite_flux"], counts["padding_pixels"], counts["spectra_with_padding"])
    return prov


def _spectra_on_desi_grid(flux, ivar, mask, wave, ids, path, survey, resample_off_grid, grids, counts):
    """(flux, ivar, mask) of a chunk on the DESI grid; rows grouped by their input grid."""
    n = len(flux)
    out_flux = np.zeros((n, len(DESI_WAVELENGTH)), np.float32)
    out_ivar = np.zeros_like(out_flux)
    out_mask = np.ones(out_flux.shape, bool)
    groups: dict[tuple[bytes, bytes], list[int]] = {}
    for i in range(n):
        cols = np.isfinite(wave[i]) & (wave[i] > 0)
        if cols.sum() < 2:
            continue  # nothing to place on a grid: stays fully masked, dropped by the caller
        if not cols[:cols.sum()].all():
            raise SchemaError(f"{path}: '{survey}/wavelength' of object_id {str(ids[i])!r} has padding (lambda <= 0 "
                              f"or NaN) before its last valid pixel; only a padded tail can be dropped")
        groups.setdefault((np.asarray(wave[i][cols], np.float64).tobytes(), cols.tobytes()), []).append(i)
    for key, rows in groups.items():
        w = np.frombuffer(key[0], np.float64)
        cols = np.frombuffer(key[1], bool)
        f, iv, m = flux[rows][:, cols], ivar[rows][:, cols], mask[rows][:, cols]
        if spectra.on_desi_grid(w):
            f, iv, good = spectra.clean_pixels(f, iv, m)
            out_flux[rows], out_ivar[rows], out_mask[rows] = f, iv, ~good
            counts["passed_through"] += len(rows)
            continue
        if not resample_off_grid:
            raise SchemaError(f"{path}: '{survey}/wavelength' of object_id {str(ids[rows[0]])!r} is not the DESI grid "
                              f"({len(w)} pixels, {w[0]:.2f}-{w[-1]:.2f} A; expected {len(DESI_WAVELENGTH)} pixels "
                              f"3600-9824 A at 0.8 A); pass resample_off_grid=True to resample such rows")
        try:
            matrix = spectra.overlap_matrix(w)
        except ValueError as err:
            raise SchemaError(f"{path}: '{survey}/wavelength' of object_id {str(ids[rows[0]])!r}: {err}") from None
        out_flux[rows], out_ivar[rows], out_mask[rows] = spectra.resample(f, iv, w, m, matrix=matrix)
        counts["resampled"] += len(rows)
        grids.add(key[0])
    out_mask |= out_ivar == 0  # ivar too small for float32 counts as none
    return out_flux, out_ivar, out_mask
