"""The authors' physics tests: what an embedding knows about per-object properties.

Each function follows one definition of "The Platonic Universe" authors' current code,
UniverseTBD/platonic-universe at 6672072 (``pu`` below): ``src/pu/metrics/physics.py``
(``physics.py:<line>``), ``experiments/platonic/compute/pu_umap.py`` (kNN purity) and
``experiments/cosmosweb/run_crossmodal.py`` (how the Wasserstein test is fed). Every choice of
the reference is a parameter whose default is the reference's value; tests/test_physics.py checks
each against outputs the reference's own code produced (tests/golden/make_physics_golden.py).

What differs from the reference, on purpose:

* Embedding neighbours come from the cached exact cosine kNN graph (``metrics.knn``: self
  excluded, nearest first, ties to the smaller index) instead of a fresh scikit-learn
  ``NearestNeighbors(metric="cosine")``; where the reference drops objects first (the 1-99%
  clip), the graph is restricted to the kept objects exactly (``knn.restrict_graph``: the first
  k kept neighbours, rows left short recomputed). The graph ranks float32 similarities, the
  reference float64 distances: the two differ only where two neighbours' similarities agree to
  ~1e-7 at the k-th place.
* Too few objects, a missing property, or fewer than two properties for the joint test raise a
  ``PhysicsError`` naming the test; the reference returns NaN or skips the property silently.
  A constant property still gives NaN (its ratio is undefined), as in the reference.

Property-space neighbours (one property, or several standardised) are scikit-learn's
``NearestNeighbors`` exactly as the reference asks for them, so ties among equal property
values are broken as the reference breaks them.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from .metrics import knn, stats

# The reference's outlier clip of the target (physics.py:547): keep y within these percentiles.
CLIP_PERCENTILES = (1.0, 99.0)


class PhysicsError(ValueError):
    """A physics test cannot be run on these data; the message names the test."""


# ---- shared steps ---------------------------------------------------------------------------

def kept_rows(Z, y, clip_percentiles: Sequence[float] | None = CLIP_PERCENTILES, where: str = "physics test"
              ) -> np.ndarray:
    """Boolean mask of the objects a single-property test keeps (pu ``_clean_inputs``,
    physics.py:531): finite ``y`` and finite embedding rows, and ``y`` within the
    ``clip_percentiles`` of ``y`` (``np.nanpercentile`` over every row, inclusive bounds;
    ``None`` keeps all finite rows)."""
    Z, y = np.asarray(Z), np.asarray(y, np.float64).ravel()
    if Z.shape[0] != y.shape[0]:
        raise PhysicsError(f"{where}: {Z.shape[0]} embeddings but {y.shape[0]} property values")
    keep = np.isfinite(y) & np.all(np.isfinite(Z), axis=1)
    if keep.any() and clip_percentiles is not None:
        lower, upper = np.nanpercentile(y, list(clip_percentiles))  # over every row, as the reference
        keep &= (y >= lower) & (y <= upper)
    if not keep.any():
        raise PhysicsError(f"{where}: no object has a finite property value (and embedding) within the clip "
                           f"percentiles {clip_percentiles}")
    return keep


def _need(n: int, least: int, where: str) -> None:
    if n < least:
        raise PhysicsError(f"{where}: {n} usable objects are too few (needs at least {least})")


def checked_graph(Z, graph, k: int, where: str = "physics test", width: int | None = None):
    """The ``(indices, similarity)`` kNN graph of all rows of ``Z``: ``graph`` (the cached one,
    ``schema.read_knn``) checked to have a row per embedding and at least ``k`` columns, or, if
    None, computed (``width`` columns, default ``k``; at most N - 1)."""
    n = len(Z)
    if graph is None:
        return knn.knn_graph(Z, min(width or k, n - 1))
    if graph[0].shape[0] != n:
        raise PhysicsError(f"{where}: the kNN graph has {graph[0].shape[0]} rows for {n} embeddings")
    if graph[0].shape[1] < k:
        raise PhysicsError(f"{where}: the kNN graph holds {graph[0].shape[1]} neighbours per object, fewer than k={k}")
    return graph


def _neighbours(Z, graph, rows: np.ndarray, k: int) -> np.ndarray:
    """(len(rows), k) neighbours of ``rows`` among ``rows`` (positions in ``rows``), from the graph
    of all rows of ``Z``: its first k columns when ``rows`` is every row, else restricted exactly."""
    if len(rows) == len(Z):
        return graph[0][:, :k]
    return knn.restrict_graph(*graph, rows, np.asarray(Z)[rows], k)[0]


def embedding_neighbours(Z, keep: np.ndarray, k: int, graph=None, where: str = "physics test") -> np.ndarray:
    """(n_kept, k) cosine neighbours of the kept objects among the kept objects, self excluded,
    nearest first: the reference's ``NearestNeighbors(n_neighbors=k, metric="cosine")
    .fit(Z[keep]).kneighbors()``. ``graph``: the cached ``(indices, similarity)`` of all rows of
    ``Z`` (``schema.read_knn``), restricted to ``keep`` exactly; ``None`` computes the graph."""
    rows = np.flatnonzero(keep)
    if graph is None:
        return knn.knn_graph(np.asarray(Z)[rows], k)[0]
    return _neighbours(Z, checked_graph(Z, graph, k, where), rows, k)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of |a_i & b_i| / k for two (n, k) neighbour lists (each row distinct)."""
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    shared = np.sum(both[:, 1:] == both[:, :-1], axis=1)
    return float(np.mean(shared / a.shape[1]))


