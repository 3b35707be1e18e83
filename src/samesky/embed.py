"""Embed a preprocessed file with one model, resumably.

Rows are read in shards of ``shard_size``; each finished shard is written atomically to
``{out}.shards/shard-<i>.npz`` with its object ids and a fingerprint of (model key, source,
precision, input file identity), so a killed job restarts from the shards it completed and
never reuses shards of another model/input (those are discarded with a log message). On CUDA
the batch size halves on out-of-memory and the batch is retried. The final embedding file
appears atomically (``schema.write_embeddings``) and the shard directory is then removed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from . import schema
from .models import get_model, load_embedder

log = logging.getLogger(__name__)


def input_identity(path: str | os.PathLike) -> dict:
    """What identifies an input file's content without hashing all of it.

    Object ids (hashed), data shape and dtype, the writer's provenance (percentiles, recipe...),
    a hash of the first and last rows, and the file size.
    """
    with schema.open_h5(path) as f:
        ids = schema.as_str_ids(f["object_id"][:])
        data = f["data"]
        h = hashlib.sha256("\n".join(ids).encode())
        if len(ids):
            h.update(np.ascontiguousarray(data[0]).tobytes())
            h.update(np.ascontiguousarray(data[-1]).tobytes())
        return {"n": len(ids), "shape": list(data.shape), "dtype": str(data.dtype),
                "provenance": f.attrs.get("provenance", "{}"), "content_sha256": h.hexdigest(),
                "size": os.path.getsize(path)}


def fingerprint(model_key: str, source: str, precision: str, identity: Mapping) -> str:
    blob = json.dumps({"model": model_key, "source": str(source), "precision": precision, "input": identity},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _save_shard(path: Path, ids: np.ndarray, emb: np.ndarray, fp: str, start: int, stop: int) -> None:
    with schema.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, object_id=ids.astype(str), embedding=emb, fingerprint=np.array(fp), start=start, stop=stop)


def _load_shard(path: Path, fp: str, ids: np.ndarray, start: int, stop: int) -> np.ndarray | None:
    """The shard's embeddings if it belongs to this run and covers exactly ids[start:stop], else None."""
    try:
        with np.load(path) as z:
            ok = (str(z["fingerprint"]) == fp and int(z["start"]) == start and int(z["stop"]) == stop
                  and np.array_equal(z["object_id"], ids[start:stop]))
            emb = z["embedding"] if ok else None
    except (OSError, ValueError, KeyError) as err:
        log.warning("discarding unreadable shard %s: %s", path, err)
        return None
    if emb is None:
        log.warning("discarding stale shard %s (different model, source, precision, input or shard size)", path)
    return emb


def _embed_rows(embedder, data: np.ndarray, batch_size: int) -> tuple[np.ndarray, int]:
    """Embed rows in batches; on CUDA out-of-memory halve the batch size and retry the batch."""
    out, i = [], 0
    while i < len(data):
        try:
            out.append(embedder.embed(data[i:i + batch_size]).numpy())
            i += batch_size
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size //= 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning("CUDA out of memory: batch size halved to %d, retrying rows %d..", batch_size, i)
    return np.concatenate(out).astype(np.float32, copy=False), batch_size


def _versions() -> dict:
    import transformers

    try:
        samesky_version = version("samesky")
    except PackageNotFoundError:
        samesky_version = "unknown"
    return {"torch": torch.__version__, "transformers": transformers.__version__, "samesky": samesky_version}


def embed_file(preprocessed_path, out_path, *, model_key: str, source: str | None = None, batch_size: int = 64,
               device: str = "auto", precision: str = "auto", shard_size: int = 1024,
               provenance: Mapping | None = None) -> Path:
    """Embed every row of a preprocessed file with ``model_key`` loaded from ``source``; return out_path."""
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"batch_size ({batch_size}) and shard_size ({shard_size}) must be >= 1")
    out_path = Path(out_path)
    spec = get_model(model_key)
    kind = schema.validate_preprocessed(preprocessed_path)
    if kind != spec.input_kind:
        raise schema.SchemaError(f"{preprocessed_path} holds {kind} inputs, but model {model_key!r} embeds "
                                 f"{spec.input_kind} inputs")
    with schema.open_h5(preprocessed_path) as f:
        input_provenance = schema.read_provenance(f)
    embedder = load_embedder(model_key, source, device=device, precision=precision)
    embedder.bind(input_provenance)
    ids = schema.read_object_ids(preprocessed_path)
    fp = fingerprint(model_key, embedder.source, embedder.precision, input_identity(preprocessed_path))
    shard_dir = out_path.with_name(out_path.name + ".shards")
    shard_dir.mkdir(parents=True, exist_ok=True)
    bounds = [(s, min(s + shard_size, len(ids))) for s in range(0, len(ids), shard_size)]
    wanted = {shard_dir / f"shard-{i:06d}.npz" for i in range(len(bounds))}
    for extra in sorted(set(shard_dir.glob("shard-*.npz")) - wanted):
        log.warning("discarding stale shard %s (not part of this run)", extra)
        extra.unlink()

    parts = []
    for i, (start, stop) in enumerate(bounds):
        path = shard_dir / f"shard-{i:06d}.npz"
        emb = _load_shard(path, fp, ids, start, stop) if path.exists() else None
        if emb is None:
            shard_ids, data = schema.read_preprocessed(preprocessed_path, start, stop)
            if not np.array_equal(shard_ids, ids[start:stop]):
                raise schema.SchemaError(f"{preprocessed_path}: object ids changed while embedding")
            emb, batch_size = _embed_rows(embedder, data, batch_size)
            schema.check_finite(emb, shard_ids, f"{model_key} embeddings of {preprocessed_path}")
            _save_shard(path, shard_ids, emb, fp, start, stop)
            log.info("%s: shard %d/%d (rows %d-%d) embedded", out_path, i + 1, len(bounds), start, stop)
        else:
            log.info("%s: shard %d/%d (rows %d-%d) resumed", out_path, i + 1, len(bounds), start, stop)
        parts.append(emb)

    prov = {**embedder.describe(), "input": str(preprocessed_path), "input_provenance": input_provenance,
            "n": len(ids), "batch_size": batch_size, "fingerprint": fp, "versions": _versions(),
            **(provenance or {})}
    embedding = np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)
    schema.write_embeddings(out_path, ids, embedding, prov)
    shutil.rmtree(shard_dir)
    return out_path
