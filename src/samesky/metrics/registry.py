"""Every metric, in one place: what it is and what it can do, declared, so that no other module
ever asks a metric's name (compare, layers, plan and the report ask its declaration).

A metric is called as ``METRICS[name](Za, Zb, **params) -> float``. For statistics,
``METRICS[name].estimator(pair, **params)`` returns an estimator with ``score()`` and ``null(pi)``
(side B's rows permuted by ``pi``; the draws its ``nulls`` declare; none for a ``pairing_free``
metric, which permuting B leaves unchanged), and, where ``nulls`` holds
'closed_form', ``closed_null()`` (a law with ``mean``, ``std``, ``p_value(score)``,
``threshold(alpha)``, or None when it does not apply). Intervals rescore fresh estimators on
subsamples of the pair (``stats``, ``Pair.subsample``). The layer atlas scores every (block_a,
block_b) cell with the metric's batched ``layer_cells`` hook, or without one by the generic
fallback (``layers.drawn_cells``: one estimator per cell, its draws capped like compare's).

Adding a metric: one entry in ``METRICS`` (or ``register``) and its estimator module
(docs/EXTENDING.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# Estimator modules (torch) are imported inside the builders: the workflow imports this module
# at parse time only to validate metric names.

READS = ("features", "knn", "gram_invariants")  # the embeddings, the cached kNN graph at k, cached Gram invariants
DIRECTIONS = ("similarity", "distance")  # higher / lower is more aligned
# What a score's range is, and so how it is calibrated (stats.calibrated); the direction each allows.
SCALES = {
    "unit": ("similarity", "bounded above by 1 (identical embeddings): calibrated with s_max = 1, shown in %"),
    "nats": ("similarity", "unbounded, in nats: calibrated on Linfoot's r = sqrt(1 - exp(-2 I)), s_max = inf -> 1"),
    "distance": ("distance", "a distance, 0 for identical embeddings: calibrated = 1 - score / tau"),
}
SCALE_WORDS = {  # how a table's caption tells a reader what a raw score of each scale means
    "unit": "at most 1 (identical embeddings), shown in percent; higher is more aligned",
    "nats": "nats, 0 for independent embeddings and unbounded above; higher is more aligned",
    "distance": "a distance, 0 for identical embeddings; lower is more aligned",
}
# null method -> (cost class, what a draw is); a record's null_method is 'closed_form', 'permutation'
# or, for a metric declaring 'pairing_free' (alone), 'pairing_free': no null, p-value, tau or calibrated score
NULLS = {
    "closed_form": ("free", "exact moments of the permutation null and a Pearson type III law, no draws"),
    "relabelled_graphs": ("O(N k) a draw (O(N k^2) comparing ordered lists)",
                          "side B's cached kNN graph relabelled by the permutation"),
    "feature_draws": ("O(N d^2) a draw, at most metrics.feature_space_draws", "side B's rows permuted, moments recomputed"),
    "score_draws": ("O(N r^2) a draw", "side B's rows permuted on fixed per-side summaries (principal scores)"),
    "pairing_free": ("none", "no permutation null: the measure compares the two distributions and ignores which "
                             "row of A goes with which row of B, so permuting B's rows leaves it unchanged"),
}
PAIRING_FREE = "pairing_free"  # the NULLS entry, and a record's null_method, of a measure without a null
INTERVALS = {  # interval method -> the subsamples rescored and the variance rate (stats.subsampling_se)
    "subsampling_knn": "halves and quarters of each split, the neighbourhood rate model",
    "subsampling_smooth": "the halves of each split, variance falling as 1/m (a smooth statistic)",
    "subsampling_indicator": "the halves of each split, variance s(1 - s) D / m (a mean of per-object 0/1 outcomes "
                             "whose rate s falls with m)",
    "subsampling_degenerate": "halves and quarters of each split, variance A/m + B/m^2 (a U- or V-statistic whose "
                              "first-order term vanishes where the two laws are one)",
}
QUARTER_INTERVALS = ("subsampling_knn", "subsampling_degenerate")  # the intervals that rescore quarters


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # how tables and figures name it
    prepare: Callable[..., object]  # prepare(pair, **params) -> estimator
    # the parameters it takes, with defaults: the one place of those defaults. ``k`` (neighbourhood
    # size) is shared by every neighbourhood metric and the cached graphs: config metrics.k. The
    # others are set per metric in config metrics.params.{name} (checked by ``check_params``).
    defaults: dict = field(default_factory=dict)
    # the type of each parameter whose default is None (an optional setting, e.g. a bandwidth the
    # measure otherwise estimates, or a sample that replaces an exact computation): a config sets
    # it to a positive value of that type (``check_params``)
    types: dict = field(default_factory=dict)
    # arguments of ``prepare`` and ``layer_cells`` fixed by the entry (a variant of a shared
    # estimator, e.g. CKA's unbiased HSIC), not parameters a config can set
    fixed: dict = field(default_factory=dict)
    reads: frozenset = frozenset({"features"})  # of READS
    scale: str = "unit"  # of SCALES: its range, and how it is calibrated
    symmetric: bool = True  # score(A, B) == score(B, A)
    equal_dims: bool = False  # needs both sides of one dimension: a pair of others is refused by name
    # of NULLS, the preferred first ('closed_form' where config cka_null allows); ('pairing_free',) alone
    # for a measure that ignores the row pairing (``pairing_free``)
    nulls: tuple = ("feature_draws",)
    interval: str = "subsampling_smooth"  # of INTERVALS
    # parameters that count randomly sampled pairs of objects (an estimate from that many pairs in
    # place of all N (N - 1) / 2): the pair-sampling variance falls as 1 / pairs, not with N, so a
    # subsample's rescoring draws pairs in proportion to its objects (``subsample_params``) and the
    # halves' variance stays twice the full sample's, as the intervals' 1/m rate assumes
    pair_samples: tuple = ()
    # Optional batched layer-atlas hook: layer_cells(A, B, cells, settings, *, k, perms, device) ->
    # {name: {(i, j): (score, null)}} for every metric of ``settings`` ({name: fixed and tunable
    # parameters}) that shares this hook, null an array of draws (one per row of ``perms``) or a
    # closed-form law. A and B are the sides' blocks (``layers.Block``: Z, graph, invariants).
    layer_cells: Callable | None = None
    # whether that hook multiplies every cell's two blocks (N d_a d_b a cell: the CKAs' cross-covariance),
    # work no per-block pass shares: the cost model prices it per cell (``cost.FORMS['compare_layers']``)
    cell_products: bool = False
    # Optional: kept_bytes(n) -> the bytes of per-pair quantities the estimator keeps at n objects (both
    # sides float32; 0 where it keeps none), from which its null draws and its subsamples' scores are
    # computed, e.g. mi_ksg's distance matrices within their memory budget (``keeps``): the cost model
    # prices it there from the '{name}:kept' rows of ``cost.MEASURE_COSTS`` and adds those bytes to a
    # comparison job's peak memory
    kept_bytes: Callable | None = None
    summary: str = ""

    def __post_init__(self):
        bad = (set(self.reads) - set(READS) or self.scale not in SCALES or set(self.nulls) - set(NULLS)
               or not self.nulls or self.interval not in INTERVALS
               or (PAIRING_FREE in self.nulls and len(self.nulls) > 1))
        if bad:
            raise ValueError(f"metric {self.name!r}: reads {sorted(self.reads)} (of {READS}), scale {self.scale!r} "
                             f"(of {list(SCALES)}), nulls {self.nulls} (of {list(NULLS)}; {PAIRING_FREE!r} alone), interval "
                             f"{self.interval!r} (of {list(INTERVALS)})")
        if any(self.types.get(key) is not int for key in self.pair_samples):
            raise ValueError(f"metric {self.name!r}: pair_samples {list(self.pair_samples)} must be optional integer "
                             f"parameters (types {self.types})")
        untyped = sorted(key for key, v in self.defaults.items() if v is None and key not in self.types)
        if untyped:
            raise ValueError(f"metric {self.name!r}: parameters {untyped} default to None: declare their types")
        if self.uses_knn and "k" not in self.defaults:
            raise ValueError(f"metric {self.name!r}: a metric that reads the cached kNN graph takes k")

    @property
    def direction(self) -> str:
        """'similarity' (higher is more aligned) or 'distance' (lower is), from its scale."""
        return SCALES[self.scale][0]

    def keeps(self, n: int) -> bool:
        """Whether its estimator keeps per-pair quantities at n objects (``kept_bytes``)."""
        return self.kept_bytes is not None and self.kept_bytes(n) > 0

    @property
    def uses_knn(self) -> bool:
        return "knn" in self.reads

    @property
    def takes_k(self) -> bool:
        """Takes the shared neighbourhood size (config metrics.k), from a cached graph or its own."""
        return "k" in self.defaults

    @property
    def uses_gram_invariants(self) -> bool:
        """Reads the Gram invariants cached beside the kNN graph (its closed-form null)."""
        return "gram_invariants" in self.reads

    @property
    def closed_form(self) -> bool:
        return "closed_form" in self.nulls

    @property
    def pairing_free(self) -> bool:
        """Ignores which row of A goes with which row of B (it compares the two distributions), so
        no permutation null is defined: no draws, p-value, tau or calibrated score (NULLS)."""
        return PAIRING_FREE in self.nulls

    @property
    def costly_draws(self) -> bool:
        """Each null draw recomputes O(N d^2) moments: at most metrics.feature_space_draws of them."""
        return "feature_draws" in self.nulls

    @property
    def costly_splits(self) -> bool:
        """Each subsampling split recomputes O(N d^2) moments (a split of a metric reading the
        cached kNN graph restricts it, O(N (k + d))): at most metrics.feature_space_draws splits."""
        return not self.uses_knn

    def null_draws_made(self, total: int, cap: int) -> int:
        """The null draws it makes of ``total``: at most ``cap`` (metrics.feature_space_draws) where
        each draw recomputes O(N d^2) moments; none for a pairing-free measure (no null is defined)."""
        if self.pairing_free:
            return 0
        return min(total, cap) if self.costly_draws else total

    def splits_made(self, total: int, cap: int) -> int:
        """The subsampling splits it rescores of ``total``: at most ``cap`` (metrics.feature_space_draws)
        where each recomputes O(N d^2) moments."""
        return min(total, cap) if self.costly_splits else total

    @property
    def percent(self) -> bool:
        """Bounded by 1 ('unit' scale): shown as a percentage, like the paper's MKNN."""
        return self.scale == "unit"

    def subsample_params(self, params: dict, rows: int, n: int) -> dict:
        """``params`` for a rescoring on a subsample of ``rows`` of the ``n`` objects: each set
        ``pair_samples`` count scaled by rows / n (rounded), so that the pair-sampling variance,
        like the objects', doubles on a half."""
        return {key: max(1, round(v * rows / n)) if key in self.pair_samples and v is not None else v
                for key, v in params.items()}

    def check_params(self, params: dict, where: str) -> None:
        """``params`` (config ``metrics.params.{name}``) checked against the declared parameters:
        known names other than the shared ``k``, values of the default's type (or, where the default
        is None, None or a positive value of the declared type). ``where`` names the config key in
        the errors."""
        if not isinstance(params, dict):
            raise ValueError(f"{where}: expected a mapping of parameter names to values, got {params!r}")
        tunable = sorted(set(self.defaults) - {"k"})
        for key, value in params.items():
            if key == "k" and "k" in self.defaults:
                raise ValueError(f"{where}.k: the neighbourhood size is shared by every kNN metric and the "
                                 f"cached graphs: set metrics.k")
            if key not in tunable:
                raise ValueError(f"{where}.{key}: metric {self.name!r} has no parameter {key!r}; "
                                 f"its parameters are {tunable}")
            optional = self.defaults[key] is None
            if optional and value is None:
                continue
            want = self.types[key] if optional else type(self.defaults[key])
            if type(value) is not want and not (want is float and type(value) is int):
                raise ValueError(f"{where}.{key}: expected {want.__name__}{' or null' * optional}, got {value!r}")
            if optional and value <= 0:
                raise ValueError(f"{where}.{key}: expected a positive {want.__name__} or null, got {value!r}")

    def estimator(self, pair, **params):
        """The metric's estimator on a ``pair.Pair``, with parameters checked and defaulted."""
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"metric {self.name!r} takes parameters {sorted(self.defaults)}, not {sorted(unknown)}")
        if self.equal_dims and pair.dims[0] != pair.dims[1]:
            raise ValueError(f"metric {self.name!r} needs both sides of one dimension, got {pair.dims[0]} and "
                             f"{pair.dims[1]}")
        return self.prepare(pair, **self.fixed, **{**self.defaults, **params})

    def __call__(self, Za, Zb, **params) -> float:
        from .pair import Pair

        return self.estimator(Pair(Za, Zb), **params).score()


