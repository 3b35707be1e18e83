"""One compared pair of embedding files -> one flat record per metric (the ``compare`` rule).

Side B is re-aligned to side A's object order by id, so files written in different orders
compare correctly. Objects on one side only (an image one survey's preprocessing dropped) are
left out and counted (``n_excluded``); the cached kNN graphs are restricted to the common
objects exactly, recomputing only the rows that lost a neighbour. All metrics share the same
seeded null permutations and subsamples, draw for draw. Nothing here asks a metric's name: each
metric's declaration (``registry.Metric``) says what it reads, its nulls and its interval.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from .. import schema
from ..plan import COMPARISON_FIELDS
from .knn import restrict_graph
from .pair import Pair
from .registry import PAIRING_FREE, QUARTER_INTERVALS, get_metric
from .stats import calibrated, calibrated_interval, permutations, quarter_splits, summarise

log = logging.getLogger(__name__)


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def read_checked_embeddings(path) -> tuple[np.ndarray, np.ndarray]:
    """(object_id, embedding) of an embedding file, refusing non-finite rows by their ids."""
    ids, emb, _ = schema.read_embeddings(path)
    schema.check_finite(emb, ids, str(path))
    return ids, emb


def _examples(ids: np.ndarray) -> list[str]:
    return np.sort(ids)[:5].tolist()


def common_rows(ids_a: np.ndarray, ids_b: np.ndarray, path_a, path_b, k: int):
    """Rows of each side holding the objects both sides have, in side A's order.

    Returns (rows_a, rows_b, n_excluded); a side's rows are None when it is used whole and in
    its own order. Objects present on one side only (e.g. an image dropped by one survey's
    preprocessing) are left out of the comparison, counted and logged; a pair with fewer than
    k + 2 common objects is refused.
    """
    if len(ids_a) == len(ids_b) and np.array_equal(ids_a, ids_b):
        return None, None, 0
    in_b = np.isin(ids_a, ids_b)
    rows_a = np.flatnonzero(in_b)
    only_a, only_b = ids_a[~in_b], np.setdiff1d(ids_b, ids_a)
    if len(rows_a) < k + 2:
        raise schema.SchemaError(
            f"{path_a} and {path_b} share {len(rows_a)} objects, too few to compare at k={k}: "
            f"{len(only_a)} object_id only in {path_a} (e.g. {_examples(only_a)}), {len(only_b)} only in "
            f"{path_b} (e.g. {_examples(only_b)})")
    if len(only_a) or len(only_b):
        log.warning("comparing the %d objects common to %s and %s: %d only in the first (e.g. %s), "
                    "%d only in the second (e.g. %s) are left out", len(rows_a), path_a, path_b,
                    len(only_a), _examples(only_a), len(only_b), _examples(only_b))
    sorter = np.argsort(ids_b)
    rows_b = sorter[np.searchsorted(ids_b, ids_a[rows_a], sorter=sorter)]
    return (rows_a if len(only_a) else None), rows_b, len(only_a) + len(only_b)


def read_graph(knn_path, emb_path, emb_ids: np.ndarray, k: int):
    """The graph of ``knn_path`` after checking it was computed from ``emb_path`` with k_max >= k."""
    ids, indices, similarity, _ = schema.read_knn(knn_path)
    if len(ids) != len(emb_ids) or not np.array_equal(ids, emb_ids):
        differ = np.setxor1d(ids, emb_ids)
        what = (f"{len(differ)} object_id differ, e.g. {_examples(differ)}" if len(differ)
                else "same objects in a different order")
        raise schema.SchemaError(f"{knn_path} does not belong to {emb_path} ({what}); recompute the kNN graph")
    if indices.shape[1] < k:
        raise schema.SchemaError(f"{knn_path}: graph has k_max={indices.shape[1]} < requested k={k}")
    return indices, similarity


def cached_invariants(knn_path, rows) -> dict | None:
    """The Gram invariants the knn_graph rule cached beside the graph (rv_null), if they apply:
    they describe the whole file, so a side restricted to common rows recomputes them."""
    from .rv_null import Invariants

    if knn_path is None or rows is not None:
        return None
    with schema.read_h5(knn_path) as f:
        cached = schema.read_provenance(f).get("gram_invariants")
    if cached is None:
        return None
    return {kind: Invariants.from_dict(d, f"{knn_path}: gram_invariants.{kind}") for kind, d in cached.items()}


def restrict(Z, graph, rows, where, columns: int | None = None):
    """A side restricted to ``rows`` (None: all), its cached graph (or None) restricted exactly
    (``knn.restrict_graph``) and cut to its first ``columns`` columns (None: all it has)."""
    if rows is not None:
        Z = Z[rows]
        if graph is not None:
            indices, similarity, redone = restrict_graph(*graph, rows, Z, graph[0].shape[1])
            log.info("%s: %d rows; cached kNN graph reused, %d rows recomputed", where, len(rows), redone)
            graph = (indices, similarity)
    if graph is not None and columns is not None:
        graph = (np.ascontiguousarray(graph[0][:, :columns]), np.ascontiguousarray(graph[1][:, :columns]))
    return Z, graph


def compare_files(emb_a, emb_b, knn_a, knn_b, *, comparison: dict, metrics: list[str], k: int,
                  null_draws: int, subsampling_splits: int, ci: float, seed: int,
                  feature_space_draws: int = 100, alpha: float = 0.05, cka_null: str = "closed_form",
                  params: dict[str, dict] | None = None, device=None) -> list[dict]:
    """Score every metric of ``metrics`` on one pair of embedding files, with statistics.

    ``knn_a``/``knn_b`` are the cached graphs of the embedding files (checked to belong to them;
    None computes graphs on the fly where a metric needs one).

    Nulls shuffle side B (``null_draws`` permutations); intervals at level ``ci`` come from
    ``subsampling_splits`` random splits (``pair_statistics``). Metrics whose every
    draw costs O(N d^2) (CKA) make at most ``feature_space_draws`` of each; every record states
    the draws it made. For a self pair (the same file on both sides) the null is the paper's
    "shuffled reference vs reference" column. Every record carries ``tau``, the null's
    (1 - ``alpha``) level, and the ``calibrated`` score above it (``stats.calibrated``), but a
    pairing-free measure's (``Metric.pairing_free``: no null is defined, none is drawn), whose
    p_value, tau and calibrated fields are None and whose ``null_method`` is 'pairing_free'.
    With ``cka_null='closed_form'`` the CKA nulls are exact moments with a Pearson type III law
    (``rv_null``; no null draws, ``null_method`` 'closed_form'); 'permutation' draws them.
    ``params`` holds each metric's parameters other than ``k`` (``{metric: {name: value}}``,
    config ``metrics.params``; unset ones take the registry's defaults).
    """
    if cka_null not in ("closed_form", "permutation"):
        raise ValueError(f"cka_null must be 'closed_form' or 'permutation', got {cka_null!r}")
    missing = [f for f in COMPARISON_FIELDS if f not in comparison]
    if missing:
        raise KeyError(f"comparison is missing {missing}")
    if not 0 < ci < 1 or min(null_draws, subsampling_splits, feature_space_draws) < 0:
        raise ValueError(f"need 0 < ci < 1 and non-negative draws, got ci={ci}, null_draws={null_draws}, "
                         f"subsampling_splits={subsampling_splits}, feature_space_draws={feature_space_draws}")
    specs = [get_metric(name) for name in metrics]
    same = _same_file(emb_a, emb_b)
    ids_a, Za = read_checked_embeddings(emb_a)
    ids_b, Zb = (ids_a, Za) if same else read_checked_embeddings(emb_b)
    rows_a, rows_b, n_excluded = common_rows(ids_a, ids_b, emb_a, emb_b, k)
    uses_knn = any(spec.uses_knn for spec in specs)
    graph_a = None if knn_a is None or not uses_knn else read_graph(knn_a, emb_a, ids_a, k)
    graph_b = None if knn_b is None or not uses_knn else (
        graph_a if same and _same_file(knn_a, knn_b) else read_graph(knn_b, emb_b, ids_b, k))
    Za, graph_a = restrict(Za, graph_a, rows_a, emb_a)
    Zb, graph_b = restrict(Zb, graph_b, rows_b, emb_b)
    invariants = cka_null == "closed_form" and any(spec.uses_gram_invariants for spec in specs)
    inv_a = cached_invariants(knn_a, rows_a) if invariants else None
    inv_b = inv_a if same and rows_b is None and rows_a is None else (
        cached_invariants(knn_b, rows_b) if invariants else None)
    pair = Pair(Za, Zb, graph_a, graph_b, device=device, invariants=(inv_a, inv_b))
    stats = pair_statistics(pair, metrics, k=k, null_draws=null_draws, subsampling_splits=subsampling_splits,
                            ci=ci, seed=seed, feature_space_draws=feature_space_draws, alpha=alpha,
                            cka_null=cka_null, params=params)
    records = []
    for name, st in stats.items():
        rec = {f: comparison[f] for f in COMPARISON_FIELDS}
        rec.update(n=int(pair.n), n_excluded=int(n_excluded), metric=name, **st)
        records.append(rec)
        log.info("%s %s vs %s: %s = %.6g (null %s, p %s)", comparison["kind"], Path(emb_a).name,
                 Path(emb_b).name, name, rec["score"], rec["null_mean"], rec["p_value"])
    return records


def pair_statistics(pair: Pair, metrics: list[str], *, k: int, null_draws: int, subsampling_splits: int,
                    ci: float, seed: int, feature_space_draws: int = 100, alpha: float = 0.05,
                    cka_null: str = "closed_form", params: dict[str, dict] | None = None) -> dict[str, dict]:
    """Score, null and interval of every metric of ``metrics`` on one aligned pair.

    Returns, per metric, ``k`` (None for metrics without neighbourhoods), ``score`` and the
    ``summarise`` fields. Nulls permute side B, or are closed-form laws (metrics that declare
    one, when ``cka_null`` is 'closed_form'). Intervals (``stats``: subsampling): metrics with
    the neighbourhood interval are rescored on the two halves and four quarters of
    ``subsampling_splits`` random splits, the others on the halves of the first
    ``feature_space_draws``, with graphs and moments recomputed on each subsample and all
    metrics of a subsample sharing them. ``params``: as in ``compare_files``.
    """
    specs = [get_metric(name) for name in metrics]
    unused = set(params or {}) - set(metrics)
    if unused:
        raise KeyError(f"parameters given for metric(s) {sorted(unused)}, which are not among {metrics}")
    estimators, settings = {}, {}
    for spec in specs:
        settings[spec.name] = {**({"k": k} if spec.takes_k else {}), **(params or {}).get(spec.name, {})}
        estimators[spec.name] = spec.estimator(pair, **settings[spec.name])
    scores = {name: est.score() for name, est in estimators.items()}
    laws = {}  # closed-form null laws, which replace the null draws
    if cka_null == "closed_form":
        laws = {spec.name: estimators[spec.name].closed_null() for spec in specs if spec.closed_form}
        laws = {name: law for name, law in laws.items() if law is not None}
    drawn = {name: est for name, est in estimators.items() if name not in laws}
    nulls = _null_draws(drawn, specs, permutations(pair.n, null_draws, seed), null_draws, feature_space_draws)
    nulls.update({name: [] for name in laws})
    # Intervals: every metric is rescored on the subsamples of the same splits; metrics without
    # neighbourhoods recompute O(N d^2) moments on each, so they make at most feature_space_draws.
    limits = {s.name: s.splits_made(subsampling_splits, feature_space_draws) for s in specs}
    rescored = _subsample_draws(pair, specs, settings, limits, quarter_splits(pair.n, max(limits.values(), default=0), seed))
    out = {}
    for spec in specs:
        name = spec.name
        st = {"k": settings[name].get("k"), "score": float(scores[name]),
              **summarise(scores[name], nulls[name], rescored[name], ci, alpha=alpha, scale=spec.scale,
                          interval="subsampling", no_null=PAIRING_FREE if spec.pairing_free else None,
                          knn=(pair.n, settings[name]["k"]) if spec.interval == "subsampling_knn" else None,
                          indicator=spec.interval == "subsampling_indicator",
                          degenerate=spec.interval == "subsampling_degenerate")}
        if name in laws:
            law = laws[name]
            tau = law.threshold(alpha)
            st.update(null_mean=law.mean, null_std=law.std, p_value=law.p_value(scores[name]), tau=tau,
                      calibrated=calibrated(scores[name], tau, spec.scale), null_method="closed_form")
        st["calibrated_low"], st["calibrated_high"] = calibrated_interval(st["ci_low"], st["ci_high"], st["tau"],
                                                                          spec.scale)
        out[name] = st
    return out


def _subsample_draws(pair: Pair, specs, params: dict, limits: dict, splits) -> dict[str, list[list[float]]]:
    """Per metric and split, its scores on the split's subsamples (fresh estimators, every
    neighbourhood and moment recomputed on the subsample alone, a measure's sampled pairs in
    proportion to the subsample's objects: ``Metric.subsample_params``): the six for the
    neighbourhood interval, the two halves for the others (``stats.subsampling_se``); metric m
    uses the first ``limits[m]`` splits."""
    out = {s.name: [] for s in specs}
    width = max((params[s.name].get("k", 0) for s in specs if s.uses_knn), default=0)
    start, count = time.perf_counter(), 0
    progress = Progress("subsampling splits", max(limits.values(), default=0))
    too_small = set()  # metrics a subsample is too small for (e.g. MI's components): no interval
    for i, subsamples in enumerate(splits):
        progress(i)
        active = [s for s in specs if i < limits[s.name] and s.name not in too_small]
        if not active:
            break
        scores = {s.name: [] for s in active}
        for j, rows in enumerate(subsamples):
            rescored = [s for s in active if s.interval in QUARTER_INTERVALS or j < 2]  # (H, H', Q1..Q4)
            if not rescored:
                break
            sub = pair.subsample(rows, width)
            for s in rescored:
                try:
                    scores[s.name].append(s.estimator(sub, **s.subsample_params(params[s.name], len(rows), pair.n)).score())
                except ValueError as err:
                    if i:
                        raise
                    log.warning("%s: no interval, a subsample of %d objects is too small: %s", s.name, len(rows), err)
                    too_small.add(s.name)
        for name, row in scores.items():
            if name not in too_small:
                out[name].append(row)
        count += 1
    if count:
        log.info("%d subsampling draws in %.1f s", count, time.perf_counter() - start)
    return out


def _null_draws(estimators: dict, specs, perms, total: int, costly_cap: int) -> dict[str, list[float]]:
    """Every estimator's null on the same sequence of permutations, each metric's first ``Metric.null_draws_made``."""
    limit = {s.name: s.null_draws_made(total, costly_cap) for s in specs if s.name in estimators}
    out = {name: [] for name in estimators}
    start = time.perf_counter()
    progress = Progress("null draws", max(limit.values(), default=0))
    for i, pi in enumerate(perms):
        progress(i)
        for name, est in estimators.items():
            if i < limit[name]:
                out[name].append(est.null(pi))
        if i + 1 >= max(limit.values(), default=0):
            break
    if total:
        log.info("%d null draws in %.1f s", total, time.perf_counter() - start)
    return out


class Progress:
    """Logs ``what``'s progress (i of ``total``) at most every ``every`` seconds, so a long run (a
    command-line compare, a large pair) shows it is moving; silent for work shorter than that."""

    def __init__(self, what: str, total: int, every: float = 10.0):
        self.what, self.total, self.every = what, total, every
        self.start = self.last = time.perf_counter()

    def __call__(self, i: int) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            log.info("%s: %d of %d (%.0f s)", self.what, i, self.total, now - self.start)
