"""Layer-wise alignment (issue 15): every block of one model against every block of another.

A side of a compared pair is its model's blocks (the layers file of the embedding job, read
block by block in its float16) followed by its final embedding, the block named "final" (index
L, depth 1.0); the latent truth has only "final". Every (block_a, block_b) cell of every metric
gets raw, tau, calibrated and p at level alpha.

Cost. Each block's kNN graph (and its Gram invariants, for the closed-form CKA null) is built
once, by one ``knn_layers`` job per layers file (``knn_layers_file``): L_a + L_b builds per
pair, shared by every pair the block is in and by every null draw. Nulls permute side B's
objects with the seeded permutations of ``compare`` (``stats.permutations``): the same draws
for every cell and every metric.

- mknn: relabelled graphs (``MknnEstimator.null``): O(k^2 N) comparisons per cell and draw,
  equal draw for draw; a draw's relabelled graphs are made once per block, not per cell.
- cknna (platonic-rep's): the same relabelled draws, the HSIC sums computed densely
  (``cknna_nulls``), each block's self HSIC once; equal to the estimator's up to round-off.
- cka_linear, cka_unbiased: the closed-form null (``rv_null.ClosedNull``) from each block's
  cached invariants, no draws (a feature-space draw per cell is what this stage avoids); the
  score costs one d_a x N x d_b product per cell.
- mutual_info: permutation draws on each block's principal scores (one PCA per block), O(N r^2)
  per cell and draw.
- cknna_formula (not in the paper's metrics): its estimator's relabelled draws, cell by cell.
Draw loops are vectorised over a batch of draws in torch on a GPU (``metrics.device``); on a CPU
numpy takes one draw at a time (its comparisons are ~10x faster than torch's there).
The final x final cell is ``compare.compare_files`` itself (intervals off: they do not change
score, null or tau), so it equals the compare job's record exactly. Every cell records its
``null_method``: 'permutation' (null_draws draws) or 'closed_form' (CKA, null_draws 0).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import h5py
import numpy as np
import torch

from .. import schema
from .compare import COMPARISON_FIELDS, _cached_invariants, _read_embeddings, _read_graph, common_rows, compare_files
from .device import as_matrix, full_fp32, pick_device
from .knn import default_chunk_size, file_graph, restrict_graph
from .mknn import graph_prefix, matches, transposed
from .registry import get_metric
from .stats import permutations, summarise

log = logging.getLogger(__name__)

FINAL = "final"
ROW_FIELDS = ("metric", "crossmatch", "kind", "survey_a", "model_a", "survey_b", "model_b", "block_a", "block_b",
              "index_a", "index_b", "depth_a", "depth_b", "n", "k", "raw", "calibrated", "tau", "p", "alpha",
              "null_draws", "null_method")
_CHUNK = 8192
_BATCH_BYTES = {"cpu": 256 << 20, "cuda": 4 << 30}  # working memory of one batch of batched null draws


# ---- files --------------------------------------------------------------------------------
class LayersFile:
    """A layers file (``schema.write_layers``) read one block at a time, in its float16: the L
    blocks of a large model need not fit in memory as float32."""

    def __init__(self, path):
        self.path = os.fspath(path)
        with schema.read_h5(path) as f:
            self.ids = schema.as_str_ids(schema._require(f, "object_id", path, (None,), kinds="OSU")[:])
            self.provenance = schema.read_provenance(f)
        self.names = list(self.provenance.get("blocks") or [])
        if not self.names:
            raise schema.SchemaError(f"{path}: no 'blocks' list in its provenance; not a layers file")
        self.positions = block_positions(self.names, self.provenance, path)

    def block(self, j: int) -> np.ndarray:
        with schema.read_h5(self.path) as f:
            return schema._require(f, f"block_{j:03d}", self.path, (len(self.ids), None))[:]


def block_positions(names: list[str], provenance: dict, where) -> list[tuple[int, float]]:
    """(index, depth) of each block of a layers file: block j of the model's L blocks has depth
    (j + 1) / L. The embedding job records each block's ``block_index`` (0-based) among the model's
    ``n_blocks`` in the provenance (a selection of blocks needs them); without those keys the file
    holds every block in order."""
    total = int(provenance.get("n_blocks", len(names)))
    indices = [int(j) for j in provenance.get("block_index", range(len(names)))]
    if len(indices) != len(names) or not all(0 <= j < total for j in indices):
        raise schema.SchemaError(f"{where}: provenance block_index {indices} does not fit {len(names)} blocks of "
                                 f"n_blocks={total}")
    return [(j, (j + 1) / total) for j in indices]


def knn_layers_file(layers_path, out_path, k: int, *, width: int | None = None, device=None,
                    chunk_size: int | None = None, precision: str = "fp32", invariants: bool = False) -> None:
    """Every block's kNN graph of one layers file (``knn.knn_graph``, as ``knn_file`` builds the
    final embedding's; the rule asks for k columns, ``width`` more) and, with ``invariants``, its Gram invariants
    (``rv_null``), written to ``out_path``: root ``object_id``, a group ``block_<j>`` per block with
    ``indices``, ``similarity`` and the block's name (and invariants) in its provenance."""
    from .rv_null import invariants_record

    src = LayersFile(layers_path)
    n = len(src.ids)
    k = max(k, min(width or k, n - 1))
    dev = pick_device(device)
    with schema.atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("object_id", data=src.ids.astype(object), dtype=schema.STR)
        for j, name in enumerate(src.names):
            Z = src.block(j).astype(np.float32)
            start = time.perf_counter()
            indices, similarity = file_graph(Z, src.ids, k, f"{layers_path}: block {name!r}", device=dev,
                                             chunk_size=chunk_size, precision=precision)
            g = f.create_group(f"block_{j:03d}")
            g.create_dataset("indices", data=indices)
            g.create_dataset("similarity", data=similarity)
            schema.write_provenance(g, {"name": name, **(
                {"gram_invariants": invariants_record(Z, device=dev)} if invariants else {})})
            log.info("block %s of %s: N=%d D=%d k=%d in %.1f s", name, layers_path, *Z.shape, k,
                     time.perf_counter() - start)
        schema.write_provenance(f, {
            "k": k, "blocks": src.names, "device": str(dev), "torch": torch.__version__, "metric": "cosine",
            "precision": precision, "source": src.path, "chunk_size": chunk_size or default_chunk_size(n, dev)})


