"""Benchmarks of the metric engine (prints figures; not a unit test).

Each case runs in its own subprocess so that its peak RSS (ru_maxrss) is its own:

  mknn     MKNN of two random (N, d) embeddings: two exact kNN graphs + overlap (the engine)
  graph    one exact kNN graph
  naive    the same with the full N x N similarity matrix per side (O(N^2) memory)
  matmul   bare chunked matmul of the same shape, both sides (the floor: no selection at all)
  null     --null-draws relabelled MKNN null draws on cached graphs
  cka      linear CKA (feature space, float64 accumulation)
  data     only the random embeddings (the RSS the data itself costs)
  screen   one kNN graph in fp32 and bf16-screened (same process): wall time, GFLOP/s, candidates
           per row, and a check that the two graphs are equal; a grid over --n, --screen-d, --screen-k
  gemm     GFLOP/s of one 4096 x 4096 tile product in fp32 and bf16 (bf16 inputs and output, fp32
           accumulation: oneDNN on CPU), on one thread and on all: the ceiling of the screened sweep
  stage    paper-shaped metric stage: 4 sizes x 2 surveys, intramodal + crossmodal + self
           comparisons, each with its null, with cached graphs vs recomputing kNN per pair
  measures side by side with the references (issue 27): each of the field's measures by the
           paper authors' code (UniverseTBD/platonic-universe src/pu/metrics, platonic-rep's
           metrics.py, run from checkouts as tests/golden/make_measures_golden.py loads them) and
           by ours (samesky.metrics.measures), on the same embeddings: wall time, peak RSS over
           the RSS at the call, the two scores and their relative difference. Every call runs in
           its own subprocess under --measures-timeout and an address-space limit of
           --measures-limit-gib beyond what the process holds at the call (RLIMIT_AS), and says
           "out of time" / "out of memory" where it hits them

Usage:
  python benchmarks/bench_metrics.py --n 20000 --repeat 3
  python benchmarks/bench_metrics.py --n 102000 --cases mknn matmul cka data
  python benchmarks/bench_metrics.py --cases stage --stage-n 20000
  python benchmarks/bench_metrics.py --cases screen --n 20000 102000 --screen-d 384 1536 --screen-k 10 50
  python benchmarks/bench_metrics.py --cases measures --n 5000 20000 --pu /tmp/pu --prep /tmp/prep --ta /tmp/ta/ext
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHUNK = 4096
STAGE_DIMS = (384, 768, 1024, 1536)  # four model sizes


def embeddings(n: int, dims, seed: int = 0):
    """Random embeddings of the same n objects sharing a latent structure (non-trivial MKNN)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(n, 32, generator=g)
    out = []
    for d in dims:
        Z = latent @ torch.randn(32, d, generator=g)
        for s in range(0, n, 8192):  # noise in chunks: the data's RSS is the data, not temporaries
            Z[s : s + 8192] += torch.randn(len(Z[s : s + 8192]), d, generator=g)
        out.append(Z)
    return out


def naive_graph(Z, k):
    import torch

    X = torch.nn.functional.normalize(Z, dim=1)
    S = X @ X.T
    S.fill_diagonal_(float("-inf"))
    return torch.topk(S, k, dim=1).indices.numpy()


def bare_matmul(Z):
    """The floor: normalise, then every (CHUNK, N) block of X X^T into one reused buffer."""
    import torch

    X = torch.nn.functional.normalize(Z, dim=1)
    out = torch.empty(CHUNK, len(X))
    for s in range(0, len(X), CHUNK):
        rows = X[s : s + CHUNK]
        torch.mm(rows, X.T, out=out[: len(rows)])


