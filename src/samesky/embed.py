"""Embed a preprocessed file with one model, resumably, with a parallel input pipeline.

Rows are read in shards of ``shard_size``; each finished shard is written atomically to
``{out}.shards/shard-<i>.npz`` with its object ids and a fingerprint of (model key, source,
precision, input file identity), so a killed job restarts from the shards it completed and
never reuses shards of another model/input (those are discarded with a log message). On CUDA
the batch size halves on out-of-memory and the batch is retried. The final embedding file
appears atomically (``schema.write_embeddings``) and the shard directory is then removed.

Layer-wise embeddings (``layers`` other than 'final'): the same forward pass also pools the
selected blocks (``Embedder.run_layers``); each shard carries its rows' blocks (float16, as the
layers file stores them) and the fingerprint includes the selection, so shards of another
selection are never reused. The layers file (``schema.write_layers``) is written from the shards
one block at a time, so memory holds one shard's blocks while embedding and one block of all rows
while writing, never all N x L. The final embedding is the one ``forward`` gives, bit for bit.

Input pipeline: reading rows and ``Embedder.prepare`` (processors, tokenisers: the CPU part)
run in ``workers`` forked DataLoader processes, each with its own HDF5 handle, a few batches
ahead of the forward pass; on CUDA the batches arrive in pinned memory and the next one is
copied to the device on a side stream while the current one runs. Batches are the same rows
as without workers and each is prepared by the same code, so the embeddings are bit-identical
(``workers=0`` prepares in this process).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from . import schema
from .models import get_model, load_embedder
from .models.base import batch_slice, select_blocks, to_device

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


def fingerprint(model_key: str, source: str, precision: str, identity: Mapping,
                blocks: list[int] | None = None) -> str:
    """What a shard must match to be reused; ``blocks``: the selected block indices (None: final only)."""
    run = {"model": model_key, "source": str(source), "precision": precision, "input": identity}
    if blocks is not None:  # absent for final-only runs, so their fingerprint is what it always was
        run["blocks"] = list(blocks)
    return hashlib.sha256(json.dumps(run, sort_keys=True, default=str).encode()).hexdigest()


def _block_key(j: int) -> str:
    return f"block_{j:03d}"


def _save_shard(path: Path, ids: np.ndarray, outputs: list[np.ndarray], fp: str, start: int, stop: int) -> None:
    """outputs: the final embedding, then the selected blocks (already float16)."""
    blocks = {_block_key(j): block for j, block in enumerate(outputs[1:])}
    with schema.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, object_id=ids.astype(str), embedding=outputs[0], fingerprint=np.array(fp), start=start,
                 stop=stop, **blocks)


def _load_shard(path: Path, fp: str, ids: np.ndarray, start: int, stop: int, n_blocks: int) -> np.ndarray | None:
    """The shard's final embeddings if it belongs to this run, covers exactly ids[start:stop] and
    holds its ``n_blocks`` blocks, else None (its blocks are read when the layers file is written)."""
    try:
        with np.load(path) as z:
            ok = (str(z["fingerprint"]) == fp and int(z["start"]) == start and int(z["stop"]) == stop
                  and np.array_equal(z["object_id"], ids[start:stop])
                  and all(_block_key(j) in z.files for j in range(n_blocks)))
            emb = z["embedding"] if ok else None
    except (OSError, ValueError, KeyError) as err:
        log.warning("discarding unreadable shard %s: %s", path, err)
        return None
    if emb is None:
        log.warning("discarding stale shard %s (different model, source, precision, input, layers or shard size)",
                    path)
    return emb


class ShardBlocks(Sequence):
    """Block j of every shard, concatenated when item j is read: the layers file is written from
    the shards one block at a time (``schema.write_layers`` reads its blocks in turn)."""

    def __init__(self, paths: list[Path], n_blocks: int):
        self.paths, self.n_blocks = paths, n_blocks

    def __len__(self) -> int:
        return self.n_blocks

    def __getitem__(self, j: int) -> np.ndarray:
        if not 0 <= j < self.n_blocks:
            raise IndexError(j)
        parts = []
        for path in self.paths:
            with np.load(path) as z:
                parts.append(z[_block_key(j)])
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float16)  # no rows: no known width


class PreparedBatches(torch.utils.data.Dataset):
    """Item i: (shard, object ids, ``prepare(rows)``) of ``batches[i] = (shard, start, stop)``.

    The file is opened once per process that fetches items (each DataLoader worker; h5py
    handles must not cross a fork), and read errors name it.
    """

    def __init__(self, path: str | os.PathLike, batches: list[tuple[int, int, int]], prepare: Callable):
        self.path, self.batches, self.prepare = str(path), batches, prepare
        self._h5, self._pid = None, None

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray, Any]:
        shard, start, stop = self.batches[i]
        if self._pid != os.getpid():
            self._h5, self._pid = schema.open_h5(self.path), os.getpid()
        try:
            ids, rows = schema.as_str_ids(self._h5["object_id"][start:stop]), self._h5["data"][start:stop]
        except (OSError, RuntimeError, KeyError) as err:
            raise schema.SchemaError(f"{self.path}: unreadable rows {start}-{stop}: {err}") from None
        return shard, ids, self.prepare(rows)

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = self._pid = None


def _as_is(item):
    return item


def input_batches(dataset: PreparedBatches, workers: int, device: torch.device) -> torch.utils.data.DataLoader:
    """The dataset's items in order, prepared by ``workers`` processes (0: in this one).

    Workers are forked, so they share the loaded embedder (its ``prepare`` must stay on the CPU)
    and nothing is pickled; each runs torch on one thread and keeps 4 batches in flight.
    """
    if workers < 0:
        raise ValueError(f"workers ({workers}) must be >= 0")
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_as_is,
        pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None,
        multiprocessing_context="fork" if workers else None)


def _record(inputs: Any, stream) -> None:
    if isinstance(inputs, torch.Tensor):
        inputs.record_stream(stream)
    elif isinstance(inputs, dict):
        for v in inputs.values():
            _record(v, stream)


def on_device(items: Iterable, device: torch.device) -> Iterator:
    """(shard, ids, inputs) with inputs on ``device``; on CUDA the next batch's host-to-device
    copy runs on a side stream, overlapping the current batch's forward pass."""
    if device.type != "cuda":
        yield from items
        return
    side, it = torch.cuda.Stream(device), iter(items)

    def start_copy(item):
        with torch.cuda.stream(side):
            return (*item[:2], to_device(item[2], device))

    nxt = next(it, None)
    nxt = start_copy(nxt) if nxt is not None else None
    while nxt is not None:
        current = torch.cuda.current_stream(device)
        current.wait_stream(side)  # this batch's copy is done before its forward starts
        _record(nxt[2], current)  # its memory is freed only after the main stream is done with it
        cur, nxt = nxt, next(it, None)
        nxt = start_copy(nxt) if nxt is not None else None
        yield cur


