"""Multimodal Universe (MMU) crossmatch snapshots: the columns its builders declare, and a writer.

``builder_features(survey)`` is, field by field and in order, what each MMU builder's ``_info``
declares (MultimodalUniverse/MultimodalUniverse at 2dcff3d: ``scripts/hsc/hsc.py`` L80-186,
``scripts/legacysurvey/legacysurvey.py`` L73-153, ``scripts/jwst/jwst.py`` L117-230,
``scripts/desi/desi.py`` L61-127, ``scripts/sdss/sdss.py`` L98-208); tests compare it with the
features the builders themselves produce (``tests/golden/mmu_features.py``).

``crossmatch_features(layout)``, for the layouts of ``surveys.LAYOUTS`` that MMU built
(``Layout.mmu``): the DESI/SDSS-HSC sets are ``cross_match_datasets(left, hsc)``
(``mmu/utils.py`` L139-144: the left example updated by the right one, so ``object_id`` is HSC's,
and the HSC image column is ``image``); the JWST/Legacy-HSC sets carry every column of each
parent prefixed by its survey (``hsc_image``, ``hsc_object_id``, ``legacysurvey_object_id``, ...;
the image and id names are the published ones, the prefixing of the other columns is inferred).

The one simulable layout MMU did not build, COSMOS-Web's, has 8-bit RGB images (``datasets.Image``)
and its ``Layout.catalogue`` columns.

``write_snapshot`` writes rows as a downloaded dataset snapshot, ``<dir>/data/train-*.parquet``,
which :func:`samesky.ingest.ingest_hf` reads like the hub data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from .surveys import DESI_WAVELENGTH, get_layout, get_survey

# Band names (Survey.archive_bands) and cutout sizes (Survey.shape) are the surveys' own.
DESI_LENGTH = len(DESI_WAVELENGTH)  # 7781, scripts/desi/desi.py L100

HSC_FLOAT = (
    [f"a_{b}" for b in "grizy"] + [f"{b}_extendedness_value" for b in "grizy"]
    + [f"{b}_cmodel_{k}" for b in "grizy" for k in ("mag", "magerr")]
    + [f"{b}_sdssshape_psf_shape{k}" for b in "grizy" for k in ("11", "22", "12")]
    + [f"{b}_sdssshape_shape{k}" for b in "grizy" for k in ("11", "22", "12")])
LEGACY_FLOAT = ["EBV", "FLUX_G", "FLUX_R", "FLUX_I", "FLUX_Z", "FLUX_W1", "FLUX_W2", "FLUX_W3", "FLUX_W4",
                "SHAPE_R", "SHAPE_E1", "SHAPE_E2"]
LEGACY_CATALOG = ["FLUX_G", "FLUX_R", "FLUX_I", "FLUX_Z", "TYPE", "SHAPE_R", "SHAPE_E1", "SHAPE_E2", "X", "Y"]
JWST_FLOAT = ["mag_auto", "flux_radius", "flux_auto", "fluxerr_auto", "cxx_image", "cyy_image", "cxy_image"]
DESI_FLOAT = ["Z", "ZERR", "EBV", "FLUX_G", "FLUX_R", "FLUX_Z", "FLUX_IVAR_G", "FLUX_IVAR_R", "FLUX_IVAR_Z",
              "FIBERFLUX_G", "FIBERFLUX_R", "FIBERFLUX_Z", "FIBERTOTFLUX_G", "FIBERTOTFLUX_R", "FIBERTOTFLUX_Z"]
DESI_BOOL = ["ZWARN"]
SDSS_FLOAT = ["VDISP", "VDISP_ERR", "Z", "Z_ERR"]
SDSS_BOOL = ["ZWARNING"]
SDSS_FLUX = [f"{f}_{b}" for f in ("SPECTROFLUX", "SPECTROFLUX_IVAR", "SPECTROSYNFLUX", "SPECTROSYNFLUX_IVAR")
             for b in "UGRIZ"]

def _size(survey: str) -> int:
    """The side of a survey's square cutouts (``Survey.shape``), as its builder declares the arrays."""
    height, width = get_survey(survey).shape
    assert height == width, survey
    return height


def _image_feature(size: int, mask_before_ivar: bool = False):
    from datasets import Array2D, Sequence, Value

    arrays = {"flux": Array2D((size, size), "float32"), "ivar": Array2D((size, size), "float32"),
              "mask": Array2D((size, size), "bool")}
    order = ("flux", "mask", "ivar") if mask_before_ivar else ("flux", "ivar", "mask")
    return Sequence(feature={"band": Value("string"), **{k: arrays[k] for k in order},
                             "psf_fwhm": Value("float32"), "scale": Value("float32")})


def _spectrum_feature(length: int | None):
    from datasets import Sequence, Value

    kw = {} if length is None else {"length": length}
    return Sequence(feature={"flux": Value("float32"), "ivar": Value("float32"), "lsf_sigma": Value("float32"),
                             "lambda": Value("float32"), "mask": Value("bool")}, **kw)