def _property_neighbours(Y: np.ndarray, k: int) -> np.ndarray:
    """k Euclidean neighbours in property space, self excluded (physics.py:303 and :410)."""
    return NearestNeighbors(n_neighbors=k, metric="euclidean").fit(Y).kneighbors(return_distance=False)


# ---- probes ---------------------------------------------------------------------------------

def _cross_predict(X: np.ndarray, target: np.ndarray, folds: int, fit_predict) -> list[tuple[np.ndarray, np.ndarray]]:
    """(test rows, predictions) of each fold of an unshuffled ``KFold(folds)``, as
    ``cross_val_score(cv=folds)`` splits a regressor's rows; ``target`` (n,) or (n, m) for m
    targets at once."""
    return [(test, fit_predict(X[train], target[train], X[test])) for train, test in KFold(n_splits=folds).split(X)]


def _fold_r2(target: np.ndarray, predicted) -> np.ndarray:
    """R^2 of each fold (rows) for each target (columns) of ``_cross_predict``'s output."""
    t = target.reshape(len(target), -1)
    return np.array([[r2_score(t[test, j], pred.reshape(len(test), -1)[:, j]) for j in range(t.shape[1])]
                     for test, pred in predicted])


def _probe_result(X: np.ndarray, t: np.ndarray, fit_predict, folds: int) -> dict:
    scores = [float(v) for v in _fold_r2(t, _cross_predict(X, t, folds, fit_predict))[:, 0]]
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "folds": scores}


def _ols_setup(Z, y, folds: int, pca_components: int | None, clip_percentiles):
    where = "ols_probe"
    keep = kept_rows(Z, y, clip_percentiles, where)
    X, t = np.asarray(Z, np.float64)[keep], np.asarray(y, np.float64).ravel()[keep]
    _need(len(X), folds, where)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    X = X / np.where(norms < 1e-12, 1.0, norms)

    def fit_predict(x_train, y_train, x_test):  # several targets: one least-squares solve
        if pca_components is not None:
            pca = PCA(n_components=min(pca_components, x_train.shape[1], x_train.shape[0]))
            x_train = pca.fit_transform(x_train)
            x_test = pca.transform(x_test)
        return LinearRegression().fit(x_train, y_train).predict(x_test)

    return keep, X, t, fit_predict


def ols_probe(Z, y, *, folds: int = 5, pca_components: int | None = None,
              clip_percentiles: Sequence[float] | None = CLIP_PERCENTILES) -> dict:
    """Cross-validated R^2 of an ordinary least-squares probe of ``y`` (pu ``linear_probe``,
    physics.py:84; the MKNN-vs-R^2 figure's probe, experiments/cosmosweb/plot_mknn_vs_r2.py:229).

    Objects kept by ``kept_rows``; rows L2-normalised (norms under 1e-12 left as they are); folds
    of an unshuffled ``KFold(folds)`` (contiguous in file order); per fold, with
    ``pca_components``, a ``PCA(min(pca_components, D, n))`` fitted on the training rows (full
    SVD for small inputs, else scikit-learn's default solver policy, as the reference; n here is
    the training rows, where the reference's n, all rows, only differs when its PCA would fail),
    then ``LinearRegression`` (with intercept). Returns {"mean", "std" (ddof 0), "folds": [R^2]}.
    """
    return _probe_result(*_ols_setup(Z, y, folds, pca_components, clip_percentiles)[1:], folds=folds)


