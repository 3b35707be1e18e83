"""Physics probes: how much of a per-object property (redshift, mass, ...) an embedding holds.

Alignment says that two models agree; a probe says about what. For each property, k-fold
cross-validation gives one out-of-fold prediction per object from two probes:

* ``linear``: StandardScaler -> PCA(``pca_components``) -> RidgeCV (regularisation chosen by
  efficient leave-one-out inside the training fold); score R-squared. Categorical properties:
  the same transforms -> LogisticRegressionCV (C chosen by stratified inner cross-validation,
  balanced class weights); score balanced accuracy.
* ``knn``: k-nearest-neighbour regression (classification) on the raw embedding with cosine
  similarity: the local view that MKNN takes.

Both are scikit-learn Pipelines fitted on the training rows of each fold only, so no fitted
transform ever sees a held-out object. R-squared is pooled over all out-of-fold predictions,
1 - sum (y - y_hat)^2 / sum (y - mean y)^2, so it can be negative (worse than the mean).

Statistics come from ``samesky.metrics.stats`` (the same streams as the metrics): a percentile
bootstrap interval over the out-of-fold (object, prediction) pairs, the fitted folds held fixed,
and a permutation null that shuffles the targets and reruns the whole cross-validation. The
transforms (scaler, PCA, normaliser) and the kNN neighbour lists never see the targets, so a null
draw reuses each fold's fitted ones and refits only the final estimator: exactly what refitting
the whole pipeline on the shuffled targets gives (tests check it), at a fraction of the cost.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from .metrics import stats
from .schema import SchemaError, check_finite, read_embeddings, read_properties

log = logging.getLogger(__name__)

CONTINUOUS, CATEGORICAL = "continuous", "categorical"
LINEAR, KNN = "linear", "knn"
RIDGE_ALPHAS = np.logspace(-3, 6, 19)  # on standardised PCA scores: from no shrinkage to the mean
LOGISTIC_CS = np.logspace(-3, 3, 7)
INNER_FOLDS = 3  # inner cross-validation of the logistic probe's C


class ProbeError(ValueError):
    """A probe cannot be run on these data; the message names the property and the file."""


# ---- scores (optionally weighted: a bootstrap resample as per-object counts) ----------------

def r2(y: np.ndarray, pred: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Pooled R-squared of predictions ``pred`` of ``y`` (with per-object weights)."""
    w = np.ones(len(y)) if weight is None else weight
    mean = np.average(y, weights=w)
    total = np.sum(w * (y - mean) ** 2)
    return float(1.0 - np.sum(w * (y - pred) ** 2) / total) if total > 0 else float("nan")


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Mean over the classes present of the fraction of that class predicted right (recall)."""
    w = np.ones(len(y)) if weight is None else weight
    classes = np.unique(y[w > 0])
    return float(np.mean([np.sum(w[(y == c) & (pred == c)]) / np.sum(w[y == c]) for c in classes]))


class Score(NamedTuple):
    name: str  # the records' ``metric``
    label: str  # how tables and figures name it
    fn: Callable[..., float]  # fn(y, pred, weight=None)
    meaning: str  # what a table's caption tells its reader


# The score of each kind of property.
SCORES = {
    CONTINUOUS: Score("r2", "R²", r2, "regression R², 1 - residual / total variance of the out-of-fold predictions "
                                      "(1: perfect, 0: no better than the mean, negative: worse)"),
    CATEGORICAL: Score("balanced_accuracy", "balanced accuracy", balanced_accuracy,
                       "classification balanced accuracy, the mean over classes of the share of objects predicted "
                       "in their class (1: perfect, chance: 1 / classes)"),
}


def score_label(metric: str) -> str:
    """How tables and figures name a probe record's ``metric``."""
    return next((s.label for s in SCORES.values() if s.name == metric), metric)


def score_meaning(metric: str) -> str:
    """What a probe record's ``metric`` is, for a caption."""
    return next((s.meaning for s in SCORES.values() if s.name == metric), f"{metric} (unknown to this version)")


# ---- the two probes -----------------------------------------------------------------------