def builder_features(survey: str) -> dict:
    """The features one MMU builder declares, in its order (a plain dict of datasets features)."""
    from datasets import Image, Sequence, Value

    f32 = Value("float32")
    if survey == "hsc":
        return {"image": _image_feature(_size(survey)), **{k: f32 for k in HSC_FLOAT}, "object_id": Value("string")}
    if survey == "legacysurvey":
        return {"image": _image_feature(_size(survey), mask_before_ivar=True), "blobmodel": Image(), "rgb": Image(),
                "object_mask": Image(), "catalog": Sequence(feature={k: f32 for k in LEGACY_CATALOG}),
                **{k: f32 for k in LEGACY_FLOAT}, "object_id": Value("string")}
    if survey == "jwst":
        return {"image": _image_feature(_size(survey)), **{k: f32 for k in JWST_FLOAT}, "object_id": Value("string")}
    if survey == "desi":
        return {"spectrum": _spectrum_feature(DESI_LENGTH), **{k: f32 for k in DESI_FLOAT},
                **{k: Value("bool") for k in DESI_BOOL}, "object_id": Value("string")}
    if survey == "sdss":
        return {"spectrum": _spectrum_feature(None), **{k: f32 for k in SDSS_FLOAT},
                **{k: Value("bool") for k in SDSS_BOOL}, **{k: f32 for k in SDSS_FLUX}, "object_id": Value("string")}
    raise KeyError(f"no Multimodal Universe builder for survey {survey!r}; known: hsc, legacysurvey, jwst, desi, sdss")


def float_columns(survey: str) -> list[str]:
    """The scalar float32 catalogue columns of a survey's builder, in its order."""
    from datasets import Value

    return [k for k, v in builder_features(survey).items() if v == Value("float32")]


def crossmatch_features(layout: str):
    """The ``datasets.Features`` of one simulable crossmatch layout (see the module docstring); of
    one MMU did not build, its image columns (``datasets.Image``) then its ``catalogue``."""
    from datasets import Features, Image, Value

    lay = get_layout(layout, simulable=True)
    if lay.mmu is None:
        return Features({**{lay.columns[s][0]: Image() for s in lay.surveys},
                         **{k: Value(dtype) for k, dtype in lay.catalogue.items()}})
    kind, (left, right) = _layout(layout)
    if kind == "cross_match_datasets":
        merged = dict(builder_features(left))
        merged.update(builder_features(right))
        return Features(merged)
    return Features({f"{s}_{k}": v for s in (left, right) for k, v in builder_features(s).items()})


def _layout(layout: str) -> tuple[str, tuple[str, ...]]:
    """How MMU built ``layout``, and its two parent surveys in order."""
    lay = get_layout(layout, mmu=True)
    return lay.mmu, lay.surveys


def crossmatch_row(layout: str, parts: Mapping[str, Mapping]) -> dict:
    """One crossmatch row from each parent survey's example (``{survey: builder example}``)."""
    kind, (left, right) = _layout(layout)
    if kind == "cross_match_datasets":
        row = dict(parts[left])
        row.update(parts[right])
        return row
    return {f"{s}_{k}": v for s in (left, right) for k, v in parts[s].items()}


def write_snapshot(directory, layout: str, rows: Iterable[dict], *, rows_per_file: int = 256) -> list[Path]:
    """Write rows (in ``crossmatch_features(layout)``) as ``<directory>/data/train-NNNNN-of-MMMMM.parquet``.

    Files are written one block of ``rows_per_file`` rows at a time, each with the features in
    its schema metadata, as the hub's parquet exports are. Returns the files written.
    """
    from datasets.arrow_writer import ParquetWriter

    features = crossmatch_features(layout)
    data = Path(directory) / "data"
    data.mkdir(parents=True, exist_ok=True)
    for old in data.glob("train-*.parquet"):
        old.unlink()
    tmp: list[Path] = []
    block: list[dict] = []

    def flush():  # datasets' own writer, as the builders write (a Dataset would first hash every row)
        path = data / f".part-{len(tmp):05d}.parquet"
        with ParquetWriter(path=str(path), features=features, writer_batch_size=len(block),
                           use_content_defined_chunking=False, write_page_index=False) as writer:
            writer.write_batch({key: [row[key] for row in block] for key in features})
            writer.finalize()
        tmp.append(path)
        block.clear()

    for row in rows:
        # a list of per-element structs (as builders yield images) is stored as a struct of lists
        block.append({k: {f: [e[f] for e in v] for f in features[k]} if isinstance(features[k], dict)
                      and isinstance(v, list) else v for k, v in row.items()})
        if len(block) >= rows_per_file:
            flush()
    if block:
        flush()
    if not tmp:
        raise ValueError(f"{directory}: no rows to write")
    out = [data / f"train-{i:05d}-of-{len(tmp):05d}.parquet" for i in range(len(tmp))]
    for a, b in zip(tmp, out):
        a.rename(b)
    return out