def _embed_rows(run: Callable, batches: Iterable[tuple[np.ndarray, Any]], batch_size: int
                ) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Forward one shard's prepared batches: (ids, [final embeddings, *selected blocks], batch size now).

    ``run(inputs)`` gives (final, [blocks]) as CPU tensors. On CUDA out-of-memory halve the batch
    size and retry: prepared batches are then forwarded in slices of the smaller size.
    """
    ids, out = [], []
    for batch_ids, inputs in batches:
        ids.append(batch_ids)
        i = 0
        while i < len(batch_ids):
            try:
                final, blocks = run(batch_slice(inputs, i, i + batch_size))
                out.append([final.numpy(), *(b.numpy() for b in blocks)])
                i += batch_size
            except torch.OutOfMemoryError:
                if batch_size == 1:
                    raise
                batch_size //= 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                log.warning("CUDA out of memory: batch size halved to %d, retrying", batch_size)
    return np.concatenate(ids), [np.concatenate(parts).astype(np.float32, copy=False) for parts in zip(*out)], batch_size


def _versions() -> dict:
    import transformers

    try:
        samesky_version = version("samesky")
    except PackageNotFoundError:
        samesky_version = "unknown"
    return {"torch": torch.__version__, "transformers": transformers.__version__, "samesky": samesky_version}


def embed_file(preprocessed_path, out_path, *, model_key: str, source: str | None = None, batch_size: int = 64,
               device: str = "auto", precision: str = "auto", shard_size: int = 1024, workers: int = 0,
               provenance: Mapping | None = None, layers: str | list[int] = "final",
               layers_path: str | os.PathLike | None = None) -> Path:
    """Embed every row of a preprocessed file with ``model_key`` loaded from ``source``; return out_path.

    ``workers``: input processes that read and prepare batches (0: this process does it).
    ``layers``: 'final' (the final embedding only), 'all' or 0-based block indices (negative from
    the last): those blocks' pooled outputs also go to ``layers_path`` (``schema.write_layers``).
    """
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"batch_size ({batch_size}) and shard_size ({shard_size}) must be >= 1")
    if (layers != "final") != (layers_path is not None):
        raise ValueError(f"layers_path is needed exactly when layers are asked for (layers={layers!r}, "
                         f"layers_path={layers_path!r})")
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
    names = embedder.block_names() if layers != "final" else []
    blocks = select_blocks(layers, names, model_key) if layers != "final" else None
    fp = fingerprint(model_key, embedder.source, embedder.precision, input_identity(preprocessed_path), blocks)
    shard_dir = out_path.with_name(out_path.name + ".shards")
    shard_dir.mkdir(parents=True, exist_ok=True)
    bounds = [(s, min(s + shard_size, len(ids))) for s in range(0, len(ids), shard_size)]
    paths = [shard_dir / f"shard-{i:06d}.npz" for i in range(len(bounds))]
    for extra in sorted(set(shard_dir.glob("shard-*.npz")) - set(paths)):
        log.warning("discarding stale shard %s (not part of this run)", extra)
        extra.unlink()

    parts = {}
    for i, ((start, stop), path) in enumerate(zip(bounds, paths)):
        emb = _load_shard(path, fp, ids, start, stop, len(blocks or ())) if path.exists() else None
        if emb is not None:
            parts[i] = emb
            log.info("%s: shard %d/%d (rows %d-%d) resumed", out_path, i + 1, len(bounds), start, stop)
    batches = [(i, s, min(s + batch_size, stop)) for i, (start, stop) in enumerate(bounds) if i not in parts
               for s in range(start, stop, batch_size)]
    dataset = PreparedBatches(preprocessed_path, batches, embedder.prepare)
    loader = input_batches(dataset, workers if batches else 0, embedder.device)  # no forks for nothing
    stream = on_device(loader, embedder.device)

    def run(inputs):  # -> (final, [selected blocks]); embedder.run is looked up per call (tests replace it)
        if blocks is None:
            return embedder.run(inputs), []
        return embedder.run_layers(inputs, blocks)

    try:
        for i, shard in itertools.groupby(stream, key=lambda item: item[0]):
            start, stop = bounds[i]
            shard_ids, outputs, batch_size = _embed_rows(run, ((b, x) for _, b, x in shard), batch_size)
            if not np.array_equal(shard_ids, ids[start:stop]):
                raise schema.SchemaError(f"{preprocessed_path}: object ids changed while embedding")
            emb = outputs[0]
            schema.check_finite(emb, shard_ids, f"{model_key} embeddings of {preprocessed_path}")
            outputs[1:] = [schema.as_float16(block, shard_ids, f"{model_key} block {names[j]!r} of {preprocessed_path}")
                           for j, block in zip(blocks or (), outputs[1:])]
            _save_shard(paths[i], shard_ids, outputs, fp, start, stop)
            parts[i] = emb
            log.info("%s: shard %d/%d (rows %d-%d) embedded", out_path, i + 1, len(bounds), start, stop)
    finally:
        stream.close()  # stops the workers now, also when a shard failed
        dataset.close()

    prov = {**embedder.describe(), "input": str(preprocessed_path), "input_provenance": input_provenance,
            "n": len(ids), "batch_size": batch_size, "fingerprint": fp, "versions": _versions(),
            **(provenance or {})}
    embedding = (np.concatenate([parts[i] for i in range(len(bounds))]) if bounds
                 else np.zeros((0, embedder.dim), np.float32))
    if blocks is not None:  # before the final file: a job killed in between still has its shards
        schema.write_layers(layers_path, ids, ShardBlocks(paths, len(blocks)), [names[j] for j in blocks],
                            {**prov, "block_index": blocks, "n_blocks": len(names)})
    schema.write_embeddings(out_path, ids, embedding, prov)
    shutil.rmtree(shard_dir)
    return out_path
