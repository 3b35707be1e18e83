"""Golden values of the authors' physics tests from their own code (run from a checkout; nothing
is copied into the project). Makes tests/golden/physics.npz and physics.json.

    git --git-dir=/work/.mirror/UniverseTBD+platonic-universe/repo worktree add /tmp/pu HEAD
    python tests/golden/make_physics_golden.py /tmp/pu

in an environment with numpy, scipy and scikit-learn (the project's venv has them; the
boosting probe's trees depend on scikit-learn's version, recorded in physics.json).

References: pu ``src/pu/metrics/physics.py`` (imported alone: it needs only numpy, scipy and
scikit-learn) and ``knn_purity`` of ``experiments/platonic/compute/pu_umap.py`` (that script
reads HF credentials and imports faiss, umap and polars when loaded, so its one function is
executed from its source, as make_measures_golden.py does for torchaudio's edit distance).

Inputs (seeded): N=300 objects with three latent properties; two embeddings A (d=16) and
B (d=12) that see them through different nonlinear maps plus noise; four catalogue properties
drawn from the latents (``ssfr`` with NaN entries), each with outliers that the reference's
1-99% clip removes. Neighbour lists that the reference receives rather than computes are made
as the authors make them: ``NearestNeighbors(metric="cosine")`` for the graph-fed tests (the
project feeds its own cached graph) and, for the Wasserstein test, also the authors'
``NearestNeighbors(n_neighbors=10, metric="minkowski")`` of run_crossmodal.py:292 (stored
in the npz, fed as they are).
"""
import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy
import sklearn
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).parent
N, SEED = 300, 31
TOL = 1e-10  # on |ours - golden| / max(1, |golden|): deterministic float64 references
PHYSICS = "src/pu/metrics/physics.py"
UMAP = "experiments/platonic/compute/pu_umap.py"


def commit_of(path: Path) -> str:
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def load_physics(checkout: Path):
    spec = importlib.util.spec_from_file_location("pu_physics", checkout / PHYSICS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_knn_purity(checkout: Path):
    src = (checkout / UMAP).read_text()
    fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == "knn_purity")
    scope = {"np": np}
    exec(compile(ast.Module([fn], []), UMAP, "exec"), scope)
    return scope["knn_purity"]


def inputs() -> dict:
    rng = np.random.default_rng(SEED)
    latent = rng.standard_normal((N, 3))

    def view(d, noise):
        hidden = np.tanh(latent @ rng.standard_normal((3, 8)))
        return hidden @ rng.standard_normal((8, d)) + noise * rng.standard_normal((N, d)) + rng.standard_normal(d)

    props = {
        "redshift": np.exp(0.4 * latent[:, 0]) + 0.05 * rng.standard_normal(N),
        "mass": 10.0 + latent[:, 1] + 0.3 * latent[:, 0] + 0.1 * rng.standard_normal(N),
        "ssfr": -10.0 + latent[:, 2] - 0.5 * latent[:, 1] + 0.2 * rng.standard_normal(N),
        "mag_g": 22.0 - 1.5 * latent[:, 1] + 0.8 * latent[:, 0] ** 2 + 0.3 * rng.standard_normal(N),
    }
    for values in props.values():  # a few catastrophic values, as catalogues have
        values[rng.choice(N, 4, replace=False)] += rng.choice([-1, 1], 4) * 25.0
    props["ssfr"][rng.choice(N, 6, replace=False)] = np.nan
    return {"A": view(16, 0.3), "B": view(12, 0.5), "props": props}


