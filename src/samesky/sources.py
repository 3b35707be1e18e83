"""Embeddings from wherever people keep them, checked before anything is scored.

``load(source, column=None, id_column=None)`` reads one side of a comparison:

* our HDF5 embedding files (``schema.read_embeddings``; ids from ``/object_id``);
* ``.npy`` (a 2-D array, positional) and ``.npz`` (its ``embedding`` array or the one named by
  ``column``; ids from ``object_id`` or ``id_column`` when present);
* parquet with one vector column, or the one named by ``column``: the authors' layout (one
  column per ``{alias}_{size}_{survey}``, rows paired by position, e.g. ``pu run``'s
  ``data/{mode}_{alias}_{size}.parquet``), their hub files (column ``embeddings``), and plain
  files with an id column (``object_id``, or ``id_column``);
* a directory: a local Hugging Face dataset snapshot (its parquet files in path order, or a
  ``datasets.save_to_disk`` folder);
* in memory: a 2-D array (positional) or a pandas DataFrame (a vector column, or numeric scalar
  columns forming the vector, plus an optional id column).

Sources without ids are *positional*: row i of one side is row i of the other. ``pair`` joins
two sides by id when both have ids, by row otherwise, and says which. Every bad input (row
counts that differ without ids, duplicate ids, NaN or infinite rows, ragged or non-numeric
vectors, a missing column, an empty file) is refused with the file, column and rows named.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .schema import SchemaError, as_str_ids

log = logging.getLogger(__name__)
ID_COLUMN = "object_id"  # the id column looked for when none is named
VECTOR_NAMES = ("embedding", "embeddings")  # an .npz's array, when it holds several and none is named
HDF5 = (".h5", ".hdf5")


class SourceError(SchemaError):
    """An embedding source cannot be scored as given; the message names the file, column and rows."""


@dataclass
class Embeddings:
    ids: np.ndarray | None  # (N,) str, unique; None: positional
    array: np.ndarray  # (N, D) float32, finite
    description: str  # names the source in messages and records (file, column)
    column: str | None = None  # the vector column read, where the format has columns

    @property
    def positional(self) -> bool:
        return self.ids is None


def load(source, column: str | None = None, id_column: str | None = None, name: str | None = None) -> Embeddings:
    """One side of a comparison from a path, an array or a DataFrame (see the module docstring);
    ``name`` describes an in-memory source in messages."""
    if isinstance(source, Embeddings):
        return source
    if isinstance(source, (str, os.PathLike)):
        ids, array, where, column = _read_path(Path(source), column, id_column)
    elif _is_dataframe(source):
        ids, array, column = _from_frame(source, column, id_column, name or "data frame")
        where = f"{name or 'data frame'}" + (f" column {column!r}" if column else "")
    else:
        if column is not None or id_column is not None:
            raise SourceError(f"{name or 'array'}: column and id_column apply to files and data frames, not arrays")
        where = name or "array"
        ids, array = None, _matrix(np.asarray(source), where)
    return _checked(ids, array, where, column)


# ---- checks -----------------------------------------------------------------------------------
def _matrix(values: np.ndarray, where: str) -> np.ndarray:
    if values.dtype.kind not in "fiub":
        raise SourceError(f"{where}: embeddings must be numbers, got dtype {values.dtype}")
    if values.ndim != 2:
        raise SourceError(f"{where}: embeddings must be a 2-D array (objects x dimensions), got shape {values.shape}")
    return values


def _rows(bad: np.ndarray, ids: np.ndarray | None) -> str:
    rows = np.flatnonzero(bad)
    if ids is None:
        return f"rows {rows[:5].tolist()} (0-based)"
    return f"object_id {ids[rows[:5]].tolist()} (rows {rows[:5].tolist()})"


def _checked(ids, array: np.ndarray, where: str, column: str | None) -> Embeddings:
    if len(array) == 0 or array.shape[1] == 0:
        raise SourceError(f"{where}: no embeddings (shape {array.shape})")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, refused below
        vectors = array.astype(np.float32, copy=False)
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise SourceError(f"{where}: {int(bad.sum())} of {len(vectors)} rows contain NaN or infinite values "
                          f"(as float32), e.g. {_rows(bad, ids)}; drop or fix them")
    if ids is not None:
        ids = as_str_ids(ids)
        if len(ids) != len(vectors):
            raise SourceError(f"{where}: {len(ids)} ids for {len(vectors)} embeddings")
        uniq, counts = np.unique(ids, return_counts=True)
        if len(uniq) != len(ids):
            raise SourceError(f"{where}: {len(ids) - len(uniq)} duplicate ids, e.g. {uniq[counts > 1][:5].tolist()}")
    return Embeddings(ids, vectors, where, column)


# ---- files --------------------------------------------------------------------------------------
def _read_path(path: Path, column, id_column):
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        return _read_snapshot(path, column, id_column)
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: empty file")
    suffix = path.suffix.lower()
    if suffix in HDF5:
        if column not in (None, "embedding") or id_column not in (None, ID_COLUMN):
            raise SourceError(f"{path}: a samesky embedding file holds /embedding and /object_id; "
                              f"column and id_column do not apply")
        from .schema import read_embeddings

        ids, array, _ = read_embeddings(path)
        return ids, array, str(path), None
    if suffix == ".npy":
        if column is not None or id_column is not None:
            raise SourceError(f"{path}: an .npy file holds one array; column and id_column do not apply")
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise SourceError(f"{path}: not a numeric .npy array ({err})") from None
        return None, _matrix(array, str(path)), str(path), None
    if suffix == ".npz":
        return _read_npz(path, column, id_column)
    if suffix == ".parquet":
        table = _read_parquet(path)
        ids, array, column = _from_table(table, column, id_column, str(path))
        return ids, array, f"{path} column {column!r}", column
    raise SourceError(f"{path}: unknown embedding format {suffix!r}; samesky reads .h5/.hdf5 (samesky embedding "
                      f"files), .npy, .npz, .parquet and Hugging Face dataset directories")


def _read_npz(path: Path, column, id_column):
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise SourceError(f"{path}: not a readable .npz file ({err})") from None
    with z:
        names = list(z.files)
        if column is None:
            matrices = [n for n in names if z[n].ndim == 2]
            named = [n for n in VECTOR_NAMES if n in names]
            if named:
                column = named[0]
            elif len(matrices) == 1:
                column = matrices[0]
            else:
                raise SourceError(f"{path}: {len(matrices)} 2-D arrays {matrices}; name the embeddings with column "
                                  f"(arrays there: {names})")
        if column not in names:
            raise SourceError(f"{path}: no array {column!r}; arrays there: {names}")
        if id_column is not None and id_column not in names:
            raise SourceError(f"{path}: no id array {id_column!r}; arrays there: {names}")
        key = id_column or (ID_COLUMN if ID_COLUMN in names else None)
        ids = z[key] if key else None
        where = f"{path} array {column!r}"
        return ids, _matrix(z[column], where), where, column


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for damaged files
        raise SourceError(f"{path}: not a readable parquet file ({err})") from None


def _read_snapshot(path: Path, column, id_column):
    """A local Hugging Face dataset: a ``save_to_disk`` folder, or a snapshot's parquet files
    (every one under ``path``, in path order, which is the order of a dataset's shards)."""
    if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if list(ds) != ["train"]:
                raise SourceError(f"{path}: a dataset with splits {list(ds)}; name one split's folder")
            ds = ds["train"]
        table = ds.with_format("arrow")[:]
    else:
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise SourceError(f"{path}: a directory without parquet files or a saved Hugging Face dataset")
        tables = [_read_parquet(f) for f in files]
        names = [t.column_names for t in tables]
        if any(n != names[0] for n in names):
            differ = next(f for f, n in zip(files, names) if n != names[0])
            raise SourceError(f"{path}: its parquet files hold different columns ({files[0].name}: {names[0]}, "
                              f"{differ.name}: {names[files.index(differ)]}); name one file instead")
        import pyarrow as pa

        try:
            table = pa.concat_tables(tables)
        except pa.ArrowInvalid as err:
            raise SourceError(f"{path}: its parquet files do not share one schema ({err}); name one file") from None
    ids, array, column = _from_table(table, column, id_column, str(path))
    return ids, array, f"{path} column {column!r}", column


# ---- columns ------------------------------------------------------------------------------------
def _is_vector_type(t) -> bool:
    import pyarrow as pa

    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _from_table(table, column, id_column, where: str):
    """(ids or None, (N, D) array, column) of an Arrow table's vector column."""
    names = table.column_names
    if table.num_rows == 0:
        raise SourceError(f"{where}: no rows (columns: {names})")
    if id_column is not None and id_column not in names:
        raise SourceError(f"{where}: no id column {id_column!r}; columns there: {names}")
    id_column = id_column or (ID_COLUMN if ID_COLUMN in names else None)
    if column is None:
        vectors = [n for n in names if _is_vector_type(table.schema.field(n).type)]
        if len(vectors) != 1:
            raise SourceError(f"{where}: {len(vectors)} vector columns {vectors}; name the embeddings' column "
                              f"(columns there: {names})")
        column = vectors[0]
    if column not in names:
        raise SourceError(f"{where}: no column {column!r}; columns there: {names}")
    array = _vectors(table.column(column), f"{where} column {column!r}")
    ids = None if id_column is None else _ids(table.column(id_column), f"{where} id column {id_column!r}")
    return ids, array, column


def _vectors(col, where: str) -> np.ndarray:
    """An Arrow list column -> (N, D) array, refusing nulls, ragged rows and non-numbers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not _is_vector_type(col.type):
        raise SourceError(f"{where}: type {col.type}, not a column of vectors (lists of numbers)")
    value_type = col.type.value_type
    if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type)):
        raise SourceError(f"{where}: vectors of {value_type}, not numbers")
    if col.null_count:
        raise SourceError(f"{where}: {col.null_count} rows have no vector, e.g. rows "
                          f"{np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[:5].tolist()}")
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if len(np.unique(lengths)) > 1:
        width = int(np.bincount(lengths).argmax())
        odd = np.flatnonzero(lengths != width)
        raise SourceError(f"{where}: ragged vectors: {len(odd)} rows are not {width} long, e.g. rows "
                          f"{odd[:5].tolist()} (lengths {lengths[odd[:5]].tolist()})")
    flat = pc.list_flatten(col)
    if flat.null_count:
        bad = np.unique(np.repeat(np.arange(len(col)), lengths)[flat.is_null().to_numpy(zero_copy_only=False)])
        raise SourceError(f"{where}: {len(bad)} rows hold missing values, e.g. rows {bad[:5].tolist()}")
    return np.array(flat.to_numpy(zero_copy_only=False)).reshape(len(col), int(lengths[0]))  # writable (torch)


def _ids(col, where: str) -> np.ndarray:
    if col.null_count:
        raise SourceError(f"{where}: {col.null_count} missing ids")
    return as_str_ids(col.to_numpy(zero_copy_only=False))


def _is_dataframe(obj) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns")


def _from_frame(df, column, id_column, where: str):
    """A pandas DataFrame: its vector column (named, or the only one), or, when it has none, its
    numeric scalar columns as the vector; ids from ``id_column`` or ``object_id``."""
    names = [str(c) for c in df.columns]
    if df.empty:
        raise SourceError(f"{where}: no rows (columns: {names})")
    if id_column is not None and id_column not in names:
        raise SourceError(f"{where}: no id column {id_column!r}; columns there: {names}")
    id_column = id_column or (ID_COLUMN if ID_COLUMN in names else None)
    ids = None if id_column is None else as_str_ids(df[id_column].to_numpy())
    rest = [c for c in df.columns if str(c) != id_column]
    if column is None:
        vectors = [c for c in rest if df[c].dtype == object]
        if len(vectors) > 1:
            raise SourceError(f"{where}: {len(vectors)} vector columns {vectors}; name the embeddings' column")
        if not vectors:
            return ids, _matrix(df[rest].to_numpy(), f"{where} columns {rest}"), None
        column = vectors[0]
    if column not in names:
        raise SourceError(f"{where}: no column {column!r}; columns there: {names}")
    import pyarrow as pa

    try:
        col = pa.array(df[column].map(lambda v: None if v is None else np.asarray(v).tolist()).tolist())
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise SourceError(f"{where} column {column!r}: not vectors of numbers ({err})") from None
    return ids, _vectors(col, f"{where} column {column!r}"), column


# ---- pairing ------------------------------------------------------------------------------------
def pairing(a: Embeddings, b: Embeddings, same: bool = False) -> str:
    """How two sides pair their rows: 'id' (joined by object id, both have ids; objects on one
    side only are left out and counted by ``metrics.compare.common_rows``) or 'row' (either is
    positional: the row counts must agree). ``same``: B is A (the shuffled-self null)."""
    if same:
        return "row" if a.positional else "id"
    if a.positional or b.positional:
        if len(a.array) != len(b.array):
            which = " and ".join(s.description for s in (a, b) if s.positional)
            raise SourceError(f"{a.description} has {len(a.array)} rows and {b.description} has {len(b.array)}, "
                              f"and {which} has no ids to join on: positional pairing needs the same objects "
                              f"in the same order on both sides")
        return "row"
    return "id"


# ---- precomputed embeddings in the workflow -------------------------------------------------------
def import_embeddings(out, entry: dict, crossmatch_path, crossmatch: str) -> str:
    """Write ``entry``'s embeddings (config ``models.precomputed``) as the embedding file ``out``
    of ``crossmatch`` (its file ``crossmatch_path``): by id (``id_column``; objects not in the
    crossmatch are left out), or positionally (row i is the crossmatch's i-th object; rows beyond
    the crossmatch, e.g. cut by its ``limit``, are left out), which a crossmatch whose ingestion
    dropped rows or re-ordered them (joined by id) refuses. Returns 'id' or 'row'."""
    from .schema import read_h5, read_object_ids, read_provenance, write_embeddings

    emb = load(entry["source"], entry.get("column"), entry.get("id_column"))
    crossmatch_ids = read_object_ids(crossmatch_path)
    n = len(crossmatch_ids)
    if emb.positional:
        with read_h5(crossmatch_path) as f:
            prov = read_provenance(f)
        dropped = {key: v["n"] for key, v in prov.items() if key.endswith("_dropped") and v.get("n")}
        if dropped or "joined_on" in prov:
            raise SourceError(f"{emb.description} has no ids, but the rows of crossmatch {crossmatch!r} "
                              f"({crossmatch_path}) are not the source's rows in order (ingestion: "
                              f"{dropped or 'sides joined on ' + str(prov['joined_on'])}); give id_column")
        if len(emb.array) < n:
            raise SourceError(f"{emb.description}: {len(emb.array)} rows, fewer than the {n} objects of crossmatch "
                              f"{crossmatch!r}; without id_column row i must be the crossmatch's i-th object")
        if len(emb.array) > n:
            log.warning("%s: %d rows, crossmatch %r has %d objects: rows from %d on are left out",
                        emb.description, len(emb.array), crossmatch, n, n)
        ids, array = crossmatch_ids, emb.array[:n]
    else:
        keep = np.isin(emb.ids, crossmatch_ids)
        if not keep.any():
            raise SourceError(f"{emb.description}: none of its ids (e.g. {emb.ids[:3].tolist()}) is an object of "
                              f"crossmatch {crossmatch!r} (e.g. {crossmatch_ids[:3].tolist()})")
        if not keep.all():
            log.warning("%s: %d of %d ids are not objects of crossmatch %r; left out", emb.description,
                        int((~keep).sum()), len(keep), crossmatch)
        ids, array = emb.ids[keep], emb.array[keep]
    pairing = "row" if emb.positional else "id"
    write_embeddings(out, ids, array, {"precomputed": {**entry, "description": emb.description, "pairing": pairing}})
    return pairing
