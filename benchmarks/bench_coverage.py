"""Coverage of the metric intervals (prints a table; not a unit test).

For each data model, N and k: draw ``--reps`` independent samples of N objects, compute every
registry metric's score and nominal ``--ci`` interval as the compare rule does (subsampling with
an estimated rate, ``metrics.stats``: through ``compare.pair_statistics`` for metrics without
neighbourhoods, with ``--draws`` splits, compare's default cap ``feature_space_draws``; for the
neighbourhood metrics the same mechanics with ``--splits`` splits shared between k), and count
how often the interval holds the population
value: the mean score of independent samples of size N (the estimand of a size-N study:
neighbourhood scores depend on N), here the other reps (leave-one-out) plus ``--pop`` more.
Metrics without ``k`` are computed once per sample, not once per k.

Reference values: ``--pop P`` scores P further independent samples (no intervals: cheap), which
fix the population value and the score's SD (to ~2% at P = 1000), and the table adds the
expected coverage (``row``): with 200 samples the hit count alone has a binomial SE of 1.5
points, and the samples' own SD is off by 5% (one SD) or more, shared by every cell of a row
group, which once made a sound method look 7-17% too wide and 8-12% too narrow.

Splits: an interval's SE is itself a Monte-Carlo estimate from its splits, and at the sample
sizes here that noise is what varies between samples (the SEs of two disjoint halves of one
sample's splits are uncorrelated): its coefficient of variation is 0.12-0.19 at 50 splits and
0.08-0.11 at 200, and a noisy SE costs coverage (up to 5 points at 50 splits, N = 3000). The
study uses 200 (``--splits``), the demo's subsampling_splits; the workflow's default is 1000.

Data models (two views A, B of the same objects; the generating maps are fixed, objects vary):
  latent     shared and private Gaussian factors: A = [s, a] W_A + noise (64-d),
             B = [s, b] W_B + noise (96-d); half of each view's signal is shared
  latent64   the same with B in 64-d (its own W_B): two views of one dimension and nearly one law,
             for the measures of one shared space (MMD near its null)
  latent64_wide  latent64 with B twice as wide: two laws far apart (MMD 0.25 against 0.08)
  clusters   a Gaussian mixture of 12 clusters in 4 shared dimensions, seen through a
             nonlinear map (tanh) in 128-d with heavy noise (A) and linearly in 24-d with
             light noise and one private factor (B)

  --rates     instead: the mean and the local rate of every metric's score variance, beta
              between m and 2m for m = N/8, N/4, N/2 (--reps independent samples per size), raw and
              with the factor of the metric's variance model divided out: the finite-population
              factor (1 - k/m)^2 of ``stats.knn_share``, or for a mean of per-object 0/1 outcomes
              (cycle_knn) the Bernoulli variance s(1 - s) of its mean score (``stats.bernoulli_share``)
  --cost N D  instead: time one subsampling draw (MKNN and CKNNA at --k) and one kNN graph
              build on random (N, D) data, to state the cost at paper size.

Usage:
  python benchmarks/bench_coverage.py --pop 1000 --save cov  # the full study (N 1000, 3000; k 10, 50)
  python benchmarks/bench_coverage.py --reps 20 --n 1000     # a quick look
  # the neighbourhood half, split between two processes, then the table from the saved samples:
  python benchmarks/bench_coverage.py --metrics mknn cknna --n 3000 --save cov --reps 100 &
  python benchmarks/bench_coverage.py --metrics mknn cknna --n 3000 --save cov --first-rep 100 &
  wait; python benchmarks/bench_coverage.py --metrics mknn cknna --n 3000 --save cov
  python benchmarks/bench_coverage.py --cost 100000 256 --k 10
  # the sampled modes (issue 27): the config's 10^6 pairs at N = 102,000, in proportion at N = 3000;
  # MMD compares two sides of one dimension (a directory per setting: files are named by measure only):
  python benchmarks/bench_coverage.py --models latent --n 3000 --k 10 --pop 1000 --save cov_rsa --metrics rsa \
      --params '{"rsa": {"sample_pairs": 29412}}'
  python benchmarks/bench_coverage.py --models latent64 --n 3000 --k 10 --pop 400 --save cov_mmd --metrics mmd \
      --params '{"mmd": {"median_sample": 29412}}'
  # the field's measures (issue 27); procrustes compares sides of different dimensions as config.yaml runs it:
  python benchmarks/bench_coverage.py --models latent --n 1000 --k 10 --pop 1000 --save cov --metrics svcca \
      procrustes eigenspectrum --params '{"procrustes": {"unequal_dims": "zero_pad"}}'
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path
from statistics import NormalDist

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import samesky.metrics.mutual_info  # noqa: E402, F401  (its scipy BLAS loads now, so threadpool_limits reaches it)
from samesky.metrics.compare import _subsample_draws, pair_statistics  # noqa: E402
from samesky.metrics.knn import knn_graph  # noqa: E402
from samesky.metrics.pair import Pair  # noqa: E402
from samesky.metrics.registry import METRICS, get_metric, graph_width  # noqa: E402
from samesky.metrics.stats import bernoulli_share, knn_share, quarter_splits, subsampling_interval  # noqa: E402


class DataModel:
    """Fixed generating maps (from ``seed``); ``sample(n, g)`` draws n objects."""

    def __init__(self, name: str, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.name = name
        if name in ("latent", "latent64", "latent64_wide"):
            self.wa, self.wb = torch.randn(16, 64, generator=g), torch.randn(16, 96 if name == "latent" else 64, generator=g)
        elif name == "clusters":
            self.centres = 2.5 * torch.randn(12, 4, generator=g)
            self.wa1, self.wa2 = torch.randn(4, 32, generator=g), torch.randn(32, 128, generator=g) / 32**0.5
            self.wb = torch.randn(5, 24, generator=g)
        else:
            raise ValueError(f"unknown data model {name!r}; known: latent, latent64, latent64_wide, clusters")

    def sample(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
        if self.name != "clusters":
            s, a, b = r(n, 8), r(n, 8), r(n, 8)
            za = torch.cat([s, a], 1) @ self.wa + 2.0 * r(n, 64)
            zb = (torch.cat([s, b], 1) @ self.wb + 2.0 * r(n, self.wb.shape[1])) * (2.0 if self.name == "latent64_wide" else 1.0)
        else:
            s = self.centres[torch.randint(0, 12, (n,), generator=g)] + r(n, 4)
            za = torch.tanh(s @ self.wa1 / 2) @ self.wa2 + 0.6 * r(n, 128)
            zb = torch.cat([s, r(n, 1)], 1) @ self.wb + 1.0 * r(n, 24)
        return za.contiguous(), zb.contiguous()


def sample_pair(model: DataModel, n: int, seed: int, width: int) -> Pair:
    """One sample of n objects, with kNN graphs of ``width`` columns (none when 0)."""
    za, zb = model.sample(n, torch.Generator().manual_seed(seed))
    if not width:
        return Pair(za, zb)
    return Pair(za, zb, knn_graph(za, width), knn_graph(zb, width))


def neighbourhood_rescorings(pair: Pair, cells: list, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-sample scores (cells,) and ``compare.pair_statistics``'s subsample rescorings
    (draws, 6, cells) of the neighbourhood cells (metric, k): each subsample's graphs are
    restricted once at the largest k and serve every k as a prefix (the unit tests check
    pair_statistics against brute force; this only shares subsamples between k)."""
    width = max(k for _, k in cells)
    score = np.array([METRICS[m].estimator(pair, k=k).score() for m, k in cells])
    rescored = np.empty((draws, 6, len(cells)))
    for d, subsamples in enumerate(quarter_splits(pair.n, draws, seed)):
        for j, rows in enumerate(subsamples):
            sub = pair.subsample(rows, width)
            rescored[d, j] = [METRICS[m].estimator(sub, k=k).score() for m, k in cells]
    return score, rescored


