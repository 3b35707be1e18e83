"""Golden values of the field's measures from the references' own code (run from checkouts;
nothing is copied into the project). Makes tests/golden/measures.npz and measures.json.

    git --git-dir=/work/.mirror/UniverseTBD+platonic-universe/repo worktree add /tmp/pu HEAD
    git --git-dir=/work/.mirror/minyoungg+platonic-rep/repo worktree add /tmp/prep HEAD
    git --git-dir=/work/.mirror/ahwillia+netrep/repo worktree add /tmp/netrep HEAD
    pip download --no-deps torchaudio==2.11.0 && unzip it to /tmp/ta/ext   (edit_distance only)
    python tests/golden/make_measures_golden.py /tmp/pu /tmp/prep /tmp/netrep /tmp/ta/ext

in an environment with torch==2.13.0, numpy, scipy, scikit-learn, tqdm and the PyPI oracles dcor,
rsatoolbox, statsmodels, editdistance.

Inputs (seeded): N=200 objects, a shared 6-d latent seen by A (d=24), B (d=16) and C (d=24),
each with its own noise and offset; pairs "ab" (unequal dimensions) and "ac" (equal). Each
reference runs on the raw rows ("raw") and on L2-normalised rows ("unit", as platonic-rep's
compute_score feeds its metrics); the project's measure gets the raw rows and
``normalize_rows`` for "unit". measures.json lists, per key, the reference (repository, commit,
file, function), its parameters, the project's function and parameters, and the tolerance.
"""
import ast
import contextlib
import importlib.util
import json
import subprocess
import sys
import types
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
N, SEED = 200, 27
TOL = 1e-10  # default tolerance (on |ours - golden| / max(1, |golden|)): float64 references
F32 = "the reference averages in float32 (.float().mean()): its value is the float64 mean rounded to float32"


def commit_of(path: Path) -> str:
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def load_pu(checkout: Path):
    """pu's metric modules without its package __init__ (which pulls polars and the models)."""
    for name, path in (("pu", checkout / "src/pu"), ("pu.metrics", checkout / "src/pu/metrics")):
        mod = types.ModuleType(name)
        mod.__path__ = [str(path)]
        sys.modules[name] = mod
    import importlib

    return {m: importlib.import_module(f"pu.metrics.{m}")
            for m in ("_base", "neighbors", "kernel", "cca", "geometric", "regression", "spectral", "information")}


def torchaudio_edit_distance(ext: Path):
    """torchaudio's own ``edit_distance`` (pure Python) from its wheel: the wheel's compiled
    library does not load with torch 2.13, so the one function is executed from its source."""
    src = (ext / "torchaudio/functional/functional.py").read_text()
    fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == "edit_distance")
    scope = {"Sequence": list, "torch": torch}  # its decorator is torch.jit.unused
    exec(compile(ast.Module([fn], []), "torchaudio/functional/functional.py", "exec"), scope)
    return scope["edit_distance"]


