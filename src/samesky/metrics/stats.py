"""Seeded permutation nulls, resamples and their summary, shared by every metric.

Draws come from streams fixed by ``seed`` alone (torch's generator for permutations, numpy's
for resamples and half-samples), one draw at a time, so draw d is the same permutation (or
resample) for every metric of a comparison and for any number of draws: a metric that makes
fewer draws (CKA) uses the first ones.

Intervals: every metric, by subsampling (below); the estimand is the metric's mean over
independent samples of the sample's size n. Resampling with replacement fails in two ways.
Neighbourhood metrics (MKNN, CKNNA): an object's score depends on which other objects are in the
sample. Reweighting per-object terms on the full-sample graph ignores how neighbourhoods vary
between samples (its 95% interval covered 82-87%); a bootstrap resample with neighbourhoods
recomputed sees only ~0.63 n distinct objects, a sparser sample; and the delete-d jackknife
(variance of half-sample scores given the sample) over-states the variance, because given the
sample a kept object's neighbourhood still varies with which of its neighbours were kept: in a
pilot of the coverage study its SE was 1.2-1.6 times the true SD. CKA and MI: the recentred
percentile bootstrap covered linear and unbiased CKA 98.7% on the latent data model (75
samples), but that was luck of the samples, not a fault of the bootstrap: the SD of CKA over
those first samples is 15% below its SD over 1000 samples, and against the latter the bootstrap
SD is within 4% (benchmarks/bench_bootstrap_cka.py). They get subsampling too, for one method
whose mechanics hold for every metric (no object meets a copy of itself). A percentile interval
that is not recentred covered MI only 44-50% (a resample's copies bias MI, ~ components^2 / 2n,
like a smaller sample).

Every metric gets subsampling (Politis, Romano and Wolf 1999, "Subsampling"; Bertail, Politis
and Romano 1999, JASA 94:569, for an unknown rate). Each draw splits the objects at random
into four disjoint quarters Q1..Q4, and the halves H = Q1 + Q2, H' = Q3 + Q4, and rescores a
neighbourhood metric on each of the six (CKA and MI on the halves), with every neighbourhood and
moment recomputed on that subsample alone (each object appears once: it meets no copy of itself).
Disjoint subsamples are independent samples of the population, so without any linearisation

    V2 = mean (theta_H - theta_H')^2 / 2           estimates var(theta_(n/2)),
    V4 = mean over the 6 quarter pairs of (theta_Qa - theta_Qb)^2 / 2   estimates var(theta_(n/4)).

Subsample biases cancel in these differences of equal-size subsamples. CKA and MI are smooth
functions of moments (asymptotically linear), so their variance falls as 1/m to first order and

    SE^2 = V2 / 2      (CKA, MI: only the halves are rescored),

which errs by the second-order term, on the safe side. An earlier rule estimated the rate from
V4 / V2 for them too: the extra noise of V4 (the SE's coefficient of variation 0.13 against 0.08
at 100 draws) and MI's finite-m terms, which steepen its rate from n/4 to n/2 (1.12-1.16) and
fade by n, made MI's SE 7% short on the clustered data (expected coverage 92.5%; V2 / 2: 94.2%).
The variance of a neighbourhood score does not fall as 1/n: at fixed k the neighbourhoods shrink
as n grows and the score itself changes (MKNN's variance fell about as n^-1.5 in the coverage
study), so a 1/n rate from n/2 to n over-states the SE by ~20%. The rate is estimated,
var(theta_m) ~ m^-beta with beta = log2(V4 / V2), so SE^2 = V2 2^-beta (= V2^2 / V4), the
interval being score +- z SE. That is not all: a power law fitted from n/4 to n/2 over-stated
the SE at k = 50 by 10-25% (CKNNA covered 97.5-98% at N = 1000), because the local rate grows
with m: over 300 independent samples per size (``bench_coverage.py --rates``;
latent and clusters data, m = 125 .. 1000), beta rose by 0.3-0.9 per doubling of m at k = 50.
The cause is saturation: a quarter's neighbourhoods hold 4k/n of it (a fifth at n = 1000,
k = 50). An object's score is an overlap of two k-subsets of the other m objects; by the
hypergeometric law the variance of such an overlap carries the finite-population factor
f(m) = (1 - k/m)^2 (``knn_share``), 0.64 at a quarter there and 0.90 at n. With it divided out,
var(theta_m) ~ f(m) m^-beta, the measured beta at k = 50 is flat in m within its noise (+-0.2)
except for CKNNA on the clustered data, whose quarters score 0.83 of a maximum 1; so

    beta = log2(V4 / V2) - log2(f(n/4) / f(n/2)),   SE^2 = V2 f(n) / f(n/2) 2^-beta,

with beta at least 1 (KNN_BETA_BOUNDS), against estimates pulled low by saturated quarters (that
CKNNA cell; at k = 10 on the clustered data the rate from n/4 to n/2 was 0.7-0.9, from n/2 to n 1.5-1.6).
The floor is a choice, not a law. Against the score's SD over 1000 further samples, the SE is within
-3% .. +8% of it in every neighbourhood cell of the coverage study but one (clustered data,
N = 1000, k = 50, MKNN: +15%, as the local rate rises from 1.15 to 1.39 per doubling there); an
earlier reading of 8-12% too narrow at N = 3000 was the study's own 200 samples, whose SD was 10-17%
above the population's (docs/ARCHITECTURE.md, coverage). At k << n the finite-population factor
vanishes. It is an interval for the population value at the sample's size n: neighbourhood scores
depend on n. Coverage is checked by benchmarks/bench_coverage.py.
A mean of 0/1 outcomes (cycle_knn: whether each object returns to itself through one of its
B-neighbours' A-neighbourhoods) does not follow that model. Its rate s_m falls as m grows at fixed
k (0.89, 0.77, 0.64, 0.50, 0.38 at m = 125 .. 2000, latent data, k = 10), so each outcome's
variance s_m (1 - s_m) rises, and the score's variance fell far slower than 1/m at small m (local
rates 0.19 and 0.30 from m = 125 to 500, 300 samples per size, ``bench_coverage.py --rates``): the
floor beta >= 1 then makes the SE too small (at n = 500, k = 10 it was 0.88 of the SD: expected
coverage 91.4%, 89.1% of 128 intervals). With the Bernoulli variance divided out, var(theta_m) / (s_m (1 - s_m)) fell as m^-1 within
its noise (local rates 1.08, 0.70, 1.16, 0.78, each +-0.17): var(theta_m) = s_m (1 - s_m) D / m, D
the design effect of neighbouring objects' correlated returns (1.2-1.5 here), constant while
neighbourhoods are local. So, from the halves alone,

    SE^2 = V2 / 2  s_n (1 - s_n) / (s_(n/2) (1 - s_(n/2))),

s_n the full-sample score and s_(n/2) the halves' mean score (the registry's interval
'subsampling_indicator'): 0.99 of the SD at n = 500 (expected coverage 94.6%) and 0.98 at n = 1000
(94.4%; the neighbourhood model's 0.95, 93.7%). Estimating the rate from the quarters as well (mean
0.90-0.96) doubled the SE's noise for no gain. A score of 0 or 1 (no object or every object
returns) gets SE 0.
A statistic near its degenerate point (the registry's 'subsampling_degenerate': MMD). A U- or
V-statistic's variance is A/m + B/m^2 (Hoeffding's decomposition), A the first-order term's.
Where two laws are far apart A dominates and V2 / 2 holds; where they are nearly one, A vanishes
and the variance falls as 1/m^2 (MMD at 0.079 on the latent64 data: the halves' variance 3.9
times the full sample's, so V2 / 2 made the SE 1.37 of the SD, 98.4% coverage). The halves and
quarters fix both terms, V2 = 2a + 4b and V4 = 4a + 16b (a = A/n, b = B/n^2), so

    SE^2 = a + b = (6 V2 - V4) / 8,   V4 held within [2 V2, 4 V2] (A, B >= 0),

V2 / 2 at rate 1 and V2 / 4 at rate 2; a sum of the two terms, not a power law between them,
which is what the decomposition says a mixture of the regimes is. Coverage: benchmarks/README.md
("The estimators in their sampled mode").
The SE is itself estimated from the draws, and SE = V2 / sqrt(V4) (inside the bounds) doubles the
relative noise of V2, which has one degree of freedom per draw: its coefficient of variation over
samples was 0.12-0.19 at 50 draws and 0.08-0.11 at 200 (N = 1000, 3000), pure Monte-Carlo noise
(the SEs of two disjoint halves of one sample's draws were uncorrelated), and a noisy SE costs
coverage: at N = 3000, 50 draws covered 88-95%, the same samples' mean SE 93-97%. The default
1000 draws leave about 0.04.
Cost: subsample graphs are restricted from the cached graph (``Pair.subsample``), so a
neighbourhood draw is O(n (k + d)) against O(n^2 d) for one graph build: about 0.5% of a build
at n = 100k (docs/ARCHITECTURE.md has the measurement); a CKA/MI draw recomputes the moments of
the two halves, one O(n d^2) pass (what a bootstrap resample would cost), so they make at most
``feature_space_draws`` draws.
"""
from __future__ import annotations