def main(pu_dir: str) -> None:
    pu_dir = Path(pu_dir)
    phys, purity = load_physics(pu_dir), load_knn_purity(pu_dir)
    data = inputs()
    spaces = {s: data[s] for s in ("A", "B")}
    props = data["props"]
    out = {f"input_{s}": Z for s, Z in spaces.items()}
    out.update({f"property_{p}": v for p, v in props.items()})
    meta = {"inputs": {"N": N, "seed": SEED, "spaces": {s: list(Z.shape) for s, Z in spaces.items()},
                       "properties": list(props)},
            "references": {"pu": {"repo": "UniverseTBD/platonic-universe", "commit": commit_of(pu_dir)},
                           "_env": {"numpy": np.__version__, "scipy": scipy.__version__,
                                    "scikit-learn": sklearn.__version__}},
            "golden": {}}

    def record(test, variant, value, where, ref_params, params, tol=TOL, note=None, **case):
        key = f"{test}/{variant}"
        out[key] = np.asarray(value, dtype=np.float64)
        meta["golden"][key] = {"test": test, **case, "reference": "pu", "where": where,
                               "reference_params": ref_params, "params": params, "tol": tol,
                               **({"note": note} if note else {})}
        shown = out[key] if out[key].size <= 3 else f"{out[key].size} values, mean {np.nanmean(out[key]):.6f}"
        print(f"{key:60s} {shown}")

    def probe_summary(res):
        return [res["mean"], res["std"], *res["folds"]]

    for space, Z in spaces.items():
        for prop, y in props.items():
            case = {"space": space, "property": prop}
            for pca in (None, 8):
                record("ols_probe", f"{space}/{prop}/pca{pca}",
                       probe_summary(phys.linear_probe(Z, y, cv=5, pca_components=pca)),
                       f"{PHYSICS}:84 linear_probe", {"cv": 5, "pca_components": pca},
                       {"folds": 5, "pca_components": pca}, **case)
            if space == "A" and prop in ("redshift", "ssfr"):  # 2 s each: two properties suffice
                record("boosting_probe", f"{space}/{prop}", probe_summary(phys.nonlinear_probe(Z, y, cv=5)),
                       f"{PHYSICS}:137 nonlinear_probe", {"cv": 5, "n_estimators": 100, "max_depth": 4}, {},
                       note="GradientBoostingRegressor(subsample=0.8, random_state=42): deterministic for a "
                            "given scikit-learn (version in references._env)", **case)
            for k in (10, 5):
                record("neighbour_consistency", f"{space}/{prop}/k{k}", phys.neighbor_property_consistency(Z, y, k=k),
                       f"{PHYSICS}:182 neighbor_property_consistency", {"k": k}, {"k": k}, **case)
                record("neighbour_set_overlap", f"{space}/{prop}/k{k}", phys.neighbor_set_overlap(Z, y, k=k),
                       f"{PHYSICS}:261 neighbor_set_overlap", {"k": k}, {"k": k}, **case)
            for max_samples in (5000, 150):
                record("distance_property_correlation", f"{space}/{prop}/max{max_samples}",
                       phys.embedding_property_correlation(Z, y, max_samples=max_samples),
                       f"{PHYSICS}:224 embedding_property_correlation", {"max_samples": max_samples},
                       {"max_samples": max_samples}, **case)
            # kNN purity: the reference takes a search result whose column 0 is the object itself
            for k in (50, 10):
                nbr = NearestNeighbors(n_neighbors=k, metric="cosine").fit(Z).kneighbors(return_distance=False)
                value, per_row = purity(np.column_stack([np.arange(N), nbr]), y)
                record("knn_purity", f"{space}/{prop}/k{k}", [value, *per_row], f"{UMAP}:238 knn_purity",
                       {"idx": f"arange(N) beside NearestNeighbors(n_neighbors={k}, metric='cosine').kneighbors()",
                        "n_bins": 20}, {"k": k}, **case)
        for k in (10, 5):
            for names in (list(props), ["redshift", "mass"]):
                res = phys.joint_neighbor_set_overlap(Z, props, property_keys=names, k=k)
                assert res["properties_used"] == names
                record("joint_neighbour_set_overlap", f"{space}/{'+'.join(names)}/k{k}",
                       [res["joint_overlap"], res["n_properties"], res["n_samples"]],
                       f"{PHYSICS}:315 joint_neighbor_set_overlap", {"property_keys": names, "k": k},
                       {"names": names, "k": k}, space=space)
    # Wasserstein between A's and B's neighbourhoods of each object
    lists = {metric: [NearestNeighbors(n_neighbors=10, metric=metric).fit(Z).kneighbors(return_distance=False)
                      for Z in (spaces["A"], spaces["B"])] for metric in ("minkowski", "cosine")}
    out["input_nn_minkowski_A"], out["input_nn_minkowski_B"] = lists["minkowski"]
    for prop in ("redshift", "mass", "mag_g"):
        y = props[prop]
        for metric, (nn1, nn2) in lists.items():
            for standardize in (True, False):
                fed = StandardScaler().fit_transform(y.reshape(-1, 1)).ravel() if standardize else y
                record("neighbourhood_wasserstein", f"AB/{prop}/{metric}/{'standardized' if standardize else 'raw'}",
                       phys.wass_distance(nn1, nn2, fed), f"{PHYSICS}:559 wass_distance",
                       {"nn": f"NearestNeighbors(n_neighbors=10, metric={metric!r}).kneighbors() of A and B",
                        "params": ("StandardScaler().fit_transform(y) as experiments/cosmosweb/run_crossmodal.py:312"
                                   if standardize else "y")},
                       {"k": 10, "standardize": standardize, "neighbours": metric}, tol=1e-12,
                       note="the project takes the mean |difference| of the sorted samples, scipy integrates the "
                            "CDFs: equal to rounding", property=prop)

    np.savez_compressed(HERE / "physics.npz", **out)
    (HERE / "physics.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {HERE / 'physics.npz'} ({(HERE / 'physics.npz').stat().st_size} bytes), {len(meta['golden'])} values")


if __name__ == "__main__":
    main(sys.argv[1])