def _mknn(pair, k: int):
    from .mknn import MknnEstimator

    (ia, _), (ib, _) = pair.graphs(k)
    return MknnEstimator(ia, ib, k)


def _cknna(pair, k: int):
    from .cknna import CknnaEstimator

    return CknnaEstimator(*pair.graphs(k), k)


def _cknna_formula(pair, k: int):
    from .cknna_formula import CknnaFormulaEstimator

    return CknnaFormulaEstimator(*pair.graphs(k), *pair.row_means, k)


def _cka(pair, unbiased: bool):
    from .cka import CkaEstimator

    return CkaEstimator(pair.space, unbiased=unbiased, invariants=lambda: pair.gram_invariants)


def _mutual_info(pair, components: int):
    from .mutual_info import MutualInfoEstimator

    return MutualInfoEstimator(pair.space, components)


def _hook(module: str, name: str) -> Callable:
    """A hook living in its metric's module (a batched layer hook, ``kept_bytes``), imported when called."""
    def hook(*args, **kwargs):
        from importlib import import_module

        return getattr(import_module(f"{__package__}.{module}"), name)(*args, **kwargs)
    hook.__qualname__ = f"{module}.{name}"
    return hook


def _measure(module: str, function: str) -> Callable:
    """A pure measure of ``metrics.measures`` (``module.function(X, Y, **params)``) as an estimator
    (``measures.MeasureEstimator``: each null draw recomputes it, so its nulls are feature draws)."""
    def prepare(pair, **params):
        from importlib import import_module

        from .measures import MeasureEstimator

        return MeasureEstimator(getattr(import_module(f"{__package__}.measures.{module}"), function), pair, params)
    prepare.__qualname__ = f"measures.{module}.{function}"
    return prepare


