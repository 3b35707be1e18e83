"""Crossmatch files from the Multimodal Universe crossmatches on the Hugging Face Hub, or local copies.

``ingest_hf`` is the only code that touches the network: the Snakemake localrule runs it on a
login node, and compute jobs read the crossmatch file it writes. Rows are streamed
(``datasets.load_dataset(..., streaming=True)``) and written in chunks, so a dataset is never
held in memory; object ids and coordinates are kept, and so is every scalar catalogue column the
table declares (e.g. DESI's ``Z``, COSMOS-Web's ``lp_mass``), as ``/properties/<column>`` for the
probes. Images stored as PIL images (COSMOS-Web's, encoded in the table) are decoded here.

A crossmatch's sides may also come from separately stored tables (one per survey, e.g. spectra
published apart from the images): they are spooled one by one, then re-aligned by object id; an
id present on one side only is an error, never a silent row-order join.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from contextlib import ExitStack
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import h5py
import numpy as np

from .schema import CROSSMATCH_SCHEMA, STR, SchemaError, as_str_ids, atomic_path, check_unique_ids, validate_crossmatch
from .surveys import DESI_WAVELENGTH, IMAGE, LAYOUTS, Layout, get_layout, get_survey, layout_for_surveys

log = logging.getLogger(__name__)

_WAVELENGTH_KEYS = ("lambda", "wavelength", "wave")


def ingest_hf(dataset_id: str | Mapping[str, str], out_path, *, name: str, surveys: Sequence[str],
              streaming: bool = True, limit: int | None = None, cache_dir=None, layout: str | None = None,
              id_column: str | Mapping[str, str] | None = None, split: str = "train", chunk_size: int = 64,
              image_ivar_mask: bool = False, drop_flat: Mapping[str, str] | None = None) -> dict:
    """Write the crossmatch file ``out_path`` (schema ``samesky-crossmatch/1``); return a summary.

    ``dataset_id``: a hub id (e.g. ``Smith42/desi_hsc_crossmatched``) or a local path (a
    ``save_to_disk`` directory, a parquet/arrow file, or a directory of them) holding all
    surveys; or ``{survey: id_or_path}`` when the sides are stored separately (joined by id).
    ``layout``: the ``surveys.LAYOUTS`` entry describing the columns (default: ``dataset_id``'s own,
    else the entry whose surveys are ``surveys``). ``id_column``: the crossmatch-level id
    column (per survey for separate sides; default: the layout's). ``limit``: keep the first
    rows only (of the first survey's side). ``image_ivar_mask``: also keep image ivar/mask.
    ``drop_flat``: {survey: band}; a row whose band has equal 5th and 99th flux percentiles
    (``numpy.nanpercentile``) is dropped and counted, as the paper's JWST filter on f200w
    (UniverseTBD/platonic-universe ``src/pu/experiments.py`` L42-51; its saved statistics keep
    1,496 of 1,667 JWST-HSC rows). ``limit`` counts kept rows.
    """
    surveys = list(surveys)
    for s in surveys:
        get_survey(s)
    lay = _layout(dataset_id, layout, surveys)
    sources = dict(dataset_id) if isinstance(dataset_id, Mapping) else {s: dataset_id for s in surveys}
    if sorted(sources) != sorted(surveys):
        raise ValueError(f"sources are given for {sorted(sources)}, but the crossmatch has surveys {surveys}")
    opts = dict(streaming=streaming, cache_dir=cache_dir, split=split, chunk_size=chunk_size,
                image_ivar_mask=image_ivar_mask)
    with atomic_path(out_path) as tmp:
        flat = {s: get_survey(s).band_index(b) for s, b in (drop_flat or {}).items()}
        if len(set(sources.values())) == 1:
            ids_col = id_column if isinstance(id_column, str) or id_column is None else id_column[surveys[0]]
            _spool_table(sources[surveys[0]], tmp, name, surveys, lay, ids_col, limit=limit, drop_flat=flat, **opts)
        elif flat:
            raise ValueError("drop_flat needs the surveys in one table (the row is dropped for both)")
        else:
            _ingest_sides(sources, tmp, name, surveys, lay, id_column, limit, opts)
        summary = validate_crossmatch(tmp)
    log.info("ingested %s -> %s: %d objects, surveys %s", dataset_id, out_path, summary["n"], summary["surveys"])
    return summary


def _layout(dataset_id, layout: str | None, surveys: list[str]) -> Layout:
    if layout is None and isinstance(dataset_id, str) and dataset_id in LAYOUTS:
        layout = dataset_id
    if layout is None:
        layout = layout_for_surveys(surveys)
        if layout is None:
            raise ValueError(f"no column layout for surveys {surveys}; pass layout= one of {sorted(LAYOUTS)}")
    try:
        lay = get_layout(layout)
    except KeyError as e:
        raise ValueError(e.args[0]) from None
    missing = [s for s in surveys if s not in lay.columns]
    if missing:
        raise ValueError(f"layout {layout!r} has no column for survey(s) {missing}")
    return lay


# ---- reading tables ------------------------------------------------------------------------
def _open_table(source: str, *, split: str, streaming: bool, cache_dir):
    """A datasets table (streamed or not) from a hub id or a local path."""
    import datasets

    path = Path(source)
    if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split]
        if streaming:
            ds = ds.to_iterable_dataset()
    elif path.is_file():
        builder = {".parquet": "parquet", ".arrow": "arrow", ".json": "json", ".jsonl": "json"}.get(path.suffix)
        if builder is None:
            raise ValueError(f"{source}: unsupported file type {path.suffix!r} (use parquet, arrow or json)")
        ds = datasets.load_dataset(builder, data_files=str(path), split=split, streaming=streaming, cache_dir=cache_dir)
    else:  # a directory of data files, or a hub id
        ds = datasets.load_dataset(str(source), split=split, streaming=streaming, cache_dir=cache_dir)
    return ds


def _find(columns: Sequence[str], candidates: Iterable[str], what: str, source, required: bool = True) -> str | None:
    for c in candidates:
        if c in columns:
            return c
    if required:
        raise SchemaError(f"{source}: no column for {what} (tried {list(candidates)}); columns are {list(columns)}")
    return None


def _band_name(band) -> str:
    """'HSC-G' -> 'g', 'DES-Z' -> 'z', 'F444W' -> 'f444w': the part after the last '-', '_' or space."""
    band = band.decode() if isinstance(band, bytes) else str(band)
    return re.split(r"[-_ ]", band.strip())[-1].lower()


def _stack(value, dtype) -> np.ndarray:
    """A per-band list of 2D arrays (lists, or an object array of arrays) as one array."""
    arr = np.asarray(value)
    if arr.dtype == object:
        arr = np.stack([np.asarray(v) for v in value])
    return arr.astype(dtype, copy=False)


def _struct(cell, where: str) -> dict:
    """A struct cell as {key: value}; a list of per-element structs becomes {key: [values]}."""
    if isinstance(cell, Mapping):
        return dict(cell)
    if isinstance(cell, (list, tuple, np.ndarray)) and len(cell) and isinstance(cell[0], Mapping):
        return {k: [c[k] for c in cell] for k in cell[0]}
    raise SchemaError(f"{where}: expected a struct with 'flux', got {type(cell).__name__}")


def image_arrays(cell, survey: str, where: str, ivar_mask: bool = False) -> dict[str, np.ndarray]:
    """One image cell as {'flux': (B, H, W) float32 in the survey's band order[, 'ivar', 'mask']}.

    Bands are matched by name when the cell names them ('HSC-G' is band 'g'); otherwise the
    cell must hold exactly the survey's bands in the survey's order.
    """
    bands = get_survey(survey).bands
    if _is_encoded_image(cell):
        return {"flux": _decode_rgb(cell, survey, where)}
    cell = _struct(cell, where)
    if "flux" not in cell:
        raise SchemaError(f"{where}: image struct has no 'flux' (keys {sorted(cell)})")
    flux = _stack(cell["flux"], np.float32)
    if flux.ndim != 3:
        raise SchemaError(f"{where}: 'flux' has shape {flux.shape}, expected (bands, H, W)")
    if cell.get("band") is not None:
        names = [_band_name(b) for b in cell["band"]]
        missing = [b for b in bands if b not in names]
        if missing:
            raise SchemaError(f"{where}: no band {missing} among {names} (survey {survey!r} needs {list(bands)})")
        order = [names.index(b) for b in bands]
    elif flux.shape[0] == len(bands):
        order = list(range(len(bands)))
    else:
        raise SchemaError(f"{where}: {flux.shape[0]} unnamed bands, survey {survey!r} has {len(bands)}")
    out = {"flux": flux[order]}
    if ivar_mask:
        for key, dtype in (("ivar", np.float32), ("mask", bool)):
            if cell.get(key) is not None:
                out[key] = _stack(cell[key], dtype)[order]
    return out


def _is_encoded_image(cell) -> bool:
    """A ``datasets.Image`` cell as Arrow holds it ({'bytes', 'path'}), or a decoded PIL image."""
    from PIL import Image

    return isinstance(cell, Image.Image) or (isinstance(cell, Mapping) and "bytes" in cell and "flux" not in cell)


def _decode_rgb(cell, survey: str, where: str) -> np.ndarray:
    """An 8-bit RGB image (a PIL image, or its encoded bytes) as (3, H, W) float32 values 0-255,
    the channels a composite survey's bands (``Survey.composite_of``)."""
    import io

    from PIL import Image

    bands = get_survey(survey).bands
    if len(bands) != 3:
        raise SchemaError(f"{where}: an RGB image, but survey {survey!r} has bands {list(bands)} (an RGB "
                          f"survey has three, its channels)")
    if isinstance(cell, Mapping):
        if cell.get("bytes") is None:
            raise SchemaError(f"{where}: image cell has no bytes (path {cell.get('path')!r} is not read)")
        cell = Image.open(io.BytesIO(cell["bytes"]))
    if cell.mode != "RGB":
        raise SchemaError(f"{where}: image mode {cell.mode!r}, expected 8-bit 'RGB'")
    return np.moveaxis(np.asarray(cell, dtype=np.uint8), -1, 0).astype(np.float32)


def spectrum_arrays(cell, where: str) -> dict[str, np.ndarray]:
    """One spectrum cell as {'flux', 'ivar', 'mask', 'wavelength'} (L,) arrays; no mask = none bad."""
    cell = _struct(cell, where)
    wkey = _find(list(cell), _WAVELENGTH_KEYS, "the wavelength", where)
    missing = [k for k in ("flux", "ivar") if k not in cell]
    if missing:
        raise SchemaError(f"{where}: spectrum struct has no {missing} (keys {sorted(cell)})")
    out = {"flux": np.asarray(cell["flux"], np.float32).ravel(), "ivar": np.asarray(cell["ivar"], np.float32).ravel(),
           "wavelength": np.asarray(cell[wkey], np.float64).ravel()}
    mask = cell.get("mask")
    out["mask"] = np.zeros(len(out["flux"]), bool) if mask is None else np.asarray(mask, bool).ravel()
    if len({len(v) for v in out.values()}) != 1:
        raise SchemaError(f"{where}: spectrum arrays differ in length {({k: len(v) for k, v in out.items()})}")
    return out


# ---- writing crossmatch files in chunks ----------------------------------------------------------
_FILL = {"flux": 0.0, "ivar": 0.0, "mask": True, "wavelength": np.nan}


class _Writer:
    """Appends rows to an open crossmatch file, ``chunk_size`` rows per write.

    Spectra may differ in length (SDSS): rows are padded (flux 0, ivar 0, mask True, wavelength
    NaN). A wavelength grid shared by all rows is stored once as (L,); the first row with
    another grid switches the survey to per-row (N, L) wavelengths.
    """

    def __init__(self, f: h5py.File, surveys: list[str], chunk_size: int):
        self.f, self.surveys, self.chunk_size = f, surveys, chunk_size
        self.rows: list[dict] = []
        self.n = 0
        self.shared_wave: dict[str, np.ndarray | None] = {}

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.chunk_size:
            self.flush()

    def _append(self, key: str, values: np.ndarray, start: int, fill=None) -> None:
        """Write rows at ``start``; blocks with a ``fill`` value (spectra) may be wider than before."""
        ragged = fill is not None
        tail = values.shape[1:]
        if key not in self.f:
            chunks = (4096,) if values.ndim == 1 else (1, 1024) if ragged else (1,) + tail
            self.f.create_dataset(key, shape=(0,) + tail, maxshape=(None,) * values.ndim if ragged else (None,) + tail,
                                  chunks=chunks, dtype=STR if values.dtype == object else values.dtype, fillvalue=fill)
        ds = self.f[key]
        if not ragged and tail != ds.shape[1:]:
            raise SchemaError(f"{self.f.filename}: {key!r} rows of shape {tail} after rows of shape {ds.shape[1:]}")
        stop = start + len(values)
        shape = (max(ds.shape[0], stop),) + ((max(ds.shape[1], tail[0]),) if ragged else tail)
        if shape != ds.shape:
            ds.resize(shape)
        if ragged:
            ds[start:stop, :tail[0]] = values
        else:
            ds[start:stop] = values

    def flush(self) -> None:
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        self._append("object_id", np.array([r["object_id"] for r in rows], dtype=object), self.n)
        for key in ("ra", "dec"):
            self._append(key, np.array([r[key] for r in rows], np.float64), self.n)
        for key in rows[0].get("properties", {}):
            values = np.array([r["properties"][key] for r in rows])
            self._append(f"properties/{key}", values.astype(object) if values.dtype.kind in "OSU" else values, self.n)
        for s in self.surveys:
            arrays = [r[s] for r in rows]
            if get_survey(s).modality == IMAGE:
                for key in arrays[0]:
                    if key != "object_id":
                        self._append(f"{s}/{key}", np.stack([a[key] for a in arrays]), self.n)
            else:
                self._append_spectra(s, arrays)
            if "object_id" in arrays[0]:
                self._append(f"{s}/object_id", np.array([a["object_id"] for a in arrays], dtype=object), self.n)
        self.n += len(rows)

    def _append_spectra(self, s: str, arrays: list[dict]) -> None:
        width = max(len(a["flux"]) for a in arrays)
        for key in ("flux", "ivar", "mask"):
            dtype = bool if key == "mask" else np.float32
            block = np.full((len(arrays), width), _FILL[key], dtype)
            for i, a in enumerate(arrays):
                block[i, :len(a[key])] = a[key]
            self._append(f"{s}/{key}", block, self.n, _FILL[key])
        if s not in self.shared_wave:
            self.shared_wave[s] = arrays[0]["wavelength"]
        shared = self.shared_wave[s]
        if shared is not None and all(np.array_equal(a["wavelength"], shared) for a in arrays):
            return
        if shared is not None:  # switch to per-row wavelengths, back-filling the rows so far
            self.shared_wave[s] = None
            if self.n:
                self._append(f"{s}/wavelength", np.broadcast_to(shared, (self.n, len(shared))), 0, np.nan)
        block = np.full((len(arrays), width), np.nan)
        for i, a in enumerate(arrays):
            block[i, :len(a["wavelength"])] = a["wavelength"]
        self._append(f"{s}/wavelength", block, self.n, np.nan)

    def close(self, name: str, provenance: Mapping) -> None:
        self.flush()
        if not self.n:
            raise SchemaError(f"{provenance.get('source')}: no rows to write")
        for s, wave in self.shared_wave.items():
            if wave is not None:
                self.f.create_dataset(f"{s}/wavelength", data=wave)
        check_unique_ids(as_str_ids(self.f["object_id"][:]), str(self.f.filename))
        self.f.attrs["schema"] = CROSSMATCH_SCHEMA
        self.f.attrs["name"] = name
        self.f.attrs["surveys"] = self.surveys
        self.f.attrs["provenance"] = json.dumps(dict(provenance), sort_keys=True, default=str)
        for s in self.surveys:
            survey = get_survey(s)
            g = self.f.require_group(s)
            if survey.modality == IMAGE:
                g.attrs["bands"] = list(survey.bands)
                g.attrs["pixel_scale"] = survey.pixel_scale
                g.attrs["pixel_scales"] = [survey.band_scale(b) for b in survey.bands]


def _spool_table(source: str, path, name: str, surveys: list[str], lay: Layout, id_column: str | None, *,
                 limit: int | None, streaming: bool, cache_dir, split: str, chunk_size: int,
                 image_ivar_mask: bool, keep_ids: set[str] | None = None, drop_flat: Mapping[str, int] | None = None
                 ) -> None:
    """Stream one table into a crossmatch file at ``path`` (only rows in ``keep_ids`` when given;
    none whose ``drop_flat`` {survey: band index} image has equal 5th and 99th percentiles)."""
    ds = _open_table(source, split=split, streaming=streaming, cache_dir=cache_dir)
    columns = list(ds.column_names or next(iter(ds)).keys())
    cols = {s: _find(columns, lay.columns[s], f"survey {s!r}", source) for s in surveys}
    id_cols = [id_column] if id_column else lay.object_id
    # a layout without an id column (COSMOS-Web's): the row number in the table is the id
    id_col = _find(columns, id_cols, "the object id (id_column)", source) if id_cols else None
    radec = {k: _find(columns, getattr(lay, k), k, source, required=False) for k in ("ra", "dec")}
    own_ids = {s: _find(columns, lay.survey_ids.get(s, ()), f"{s} ids", source, required=False) for s in surveys}
    absent = [k for k, c in radec.items() if c is None]
    if absent:  # as in every Multimodal Universe crossmatch: nothing downstream reads coordinates
        log.info("%s: no %s column (tried %s); writing NaN", source, "/".join(absent),
                 [c for k in absent for c in getattr(lay, k)])
    used = sorted({*([id_col] if id_col else []), *cols.values(), *(c for c in radec.values() if c), *(c for c in own_ids.values() if c)})
    props = scalar_columns(ds.features, exclude=used)
    ds = ds.select_columns(used + props).with_format("arrow")
    prov = {"source": str(source), "split": split, "columns": cols, "object_id_column": id_col or "row number",
            "coordinate_columns": radec, "survey_id_columns": own_ids, "property_columns": props}
    seen: set[str] = set()
    duplicates: list[str] = []
    flat: list[str] = []
    with h5py.File(path, "w") as f:
        writer = _Writer(f, surveys, chunk_size)
        rows = (row for batch in ds.iter(batch_size=ROWS_PER_BATCH) for row in arrow_rows(batch, source))
        for number, row in enumerate(rows):
            if limit is not None and writer.n + len(writer.rows) >= limit:
                break
            oid = str(number) if id_col is None else str(as_str_ids([row[id_col]])[0])
            if keep_ids is not None and oid not in keep_ids:
                continue
            if oid in seen:  # a repeated object would be its own nearest neighbour downstream
                duplicates.append(oid)
                continue
            seen.add(oid)
            out = {"object_id": oid, **{k: float(row[c]) if c else np.nan for k, c in radec.items()},
                   "properties": {c: _scalar(row[c]) for c in props}}
            for s in surveys:
                where = f"{source}: column {cols[s]!r} of object_id {oid!r}"
                if get_survey(s).modality == IMAGE:
                    out[s] = image_arrays(row[cols[s]], s, where, image_ivar_mask)
                else:
                    out[s] = spectrum_arrays(row[cols[s]], where)
                if own_ids[s]:
                    out[s]["object_id"] = str(as_str_ids([row[own_ids[s]]])[0])
            if any(_flat(out[s]["flux"][b]) for s, b in (drop_flat or {}).items()):
                flat.append(oid)
                continue
            writer.add(out)
        prov["duplicate_ids_dropped"] = {"n": len(duplicates), "examples": duplicates[:5]}
        prov["flat_rows_dropped"] = {"bands": {s: get_survey(s).bands[b] for s, b in (drop_flat or {}).items()},
                                     "n": len(flat), "examples": flat[:5]}
        writer.close(name, prov)
    if duplicates:
        log.warning("%s: dropped %d rows repeating an earlier object id (first kept), e.g. %s", source,
                    len(duplicates), duplicates[:5])
    if drop_flat:
        log.info("%s: dropped %d rows whose %s band has equal 5th and 99th percentiles, e.g. %s", source, len(flat),
                 prov["flat_rows_dropped"]["bands"], flat[:5])
    log.info("%s: spooled %d rows of %s", source, writer.n, surveys)


# Rows converted from Arrow at a time: a few hundred MB of 5-band 160 x 160 images at most.
ROWS_PER_BATCH = 256


def arrow_rows(table, source) -> Iterator[dict]:
    """The rows of an Arrow batch with the values ``datasets``' numpy format gives (numbers and
    lists of numbers as numpy arrays, images as (bands, H, W), structs as dicts, strings as str),
    converted column by column: the numpy format goes row by row through Python lists, ~25 ms a
    row of two 160 x 160 images with four and five bands (tested equal to it on every layout)."""
    columns = {name: _arrow_block(table.column(name).combine_chunks(), f"{source}: column {name!r}")
               for name in table.column_names}
    for i in range(table.num_rows):
        yield {name: values[i] for name, values in columns.items()}


def _arrow_block(arr, where: str):
    """One value per element of Arrow array ``arr`` (see ``arrow_rows``), as a sequence: an array
    whose first axis is the elements for numbers and fixed-shape arrays, else a list."""
    import pyarrow as pa

    t = arr.type
    if isinstance(t, pa.ExtensionType):
        shape = getattr(t, "shape", (None,))
        if not all(isinstance(d, int) for d in shape):  # e.g. a dynamic first axis: as nested lists
            return _arrow_block(arr.storage, where)
        values = arr.storage
        for _ in shape:  # datasets' ArrayND: nested lists of a fixed shape
            values = values.flatten()
        if arr.null_count or len(values) != len(arr) * math.prod(shape):
            raise SchemaError(f"{where}: {t} cells that are null or not of shape {shape}")
        return values.to_numpy(zero_copy_only=False).reshape(len(arr), *shape)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _arrow_block(arr.flatten(), where)
        offsets = (np.arange(len(arr) + 1) * t.list_size if pa.types.is_fixed_size_list(t)
                   else np.asarray(arr.offsets) - arr.offsets[0].as_py())
        cells = [inner[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    elif pa.types.is_struct(t):
        fields = {t.field(j).name: _arrow_block(child, f"{where}, field {t.field(j).name!r}")
                  for j, child in enumerate(arr.flatten())}
        cells = [{name: values[i] for name, values in fields.items()} for i in range(len(arr))]
    elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return arr.to_numpy(zero_copy_only=False)  # a null number is NaN, as datasets gives it
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        cells = arr.to_pylist()
        if not arr.null_count:
            return np.array(cells, dtype=object)
    else:
        raise SchemaError(f"{where}: Arrow type {t} is not one a crossmatch table holds")
    if arr.null_count:
        cells = [c if ok else None for c, ok in zip(cells, arr.is_valid().to_pylist())]
    return cells


def scalar_columns(features, exclude: Iterable[str] = ()) -> list[str]:
    """The table's scalar catalogue columns (numbers, bools, strings: a ``datasets.Value``), in the
    order declared, less ``exclude`` (ids, coordinates); none when the table declares no features.
    A name may hold letters, digits, '_' and '-' (COSMOS-Web's ``mag_model_hsc-g``)."""
    from datasets import Value

    skip = set(exclude)
    return [name for name, feature in (features or {}).items()
            if isinstance(feature, Value) and name not in skip and re.fullmatch(r"[A-Za-z0-9_-]+", name)]


def _scalar(value):
    """A catalogue cell as a numpy scalar (missing numbers: NaN; missing strings: '')."""
    if value is None:
        return np.nan
    value = np.asarray(value)
    return value.item() if value.dtype.kind not in "OSU" else str(value.item())


def _flat(image: np.ndarray) -> bool:
    """The paper's JWST test: the 5th and 99th percentiles of the band are equal (e.g. a cutout
    mostly off the mosaic, zero-filled)."""
    return bool(np.nanpercentile(image, 5) == np.nanpercentile(image, 99))


# ---- separately stored sides, joined by id ---------------------------------------------------------
def _ingest_sides(sources: Mapping[str, str], out, name: str, surveys: list[str], lay: Layout,
                  id_column, limit: int | None, opts: dict) -> None:
    """Spool each survey's table on its own, then write them re-aligned on the first survey's ids."""
    out = Path(out)
    sides = {s: out.with_name(f".{out.name}.{s}-{os.getpid()}.side.h5") for s in surveys}
    ref = surveys[0]
    try:
        keep = None
        for s in surveys:
            col = id_column.get(s) if isinstance(id_column, Mapping) else id_column
            _spool_table(sources[s], sides[s], name, [s], lay, col, limit=limit if s == ref else None,
                         keep_ids=keep, **opts)
            if s == ref and limit is not None:
                with h5py.File(sides[s], "r") as f:
                    keep = set(as_str_ids(f["object_id"][:]))
        _join(sides, sources, out, name, surveys, opts["chunk_size"])
    finally:
        for p in sides.values():
            p.unlink(missing_ok=True)


def _join(sides: Mapping[str, Path], sources: Mapping[str, str], out: Path, name: str, surveys: list[str],
          chunk_size: int) -> None:
    ref = surveys[0]
    with ExitStack() as stack:
        files = {s: stack.enter_context(h5py.File(p, "r")) for s, p in sides.items()}
        ids = {s: as_str_ids(f["object_id"][:]) for s, f in files.items()}
        positions = {s: _positions(ids[s], ids[ref], s, ref, sources) for s in surveys}
        n = len(ids[ref])
        with h5py.File(out, "w") as f:
            f.create_dataset("object_id", data=ids[ref].astype(object), dtype=STR)
            for key in ("ra", "dec"):
                f.create_dataset(key, data=files[ref][key][:])
            for attr in ("schema", "name"):
                f.attrs[attr] = files[ref].attrs[attr]
            f.attrs["surveys"] = surveys
            f.attrs["provenance"] = json.dumps({s: json.loads(files[s].attrs["provenance"]) for s in surveys}
                                               | {"joined_on": "object_id", "order": ref}, sort_keys=True)
            names = [k for s in surveys for k in files[s].get("properties", {})]
            for s in surveys:
                for key, ds in files[s].get("properties", {}).items():
                    out_key = f"{s}_{key}" if names.count(key) > 1 else key
                    _copy_rows(ds, f.require_group("properties"), out_key, positions[s], n, chunk_size)
            for s in surveys:
                src = files[s][s]
                g = f.create_group(s)
                g.attrs.update(dict(src.attrs))
                for key, ds in src.items():
                    if key == "wavelength" and ds.ndim == 1:
                        g.create_dataset(key, data=ds[:])
                    else:
                        _copy_rows(ds, g, key, positions[s], n, chunk_size)


def _positions(side_ids: np.ndarray, ref_ids: np.ndarray, side: str, ref: str, sources) -> np.ndarray:
    """Row of each reference id in ``side``; unmatched ids on either side are an error."""
    index = {v: i for i, v in enumerate(side_ids)}
    missing = [str(v) for v in ref_ids if v not in index]
    extra = sorted(str(v) for v in set(index) - set(ref_ids.tolist()))
    if missing or extra:
        raise SchemaError(
            f"crossmatch sides do not match by object id: {len(missing)} ids of {ref!r} ({sources[ref]}) are not in "
            f"{side!r} ({sources[side]}), e.g. {missing[:5]}; {len(extra)} ids of {side!r} are not in {ref!r}, "
            f"e.g. {extra[:5]}")
    return np.array([index[v] for v in ref_ids], dtype=np.int64)


def _copy_rows(src: h5py.Dataset, g: h5py.Group, key: str, pos: np.ndarray, n: int, chunk_size: int) -> None:
    """Copy rows ``pos`` of ``src`` into a new dataset ``g[key]``, chunk by chunk."""
    kw = {"dtype": STR} if src.dtype.kind == "O" else {"dtype": src.dtype}
    dst = g.create_dataset(key, shape=(n,) + src.shape[1:], chunks=(1,) + src.shape[1:] if src.ndim > 1 and n else None,
                           **kw)
    for a in range(0, n, chunk_size):
        p = pos[a:a + chunk_size]
        order = np.argsort(p)
        block = src[p[order]]
        out = np.empty_like(block)
        out[order] = block
        dst[a:a + len(p)] = out


# ---- DESI coadd files (real spectra for tests and users' own data) ---------------------------------
def desi_coadd_to_arrays(path) -> dict[str, np.ndarray]:
    """Read a DESI coadd FITS file into our spectrum arrays on the DESI grid.

    The b, r and z arms sit on the same 0.8 A grid and overlap at their ends; overlapping
    pixels are inverse-variance weighted. A pixel is bad when its arm mask is set or ivar is
    0; one with no good arm keeps the plain mean flux, ivar 0 and mask True. Returns
    object_id (TARGETID as str), ra, dec (N,), flux, ivar (N, 7781) float32, mask (N, 7781)
    bool and wavelength (7781,).
    """
    from astropy.io import fits

    with fits.open(path) as hdul:
        fibermap = hdul["FIBERMAP"].data
        n, length = len(fibermap), len(DESI_WAVELENGTH)
        num, wsum = np.zeros((n, length)), np.zeros((n, length))
        plain, cover = np.zeros((n, length)), np.zeros((n, length))
        for arm in ("B", "R", "Z"):
            try:
                wave = hdul[f"{arm}_WAVELENGTH"].data.astype(np.float64)
                flux, ivar = hdul[f"{arm}_FLUX"].data.astype(np.float64), hdul[f"{arm}_IVAR"].data.astype(np.float64)
                mask = hdul[f"{arm}_MASK"].data != 0
            except KeyError as err:
                raise SchemaError(f"{path}: missing HDU {err.args[0]}") from None
            cols = np.rint((wave - DESI_WAVELENGTH[0]) / 0.8).astype(int)
            if cols.min() < 0 or cols.max() >= length or np.abs(DESI_WAVELENGTH[cols] - wave).max() > 0.01:
                raise SchemaError(f"{path}: HDU {arm}_WAVELENGTH ({wave[0]:.1f}-{wave[-1]:.1f} A) is not on the DESI grid")
            good = ~mask & (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar)
            w = np.where(good, ivar, 0.0)
            num[:, cols] += w * np.where(good, flux, 0.0)
            wsum[:, cols] += w
            finite = np.isfinite(flux)
            plain[:, cols] += np.where(finite, flux, 0.0)
            cover[:, cols] += finite
        flux = np.where(wsum > 0, num / np.where(wsum > 0, wsum, 1), plain / np.maximum(cover, 1))
        return {"object_id": as_str_ids(fibermap["TARGETID"]), "ra": np.asarray(fibermap["TARGET_RA"], np.float64),
                "dec": np.asarray(fibermap["TARGET_DEC"], np.float64), "flux": flux.astype(np.float32),
                "ivar": wsum.astype(np.float32), "mask": wsum == 0, "wavelength": DESI_WAVELENGTH.copy()}