import math
import sys
from statistics import NormalDist
from typing import Iterator

import numpy as np

# Up to this many permuted entries, a job that has not loaded torch replays its stream in numpy
# (tens of milliseconds) instead of importing it (about a second): the probe jobs.
NUMPY_PERMUTATION_ENTRIES = 1 << 18


def permutations(n: int, draws: int, seed: int) -> Iterator[np.ndarray]:
    """``draws`` random permutations of range(n) (int64), reproducible from ``seed``.

    torch.randperm: half the cost of numpy's permutation, which is a third of an MKNN null draw.
    Small draws in a process without torch come from ``randperm_numpy``: the same permutations.
    """
    if "torch" not in sys.modules and n * draws <= NUMPY_PERMUTATION_ENTRIES and seed < 2**32:
        yield from randperm_numpy(n, draws, seed)
        return
    import torch

    g = torch.Generator().manual_seed(seed)
    for _ in range(draws):
        yield torch.randperm(n, generator=g).numpy()


def randperm_numpy(n: int, draws: int, seed: int) -> Iterator[np.ndarray]:
    """torch.randperm(n, generator=torch.Generator().manual_seed(seed)), ``draws`` times, in numpy.

    Torch's CPU algorithm (n < 2**32 / 20): swap r[i] and r[i + u % (n - i)] for i = 0 .. n - 2,
    u each time the next 32-bit output of the Mersenne Twister MT19937, which numpy's legacy
    RandomState seeds as torch's manual_seed does (seeds below 2**32). A Python loop: small n only.
    """
    mt = np.random.RandomState(seed)
    spans = np.arange(n, 1, -1)
    for _ in range(draws):
        r = list(range(n))
        swaps = (mt.randint(0, 2**32, size=max(n - 1, 0), dtype=np.uint32) % spans).tolist()
        for i, z in enumerate(swaps):
            r[i], r[i + z] = r[i + z], r[i]
        yield np.array(r, dtype=np.int64)