def run_screen(n: int, d: int, k: int) -> dict:
    """fp32 and bf16-screened graphs of the same embedding, timed in one process, compared."""
    import logging

    import numpy as np

    from samesky.metrics.knn import default_chunk_size, knn_graph

    stats = {}

    class Grab(logging.Handler):
        def emit(self, record):
            stats.update(getattr(record, "screen", {}))

    logging.getLogger("samesky.metrics.knn").addHandler(Grab())
    logging.getLogger("samesky.metrics.knn").setLevel(logging.INFO)
    (Z,) = embeddings(n, (d,))
    b = default_chunk_size(n, __import__("torch").device("cpu"))
    flop = 2 * d * sum(min(b, n - i) * (n - i) for i in range(0, n, b))  # tiles on and above the diagonal
    out = {"gflop": flop / 1e9}
    for precision in ("fp32", "bf16-screened"):
        t, cpu = time.perf_counter(), time.process_time()
        out[precision] = knn_graph(Z, k, precision=precision)
        out[precision + "_s"], out[precision + "_cpu_s"] = time.perf_counter() - t, time.process_time() - cpu
    out["equal"] = bool(np.array_equal(out["fp32"][0], out["bf16-screened"][0])
                        and np.array_equal(out["fp32"][1], out["bf16-screened"][1]))
    del out["fp32"], out["bf16-screened"]
    return {**out, **stats}


def run_gemm(d: int, reps: int = 5) -> dict:
    """Best-of-reps GFLOP/s of a (4096 x d) @ (d x 4096) product per dtype and thread count."""
    import torch

    X = torch.randn(2 * CHUNK, d)
    out, every = {}, torch.get_num_threads()
    for threads in sorted({1, every}):
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.bfloat16):
            A, B = X[:CHUNK].to(dtype), X[CHUNK:].to(dtype)
            buffer = torch.empty(CHUNK, CHUNK, dtype=dtype)
            torch.mm(A, B.T, out=buffer)
            best = float("inf")
            for _ in range(reps):
                t = time.perf_counter()
                torch.mm(A, B.T, out=buffer)
                best = min(best, time.perf_counter() - t)
            out[f"{str(dtype)[6:]} x{threads}"] = 2 * CHUNK * CHUNK * d / best / 1e9
    return out


