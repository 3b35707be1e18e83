"""Layer-wise alignment (issue 15): every block of one model against every block of another.

A side of a compared pair is its model's blocks (the layers file of the embedding job, read
block by block in its float16) followed by its final embedding, the block named "final" (index
L, depth 1.0); the latent truth has only "final". Every (block_a, block_b) cell of every metric
gets raw, tau, calibrated and p at level alpha.

Cost. Each block's kNN graph (and its Gram invariants, for closed-form nulls) is built once, by
the embedding's ``knn_graph`` job, beside its final graph (``knn_layers_file``): L_a + L_b builds per pair, shared
by every pair the block is in and by every null draw. Nulls permute side B's objects with the
seeded permutations of ``compare`` (``stats.permutations``): the same draws for every cell and
every metric.

Nothing here asks a metric's name. A metric with a batched hook (``registry.Metric.layer_cells``)
scores all its cells at once in its own module: MKNN and CKNNA by relabelling the cached graphs
(a draw's relabelled graphs made once per block, not per cell), both CKAs with the closed-form
null from each block's cached invariants (no draws: a feature-space draw per cell is what this
stage avoids), MI by permutation draws on each block's principal scores. Any other metric runs
through ``drawn_cells``: its estimator on every cell, its closed-form null where it declares one,
otherwise its null draws, at most ``metrics.feature_space_draws`` of them where each draw costs
O(N d^2), as in ``compare``. The final x final cell is ``compare.compare_files`` itself (intervals
off: they do not change score, null or tau), so it equals the compare job's record exactly.
Every cell also gets p, tau and calibrated against the null of the maximum over all cells
(``max_corrected``: the report's best block pair is that maximum).
Every cell records its ``null_method``: 'permutation' (null_draws draws) or 'closed_form', or
'pairing_free' for a measure that ignores the row pairing (``Metric.pairing_free``): no draws are
made for it and its tau, p and calibrated are empty (its raw score stands alone).
"""
from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np
import torch

from .. import schema
from ..plan import COMPARISON_FIELDS, LAYER_FIELDS
from .compare import (
    cached_invariants,
    common_rows,
    compare_files,
    read_checked_embeddings,
    read_graph,
    restrict,
)
from .device import pick_device
from .knn import default_chunk_size, file_graph
from .pair import Pair
from .registry import PAIRING_FREE, get_metric
from .stats import calibrated, max_null, p_value, permutation_threshold, permutations, summarise

log = logging.getLogger(__name__)

FINAL = "final"


