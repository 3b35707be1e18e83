"""Exact cosine k-nearest-neighbour graphs, computed in tiles (never an N x N matrix).

The graph of each embedding file is computed once and reused by every comparison and every
null draw. Rows are sorted nearest first with a total order, (-similarity, column index), so
ties go to the smaller index, the result is reproducible, and a graph stored at ``k_max``
serves any ``k <= k_max`` as a prefix.

Cosine similarity is symmetric, so only tiles on and above the block diagonal are multiplied
(half the flops of a plain chunked X X^T); each tile updates the running top-k of its rows and,
transposed, of its columns. Diagonal tiles go first and seed every row with an exact top-k of a
contiguous tile row; a later tile can only contribute entries >= the row's current k-th best
value, which are few, so they are found with one comparison pass instead of a top-k.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch

from .device import as_matrix, full_fp32, pick_device, threads

log = logging.getLogger(__name__)

# Candidates per row above which a tile row is resolved by (exact) top-k instead of gathering.
_GATHER_CAP = 32
# Extra top-k candidates that make a tie at the k-th position detectable without a full sort.
_TIE_MARGIN = 8
# Column placeholder for "no candidate yet": larger than any real column, so it always loses ties.
_NO_COL = torch.iinfo(torch.int64).max


class DegenerateRowsError(ValueError):
    """Rows with zero norm or non-finite values: their cosine similarity is undefined."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        super().__init__(f"{len(rows)} rows have zero norm or non-finite values (cosine similarity "
                         f"is undefined), e.g. rows {rows[:5].tolist()}")


def normalise_rows(X: torch.Tensor) -> torch.Tensor:
    """L2-normalised copy of ``X``; raises DegenerateRowsError instead of producing NaN."""
    norms = torch.linalg.vector_norm(X, dim=1)
    bad = ~(torch.isfinite(norms) & (norms > 0))
    if bad.any():
        raise DegenerateRowsError(bad.nonzero().flatten().cpu().numpy())
    return X / norms[:, None]


def default_chunk_size(n: int, device: torch.device) -> int:
    """Tile edge: 4096 keeps a 64 MB float32 tile on CPU (GEMM-efficient, cache-friendly);
    GPUs get 16384 (1 GB tiles) to amortise kernel launches."""
    return min(n, 16384 if device.type == "cuda" else 4096)