def read_knn_layers(path, layers: LayersFile, k: int, columns: int | None = None
                    ) -> list[tuple[tuple[np.ndarray, np.ndarray], dict | None]]:
    """Per block of ``layers``: its cached graph (indices, similarity; the first ``columns``
    columns, None: all) and invariants (None if not cached), after checking that ``path`` was
    computed from ``layers`` with k_max >= k."""
    from .rv_null import Invariants

    with schema.read_h5(path) as f:
        ids = schema.as_str_ids(schema._require(f, "object_id", path, (None,), kinds="OSU")[:])
        names = schema.read_provenance(f).get("blocks")
        if len(ids) != len(layers.ids) or not np.array_equal(ids, layers.ids):
            raise schema.SchemaError(f"{path} does not belong to {layers.path} (object ids differ); recompute "
                                     f"its block graphs")
        if names != layers.names:
            raise schema.SchemaError(f"{path} holds blocks {names}, but {layers.path} has {layers.names}; recompute "
                                     f"its block graphs")
        out, n = [], len(ids)
        for j, name in enumerate(names):
            where = f"block_{j:03d}"
            if where not in f:
                raise schema.SchemaError(f"{path}: missing group {where!r} (block {name!r})")
            ds = schema._require(f[where], "indices", f"{path}:{where}", (n, None), kinds="iu")
            if ds.shape[1] < k:
                raise schema.SchemaError(f"{path}: block {name!r} has k_max={ds.shape[1]} < requested k={k}")
            idx = ds[:, :columns].astype(np.int64)
            sim = schema._require(f[where], "similarity", f"{path}:{where}", ds.shape)[:, :columns].astype(np.float32)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise schema.SchemaError(f"{path}: block {name!r}: 'indices' out of range [0, {n})")
            cached = schema.read_provenance(f[where]).get("gram_invariants")
            inv = None if cached is None else {
                kind: Invariants.from_dict(d, f"{path}: {where}.gram_invariants.{kind}") for kind, d in cached.items()}
            out.append(((idx, sim), inv))
    return out