# ---- files --------------------------------------------------------------------------------
def knn_layers_file(layers_path, out_path, k: int, *, width: int | None = None, device=None,
                    chunk_size: int | None = None, precision: str = "fp32", invariants: bool = False) -> None:
    """Every block's kNN graph of one layers file (``knn.knn_graph``, as ``knn_file`` builds the
    final embedding's; the rule asks for k columns, ``width`` more) and, with ``invariants``, its Gram invariants
    (``rv_null``), written to ``out_path``: root ``object_id``, a group ``block_<j>`` per block with
    ``indices``, ``similarity`` and the block's name, CPU and wall seconds (and invariants) in its
    provenance. Resumable: a rerun after a kill starts after the last finished block
    (``schema.BlockGraphsWriter``)."""
    src = schema.LayersFile(layers_path)
    n = len(src.ids)
    k = max(k, min(width or k, n - 1))
    dev = pick_device(device)
    settings = {"k": k, "metric": "cosine", "precision": precision, "source": src.path,
                "chunk_size": chunk_size or default_chunk_size(n, dev), "invariants": invariants}
    stat = os.stat(src.path)
    writer = schema.BlockGraphsWriter(out_path, src.ids, {**settings, "device": str(dev), "torch": torch.__version__},
                                      key={**settings, "source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns})
    for j, name in enumerate(src.names):
        if writer.finished(j, name):
            log.info("block %s of %s: finished by an earlier run, kept", name, layers_path)
            continue
        Z = src.block(j).astype(np.float32)
        start, cpu = time.perf_counter(), time.process_time()
        indices, similarity, record = file_graph(Z, src.ids, k, f"{layers_path}: block {name!r}", device=dev,
                                                 chunk_size=chunk_size, precision=precision, invariants=invariants)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        writer.add(name, indices, similarity, {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                                               "device": str(dev), **({"gram_invariants": record} if invariants else {})})
        log.info("block %s of %s: N=%d D=%d k=%d in %.1f s (%.1f CPU-s)", name, layers_path, *Z.shape, k,
                 seconds, cpu)
    writer.finish()


def read_block_graphs(path, layers: schema.LayersFile, k: int, columns: int | None = None
                      ) -> list[tuple[tuple[np.ndarray, np.ndarray], dict | None]]:
    """Per block of ``layers``: its cached graph (``schema.read_knn_layers``) and Gram invariants
    (``rv_null.Invariants`` per variant; None if not cached)."""
    from .rv_null import Invariants

    out = []
    for j, (graph, provenance) in enumerate(schema.read_knn_layers(path, layers, k, columns)):
        cached = provenance.get("gram_invariants")
        out.append((graph, None if cached is None else {
            kind: Invariants.from_dict(d, f"{path}: block_{j:03d}.gram_invariants.{kind}") for kind, d in cached.items()}))
    return out


# ---- the sides of a pair --------------------------------------------------------------
class BlockCache:
    """The layer blocks a compare_layers job holds: at most ``limit`` bytes of them (None: every
    block once read), the least recently used dropped first and read again from its layers file
    when a cell needs it (``reads`` counts every read). Holding every block of both sides is what
    breaks the largest pairs (two 40-block sides at N = 102k, d = 1536: 25 GB, issue 31); within a
    limit they pay in reads instead (at most one per cell, ``cost``)."""

    def __init__(self, limit: int | None = None):
        self.limit, self.held, self.reads = limit, OrderedDict(), 0

    def get(self, key, read: Callable[[], np.ndarray]) -> np.ndarray:
        if key in self.held:
            self.held.move_to_end(key)
            return self.held[key]
        Z = self.held[key] = read()
        self.reads += 1
        while self.limit is not None and len(self.held) > 1 and sum(z.nbytes for z in self.held.values()) > self.limit:
            self.held.popitem(last=False)
        return Z


@dataclass
class Block:
    name: str
    index: int
    depth: float
    data: np.ndarray | Callable[[], np.ndarray]  # its rows common to both sides, or how to read them (cache)
    graph: tuple[np.ndarray, np.ndarray] | None  # k columns
    invariants: dict | None  # rv_null.gram_invariants, if cached for exactly these rows
    cache: BlockCache | None = None

    @property
    def Z(self) -> np.ndarray:
        """(n, d) rows common to both sides: float16 (a layers file's block) or float32 (final)."""
        return self.cache.get(id(self), self.data) if callable(self.data) else self.data


def _block_rows(layers: schema.LayersFile, j: int, rows) -> np.ndarray:
    Z = layers.block(j)
    return Z if rows is None else Z[rows]


def _side(side: dict, ids: np.ndarray, Z: np.ndarray, rows, k: int, graphs: bool, cache: BlockCache) -> list[Block]:
    """The blocks of one side (its layers, if any, read through ``cache``, then "final", held), on
    the rows both sides share."""
    blocks, final_index = [], 0
    if side.get("layers"):
        layers = schema.LayersFile(side["layers"])
        if len(layers.ids) != len(ids) or not np.array_equal(layers.ids, ids):
            raise schema.SchemaError(f"{layers.path} does not hold the objects of {side['emb']} in the same order; "
                                     f"both come from one embedding job: rerun it")
        if not side.get("knn_layers"):
            raise ValueError(f"{layers.path}: its block graphs (knn_layers) are missing")
        cached = read_block_graphs(side["knn_layers"], layers, k, None if rows is not None else k)
        final_index = int(layers.provenance.get("n_blocks", len(layers.names)))
        for j, (name, (index, depth)) in enumerate(zip(layers.names, layers.positions)):
            graph, inv = cached[j]
            if not graphs:
                graph = None
            elif rows is not None:  # restricted once, here: the rows are read again when a cell needs them
                graph = restrict(layers.block(j), graph, rows, f"{layers.path} {name}", k)[1]
            blocks.append(Block(name, index, depth, partial(_block_rows, layers, j, rows), graph,
                                inv if rows is None else None, cache))
    graph = read_graph(side["knn"], side["emb"], ids, k) if graphs else None
    inv = cached_invariants(side["knn"], rows)
    Zf, graph = restrict(Z, graph, rows, side["emb"], k)
    blocks.append(Block(FINAL, final_index, 1.0, Zf, graph, inv))
    return blocks


# ---- the comparison -----------------------------------------------------------------------
def compare_layer_files(side_a: dict, side_b: dict, *, comparison: dict, metrics: list[str], k: int,
                        null_draws: int, seed: int, alpha: float = 0.05, cka_null: str = "closed_form",
                        feature_space_draws: int = 100, params: dict[str, dict] | None = None,
                        device=None, block_cache_bytes: int | None = None) -> list[dict]:
    """Every metric on every (block_a, block_b) cell of one pair, as rows of ``plan.LAYER_FIELDS``.
    ``params``: each metric's tunable parameters, as in ``compare_files``. ``block_cache_bytes``:
    the most bytes of layer blocks held at once (``BlockCache``; None: all of them).

    A side is {"emb", "knn"} (its final embedding and cached graph) plus, for a model with
    blocks, {"layers", "knn_layers"}. ``cka_null``, ``feature_space_draws``: only for the final x
    final cell, which is ``compare_files``'s; every other CKA cell uses the closed-form null.
    """
    missing = [f for f in COMPARISON_FIELDS if f not in comparison]
    if missing:
        raise KeyError(f"comparison is missing {missing}")
    specs = [get_metric(name) for name in metrics]
    start = time.perf_counter()
    final = compare_files(side_a["emb"], side_b["emb"], side_a["knn"], side_b["knn"], comparison=comparison,
                          metrics=metrics, k=k, null_draws=null_draws, subsampling_splits=0, ci=0.95, seed=seed,
                          feature_space_draws=feature_space_draws, alpha=alpha, cka_null=cka_null, params=params,
                          device=device)
    ids_a, Za = read_checked_embeddings(side_a["emb"])
    ids_b, Zb = read_checked_embeddings(side_b["emb"])
    rows_a, rows_b, _ = common_rows(ids_a, ids_b, side_a["emb"], side_b["emb"], k)
    graphs = any(s.uses_knn for s in specs)
    cache = BlockCache(block_cache_bytes)
    A = _side(side_a, ids_a, Za, rows_a, k, graphs, cache)
    B = _side(side_b, ids_b, Zb, rows_b, k, graphs, cache)
    n = len(A[-1].Z)  # the final embedding's rows, held
    cells = [(i, j) for i in range(len(A)) for j in range(len(B))]  # final x final too: its draws join the max
    perms = _permutation_table(n, null_draws, seed)
    tunable = {s.name: {**{key: v for key, v in s.defaults.items() if key != "k"}, **(params or {}).get(s.name, {})}
               for s in specs}
    scored: dict[str, dict] = {}
    hooks: dict = {}  # metrics sharing a batched hook are scored by one call (both CKAs share each product)
    for spec in specs:
        if spec.layer_cells is not None:
            hooks.setdefault(spec.layer_cells, {})[spec.name] = {**spec.fixed, **tunable[spec.name]}
    for hook, group in hooks.items():
        scored.update(hook(A, B, cells, group, k=k, perms=perms, device=device))
    for spec in specs:
        if spec.layer_cells is None:
            scored[spec.name] = drawn_cells(spec, A, B, cells, k, tunable[spec.name],
                                            perms[: spec.null_draws_made(len(perms), feature_space_draws)], device)
    results = {spec.name: {c: _cell(spec, *scored[spec.name][c], alpha) for c in cells} for spec in specs}
    rows = []
    for rec in final:
        cell = {"raw": rec["score"], "calibrated": rec["calibrated"], "tau": rec["tau"], "p": rec["p_value"],
                "null_draws": rec["null_draws"], "null_method": rec["null_method"]}
        results[rec["metric"]][(len(A) - 1, len(B) - 1)] = cell
    for spec in specs:
        corrected = max_corrected(spec, {c: results[spec.name][c]["raw"] for c in cells},
                                  {c: scored[spec.name][c][1] for c in cells}, alpha)
        for c in cells:
            results[spec.name][c].update(corrected[c])
    for spec in specs:
        for i, a in enumerate(A):
            for j, b in enumerate(B):
                rows.append({**{f: comparison[f] for f in COMPARISON_FIELDS}, "metric": spec.name,
                             "block_a": a.name, "block_b": b.name, "index_a": a.index, "index_b": b.index,
                             "depth_a": a.depth, "depth_b": b.depth, "n": n,
                             "k": k if spec.takes_k else None, "alpha": alpha, **results[spec.name][(i, j)]})
    log.info("%d x %d blocks, %d metrics, %d null draws: %.1f s; %d block reads (held at most %s bytes)",
             len(A), len(B), len(specs), null_draws, time.perf_counter() - start, cache.reads, block_cache_bytes)
    return [{f: row[f] for f in LAYER_FIELDS} for row in rows]


def _permutation_table(n: int, draws: int, seed: int) -> np.ndarray:
    """(draws, n) int32: the permutations of ``stats.permutations``, drawn once for every cell."""
    table = np.empty((draws, n), np.int32 if n < 2**31 else np.int64)
    for d, pi in enumerate(permutations(n, draws, seed)):
        table[d] = pi
    return table


def _cell(spec, score: float, null, alpha: float) -> dict:
    """A cell's fields from its score and its null: draws (an array) or a closed-form law."""
    if hasattr(null, "threshold"):
        tau = null.threshold(alpha)
        return {"raw": float(score), "calibrated": calibrated(score, tau, spec.scale), "tau": tau,
                "p": null.p_value(score), "null_draws": 0, "null_method": "closed_form"}
    st = summarise(score, np.asarray(null, float), np.empty(0), 0.95, alpha=alpha, scale=spec.scale,
                   no_null=PAIRING_FREE if spec.pairing_free else None)
    return {"raw": float(score), "calibrated": st["calibrated"], "tau": st["tau"], "p": st["p_value"],
            "null_draws": st["null_draws"], "null_method": st["null_method"]}


NO_MAX = {"p_max": None, "tau_max": None, "calibrated_max": None, "max_method": None}


def max_corrected(spec, raw: dict, nulls: dict, alpha: float) -> dict:
    """Every cell's p, tau and calibrated score against the null of the maximum over all
    ``nulls``' cells (the statistic the best block pair is): ``max_method`` 'max_null' where every
    cell has draws (on the same permutations: ``stats.max_null`` of their first common count; a
    cell's p against it is the single-step max-T adjusted p, and for the cell of the highest score
    it is Groger et al.'s Algorithm 2), 'bonferroni' where a cell has a closed-form law (no draws
    to take the maximum of): p times the count of cells (at most 1), tau at level alpha / cells,
    a conservative bound. None for a pairing-free measure or without null draws."""
    if spec.pairing_free:
        return {c: NO_MAX for c in raw}
    direction = "distance" if spec.scale == "distance" else "similarity"
    if not any(hasattr(null, "threshold") for null in nulls.values()):
        draws = min(len(null) for null in nulls.values())
        if not draws:
            return {c: NO_MAX for c in raw}
        null = max_null([np.asarray(nulls[c], float)[:draws] for c in raw], direction)
        taus = {c: permutation_threshold(s, null, alpha, direction) for c, s in raw.items()}
        return {c: {"p_max": p_value(s, null, direction), "tau_max": taus[c],
                    "calibrated_max": calibrated(s, taus[c], spec.scale), "max_method": "max_null"}
                for c, s in raw.items()}
    m, out = len(raw), {}
    for c, s in raw.items():
        null = nulls[c]
        if hasattr(null, "threshold"):
            p, tau = null.p_value(s), null.threshold(alpha / m)
        else:
            p, tau = p_value(s, null, direction), permutation_threshold(s, null, alpha / m, direction)
        out[c] = {"p_max": min(1.0, m * p), "tau_max": tau, "calibrated_max": calibrated(s, tau, spec.scale),
                  "max_method": "bonferroni"}
    return out


def drawn_cells(spec, A, B, cells, k: int, params: dict, perms: np.ndarray, device) -> dict:
    """The generic layer stage of a metric without a batched hook: its estimator on every cell
    (per-block quantities computed once, ``Pair.memo``), with its closed-form null where it
    declares one and it applies, else its null on each row of ``perms`` (already capped)."""
    memo, out = {}, {}
    for i, j in cells:
        pair = Pair(A[i].Z, B[j].Z, A[i].graph, B[j].graph, device=device, memo=memo,
                    invariants=(A[i].invariants, B[j].invariants), keys=(id(A[i]), id(B[j])))
        est = spec.estimator(pair, **({"k": k} if spec.takes_k else {}), **params)
        law = est.closed_null() if spec.closed_form else None
        out[(i, j)] = (est.score(), law if law is not None else np.array([est.null(pi) for pi in perms]))
    return out


def write_layer_rows(path, rows: list[dict]) -> None:
    """The tidy CSV of one pair (``plan.LAYER_FIELDS``), written atomically."""
    import pandas as pd

    with schema.atomic_path(path) as tmp:
        table = pd.DataFrame(rows, columns=list(LAYER_FIELDS)).astype({"k": "Int64"})  # integers, empty where none
        table.to_csv(tmp, index=False)
