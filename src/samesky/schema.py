"""On-disk formats, all HDF5, documented and validated in this one module.

Crossmatch file (``resources/crossmatches/{crossmatch}.h5``), written by every data source
(simulation, Hugging Face ingestion, a user's own files)::

    /                 attrs: schema = "samesky-crossmatch/1", name, surveys (list of str)
    /object_id        (N,) str     crossmatch-level id, unique; every artifact is keyed by it
    /ra, /dec         (N,) float64 degrees
    /<survey>/        one group per survey of the crossmatch (names from samesky.surveys)
      image survey:   flux (N, B, H, W) float32; attrs bands (list, on-disk order), pixel_scale, pixel_scales (per band),
                      optional zero_point (AB mag of one flux unit; default: the survey's)
                      optional ivar (N, B, H, W) float32, mask (N, B, H, W) bool (True = bad)
      spectrum survey: flux (N, L) float32, ivar (N, L) float32, mask (N, L) bool (True = bad),
                      wavelength (L,) or (N, L) float64 Angstrom (NaN where a row is padded)
      optional        object_id (N,) str: the survey's own id of each object
    /properties/      optional: per-object scalar catalogue columns, one (N,) dataset per column,
                      row i describing /object_id[i]; named as in the source catalogue (e.g. DESI
                      ``Z``); numeric (NaN = missing), bool, or str (categorical); optional attrs
                      ``unit``, ``source`` (e.g. "desi")
    /truth/           optional (simulations): latent properties per object, (N,) arrays

``read_properties`` reads ``/properties`` and ``/truth`` alike (a name in both is an error), so a
probe of the simulation's redshift and of DESI's ``Z`` is the same job.

Preprocessed file (``results/<run_name>/preprocessed/{crossmatch}/{survey}.h5``)::

    /object_id (N,) str; /data: images (N, 3, H, W) uint8 RGB (percentile-rescaled: what the
    vision models' processors take), spectra (N, 7781) float32 on the DESI grid (+ /ivar (N, 7781)
    float32, /mask (N, 7781) bool); attrs: provenance (JSON). Dropped objects are absent.

Raw-flux file (``results/<run_name>/preprocessed_flux/{crossmatch}/{survey}.h5``, for models that tokenise
fluxes themselves, e.g. AION)::

    /object_id (N,) str; /data (N, B, H, W) float32, every band in on-disk order, non-finite
    pixels set to 0, in the survey's flux unit (``surveys.Survey.zero_point``: what the models
    were trained on); provenance names ``survey``, ``bands`` and ``zero_point``.

Embedding file (``results/<run_name>/embeddings/{crossmatch}/{survey}/{model}.h5``)::

    /object_id (N,) str; /embedding (N, D) float32; attrs: provenance (JSON)

kNN graph file (``results/<run_name>/knn/{crossmatch}/{survey}/{model}.h5``)::

    /object_id (N,) str; /indices (N, k) int64 neighbour rows, nearest first, self excluded;
    /similarity (N, k) float32 cosine similarities matching /indices; attrs: k, provenance (JSON);
    when CKA's null is closed-form, provenance["gram_invariants"] holds the embedding's
    ``metrics.rv_null.Invariants`` ({"linear": {...}, "unbiased": {...}}).

Layers file (``results/<run_name>/layers/{crossmatch}/{survey}/{model}.h5``, ``write_layers``)::

    /object_id (N,) str; /block_<j> (N, d_j) float16, j = 000, 001, ...; provenance: blocks (the
    names, in order), n_blocks (the model's block count), block_index (each block's 0-based index)

Block graphs file (``results/<run_name>/knn_layers/{crossmatch}/{survey}/{model}.h5``, ``write_knn_layers``)::

    /object_id (N,) str (the layers file's); /block_<j>/indices, /block_<j>/similarity as in a
    kNN graph file, provenance name (and gram_invariants); root provenance: k, blocks, source.

Percentiles file (``results/<run_name>/preprocessed/percentiles/{survey}.json``, ``write_percentiles``):
JSON with schema "samesky-percentiles/1", survey, bands, low/high per band and how they were drawn.

Metric record file (``results/<run_name>/metrics/...json``, ``write_metric_records``): JSON
``{"records": [...]}``, one flat record per metric (fields: docs/ARCHITECTURE.md, validated by
``report.records``).
"""
from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import h5py
import numpy as np