def _ksg(pair, k: int, normalize_rows: bool):
    """mi_ksg: ``information.KsgEstimator``, whose draws and subsamples read the pair's distance
    matrices where they fit, else recompute the measure's distance tiles."""
    from .measures.information import KsgEstimator

    return KsgEstimator(pair, k=k, normalize_rows=normalize_rows)


_ksg.__qualname__ = "measures.information.ksg_mutual_information"  # the pure function it equals


def _graph_measure(function: str) -> Callable:
    """A neighbourhood measure of ``metrics.measures.neighbours`` on the pair's kNN graphs
    (``neighbours.GraphEstimator``: nulls by relabelling side B's graph)."""
    def prepare(pair, **params):
        from .measures.neighbours import GraphEstimator

        return GraphEstimator(function, pair, **params)
    prepare.__qualname__ = f"measures.neighbours.{function}"
    return prepare


_KNN = {"reads": frozenset({"knn"}), "nulls": ("relabelled_graphs",), "interval": "subsampling_knn"}
# RBF kernels: None = the exact median heuristic, median_sample: from that many random pairs
_BANDWIDTH = {"types": {"gamma": float, "median_sample": int}, "pair_samples": ("median_sample",)}
_FOLDS = {"cv": int}  # ridge R^2: None = in-sample (pu's default), else the mean over cv test folds
_FREE = {"nulls": (PAIRING_FREE,)}  # they compare two distributions: no permutation null
_CKA = {"reads": frozenset({"features", "gram_invariants"}), "nulls": ("closed_form", "feature_draws"),
        "layer_cells": _hook("cka", "layer_cells"), "cell_products": True}