# ---- the sides of a pair --------------------------------------------------------------
@dataclass
class Block:
    name: str
    index: int
    depth: float
    Z: np.ndarray  # (n, d) rows common to both sides, float16 (layers) or float32 (final)
    graph: tuple[np.ndarray, np.ndarray] | None  # k columns
    invariants: dict | None  # rv_null.gram_invariants, if cached for exactly these rows


def _restricted(Z, graph, rows, k: int, where) -> tuple[np.ndarray, tuple | None]:
    """Z and its graph on ``rows`` (None: all), the graph cut to k columns."""
    if rows is not None:
        Z = Z[rows]
        if graph is not None:
            indices, similarity, redone = restrict_graph(*graph, rows, Z, graph[0].shape[1])
            log.info("%s: %d rows; cached graph reused, %d rows recomputed", where, len(rows), redone)
            graph = (indices, similarity)
    if graph is not None:
        graph = (np.ascontiguousarray(graph[0][:, :k]), np.ascontiguousarray(graph[1][:, :k]))
    return Z, graph


def _side(side: dict, ids: np.ndarray, Z: np.ndarray, rows, k: int, graphs: bool) -> list[Block]:
    """The blocks of one side (its layers, if any, then "final"), on the rows both sides share."""
    blocks, final_index = [], 0
    if side.get("layers"):
        layers = LayersFile(side["layers"])
        if len(layers.ids) != len(ids) or not np.array_equal(layers.ids, ids):
            raise schema.SchemaError(f"{layers.path} does not hold the objects of {side['emb']} in the same order; "
                                     f"both come from one embedding job: rerun it")
        if not side.get("knn_layers"):
            raise ValueError(f"{layers.path}: its block graphs (knn_layers) are missing")
        cached = read_knn_layers(side["knn_layers"], layers, k, None if rows is not None else k)
        final_index = int(layers.provenance.get("n_blocks", len(layers.names)))
        for j, (name, (index, depth)) in enumerate(zip(layers.names, layers.positions)):
            graph, inv = cached[j]
            Zj, graph = _restricted(layers.block(j), graph if graphs else None, rows, k, f"{layers.path} {name}")
            blocks.append(Block(name, index, depth, Zj, graph, inv if rows is None else None))
    graph = _read_graph(side["knn"], side["emb"], ids, k) if graphs else None
    inv = _cached_invariants(side["knn"], rows)
    Zf, graph = _restricted(Z, graph, rows, k, side["emb"])
    blocks.append(Block(FINAL, final_index, 1.0, Zf, graph, inv))
    return blocks