def _boosting_setup(Z, y, folds: int, n_estimators: int, max_depth: int, subsample: float, seed: int,
                    clip_percentiles):
    where = "boosting_probe"
    keep = kept_rows(Z, y, clip_percentiles, where)
    X, t = np.asarray(Z, np.float64)[keep], np.asarray(y, np.float64).ravel()[keep]
    _need(len(X), folds, where)
    X = StandardScaler().fit_transform(X)

    def fit_predict(x_train, y_train, x_test):
        if y_train.ndim == 2:  # one boosted model per target
            return np.column_stack([fit_predict(x_train, col, x_test) for col in y_train.T])
        model = GradientBoostingRegressor(n_estimators=n_estimators, max_depth=max_depth, subsample=subsample,
                                          random_state=seed)
        return model.fit(x_train, y_train).predict(x_test)

    return keep, X, t, fit_predict


def boosting_probe(Z, y, *, folds: int = 5, n_estimators: int = 100, max_depth: int = 4, subsample: float = 0.8,
                   seed: int = 42, clip_percentiles: Sequence[float] | None = CLIP_PERCENTILES) -> dict:
    """Cross-validated R^2 of a gradient-boosting probe of ``y`` (pu ``nonlinear_probe``,
    physics.py:137).

    Objects kept by ``kept_rows``; embedding columns standardised over all kept objects (before
    the split, as the reference; trees barely notice); unshuffled ``KFold(folds)``;
    ``GradientBoostingRegressor(n_estimators, max_depth, subsample, random_state=seed)`` fitted
    per fold, every fold with the same seed. Returns {"mean", "std" (ddof 0), "folds"}.
    """
    setup = _boosting_setup(Z, y, folds, n_estimators, max_depth, subsample, seed, clip_percentiles)
    return _probe_result(*setup[1:], folds=folds)


# ---- neighbourhood tests --------------------------------------------------------------------
# Each test is a scorer of prepared inputs (the target over the objects it sees, their neighbour
# lists), shared by the public function (the reference's definition) and its statistics.

def _consistency(t: np.ndarray, nbr: np.ndarray) -> float:
    spread = np.std(t)
    if spread < 1e-12:
        return float("nan")
    return float(np.mean(np.std(t[nbr], axis=1)) / spread)


def _set_overlap(t: np.ndarray, nbr: np.ndarray) -> float:
    return _overlap(nbr, _property_neighbours(t[:, None], nbr.shape[1]))


def _joint_overlap(Y: np.ndarray, nbr: np.ndarray) -> float:
    return _overlap(nbr, _property_neighbours(StandardScaler().fit_transform(Y), nbr.shape[1]))


def _rank_correlation(emb_distances: np.ndarray, t: np.ndarray) -> float:
    rho, _ = spearmanr(emb_distances, pdist(t[:, None], metric="euclidean"))
    return float(rho)


def _correlation_sample(Z, y, max_samples: int, seed: int, clip_percentiles) -> tuple[np.ndarray, np.ndarray]:
    keep = kept_rows(Z, y, clip_percentiles, "distance_property_correlation")
    X, t = np.asarray(Z, np.float64)[keep], np.asarray(y, np.float64).ravel()[keep]
    if len(X) > max_samples:
        pick = np.random.RandomState(seed).choice(len(X), max_samples, replace=False)
        X, t = X[pick], t[pick]
    return X, t


def neighbour_consistency(Z, y, graph=None, *, k: int = 10,
                          clip_percentiles: Sequence[float] | None = CLIP_PERCENTILES) -> float:
    """Mean spread of ``y`` over each object's k embedding neighbours, over its global spread
    (pu ``neighbor_property_consistency``, physics.py:182). Below 1: neighbours share the property.

    Objects kept by ``kept_rows``; neighbours among the kept objects (``embedding_neighbours``,
    self excluded, the object's own value not in its spread); spreads are population standard
    deviations (ddof 0). NaN when ``y`` is constant (global std under 1e-12), as the reference.
    """
    where = "neighbour_consistency"
    keep = kept_rows(Z, y, clip_percentiles, where)
    _need(int(keep.sum()), k + 1, where)
    return _consistency(np.asarray(y, np.float64).ravel()[keep], embedding_neighbours(Z, keep, k, graph, where))


