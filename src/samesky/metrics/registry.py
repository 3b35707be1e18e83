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
    prepare: Callable[..., object]  # prepare(pair, **params) -> estimator
    defaults: dict = field(default_factory=dict)  # the parameters it takes, with defaults
    uses_knn: bool = False  # reads the cached kNN graphs
    costly_draws: bool = False  # each null/bootstrap draw recomputes O(N d^2): fewer draws
    scale: str = "unit"  # s_max of the calibrated score: 'unit' (1) or 'nats' (unbounded; see stats.calibrated)
    summary: str = ""

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


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("mknn", _mknn, {"k": 10}, uses_knn=True,
           summary="mutual k-nearest-neighbour overlap (the paper's metric)"),
    Metric("cka_linear", _cka(unbiased=False), costly_draws=True,
           summary="linear CKA (biased HSIC), feature space"),
    Metric("cka_unbiased", _cka(unbiased=True), costly_draws=True,
           summary="linear CKA with the unbiased HSIC estimator, feature space"),
    Metric("cknna", _cknna, {"k": 10}, uses_knn=True,
           summary="CKA restricted to mutual k-nearest neighbours, as released in platonic-rep (unbiased HSIC)"),
    Metric("cknna_formula", _cknna_formula, {"k": 10}, uses_knn=True,
           summary="CKNNA by the formula of Huh et al. 2024's appendix"),
    Metric("mutual_info", _mutual_info, {"components": 16}, scale="nats",
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
