"""Every metric, in one place: name -> how to build it, which parameters it takes, and what it needs.

A metric is called as ``METRICS[name](Za, Zb, **params) -> float``. For statistics,
``METRICS[name].estimator(pair, **params)`` returns an estimator with ``score()``, ``null(pi)`` (side B's rows
permuted by ``pi``), so the null loop in ``compare`` is the same for every metric. Every metric
gets its interval from fresh estimators on random subsamples of the pair (``stats``,
``Pair.subsample``); the estimators' ``bootstrap(weights)`` is no longer used by ``compare``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# Estimator modules (torch) are imported inside the builders: the workflow imports this module
# at parse time only to validate metric names.


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # how tables and figures name it
    prepare: Callable[..., object]  # prepare(pair, **params) -> estimator
    # the parameters it takes, with defaults: the one place of those defaults. ``k`` (neighbourhood
    # size) is shared by every neighbourhood metric and the cached graphs: config metrics.k. The
    # others are set per metric in config metrics.params.{name} (checked by ``check_params``).
    defaults: dict = field(default_factory=dict)
    uses_knn: bool = False  # reads the cached kNN graphs
    costly_draws: bool = False  # each null/bootstrap draw recomputes O(N d^2): fewer draws
    scale: str = "unit"  # s_max of the calibrated score: 'unit' (1) or 'nats' (unbounded; see stats.calibrated)
    summary: str = ""

    @property
    def percent(self) -> bool:
        """Bounded by 1 ('unit' scale): shown as a percentage, like the paper's MKNN."""
        return self.scale == "unit"

    def check_params(self, params: dict, where: str) -> None:
        """``params`` (config ``metrics.params.{name}``) checked against the declared parameters:
        known names other than the shared ``k``, values of the default's type. ``where`` names
        the config key in the errors."""
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
            want = type(self.defaults[key])
            if type(value) is not want and not (want is float and type(value) is int):
                raise ValueError(f"{where}.{key}: expected {want.__name__}, got {value!r}")

    def estimator(self, pair, **params):
        """The metric's estimator on a ``pair.Pair``, with parameters checked and defaulted."""
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"metric {self.name!r} takes parameters {sorted(self.defaults)}, not {sorted(unknown)}")
        return self.prepare(pair, **{**self.defaults, **params})

    def __call__(self, Za, Zb, **params) -> float:
        from .pair import Pair

        return self.estimator(Pair(Za, Zb), **params).score()


def _mknn(pair, k: int):
    from .mknn import MknnEstimator

    (ia, _), (ib, _) = pair.graphs(k)
    return MknnEstimator(ia, ib, k)


def _cknna(pair, k: int):
    from .cknna_hsic import CknnaHsicEstimator

    return CknnaHsicEstimator(*pair.graphs(k), k)


def _cknna_formula(pair, k: int):
    from .cknna import CknnaEstimator

    return CknnaEstimator(*pair.graphs(k), *pair.row_means, k)


def _cka(unbiased: bool):
    def build(pair):
        from .cka import CkaEstimator

        return CkaEstimator(pair.space, unbiased=unbiased, invariants=lambda: pair.gram_invariants)
    return build


def _mutual_info(pair, components: int):
    from .mutual_info import MutualInfoEstimator

    return MutualInfoEstimator(pair.space, components)


# In display order: tables, figures and trend tests list metrics in this order (MKNN, the paper's, first).
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("mknn", "MKNN", _mknn, {"k": 10}, uses_knn=True,
           summary="mutual k-nearest-neighbour overlap (the paper's metric)"),
    Metric("cka_linear", "linear CKA", _cka(unbiased=False), costly_draws=True,
           summary="linear CKA (biased HSIC), feature space"),
    Metric("cka_unbiased", "unbiased CKA", _cka(unbiased=True), costly_draws=True,
           summary="linear CKA with the unbiased HSIC estimator, feature space"),
    Metric("cknna", "CKNNA", _cknna, {"k": 10}, uses_knn=True,
           summary="CKA restricted to mutual k-nearest neighbours, as released in platonic-rep (unbiased HSIC)"),
    Metric("cknna_formula", "CKNNA (appendix formula)", _cknna_formula, {"k": 10}, uses_knn=True,
           summary="CKNNA by the formula of Huh et al. 2024's appendix"),
    Metric("mutual_info", "mutual information", _mutual_info, {"components": 16}, scale="nats",
           summary="Gaussian mutual information (nats) of the top principal components"),
)}


def graph_width(k: int) -> int:
    """Columns a cached kNN graph keeps for neighbourhood metrics at ``k``: 8k. A subsample's
    exact graph (``stats.quarter_splits``) then takes a row's k nearest from the cache whenever
    k of its 8k cached neighbours are in the subsample: all but P(Binomial(8k, 1/4) < k) of a
    quarter's rows (1.6% at k = 5, 0.2% at k = 10), all but ~1e-7 of a half's; only the rows
    left short are recomputed."""
    return 8 * k


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known metrics: {sorted(METRICS)}") from None