def folds_of(y: np.ndarray, kind: str, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of the outer folds: shuffled, stratified for classes."""
    splitter = (StratifiedKFold if kind == CATEGORICAL else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(y), 1)), y))


def linear_probe(kind: str, n_components: int, seed: int) -> Pipeline:
    if kind == CATEGORICAL:
        head = LogisticRegressionCV(Cs=LOGISTIC_CS, cv=StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed),
                                    scoring="balanced_accuracy", class_weight="balanced", l1_ratios=(0.0,),
                                    use_legacy_attributes=False,
                                    solver="newton-cholesky", max_iter=200)
    else:
        head = RidgeCV(alphas=RIDGE_ALPHAS, alpha_per_target=True)
    return Pipeline([("scale", StandardScaler()), ("pca", PCA(n_components, random_state=seed)), ("head", head)])


def knn_probe(kind: str, k: int) -> Pipeline:
    """Rows scaled to unit length: Euclidean neighbours are then cosine neighbours."""
    head = (KNeighborsClassifier if kind == CATEGORICAL else KNeighborsRegressor)(n_neighbors=k, algorithm="brute")
    return Pipeline([("normalise", Normalizer()), ("head", head)])


def _linear_null(pipe: Pipeline, kind: str, x_train, x_test, shuffled_train: np.ndarray) -> np.ndarray:
    """Predictions on the test rows of the fold's linear probe refitted to each shuffled target
    (columns of ``shuffled_train``): the fitted transforms are reused (they never see targets)."""
    z_train, z_test = pipe[:-1].transform(x_train), pipe[:-1].transform(x_test)
    if kind == CONTINUOUS:  # one multi-target fit: alpha chosen per target, as in separate fits
        return clone(pipe[-1]).fit(z_train, shuffled_train).predict(z_test).reshape(len(z_test), -1)
    return np.stack([clone(pipe[-1]).fit(z_train, col).predict(z_test) for col in shuffled_train.T], axis=1)


def _knn_null(pipe: Pipeline, kind: str, x_test, shuffled_train: np.ndarray, n_classes: int) -> np.ndarray:
    """Predictions of the fold's kNN probe for shuffled targets: same neighbours, new labels."""
    nbr = pipe[-1].kneighbors(pipe[:-1].transform(x_test), return_distance=False)
    out = np.empty((len(x_test), shuffled_train.shape[1]))
    for j, col in enumerate(shuffled_train.T):
        labels = col[nbr]
        if kind == CONTINUOUS:
            out[:, j] = labels.mean(axis=1)
        else:  # majority vote, ties to the smallest class (as KNeighborsClassifier)
            votes = np.zeros((len(labels), n_classes))
            np.add.at(votes, (np.arange(len(labels))[:, None], labels), 1)
            out[:, j] = votes.argmax(axis=1)
    return out


def out_of_fold(x: np.ndarray, y: np.ndarray, kind: str, shuffled: np.ndarray, *, folds: int, n_components: int,
                knn_k: int, seed: int) -> tuple[dict, dict, list[float]]:
    """Out-of-fold predictions of each probe for ``y`` ({probe: (N,)}) and for every column of
    ``shuffled`` ({probe: (N, draws)}), and the regularisation chosen in each fold."""
    n, draws = len(y), shuffled.shape[1]
    n_classes = int(y.max()) + 1 if kind == CATEGORICAL else 0
    pred = {LINEAR: np.empty(n), KNN: np.empty(n)}
    null_pred = {LINEAR: np.empty((n, draws)), KNN: np.empty((n, draws))}
    chosen = []
    for train, test in folds_of(y, kind, folds, seed):
        lin = linear_probe(kind, n_components, seed).fit(x[train], y[train])
        knn = knn_probe(kind, knn_k).fit(x[train], y[train])
        pred[LINEAR][test], pred[KNN][test] = lin.predict(x[test]), knn.predict(x[test])
        chosen.append(float(np.ravel(lin[-1].alpha_ if kind == CONTINUOUS else lin[-1].C_)[0]))
        if draws:
            null_pred[LINEAR][test] = _linear_null(lin, kind, x[train], x[test], shuffled[train])
            null_pred[KNN][test] = _knn_null(knn, kind, x[test], shuffled[train], n_classes)
    return pred, null_pred, chosen


def shuffled_targets(y: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """(N, draws): column j is ``y`` under permutation draw j of ``samesky.metrics.stats``."""
    return (np.stack([y[p] for p in stats.permutations(len(y), draws, seed)], axis=1)
            if draws else np.empty((len(y), 0), y.dtype))


def probe(x: np.ndarray, y: np.ndarray, kind: str, *, folds: int = 5, pca_components: int = 64, knn_k: int = 10,
          null_draws: int = 100, bootstrap_draws: int = 1000, ci: float = 0.95, seed: int = 0,
          where: str = "probe") -> list[dict]:
    """Score the linear and the kNN probe of target ``y`` (N,) from features ``x`` (N, D).

    ``y``: floats (continuous) or integer class codes 0..C-1 (categorical). Returns one record
    per probe: score (R-squared or balanced accuracy), bootstrap interval, permutation null.
    """
    if kind not in SCORES:
        raise ValueError(f"{where}: kind {kind!r} is not one of {sorted(SCORES)}")
    x = np.asarray(x, np.float64)
    n = len(y)
    if kind == CATEGORICAL:
        counts = np.bincount(y)
        if len(counts) < 2 or counts.min() < folds * INNER_FOLDS:
            raise ProbeError(f"{where}: a categorical probe needs at least 2 classes of at least "
                             f"{folds * INNER_FOLDS} objects (folds x inner folds); class counts {counts.tolist()}")
    n_train = n - -(-n // folds)  # the smallest training fold
    if n_train <= knn_k or n_train < 2:
        raise ProbeError(f"{where}: {n} objects are too few for {folds} folds and a {knn_k}-NN probe")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ProbeError(f"{where}: features or targets contain NaN or inf")
    n_components = min(pca_components, n_train - 1, x.shape[1])
    shuffled = shuffled_targets(y, null_draws, seed)
    # Inputs checked above: scikit-learn's per-call validation was a third of a probe's time (its
    # ~1100 logistic fits of a categorical null), and skipping it changes no prediction.
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        pred, null_pred, chosen = out_of_fold(x, y, kind, shuffled, folds=folds, n_components=n_components,
                                              knn_k=knn_k, seed=seed)
    score_fn = SCORES[kind].fn
    records = []
    for name in (LINEAR, KNN):
        score = score_fn(y, pred[name])
        null = np.array([score_fn(shuffled[:, j], null_pred[name][:, j]) for j in range(null_draws)])
        boot = np.array([score_fn(y, pred[name], w) for w in stats.bootstrap_weights(n, bootstrap_draws, seed)])
        records.append({"probe": name, "metric": SCORES[kind].name, "score": score,
                        **stats.summarise(score, null, boot, ci), "n": n, "folds": folds,
                        "chance": 1.0 / len(np.unique(y)) if kind == CATEGORICAL else 0.0,
                        **({"pca_components": n_components,
                            ("alpha" if kind == CONTINUOUS else "C"): float(np.median(chosen))}
                           if name == LINEAR else {"knn_k": knn_k})})
    return records


# ---- files --------------------------------------------------------------------------------

def targets(values: np.ndarray, kind: str, where: str) -> tuple[np.ndarray, np.ndarray, list]:
    """(target, usable rows mask, classes) of one property column: NaN rows unusable; classes
    coded 0..C-1 in sorted order of their values."""
    usable = ~np.isnan(values) if values.dtype.kind == "f" else np.ones(len(values), bool)
    if kind == CATEGORICAL:
        classes, codes = np.unique(values[usable], return_inverse=True)
        target = np.full(len(values), -1, np.int64)
        target[usable] = codes
        return target, usable, classes.tolist()
    if values.dtype.kind not in "fiub":
        raise ProbeError(f"{where}: values of dtype {values.dtype} cannot be regressed; list the property "
                         f"under probes.categorical to classify it")
    values = values.astype(np.float64)
    return values, usable & np.isfinite(values), []


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def property_columns(ids: np.ndarray, sources: Sequence, names: Sequence[str]) -> tuple[dict, dict]:
    """({name: (N,) values in the order of ``ids``}, {name: its file}) from the files in ``sources``
    (crossmatch files, a simulation's truth file: anything ``schema.read_properties`` reads),
    joined by object id. A name must be in exactly one source, and cover every id."""
    found: dict[str, list] = {}
    tables = []
    for path in sources:
        src_ids, columns = read_properties(path)
        tables.append((path, src_ids, columns))
        for name in columns:
            found.setdefault(name, []).append(path)
    missing = [n for n in names if n not in found]
    if missing:
        have = {str(path): sorted(cols) for path, _, cols in tables}
        raise SchemaError(f"no per-object property {missing} in {[str(p) for p in sources]}; they have {have}")
    twice = {n: [str(p) for p in found[n]] for n in names if len(found[n]) > 1}
    if twice:
        raise SchemaError(f"properties found in several files (ambiguous): {twice}")
    out, where = {}, {}
    for path, src_ids, columns in tables:
        wanted = [n for n in names if n in columns]
        if not wanted:
            continue
        row = {oid: i for i, oid in enumerate(src_ids)}
        unknown = [str(oid) for oid in ids if oid not in row]
        if unknown:
            raise SchemaError(f"{path}: {len(unknown)} object ids of the embedding have no row, e.g. {unknown[:5]}")
        take = np.array([row[oid] for oid in ids], dtype=np.int64)
        out.update({n: columns[n][take] for n in wanted})
        where.update({n: path for n in wanted})
    return out, where


def probe_files(embedding_path, sources: Sequence, properties: Sequence[str], categorical: Iterable[str] = (),
                **settings) -> list[dict]:
    """Probe one embedding file for ``properties`` of its objects, read from ``sources`` (see
    ``property_columns``); ``settings`` as in ``probe``. One record per property and probe."""
    ids, x, _ = read_embeddings(embedding_path)
    check_finite(x, ids, str(embedding_path))
    columns, files = property_columns(ids, sources, properties)
    categorical = set(categorical)
    records = []
    for name in properties:
        kind = CATEGORICAL if name in categorical else CONTINUOUS
        where = f"property {name!r} of {files[name]} for {embedding_path}"
        y, usable, classes = targets(columns[name], kind, where)
        start = time.perf_counter()
        out = probe(x[usable], y[usable], kind, where=where, **settings)
        for rec in out:
            records.append({"property": name, "kind": kind, **rec, "n_excluded": int((~usable).sum()),
                            **({"classes": [str(c) for c in classes]} if classes else {})})
            log.info("%s %s %s: %s = %.3f [%s, %s], null mean %s, p = %s (%.1f s)", embedding_path, name,
                     rec["probe"], rec["metric"], rec["score"], *(_fmt(rec[k]) for k in ("ci_low", "ci_high",
                     "null_mean", "p_value")), time.perf_counter() - start)
    return records


def embedding_and_graph(embedding_path, graph_path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ids, embedding, neighbour indices, similarities) of an embedding file and its cached kNN
    graph (``schema.read_knn``), checked to hold the same object ids in the same order."""
    from .schema import read_knn

    ids, x, _ = read_embeddings(embedding_path)
    check_finite(x, ids, str(embedding_path))
    graph_ids, indices, similarity, _ = read_knn(graph_path)
    if not np.array_equal(graph_ids, ids):
        raise SchemaError(f"{graph_path}: the kNN graph's object ids are not those of {embedding_path} in its order")
    return ids, x, indices, similarity


def physics_block_files(layers_path, block_graphs_path, sources: Sequence, properties: Sequence[str], *,
                        tests: Sequence[str], params: dict | None = None, **settings) -> list[dict]:
    """``physics_files`` of every block of a layers file (``schema.LayersFile``, read one block at a
    time), the neighbourhood tests on its cached block graphs (``metrics.layers.read_block_graphs``: metrics.k
    columns, or ``Plan.block_graph_width``),
    each record with the block's ``block`` name, ``block_index`` among the model's blocks and
    ``depth`` ((index + 1) / blocks, as the layer atlas). The same seeds on every block."""
    from .metrics.layers import read_block_graphs
    from .physics import physics_records
    from .schema import LayersFile

    layers = LayersFile(layers_path)
    columns, _ = property_columns(layers.ids, sources, properties)
    graphs = read_block_graphs(block_graphs_path, layers, 1)
    records, start = [], time.perf_counter()
    for j, (name, (index, depth), (graph, _)) in enumerate(zip(layers.names, layers.positions, graphs)):
        Z = layers.block(j).astype(np.float32)
        check_finite(Z, layers.ids, f"{layers_path}: block {name!r}")
        records += [{**rec, "block": name, "block_index": index, "depth": depth}
                    for rec in physics_records(Z, columns, graph, tests=tests, params=params,
                                               where=f"physics of {layers_path}: block {name!r}", **settings)]
    log.info("%s: %d physics records of %d blocks in %.1f s", layers_path, len(records), len(layers.names),
             time.perf_counter() - start)
    return records


def physics_files(embedding_path, graph_path, sources: Sequence, properties: Sequence[str], *,
                  tests: Sequence[str], params: dict | None = None, **settings) -> list[dict]:
    """The physics tests ``tests`` (``physics.physics_records``) of one embedding file for its
    objects' ``properties`` read from ``sources`` (see ``property_columns``), the neighbourhood
    tests on the embedding's cached kNN graph ``graph_path`` (``schema.read_knn``: the same object
    ids in the same order). ``settings``: null_draws, subsampling_splits, ci, alpha, seed."""
    from .physics import physics_records

    ids, x, indices, similarity = embedding_and_graph(embedding_path, graph_path)
    columns, _ = property_columns(ids, sources, properties)
    start = time.perf_counter()
    records = physics_records(x, columns, (indices, similarity), tests=tests, params=params,
                              where=f"physics of {embedding_path}", **settings)
    for rec in records:
        log.info("%s %s %s = %.3f [%s, %s], null mean %s, p = %s", embedding_path, rec["property"], rec["test"],
                 rec["score"], *(_fmt(rec[k]) for k in ("ci_low", "ci_high", "null_mean", "p_value")))
    log.info("%s: %d physics records in %.1f s", embedding_path, len(records), time.perf_counter() - start)
    return records


def physics_pair_files(emb_a, knn_a, emb_b, knn_b, sources: Sequence, properties: Sequence[str], *,
                       tests: Sequence[str], params: dict | None = None, **settings) -> list[dict]:
    """The physics tests of two embedding files of one crossmatch (``physics.pair_records``: the
    Wasserstein neighbourhood distance) for their objects' ``properties`` read from ``sources``
    (``property_columns``), on their cached kNN graphs ``knn_a`` and ``knn_b`` (each checked to
    belong to its embedding). The sides are paired as the compare jobs pair them
    (``metrics.compare.common_rows``: side B by object id in side A's order, objects on one side
    only left out and counted in ``n_excluded``, the graphs restricted to the common objects
    exactly). ``settings``: null_draws, subsampling_splits, ci, alpha, seed."""
    from .metrics.compare import common_rows, read_checked_embeddings, read_graph, restrict
    from .physics import pair_records, params_of

    k = max(params_of(name, (params or {}).get(name))["k"] for name in tests)
    ids_a, Za = read_checked_embeddings(emb_a)
    ids_b, Zb = read_checked_embeddings(emb_b)
    graph_a, graph_b = read_graph(knn_a, emb_a, ids_a, k), read_graph(knn_b, emb_b, ids_b, k)
    rows_a, rows_b, n_excluded = common_rows(ids_a, ids_b, emb_a, emb_b, k)
    Za, graph_a = restrict(Za, graph_a, rows_a, emb_a)
    Zb, graph_b = restrict(Zb, graph_b, rows_b, emb_b)
    columns, _ = property_columns(ids_a if rows_a is None else ids_a[rows_a], sources, properties)
    start = time.perf_counter()
    records = pair_records(Za, Zb, columns, graph_a, graph_b, tests=tests, params=params,
                           where=f"physics of {emb_a} and {emb_b}", **settings)
    for rec in records:
        rec["n_excluded"] += n_excluded
        log.info("%s vs %s %s %s = %.3f [%s, %s], null mean %s, p = %s", emb_a, emb_b, rec["property"], rec["test"],
                 rec["score"], *(_fmt(rec[k]) for k in ("ci_low", "ci_high", "null_mean", "p_value")))
    log.info("%s vs %s: %d physics records in %.1f s", emb_a, emb_b, len(records), time.perf_counter() - start)
    return records