# In display order: tables, figures and trend tests list metrics in this order (MKNN, the paper's, first).
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("mknn", "MKNN", _mknn, {"k": 10}, **_KNN, layer_cells=_hook("mknn", "layer_cells"),
           summary="mutual k-nearest-neighbour overlap (the paper's metric)"),
    Metric("cka_linear", "linear CKA", _cka, fixed={"unbiased": False}, **_CKA,
           summary="linear CKA (biased HSIC), feature space"),
    Metric("cka_unbiased", "unbiased CKA", _cka, fixed={"unbiased": True}, **_CKA,
           summary="linear CKA with the unbiased HSIC estimator, feature space"),
    Metric("cknna", "CKNNA", _cknna, {"k": 10}, **_KNN, layer_cells=_hook("cknna", "layer_cells"),
           summary="CKA restricted to mutual k-nearest neighbours, as released in platonic-rep (unbiased HSIC)"),
    Metric("cknna_formula", "CKNNA (appendix formula)", _cknna_formula, {"k": 10}, **_KNN,
           summary="CKNNA by the formula of Huh et al. 2024's appendix"),
    Metric("mutual_info", "mutual information", _mutual_info, {"components": 16}, scale="nats",
           nulls=("score_draws",), layer_cells=_hook("mutual_info", "layer_cells"),
           summary="Gaussian mutual information (nats) of the top principal components"),
    # The field's measures (docs/MEASURES.md: each one's reference, file and line; parameters the
    # reference's values). Their nulls recompute the measure on side B's rows permuted, but the
    # neighbourhood measures' (``_KNN``), which relabel the cached graphs, and the pairing-free
    # ones' (``_FREE``), which have none.
    Metric("jaccard", "kNN Jaccard", _graph_measure("jaccard"), {"k": 10, "normalize_rows": False},
           **_KNN, summary="mean Jaccard index of the two kNN sets of each object (pu neighbors.jaccard)"),
    # cycle_knn is a mean of per-object returns (0/1), whose rate falls from near 1 as m grows at
    # fixed k: its variance falls slower than 1/m there, below the neighbourhood model's floor
    Metric("cycle_knn", "cycle kNN", _graph_measure("cycle_knn"), {"k": 10, "normalize_rows": True},
           symmetric=False, **{**_KNN, "interval": "subsampling_indicator"}, summary="kNN cycle consistency A -> B -> A (platonic-rep cycle_knn)"),
    Metric("lcs_knn", "LCS kNN / k", _graph_measure("lcs_knn"), {"k": 10, "normalize_rows": True},
           fixed={"per_k": True}, **_KNN,
           summary="longest common subsequence of the ordered kNN lists, divided by k (platonic-rep lcs_knn / k)"),
    Metric("edit_distance_knn", "edit-distance kNN", _graph_measure("edit_distance_knn"),
           {"k": 10, "normalize_rows": True}, **_KNN,
           summary="1 - normalised edit distance of the ordered kNN lists (platonic-rep edit_distance_knn)"),
    Metric("cka_rbf", "RBF CKA", _measure("kernel", "rbf_cka"),
           {"gamma": None, "median_sample": None, "normalize_rows": False}, **_BANDWIDTH,
           summary="CKA with Gaussian kernels, median bandwidth per side (pu kernel.cka rbf); all pairs, tiled"),
    Metric("mmd", "MMD", _measure("kernel", "mmd"), {"gamma": None, "median_sample": None, "normalize_rows": False},
           **_BANDWIDTH, scale="distance", **_FREE, equal_dims=True, interval="subsampling_degenerate",
           summary="maximum mean discrepancy, Gaussian kernel, pooled median bandwidth (pu kernel.mmd)"),
    Metric("svcca", "SVCCA", _measure("cca", "svcca"), {"keep": 0.99, "standardize": False, "eps": 1e-8,
                                                         "normalize_rows": False},
           summary="mean CCA correlation after SVD keeping 0.99 of the variance (pu; keep: 10 as platonic-rep)"),
    Metric("pwcca", "PWCCA", _measure("cca", "pwcca"), {"keep": 0.99, "eps": 1e-8, "normalize_rows": False},
           symmetric=False, summary="projection-weighted CCA as pu cca.pwcca weights it"),
    Metric("mean_cca", "mean CCA", _measure("cca", "mean_cca"), {"eps": 0.0, "normalize_rows": False},
           summary="mean canonical correlation of the full spaces"),
    Metric("procrustes", "Procrustes", _measure("geometric", "procrustes"),
           {"unequal_dims": "error", "normalize_rows": False}, scale="distance",
           summary="orthogonal Procrustes residual of the normalised spaces (pu; unequal_dims: zero_pad as netrep)"),
    Metric("cosine_matched", "matched cosine", _measure("geometric", "cosine_matched"), {"normalize_rows": True},
           equal_dims=True, summary="mean cosine of matched rows (pu geometric)"),
    Metric("frechet", "Frechet", _measure("geometric", "frechet"), {"normalize_rows": False}, scale="distance", **_FREE,
           summary="Frechet (Bures-Wasserstein) distance between the two Gaussians (pu geometric)"),
    Metric("shape_angular", "angular shape", _measure("geometric", "shape_angular"),
           {"alpha": 1.0, "normalize_rows": False}, scale="distance",
           summary="netrep's angular shape metric (alpha 1: Procrustes ... 0: CCA)"),
    Metric("rsa", "RSA", _measure("rsa", "rsa"), {"method": "spearman", "metric": "cosine", "sample_pairs": None,
                                                   "seed": 0, "normalize_rows": False}, types={"sample_pairs": int},
           pair_samples=("sample_pairs",),
           summary="correlation of the two RDMs (pu neighbors.rsa; method spearman or pearson)"),
    Metric("linear_r2", "linear R2", _measure("regression", "linear_r2"),
           {"alpha": 1.0, "cv": None, "normalize_rows": False}, types=_FOLDS, symmetric=False,
           summary="R^2 of a ridge regression A -> B (pu regression.linear_r2)"),
    Metric("linear_r2_both", "linear R2 (both ways)", _measure("regression", "bidirectional_linear_r2"),
           {"alpha": 1.0, "cv": None, "normalize_rows": False}, types=_FOLDS,
           summary="mean ridge R^2 of A -> B and B -> A (pu)"),
    Metric("tucker", "Tucker congruence", _measure("spectral", "tucker_congruence"), {"normalize_rows": False},
           equal_dims=True, summary="Tucker's congruence coefficient (pu spectral)"),
    Metric("eigenspectrum", "eigenspectrum distance", _measure("spectral", "eigenspectrum"),
           {"normalize": True, "normalize_rows": False}, scale="distance", **_FREE,
           summary="distance between the sorted covariance eigenvalues (pu spectral)"),
    Metric("riemannian", "Riemannian distance", _measure("spectral", "riemannian"),
           {"metric": "log_euclidean", "eps": 1e-6, "normalize_rows": False}, scale="distance", **_FREE, equal_dims=True,
           summary="Riemannian distance between the covariances (pu spectral; log_euclidean or affine_invariant)"),
    Metric("gaussian_kl", "Gaussian KL", _measure("information", "gaussian_kl"), {"eps": 1e-6, "normalize_rows": False},
           scale="distance", **_FREE, symmetric=False, equal_dims=True,
           summary="KL divergence (nats) between the fitted Gaussians (pu information)"),
    Metric("gaussian_js", "Gaussian JS", _measure("information", "gaussian_js"), {"eps": 1e-6, "normalize_rows": False},
           scale="distance", **_FREE, equal_dims=True, summary="Jensen-Shannon divergence (nats) of the fitted Gaussians (pu)"),
    Metric("mi_ksg", "KSG mutual information", _ksg,
           {"normalize_rows": False}, fixed={"k": 3}, scale="nats", kept_bytes=_hook("measures.information", "ksg_kept_bytes"),
           summary="Kraskov-Stogbauer-Grassberger kNN mutual information, k = 3 (pu information.mutual_information)"),
    Metric("distance_correlation", "distance correlation", _measure("dcor", "distance_correlation"),
           {"normalize_rows": False}, summary="distance correlation (dcor); all pairs, tiled"),
)}


def register(metric: Metric) -> Metric:
    """Add ``metric`` to ``METRICS`` (after the others in display order), refusing a taken name."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is already registered")
    METRICS[metric.name] = metric
    return metric


def graph_width(k: int) -> int:
    """Columns a cached kNN graph keeps for neighbourhood metrics at ``k``: 8k. A subsample's
    exact graph (``stats.quarter_splits``) then takes a row's k nearest from the cache whenever
    k of its 8k cached neighbours are in the subsample: all but P(Binomial(8k, 1/4) < k) of a
    quarter's rows (1.6% at k = 5, 0.2% at k = 10), all but ~1e-7 of a half's; only the rows
    left short are recomputed."""
    return 8 * k


def cached_graph_width(names, k: int, subsampling_splits: int) -> int:
    """Columns of the cached kNN graphs for the metrics ``names``: ``graph_width(k)`` when a metric
    reading them draws subsampling intervals, else k (the knn_graph jobs and ``samesky compare``)."""
    local = any(get_metric(name).uses_knn for name in names)
    return graph_width(k) if local and subsampling_splits else k


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known metrics: {sorted(METRICS)}") from None