from .surveys import IMAGE, SPECTRUM, get_survey

log = logging.getLogger(__name__)

CROSSMATCH_SCHEMA = "samesky-crossmatch/1"
STR = h5py.string_dtype("utf-8")


class SchemaError(ValueError):
    """A file does not follow the samesky schema; the message names the file and the key."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; it replaces ``path`` only if the block succeeds.

    A killed or failing writer never leaves a half-written file under the final name, and a
    previous good file stays in place until the new one is complete.
    An OSError (full disk, read-only or missing directory...) is re-raised, same type and errno,
    with a message that names ``path``.
    """
    path = Path(path)
    tmp = temporary_of(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_writers_files(path)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        try:
            named = type(err)(f"{path} was not written: {err}")
        except TypeError:  # an OSError subclass with another constructor
            named = OSError(f"{path} was not written: {err}")
        named.errno = err.errno  # (setting strerror would replace the message)
        raise named from err
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()


_HOST = socket.gethostname().replace("-", "_")


def temporary_of(path: Path, pid: int | None = None) -> Path:
    """The hidden sibling a writer (this host, process ``pid``) builds ``path`` in."""
    return path.with_name(f".{path.name}.tmp-{_HOST}-{os.getpid() if pid is None else pid}")


def _remove_dead_writers_files(path: Path) -> None:
    """Delete temporaries of ``path`` left by killed writers (this host, process gone).

    Temporaries of live processes, or of other hosts (shared file systems), are left alone.
    """
    for tmp in path.parent.glob(glob.escape(temporary_of(path, 0).name[:-1]) + "*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            log.warning("removing %s, left by a killed writer (pid %s)", tmp, pid)
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def as_str_ids(ids) -> np.ndarray:
    """Object ids as a numpy array of Python str (ints, bytes and str all accepted)."""
    arr = np.asarray(ids)
    if arr.dtype.kind == "S" or arr.dtype == object:
        arr = np.array([i.decode() if isinstance(i, bytes) else str(i) for i in arr], dtype=object)
    return arr.astype(str)


def check_unique_ids(ids: np.ndarray, where: str) -> None:
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        dup = uniq[counts > 1][:5].tolist()
        raise SchemaError(f"{where}: object_id has {len(ids) - len(uniq)} duplicates, e.g. {dup}")


def write_crossmatch(
    path: str | os.PathLike,
    name: str,
    object_id,
    ra,
    dec,
    surveys: Mapping[str, Mapping[str, np.ndarray]],
    truth: Mapping[str, np.ndarray] | None = None,
    properties: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write a crossmatch file atomically. ``surveys[name]`` holds the arrays of one group;
    ``truth`` and ``properties`` map names to (N,) per-object arrays (str arrays: categorical)."""
    ids = as_str_ids(object_id)
    check_unique_ids(ids, str(path))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["schema"] = CROSSMATCH_SCHEMA
        f.attrs["name"] = name
        f.attrs["surveys"] = list(surveys)
        f.create_dataset("object_id", data=ids.astype(object), dtype=STR)
        f.create_dataset("ra", data=np.asarray(ra, np.float64))
        f.create_dataset("dec", data=np.asarray(dec, np.float64))
        for sname, arrays in surveys.items():
            survey = get_survey(sname)
            g = f.create_group(sname)
            for key, value in arrays.items():
                if key == "object_id":
                    g.create_dataset(key, data=as_str_ids(value).astype(object), dtype=STR)
                elif np.ndim(value) > 1:
                    # one object per chunk; lzf is fast and shrinks constant ivar planes and masks
                    g.create_dataset(key, data=value, chunks=(1,) + np.shape(value)[1:], compression="lzf")
                else:
                    g.create_dataset(key, data=value)
            if survey.modality == IMAGE:
                g.attrs["bands"] = list(survey.bands)
                g.attrs["pixel_scale"] = survey.pixel_scale
                g.attrs["pixel_scales"] = [survey.band_scale(b) for b in survey.bands]
        for group, columns in (("truth", truth), ("properties", properties)):
            if columns:
                g = f.create_group(group)
                for key, value in columns.items():
                    value = np.asarray(value)
                    if value.dtype.kind in "OSU":
                        g.create_dataset(key, data=as_str_ids(value).astype(object), dtype=STR)
                    else:
                        g.create_dataset(key, data=value)
    validate_crossmatch(path)


def _require(f: h5py.File, key: str, path, shape=None, kinds="f") -> h5py.Dataset:
    if key not in f:
        raise SchemaError(f"{path}: missing dataset {key!r}")
    ds = f[key]
    if not isinstance(ds, h5py.Dataset):
        raise SchemaError(f"{path}: {key!r} is not a dataset")
    if shape is not None:
        if len(ds.shape) != len(shape) or any(e is not None and e != a for e, a in zip(shape, ds.shape)):
            want = tuple("any" if e is None else e for e in shape)
            raise SchemaError(f"{path}: {key!r} has shape {ds.shape}, expected {want}")
    if ds.dtype.kind not in kinds:
        raise SchemaError(f"{path}: {key!r} has dtype {ds.dtype}, expected kind {kinds!r}")
    return ds


def open_h5(path: str | os.PathLike) -> h5py.File:
    """Open an HDF5 file for reading, turning missing and corrupt files into clear errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise SchemaError(f"{path}: not a readable HDF5 file (corrupt or truncated?): {err}") from None


@contextmanager
def read_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """``open_h5`` for a block that only reads this one file: HDF5 errors inside it (damaged
    metadata of a file that still opens) become SchemaErrors naming the file."""
    with open_h5(path) as f:
        try:
            yield f
        except (OSError, RuntimeError, KeyError) as err:
            raise SchemaError(f"{path}: unreadable HDF5 content (corrupt file?): {err}") from None


def validate_crossmatch(path: str | os.PathLike) -> dict:
    """Check a crossmatch file against the schema; return a summary {n, surveys}."""
    with read_h5(path) as f:
        if f.attrs.get("schema") != CROSSMATCH_SCHEMA:
            raise SchemaError(f"{path}: attribute 'schema' is {f.attrs.get('schema')!r}, expected {CROSSMATCH_SCHEMA!r}")
        ids = _require(f, "object_id", path, (None,), kinds="OSU")
        n = ids.shape[0]
        check_unique_ids(as_str_ids(ids[:]), str(path))
        _require(f, "ra", path, (n,))
        _require(f, "dec", path, (n,))
        surveys = [str(s) for s in f.attrs.get("surveys", [])]
        if not surveys:
            raise SchemaError(f"{path}: attribute 'surveys' is missing or empty")
        for sname in surveys:
            try:
                survey = get_survey(sname)
            except KeyError as err:
                raise SchemaError(f"{path}: {err.args[0]}") from None
            if sname not in f:
                raise SchemaError(f"{path}: missing group {sname!r} listed in attribute 'surveys'")
            if survey.modality == IMAGE:
                flux = _require(f, f"{sname}/flux", path, (n, len(survey.bands), None, None))
                bands = [str(b) for b in f[sname].attrs.get("bands", [])]
                if bands != list(survey.bands):
                    raise SchemaError(f"{path}: '{sname}' attribute 'bands' is {bands}, expected {list(survey.bands)}")
                for extra in ("ivar", "mask"):
                    if extra in f[sname]:
                        _require(f, f"{sname}/{extra}", path, flux.shape, kinds="fb" if extra == "mask" else "f")
            else:
                flux = _require(f, f"{sname}/flux", path, (n, None))
                length = flux.shape[1]
                _require(f, f"{sname}/ivar", path, (n, length))
                _require(f, f"{sname}/mask", path, (n, length), kinds="b")
                wave = _require(f, f"{sname}/wavelength", path)
                if wave.shape not in ((length,), (n, length)):
                    raise SchemaError(f"{path}: '{sname}/wavelength' has shape {wave.shape}, expected ({length},) or ({n}, {length})")
        for name, group in _property_groups(f, path):
            _require(f, f"{group}/{name}", path, (n,), kinds=PROPERTY_KINDS)
        return {"n": n, "surveys": surveys}


PROPERTY_GROUPS = ("properties", "truth")  # where per-object scalars live (catalogue, simulation)
PROPERTY_KINDS = "fiubOSU"  # numbers, bools, strings


def _property_groups(f: h5py.File, path) -> list[tuple[str, str]]:
    """(name, group) of every per-object property dataset in the file."""
    out = []
    for group in PROPERTY_GROUPS:
        if group in f:
            if not isinstance(f[group], h5py.Group):
                raise SchemaError(f"{path}: {group!r} is not a group")
            out += [(name, group) for name in f[group]]
    return out


def property_names(path: str | os.PathLike) -> list[str]:
    """The per-object properties of a crossmatch file, in ``/properties`` and ``/truth``."""
    with read_h5(path) as f:
        return [name for name, _ in _property_groups(f, path)]


def read_properties(path: str | os.PathLike, names=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(object_id, {name: (N,) array}) of a crossmatch file's per-object properties, from
    ``/properties`` (catalogue columns) and ``/truth`` (a simulation's latents) alike.

    ``names``: the properties wanted (default: all). A missing name, or a name found in both
    groups, is a SchemaError naming the file and the properties it has. Strings come back as str.
    """
    with read_h5(path) as f:
        ids = as_str_ids(_require(f, "object_id", path, (None,), kinds="OSU")[:])
        where: dict[str, list[str]] = {}
        for name, group in _property_groups(f, path):
            where.setdefault(name, []).append(group)
        wanted = list(where) if names is None else list(names)
        both = sorted(k for k in wanted if len(where.get(k, ())) > 1)
        if both:
            raise SchemaError(f"{path}: properties {both} are in both '/properties' and '/truth'; "
                              f"rename one of them")
        missing = [k for k in wanted if k not in where]
        if missing:
            raise SchemaError(f"{path}: no per-object property {missing} (in '/properties' or '/truth'); "
                              f"it has {sorted(where)}")
        out = {}
        for name in wanted:
            ds = _require(f, f"{where[name][0]}/{name}", path, (len(ids),), kinds=PROPERTY_KINDS)
            out[name] = as_str_ids(ds[:]) if ds.dtype.kind in "OSU" else ds[:]
    return ids, out


def read_object_ids(path: str | os.PathLike, key: str = "object_id") -> np.ndarray:
    with read_h5(path) as f:
        if key not in f:
            raise SchemaError(f"{path}: missing dataset {key!r}")
        return as_str_ids(f[key][:])


def check_finite(matrix: np.ndarray, ids: np.ndarray, where: str) -> None:
    """Refuse rows with NaN or inf, naming the first offending object ids."""
    bad = ~np.isfinite(matrix).all(axis=tuple(range(1, matrix.ndim)))
    if bad.any():
        raise SchemaError(f"{where}: {int(bad.sum())} rows contain NaN or inf, e.g. object_id {ids[bad][:5].tolist()}")


def write_provenance(obj: h5py.File | h5py.Group, provenance: Mapping) -> None:
    obj.attrs["provenance"] = json.dumps(provenance, sort_keys=True, default=str)


def read_provenance(obj: h5py.File | h5py.Group) -> dict:
    return json.loads(obj.attrs.get("provenance", "{}"))


def write_embeddings(path, object_id, embedding: np.ndarray, provenance: Mapping) -> None:
    """Write an embedding file atomically; refuse non-finite values (they would poison metrics)."""
    embedding = np.asarray(embedding, dtype=np.float32)
    ids = as_str_ids(object_id)
    if embedding.ndim != 2 or embedding.shape[0] != len(ids):
        raise SchemaError(f"{path}: embedding shape {embedding.shape} does not match {len(ids)} object ids")
    check_unique_ids(ids, str(path))
    check_finite(embedding, ids, str(path))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("object_id", data=ids.astype(object), dtype=STR)
        f.create_dataset("embedding", data=embedding)
        write_provenance(f, provenance)


def read_embeddings(path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return (object_id, embedding (N, D) float32, provenance) with schema checks."""
    with read_h5(path) as f:
        ids = as_str_ids(_require(f, "object_id", path, (None,), kinds="OSU")[:])
        emb = _require(f, "embedding", path, (len(ids), None))[:].astype(np.float32, copy=False)
        prov = read_provenance(f)
    check_unique_ids(ids, str(path))
    return ids, emb, prov


def as_float16(block, ids: np.ndarray, where: str) -> np.ndarray:
    """A block of embeddings as float16 (how layers are stored), refusing NaN/inf and values beyond
    float16's range (|x| > 65504, they would become inf), naming the first offending objects."""
    block = np.asarray(block, dtype=np.float32)
    check_finite(block, ids, where)
    with np.errstate(over="ignore"):  # reported below, naming the objects
        half = block.astype(np.float16)
    bad = ~np.isfinite(half).all(axis=tuple(range(1, half.ndim)))
    if bad.any():
        raise SchemaError(f"{where}: {int(bad.sum())} rows have values beyond float16's range (|x| > 65504), "
                          f"e.g. object_id {ids[bad][:5].tolist()}")
    return half


def write_layers(path, object_id, blocks: Sequence[np.ndarray], names: list[str], provenance: Mapping) -> None:
    """Write one file of per-block embeddings atomically: ``block_<j>`` (N, d_j) float16 on disk,
    block j's name at position j of the provenance's ``blocks`` list (its depth is (j+1)/L when the
    file holds all L blocks; ``samesky.embed`` also records the model's ``block_index`` of each and
    ``n_blocks``, which a selection of blocks needs). float16 halves the disk of L blocks; readers get float32 back.

    ``blocks`` is read one item at a time, so a lazy sequence (``samesky.embed`` passes one that
    loads block j from the shards on access) keeps one (N, d_j) block in memory, never all L."""
    ids = as_str_ids(object_id)
    if len(blocks) != len(names) or not len(blocks):
        raise SchemaError(f"{path}: {len(blocks)} blocks but {len(names)} block names")
    check_unique_ids(ids, str(path))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("object_id", data=ids.astype(object), dtype=STR)
        for j, block in enumerate(blocks):
            block = np.asarray(block)
            if block.ndim != 2 or block.shape[0] != len(ids):
                raise SchemaError(f"{path}: block {names[j]!r} has shape {block.shape}, expected ({len(ids)}, d)")
            f.create_dataset(f"block_{j:03d}", data=as_float16(block, ids, f"{path}: block {names[j]!r}"))
        write_provenance(f, {**provenance, "blocks": list(names)})


def read_layers(path) -> tuple[np.ndarray, list[np.ndarray], list[str], dict]:
    """Return (object_id, [block (N, d_j) float32], block names, provenance) of a layers file."""
    with read_h5(path) as f:
        ids = as_str_ids(_require(f, "object_id", path, (None,), kinds="OSU")[:])
        prov = read_provenance(f)
        names = prov.get("blocks")
        if not names:
            raise SchemaError(f"{path}: no 'blocks' list in its provenance; not a layers file")
        blocks = [_require(f, f"block_{j:03d}", path, (len(ids), None))[:].astype(np.float32)
                  for j in range(len(names))]
    check_unique_ids(ids, str(path))
    return ids, blocks, list(names), prov


class RowWriter:
    """Appends rows (object ids + named arrays) to an open HDF5 file, chunk by chunk."""

    def __init__(self, f: h5py.File, where: str, rows: Mapping[str, tuple[tuple, np.dtype]]):
        self.f, self.where, self.n = f, where, 0
        f.create_dataset("object_id", shape=(0,), maxshape=(None,), dtype=STR, chunks=(4096,))
        for key, (shape, dtype) in rows.items():
            f.create_dataset(key, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=(1, *shape))
        self.keys = list(rows)

    def append(self, object_id, **arrays: np.ndarray) -> None:
        ids = as_str_ids(object_id)
        if sorted(arrays) != sorted(self.keys) or any(len(a) != len(ids) for a in arrays.values()):
            raise SchemaError(f"{self.where}: append needs {self.keys} with {len(ids)} rows each")
        for key, value in [("object_id", ids.astype(object)), *arrays.items()]:
            ds = self.f[key]
            ds.resize(self.n + len(ids), axis=0)
            ds[self.n:] = value
        self.n += len(ids)


@contextmanager
def preprocessed_writer(path, rows: Mapping[str, tuple[tuple, np.dtype]]) -> Iterator[RowWriter]:
    """Write a preprocessed file chunk by chunk (memory bounded); it appears atomically when the
    block ends, after the ids are checked unique. ``rows``: {name: (row shape, dtype)}, e.g.
    images {"data": ((3, H, W), uint8)}; spectra data/ivar (L,) float32 and mask (L,) bool.
    Set ``writer.provenance`` (a dict) before the block ends."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        writer = RowWriter(f, str(path), rows)
        writer.provenance = {}
        yield writer
        check_unique_ids(as_str_ids(f["object_id"][:]), str(path))
        write_provenance(f, writer.provenance)


def write_preprocessed(path, object_id, data: np.ndarray, provenance: Mapping, **extra: np.ndarray) -> None:
    """Write model-ready inputs in one go: images (N, 3, H, W) uint8 RGB, or spectra (N, L) float32 (+ ivar, mask)."""
    ids = as_str_ids(object_id)
    arrays = {"data": np.asarray(data), **{k: np.asarray(v) for k, v in extra.items()}}
    if any(len(a) != len(ids) for a in arrays.values()):
        raise SchemaError(f"{path}: {len(data)} rows of data for {len(ids)} object ids")
    with preprocessed_writer(path, {k: (a.shape[1:], a.dtype) for k, a in arrays.items()}) as writer:
        writer.append(ids, **arrays)
        writer.provenance = dict(provenance)


RGB, FLUX = "rgb", "flux"  # the kinds of preprocessed image files (spectra: SPECTRUM)


def validate_preprocessed(path) -> str:
    """Check a preprocessed file (unique ids; one row of data per id) and return its kind:
    RGB images (N, 3, H, W) uint8, FLUX raw images (N, B, H, W) float32 whose provenance names
    the survey and its B bands, or SPECTRUM (N, L) float with matching ivar/mask."""
    with read_h5(path) as f:
        ids = as_str_ids(_require(f, "object_id", path, (None,), kinds="OSU")[:])
        check_unique_ids(ids, str(path))
        data = _require(f, "data", path, kinds="fu")
        if data.ndim == 4 and data.shape[1] == 3 and data.dtype == np.uint8:
            kind = RGB
        elif data.ndim == 4 and data.dtype == np.float32:
            kind = FLUX
            prov = read_provenance(f)
            if not isinstance(prov.get("bands"), list) or len(prov["bands"]) != data.shape[1] or "survey" not in prov:
                raise SchemaError(f"{path}: raw flux images ({data.shape[1]} bands) need provenance 'survey' and "
                                  f"'bands' (one name per band), got {({k: prov.get(k) for k in ('survey', 'bands')})}")
        elif data.ndim == 2 and data.dtype.kind == "f":
            kind = SPECTRUM
            for extra in ("ivar", "mask"):
                if extra in f:
                    _require(f, extra, path, data.shape, kinds="b" if extra == "mask" else "f")
        else:
            raise SchemaError(f"{path}: 'data' has shape {data.shape} and dtype {data.dtype}, expected images "
                              f"({len(ids)}, 3, H, W) uint8, raw fluxes ({len(ids)}, B, H, W) float32 or spectra "
                              f"({len(ids)}, L) float")
        if data.shape[0] != len(ids):
            raise SchemaError(f"{path}: 'data' has {data.shape[0]} rows for {len(ids)} object ids")
    return kind


def read_preprocessed(path, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (object_id, data) rows [start, stop) of a preprocessed file."""
    with read_h5(path) as f:
        id_ds = _require(f, "object_id", path, (None,), kinds="OSU")
        data = _require(f, "data", path, kinds="fu")
        if data.ndim < 1 or data.shape[0] != id_ds.shape[0]:
            raise SchemaError(f"{path}: 'data' has shape {data.shape} for {id_ds.shape[0]} object ids")
        return as_str_ids(id_ds[start:stop]), data[start:stop]


def write_knn(path, object_id, indices: np.ndarray, similarity: np.ndarray, provenance: Mapping) -> None:
    """Write a kNN graph atomically (rows nearest first, self excluded)."""
    ids = as_str_ids(object_id)
    indices = np.asarray(indices, dtype=np.int64)
    similarity = np.asarray(similarity, dtype=np.float32)
    if indices.shape != similarity.shape or indices.shape[0] != len(ids):
        raise SchemaError(f"{path}: indices {indices.shape} / similarity {similarity.shape} / {len(ids)} ids disagree")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("object_id", data=ids.astype(object), dtype=STR)
        f.create_dataset("indices", data=indices)
        f.create_dataset("similarity", data=similarity)
        f.attrs["k"] = indices.shape[1]
        write_provenance(f, provenance)


def read_knn(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Return (object_id, indices (N, k) int64, similarity (N, k) float32, provenance)."""
    with read_h5(path) as f:
        ids = as_str_ids(_require(f, "object_id", path, (None,), kinds="OSU")[:])
        n = len(ids)
        idx = _require(f, "indices", path, (n, None), kinds="iu")[:].astype(np.int64)
        sim = _require(f, "similarity", path, idx.shape)[:].astype(np.float32)
        prov = read_provenance(f)
    check_unique_ids(ids, str(path))
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise SchemaError(f"{path}: 'indices' out of range [0, {n})")
    selfish = (idx == np.arange(n)[:, None]).any(axis=1)
    if selfish.any():
        raise SchemaError(f"{path}: 'indices' list an object as its own neighbour (self must be excluded), "
                          f"e.g. object_id {ids[selfish][:5].tolist()}")
    check_finite(sim, ids, f"{path}: 'similarity'")
    return ids, idx, sim, prov


class LayersFile:
    """A layers file (``write_layers``) read one block at a time, in its float16: the L blocks of
    a large model need not fit in memory as float32."""

    def __init__(self, path):
        self.path = os.fspath(path)
        with read_h5(path) as f:
            self.ids = as_str_ids(_require(f, "object_id", path, (None,), kinds="OSU")[:])
            self.provenance = read_provenance(f)
        self.names = list(self.provenance.get("blocks") or [])
        if not self.names:
            raise SchemaError(f"{path}: no 'blocks' list in its provenance; not a layers file")
        self.positions = block_positions(self.names, self.provenance, path)

    def block(self, j: int) -> np.ndarray:
        with read_h5(self.path) as f:
            return _require(f, f"block_{j:03d}", self.path, (len(self.ids), None))[:]


def block_positions(names: list[str], provenance: dict, where) -> list[tuple[int, float]]:
    """(index, depth) of each block of a layers file: block j of the model's L blocks has depth
    (j + 1) / L. The embedding job records each block's ``block_index`` (0-based) among the model's
    ``n_blocks`` in the provenance (a selection of blocks needs them); without those keys the file
    holds every block in order."""
    total = int(provenance.get("n_blocks", len(names)))
    indices = [int(j) for j in provenance.get("block_index", range(len(names)))]
    if len(indices) != len(names) or not all(0 <= j < total for j in indices):
        raise SchemaError(f"{where}: provenance block_index {indices} does not fit {len(names)} blocks of "
                          f"n_blocks={total}")
    return [(j, (j + 1) / total) for j in indices]


class BlockGraphsWriter:
    """Writes a block graphs file (``read_knn_layers``) one block at a time, resumably.

    Each finished block is kept at once in its own small file under a hidden sibling directory
    (``.<name>.partial``, each file atomic); ``finish`` gathers them into ``path`` (atomically) and
    removes the directory. A job killed mid-way (a Slurm time limit, preemption, Ctrl-C) leaves
    the directory, and the next run of the same job with the same ``key`` (its source file's path,
    size and mtime, and the graphs' settings) starts after the last finished block: a 24-block job
    of hours loses at most one block's work. Another key starts afresh.
    """

    def __init__(self, path, object_id, provenance: Mapping, key: Mapping):
        self.path, self.ids, self.provenance = Path(path), as_str_ids(object_id), dict(provenance)
        self.dir = self.path.with_name(f".{self.path.name}.partial")
        self.names: list[str] = []
        self.kept: list[str] = []  # blocks an earlier run finished
        stamp = self.dir / "key.json"
        key = json.loads(json.dumps({**key, "object_ids": len(self.ids)}, sort_keys=True, default=str))
        if self.dir.is_dir() and (not stamp.is_file() or json.loads(stamp.read_text()) != key):
            log.warning("%s: its finished blocks were computed from other inputs or settings; starting afresh",
                        self.dir)
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not stamp.is_file():
            with atomic_path(stamp) as tmp:
                tmp.write_text(json.dumps(key, sort_keys=True))

    def _block_path(self, j: int) -> Path:
        return self.dir / f"block_{j:03d}.h5"

    def finished(self, j: int, name: str) -> dict | None:
        """The provenance of block ``j`` if a previous run finished it (and counts it as added)."""
        path = self._block_path(j)
        if j != len(self.names) or not path.is_file():
            return None
        with read_h5(path) as f:
            provenance = read_provenance(f)
        if provenance.get("name") != name:
            return None
        self.names.append(name)
        self.kept.append(name)
        return provenance

    def add(self, name: str, indices: np.ndarray, similarity: np.ndarray, extra: Mapping | None = None) -> None:
        """Keep the next block's graph (``extra``: more of its provenance, e.g. gram_invariants)."""
        if indices.shape != similarity.shape or indices.shape[0] != len(self.ids):
            raise SchemaError(f"{self.path}: block {name!r}: indices {indices.shape} / similarity "
                              f"{similarity.shape} / {len(self.ids)} ids disagree")
        with atomic_path(self._block_path(len(self.names))) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("indices", data=indices)
            f.create_dataset("similarity", data=similarity)
            write_provenance(f, {"name": name, **(extra or {})})
        self.names.append(name)

    def finish(self) -> None:
        """Write ``path`` from the blocks, in order; the root provenance lists them, and those that
        an earlier run finished (``resumed_blocks``: their time is not in this run's)."""
        with atomic_path(self.path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("object_id", data=self.ids.astype(object), dtype=STR)
            for j in range(len(self.names)):
                with read_h5(self._block_path(j)) as src:
                    g = f.create_group(f"block_{j:03d}")
                    for key in ("indices", "similarity"):
                        g.create_dataset(key, data=src[key][:])
                    g.attrs["provenance"] = src.attrs["provenance"]
            write_provenance(f, {**self.provenance, "blocks": self.names, "resumed_blocks": self.kept})
        shutil.rmtree(self.dir)


def read_knn_layers(path, layers: LayersFile, k: int, columns: int | None = None
                    ) -> list[tuple[tuple[np.ndarray, np.ndarray], dict]]:
    """Per block of ``layers``: its cached graph (indices int64, similarity float32; the first
    ``columns`` columns, None: all) and the block's provenance, after checking that ``path`` was
    computed from ``layers`` with k_max >= k."""
    with read_h5(path) as f:
        ids = as_str_ids(_require(f, "object_id", path, (None,), kinds="OSU")[:])
        names = read_provenance(f).get("blocks")
        if len(ids) != len(layers.ids) or not np.array_equal(ids, layers.ids):
            raise SchemaError(f"{path} does not belong to {layers.path} (object ids differ); recompute "
                              f"its block graphs")
        if names != layers.names:
            raise SchemaError(f"{path} holds blocks {names}, but {layers.path} has {layers.names}; recompute "
                              f"its block graphs")
        out, n = [], len(ids)
        for j, name in enumerate(names):
            where = f"block_{j:03d}"
            if where not in f:
                raise SchemaError(f"{path}: missing group {where!r} (block {name!r})")
            ds = _require(f[where], "indices", f"{path}:{where}", (n, None), kinds="iu")
            if ds.shape[1] < k:
                raise SchemaError(f"{path}: block {name!r} has k_max={ds.shape[1]} < requested k={k}")
            idx = ds[:, :columns].astype(np.int64)
            sim = _require(f[where], "similarity", f"{path}:{where}", ds.shape)[:, :columns].astype(np.float32)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise SchemaError(f"{path}: block {name!r}: 'indices' out of range [0, {n})")
            out.append(((idx, sim), read_provenance(f[where])))
    return out


PERCENTILES_SCHEMA = "samesky-percentiles/1"


def write_percentiles(path, result: Mapping) -> None:
    """Write a percentiles record (``preprocess.compute_percentiles``) as JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(dict(result), indent=2, sort_keys=True) + "\n")


def read_percentiles(path, survey: str, bands: Sequence[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return (low (3,), high (3,), record) for ``bands`` from a percentiles JSON, with checks."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: percentiles file does not exist")
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: not valid JSON: {err}") from None
    if rec.get("schema") != PERCENTILES_SCHEMA:
        raise SchemaError(f"{path}: 'schema' is {rec.get('schema')!r}, expected {PERCENTILES_SCHEMA!r}")
    if rec.get("survey") != survey:
        raise SchemaError(f"{path}: percentiles are for survey {rec.get('survey')!r}, not {survey!r}")
    missing = [b for b in bands if b not in rec.get("low", {}) or b not in rec.get("high", {})]
    if missing:
        raise SchemaError(f"{path}: no percentiles for band(s) {missing}; it has {sorted(rec.get('low', {}))}")
    low = np.array([rec["low"][b] for b in bands], np.float64)
    high = np.array([rec["high"][b] for b in bands], np.float64)
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (high > low).all()):
        raise SchemaError(f"{path}: need finite low < high for bands {list(bands)}, "
                          f"got low {low.tolist()}, high {high.tolist()}")
    return low, high, rec


def write_metric_records(path, records: Sequence[Mapping]) -> None:
    """A compare job's records as JSON ``{"records": [...]}``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"records": list(records)}, indent=1))


def read_metric_records(path) -> list:
    """The records list of a metric record file (each record is validated by ``report.records``)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: metric file does not exist") from None
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise SchemaError(f"{path}: expected a JSON object with a 'records' list")
    return doc["records"]