def distance_property_correlation(Z, y, *, max_samples: int = 5000, seed: int = 42,
                                  clip_percentiles: Sequence[float] | None = CLIP_PERCENTILES) -> float:
    """Spearman correlation, over all pairs, of the embeddings' cosine distance and the absolute
    difference of ``y`` (pu ``embedding_property_correlation``, physics.py:224). Positive: objects
    apart in the embedding differ in the property.

    Objects kept by ``kept_rows``; above ``max_samples`` of them, ``max_samples`` drawn without
    replacement by ``np.random.RandomState(seed).choice`` (the pairs are O(n^2)).
    """
    X, t = _correlation_sample(Z, y, max_samples, seed, clip_percentiles)
    return _rank_correlation(pdist(X, metric="cosine"), t)


def neighbour_set_overlap(Z, y, graph=None, *, k: int = 10,
                          clip_percentiles: Sequence[float] | None = CLIP_PERCENTILES) -> float:
    """Mean fraction of each object's k embedding neighbours that are also among its k nearest in
    ``y`` (pu ``neighbor_set_overlap``, physics.py:261): MKNN with a property as the second
    space. In [0, 1]; k / (n - 1) by chance.

    Objects kept by ``kept_rows``; embedding neighbours as ``embedding_neighbours``; property
    neighbours by |y_i - y_j|, self excluded (scikit-learn's tree search, its ties).
    """
    where = "neighbour_set_overlap"
    keep = kept_rows(Z, y, clip_percentiles, where)
    _need(int(keep.sum()), k + 1, where)
    return _set_overlap(np.asarray(y, np.float64).ravel()[keep], embedding_neighbours(Z, keep, k, graph, where))


def _joint_inputs(Z, properties: Mapping[str, np.ndarray], names: Sequence[str] | None, k: int
                  ) -> tuple[list[str], np.ndarray, np.ndarray]:
    where = "joint_neighbour_set_overlap"
    names = list(properties) if names is None else list(names)
    missing = [n for n in names if n not in properties]
    if missing:
        raise PhysicsError(f"{where}: no property {missing}; have {sorted(properties)}")
    if len(names) < 2:
        raise PhysicsError(f"{where}: needs at least 2 properties, got {names}")
    Y = np.column_stack([np.asarray(properties[n], np.float64).ravel() for n in names])
    if Y.shape[0] != len(Z):
        raise PhysicsError(f"{where}: {len(Z)} embeddings but {Y.shape[0]} property values")
    keep = np.all(np.isfinite(Y), axis=1) & np.all(np.isfinite(Z), axis=1)
    _need(int(keep.sum()), k + 1, where)
    return names, keep, Y


def joint_neighbour_set_overlap(Z, properties: Mapping[str, np.ndarray], graph=None, *, k: int = 10,
                                names: Sequence[str] | None = None) -> dict:
    """``neighbour_set_overlap`` against all ``names`` of ``properties`` at once (pu
    ``joint_neighbor_set_overlap``, physics.py:315): property neighbours by Euclidean distance of
    the properties each standardised to mean 0 and std 1 (ddof 0) over the kept objects.

    Objects kept: finite in every property and the embedding (no percentile clip here, as the
    reference). ``names`` default to all of ``properties``, in their order; at least two.
    Returns {"joint_overlap", "n_properties", "n_samples", "properties_used"}.
    """
    names, keep, Y = _joint_inputs(np.asarray(Z), properties, names, k)
    overlap = _joint_overlap(Y[keep], embedding_neighbours(Z, keep, k, graph, "joint_neighbour_set_overlap"))
    return {"joint_overlap": overlap, "n_properties": len(names), "n_samples": int(keep.sum()),
            "properties_used": names}


def _purity(label: np.ndarray, nbr: np.ndarray, n_bins: int) -> tuple[float, np.ndarray]:
    known = ~np.isnan(label)
    if known.sum() < 5 * n_bins:
        return float("nan"), np.full(len(label), np.nan, np.float32)
    edges = np.nanquantile(label, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0] -= 1e-9
    edges[-1] += 1e-9
    bins = np.where(known, np.digitize(label, edges) - 1, -1)
    nbr_bins = bins[nbr]
    counted = (nbr_bins >= 0) & (bins[:, None] >= 0)
    n_counted = counted.sum(axis=1)
    matches = np.sum((nbr_bins == bins[:, None]) & counted, axis=1)
    per_object = np.full(len(label), np.nan)
    np.divide(matches, n_counted, out=per_object, where=n_counted > 0)
    per_object = per_object.astype(np.float32)
    return float(np.nanmean(per_object)), per_object