# ---- the comparison -----------------------------------------------------------------------
def compare_layer_files(side_a: dict, side_b: dict, *, comparison: dict, metrics: list[str], k: int,
                        null_draws: int, seed: int, alpha: float = 0.05, cka_null: str = "closed_form",
                        feature_space_draws: int = 100, params: dict[str, dict] | None = None,
                        device=None) -> list[dict]:
    """Every metric on every (block_a, block_b) cell of one pair, as rows of ``ROW_FIELDS``.
    ``params``: each metric's tunable parameters, as in ``compare_files``.

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
                          metrics=metrics, k=k, null_draws=null_draws, bootstrap_draws=0, ci=0.95, seed=seed,
                          feature_space_draws=feature_space_draws, alpha=alpha, cka_null=cka_null, params=params,
                          device=device)
    ids_a, Za = _read_embeddings(side_a["emb"])
    ids_b, Zb = _read_embeddings(side_b["emb"])
    rows_a, rows_b, _ = common_rows(ids_a, ids_b, side_a["emb"], side_b["emb"], k)
    graphs = any(s.uses_knn for s in specs)
    A = _side(side_a, ids_a, Za, rows_a, k, graphs)
    B = _side(side_b, ids_b, Zb, rows_b, k, graphs)
    n = len(A[0].Z)
    cells = [(i, j) for i in range(len(A)) for j in range(len(B)) if (i, j) != (len(A) - 1, len(B) - 1)]
    perms = _permutation_table(n, null_draws, seed)
    results: dict[str, dict] = {}
    cka = [s.name for s in specs if s.name.startswith("cka")]
    if cka:
        results.update(_cka_cells(A, B, cells, cka, alpha, device))
    settings = {s.name: {**{key: v for key, v in s.defaults.items() if key != "k"}, **(params or {}).get(s.name, {})}
                for s in specs}
    for spec in specs:
        if spec.name == "mknn":
            results["mknn"] = _mknn_cells(A, B, cells, k, perms, alpha, device)
        elif spec.name == "cknna":
            results["cknna"] = _cknna_cells(A, B, cells, k, perms, alpha, device)
        elif spec.name == "mutual_info":
            results["mutual_info"] = _mi_cells(A, B, cells, settings["mutual_info"]["components"], perms, alpha, device)
        elif not spec.name.startswith("cka"):
            results[spec.name] = _drawn_cells(spec, A, B, cells, k, settings[spec.name], perms, alpha, device)
    rows = []
    for rec in final:
        cell = {"raw": rec["score"], "calibrated": rec["calibrated"], "tau": rec["tau"], "p": rec["p_value"],
                "null_draws": rec["null_draws"], "null_method": rec["null_method"]}
        results[rec["metric"]][(len(A) - 1, len(B) - 1)] = cell
    for spec in specs:
        for i, a in enumerate(A):
            for j, b in enumerate(B):
                rows.append({**{f: comparison[f] for f in COMPARISON_FIELDS}, "metric": spec.name,
                             "block_a": a.name, "block_b": b.name, "index_a": a.index, "index_b": b.index,
                             "depth_a": a.depth, "depth_b": b.depth, "n": n,
                             "k": k if spec.uses_knn else None, "alpha": alpha, **results[spec.name][(i, j)]})
    log.info("%d x %d blocks, %d metrics, %d null draws: %.1f s", len(A), len(B), len(specs), null_draws,
             time.perf_counter() - start)
    return [{f: row[f] for f in ROW_FIELDS} for row in rows]


def _permutation_table(n: int, draws: int, seed: int) -> np.ndarray:
    """(draws, n) int32: the permutations of ``stats.permutations``, drawn once for every cell."""
    table = np.empty((draws, n), np.int32 if n < 2**31 else np.int64)
    for d, pi in enumerate(permutations(n, draws, seed)):
        table[d] = pi
    return table


def _cell(score: float, null, alpha: float, scale: str = "unit") -> dict:
    st = summarise(score, np.asarray(null, float), np.empty(0), 0.95, alpha=alpha, scale=scale)
    return {"raw": float(score), "calibrated": st["calibrated"], "tau": st["tau"], "p": st["p_value"],
            "null_draws": st["null_draws"], "null_method": st["null_method"]}


def _mknn_cells(A, B, cells, k: int, perms: np.ndarray, alpha: float, device) -> dict:
    scores, null = mknn_nulls([b.graph[0] for b in A], [b.graph[0] for b in B], cells, k, perms, device=device)
    return {c: _cell(scores[c], null[c], alpha) for c in cells}


def mknn_nulls(graphs_a, graphs_b, cells, k: int, perms: np.ndarray, *, device=None, batched: bool | None = None
               ) -> tuple[dict, dict[tuple[int, int], np.ndarray]]:
    """MKNN of every cell (i, j) of graphs_a[i] x graphs_b[j] (neighbour indices, (n, >= k)) and
    its relabelled null over the rows of ``perms`` (``MknnEstimator.null``: object o meets side
    B's graph row pi[o], relabelled): for draw pi and cell (i, j), |pi[N^A_i(o)] ∩ N^B_j(pi[o])|
    summed over objects o, as integers, so each draw equals the estimator's exactly. A draw's
    relabelled graphs are made once per block, not per cell.

    ``batched`` (default: on a GPU) runs a batch of draws at once in torch; on a CPU numpy's
    comparisons are ~10x faster than torch's, so draws go one at a time there."""
    dev = pick_device(device)
    batched = dev.type != "cpu" if batched is None else batched
    aT = [transposed(graph_prefix(g, k, "graph A")) for g in graphs_a]  # (k, n) int32, contiguous rows
    bT = [transposed(graph_prefix(g, k, "graph B")) for g in graphs_b]
    n = aT[0].shape[1]
    scores = {(i, j): int(np.count_nonzero(matches(aT[i], bT[j]))) / (k * n) for i, j in cells}
    null = {c: np.empty(len(perms)) for c in cells}
    by_a: dict[int, list[int]] = {}
    for i, j in cells:
        by_a.setdefault(i, []).append(j)
    used_b = sorted({j for _, j in cells})
    if not batched:
        for d, pi in enumerate(perms):
            p = pi.astype(aT[0].dtype, copy=False)
            pb = {j: np.take(bT[j], p, axis=1) for j in used_b}
            for i, js in by_a.items():
                pa = np.take(p, aT[i])
                for j in js:
                    null[(i, j)][d] = np.count_nonzero(matches(pa, pb[j])) / (k * n)
        return scores, null
    with torch.inference_mode():
        ta = [torch.as_tensor(a).to(dev).long() for a in aT]  # index tensors
        tb = [torch.as_tensor(b).to(dev) for b in bT]  # gathered values
        batch = max(1, min(len(perms), _BATCH_BYTES[dev.type] // (12 * k * n)))  # pa, pb, hit, a compare
        for s in range(0, len(perms), batch):
            P = torch.as_tensor(perms[s : s + batch]).to(dev)
            P64 = P.long()
            for j, is_ in _by_b(cells).items():
                pb = tb[j][:, P64]  # (k, D, n): B's row pi[o], in B's labels
                for i in is_:
                    pa = P[:, ta[i]]  # (D, k, n): A's neighbours of o, relabelled by pi
                    hit = pa == pb[0][:, None]
                    for q in range(1, k):
                        hit |= pa == pb[q][:, None]
                    null[(i, j)][s : s + len(P)] = hit.sum(dim=(1, 2)).cpu().numpy() / (k * n)
    return scores, null


def _by_b(cells) -> dict[int, list[int]]:
    """The cells grouped by side B's block: a batch of draws holds one B block's relabelled graph
    at a time (GPU memory does not grow with L_b)."""
    out: dict[int, list[int]] = {}
    for i, j in cells:
        out.setdefault(j, []).append(i)
    return out


def _cknna_cells(A, B, cells, k: int, perms: np.ndarray, alpha: float, device) -> dict:
    scores, null = cknna_nulls([b.graph for b in A], [b.graph for b in B], cells, k, perms, device=device)
    return {c: _cell(scores[c], null[c], alpha) for c in cells}


def _reverse_positions(aT: np.ndarray) -> np.ndarray:
    """For A's p-th edge (o -> x = aT[p, o]): the flat index r * n + x of the reverse edge
    (x -> o) when o is x's r-th neighbour, else -1. Fixed by A's graph: no draw changes it."""
    k, n = aT.shape
    x = aT.astype(np.int64)
    back = aT[:, x] == np.arange(n)  # (r, p, o): x's r-th neighbour is o
    return np.where(back.any(0), back.argmax(0) * n + x, -1)


def cknna_nulls(graphs_a, graphs_b, cells, k: int, perms: np.ndarray, *, device=None, batched: bool | None = None
                ) -> tuple[dict, dict[tuple[int, int], np.ndarray]]:
    """platonic-rep's CKNNA (``cknna_hsic``) of every cell of graphs_a[i] x graphs_b[j]
    ((indices, similarities), n x >= k) and its relabelled null over the rows of ``perms``
    (``CknnaHsicEstimator.null``; equal to float round-off: sums run in another order).

    Dense per draw: H[p, o] = A's p-th edge (o -> x) is also a B edge of the relabelled graph;
    its kernel values K = sa[p, o], L = B's similarity of that neighbour in row pi[o]; the three
    HSIC sums are sums over H, a scatter over x and the reverse edges (``_reverse_positions``).
    The self HSICs of each block do not change under permutation: computed once per block.
    ``batched`` as ``mknn_nulls``."""
    from .cknna_hsic import EPS, _hsic, _reciprocal

    dev = pick_device(device)
    batched = dev.type != "cpu" if batched is None else batched
    if k < 2:
        raise ValueError(f"CKNNA needs k >= 2 (as released), got k={k}")

    def side(graph, where):
        gT = transposed(graph_prefix(graph[0], k, where))
        sT = np.ascontiguousarray(np.asarray(graph[1], np.float64)[:, :k].T)
        n = gT.shape[1]
        i, j, v = np.tile(np.arange(n), k), gT.ravel().astype(np.int64), sT.ravel()
        return gT, sT, _hsic(i, j, v, v, _reciprocal(i, j, n), np.ones(n), n)

    A = [side(g, "graph A") for g in graphs_a]
    B = [side(g, "graph B") for g in graphs_b]
    n = A[0][0].shape[1]
    if n < 4:
        raise ValueError(f"CKNNA (unbiased HSIC) needs at least 4 objects, got {n}")
    rev = {i: _reverse_positions(A[i][0]) for i in {i for i, _ in cells}}
    by_a: dict[int, list[int]] = {}
    for i, j in cells:
        by_a.setdefault(i, []).append(j)
    used_b = sorted({j for _, j in cells})

    def hsic(t1, sk, sl, t3):
        return (t1 + sk * sl / ((n - 1) * (n - 2)) - 2 * t3 / (n - 2)) / (n * (n - 3))

    def cross_np(i, pa, pb, sbp):
        aT, sa, _ = A[i]
        hit = pa == pb[0]
        lv = hit * sbp[0]
        for q in range(1, k):
            e = pa == pb[q]
            hit |= e
            lv += e * sbp[q]
        kv = hit * sa
        col = np.bincount(aT.ravel(), kv.ravel(), minlength=n)
        back = np.where(rev[i] >= 0, hit.ravel()[np.maximum(rev[i], 0).ravel()].reshape(hit.shape), False)
        return hsic(float((kv * lv)[back].sum()), float(kv.sum()), float(lv.sum()), float(col @ lv.sum(0)))

    def ratio(cross, i, j):
        return cross / (np.sqrt(A[i][2] * B[j][2]) + EPS)

    identity = np.arange(n, dtype=A[0][0].dtype)
    scores = {(i, j): float(ratio(cross_np(i, A[i][0], B[j][0], B[j][1]), i, j)) for i, j in cells}
    null = {c: np.empty(len(perms)) for c in cells}
    if not batched:
        for d, pi in enumerate(perms):
            p = pi.astype(identity.dtype, copy=False)
            pb = {j: (np.take(B[j][0], p, axis=1), np.take(B[j][1], pi, axis=1)) for j in used_b}
            for i, js in by_a.items():
                pa = np.take(p, A[i][0])
                for j in js:
                    null[(i, j)][d] = ratio(cross_np(i, pa, *pb[j]), i, j)
        return scores, null
    with torch.inference_mode():
        ta = {i: torch.as_tensor(A[i][0]).to(dev).long() for i in by_a}
        sa = {i: torch.as_tensor(A[i][1]).to(dev) for i in by_a}
        back = {i: torch.as_tensor(rev[i]).to(dev) for i in by_a}
        tb = {j: (torch.as_tensor(B[j][0]).to(dev), torch.as_tensor(B[j][1]).to(dev)) for j in used_b}
        batch = max(1, min(len(perms), _BATCH_BYTES[dev.type] // (80 * k * n)))  # ~10 (D, k, n) arrays
        for s in range(0, len(perms), batch):
            P = torch.as_tensor(perms[s : s + batch]).to(dev)
            P64 = P.long()
            D = len(P)
            for j, is_ in _by_b(cells).items():
                g, v = tb[j][0][:, P64], tb[j][1][:, P64]  # (k, D, n)
                for i in is_:
                    pa = P[:, ta[i]]  # (D, k, n)
                    valid = back[i] >= 0
                    hit = pa == g[0][:, None]
                    lv = hit * v[0][:, None]
                    for q in range(1, k):
                        e = pa == g[q][:, None]
                        hit |= e
                        lv += e * v[q][:, None]
                    kv = hit * sa[i]
                    col = torch.zeros(D, n, dtype=kv.dtype, device=dev).scatter_add_(
                        1, ta[i].reshape(1, -1).expand(D, -1), kv.reshape(D, -1))
                    rev_hit = hit.reshape(D, -1)[:, back[i].clamp(min=0).reshape(-1)].reshape(hit.shape) & valid
                    t1 = (kv * lv * rev_hit).sum((1, 2))
                    cross = hsic(t1, kv.sum((1, 2)), lv.sum((1, 2)), (col * lv.sum(1)).sum(1))
                    null[(i, j)][s : s + D] = ratio(cross.cpu().numpy(), i, j)
    return scores, null


def _centred(block: Block, dev) -> torch.Tensor:
    """A block's centred float32 copy (mean accumulated in float64, as ``features.FeatureSpace``)."""
    X = as_matrix(block.Z, dev)
    mean = sum(X[s : s + _CHUNK].double().sum(0) for s in range(0, len(X), _CHUNK)) / len(X)
    return X - mean.to(X.dtype)


def _self_terms(X: torch.Tensor) -> dict:
    """The self terms of both CKAs (``cka.Moments``'s) of a centred block."""
    xx = torch.zeros(X.shape[1], X.shape[1], dtype=torch.float64, device=X.device)
    with full_fp32():
        for s in range(0, len(X), _CHUNK):
            xx += (X[s : s + _CHUNK].T @ X[s : s + _CHUNK]).double()
    a = (X.double() ** 2).sum(1)
    return {"xx2": float((xx * xx).sum()), "a": a, "sum_a": float(a.sum()), "sum_aa": float((a * a).sum())}


def _cka_cells(A, B, cells, names: list[str], alpha: float, device) -> dict:
    """Both CKAs of every cell, nulls in closed form from each block's invariants (computed here
    for blocks whose invariants were not cached for these rows: an O(N^2 d) pass each)."""
    from .cka import linear_cka, unbiased_cka
    from .rv_null import ClosedNull, gram_invariants
    from .stats import calibrated

    dev = pick_device(device)
    for block in {id(b): b for b in [*A, *B]}.values():
        if block.invariants is None:
            block.invariants = gram_invariants(block.Z.astype(np.float32), device=dev)
    mb = [_self_terms(_centred(b, dev)) for b in B]
    out = {name: {} for name in names}
    n = len(A[0].Z)
    for i in sorted({i for i, _ in cells}):
        X = _centred(A[i], dev)
        ma = _self_terms(X)
        for j in [j for a, j in cells if a == i]:
            Y = _centred(B[j], dev)
            xy = torch.zeros(X.shape[1], Y.shape[1], dtype=torch.float64, device=dev)
            with full_fp32():
                for s in range(0, n, _CHUNK):
                    xy += (X[s : s + _CHUNK].T @ Y[s : s + _CHUNK]).double()
            xy2, sum_ab = float((xy * xy).sum()), float(ma["a"] @ mb[j]["a"])
            for name in names:
                variant = "unbiased" if name == "cka_unbiased" else "linear"
                score = (unbiased_cka(xy2, ma["xx2"], mb[j]["xx2"], sum_ab, ma["sum_aa"], mb[j]["sum_aa"],
                                      ma["sum_a"], mb[j]["sum_a"], n) if variant == "unbiased"
                         else linear_cka(xy2, ma["xx2"], mb[j]["xx2"]))
                law = ClosedNull.of(A[i].invariants[variant], B[j].invariants[variant])
                tau = law.threshold(alpha)
                out[name][(i, j)] = {"raw": float(score), "calibrated": calibrated(score, tau), "tau": tau,
                                     "p": law.p_value(score), "null_draws": 0, "null_method": "closed_form"}
    return out


def _mi_cells(A, B, cells, components: int, perms: np.ndarray, alpha: float, device, batched: bool | None = None
              ) -> dict:
    """Gaussian MI of every cell and its permutation null, from each block's principal scores
    (one PCA per block, not per cell). On a CPU each draw is ``MutualInfoEstimator.null`` (equal
    to the compare job's draws); ``batched`` (default: on a GPU) computes a batch of draws' cross-
    covariances as one product and their canonical correlations as one batched SVD in torch
    (equal to float round-off)."""
    from .mutual_info import _RHO_MAX, MutualInfoEstimator, principal_scores

    dev = pick_device(device)
    batched = dev.type != "cpu" if batched is None else batched
    scores_a = {i: principal_scores(A[i].Z.astype(np.float32), components, device=device) for i in {i for i, _ in cells}}
    scores_b = {j: principal_scores(B[j].Z.astype(np.float32), components, device=device) for j in {j for _, j in cells}}
    out = {}
    for i, j in cells:
        est = MutualInfoEstimator.from_scores(scores_a[i], scores_b[j])
        if not batched:
            out[(i, j)] = _cell(est.score(), [est.null(pi) for pi in perms], alpha, scale="nats")
            continue
        with torch.inference_mode():
            U, V = (torch.as_tensor(x).to(dev) for x in (est.u, est.v))
            wa = torch.linalg.inv(torch.linalg.cholesky(torch.as_tensor(est.cuu).to(dev)))  # whitening
            wb = torch.linalg.inv(torch.linalg.cholesky(torch.as_tensor(est.cvv).to(dev)))
            batch = max(1, min(len(perms), _BATCH_BYTES[dev.type] // (V.numel() * 8)))
            null = []
            for s in range(0, len(perms), batch):
                P = torch.as_tensor(perms[s : s + batch]).to(dev).long()
                cab = torch.einsum("nr,dns->drs", U, V[P]) / len(U)
                rho = torch.linalg.svdvals(wa @ cab @ wb.T).clamp(max=_RHO_MAX)
                null.append((-0.5 * torch.log1p(-(rho**2)).sum(1)).cpu().numpy())
        out[(i, j)] = _cell(est.score(), np.concatenate(null) if null else [], alpha, scale="nats")
    return out


def _drawn_cells(spec, A, B, cells, k: int, settings: dict, perms: np.ndarray, alpha: float, device) -> dict:
    """A neighbourhood metric's estimator on every cell, nulls from its relabelled draws."""
    from .cknna import row_mean_similarity
    from .pair import Pair

    means = {}

    def row_means(block):
        if id(block) not in means:
            means[id(block)] = row_mean_similarity(block.Z.astype(np.float32), device=device)
        return means[id(block)]

    out = {}
    for i, j in cells:
        pair = Pair(A[i].Z, B[j].Z, A[i].graph, B[j].graph, device=device)
        if spec.name == "cknna_formula":
            pair.row_means = (row_means(A[i]), row_means(B[j]))  # once per block, not per cell
        est = spec.estimator(pair, k=k, **settings)
        out[(i, j)] = _cell(est.score(), [est.null(pi) for pi in perms], alpha, scale=spec.scale)
    return out


def write_layer_rows(path, rows: list[dict]) -> None:
    """The tidy CSV of one pair (``ROW_FIELDS``), written atomically."""
    import pandas as pd

    with schema.atomic_path(path) as tmp:
        table = pd.DataFrame(rows, columns=list(ROW_FIELDS)).astype({"k": "Int64"})  # integers, empty where none
        table.to_csv(tmp, index=False)
