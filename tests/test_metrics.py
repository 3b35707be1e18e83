"""Exact kNN graphs, MKNN and its relabelled permutation null against straightforward references."""
import numpy as np
import pytest
import torch

from samesky.metrics.knn import DegenerateRowsError, _tiles, knn_graph, knn_rows, restrict_graph, screening_bound
from samesky.metrics.mknn import MknnEstimator, mknn, mknn_from_graphs, overlaps
from samesky.metrics.registry import METRICS, get_metric
from samesky.metrics.stats import bootstrap_weights, p_value, permutations, summarise


def reference_knn(Z, k):
    """Full similarity matrix, diagonal excluded, stable argsort: ties go to the smaller index."""
    Z = torch.as_tensor(Z, dtype=torch.float32)
    X = Z / torch.linalg.vector_norm(Z, dim=1, keepdim=True)
    S = X @ X.T
    S.fill_diagonal_(float("-inf"))
    v, i = torch.sort(S, dim=1, descending=True, stable=True)
    return i[:, :k].numpy(), v[:, :k].numpy()


def reference_mknn(Za, Zb, k):
    ia, _ = reference_knn(Za, k)
    ib, _ = reference_knn(Zb, k)
    return np.mean([len(set(a) & set(b)) / k for a, b in zip(ia.tolist(), ib.tolist())])


def lattice(n, d=8, seed=0):
    """Random integer vectors of squared norm 256. Their float32 cosine similarities are
    multiples of 1/256, computed exactly in any summation order (any BLAS, any tiling), so the
    engine and the reference must agree bit for bit - and ties are frequent."""
    rng = np.random.default_rng(seed)
    rows = np.empty((0, d))
    while len(rows) < n:
        z = rng.integers(-8, 9, (200_000, d))
        rows = np.concatenate([rows, z[(z**2).sum(1) == 256]])
    return rows[:n].astype(np.float32)