def rank_sort(values: torch.Tensor, cols: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``k`` of each row in the order (-value, column): sort by column, then stable by value."""
    cols, order = torch.sort(cols, dim=1)
    values = values.gather(1, order)
    values, order = torch.sort(values, dim=1, descending=True, stable=True)
    return values[:, :k], cols.gather(1, order[:, :k])


def tile_topk(S: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact first ``k`` columns of every row of ``S`` in the order (-value, column).

    torch.topk breaks ties arbitrarily, so it returns k + margin candidates; rows whose last
    candidate still ties with the k-th value may hide a tied smaller column outside the
    candidate set and are redone with a full stable sort (only happens with duplicated rows).
    """
    width = S.shape[1]
    if width <= k + _TIE_MARGIN:
        values, cols = torch.sort(S, dim=1, descending=True, stable=True)
        return _pad(values[:, :k], cols[:, :k], k)
    values, cols = torch.topk(S, k + _TIE_MARGIN, dim=1, sorted=False)
    values, cols = rank_sort(values, cols, k + _TIE_MARGIN)
    tied = values[:, -1] == values[:, k - 1]
    if tied.any():
        rows = tied.nonzero().flatten()
        v, c = torch.sort(S[rows], dim=1, descending=True, stable=True)
        values[rows], cols[rows] = v[:, : k + _TIE_MARGIN], c[:, : k + _TIE_MARGIN]
    return values[:, :k], cols[:, :k]


def _pad(values, cols, k):
    short = k - values.shape[1]
    if short <= 0:
        return values, cols
    fill_v = values.new_full((values.shape[0], short), float("-inf"))
    fill_c = cols.new_full((cols.shape[0], short), _NO_COL)
    return torch.cat([values, fill_v], 1), torch.cat([cols, fill_c], 1)


class _RunningTopK:
    """Per-row best k (values, columns) seen so far, kept in (-value, column) order."""

    def __init__(self, n: int, k: int, tile: int, device: torch.device):
        self.k = k
        self.values = torch.full((n, k), float("-inf"), device=device)
        self.cols = torch.full((n, k), _NO_COL, dtype=torch.int64, device=device)
        # Reused mask buffers: fresh 16 MB allocations would page-fault on every tile.
        self._words = torch.empty(-(-tile * tile // 8), dtype=torch.int64, device=device)
        self._spare = torch.empty(tile * tile, dtype=torch.bool, device=device)

    def offer(self, S: torch.Tensor, i0: int, j0: int) -> None:
        """Offer tile ``S = X[i0:] @ X[j0:].T`` to its rows and, off the diagonal, to its columns."""
        sides = [(S, i0, j0)] if i0 == j0 else [(S, i0, j0), (S.T, j0, i0)]
        thresholds, pending = [], False
        for T, r0, c0 in sides:
            thr = self.values[r0 : r0 + T.shape[0], -1]
            fresh = thr == float("-inf")  # fewer than k columns seen: everything is a candidate
            if fresh.any():
                rows = fresh.nonzero().flatten()
                self._merge_exact(T, rows, r0, c0)
                thr = thr.masked_fill(fresh, float("inf"))
                pending |= len(rows) < T.shape[0]
            else:
                pending = True
            thresholds.append(thr)
        if not pending:
            return
        # >= (not >): a tied value with a smaller column must still be able to enter.
        # The mask lives in whole int64 words so that it can be scanned 8 bytes at a time; only
        # the last word can hold bytes past the tile, so only it needs zeroing.
        words = self._words[: -(-S.numel() // 8)]
        words[-1] = 0
        mask = words.view(torch.bool)[: S.numel()].view(S.shape)
        torch.ge(S, thresholds[0][:, None], out=mask)
        if len(sides) == 2:
            mask.logical_or_(torch.ge(S, thresholds[1][None, :], out=self._spare[: S.numel()].view(S.shape)))
        r, c = _sparse_nonzero(words, S.shape[1])
        if r.numel() == 0:
            return
        v = S[r, c]
        keep = v >= thresholds[0][r]
        self._merge_sparse(S, r[keep], c[keep], v[keep], i0, j0)
        if len(sides) == 2:
            keep = v >= thresholds[1][c]
            order = torch.sort(c[keep], stable=True).indices
            self._merge_sparse(S.T, c[keep][order], r[keep][order], v[keep][order], j0, i0)

    def _merge(self, rows: torch.Tensor, values: torch.Tensor, cols: torch.Tensor) -> None:
        v = torch.cat([self.values[rows], values], 1)
        c = torch.cat([self.cols[rows], cols], 1)
        self.values[rows], self.cols[rows] = rank_sort(v, c, self.k)

    def _merge_exact(self, T: torch.Tensor, rows: torch.Tensor, r0: int, c0: int) -> None:
        v, c = tile_topk(T if len(rows) == T.shape[0] else T[rows], self.k)
        self._merge(rows + r0, v, c + c0)

    def _merge_sparse(self, T, r, c, v, r0: int, c0: int) -> None:
        """Merge candidates (tile row r, tile column c, value v), grouped by r, into the rows."""
        if r.numel() == 0:
            return
        urows, counts = torch.unique_consecutive(r, return_counts=True)
        crowded = counts > _GATHER_CAP
        if crowded.any():  # many ties or a late-arriving dense block: resolve those rows exactly
            self._merge_exact(T, urows[crowded], r0, c0)
            drop = torch.repeat_interleave(crowded, counts)
            r, c, v = r[~drop], c[~drop], v[~drop]
            urows, counts = urows[~crowded], counts[~crowded]
            if r.numel() == 0:
                return
        # Scatter the variable number of candidates per row into a padded block, then merge.
        line = torch.repeat_interleave(torch.arange(urows.numel(), device=r.device), counts)
        slot = torch.arange(r.numel(), device=r.device) - (torch.cumsum(counts, 0) - counts)[line]
        pv = v.new_full((urows.numel(), int(counts.max())), float("-inf"))
        pc = torch.full_like(pv, _NO_COL, dtype=torch.int64)
        pv[line, slot] = v
        pc[line, slot] = c + c0
        self._merge(urows + r0, pv, pc)


def _sparse_nonzero(words: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of the True bytes of a sparse mask stored in ``words``, row-major order.

    Scanning whole words is 8x less work than nonzero on the bytes; only the few non-zero
    words are unpacked.
    """
    hit = words.nonzero().flatten()
    sub = words[hit].view(torch.bool).view(-1, 8).nonzero()
    flat = hit[sub[:, 0]] * 8 + sub[:, 1]
    return flat // width, flat % width


def knn_graph(Z, k: int, *, chunk_size: int | None = None, device=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine kNN graph of the rows of ``Z`` (numpy or torch, (N, D)).

    Returns ``(indices (N, k) int64, similarity (N, k) float32)``, each row nearest first, the
    row itself excluded, ties broken by the smaller index. Memory O(N k + chunk^2); similarities
    in float32 (TF32 disabled on GPU, so results do not depend on the device's matmul mode).
    """
    dev = pick_device(device, Z)
    X = normalise_rows(as_matrix(Z, dev))
    n = X.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"k={k} must be between 1 and N-1={n - 1}")
    b = min(chunk_size or default_chunk_size(n, dev), n)
    best = _RunningTopK(n, k, b, dev)
    buffer = torch.empty(b * b, device=dev)  # one tile buffer, reused (no page faults per tile)
    workers = torch.get_num_threads()

    def tile(i0: int, j0: int) -> torch.Tensor:
        rows, cols = X[i0 : i0 + b], X[j0 : j0 + b]
        with threads(workers):
            return torch.mm(rows, cols.T, out=buffer[: len(rows) * len(cols)].view(len(rows), len(cols)))

    # Tile products use every thread; the top-k bookkeeping (many small ops) runs on one.
    with full_fp32(), torch.inference_mode(), threads(1):
        # Diagonal tiles first: every row then starts from a top-k of a contiguous tile row,
        # and the off-diagonal tiles only feed the sparse candidate path.
        for i0 in range(0, n, b):
            best.offer(tile(i0, i0).fill_diagonal_(float("-inf")), i0, i0)
        for i0 in range(0, n, b):
            for j0 in range(i0 + b, n, b):
                best.offer(tile(i0, j0), i0, j0)
    return best.cols.cpu().numpy(), best.values.cpu().numpy()


def knn_rows(Z, rows, k: int, *, chunk_size: int = 1024, device=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN of the given ``rows`` of ``Z`` among all rows (same order and ties as knn_graph).

    For the few rows of a graph that a subset invalidates (see ``restrict_graph``).
    """
    dev = pick_device(device, Z)
    X = normalise_rows(as_matrix(Z, dev))
    rows = torch.as_tensor(np.asarray(rows, np.int64), device=dev)
    if not 1 <= k <= X.shape[0] - 1:
        raise ValueError(f"k={k} must be between 1 and N-1={X.shape[0] - 1}")
    cols, values = [], []
    with full_fp32(), torch.inference_mode():
        for a in range(0, len(rows), chunk_size):
            q = rows[a : a + chunk_size]
            S = X[q] @ X.T
            S[torch.arange(len(q), device=dev), q] = float("-inf")
            v, c = tile_topk(S, k)
            values.append(v)
            cols.append(c)
    if not cols:
        return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
    return torch.cat(cols).cpu().numpy(), torch.cat(values).cpu().numpy()


def restrict_graph(indices: np.ndarray, similarity: np.ndarray, rows: np.ndarray, Z_sub, k: int
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """The exact k-NN graph of ``Z_sub = Z[rows]`` from the cached graph of ``Z``, cheaply.

    ``rows`` selects (and orders) a subset of Z's rows. A row keeps its cached neighbours that
    survive, in order; only rows left with fewer than k of them are recomputed (``knn_rows``).
    Dropping m objects touches about k m rows. Returns (indices, similarity, rows recomputed).
    """
    rows = np.asarray(rows, np.int64)
    new = np.full(len(indices), -1, np.int64)
    new[rows] = np.arange(len(rows))
    mapped = new[indices[rows]]
    valid = mapped >= 0
    rank = np.cumsum(valid, axis=1, dtype=np.int32) - 1  # position among the row's survivors
    full = rank[:, -1] >= k - 1
    take = (valid & (rank < k))[full]  # exactly the first k survivors of each full row, in order
    out_i = np.empty((len(rows), k), np.int64)
    out_s = np.empty((len(rows), k), np.float32)
    out_i[full] = mapped[full][take].reshape(-1, k)
    out_s[full] = similarity[rows[full]][take].reshape(-1, k)
    short = np.flatnonzero(~full)
    if len(short):
        out_i[short], out_s[short] = knn_rows(Z_sub, short, k)
    return out_i, out_s, len(short)


def knn_file(emb_path, out_path, k: int, *, width: int | None = None, device=None,
             chunk_size: int | None = None) -> None:
    """Compute the kNN graph of one embedding file and write it with ``schema.write_knn``.

    ``width`` (>= k) asks for more columns (``registry.graph_width``), as many as the file has
    other objects; k itself must fit."""
    from .. import schema

    ids, emb, _ = schema.read_embeddings(emb_path)
    schema.check_finite(emb, ids, str(emb_path))
    k = max(k, min(width or k, len(ids) - 1))
    dev = pick_device(device)
    try:
        indices, similarity = knn_graph(emb, k, chunk_size=chunk_size, device=dev)
    except DegenerateRowsError as err:
        raise ValueError(f"{emb_path}: {len(err.rows)} embeddings have zero norm (cosine similarity "
                         f"is undefined), e.g. object_id {ids[err.rows[:5]].tolist()}") from None
    except ValueError as err:
        raise ValueError(f"{emb_path}: {err}") from None
    log.info("kNN graph of %s: N=%d D=%d k=%d on %s (%d threads)", emb_path, *emb.shape, k, dev,
             torch.get_num_threads())
    schema.write_knn(out_path, ids, indices, similarity, {
        "k": k, "device": str(dev), "torch": torch.__version__, "metric": "cosine",
        "source": os.fspath(emb_path), "chunk_size": chunk_size or default_chunk_size(len(ids), dev),
    })
