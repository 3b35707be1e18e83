"""UMAP maps of the probed embeddings (rule umap, config ``probes.umap``), fitted and drawn as the
authors do (UniverseTBD/platonic-universe 6672072: ``experiments/platonic/compute/pu_umap.py``
fits them, ``experiments/platonic/regress/03_plot_umap.py`` draws them).

The fit (``umap_coordinates``): umap-learn's UMAP of the L2-normalised embedding, cosine metric,
n_neighbors = k = 50 and n_epochs = 200 (pu_umap.py's PU_UMAP_KNN_K and PU_UMAP_EPOCHS),
random_state = seed (theirs: 0), on the embedding's cached kNN graph as the precomputed graph: each
object itself, then its k - 1 nearest, what umap-learn keeps of the authors' faiss search (self
and k neighbours, cut to n_neighbors columns). A seeded UMAP runs single-threaded (umap-learn gives
up its parallel epochs to be reproducible): the same embedding and seed give the same map.

The figure (``umap_figure``): one per crossmatch and property, one panel per embedding, each
object a point coloured by the property (viridis, the 1st to 99th percentile of the values shown,
as the authors colour every property but redshift, which they clip to [0, min(4, q99)]), no
ticks, each panel titled with its survey, its model and its kNN purity for the property
(``physics.knn_purity`` on the same graph at the same k: the score physics.csv gives where
``probes.physics`` runs that test with the same parameters).
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .captions import RunFacts  # noqa: E402
from .figures import save  # noqa: E402
from .records import family_label, size_label, split_model, survey_label  # noqa: E402

N_EPOCHS = 200  # the authors' PU_UMAP_EPOCHS


class EmbeddingMap(NamedTuple):
    survey: str
    model: str
    xy: np.ndarray  # (N, 2) UMAP coordinates
    values: Mapping[str, np.ndarray]  # property -> (N,) values, NaN where unknown
    purity: Mapping[str, float]  # property -> kNN purity


def umap_coordinates(Z, indices: np.ndarray, similarity: np.ndarray, *, k: int = 50, seed: int = 0) -> np.ndarray:
    """(N, 2) float32: the UMAP of ``Z`` (N, D) on its cosine kNN graph (``indices``,
    ``similarity``: self excluded, nearest first, at least k - 1 columns), as the module says.
    Seeded by ``seed``, so single-threaded: umap-learn runs a seeded fit on one thread to repeat it."""
    import umap  # umap-learn: numba compiles its kernels in each new process (seconds)

    Z = np.asarray(Z, np.float32)
    n = len(Z)
    if not k - 1 <= indices.shape[1] or not n > k:
        raise ValueError(f"umap: k={k} needs more than k objects and k - 1 graph neighbours per object; "
                         f"the graph has {n} objects and {indices.shape[1]} neighbours each")
    knn = np.column_stack([np.arange(n), indices[:, :k - 1]])
    dist = np.column_stack([np.zeros(n), 1.0 - similarity[:, :k - 1]]).astype(np.float32)
    reducer = umap.UMAP(n_neighbors=k, metric="cosine", precomputed_knn=(knn, dist, None), n_epochs=N_EPOCHS,
                        random_state=seed, n_jobs=1)
    with warnings.catch_warnings():  # that no search index comes with the graph: nothing is transformed later
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        return reducer.fit_transform(Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)


def embedding_map(survey: str, model: str, embedding, graph, sources: Sequence, properties: Sequence[str], *,
                  k: int = 50, n_bins: int = 20, seed: int = 0) -> EmbeddingMap:
    """The map of one embedding file: its UMAP on its cached kNN graph ``graph`` (``schema.read_knn``,
    the same object ids in the same order) and, per property of ``properties`` (read from
    ``sources``: ``probes.property_columns``), its values and kNN purity (``physics.knn_purity``)."""
    from ..physics import knn_purity
    from ..probes import embedding_and_graph, property_columns

    ids, Z, indices, similarity = embedding_and_graph(embedding, graph)
    values, _ = property_columns(ids, sources, properties)
    purity = {name: knn_purity(indices, y, k=k, n_bins=n_bins)[0] for name, y in values.items()}
    return EmbeddingMap(survey, model, umap_coordinates(Z, indices, similarity, k=k, seed=seed), values, purity)


def colour_range(values: np.ndarray) -> tuple[float, float]:
    """The colour scale's (low, high): the 1st and 99th percentiles of the finite ``values``."""
    lo, hi = np.percentile(values[np.isfinite(values)], [1, 99])
    return float(lo), float(hi)


def umap_figure(maps: Sequence[EmbeddingMap], prop: str, facts: RunFacts | None = None) -> plt.Figure:
    """One panel per map of ``maps`` (in their order, up to four a row), each object coloured by
    ``prop`` on one scale for every panel, the panel titled with its survey, model and kNN purity."""
    lacking = [f"{m.survey}/{m.model}" for m in maps if prop not in m.values or prop not in m.purity]
    if lacking or not maps:
        raise KeyError(f"umap figure: no property {prop!r} in the maps of {lacking or 'no embedding'}")
    lo, hi = colour_range(np.concatenate([np.asarray(m.values[prop], float) for m in maps]))
    ncols = min(len(maps), 4)
    nrows = math.ceil(len(maps) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(3.4 * ncols + 0.8, 11), 3.4 * nrows + 0.6), squeeze=False,
                             layout="constrained")  # wide enough for a simulated run's notice
    for ax, m in zip(axes.flat, maps):
        family, size = split_model(m.model)
        points = ax.scatter(m.xy[:, 0], m.xy[:, 1], c=m.values[prop], cmap="viridis", vmin=lo, vmax=hi, s=6,
                            alpha=0.7, linewidths=0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_title(f"{survey_label(m.survey)} · {family_label(family)} {size_label(size)}\n"
                     f"kNN purity ({prop}) = {m.purity[prop]:.3f}", fontsize=10)
    for ax in axes.flat[len(maps):]:
        ax.set_visible(False)
    fig.colorbar(points, ax=axes, fraction=0.04, pad=0.02).set_label(prop)
    (facts or RunFacts()).mark(fig)
    return fig


def write_umap_figures(maps: Sequence[Mapping], out_dir: str | os.PathLike, *, k: int = 50, n_bins: int = 20,
                       seed: int = 0, facts: RunFacts | None = None) -> list[Path]:
    """Every embedding of ``maps`` (``Plan.umap_maps``: crossmatch, survey, model, embedding, graph,
    sources, properties) fitted once (``embedding_map``), then one figure per crossmatch and
    property, ``{crossmatch}_{property}`` PNG and PDF under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fitted: dict[str, list[EmbeddingMap]] = {}
    properties: dict[str, list[str]] = {}
    for job in maps:
        fitted.setdefault(job["crossmatch"], []).append(
            embedding_map(job["survey"], job["model"], job["embedding"], job["graph"], job["sources"],
                          job["properties"], k=k, n_bins=n_bins, seed=seed))
        properties[job["crossmatch"]] = job["properties"]
    return [path for xm, done in fitted.items() for prop in properties[xm]
            for path in save(umap_figure(done, prop, facts), [out / f"{xm}_{prop}{s}" for s in (".png", ".pdf")])]