def run_case(case: str, n: int, d: int, k: int, draws: int) -> dict:
    """Runs inside the worker subprocess; returns timings (data generation excluded)."""
    import numpy as np

    from samesky.metrics.knn import knn_graph
    from samesky.metrics.mknn import MknnEstimator, mknn, mknn_from_graphs
    from samesky.metrics.registry import METRICS
    from samesky.metrics.stats import permutations

    if case == "null":
        rng = np.random.default_rng(0)
        ga, gb = rng.integers(0, n, (n, k)), rng.integers(0, n, (n, k))  # cost does not depend on content
        est = MknnEstimator(ga, gb, k)
        t, cpu = time.perf_counter(), time.process_time()
        for pi in permutations(n, draws, seed=0):
            est.null(pi)
        return {"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - cpu}
    Za, Zb = embeddings(n, (d, d))
    t, cpu = time.perf_counter(), time.process_time()
    out = {}
    if case == "mknn":
        out["score"] = mknn(Za, Zb, k)
    elif case == "naive":
        out["score"] = mknn_from_graphs(naive_graph(Za, k), naive_graph(Zb, k), k)
    elif case == "matmul":
        bare_matmul(Za)
        bare_matmul(Zb)
    elif case == "cka":
        out["score"] = METRICS["cka_linear"](Za, Zb)
    elif case == "graph":
        knn_graph(Za, k)
    elif case != "data":
        raise SystemExit(f"unknown case {case!r}")
    out["seconds"], out["cpu_seconds"] = time.perf_counter() - t, time.process_time() - cpu
    return out


def run_stage(n: int, k: int, draws: int, naive_draws: int) -> dict:
    """4 sizes x 2 surveys: intramodal (consecutive sizes), crossmodal (x vs hsc per size) and
    self (hsc vs hsc, the null column) comparisons, each scored with a ``draws``-draw null.

    Three ways, timed in one process: (1) the engine: every graph once, relabelled nulls;
    (2) one pair at a time, recomputing both graphs per pair but with relabelled nulls;
    (3) one pair at a time, recomputing kNN each time it is needed: both graphs per pair and the
    shuffled side's graph per null draw. (3) runs ``naive_draws`` draws of every pair; it is a
    full measurement when ``naive_draws == draws``, else a per-pair extrapolation (each draw is
    the same work: one graph of the same shape).
    """
    from samesky.metrics.knn import knn_graph
    from samesky.metrics.mknn import MknnEstimator, mknn_from_graphs
    from samesky.metrics.stats import permutations

    Z = {}
    for s, survey in enumerate(("x", "hsc")):
        for size, emb in zip(STAGE_DIMS, embeddings(n, STAGE_DIMS, seed=s)):
            Z[survey, size] = emb
    pairs = [((s, a), (s, b)) for s in ("x", "hsc") for a, b in zip(STAGE_DIMS, STAGE_DIMS[1:])]
    pairs += [(("x", d), ("hsc", d)) for d in STAGE_DIMS]
    pairs += [(("hsc", d), ("hsc", d)) for d in STAGE_DIMS]

    def null(est):
        return [est.null(pi) for pi in permutations(n, draws, seed=0)]

    t0, c0 = time.perf_counter(), time.process_time()
    graphs = {key: knn_graph(emb, k)[0] for key, emb in Z.items()}
    t_graphs = time.perf_counter() - t0
    engine = {}
    for a, b in pairs:
        est = MknnEstimator(graphs[a], graphs[b], k)
        engine[a, b] = (est.score(), null(est))
    cached, cached_cpu = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    recompute_graphs = 0.0
    for a, b in pairs:
        t = time.perf_counter()
        ga = knn_graph(Z[a], k)[0]
        gb = ga if a == b else knn_graph(Z[b], k)[0]
        recompute_graphs += time.perf_counter() - t
        est = MknnEstimator(ga, gb, k)
        est.score()
        null(est)
    recompute, recompute_cpu = time.perf_counter() - t0, time.process_time() - c0

    # (3): the first naive_draws draws of every pair, checked draw for draw against the engine.
    naive_measured, naive_total, naive_cpu, mismatches = 0.0, 0.0, 0.0, 0
    for a, b in pairs:
        t, c = time.perf_counter(), time.process_time()
        ga = knn_graph(Z[a], k)[0]
        gb = ga if a == b else knn_graph(Z[b], k)[0]
        score = mknn_from_graphs(ga, gb, k)
        t_pair, c_pair = time.perf_counter() - t, time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        shuffled = [mknn_from_graphs(ga, knn_graph(Z[b][pi], k)[0], k)
                    for pi in permutations(n, naive_draws, seed=0)]
        t_draws, c_draws = time.perf_counter() - t, time.process_time() - c
        mismatches += (score != engine[a, b][0]) + sum(
            x != y for x, y in zip(shuffled, engine[a, b][1][:naive_draws]))
        naive_measured += t_pair + t_draws
        naive_total += t_pair + t_draws * draws / max(naive_draws, 1)
        naive_cpu += c_pair + c_draws * draws / max(naive_draws, 1)
    return {"comparisons": len(pairs), "graphs_cached": len(graphs), "cached_s": cached,
            "cached_graph_s": t_graphs, "recompute_s": recompute, "recompute_graph_s": recompute_graphs,
            "cached_cpu_s": cached_cpu, "recompute_cpu_s": recompute_cpu, "naive_draws": naive_draws,
            "naive_measured_s": naive_measured, "naive_s": naive_total, "naive_cpu_s": naive_cpu,
            "naive_mismatches": int(mismatches)}


def worker(argv) -> None:
    case, n, d, k, draws, naive_draws = argv[0], *map(int, argv[1:6])
    import torch

    if case == "stage":
        out = run_stage(n, k, draws, naive_draws)
    elif case == "screen":
        out = run_screen(n, d, k)
    elif case == "gemm":
        out = run_gemm(d)
    else:
        out = run_case(case, n, d, k, draws)
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["threads"] = torch.get_num_threads()
    print(json.dumps(out))


def run_worker(worker_args: list[str], timeout: float | None = None) -> dict:
    """Run this file as a worker (a fresh process: its peak memory is its own) and read the JSON of
    its last line; on failure {'error': 'out of time' | 'out of memory' | its last stderr line}."""
    try:
        proc = subprocess.run([sys.executable, __file__, *worker_args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "out of time"}
    if proc.returncode:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        return {"error": "out of memory" if "MemoryError" in last or proc.returncode == -9 else last}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spawn(case, n, d, k, draws, naive_draws=0) -> dict:
    return run_worker(["--worker", case, *map(str, (n, d, k, draws, naive_draws))])


def screen(args) -> None:
    """fp32 vs bf16-screened kNN graphs over the grid N x d x k, one subprocess per cell."""
    print(f"\n{'N':>7} {'d':>5} {'k':>3} {'fp32 s':>8} {'GFLOP/s':>8} {'screen s':>8} {'GFLOP/s':>8} "
          f"{'speedup':>7} {'CPU s fp32/screen':>17} {'band 2E':>8} {'cand/row':>8} {'redone':>6} {'equal':>5} "
          f"{'RSS MB':>7}", flush=True)
    for n in args.n:
        for d in args.screen_d:
            for k in args.screen_k:
                r = spawn("screen", n, d, k, 0)
                if "error" in r:
                    print(f"{n:7d} {d:5d} {k:3d} failed: {r['error']}", flush=True)
                    continue
                f, s = r["fp32_s"], r["bf16-screened_s"]
                print(f"{n:7d} {d:5d} {k:3d} {f:8.1f} {r['gflop'] / f:8.0f} {s:8.1f} {r['gflop'] / s:8.0f} "
                      f"{f / s:7.2f} {r['fp32_cpu_s']:8.0f}/{r['bf16-screened_cpu_s']:<8.0f} {r.get('band', float('nan')):8.4f} {r.get('candidates_per_row', float('nan')):8.1f} "
                      f"{r.get('rows_redone', -1):6d} {str(r['equal']):>5} {r['maxrss_mb']:7.0f}", flush=True)


# measure -> (our function's parameters, the reference: (source, module, function, parameters)).
# Our module and function are bench_measures.CASES'; the reference calls and parameters are those
# of tests/golden/make_measures_golden.py's default variant of each measure (its loaders are
# imported from it). platonic-rep's measures get L2-normalised rows (as its compute_score feeds
# them) and ours normalize_rows=True; every other measure gets the raw rows on both sides.
SIDE_BY_SIDE = {
    "jaccard": ({"k": 10}, ("pu", "neighbors", "jaccard", {"k": 10})),
    "rsa_spearman": ({"method": "spearman", "metric": "cosine"}, ("pu", "neighbors", "rsa", {"method": "spearman", "metric": "cosine"})),
    "rsa_pearson": ({"method": "pearson", "metric": "cosine"}, ("pu", "neighbors", "rsa", {"method": "pearson", "metric": "cosine"})),
    "rbf_cka": ({}, ("pu", "kernel", "cka", {"kernel": "rbf"})),
    "mmd": ({}, ("pu", "kernel", "mmd", {"kernel": "rbf"})),
    "svcca": ({"keep": 0.99}, ("pu", "cca", "svcca", {"threshold": 0.99})),
    "pwcca": ({"keep": 0.99}, ("pu", "cca", "pwcca", {"threshold": 0.99})),
    "procrustes": ({}, ("pu", "geometric", "procrustes", {})),
    "cosine_matched": ({}, ("pu", "geometric", "cosine_similarity", {})),
    "frechet": ({}, ("pu", "geometric", "frechet", {})),
    "linear_r2": ({"alpha": 1.0, "cv": None}, ("pu", "regression", "linear_r2", {"alpha": 1.0, "cv": None})),
    "tucker_congruence": ({}, ("pu", "spectral", "tucker_congruence", {})),
    "eigenspectrum": ({"normalize": True}, ("pu", "spectral", "eigenspectrum", {})),
    "riemannian": ({"metric": "log_euclidean"}, ("pu", "spectral", "riemannian", {"metric": "log_euclidean"})),
    "gaussian_kl": ({}, ("pu", "information", "kl_divergence", {})),
    "gaussian_js": ({}, ("pu", "information", "js_divergence", {})),
    "ksg_mutual_information": ({"k": 3}, ("pu", "information", "mutual_information", {"k": 3})),
    "svcca_cca10": ({"keep": 10, "standardize": True, "eps": 0.0}, ("platonic-rep", None, "svcca", {"cca_dim": 10})),
    "cycle_knn": ({"k": 10}, ("platonic-rep", None, "cycle_knn", {"topk": 10})),
    "lcs_knn": ({"k": 10}, ("platonic-rep", None, "lcs_knn", {"topk": 10})),
    "edit_distance_knn": ({"k": 10}, ("platonic-rep", None, "edit_distance_knn", {"topk": 10})),
}
MEDIAN_MEASURES = ("rbf_cka", "mmd")  # median-heuristic bandwidth: exact up to kernel.EXACT_MEDIAN_PAIRS pairs
SAMPLED_MEDIAN_PAIRS = 2**18  # ours beyond that: the median of this many random pairs (pu: always exact)
OURS_CASE = {"rsa_spearman": "rsa_spearman", "rsa_pearson": "rsa_pearson", "svcca_cca10": "svcca"}


def _rss_gib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _vm_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def measure_worker(side: str, name: str, n: int, d: int, limit_gib: float, checkouts: dict) -> None:
    """One measure by one side on the seeded (n, d) pair; prints a JSON line."""
    import importlib

    import numpy as np
    import torch

    here = Path(__file__).resolve().parent
    ours_params, (source, module, fn_name, ref_params) = SIDE_BY_SIDE[name]
    prep = source == "platonic-rep"
    if side == "ours":
        sys.path.insert(0, str(here))
        from bench_measures import CASES

        fn = getattr(importlib.import_module(f"samesky.metrics.measures.{CASES[OURS_CASE.get(name, name)][0]}"),
                     CASES[OURS_CASE.get(name, name)][1])
        from samesky.metrics.measures.kernel import EXACT_MEDIAN_PAIRS

        pooled = 2 * n if name == "mmd" else n
        if name in MEDIAN_MEASURES and pooled * (pooled - 1) // 2 > EXACT_MEDIAN_PAIRS:
            ours_params = {**ours_params, "median_sample": SAMPLED_MEDIAN_PAIRS}  # beyond it ours refuses the exact median
        call = lambda X, Y: fn(X, Y, normalize_rows=prep, **ours_params)  # noqa: E731
    else:
        sys.path.insert(0, str(here.parent / "tests" / "golden"))
        import make_measures_golden as golden

        if prep:
            metrics = golden.load_platonic_rep(Path(checkouts["prep"]), golden.torchaudio_edit_distance(Path(checkouts["ta"])))
            ref = getattr(metrics, fn_name)
            call = lambda X, Y: ref(*(torch.nn.functional.normalize(torch.from_numpy(Z), dim=1)  # noqa: E731
                                      for Z in (X, Y)), **ref_params)
        else:
            ref = getattr(golden.load_pu(Path(checkouts["pu"]))[module], fn_name)
            call = lambda X, Y: ref(X, Y, **ref_params)  # noqa: E731
    X, Y = (Z.numpy() for Z in embeddings(n, (d, d)))
    torch.manual_seed(0)
    np.random.seed(0)
    resource.setrlimit(resource.RLIMIT_AS, (_vm_bytes() + int(limit_gib * 2**30), resource.RLIM_INFINITY))
    base = _rss_gib()
    t0 = time.perf_counter()
    try:
        value = float(call(X, Y))
    except MemoryError:
        print(json.dumps({"error": "out of memory"}))
        return
    except RuntimeError as e:  # torch's allocator reports a refused allocation as a RuntimeError
        if "alloc" not in str(e).lower():
            raise
        print(json.dumps({"error": "out of memory"}))
        return
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20 - base
    print(json.dumps({"value": value, "wall_s": wall, "peak_gib": peak}))


def spawn_measure(side, name, n, d, args) -> dict:
    out = run_worker(["--measure-worker", side, name, str(n), str(d), str(args.measures_limit_gib),
                      args.pu, args.prep, args.ta], timeout=args.measures_timeout)
    return {"error": out["error"][:60]} if "error" in out else out  # an error fits its table cell


def side_by_side(args) -> None:
    """The measures table: reference (pu or platonic-rep) and ours per measure, per N."""
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; limits: {args.measures_timeout} s, {args.measures_limit_gib} GiB address space "
          f"beyond the process at the call; peak = ru_maxrss - RSS at the call (GiB)", flush=True)
    from samesky.metrics.measures.kernel import EXACT_MEDIAN_PAIRS

    for n in args.n:
        print(f"\nN = {n}, d = {args.d} (float32 inputs, a shared 32-d latent seen by both sides plus noise)")
        print(f"{'measure':24s} {'ref':>12s} {'ref s':>8s} {'ref GiB':>8s} {'ours s':>8s} {'ours GiB':>8s} "
              f"{'ref score':>14s} {'our score':>14s} {'rel diff':>9s}", flush=True)
        names = args.measures or list(SIDE_BY_SIDE)
        for name in names:
            ours = spawn_measure("ours", name, n, args.d, args) if args.sides != "ref" else {"error": "not run"}
            ref = spawn_measure("ref", name, n, args.d, args) if args.sides != "ours" else {"error": "not run"}

            def cells(r):
                if "error" in r:
                    return f"{r['error'][:17]:>17s}", "", ""
                return f"{r['wall_s']:8.2f}", f"{r['peak_gib']:8.3f}", f"{r['value']:14.8g}"

            rt, rm, rv = cells(ref)
            ot, om, ov = cells(ours)
            rel = ""
            if "value" in ref and "value" in ours:
                rel = f"{abs(ours['value'] - ref['value']) / max(abs(ref['value']), 1e-300):9.1e}"
            source = SIDE_BY_SIDE[name][1][0]
            pooled = 2 * n if name == "mmd" else n
            if name in MEDIAN_MEASURES and pooled * (pooled - 1) // 2 > EXACT_MEDIAN_PAIRS:
                name += "*"
            print(f"{name:24s} {source:>12s} {rt:>8s} {rm:>8s} {ot:>8s} {om:>8s} {rv:>14s} {ov:>14s} {rel:>9s}",
                  flush=True)
    print(f"* ours beyond its exact range ({EXACT_MEDIAN_PAIRS:,} pairs): the median-heuristic bandwidth from "
          f"{SAMPLED_MEDIAN_PAIRS:,} random pairs (median_sample); pu's always from every pair", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--measure-worker":
        side, name, n, d, limit, pu, prep, ta = sys.argv[2:10]
        return measure_worker(side, name, int(n), int(d), float(limit), {"pu": pu, "prep": prep, "ta": ta})
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[20_000, 102_000])
    p.add_argument("--d", type=int, default=1536)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--cases", nargs="+", default=["data", "mknn", "naive", "matmul", "null", "cka"])
    p.add_argument("--repeat", type=int, default=1, help="runs per case; the median is reported")
    p.add_argument("--null-draws", type=int, default=1000)
    p.add_argument("--naive-max-gb", type=float, default=8.0, help="skip naive when N^2 float32 exceeds this")
    p.add_argument("--stage-n", type=int, default=20_000)
    p.add_argument("--screen-d", type=int, nargs="+", default=[384, 1536])
    p.add_argument("--screen-k", type=int, nargs="+", default=[10, 50])
    p.add_argument("--naive-draws", type=int, default=2,
                   help="stage: null draws per pair actually run with kNN recomputed (= --null-draws: no extrapolation)")
    p.add_argument("--pu", default="/tmp/pu", help="measures: a checkout of UniverseTBD/platonic-universe")
    p.add_argument("--prep", default="/tmp/prep", help="measures: a checkout of minyoungg/platonic-rep")
    p.add_argument("--ta", default="/tmp/ta/ext", help="measures: torchaudio 2.11.0's wheel, unzipped")
    p.add_argument("--measures", nargs="*", help="measures: only these (of SIDE_BY_SIDE)")
    p.add_argument("--measures-timeout", type=float, default=300.0, help="measures: seconds per call")
    p.add_argument("--measures-limit-gib", type=float, default=8.0, help="measures: address space per call")
    p.add_argument("--sides", choices=("both", "ours", "ref"), default="both",
                   help="measures: run ours, the reference or both (ours first, as each measure's pair)")
    args = p.parse_args()

    if "measures" in args.cases:
        side_by_side(args)
        args.cases = [c for c in args.cases if c != "measures"]
        if not args.cases:
            return
    if set(args.cases) - {"stage", "screen", "gemm"}:
        print(f"{'case':8} {'N':>7} {'d':>5} {'median s':>9} {'min s':>7} {'CPU s':>7} {'runs':>20} {'peak RSS MB':>12}  note",
              flush=True)
    for n in args.n if set(args.cases) - {"stage", "screen", "gemm"} else []:
        medians = {}
        for case in args.cases:
            if case in ("stage", "screen", "gemm"):
                continue
            if case == "naive" and 2 * n * n * 4 / 2**30 > args.naive_max_gb:
                print(f"{case:8} {n:7d} {args.d:5d} {'-':>9} {'-':>7} {'-':>7} {'':>20} {'-':>12}  N x N matrices do not fit "
                      f"({2 * n * n * 4 / 2**30:.0f} GB > --naive-max-gb)", flush=True)
                continue
            runs = [spawn(case, n, args.d, args.k, args.null_draws) for _ in range(args.repeat)]
            if "error" in runs[0]:
                print(f"{case:8} {n:7d} {args.d:5d} failed: {runs[0]['error']}", flush=True)
                continue
            secs = [r["seconds"] for r in runs]
            medians[case] = statistics.median(secs)
            cpu = statistics.median(r["cpu_seconds"] for r in runs)
            note = f"score={runs[0]['score']:.4f}" if "score" in runs[0] else ""
            if case == "null":
                note = f"{args.null_draws} draws, {1e3 * medians[case] / args.null_draws:.2f} ms/draw"
            print(f"{case:8} {n:7d} {args.d:5d} {medians[case]:9.2f} {min(secs):7.2f} {cpu:7.1f} "
                  f"{','.join(f'{s:.1f}' for s in secs):>20} "
                  f"{max(r['maxrss_mb'] for r in runs):12.0f}  {note} (threads={runs[0]['threads']})", flush=True)
        if "mknn" in medians and "matmul" in medians:
            print(f"  N={n}: mknn / bare matmul = {medians['mknn'] / medians['matmul']:.2f} "
                  f"(throughput {medians['matmul'] / medians['mknn']:.0%} of the floor)", flush=True)
        if "mknn" in medians and "naive" in medians:
            print(f"  N={n}: naive / mknn = {medians['naive'] / medians['mknn']:.2f}", flush=True)
        if "mknn" in medians and "null" in medians:
            print(f"  N={n}: {args.null_draws} null draws / one kNN graph = "
                  f"{medians['null'] / (medians['mknn'] / 2):.2f}", flush=True)
    if "gemm" in args.cases:
        for d in args.screen_d:
            r = spawn("gemm", 0, d, 0, 0)
            print(f"gemm 4096 x {d} x 4096 GFLOP/s: " + ", ".join(f"{key} {v:.0f}" for key, v in r.items()
                                                                 if key not in ("maxrss_mb", "threads")), flush=True)
    if "screen" in args.cases:
        screen(args)
    if "stage" in args.cases:
        r = spawn("stage", args.stage_n, 0, args.k, args.null_draws, min(args.naive_draws, args.null_draws))
        if "error" in r:
            print(f"stage failed: {r['error']}")
            return
        print(f"\nstage N={args.stage_n}, d={STAGE_DIMS} x 2 surveys, {r['comparisons']} comparisons, "
              f"{args.null_draws}-draw null each (peak RSS {r['maxrss_mb']:.0f} MB)")
        print(f"  cached graphs ({r['graphs_cached']} computed once): {r['cached_s']:8.1f} s wall, "
              f"{r['cached_cpu_s']:.1f} s CPU (graphs {r['cached_graph_s']:.1f} s wall)")
        print(f"  recompute kNN per pair, relabelled null: {r['recompute_s']:8.1f} s wall, "
              f"{r['recompute_cpu_s']:.1f} s CPU (graphs {r['recompute_graph_s']:.1f} s wall)  -> "
              f"{r['recompute_s'] / r['cached_s']:.2f}x wall, {r['recompute_cpu_s'] / r['cached_cpu_s']:.2f}x CPU")
        how = ("measured in full" if r["naive_draws"] == args.null_draws else
               f"{r['naive_draws']} draws per pair measured ({r['naive_measured_s']:.0f} s), scaled to {args.null_draws}")
        print(f"  recompute kNN each time (per pair and per null draw; {how}): {r['naive_s']:10.0f} s wall, "
              f"{r['naive_cpu_s']:.0f} s CPU  -> {r['naive_s'] / r['cached_s']:.0f}x wall, "
              f"{r['naive_cpu_s'] / r['cached_cpu_s']:.0f}x CPU")
        print(f"  scores (and null draws) where recomputing differs from the engine: {r['naive_mismatches']}")

if __name__ == "__main__":
    main()
