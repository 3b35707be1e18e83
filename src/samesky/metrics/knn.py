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

``precision="bf16-screened"`` (opt-in) returns the same graph, bit for bit, from a cheaper sweep:
see ``screening_bound`` and ``_screened_graph``.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch

from .device import as_matrix, full_fp32, pick_device, threads
from .rv_null import invariants_record

log = logging.getLogger(__name__)

# Candidates per row above which a tile row is resolved by (exact) top-k instead of gathering.
_GATHER_CAP = 32
# Extra top-k candidates that make a tie at the k-th position detectable without a full sort.
_TIE_MARGIN = 8
# Column placeholder for "no candidate yet": larger than any real column, so it always loses ties.
_NO_COL = torch.iinfo(torch.int64).max

KNN_PRECISIONS = ("fp32", "bf16-screened")
# bfloat16 keeps 8 significand bits: round to nearest has unit roundoff 2^-8.
_BF16_U = 2.0**-8
# Unit roundoff assumed for an fp32 accumulation: 2^-23 covers round-to-nearest (2^-24) and
# truncating accumulators (some tensor cores).
_ACC_U = 2.0**-23
# Smallest GEMM edge (rows and columns) for which MKL's sgemm gives every entry the same value
# whatever the call's shape (measured: calls with >= 4 rows and >= 16 columns agree bit for bit
# with a 4096 x 4096 tile; 1-row calls (gemv) and calls with <= 8 columns do not).
_REGULAR = 32
# Rows per exact re-rank GEMM (rows x union of their candidates); < _REGULAR, but >= 4 rows is
# regular too (the probe checks this size).
_GROUP = 16


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
    """Per-row best k (values, columns) seen so far, kept in (-value, column) order.

    With ``band=(rank, slack)`` only values >= (the row's rank-th best - slack) are gathered:
    the screened sweep keeps the band around the rank-th value, not a fixed top-k.
    """

    def __init__(self, n: int, k: int, tile: int, device: torch.device,
                 band: tuple[int, float] | None = None):
        self.k, self.band = k, band
        self._seeded = False  # rows of the tile on offer were seeded from it: merges drop repeats
        self.values = torch.full((n, k), float("-inf"), device=device)
        self.cols = torch.full((n, k), _NO_COL, dtype=torch.int64, device=device)
        # Reused mask buffers: fresh 16 MB allocations would page-fault on every tile.
        self._words = torch.empty(-(-tile * tile // 8), dtype=torch.int64, device=device)
        self._spare = torch.empty(tile * tile, dtype=torch.bool, device=device)

    def offer(self, S: torch.Tensor, i0: int, j0: int) -> None:
        """Offer tile ``S = X[i0:] @ X[j0:].T`` to its rows and, off the diagonal, to its columns."""
        sides = [(S, i0, j0)] if i0 == j0 else [(S, i0, j0), (S.T, j0, i0)]
        thresholds, pending, self._seeded = [], False, False
        for T, r0, c0 in sides:
            thr = self.threshold(slice(r0, r0 + T.shape[0]))
            fresh = thr == float("-inf")  # fewer than k columns seen: everything is a candidate
            if fresh.any() and self.band is None:
                rows = fresh.nonzero().flatten()
                self._merge_exact(T, rows, r0, c0)
                thr = thr.masked_fill(fresh, float("inf"))
                pending |= len(rows) < T.shape[0]
            elif fresh.any():
                # Seed the row with the tile's top-rank (a cheap top-k); the rest of its band in
                # this tile is gathered below (columns it already holds are merged away).
                self._merge_exact(T, fresh.nonzero().flatten(), r0, c0, self.band[0])
                self._seeded = True
                thr = self.threshold(slice(r0, r0 + T.shape[0]))
                thr = thr.masked_fill(thr == float("-inf"), float("inf"))  # took all the tile had
                pending = True
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

    def threshold(self, rows) -> torch.Tensor:
        """Smallest value that can still enter each row (-inf: fewer than k (or rank) seen)."""
        thr = self.values[rows, -1]
        if self.band is not None:
            rank, slack = self.band
            thr = torch.maximum(thr, self.values[rows, rank - 1] - slack)
        return thr

    def _merge(self, rows: torch.Tensor, values: torch.Tensor, cols: torch.Tensor) -> None:
        v = torch.cat([self.values[rows], values], 1)
        c = torch.cat([self.cols[rows], cols], 1)
        if self._seeded:  # a seeded row is offered again the columns it holds: drop repeats
            v, c = rank_sort(v, c, v.shape[1])  # a repeat (same column, same value) is adjacent
            repeat = torch.nn.functional.pad((c[:, 1:] == c[:, :-1]) & (c[:, 1:] != _NO_COL), (1, 0))
            v, c = v.masked_fill(repeat, float("-inf")), c.masked_fill(repeat, _NO_COL)
        self.values[rows], self.cols[rows] = rank_sort(v, c, self.k)

    def _merge_exact(self, T: torch.Tensor, rows: torch.Tensor, r0: int, c0: int,
                     width: int | None = None) -> None:
        v, c = tile_topk(T if len(rows) == T.shape[0] else T[rows], width or self.k)
        self._merge(rows + r0, v, torch.where(c == _NO_COL, c, c + c0))

    def _merge_sparse(self, T, r, c, v, r0: int, c0: int) -> None:
        """Merge candidates (tile row r, tile column c, value v), grouped by r, into the rows."""
        if r.numel() == 0:
            return
        urows, counts = torch.unique_consecutive(r, return_counts=True)
        crowded = counts > _GATHER_CAP + (0 if self.band is None else self.k)  # a band holds up to k
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


def knn_graph(Z, k: int, *, chunk_size: int | None = None, device=None, precision: str = "fp32"
              ) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine kNN graph of the rows of ``Z`` (numpy or torch, (N, D)).

    Returns ``(indices (N, k) int64, similarity (N, k) float32)``, each row nearest first, the
    row itself excluded, ties broken by the smaller index. Memory O(N k + chunk^2); similarities
    in float32 (TF32 disabled on GPU, so results do not depend on the device's matmul mode).
    ``precision="bf16-screened"`` computes the same graph (bit for bit) with a bfloat16 sweep and
    an exact fp32 re-rank (``_screened_graph``); tiles under 32 rows stay on the fp32 path.
    """
    return graph_and_invariants(Z, k, chunk_size=chunk_size, device=device, precision=precision)[:2]


def graph_and_invariants(Z, k: int, *, chunk_size: int | None = None, device=None, precision: str = "fp32",
                         invariants: bool = False) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """``knn_graph`` of ``Z`` and, with ``invariants``, its Gram invariants (``rv_null.invariants_record``;
    else None). The invariants' one all-pairs term is summed from the graph's own fp32 tiles
    (``_CentredCube``) when the rows' mean does not dominate them, which saves a second pass over
    all pairs: 0.74x the CPU time of graph plus invariants at N = 20,000, d = 1536 (one thread)."""
    if precision not in KNN_PRECISIONS:
        raise ValueError(f"precision={precision!r}: expected one of {list(KNN_PRECISIONS)}")
    dev = pick_device(device, Z)
    raw = as_matrix(Z, dev)
    X = normalise_rows(raw)
    n = X.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"k={k} must be between 1 and N-1={n - 1}")
    b = min(chunk_size or default_chunk_size(n, dev), n)
    # Tile products use every thread; the top-k bookkeeping (many small ops) runs on one.
    workers = torch.get_num_threads()
    cube = None
    with full_fp32(), torch.inference_mode(), threads(1):
        if precision == "bf16-screened" and b >= _REGULAR and _sgemm_is_shape_invariant(X, b, workers):
            values, cols = _screened_graph(X, k, b, workers)
        else:
            cube = _CentredCube.of(raw, b, workers) if invariants else None
            best = _RunningTopK(n, k, b, dev)
            _sweep(best, _tiles(X, b, workers), n, b, cube)
            values, cols = best.values, best.cols
    del raw, X
    record = invariants_record(Z, device=dev, off_cube=cube.total if cube else None) if invariants else None
    return cols.cpu().numpy(), values.cpu().numpy(), record


class _CentredCube:
    """sum_{i != j} G_ij^3 of the centred Gram matrix G = Xc Xc^T (``rv_null``'s one all-pairs term),
    from the kNN sweep's tiles S of unit rows: G_ij = |x_i| |x_j| S_ij - r_i - r_j with
    r_i = m.x_i - |m|^2 / 2. The subtraction cancels as the mean m dominates the rows, so it is used
    only while kappa = sum |x_i|^2 / sum |x_i - m|^2 <= ``MAX_KAPPA``; its relative error against
    float64 was 1e-6 at kappa = 1.4, 2e-5 at 4.7 and 42, 2e-3 at 368 (the centred fp32 pass: 1e-7 to
    1e-6; N = 6,000, d = 384). Each tile costs six elementwise passes beside its GEMM."""

    MAX_KAPPA = 50.0

    def __init__(self, norms: torch.Tensor, r: torch.Tensor, b: int, workers: int):
        self.norms, self.r, self.workers, self.total = norms, r, workers, 0.0
        self._buffer = torch.empty(b * b, device=norms.device)

    @classmethod
    def of(cls, raw: torch.Tensor, b: int, workers: int) -> "_CentredCube | None":
        """The accumulator for the rows ``raw``, or None when their mean dominates them (kappa)."""
        n = raw.shape[0]
        m = sum(raw[s : s + b].double().sum(0) for s in range(0, n, b)) / n
        norms2 = torch.cat([raw[s : s + b].double().pow(2).sum(1) for s in range(0, n, b)])
        mm = float(m @ m)
        spread = float(norms2.sum()) - n * mm
        if spread <= 0 or float(norms2.sum()) / spread > cls.MAX_KAPPA:
            return None
        r = torch.cat([raw[s : s + b].double() @ m for s in range(0, n, b)]) - mm / 2
        return cls(norms2.sqrt().float(), r.float(), b, workers)

    def add(self, S: torch.Tensor, i0: int, j0: int) -> None:
        """Add tile ``S`` (rows i0.., columns j0..; on the diagonal, its diagonal excluded); a tile
        off the diagonal stands for its transpose too."""
        h, w = S.shape
        G = self._buffer[: h * w].view(h, w)
        with threads(self.workers):
            torch.mul(S, self.norms[i0 : i0 + h, None], out=G)
            G.mul_(self.norms[None, j0 : j0 + w]).sub_(self.r[i0 : i0 + h, None]).sub_(self.r[None, j0 : j0 + w])
            if i0 == j0:
                G.fill_diagonal_(0)
            self.total += float(torch.sum(G.pow_(3), dtype=torch.float64)) * (1 if i0 == j0 else 2)


def _tiles(X: torch.Tensor, b: int, workers: int, out_dtype=None):
    """``tile(i0, j0) = X[i0:i0+b] @ X[j0:j0+b].T`` into one reused buffer (no page faults per
    tile), as ``out_dtype`` (a float32 copy of a low-precision product)."""
    buffer = torch.empty(b * b, device=X.device, dtype=X.dtype)
    wide = None if out_dtype in (None, X.dtype) else torch.empty(b * b, device=X.device, dtype=out_dtype)

    def tile(i0: int, j0: int) -> torch.Tensor:
        rows, cols = X[i0 : i0 + b], X[j0 : j0 + b]
        with threads(workers):
            S = torch.mm(rows, cols.T, out=buffer[: len(rows) * len(cols)].view(len(rows), len(cols)))
            return S if wide is None else wide[: S.numel()].view(S.shape).copy_(S)

    return tile


def _sweep(best: _RunningTopK, tile, n: int, b: int, cube: _CentredCube | None = None) -> None:
    """Offer every tile on and above the block diagonal to ``best`` (and first to ``cube``).
    Diagonal tiles first: every row then starts from a top-k of a contiguous tile row, and the
    off-diagonal tiles only feed the sparse candidate path."""
    for i0 in range(0, n, b):
        S = tile(i0, i0)
        if cube:
            cube.add(S, i0, i0)
        best.offer(S.fill_diagonal_(float("-inf")), i0, i0)
    for i0 in range(0, n, b):
        for j0 in range(i0 + b, n, b):
            S = tile(i0, j0)
            if cube:
                cube.add(S, i0, j0)
            best.offer(S, i0, j0)


def screening_bound(d: int, norm: float) -> float:
    """E such that |bf16-screened similarity - fp32 similarity| <= E for rows of norm <= ``norm``.

    With u = 2^-8 (bfloat16, round to nearest), g = gamma_d = d v / (1 - d v) for an fp32
    accumulator of unit roundoff v = 2^-23 (any summation order, rounding or truncating), and
    Cauchy-Schwarz (sum |x_k y_k| <= |x| |y| <= norm^2):
      inputs rounded to bf16:      |x^.y^ - x.y|  <= (2u + u^2) norm^2  (products exact in fp32)
      fp32 accumulation of x^ y^:  |A - x^.y^|    <= g (1 + u)^2 norm^2
      bf16 output of A:            |s^ - A|       <= u (1 + g) (1 + u)^2 norm^2
      the fp32 reference itself:   |s - x.y|      <= g norm^2
    plus d 2^-118 for flushed subnormals and 2^-20 for the fp32 subtraction of the threshold.
    For unit rows at d = 1536: E = 0.01213 (2E is the width of the candidate band).
    """
    u, g = _BF16_U, d * _ACC_U / (1 - d * _ACC_U)
    return norm**2 * ((2 * u + u * u) + g * (1 + u) ** 2 + u * (1 + g) * (1 + u) ** 2 + g) + d * 2.0**-118 + 2.0**-20


def _screened_graph(X: torch.Tensor, k: int, b: int, workers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fp32 graph of unit rows ``X``, from a bf16 sweep plus an exact re-rank.

    1. Sweep the tiles with bf16 inputs, fp32 accumulation and bf16 output, keeping per row its
       best ``keep`` screened values, and only values within 2E of its k-th screened value t (E =
       ``screening_bound``). Every fp32 top-k member j of a row has s^_j >= t - 2E: the k columns
       with s^ >= t have s >= t - E, so the fp32 k-th value is >= t - E, and s^_j >= s_j - E.
       Ties at the fp32 k-th value are inside the band too.
    2. Re-rank the band in fp32 with the values the fp32 path computes for those pairs, in the
       order (-value, column). A row whose band may not fit in ``keep`` is redone in full fp32.
    """
    n, d = X.shape
    norm = float(torch.linalg.vector_norm(X, dim=1).max()) * (1 + (d + 4) * 2.0**-23)  # rounded up
    slack = 2 * screening_bound(d, norm)
    keep = min(n - 1, 2 * k + 32)
    best = _RunningTopK(n, keep, b, X.device, band=(k, slack))
    # The bound assumes fp32 accumulation: no bf16 partial reductions in cuBLAS.
    reduced = torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    try:
        _sweep(best, _tiles(X.to(torch.bfloat16), b, workers, torch.float32), n, b)
    finally:
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = reduced
    values, cols = best.values, best.cols
    live = (values >= best.threshold(slice(None))[:, None]) & (cols != _NO_COL)
    crowded = live[:, -1] if keep < n - 1 else torch.zeros(n, dtype=torch.bool, device=X.device)
    exact = _ExactValues(X, b, workers)
    v = exact.pairs(cols, live & ~crowded[:, None])
    out_v, out_c = rank_sort(v, torch.where(v > float("-inf"), cols, _NO_COL), k)
    redo = crowded.nonzero().flatten()
    for a in range(0, len(redo), 256):
        q = redo[a : a + 256]
        out_v[q], out_c[q] = tile_topk(exact.rows(q), k)
    stats = {"band": slack, "candidates_per_row": float(live.sum()) / n, "rows_redone": len(redo)}
    log.info("bf16 screening: band 2E=%.4f, %.1f candidates per row, %d rows redone in fp32",
             *stats.values(), extra={"screen": stats})
    return out_v, out_c


class _ExactValues:
    """The float32 similarities the fp32 path computes, for chosen pairs.

    The fp32 path evaluates a pair inside a (b x b) tile. MKL's sgemm gives an entry the same value
    in any call with >= ``_REGULAR`` rows and columns (checked on this data by
    ``_sgemm_is_shape_invariant``), so pairs are evaluated by small GEMMs of that size; pairs
    with a member in a last block of fewer than ``_REGULAR`` rows repeat the fp32 path's own calls.
    """

    def __init__(self, X: torch.Tensor, b: int, workers: int):
        self.X, self.workers = X, workers
        n = X.shape[0]
        self.s0 = (n - 1) // b * b if n - (n - 1) // b * b < _REGULAR else n
        self.edge = None
        if self.s0 < n:  # the short last block: its tiles with every block, as the fp32 path calls them
            self.edge = torch.empty(n, n - self.s0, device=X.device)
            for i0 in range(0, n, b):
                self.edge[i0 : i0 + b] = self._mm(X[i0 : i0 + b], X[self.s0 :], workers)
            self.edge[self.s0 :].fill_diagonal_(float("-inf"))

    def _mm(self, A, B, workers: int = 1):
        """A @ B.T; small products on one thread (an OpenMP barrier per call stalls when the
        cores are shared), the big ones on every thread."""
        with threads(workers):
            return torch.mm(A, B.T)

    def pairs(self, cols: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        """Values of (i, cols[i, c]) where ``live``, -inf elsewhere.

        Each unordered pair {i < j} is evaluated once, as row i (the orientation of the fp32
        path's tile), by one GEMM per ``_GROUP`` consecutive rows i against the union of their
        columns j (padded to ``_REGULAR`` columns).
        """
        X, n = self.X, self.X.shape[0]
        r = torch.arange(n, device=X.device).repeat_interleave(live.sum(1))
        c = cols[live]
        keys, inverse = torch.unique(torch.minimum(r, c) * n + torch.maximum(r, c), return_inverse=True)
        lo, hi = keys // n, keys % n
        values = torch.empty(len(keys), device=X.device)
        bounds = torch.searchsorted(lo, torch.arange(0, n + _GROUP, _GROUP, device=X.device)).tolist()
        for g, a in enumerate(range(0, n, _GROUP)):
            s, e = bounds[g], bounds[g + 1]
            if s == e:
                continue
            union, pos = torch.unique(hi[s:e], return_inverse=True)
            start = min(a, n - _GROUP)  # always a full group of rows
            short = max(0, _REGULAR - len(union))
            S = self._mm(X[start : start + _GROUP], X[torch.cat([union, union.new_zeros(short)])])
            values[s:e] = S[lo[s:e] - start, pos]
        if self.edge is not None:  # lo < hi: a pair in the short block has its hi there
            at = hi >= self.s0
            values[at] = self.edge[lo[at], hi[at] - self.s0]
        out = torch.full(cols.shape, float("-inf"), device=X.device)
        out[live] = values[inverse]
        if self.edge is not None:  # both in the short block: the row's own side of its diagonal tile
            s0, c = self.s0, cols[self.s0 :]
            rr, cc = (live[s0:] & (c >= s0)).nonzero(as_tuple=True)
            out[s0 + rr, cc] = self.edge[s0 + rr, c[rr, cc] - s0]
        return out

    def rows(self, q: torch.Tensor) -> torch.Tensor:
        """All values of rows ``q`` (self excluded as -inf): the fp32 path for a crowded row."""
        pad = torch.arange(_REGULAR, device=self.X.device)
        S = self._mm(self.X[torch.cat([q, pad])], self.X, self.workers)[: len(q)]
        if self.edge is not None:
            short = q >= self.s0
            S[short, : self.s0] = self.edge[: self.s0, q[short] - self.s0].T
            S[:, self.s0 :] = self.edge[q]
        S[torch.arange(len(q), device=S.device), q] = float("-inf")
        return S


def _sgemm_is_shape_invariant(X: torch.Tensor, b: int, workers: int) -> bool:
    """Whether the re-rank's small GEMMs reproduce the fp32 path's tile entries on this BLAS and
    data (one tile of work); if not, the screened path would not be exact and is not used."""
    tile = _tiles(X, b, workers)(0, 0)
    g = torch.Generator(device="cpu").manual_seed(0)
    rows = torch.randperm(b, generator=g)[:_GROUP].to(X.device)
    cols = torch.randperm(b, generator=g)[:_REGULAR].to(X.device)
    with threads(1):  # as the re-rank calls them
        same = bool(torch.equal(torch.mm(X[rows], X[cols].T), tile[rows][:, cols])
                    and torch.equal(torch.mm(X[cols], X[rows].T).T, tile[rows][:, cols]))
    if not same:
        log.warning("this BLAS gives GEMM entries that depend on the call's shape: bf16 screening "
                    "cannot reproduce the fp32 graph exactly, computing it in fp32")
    return same


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


def file_graph(Z, ids: np.ndarray, k: int, where: str, *, device, chunk_size: int | None = None,
               precision: str = "fp32", invariants: bool = False) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """``graph_and_invariants`` of the rows of one file, its errors naming ``where`` (the file, and
    block) and the objects whose embeddings have zero norm."""
    try:
        return graph_and_invariants(Z, k, chunk_size=chunk_size, device=device, precision=precision,
                                    invariants=invariants)
    except DegenerateRowsError as err:
        raise ValueError(f"{where}: {len(err.rows)} embeddings have zero norm (cosine similarity "
                         f"is undefined), e.g. object_id {ids[err.rows[:5]].tolist()}") from None
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def knn_file(emb_path, out_path, k: int, *, width: int | None = None, device=None,
             chunk_size: int | None = None, precision: str = "fp32", invariants: bool = False) -> None:
    """Compute the kNN graph of one embedding file (``precision``: see ``knn_graph``) and write it
    with ``schema.write_knn``; with ``invariants``, cache the file's Gram invariants (``rv_null``)
    in its provenance too.

    ``width`` (>= k) asks for more columns (``registry.graph_width``), as many as the file has
    other objects; k itself must fit."""
    from .. import schema

    ids, emb, _ = schema.read_embeddings(emb_path)
    schema.check_finite(emb, ids, str(emb_path))
    k = max(k, min(width or k, len(ids) - 1))
    dev = pick_device(device)
    indices, similarity, record = file_graph(emb, ids, k, str(emb_path), device=dev, chunk_size=chunk_size,
                                             precision=precision, invariants=invariants)
    log.info("kNN graph of %s: N=%d D=%d k=%d on %s (%d threads)", emb_path, *emb.shape, k, dev,
             torch.get_num_threads())
    schema.write_knn(out_path, ids, indices, similarity, {
        "k": k, "device": str(dev), "torch": torch.__version__, "metric": "cosine", "precision": precision,
        "source": os.fspath(emb_path), "chunk_size": chunk_size or default_chunk_size(len(ids), dev),
        **({"gram_invariants": record} if invariants else {}),
    })