def knn_purity(indices: np.ndarray, label, *, k: int = 50, n_bins: int = 20) -> tuple[float, np.ndarray]:
    """Fraction of each object's k neighbours in its own quantile bin of ``label``, and its mean
    (pu ``knn_purity``, experiments/platonic/compute/pu_umap.py:238; k = its PU_UMAP_KNN_K default).

    ``indices``: a kNN graph's neighbours, self excluded (the reference drops column 0 of an
    HNSW search that includes the object). Bins: ``n_bins`` equal-count bins of the non-NaN labels
    (``np.nanquantile`` edges, the outer ones widened by 1e-9); NaN labels take no bin. Per
    object: matches over neighbours with a bin, NaN if it has no bin or none of them do; float32,
    as the reference. Mean: ``np.nanmean`` of those. Returns (NaN, all-NaN rows) when fewer than
    5 ``n_bins`` labels are known, as the reference.
    """
    label = np.asarray(label, np.float64).ravel()
    if indices.shape[0] != len(label):
        raise PhysicsError(f"knn_purity: the kNN graph has {indices.shape[0]} rows for {len(label)} labels")
    if indices.shape[1] < k:
        raise PhysicsError(f"knn_purity: the kNN graph holds {indices.shape[1]} neighbours per object, "
                           f"fewer than k={k}")
    return _purity(label, indices[:, :k], n_bins)


def _wasserstein(y: np.ndarray, nn1: np.ndarray, nn2: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(np.sort(y[nn1], axis=1) - np.sort(y[nn2], axis=1)), axis=1)


def _standardised(y: np.ndarray) -> np.ndarray:
    return StandardScaler().fit_transform(y[:, None]).ravel()


def neighbourhood_wasserstein(nn1: np.ndarray, nn2: np.ndarray, y, *, k: int = 10, standardize: bool = True
                              ) -> np.ndarray:
    """Per object, the 1-Wasserstein distance between ``y`` over its k neighbours in one space
    (``nn1``) and over its k neighbours in another (``nn2``) (pu ``wass_distance``,
    physics.py:559); the authors average it over objects. 0: both spaces put the object among
    objects alike in ``y``.

    ``standardize``: ``y`` scaled to mean 0, std 1 (ddof 0) first, as the authors' scripts feed it
    (experiments/cosmosweb/run_crossmodal.py:312, run_intramodal.py:456). The first ``k`` columns
    of each neighbour list are used; the authors' lists are 10 Euclidean neighbours of the raw
    embeddings (run_crossmodal.py:292), the cached graphs here are cosine. Equal-size samples:
    the distance is the mean |difference| of the sorted values, which is what
    ``scipy.stats.wasserstein_distance`` integrates (to rounding, ~1e-16).
    """
    y = np.asarray(y, np.float64).ravel()
    for name, nn in (("nn1", nn1), ("nn2", nn2)):
        if nn.shape[0] != len(y):
            raise PhysicsError(f"neighbourhood_wasserstein: {name} has {nn.shape[0]} rows for {len(y)} values")
        if nn.shape[1] < k:
            raise PhysicsError(f"neighbourhood_wasserstein: {name} holds {nn.shape[1]} neighbours, fewer than k={k}")
    return _wasserstein(_standardised(y) if standardize else y, nn1[:, :k], nn2[:, :k])


# ---- intervals and nulls ---------------------------------------------------------------------
# As every score here (samesky.metrics.stats): a permutation null (the target shuffled over the
# objects the test sees, the embedding and its neighbours held fixed) and a subsampling interval
# (the test rescored on the halves, and for a neighbourhood test the quarters, of
# ``stats.quarter_splits``, neighbours restricted exactly to each subsample). The probes' nulls
# refit every fold to the shuffled targets; the least-squares probe fits them all at once.

class PhysicsTest(NamedTuple):
    scale: str  # "unit": higher knows more, 1 at best; "distance": lower knows more, 0 at best
    neighbourhood: bool  # reads the kNN graph; interval by the neighbourhood rate model (k)
    reference: str  # pu file:line function