def load_platonic_rep(checkout: Path, edit_distance):
    audio = types.ModuleType("torchaudio")
    audio.functional = types.ModuleType("torchaudio.functional")
    audio.functional.edit_distance = edit_distance
    sys.modules["torchaudio"], sys.modules["torchaudio.functional"] = audio, audio.functional
    spec = importlib.util.spec_from_file_location("platonic_rep_metrics", checkout / "metrics.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.AlignmentMetrics


def inputs() -> dict:
    rng = np.random.default_rng(SEED)
    latent = rng.standard_normal((N, 6)) * np.array([3, 2, 1.5, 1, 0.7, 0.5])

    def view(d, noise, offset):
        return latent @ rng.standard_normal((6, d)) + noise * rng.standard_normal((N, d)) + offset * rng.standard_normal(d)

    return {"A": view(24, 0.8, 1.0), "B": view(16, 1.2, 0.5), "C": view(24, 1.0, 2.0)}


MEDIAN = ("pu's median heuristic takes sq_dists[sq_dists > 0] of the full matrix, which keeps the diagonal "
          "entries that rounding leaves positive (68 of 200 here), shifting the median by ~1e-3 relative; the "
          "project takes the median over distinct pairs (checked to 1e-10 by the *_pdist keys)")


def median_gamma(Z):
    from scipy.spatial.distance import pdist

    return 1.0 / (2 * np.median(pdist(Z)) ** 2)


def cka_of_kernels(pu, K):
    """pu kernel.py:17 cka's own steps after its kernel matrices (center_gram, traces)."""
    K1, K2 = pu["_base"].center_gram(K[0]), pu["_base"].center_gram(K[1])
    return np.trace(K1 @ K2) / np.sqrt(np.trace(K1 @ K1) * np.trace(K2 @ K2))


@contextlib.contextmanager
def exact_svd_lowrank():
    """torch.svd_lowrank(A, q) replaced by the exact rank-q truncated SVD."""
    original = torch.svd_lowrank

    def exact(A, q=6, niter=2, M=None):
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        return U[:, :q], S[:q], Vh[:q].mH

    torch.svd_lowrank = exact
    try:
        yield
    finally:
        torch.svd_lowrank = original


def unit(Z):
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def main(pu_dir: str, prep_dir: str, netrep_dir: str, torchaudio_ext: str) -> None:
    pu_dir, prep_dir, netrep_dir = Path(pu_dir), Path(prep_dir), Path(netrep_dir)
    pu = load_pu(pu_dir)
    ted = torchaudio_edit_distance(Path(torchaudio_ext))
    prep = load_platonic_rep(prep_dir, ted)
    sys.path.insert(0, str(netrep_dir))
    import dcor
    import editdistance
    import rsatoolbox
    import sklearn
    from netrep.metrics import LinearMetric
    from statsmodels.multivariate.cancorr import CanCorr

    Z = inputs()
    out = {f"input_{k}": v for k, v in Z.items()}
    meta = {"inputs": {"N": N, "seed": SEED, "views": {k: list(v.shape) for k, v in Z.items()}}, "golden": {}}
    refs = {
        "pu": {"repo": "UniverseTBD/platonic-universe", "commit": commit_of(pu_dir)},
        "platonic-rep": {"repo": "minyoungg/platonic-rep", "commit": commit_of(prep_dir)},
        "netrep": {"repo": "ahwillia/netrep", "commit": commit_of(netrep_dir)},
        **{name: {"pypi": f"{name}=={version(name)}"} for name in ("dcor", "rsatoolbox", "statsmodels")},
        "torchaudio": {"pypi": "torchaudio==2.11.0", "function": "torchaudio.functional.edit_distance"},
        "_env": {"torch": torch.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__},
    }
    meta["references"] = refs

    def record(measure, pair, norm, variant, value, ref, where, ref_params, params, tol=TOL, note=None):
        key = f"{measure}/{pair}/{norm}/{variant}"
        out[key] = np.asarray(value, dtype=np.float64)
        meta["golden"][key] = {"measure": measure, "pair": pair, "normalize_rows": norm == "unit",
                               "reference": ref, "where": where, "reference_params": ref_params,
                               "params": params, "tol": tol, **({"note": note} if note else {})}
        print(f"{key:50s} {float(value): .12f}")

    for pair in ("ab", "ac"):
        X0, Y0 = Z["A"], Z["B" if pair == "ab" else "C"]
        equal = pair == "ac"
        for norm in ("raw", "unit"):
            X, Y = (X0, Y0) if norm == "raw" else (unit(X0), unit(Y0))
            tx, ty = torch.from_numpy(X), torch.from_numpy(Y)

            def rec(measure, variant, value, ref, where, ref_params, params, pair=pair, norm=norm, **kw):
                record(measure, pair, norm, variant, value, ref, where, ref_params, params, **kw)

            # --- pu: neighbours.py
            rec("jaccard", "k10", pu["neighbors"].jaccard(X, Y, k=10), "pu", "src/pu/metrics/neighbors.py:85 jaccard",
                {"k": 10}, {"k": 10})
            for method in ("spearman", "pearson"):
                for metric in ("cosine", "euclidean"):
                    rec("rsa", f"{method}_{metric}", pu["neighbors"].rsa(X, Y, method=method, metric=metric), "pu",
                        "src/pu/metrics/neighbors.py:131 rsa", {"method": method, "metric": metric},
                        {"method": method, "metric": metric})
            # rsatoolbox as a second oracle: its euclidean RDM is the squared distance / d
            rdms = [rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(M), method="euclidean") for M in (X, Y)]
            rec("rsa", "spearman_euclidean_rsatoolbox",
                rsatoolbox.rdm.compare(rdms[0], rdms[1], method="spearman")[0, 0], "rsatoolbox",
                "rsatoolbox.rdm.compare(method='spearman') of calc_rdm(method='euclidean')", {},
                {"method": "spearman", "metric": "euclidean"})
            rec("rsa", "pearson_sqeuclidean_rsatoolbox",
                rsatoolbox.rdm.compare(rdms[0], rdms[1], method="corr")[0, 0], "rsatoolbox",
                "rsatoolbox.rdm.compare(method='corr') of calc_rdm(method='euclidean')", {},
                {"method": "pearson", "metric": "sqeuclidean"})
            # --- pu: kernel.py
            rec("rbf_cka", "median", pu["kernel"].cka(X, Y, kernel="rbf"), "pu", "src/pu/metrics/kernel.py:17 cka",
                {"kernel": "rbf", "gamma": None}, {}, tol=1e-4, note=MEDIAN)
            # pu's own cka at the median over distinct pairs (scipy's pdist): the project's default
            K = [pu["_base"].rbf_kernel(M, gamma=median_gamma(M)) for M in (X, Y)]
            rec("rbf_cka", "median_pdist", cka_of_kernels(pu, K), "pu",
                "src/pu/metrics/_base.py:91 center_gram and kernel.py:17 cka's formula on _base.py:106 "
                "rbf_kernel(Z, gamma=1/(2 median(scipy pdist)^2)) per side", {"gamma": "median over distinct pairs"}, {})
            rec("rbf_cka", "gamma0.05", pu["kernel"].cka(X, Y, kernel="rbf", gamma=0.05), "pu",
                "src/pu/metrics/kernel.py:17 cka", {"kernel": "rbf", "gamma": 0.05}, {"gamma": 0.05})
            if equal:
                rec("mmd", "median", pu["kernel"].mmd(X, Y, kernel="rbf"), "pu", "src/pu/metrics/kernel.py:71 mmd",
                    {"kernel": "rbf", "gamma": None}, {}, tol=1e-4, note=MEDIAN)
                rec("mmd", "median_pdist", pu["kernel"].mmd(X, Y, kernel="rbf", gamma=median_gamma(np.vstack([X, Y]))),
                    "pu", "src/pu/metrics/kernel.py:71 mmd with gamma = 1/(2 median(scipy pdist of the pooled rows)^2)",
                    {"kernel": "rbf", "gamma": "median over distinct pooled pairs"}, {})
                rec("mmd", "gamma0.05", pu["kernel"].mmd(X, Y, kernel="rbf", gamma=0.05), "pu",
                    "src/pu/metrics/kernel.py:71 mmd", {"kernel": "rbf", "gamma": 0.05}, {"gamma": 0.05})
            # --- pu: cca.py
            for keep in (0.99, 0.9):
                rec("svcca", f"keep{keep}", pu["cca"].svcca(X, Y, threshold=keep), "pu",
                    "src/pu/metrics/cca.py:96 svcca", {"threshold": keep}, {"keep": keep})
                rec("pwcca", f"keep{keep}", pu["cca"].pwcca(X, Y, threshold=keep), "pu",
                    "src/pu/metrics/cca.py:138 pwcca", {"threshold": keep}, {"keep": keep})
            # platonic-rep's svcca: randomised svd_lowrank and sklearn's iterative CCA (tol 1e-6)
            torch.manual_seed(0)
            np.random.seed(0)
            rec("svcca", "platonic_rep_cca10", prep.svcca(tx, ty, cca_dim=10), "platonic-rep", "metrics.py:129 svcca",
                {"cca_dim": 10}, {"keep": 10, "standardize": True, "eps": 0.0}, tol=5e-2,
                note="as published: torch.svd_lowrank (randomised, niter=2) only approximates the top-10 "
                     "subspace (3e-2 off here); the project computes the exact value, checked below")
            np.random.seed(0)
            with exact_svd_lowrank():
                value = prep.svcca(tx, ty, cca_dim=10)
            rec("svcca", "platonic_rep_cca10_exact_svd", value, "platonic-rep",
                "metrics.py:129 svcca with torch.svd_lowrank replaced by the exact truncated SVD",
                {"cca_dim": 10}, {"keep": 10, "standardize": True, "eps": 0.0}, tol=1e-6,
                note="sklearn's CCA (NIPALS) iterates to tol 1e-6 and 1e-10 noise is added to its variates")
            # mean canonical correlation: statsmodels' CanCorr (exact, QR/SVD)
            rec("mean_cca", "statsmodels", np.mean(CanCorr(Y, X).cancorr), "statsmodels",
                "statsmodels.multivariate.cancorr.CanCorr(Y, X).cancorr, mean", {}, {})
            # --- pu: geometric.py
            if equal:
                rec("procrustes", "pu", pu["geometric"].procrustes(X, Y), "pu",
                    "src/pu/metrics/geometric.py:12 procrustes", {}, {})
                rec("cosine_matched", "pu", pu["geometric"].cosine_similarity(X, Y), "pu",
                    "src/pu/metrics/geometric.py:59 cosine_similarity", {}, {})
            # netrep as Procrustes' second oracle (and for zero-padding): euclidean residual after
            # the best rotation of the centred, Frobenius-normalised sides
            Xc, Yc = X - X.mean(0), Y - Y.mean(0)
            Xc, Yc = Xc / np.linalg.norm(Xc), Yc / np.linalg.norm(Yc)
            rec("procrustes", "netrep_zero_pad",
                LinearMetric(alpha=1.0, zero_pad=True, score_method="euclidean").fit_score(Xc, Yc), "netrep",
                "netrep/metrics/linear.py:15 LinearMetric(alpha=1, zero_pad=True, score_method='euclidean') "
                "on centred, Frobenius-normalised rows", {"alpha": 1.0}, {"unequal_dims": "zero_pad"})
            rec("frechet", "pu", pu["geometric"].frechet(X, Y), "pu", "src/pu/metrics/geometric.py:89 frechet",
                {}, {}, **({} if equal else {"tol": 1e-8, "note": "pu takes scipy.linalg.sqrtm of the singular "
                                                                  "zero-padded covariance, accurate to ~1e-9 there"}))
            for alpha in (1.0, 0.5, 0.0):
                rec("shape_angular", f"alpha{alpha}",
                    LinearMetric(alpha=alpha, center_columns=True, zero_pad=True, score_method="angular").fit_score(X, Y),
                    "netrep", "netrep/metrics/linear.py:15 LinearMetric", {"alpha": alpha, "center_columns": True,
                                                                          "zero_pad": True, "score_method": "angular"},
                    {"alpha": alpha})
            # --- pu: regression.py
            for cv in (None, 5):
                rec("linear_r2", f"cv{cv}", pu["regression"].linear_r2(X, Y, alpha=1.0, cv=cv), "pu",
                    "src/pu/metrics/regression.py:13 linear_r2", {"alpha": 1.0, "cv": cv}, {"alpha": 1.0, "cv": cv})
                rec("bidirectional_linear_r2", f"cv{cv}",
                    pu["regression"].bidirectional_linear_r2(X, Y, alpha=1.0, cv=cv), "pu",
                    "src/pu/metrics/regression.py:54 bidirectional_linear_r2", {"alpha": 1.0, "cv": cv},
                    {"alpha": 1.0, "cv": cv})
            # --- pu: spectral.py
            rec("eigenspectrum", "pu", pu["spectral"].eigenspectrum(X, Y), "pu",
                "src/pu/metrics/spectral.py:60 eigenspectrum", {"normalize": True}, {"normalize": True})
            if equal:
                rec("tucker_congruence", "pu", pu["spectral"].tucker_congruence(X, Y), "pu",
                    "src/pu/metrics/spectral.py:12 tucker_congruence", {}, {})
                for metric in ("log_euclidean", "affine_invariant"):
                    rec("riemannian", metric, pu["spectral"].riemannian(X, Y, metric=metric), "pu",
                        "src/pu/metrics/spectral.py:123 riemannian", {"metric": metric}, {"metric": metric},
                        tol=1e-11, note="pu takes scipy.linalg.logm (Schur-Pade), the project an eigendecomposition")
                # --- pu: information.py
                rec("gaussian_kl", "pu", pu["information"].kl_divergence(X, Y), "pu",
                    "src/pu/metrics/information.py:39 kl_divergence", {}, {}, tol=1e-12,
                    note="covariances + 1e-6 I are inverted; relative rounding ~cond * 1e-16")
                rec("gaussian_js", "pu", pu["information"].js_divergence(X, Y), "pu",
                    "src/pu/metrics/information.py:93 js_divergence", {}, {}, tol=1e-12,
                    note="covariances + 1e-6 I are inverted; relative rounding ~cond * 1e-16")
            rec("ksg_mutual_information", "k3", pu["information"].mutual_information(X, Y, k=3), "pu",
                "src/pu/metrics/information.py:153 mutual_information", {"k": 3}, {"k": 3})
            # --- platonic-rep: ordered-kNN measures (it ranks by inner products of the rows given)
            for k in (5, 10):
                rec("cycle_knn", f"k{k}", prep.cycle_knn(tx, ty, topk=k), "platonic-rep", "metrics.py:39 cycle_knn",
                    {"topk": k}, {"k": k}, tol=1e-7, note=F32)
                rec("lcs_knn", f"k{k}", prep.lcs_knn(tx, ty, topk=k), "platonic-rep", "metrics.py:88 lcs_knn",
                    {"topk": k}, {"k": k}, tol=1e-7, note=F32)
                rec("edit_distance_knn", f"k{k}", prep.edit_distance_knn(tx, ty, topk=k), "platonic-rep",
                    "metrics.py:164 edit_distance_knn (torchaudio 2.11.0 edit_distance)", {"topk": k}, {"k": k})
            # --- distance correlation: PyPI dcor
            rec("distance_correlation", "dcor", dcor.distance_correlation(X, Y), "dcor",
                "dcor.distance_correlation", {}, {})
    # torchaudio's Levenshtein agrees with an independent implementation on the kNN-like lists
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b = rng.integers(0, 12, 10).tolist(), rng.integers(0, 12, 10).tolist()
        assert ted(a, b) == editdistance.eval(a, b)

    np.savez_compressed(HERE / "measures.npz", **out)
    (HERE / "measures.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {HERE / 'measures.npz'} ({(HERE / 'measures.npz').stat().st_size} bytes), {len(meta['golden'])} values")


if __name__ == "__main__":
    main(*sys.argv[1:5])
