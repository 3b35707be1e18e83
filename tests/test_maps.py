"""UMAP maps (probes.umap; samesky.report.maps): the fit, the figure, the files, the config. Every
UMAP test lives here, fitting once per module: numba compiles umap-learn's kernels in each new
process (about 10-20 s)."""
import numpy as np
import pytest
import umap

from samesky import physics
from samesky.config import ConfigError, validate_config
from samesky.metrics import knn
from samesky.plan import Plan
from samesky.report import RunFacts
from samesky.report.maps import EmbeddingMap, embedding_map, umap_coordinates, umap_figure, write_umap_figures
from samesky.schema import write_crossmatch, write_embeddings, write_knn

N, K = 120, 15


@pytest.fixture(scope="module")
def sky():
    """N objects on a curve in 16 dimensions whose position is their redshift, the graph of their
    embedding, and its map."""
    rng = np.random.default_rng(4)
    z = rng.uniform(0, 3, N)
    basis = rng.normal(size=(3, 16))
    x = (np.column_stack([np.cos(z), np.sin(z), z]) @ basis + 0.05 * rng.normal(size=(N, 16))).astype(np.float32)
    indices, similarity = knn.knn_graph(x, 2 * K)
    return x, z, indices, similarity, umap_coordinates(x, indices, similarity, k=K, seed=3)


def test_coordinates_are_umap_learns_on_the_authors_graph(sky):
    """The map is umap-learn's UMAP as pu_umap.py asks for it: L2-normalised rows, cosine, the
    precomputed graph (each object itself, then its k - 1 nearest: scikit-learn's cosine
    neighbours, which include the object), 200 epochs, seeded. UMAP is chaotic (distances that
    differ by 1e-7 give another map), so the graph's own similarities give the distances."""
    from sklearn.neighbors import NearestNeighbors

    x, _, indices, similarity, xy = sky
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    dist, nbr = NearestNeighbors(n_neighbors=K, metric="cosine").fit(xn).kneighbors(xn)
    assert np.array_equal(nbr[:, 0], np.arange(N)) and np.array_equal(nbr[:, 1:], indices[:, :K - 1])
    np.testing.assert_allclose(1 - similarity[:, :K - 1], dist[:, 1:], atol=1e-6)
    graph = np.column_stack([np.zeros(N), 1 - similarity[:, :K - 1]]).astype(np.float32)
    want = umap.UMAP(n_neighbors=K, metric="cosine", precomputed_knn=(nbr, graph, None), n_epochs=200,
                     random_state=3, n_jobs=1).fit_transform(xn)
    assert xy.shape == (N, 2) and xy.dtype == np.float32
    np.testing.assert_array_equal(xy, want)
    np.testing.assert_array_equal(xy, umap_coordinates(x, indices, similarity, k=K, seed=3))  # reproducible
    assert not np.allclose(xy, umap_coordinates(x, indices, similarity, k=K, seed=4), atol=1e-2)  # the seed matters
    with pytest.raises(ValueError, match=r"umap: k=40 needs .* the graph has 120 objects and 30 neighbours each"):
        umap_coordinates(x, indices, similarity, k=40)


def test_figure_plots_the_coordinates_coloured_by_the_property_and_titles_the_purity(sky):
    x, z, _, _, xy = sky
    flipped = xy[::-1].copy()
    maps = [EmbeddingMap("hsc", "vit-base", xy, {"redshift": z}, {"redshift": 0.4567}),
            EmbeddingMap("desi", "specformer-base", flipped, {"redshift": z[::-1]}, {"redshift": 0.1234})]
    fig = umap_figure(maps, "redshift", RunFacts(simulated=("desi_hsc",)))
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.collections and ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in panels] == ["HSC · ViT Base\nkNN purity (redshift) = 0.457",
                                                 "DESI · Specformer Base\nkNN purity (redshift) = 0.123"]
    for ax, m in zip(panels, maps):
        points = ax.collections[0]
        np.testing.assert_array_equal(points.get_offsets(), m.xy)
        np.testing.assert_array_equal(points.get_array(), m.values["redshift"])
        assert points.get_clim() == tuple(np.percentile(np.concatenate([z, z]), [1, 99]))  # one scale, all panels
    assert fig.get_suptitle().startswith("Simulated sky (desi_hsc)")
    with pytest.raises(KeyError, match=r"no property 'mass' in the maps of \['hsc/vit-base', 'desi/specformer-base'\]"):
        umap_figure(maps, "mass")


def test_files_give_the_map_and_the_purity_physics_gives(sky, tmp_path):
    """embedding_map reads the embedding, its graph and the properties by object id (the
    embedding in another order than the crossmatch); its purity is the physics test's score at the
    same k and bins; write_umap_figures draws one figure per crossmatch and property."""
    x, z, _, _, _ = sky
    ids = [f"o{i}" for i in range(N)]
    mass = np.linspace(9, 11, N)
    xm = tmp_path / "xm.h5"
    write_crossmatch(xm, "t", ids, np.zeros(N), np.zeros(N), {"hsc": {"flux": np.zeros((N, 5, 4, 4), np.float32)}},
                     properties={"Z": z, "mass": mass})
    order = np.random.default_rng(0).permutation(N)
    emb, graph = tmp_path / "emb.h5", tmp_path / "knn.h5"
    write_embeddings(emb, [ids[i] for i in order], x[order], {})
    indices, similarity = knn.knn_graph(x[order], 2 * K)
    write_knn(graph, [ids[i] for i in order], indices, similarity, {})
    got = embedding_map("hsc", "vit-base", emb, graph, [xm], ["Z", "mass"], k=K, n_bins=4, seed=3)
    np.testing.assert_array_equal(got.values["Z"], z[order])
    np.testing.assert_array_equal(got.xy, umap_coordinates(x[order], indices, similarity, k=K, seed=3))
    records = physics.physics_records(x[order], {"Z": z[order], "mass": mass[order]}, (indices, similarity),
                                      tests=["knn_purity"], params={"knn_purity": {"k": K, "n_bins": 4}},
                                      null_draws=0, subsampling_splits=0)
    assert got.purity == {r["property"]: r["score"] for r in records} and got.purity["Z"] > 0.5
    job = {"crossmatch": "desi_hsc", "survey": "hsc", "model": "vit-base", "embedding": emb, "graph": graph,
           "sources": [xm], "properties": ["Z", "mass"]}
    written = write_umap_figures([job], tmp_path / "maps", k=K, n_bins=4, seed=3)
    assert [p.name for p in written] == ["desi_hsc_Z.png", "desi_hsc_Z.pdf", "desi_hsc_mass.png", "desi_hsc_mass.pdf"]


def test_plan_maps_the_probed_embeddings_only_when_asked(demo_config):
    demo_config["probes"]["umap"] = False
    assert Plan(validate_config(demo_config)).umap_maps == []
    demo_config["probes"]["umap"] = True
    plan = Plan(validate_config(demo_config))
    assert [(m["crossmatch"], m["survey"], m["model"]) for m in plan.umap_maps] == plan.probes  # continuous ones
    assert [m["properties"] for m in plan.umap_maps] == [plan.physics_properties(m["crossmatch"]) for m in plan.umap_maps]
    assert plan.umap_params() == {"k": 50, "n_bins": 20, "seed": 0}
    demo_config["probes"]["physics"]["params"] = {"knn_purity": {"k": 81}}
    with pytest.raises(ConfigError, match=r"probes.umap: its k=81 \(probes.physics.params.knn_purity.k\) neighbours, "
                                          r"but the cached kNN graphs hold 80 per object"):
        Plan(validate_config(demo_config))