TESTS = {
    "ols_probe": PhysicsTest("unit", False, "src/pu/metrics/physics.py:84 linear_probe"),
    "boosting_probe": PhysicsTest("unit", False, "src/pu/metrics/physics.py:137 nonlinear_probe"),
    "neighbour_consistency": PhysicsTest("distance", True,
                                         "src/pu/metrics/physics.py:182 neighbor_property_consistency"),
    "distance_property_correlation": PhysicsTest("unit", False,
                                                 "src/pu/metrics/physics.py:224 embedding_property_correlation"),
    "neighbour_set_overlap": PhysicsTest("unit", True, "src/pu/metrics/physics.py:261 neighbor_set_overlap"),
    "joint_neighbour_set_overlap": PhysicsTest("unit", True,
                                               "src/pu/metrics/physics.py:315 joint_neighbor_set_overlap"),
    "knn_purity": PhysicsTest("unit", True, "experiments/platonic/compute/pu_umap.py:238 knn_purity"),
    "neighbourhood_wasserstein": PhysicsTest("distance", True, "src/pu/metrics/physics.py:559 wass_distance"),
}
# The per-embedding tests (the Wasserstein test compares two embeddings: ``wasserstein_record``).
EMBEDDING_TESTS = tuple(t for t in TESTS if t != "neighbourhood_wasserstein")
# Each test's parameters and the reference's values (the functions' defaults).
DEFAULTS = {
    "ols_probe": {"folds": 5, "pca_components": None, "clip_percentiles": CLIP_PERCENTILES},
    "boosting_probe": {"folds": 5, "n_estimators": 100, "max_depth": 4, "subsample": 0.8, "seed": 42,
                       "clip_percentiles": CLIP_PERCENTILES},
    "neighbour_consistency": {"k": 10, "clip_percentiles": CLIP_PERCENTILES},
    "distance_property_correlation": {"max_samples": 5000, "seed": 42, "clip_percentiles": CLIP_PERCENTILES},
    "neighbour_set_overlap": {"k": 10, "clip_percentiles": CLIP_PERCENTILES},
    "joint_neighbour_set_overlap": {"k": 10},
    "knn_purity": {"k": 50, "n_bins": 20},
    "neighbourhood_wasserstein": {"k": 10, "standardize": True},
}


def params_of(name: str, given: Mapping | None = None) -> dict:
    """The reference's parameters of test ``name`` updated by ``given``; unknown names are errors."""
    if name not in TESTS:
        raise PhysicsError(f"unknown physics test {name!r}; known tests: {list(TESTS)}")
    unknown = sorted(set(given or {}) - set(DEFAULTS[name]))
    if unknown:
        raise PhysicsError(f"physics test {name!r}: unknown parameters {unknown}; it takes {sorted(DEFAULTS[name])}")
    return {**DEFAULTS[name], **(given or {})}


def _summary(name: str, score_on, n: int, k: int | None, *, null_draws: int, subsampling_splits: int, ci: float,
             alpha: float, seed: int, where: str, null_on=None) -> dict:
    """score, null and interval fields of test ``name``. ``score_on(rows, perm)``: the test on the
    subsample ``rows`` (positions among its n objects; None: all) with the target permuted by
    ``perm`` (None: as is); ``null_on(perms)``: all null scores at once (default: ``score_on``)."""
    score = score_on(None, None)
    if not np.isfinite(score):  # a constant property: nothing to test
        null_draws = subsampling_splits = 0
    if subsampling_splits and k is not None and n <= 4 * k:
        raise PhysicsError(f"{where}: {name}'s subsampling interval needs a quarter of the {n} objects to hold "
                           f"more than k={k} of them")
    perms = list(stats.permutations(n, null_draws, seed))
    null = null_on(perms) if null_on is not None else [score_on(None, p) for p in perms]
    parts = 6 if k is not None else 2  # halves and quarters, or the halves
    draws = np.array([[score_on(rows, None) for rows in split[:parts]]
                      for split in stats.quarter_splits(n, subsampling_splits, seed)]).reshape(-1, parts)
    if not np.isfinite(draws).all():
        raise PhysicsError(f"{where}: {name} is undefined on some subsamples of its {n} objects (too few objects "
                           f"for its subsampling interval)")
    return {"test": name, "score": score, **stats.summarise(score, np.asarray(null, float), draws, ci, alpha=alpha,
                                                            scale=TESTS[name].scale, interval="subsampling",
                                                            knn=(n, k) if k is not None else None),
            "n": n, "reference": TESTS[name].reference}


def _probe_scorers(X: np.ndarray, t: np.ndarray, fit_predict, folds: int):
    def score_on(rows, perm):
        tt = t if perm is None else t[perm]
        return _probe_result(X, tt, fit_predict, folds)["mean"] if rows is None else \
            _probe_result(X[rows], tt[rows], fit_predict, folds)["mean"]

    def null_on(perms):
        if not perms:
            return []
        shuffled = np.column_stack([t[p] for p in perms])
        return list(_fold_r2(shuffled, _cross_predict(X, shuffled, folds, fit_predict)).mean(axis=0))

    return score_on, null_on