def bootstrap_weights(n: int, draws: int, seed: int) -> Iterator[np.ndarray]:
    """``draws`` bootstrap resamples of n objects, as per-object counts (float64, summing to n)."""
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        yield np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)


def quarter_splits(n: int, draws: int, seed: int) -> Iterator[list[np.ndarray]]:
    """``draws`` random splits of range(n) into the six subsamples of ``subsampling_interval``:
    halves H, H' then quarters Q1..Q4 (H = Q1 + Q2, H' = Q3 + Q4), each as sorted rows (a
    subsample keeps the sample's order and its kNN tie order). Reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        label = np.empty(n, np.int64)
        label[rng.permutation(n)] = np.arange(n) * 4 // n  # quarter sizes differ by at most one
        quarters = [np.flatnonzero(label == q) for q in range(4)]
        yield [np.flatnonzero(label < 2), np.flatnonzero(label >= 2), *quarters]


KNN_BETA_BOUNDS = (1.0, 2.5)  # var(theta_m) falls at least as 1/m (module docstring), at most as m^-2.5


def knn_share(m: float, k: int) -> float:
    """(1 - k/m)^2: the finite-population factor of the variance of an overlap of k-neighbourhoods
    among m objects (hypergeometric), which the rate model of ``subsampling_se`` divides out."""
    return (1 - k / m) ** 2


def bernoulli_share(s: float) -> float:
    """s (1 - s): the variance of a 0/1 outcome of mean s, the factor that the variance of a mean
    of per-object 0/1 outcomes carries (``subsampling_se``'s indicator model)."""
    return s * (1 - s)


def subsampling_se(draws, n: int | None = None, k: int | None = None, *,
                   indicator_score: float | None = None, degenerate: bool = False) -> float:
    """SE of a score from its ``quarter_splits`` rescorings (module docstring). A neighbourhood
    metric (``k``, on a sample of ``n`` objects) has (draws, 6) = (H, H', Q1..Q4) each, and the
    variance model knn_share(m, k) m^-beta: V2 knn_share(n) / knn_share(n/2) 2^-beta, beta =
    log2(V4 / V2) - log2(knn_share(n/4) / knn_share(n/2)), within KNN_BETA_BOUNDS. A metric
    without neighbourhoods (``k`` None) needs only the halves (draws, 2; any further columns are
    ignored): V2 / 2, the rate 1/m of a smooth statistic. ``indicator_score``: the full-sample
    score s_n of a mean of per-object 0/1 outcomes (cycle_knn), from the halves alone: the
    variance model bernoulli_share(s_m) D / m, so V2 / 2 bernoulli_share(s_n) / bernoulli_share(s_(n/2)),
    s_(n/2) the halves' mean score (module docstring, "A mean of 0/1 outcomes"). ``degenerate``:
    a U- or V-statistic whose first-order term may vanish (MMD where the two laws are nearly one),
    from the halves and quarters (draws, 6): var(theta_m) = A/m + B/m^2 with A, B >= 0, fitted
    exactly to V2 and V4, so SE^2 = (6 V2 - V4) / 8 with V4 held within [2 V2, 4 V2] (module
    docstring, "A statistic near its degenerate point")."""
    s = np.asarray(draws, float)
    s = s.reshape(len(s), -1)
    v2 = np.mean((s[:, 0] - s[:, 1]) ** 2) / 2
    if indicator_score is not None:
        half = bernoulli_share(float(s[:, :2].mean()))
        return float(np.sqrt(v2 / 2 * bernoulli_share(indicator_score) / half)) if v2 > 0 else 0.0
    if k is None and not degenerate:
        return float(np.sqrt(v2 / 2))
    if k is not None and not n > 4 * k:
        raise ValueError(f"subsampling_se: a quarter of n={n} objects must hold more than k={k}")
    v4 = np.mean([(s[:, 2 + a] - s[:, 2 + b]) ** 2 for a in range(4) for b in range(a + 1, 4)]) / 2
    if v2 == 0 or v4 == 0:
        return float(np.sqrt(v2 / 2))
    if degenerate:
        return float(np.sqrt((6 * v2 - np.clip(v4, 2 * v2, 4 * v2)) / 8))
    f2, f4 = knn_share(n / 2, k), knn_share(n / 4, k)
    beta = float(np.clip(np.log2(v4 / v2) - np.log2(f4 / f2), *KNN_BETA_BOUNDS))
    return float(np.sqrt(v2 * knn_share(n, k) / f2 * 2.0**-beta))


def subsampling_interval(score: float, draws, ci: float, n: int | None = None,
                         k: int | None = None, *, indicator: bool = False,
                         degenerate: bool = False) -> tuple[float, float]:
    """Normal interval score -+ z_{(1 + ci) / 2} SE, SE from ``subsampling_se`` (``n``, ``k``:
    a neighbourhood metric's sample size and k; ``indicator``: the score is a mean of per-object
    0/1 outcomes, its SE from the indicator model; ``degenerate``: the A/m + B/m^2 model)."""
    se = (subsampling_se(draws, n, k, indicator_score=score if indicator else None, degenerate=degenerate)
          if len(draws) else 0.0)
    z = NormalDist().inv_cdf((1 + ci) / 2)
    return score - z * se, score + z * se


def p_value(score: float, null: np.ndarray, direction: str = "similarity") -> float:
    """One-sided permutation p-value with the +1 correction: (1 + #{null >= score}) / (1 + draws)
    for a similarity, (1 + #{null <= score}) / (1 + draws) for a distance."""
    null = np.asarray(null)
    beyond = null >= score if _sign(direction) > 0 else null <= score
    return float((1 + np.count_nonzero(beyond)) / (1 + len(null)))


def _sign(direction: str) -> int:
    """+1 where higher is more aligned (a similarity), -1 where lower is (a distance)."""
    if direction not in ("similarity", "distance"):
        raise ValueError(f"direction must be 'similarity' or 'distance', got {direction!r}")
    return 1 if direction == "similarity" else -1


def max_null(draws, direction: str = "similarity") -> np.ndarray:
    """The null of a maximum over cells (Groger, Wen and Brbic's Algorithm 2): ``draws`` is
    (cells, K), each column one permutation shared by every cell; the k-th draw of the maximum is
    the maximum over cells of their k-th draws (for a distance, the minimum: its aligned tail)."""
    draws = np.asarray(draws, float)
    if draws.ndim != 2 or not len(draws):
        raise ValueError(f"need a (cells, draws) array with at least one cell, got shape {draws.shape}")
    return draws.max(axis=0) if _sign(direction) > 0 else draws.min(axis=0)


def threshold_rank(draws: int, alpha: float) -> int:
    """ceil((1 - alpha)(K + 1)): the rank (1-based) of tau among the observed score and K draws.

    Computed on a 1e-9 grid so that e.g. alpha = 0.05, K = 19 gives 19, not 20 (0.95 * 20 is
    19.000000000000004 in floating point).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")
    return math.ceil(round((1 - alpha) * (draws + 1), 9))


def permutation_threshold(score: float, null: np.ndarray, alpha: float, direction: str = "similarity") -> float:
    """tau: the ceil((1 - alpha)(K + 1))-th smallest of {score} and the K null draws (for a
    distance, the ceil((1 - alpha)(K + 1))-th largest: the lower tail).

    Under the null the observed score is exchangeable with the draws, so P(score beyond tau) <=
    alpha exactly (the calibrated score is 0 with probability >= 1 - alpha).
    """
    sign = _sign(direction)
    pool = np.sort(sign * np.append(np.asarray(null, float), score))
    return float(sign * pool[threshold_rank(len(pool) - 1, alpha) - 1])


def calibrated(score: float, tau: float, scale: str = "unit") -> float:
    """max(0, (s - tau) / (s_max - tau)): the share of the room above the null's (1 - alpha)
    level that the score reaches.

    ``scale='unit'``: s_max = 1 (MKNN, CKA, CKNNA: identical embeddings score 1).
    ``scale='nats'`` (mutual information, unbounded): s_max = infinity nats. Both s and tau are
    first mapped by Linfoot's informational coefficient of correlation r(I) = sqrt(1 - exp(-2 I)),
    monotone from [0, inf) onto [0, 1) (r = |rho| for one Gaussian pair, r -> 1 as I -> inf), so
    s_max = inf becomes 1 and the rule above applies unchanged; tau stays in nats in the records
    (a monotone map commutes with the order statistic that defines it).
    ``scale='distance'`` (lower is more aligned, 0 for identical embeddings; tau the null's lower
    alpha level): max(0, (tau - s) / (tau - 0)), the share of the way from tau down to 0.
    """
    if scale == "distance":
        return max(0.0, (tau - score) / tau) if tau > 0 else 0.0
    if scale == "nats":
        score, tau = (math.sqrt(-math.expm1(-2 * max(v, 0.0))) for v in (score, tau))
    elif scale != "unit":
        raise ValueError(f"scale must be 'unit', 'nats' or 'distance', got {scale!r}")
    if tau >= 1:
        return 0.0
    return max(0.0, (score - tau) / (1 - tau))


def calibrated_interval(ci_low, ci_high, tau, scale: str = "unit") -> tuple[float | None, float | None]:
    """The calibrated score's interval: the score's interval (its subsampling endpoints) mapped by
    the same monotone map as the score, tau held at its value (``calibrated``), in increasing
    order (a distance's map decreases). None where the score has no interval or no tau."""
    if ci_low is None or ci_high is None or tau is None:
        return None, None
    ends = sorted(calibrated(v, tau, scale) for v in (ci_low, ci_high))
    return ends[0], ends[1]


INTERVAL_METHODS = ("percentile", "subsampling")
DRAW_FIELDS = {"percentile": "bootstrap_draws", "subsampling": "subsampling_splits"}  # a record's count of them


def summarise(score: float, null: np.ndarray, boot: np.ndarray, ci: float, *, alpha: float = 0.05,
              scale: str = "unit", interval: str = "percentile", knn: tuple[int, int] | None = None,
              indicator: bool = False, degenerate: bool = False, no_null: str | None = None) -> dict:
    """The statistics fields of a metric record; None where no draws were made.

    ``calibrated``/``tau`` follow ``permutation_threshold`` and ``calibrated`` at level ``alpha``,
    on the tail that ``scale`` says is aligned (the lower one for a 'distance').
    ``interval='percentile'``: ``boot`` holds bootstrap scores (percentile interval, recentred on
    ``score``; the probes); ``'subsampling'``: the rescorings of ``quarter_splits``, (draws, 6),
    or (draws, 2) halves without ``knn`` (``subsampling_interval``; every metric of ``compare``;
    ``knn`` = (n, k) for a neighbourhood metric; ``indicator`` for a mean of per-object 0/1
    outcomes and ``degenerate`` for the A/m + B/m^2 model (draws, 6), as ``subsampling_interval``). ``interval_method`` names it, and the count of
    ``boot``'s rows is the field ``DRAW_FIELDS[interval]``. ``no_null``: why the measure has no
    null (registry.PAIRING_FREE), the record's ``null_method``; ``null`` must then be empty.
    """
    if not 0 < ci < 1 or not 0 < alpha < 1:
        raise ValueError(f"ci={ci} and alpha={alpha} must be in (0, 1)")
    if interval not in INTERVAL_METHODS:
        raise ValueError(f"interval must be one of {INTERVAL_METHODS}, got {interval!r}")
    if no_null is not None and len(null):
        raise ValueError(f"{len(null)} null draws given for a measure without a null ({no_null})")
    null, boot = np.asarray(null, float), np.asarray(boot, float)
    out = {"ci_low": None, "ci_high": None, "null_mean": None, "null_std": None, "p_value": None,
           "null_draws": len(null), DRAW_FIELDS[interval]: len(boot), "tau": None, "calibrated": None,
           "alpha": alpha, "null_method": "permutation" if len(null) else no_null,
           "interval_method": interval if len(boot) else None}
    if len(boot):
        lo, hi = (subsampling_interval(score, boot, ci, *(knn or ()), indicator=indicator,
                                       degenerate=degenerate) if interval == "subsampling"
                  else np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2]) + (score - boot.mean()))
        out.update(ci_low=float(lo), ci_high=float(hi))
    if len(null):
        direction = "distance" if scale == "distance" else "similarity"
        out.update(null_mean=float(null.mean()), null_std=float(null.std(ddof=1)) if len(null) > 1 else 0.0,
                   p_value=p_value(score, null, direction))
        tau = permutation_threshold(score, null, alpha, direction)
        out.update(tau=tau, calibrated=calibrated(score, tau, scale))
    return out