def plain_rescorings(pair: Pair, metrics: list[str], draws: int, seed: int,
                     params: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Full-sample scores (metrics,) and subsample rescorings (draws, 2, metrics: the halves) of
    metrics without neighbourhoods, by ``compare``'s own ``_subsample_draws`` on the same splits as
    ``pair_statistics`` (whose intervals are ``intervals`` of these); ``params``: as ``--params``."""
    specs = [METRICS[m] for m in metrics]
    params = {m: (params or {}).get(m, {}) for m in metrics}
    score = np.array([spec.estimator(pair, **params[spec.name]).score() for spec in specs])
    boots = _subsample_draws(pair, specs, params, {m: draws for m in metrics},
                             quarter_splits(pair.n, draws, seed))
    return score, np.stack([np.asarray(boots[m], float).reshape(draws, -1) for m in metrics], axis=-1)


def rescore_sample(rescorings, model: DataModel, n: int, seed: int, width: int, cells: list, draws: int):
    """``rescorings`` (``neighbourhood_rescorings`` or ``plain_rescorings``) of sample ``seed``."""
    return rescorings(sample_pair(model, n, seed, width), cells, draws, seed)


def saved_rescorings(path: Path | None, cells: list, draws: int, rescore) -> tuple[np.ndarray, np.ndarray]:
    """One sample's full-sample scores and first ``draws`` rescorings of ``cells``: read back from
    ``path`` when saved there (resume), else ``rescore(draws)`` and saved there."""
    if path and path.exists():
        arrays = np.load(path)
        if arrays["cells"].tolist() != np.array(cells, str).tolist() or len(arrays["rescored"]) < draws:
            raise SystemExit(f"{path}: saved for other cells or fewer than {draws} draws")
        return arrays["score"], arrays["rescored"][:draws]
    score, rescored = rescore(draws)
    if path:
        np.savez(path, score=score, rescored=rescored, cells=np.array(cells, str))
    return score, rescored


def intervals(score: np.ndarray, rescored: np.ndarray, cells: list, n: int, ci: float) -> dict:
    """The compare rule's interval of each cell (metric, k or None) from its rescorings
    (``stats.subsampling_interval``)."""
    out = {}
    for c, (m, k) in enumerate(cells):
        lo, hi = subsampling_interval(score[c], rescored[:, :, c], ci, n, k,
                                      indicator=METRICS[m].interval == "subsampling_indicator",
                                      degenerate=METRICS[m].interval == "subsampling_degenerate")
        out[(m, k)] = {"score": score[c], "ci_low": lo, "ci_high": hi}
    return out


def population(model: DataModel, n: int, cells: list, count: int, save: Path | None,
               params: dict | None = None) -> dict:
    """Scores of ``count`` further independent samples of n objects (seeds 10**6 + i), per cell:
    the population value and the score's SD, known far better than from the study's samples
    alone. Each cell's scores are saved as ``{model}_{n}_pop_{metric}_{k}.npy`` in ``save`` and
    read back (a run with more ``count`` or more cells computes only what is missing).
    ``params``: the metrics' parameters (``--params``)."""
    files = {c: save and save / f"{model.name}_{n}_pop_{c[0]}_{c[1] or '-'}.npy" for c in cells}
    got = {c: list(np.load(f)) if f and f.exists() else [] for c, f in files.items()}
    for i in range(min(len(v) for v in got.values()), count):
        need = [c for c in cells if len(got[c]) <= i]
        pair = sample_pair(model, n, 10**6 + i, max((k or 0) for _, k in need))
        for m, k in need:
            got[(m, k)].append(METRICS[m].estimator(pair, **(params or {}).get(m, {}),
                                                     **({} if k is None else {"k": k})).score())
        if save and ((i + 1) % 50 == 0 or i + 1 == count):
            for c in need:
                np.save(files[c], np.array(got[c]))
    return {c: np.array(v[:count]) for c, v in got.items()}


def row(name: str, n: int, cell, got: list, pop: np.ndarray, z: float) -> str:
    """One table row: the population value (leave-one-out mean of the other samples' scores and
    the ``pop`` scores), the score's SD over the samples and over ``pop`` (the reference SD when
    there are ``pop`` scores), the mean interval SE, SE / reference SD, the population value's
    Monte-Carlo error as a share of the mean interval half-width, the coverage, and with ``pop``
    the expected coverage mean(2 Phi(z SE_i / SD) - 1) +- its error (from the SD's), and its two
    assumptions' checks: the correlation r of SE_i with |score_i - population| and the skewness
    of the ``pop`` scores (both ~0 for a normal score whose SE is independent of its error).

    The expected coverage is the coverage of these intervals for a normal score with the
    reference SD whose SE is independent of its error: it replaces each sample's 0/1 hit by
    its probability, so its noise is that of the SD (~0.5 points at 1000 ``pop`` samples)
    instead of the binomial 1.5 points of 200 hits, which put a method with exactly 95%
    coverage outside 93-97 in one cell in seven."""
    score, lo, hi = np.array(got).T
    total = score.sum() + pop.sum()
    truth = (total - score) / (len(score) - 1 + len(pop))
    cover = np.mean((lo <= truth) & (truth <= hi))
    sd = score.std(ddof=1)
    ref = pop.std(ddof=1) if len(pop) > 1 else sd
    se = (hi - lo) / (2 * z)
    mc = ref / np.sqrt(len(score) - 1 + len(pop)) / (z * se.mean())
    expected = "-"
    if len(pop) > 1:
        t = z * se / ref
        p = np.array([2 * NormalDist().cdf(v) - 1 for v in t])
        slope = np.mean([2 * v * np.exp(-v * v / 2) / np.sqrt(2 * np.pi) for v in t])  # -d p / d ln SD
        err = np.hypot(slope / np.sqrt(2 * (len(pop) - 1)), p.std(ddof=1) / np.sqrt(len(p)))
        expected = f"{100 * p.mean():5.1f} +-{100 * err:.1f}"
        r = np.corrcoef(se, np.abs(score - truth))[0, 1]
        skew = np.mean((pop - pop.mean()) ** 3) / pop.std() ** 3
        expected += f" {r:+6.2f} {skew:+5.2f}"
    m, k = cell
    return (f"{name:9s} {n:5d} {m:13s} {'-' if k is None else k:>3} {total / (len(score) + len(pop)):11.4f} "
            f"{sd:10.4f} {ref if len(pop) > 1 else float('nan'):8.4f} {se.mean():8.4f} {se.mean() / ref:6.2f} "
            f"{mc:7.3f} {100 * cover:10.1f} {expected:>25s} {len(score):5d} {len(pop):5d}")


def study(args) -> None:
    metrics = args.metrics or list(METRICS)
    local = [m for m in metrics if METRICS[m].uses_knn]
    plain = [m for m in metrics if m not in local]
    width = graph_width(max(args.k)) if local else 0
    local_cells = [(m, k) for m in local for k in args.k]
    cells = local_cells + [(m, None) for m in plain]
    z = NormalDist().inv_cdf((1 + args.ci) / 2)
    print(f"# coverage of nominal {args.ci:.0%} intervals, {args.reps} samples per row; population value = "
          f"mean score over the other {args.reps - 1} samples{f' and {args.pop} more' if args.pop else ''} "
          f"(leave-one-out); {args.splits if local else 0} subsampling draws (neighbourhood metrics) and "
          f"{args.draws if plain else 0} (others) per interval; binomial SE of a 95% coverage = "
          f"{100 * np.sqrt(0.95 * 0.05 / args.reps):.1f} points; SD = the score's SD over the "
          f"{'--pop samples' if args.pop else 'samples'}", flush=True)
    print(f"{'model':9s} {'N':>5s} {'metric':13s} {'k':>3s} {'population':>11s} {'sd(score)':>10s} {'sd(pop)':>8s} "
          f"{'mean SE':>8s} {'SE/SD':>6s} {'pop MC':>7s} {'coverage %':>10s} {'expected %   r   skew':>25s} {'reps':>5s} "
          f"{'pop':>5s}", flush=True)
    start = time.perf_counter()
    for name in args.models:
        model = DataModel(name)
        for n in args.n:
            got = {c: [] for c in cells}
            for rep in range(args.first_rep, args.reps):
                stats = {}
                if local:  # the graphs of the sample are built only when its rescorings are not saved
                    score, rescored = saved_rescorings(
                        args.save and args.save / f"{name}_{n}_{rep}.npz", local_cells, args.splits,
                        partial(rescore_sample, neighbourhood_rescorings, model, n, rep, width, local_cells))
                    stats = intervals(score, rescored, local_cells, n, args.ci)
                if plain:
                    plain_cells = [(m, None) for m in plain]
                    score, rescored = saved_rescorings(
                        args.save and args.save / f"{name}_{n}_{rep}_plain.npz", plain_cells, args.draws,
                        partial(rescore_sample, partial(plain_rescorings, params=args.params), model, n, rep, 0,
                                plain))
                    stats.update(intervals(score, rescored, plain_cells, n, args.ci))
                for c in cells:
                    got[c].append((stats[c]["score"], stats[c]["ci_low"], stats[c]["ci_high"]))
                if args.progress and (rep + 1) % args.progress == 0 and rep + 1 < args.reps:
                    for c in cells:
                        print("  (partial) " + row(name, n, c, got[c], np.empty(0), z), flush=True)
            pop = population(model, n, cells, args.pop, args.save, args.params)
            for c in cells:
                print(row(name, n, c, got[c], pop[c], z), flush=True)
            print(f"# {name} N={n} done after {time.perf_counter() - start:.0f} s", flush=True)


def rates(args) -> None:
    """Mean and variance of every metric's score over --reps independent samples at N/8 .. N, and
    the local rate beta = log2(var(m) / var(2m)) per doubling, raw and with the factor of the
    metric's variance model divided out (``stats``): knn_share for the neighbourhood model,
    bernoulli_share of the mean score for a mean of per-object 0/1 outcomes (interval
    'subsampling_indicator'), none for a smooth statistic (1/m: beta 1)."""
    names = args.metrics or list(METRICS)
    cells = [(mt, k) for mt in names if METRICS[mt].uses_knn for k in args.k]
    cells += [(mt, None) for mt in names if not METRICS[mt].uses_knn]
    width = max((k for _, k in cells if k), default=0)
    print(f"# local rates of var(score) per doubling of m, {args.reps} samples per size; 'f' columns divide "
          "out (1 - k/m)^2, 's(1-s)' columns the mean score's Bernoulli variance", flush=True)
    for name in args.models:
        model = DataModel(name)
        for n in args.n:
            sizes = [n // 8, n // 4, n // 2, n]
            if width and sizes[0] <= width:
                raise SystemExit(f"--rates at N={n}: N/8 = {sizes[0]} objects cannot carry k = {max(args.k)}")
            var, mean = {}, {}
            for m in sizes:
                s = [[METRICS[mt].estimator(p, **args.params.get(mt, {}), **({} if k is None else {"k": k})).score()
                      for mt, k in cells]
                     for p in (sample_pair(model, m, 5000 + rep, width) for rep in range(args.reps))]
                var[m], mean[m] = np.var(s, axis=0, ddof=1), np.mean(s, axis=0)
            for i, (mt, k) in enumerate(cells):
                raw = [np.log2(var[m][i] / var[2 * m][i]) for m in sizes[:-1]]
                if METRICS[mt].interval == "subsampling_indicator":
                    share, label = {m: bernoulli_share(mean[m][i]) for m in sizes}, "s(1-s)"
                elif k is not None:
                    share, label = {m: knn_share(m, k) for m in sizes}, "f"
                else:
                    share, label = {m: 1.0 for m in sizes}, "-"
                f = [r + np.log2(share[2 * m] / share[m]) for r, m in zip(raw, sizes[:-1])]
                print(f"{name:9s} N={n:5d} {mt:9s} k={'-' if k is None else k:>3} sizes {sizes}: mean "
                      + " ".join(f"{mean[m][i]:.4g}" for m in sizes) + "; beta raw "
                      + " ".join(f"{b:5.2f}" for b in raw) + f"  {label} " + " ".join(f"{b:5.2f}" for b in f),
                      flush=True)


def cost(args) -> None:
    """Time one kNN graph build and one half-sample draw at (N, D)."""
    n, d = args.cost
    k = args.k[0]
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(n, 32, generator=g)
    za = latent @ torch.randn(32, d, generator=g) + torch.randn(n, d, generator=g)
    zb = latent @ torch.randn(32, d, generator=g) + torch.randn(n, d, generator=g)
    t = time.perf_counter()
    ga = knn_graph(za, graph_width(k))
    t_graph = time.perf_counter() - t
    pair = Pair(za, zb, ga, knn_graph(zb, graph_width(k)))
    names = [m for m in METRICS if METRICS[m].uses_knn]
    t = time.perf_counter()
    pair_statistics(pair, names, k=k, null_draws=0, subsampling_splits=args.splits, ci=0.95, seed=0)
    t_draws = time.perf_counter() - t
    print(f"N={n} D={d} k={k} ({torch.get_num_threads()} threads): one kNN graph at width {graph_width(k)} "
          f"{t_graph:.1f} s; scores + {args.splits} subsampling draws of {names}: {t_draws:.1f} s "
          f"({t_draws / max(args.splits, 1):.2f} s per draw)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["latent", "clusters"])
    ap.add_argument("--n", nargs="+", type=int, default=[1000, 3000])
    ap.add_argument("--k", nargs="+", type=int, default=[10, 50])
    ap.add_argument("--metrics", nargs="+", default=None, help="registry metrics (default: all)")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--pop", type=int, default=0,
                    help="further samples (scores only) for the population value and the score's SD, "
                         "and the expected coverage (saved in --save)")
    ap.add_argument("--splits", type=int, default=200, help="subsampling draws (2 halves + 4 quarters each) per neighbourhood interval")
    ap.add_argument("--first-rep", type=int, default=0, help="start at this sample (split a study between processes)")
    ap.add_argument("--save", type=Path, default=None,
                    help="directory for each sample's neighbourhood rescorings (resumable; a later run with the "
                         "full --reps reads them back and prints the whole table)")
    ap.add_argument("--draws", type=int, default=100, help="subsampling draws per CKA/MI interval (compare's feature_space_draws)")
    ap.add_argument("--params", type=json.loads, default={},
                    help='metric parameters beyond k, as config metrics.params, in JSON: e.g. '
                         '\'{"procrustes": {"unequal_dims": "zero_pad"}}\' (the data models\' sides differ in dimension)')
    ap.add_argument("--ci", type=float, default=0.95)
    ap.add_argument("--progress", type=int, default=0, help="print the rows so far every this many reps")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: least overhead on a busy machine)")
    ap.add_argument("--rates", action="store_true", help="local rates of the neighbourhood scores' variance")
    ap.add_argument("--cost", nargs=2, type=int, metavar=("N", "D"))
    args = ap.parse_args()
    for name, params in args.params.items():
        get_metric(name).check_params(params, f"--params {name}")
    torch.set_num_threads(args.threads)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    with threadpool_limits(args.threads):  # numpy's BLAS too: its threads tripled MI/CKNNA's cost under load
        cost(args) if args.cost else rates(args) if args.rates else study(args)


if __name__ == "__main__":
    main()