def _neighbourhood_scorer(Z, graph, rows: np.ndarray, target: np.ndarray, k: int, score):
    """score_on(sub, perm) of a test ``score(target, neighbour lists)`` on the objects ``rows`` of ``Z``."""
    nbr = _neighbours(Z, graph, rows, k)

    def score_on(sub, perm):
        tt = target if perm is None else target[perm]
        return score(tt, nbr) if sub is None else score(tt[sub], _neighbours(Z, graph, rows[sub], k))

    return score_on


def physics_records(Z, properties: Mapping[str, np.ndarray], graph=None, *, tests: Sequence[str] = EMBEDDING_TESTS,
                    params: Mapping[str, Mapping] | None = None, null_draws: int = 100,
                    subsampling_splits: int = 100, ci: float = 0.95, alpha: float = 0.05, seed: int = 0,
                    where: str = "physics") -> list[dict]:
    """Every test of ``tests`` on embedding ``Z`` (N, D) for each of ``properties`` ({name: (N,)}),
    the joint overlap once over all of them, each with a permutation null and a subsampling
    interval (``stats.summarise`` fields). ``graph``: the cached kNN graph of ``Z``
    (``schema.read_knn``: (indices, similarity)); None computes one (``registry.graph_width``).
    ``params``: {test: {parameter: value}} over the reference's (``DEFAULTS``). One record per
    (test, property): test, property, score, statistics, n (objects seen), n_excluded, params."""
    from .metrics.registry import graph_width

    params = params or {}
    unknown = sorted(set(params) - set(tests))
    if unknown:
        raise PhysicsError(f"{where}: parameters for tests {unknown} that do not run; running {list(tests)}")
    chosen = {name: params_of(name, params.get(name)) for name in tests}
    if "neighbourhood_wasserstein" in chosen:
        raise PhysicsError(f"{where}: neighbourhood_wasserstein compares two embeddings (wasserstein_record)")
    Z = np.asarray(Z)
    ks = [p["k"] for name, p in chosen.items() if TESTS[name].neighbourhood]
    if ks:
        graph = checked_graph(Z, graph, max(ks), where, width=graph_width(max(ks)))
    settings = {"null_draws": null_draws, "subsampling_splits": subsampling_splits, "ci": ci, "alpha": alpha,
                "seed": seed}
    records = []

    def add(name, prop, n_total, summary):
        records.append({**summary, "property": prop, "n_excluded": n_total - summary["n"],
                        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in chosen[name].items()}})

    for prop, values in properties.items():
        y = np.asarray(values, np.float64).ravel()
        at = f"{where}: property {prop!r}"
        for name, p in chosen.items():
            if name == "joint_neighbour_set_overlap":
                continue
            if name in ("ols_probe", "boosting_probe"):
                setup = (_ols_setup(Z, y, p["folds"], p["pca_components"], p["clip_percentiles"]) if name == "ols_probe"
                         else _boosting_setup(Z, y, **{k: v for k, v in p.items() if k != "clip_percentiles"},
                                              clip_percentiles=p["clip_percentiles"]))
                keep, X, t, fit_predict = setup
                score_on, null_on = _probe_scorers(X, t, fit_predict, p["folds"])
                add(name, prop, len(y), _summary(name, score_on, len(t), None, null_on=null_on, where=at, **settings))
            elif name == "distance_property_correlation":
                X, t = _correlation_sample(Z, y, p["max_samples"], p["seed"], p["clip_percentiles"])
                distances = pdist(X, metric="cosine")

                def score_on(rows, perm, X=X, t=t, distances=distances):
                    tt = t if perm is None else t[perm]
                    return _rank_correlation(distances, tt) if rows is None else \
                        _rank_correlation(pdist(X[rows], metric="cosine"), tt[rows])

                add(name, prop, len(y), _summary(name, score_on, len(t), None, where=at, **settings))
            elif name == "knn_purity":
                score_on = _neighbourhood_scorer(Z, graph, np.arange(len(Z)), y, p["k"],
                                                 lambda t, nbr, b=p["n_bins"]: _purity(t, nbr, b)[0])
                add(name, prop, len(y), _summary(name, score_on, len(y), p["k"], where=at, **settings))
            else:  # neighbour_consistency, neighbour_set_overlap
                keep = kept_rows(Z, y, p["clip_percentiles"], f"{at}: {name}")
                _need(int(keep.sum()), p["k"] + 1, f"{at}: {name}")
                score = _consistency if name == "neighbour_consistency" else _set_overlap
                score_on = _neighbourhood_scorer(Z, graph, np.flatnonzero(keep), y[keep], p["k"], score)
                add(name, prop, len(y), _summary(name, score_on, int(keep.sum()), p["k"], where=at, **settings))
    if "joint_neighbour_set_overlap" in chosen:
        name, p = "joint_neighbour_set_overlap", chosen["joint_neighbour_set_overlap"]
        names, keep, Y = _joint_inputs(Z, properties, None, p["k"])
        score_on = _neighbourhood_scorer(Z, graph, np.flatnonzero(keep), Y[keep], p["k"], _joint_overlap)
        add(name, "+".join(names), len(Z), _summary(name, score_on, int(keep.sum()), p["k"], where=where, **settings))
    return records