def correlated_lattice(n, seed=0):
    """Side A (8-d) and side B (11-d: A's vectors, some coordinates swapped, zero-padded)."""
    rng = np.random.default_rng(seed)
    Za = lattice(n, 8, seed)
    Zb = np.zeros((n, 11), np.float32)
    Zb[:, :8] = Za
    for row in rng.choice(n, n // 2, replace=False):
        i, j = rng.choice(8, 2, replace=False)
        Zb[row, [i, j]] = Zb[row, [j, i]]
    return Za, Zb


def with_ties(n, seed=1):
    """Lattice data plus duplicated rows: a block of 71 copies (ties past k + margin) and pairs."""
    Z = lattice(n, 8, seed)
    Z[50:120] = Z[3]
    Z[200:204] = Z[150]
    Z[300::13] = Z[9]
    return Z


def correlated(n, da, db, seed=0):
    """Float data (no exact arithmetic): similarities may differ from the reference in the last bit."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 4))
    Za = latent @ rng.standard_normal((4, da)) + 0.7 * rng.standard_normal((n, da))
    Zb = latent @ rng.standard_normal((4, db)) + 0.7 * rng.standard_normal((n, db))
    return Za.astype(np.float32), Zb.astype(np.float32)


@pytest.mark.parametrize("k", [1, 10, 50])
@pytest.mark.parametrize("chunk", [None, 97])
def test_knn_graph_equals_reference(k, chunk):
    for Z in correlated_lattice(300):
        idx, sim = knn_graph(Z, k, chunk_size=chunk)
        ref_idx, ref_sim = reference_knn(Z, k)
        assert idx.dtype == np.int64 and sim.dtype == np.float32 and idx.shape == (300, k)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(sim, ref_sim)


@pytest.mark.parametrize("chunk", [None, 97])
def test_knn_graph_on_float_data(chunk):
    """Generic floats: same neighbours as the reference; similarities equal up to BLAS rounding
    (the tiles are evaluated by differently shaped GEMMs than the full matrix)."""
    Za, _ = correlated(300, 16, 7)
    idx, sim = knn_graph(Za, 10, chunk_size=chunk)
    ref_idx, ref_sim = reference_knn(Za, 10)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sim, ref_sim, rtol=0, atol=1e-6)


@pytest.mark.parametrize("k", [1, 10, 50])
@pytest.mark.parametrize("chunk", [None, 48])
def test_knn_tie_breaking_smaller_index_wins(k, chunk):
    Z = with_ties(400)
    idx, sim = knn_graph(Z, k, chunk_size=chunk)
    ref_idx, ref_sim = reference_knn(Z, k)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(sim, ref_sim)
    # Row 3 has 70 exact copies: its neighbours are the copies 50, 51, ... in index order.
    np.testing.assert_array_equal(idx[3], np.arange(50, 50 + k))
    np.testing.assert_array_equal(idx[9, :4], [300, 313, 326, 339][:k])


def test_knn_small_hand_example():
    Z = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    idx, sim = knn_graph(Z, 3)
    np.testing.assert_array_equal(idx[0], [1, 3, 4])
    np.testing.assert_array_equal(idx[3], [0, 1, 4])
    np.testing.assert_array_equal(idx[2], [4, 0, 1])
    assert sim[0, 0] == pytest.approx(1.0) and sim[0, 2] == pytest.approx(np.sqrt(0.5))


def test_knn_accepts_torch_and_float64_input():
    Za, _ = correlated(120, 6, 6)
    a = knn_graph(torch.from_numpy(Za), 5)
    b = knn_graph(Za.astype(np.float64), 5)
    np.testing.assert_array_equal(a[0], knn_graph(Za, 5)[0])
    np.testing.assert_array_equal(b[0], a[0])


def test_knn_refuses_zero_norm_and_bad_k():
    Z = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)
    Z[4] = 0
    with pytest.raises(DegenerateRowsError, match=r"rows \[4\]") as err:
        knn_graph(Z, 3)
    assert err.value.rows.tolist() == [4]
    Z[4] = np.nan
    with pytest.raises(DegenerateRowsError, match="non-finite"):
        knn_graph(Z, 3)
    with pytest.raises(ValueError, match="k=20 must be between 1 and N-1=19"):
        knn_graph(np.ones((20, 3), np.float32), 20)


def screened(Z, k, caplog, **kw):
    """knn_graph with precision="bf16-screened", and the screening statistics it logged (the
    screened path must really have run: tiles under 32 rows stay on the fp32 path)."""
    caplog.clear()
    with caplog.at_level("INFO", logger="samesky.metrics.knn"):
        out = knn_graph(Z, k, precision="bf16-screened", **kw)
    stats = [r.screen for r in caplog.records if hasattr(r, "screen")]
    assert len(stats) == 1, "the screened path did not run"
    return out, stats[0]


def near_ties(n, d, seed, eps):
    """Clusters of rows that differ by ``eps`` (0: exact duplicates): many similarities equal or
    closer together than the bf16 resolution, and far more than k of them per row."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 40), d))
    Z = centres[rng.integers(0, len(centres), n)] + eps * rng.standard_normal((n, d))
    return Z.astype(np.float32)


@pytest.mark.parametrize("k", [1, 10, 50])
@pytest.mark.parametrize("chunk", [None, 48])
def test_screened_graph_equals_reference_with_exact_ties(k, chunk, caplog):
    """Lattice data (exact similarities, ties everywhere, a block of 71 duplicates): the screened
    graph equals the full-matrix torch reference and the fp32 path, bit for bit."""
    Z = with_ties(400)
    (idx, sim), stats = screened(Z, k, caplog, chunk_size=chunk)
    ref_idx, ref_sim = reference_knn(Z, k)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(sim, ref_sim)
    fp32 = knn_graph(Z, k, chunk_size=chunk)
    np.testing.assert_array_equal(idx, fp32[0])
    np.testing.assert_array_equal(sim, fp32[1])
    # The 71 copies of row 3 (similarity 1) crowd each other's band past its capacity (2k + 32):
    # those rows are redone in fp32.
    if 2 * k + 32 < 70:
        assert stats["rows_redone"] >= 71


@pytest.mark.parametrize("eps", [0.0, 1e-7, 1e-4, 3e-3])
@pytest.mark.parametrize("k", [1, 10, 50])
def test_screened_graph_equals_fp32_graph_with_near_ties(eps, k, caplog):
    Z = near_ties(600, 24, 3, eps)
    for chunk in (None, 100, 256):  # 600 = 5 x 100 + 100; 2 x 256 + 88; one tile
        (idx, sim), _ = screened(Z, k, caplog, chunk_size=chunk)
        want_idx, want_sim = knn_graph(Z, k, chunk_size=chunk)
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_array_equal(sim, want_sim)


def test_screened_graph_sweep_of_adversarial_inputs(caplog):
    """Seeded random sweep (no hypothesis in the environment): tiny dims, k up to N - 1,
    duplicated rows, near-equal similarities, short last tiles; every graph equals fp32's."""
    rng = np.random.default_rng(2024)
    for case in range(40):
        n = int(rng.integers(32, 300))
        d = int(rng.choice([1, 2, 3, 5, 8, 17, 64]))
        k = int(rng.choice([1, 2, 10, n - 1, int(rng.integers(1, n))]))
        chunk = int(rng.choice([n, 32, 33, int(rng.integers(32, n + 1))]))
        kind = case % 4
        if kind == 0:  # clusters of near-identical rows
            Z = near_ties(n, d, case, float(rng.choice([0, 1e-7, 1e-5, 1e-3])))
        elif kind == 1:  # a cone: all rows at nearly the same angle to the axis, near-equal similarities
            Z = np.zeros((n, d + 1), np.float32)
            Z[:, 0] = 1
            Z[:, 1:] = 1e-3 * rng.standard_normal((n, d))
        elif kind == 2:  # integer lattice: exact ties everywhere
            Z = rng.integers(-2, 3, (n, d)).astype(np.float32)
            Z[(Z == 0).all(1), 0] = 1
        else:  # generic floats with duplicated rows
            Z = rng.standard_normal((n, d)).astype(np.float32)
            Z[rng.integers(0, n, n // 3)] = Z[rng.integers(0, n, n // 3)]
        (idx, sim), _ = screened(Z, k, caplog, chunk_size=chunk)
        want_idx, want_sim = knn_graph(Z, k, chunk_size=chunk)
        assert np.array_equal(idx, want_idx) and np.array_equal(sim, want_sim), (case, n, d, k, chunk)


def test_screening_bound_holds_and_is_nearly_attained():
    """Worst case for the bound: every coordinate 2^-4 (1 + 2^-8 - 2^-23) rounds down to 2^-4 in
    bf16 (relative error ~u), all products of a row with itself are positive, and 257 of them sum
    to 1 + 2^-8, which rounds (to even) down to 1 in the bf16 output: every error term adds up."""
    d = 257
    m = np.float32(2.0**-4 * (1 + 2.0**-8 - 2.0**-23))
    rng = np.random.default_rng(0)
    X = torch.from_numpy(m * rng.choice([-1, 1], (64, d)).astype(np.float32))
    X[32:] = X[:32]  # duplicated rows
    norm = float(torch.linalg.vector_norm(X.double(), dim=1).max())
    bound = screening_bound(d, norm)
    screened_tile = _tiles(X.to(torch.bfloat16), 64, 1, torch.float32)(0, 0)
    error = (screened_tile - X @ X.T).abs().max().item()
    assert error <= bound and error > 0.98 * bound, (error, bound)
    # generic unit rows: the bound holds with room to spare
    Y = torch.nn.functional.normalize(torch.randn(512, 1536, generator=torch.Generator().manual_seed(0)), dim=1)
    error = (_tiles(Y.to(torch.bfloat16), 512, 1, torch.float32)(0, 0) - Y @ Y.T).abs().max().item()
    assert error <= screening_bound(1536, 1.0 + 1e-6)
    assert screening_bound(1536, 1.0) == pytest.approx(0.01213, abs=1e-5)


def test_knn_graph_refuses_unknown_precision():
    with pytest.raises(ValueError, match=r"precision='bf16': expected one of \['fp32', 'bf16-screened'\]"):
        knn_graph(np.ones((5, 2), np.float32), 2, precision="bf16")


@pytest.mark.parametrize("k", [1, 10, 50])
def test_mknn_equals_set_reference_with_different_dimensions(k):
    Za, Zb = correlated_lattice(300)
    expected = reference_mknn(Za, Zb, k)
    assert 0.05 < expected < 1  # correlated data: the test can tell a wrong answer from chance
    assert mknn(Za, Zb, k) == pytest.approx(expected, abs=1e-15)
    assert METRICS["mknn"](Za, Zb, k=k) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("k", [1, 10, 50])
def test_mknn_with_ties_equals_set_reference(k):
    Za, Zb = with_ties(400, seed=1), with_ties(400, seed=2)
    assert mknn(Za, Zb, k) == pytest.approx(reference_mknn(Za, Zb, k), abs=1e-15)


def test_cached_graph_prefix_equals_direct():
    Za, Zb = correlated_lattice(300)
    ga, gb = knn_graph(Za, 50)[0], knn_graph(Zb, 50)[0]
    for k in (1, 10, 50):
        assert mknn_from_graphs(ga, gb, k) == mknn(Za, Zb, k)
    with pytest.raises(ValueError, match="k_max=50 < requested k=51"):
        mknn_from_graphs(ga, gb, 51)


def test_self_pair_scores_one():
    Za, _ = correlated(200, 8, 8)
    assert mknn(Za, Za, 10) == 1.0
    assert overlaps(knn_graph(Za, 10)[0], knn_graph(Za, 10)[0], 10).tolist() == [10] * 200


def test_relabelled_graph_and_null_equal_recomputation_draw_for_draw():
    Za, Zb = correlated(400, 12, 9)
    ga, (gb, sb) = knn_graph(Za, 10)[0], knn_graph(Zb, 10)
    est = MknnEstimator(ga, gb, 10)
    for pi in permutations(400, 5, seed=3):
        recomputed = knn_graph(Zb[pi], 10)[0]
        relabelled, _, redone = restrict_graph(gb, sb, pi, Zb[pi], 10)  # inv_pi[g[pi]]: nothing recomputed
        assert redone == 0
        np.testing.assert_array_equal(relabelled, recomputed)
        assert est.null(pi) == mknn_from_graphs(ga, recomputed, 10)


@pytest.mark.parametrize("k_max", [10, 14])
def test_restricted_graph_equals_the_graph_of_the_subset(k_max):
    Z, _ = correlated(500, 12, 9)
    indices, similarity = knn_graph(Z, k_max)
    rng = np.random.default_rng(1)
    for n_drop in (0, 1, 40, 300):  # 300 dropped: most rows lose neighbours and are recomputed
        rows = rng.permutation(500)[: 500 - n_drop]  # a subset, in a new order
        got_i, got_s, redone = restrict_graph(indices, similarity, rows, Z[rows], 10)
        want_i, want_s = knn_graph(Z[rows], 10)
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_allclose(got_s, want_s, rtol=1e-6, atol=1e-6)
        short = np.isin(indices[rows], rows, invert=True).sum(axis=1) > k_max - 10
        assert redone == short.sum()
        assert (redone > 0) == (n_drop >= (40 if k_max > 10 else 1))


def test_knn_rows_equals_the_rows_of_the_full_graph():
    Z, _ = correlated(300, 8, 8)
    Z[7] = Z[3]  # an exact tie: the smaller index must come first
    rows = np.array([0, 3, 7, 299, 150])
    got_i, got_s = knn_rows(Z, rows, 10, chunk_size=2)
    want_i, want_s = knn_graph(Z, 10)
    np.testing.assert_array_equal(got_i, want_i[rows])
    np.testing.assert_allclose(got_s, want_s[rows], rtol=1e-6, atol=1e-6)


def test_permutations_are_reproducible_per_seed():
    a = list(permutations(50, 3, seed=7))
    b = list(permutations(50, 5, seed=7))[:3]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], next(permutations(50, 1, seed=8)))
    assert sorted(a[1].tolist()) == list(range(50))
    w = list(bootstrap_weights(50, 2, seed=7))
    assert [x.sum() for x in w] == [50, 50] and not np.array_equal(w[0], w[1])


def test_null_mean_matches_chance_at_paper_size():
    """pi(HSC) vs HSC at the paper's N = 18.6k: the null MKNN mean is k / (N - 1)."""
    n, k, draws = 18_600, 10, 200
    Z = np.random.default_rng(5).standard_normal((n, 3)).astype(np.float32)
    g = knn_graph(Z, k)[0]  # computed once, reused by every draw
    est = MknnEstimator(g, g, k)
    assert est.score() == 1.0
    null = np.array([est.null(pi) for pi in permutations(n, draws, seed=0)])
    expected = k / (n - 1)
    stderr = null.std(ddof=1) / np.sqrt(draws)
    assert abs(null.mean() - expected) < 4 * stderr
    assert stderr < 0.1 * expected  # the check is sharp enough to matter
    assert p_value(est.score(), null) == 1 / (1 + draws)


def test_summary_statistics():
    null = np.array([0.1, 0.2, 0.5, 0.7])
    out = summarise(0.5, null, np.linspace(0, 1, 101), ci=0.9)
    assert out["p_value"] == pytest.approx(3 / 5)  # (1 + #{0.5, 0.7}) / (1 + 4)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((0.05, 0.95))
    assert out["null_mean"] == pytest.approx(0.375) and out["null_std"] == pytest.approx(np.std(null, ddof=1))
    assert (out["null_draws"], out["bootstrap_draws"]) == (4, 101)
    empty = summarise(0.5, [], [], ci=0.95)
    assert empty["p_value"] is None and empty["ci_low"] is None and empty["null_draws"] == 0


def test_registry_rejects_unknown_names_and_params():
    with pytest.raises(KeyError, match="unknown metric 'mknnn'"):
        get_metric("mknnn")
    with pytest.raises(TypeError, match=r"takes parameters \['k'\], not \['kk'\]"):
        METRICS["mknn"](np.eye(5), np.eye(5), kk=3)
    assert {m for m, spec in METRICS.items() if spec.uses_knn} == {"mknn", "cknna", "cknna_formula", "jaccard",
                                                                   "cycle_knn", "lcs_knn", "edit_distance_knn"}


@pytest.mark.parametrize("n, draws, seed", [(0, 2, 0), (1, 3, 5), (2, 50, 1), (7, 40, 3), (400, 200, 0),
                                            (1000, 5, 2**32 - 1), (257, 3, 123456789)])
def test_numpy_permutations_replay_torch_randperm(n, draws, seed):
    """The probe jobs draw their permutations without torch: the same arrays as torch.randperm
    on a generator seeded with ``seed`` (the oracle), draw after draw."""
    from samesky.metrics.stats import randperm_numpy

    g = torch.Generator().manual_seed(seed)
    want = [torch.randperm(n, generator=g).numpy() for _ in range(draws)]
    got = list(randperm_numpy(n, draws, seed))
    assert len(got) == draws and all(x.dtype == np.int64 and np.array_equal(x, y) for x, y in zip(got, want))