def wasserstein_record(Z1, Z2, y, graph1=None, graph2=None, *, k: int = 10, standardize: bool = True,
                       null_draws: int = 100, subsampling_splits: int = 100, ci: float = 0.95, alpha: float = 0.05,
                       seed: int = 0, where: str = "neighbourhood_wasserstein") -> dict:
    """The mean over objects of ``neighbourhood_wasserstein`` between the kNN graphs of two
    embeddings of the same objects (rows paired), with a permutation null and a subsampling
    interval (both graphs restricted to each subsample). The null pairs the objects at random, as
    the comparisons' null shuffles side B: object i meets the neighbourhood of object p(i) of the
    second embedding (relabelled), so each side still holds what it knows of ``y`` but the two
    no longer describe the same object. Objects with a non-finite ``y`` are dropped first (the
    reference has none to drop)."""
    from .metrics.registry import graph_width

    Z1, Z2, y = np.asarray(Z1), np.asarray(Z2), np.asarray(y, np.float64).ravel()
    if not len(Z1) == len(Z2) == len(y):
        raise PhysicsError(f"{where}: {len(Z1)} and {len(Z2)} embeddings for {len(y)} property values")
    graph1 = checked_graph(Z1, graph1, k, f"{where} (first embedding)", width=graph_width(k))
    graph2 = checked_graph(Z2, graph2, k, f"{where} (second embedding)", width=graph_width(k))
    rows = np.flatnonzero(np.isfinite(y))
    _need(len(rows), k + 1, where)
    t = _standardised(y[rows]) if standardize else y[rows]
    nn1, nn2 = _neighbours(Z1, graph1, rows, k), _neighbours(Z2, graph2, rows, k)

    def score_on(sub, perm):
        if sub is None:  # perm: the second embedding's rows shuffled, its neighbour lists relabelled
            return float(np.mean(_wasserstein(t, nn1, nn2 if perm is None else np.argsort(perm)[nn2[perm]])))
        ts = _standardised(t[sub]) if standardize else t[sub]  # the test as run on the subsample
        return float(np.mean(_wasserstein(ts, _neighbours(Z1, graph1, rows[sub], k),
                                          _neighbours(Z2, graph2, rows[sub], k))))

    summary = _summary("neighbourhood_wasserstein", score_on, len(rows), k, null_draws=null_draws,
                       subsampling_splits=subsampling_splits, ci=ci, alpha=alpha, seed=seed, where=where)
    return {**summary, "n_excluded": len(y) - len(rows), "params": {"k": k, "standardize": standardize}}


def pair_records(Z1, Z2, properties: Mapping[str, np.ndarray], graph1=None, graph2=None, *,
                 tests: Sequence[str] = ("neighbourhood_wasserstein",), params: Mapping[str, Mapping] | None = None,
                 where: str = "physics of a pair", **settings) -> list[dict]:
    """The tests of two embeddings of the same objects (rows paired) for each of ``properties``
    ({name: (N,)}): one ``wasserstein_record`` per property, its parameters the reference's updated
    by ``params`` ({test: {parameter: value}}). ``graph1``/``graph2``: the cached kNN graphs of
    ``Z1``/``Z2``. ``settings``: null_draws, subsampling_splits, ci, alpha, seed. One record per
    (test, property): test, property, score, statistics, n, n_excluded, params."""
    params = params or {}
    unknown = sorted(set(params) - set(tests))
    if unknown:
        raise PhysicsError(f"{where}: parameters for tests {unknown} that do not run; running {list(tests)}")
    chosen = {name: params_of(name, params.get(name)) for name in tests}
    embedding_tests = [name for name in chosen if name in EMBEDDING_TESTS]
    if embedding_tests:
        raise PhysicsError(f"{where}: {embedding_tests} test one embedding (physics_records)")
    return [{**wasserstein_record(Z1, Z2, values, graph1, graph2, **chosen[name], **settings,
                                  where=f"{where}: property {prop!r}"), "property": prop}
            for prop, values in properties.items() for name in chosen]
