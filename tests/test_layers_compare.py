"""Layer-wise comparisons (issue 15): per-block graphs built once, block x block calibrated scores."""
import logging
import os
import re

import h5py
import numpy as np
import pandas as pd
import pytest
from test_metrics import correlated

from samesky import schema
from samesky.metrics import cells, mutual_info
from samesky.metrics import layers as L
from samesky.metrics.cknna import CknnaEstimator, cknna_nulls
from samesky.metrics.compare import compare_files, pair_statistics
from samesky.metrics.knn import graph_and_invariants, knn_file, knn_graph
from samesky.metrics.mknn import MknnEstimator, mknn_from_graphs, mknn_nulls
from samesky.metrics.pair import Pair
from samesky.metrics.rv_null import ClosedNull, gram_invariants, invariants_record
from samesky.metrics.stats import p_value, permutations
from samesky.plan import LAYER_FIELDS

N, K, DRAWS = 240, 5, 25
ALL = ["mknn", "cka_linear", "cka_unbiased", "cknna", "mutual_info"]
CROSS = {"kind": "crossmodal", "crossmatch": "legacysurvey_hsc", "survey_a": "legacysurvey",
         "model_a": "vit-base", "survey_b": "hsc", "model_b": "vit-base"}
OPTS = dict(k=K, null_draws=DRAWS, seed=3, alpha=0.1)


def write_side(tmp_path, name, ids, final, blocks, width=4 * K):
    """Final embedding + graph (with invariants), and a layers file + its block graphs."""
    side = {"emb": tmp_path / f"{name}.h5", "knn": tmp_path / f"{name}.knn.h5"}
    schema.write_embeddings(side["emb"], ids, final, {"model": name})
    knn_file(side["emb"], side["knn"], K, width=width, invariants=True)
    if blocks:
        side["layers"], side["knn_layers"] = tmp_path / f"{name}.layers.h5", tmp_path / f"{name}.knn_layers.h5"
        schema.write_layers(side["layers"], ids, blocks, [f"layer {j + 1}" for j in range(len(blocks))], {"model": name})
        L.knn_layers_file(side["layers"], side["knn_layers"], K, width=width, invariants=True)
    return side


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layers")
    ids = np.array([f"obj{i:04d}" for i in range(N)])
    Za, Zb = correlated(N, 12, 9, seed=1)
    blocks_a = [Za[:, :10] + 0.3 * np.cos(Za[:, 2:]), Za * 1.5 + 0.1, Za[:, ::-1] ** 2]
    blocks_b = [np.tanh(Zb), Zb[:, :7]]
    return ids, write_side(tmp, "a", ids, Za, blocks_a), write_side(tmp, "b", ids, Zb, blocks_b)


@pytest.fixture(scope="module")
def rows(pair):
    _, a, b = pair
    return pd.DataFrame(L.compare_layer_files(a, b, comparison=CROSS, metrics=ALL, **OPTS))


def read_block(side, j):
    return schema.read_layers(side["layers"])[1][j]


def test_block_graphs_and_invariants_are_those_of_each_block(pair):
    _, a, _ = pair
    ids, blocks, names, _ = schema.read_layers(a["layers"])
    cached = L.read_block_graphs(a["knn_layers"], schema.LayersFile(a["layers"]), K)
    assert len(cached) == 3
    for Z, ((idx, sim), inv) in zip(blocks, cached):
        ref_idx, ref_sim = knn_graph(Z, 4 * K)
        assert np.array_equal(idx, ref_idx) and np.array_equal(sim, ref_sim)
        # the job sums the one all-pairs term from the graph's tiles (knn.graph_and_invariants)
        assert {kind: d.to_dict() for kind, d in inv.items()} == graph_and_invariants(Z, 4 * K, invariants=True)[2]
        separate = invariants_record(Z)
        for kind, d in inv.items():
            assert d.to_dict() == pytest.approx(separate[kind], rel=1e-4)  # measured: 1.0e-5


def _blocks(path):
    with h5py.File(path) as f:
        return [(f[g]["indices"][:], f[g]["similarity"][:], {k: v for k, v in schema.read_provenance(f[g]).items()
                                                               if k not in ("seconds", "cpu_seconds")})
                for g in sorted(k for k in f if k.startswith("block_"))]


def test_a_killed_block_graphs_job_resumes_after_its_last_finished_block(pair, tmp_path, monkeypatch):
    """Killed in block 3: the rerun computes only block 3 and writes the file an unbroken run
    wrote; a changed source starts afresh."""
    _, a, _ = pair
    out = tmp_path / "a.knn_layers.h5"
    calls, real = [], L.file_graph

    def killed_at(block):
        def file_graph(Z, ids, k, where, **kw):
            calls.append(where)
            if where.endswith(f"block {block!r}"):
                raise KeyboardInterrupt  # as a Slurm time limit's SIGTERM would stop it
            return real(Z, ids, k, where, **kw)
        return file_graph

    monkeypatch.setattr(L, "file_graph", killed_at("layer 3"))
    with pytest.raises(KeyboardInterrupt):
        L.knn_layers_file(a["layers"], out, K, width=4 * K, invariants=True)
    partial = tmp_path / ".a.knn_layers.h5.partial"
    assert not out.exists() and sorted(p.name for p in partial.glob("block_*")) == ["block_000.h5", "block_001.h5"]
    calls.clear()
    monkeypatch.setattr(L, "file_graph", killed_at(None))
    L.knn_layers_file(a["layers"], out, K, width=4 * K, invariants=True)
    assert [c.rsplit(": ", 1)[1] for c in calls] == ["block 'layer 3'"]
    assert not partial.exists()
    for got, ref in zip(_blocks(out), _blocks(a["knn_layers"]), strict=True):
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]) and got[2] == ref[2]
    with h5py.File(out) as f:
        assert schema.read_provenance(f)["blocks"] == ["layer 1", "layer 2", "layer 3"]
        assert schema.read_provenance(f)["resumed_blocks"] == ["layer 1", "layer 2"]
        assert schema.read_provenance(f["block_000"])["cpu_seconds"] > 0
    # a kill, then the source is rewritten (another mtime): nothing of the first run is kept
    monkeypatch.setattr(L, "file_graph", killed_at("layer 2"))
    with pytest.raises(KeyboardInterrupt):
        L.knn_layers_file(a["layers"], out, K, width=4 * K, invariants=True)
    st = a["layers"].stat()
    os.utime(a["layers"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    calls.clear()
    monkeypatch.setattr(L, "file_graph", killed_at(None))
    L.knn_layers_file(a["layers"], out, K, width=4 * K, invariants=True)
    assert len(calls) == 3


def test_rows_have_the_documented_columns_and_cells(rows):
    assert list(rows.columns) == list(LAYER_FIELDS)
    assert len(rows) == len(ALL) * 4 * 3  # (3 blocks + final) x (2 blocks + final)
    mknn = rows[rows.metric == "mknn"]
    assert list(mknn.block_a) == ["layer 1"] * 3 + ["layer 2"] * 3 + ["layer 3"] * 3 + ["final"] * 3
    assert list(mknn.block_b) == ["layer 1", "layer 2", "final"] * 4
    assert list(mknn.index_a) == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 and list(mknn.index_b) == [0, 1, 2] * 4
    assert np.allclose(mknn.depth_a, np.repeat([1 / 3, 2 / 3, 1, 1], 3)) and np.allclose(mknn.depth_b, [0.5, 1, 1] * 4)
    assert (rows.n == N).all() and (rows.alpha == 0.1).all() and (rows.kind == "crossmodal").all()
    assert (mknn.k == K).all() and rows[rows.metric == "cka_linear"].k.isna().all()
    cka = rows[rows.metric.str.startswith("cka")]
    assert (cka.null_method == "closed_form").all() and (cka.null_draws == 0).all()
    drawn = rows[~rows.metric.str.startswith("cka")]
    assert (drawn.null_method == "permutation").all() and (drawn.null_draws == DRAWS).all()
    assert ((rows.calibrated >= 0) & (rows.calibrated <= 1) & (rows.p > 0) & (rows.p <= 1)).all()


def test_final_row_equals_the_compare_job_exactly(pair, rows):
    _, a, b = pair
    records = compare_files(a["emb"], b["emb"], a["knn"], b["knn"], comparison=CROSS, metrics=ALL,
                            subsampling_splits=20, ci=0.9, feature_space_draws=5, **OPTS)
    final = rows[(rows.block_a == "final") & (rows.block_b == "final")].set_index("metric")
    assert len(final) == len(ALL)
    for rec in records:
        row = final.loc[rec["metric"]]
        assert (row.raw, row.tau, row.calibrated, row.p) == (rec["score"], rec["tau"], rec["calibrated"], rec["p_value"])
        assert (row.null_draws, row.null_method) == (rec["null_draws"], rec["null_method"])


def test_block_cells_equal_a_plain_comparison_of_those_blocks(pair, rows):
    """Every non-final cell equals pair_statistics on the two blocks (graphs built there, the same
    permutations): exactly for the drawn metrics, CKA's closed form from rv_null's invariants."""
    _, a, b = pair
    Za, Zb = read_block(a, 1), read_block(b, 0)
    st = pair_statistics(Pair(Za, Zb), ALL, k=K, null_draws=DRAWS, subsampling_splits=0, ci=0.9, seed=3, alpha=0.1)
    cell = rows[(rows.block_a == "layer 2") & (rows.block_b == "layer 1")].set_index("metric")
    for name in ["mknn", "mutual_info"]:
        assert (cell.loc[name].raw, cell.loc[name].tau, cell.loc[name].p) == (
            st[name]["score"], st[name]["tau"], st[name]["p_value"]), name
    assert cell.loc["cknna"].raw == pytest.approx(st["cknna"]["score"], rel=1e-12)  # sums in another order
    assert cell.loc["cknna"].tau == pytest.approx(st["cknna"]["tau"], rel=1e-12)
    inv_a = L.read_block_graphs(a["knn_layers"], schema.LayersFile(a["layers"]), K)[1][1]
    inv_b = L.read_block_graphs(b["knn_layers"], schema.LayersFile(b["layers"]), K)[0][1]
    for name, variant in [("cka_linear", "linear"), ("cka_unbiased", "unbiased")]:
        law = ClosedNull.of(inv_a[variant], inv_b[variant])  # the blocks' cached invariants
        assert cell.loc[name].raw == pytest.approx(st[name]["score"], rel=1e-10)
        assert cell.loc[name].tau == law.threshold(0.1)
        assert cell.loc[name].p == law.p_value(cell.loc[name].raw)
        # rv_null's separate pass gives the same law (the cube term summed another way)
        separate = ClosedNull.of(gram_invariants(Za)[variant], gram_invariants(Zb)[variant])
        assert law.threshold(0.1) == pytest.approx(separate.threshold(0.1), rel=1e-9) == st[name]["tau"]


def test_every_cell_is_corrected_for_the_maximum_over_cells(pair, rows):
    """MKNN: every cell's p_max is its score against the per-draw maximum over all 12 cells' draws
    (one shared permutation per draw, final x final included: the compare job's draws); the
    CKAs, with closed-form nulls, get the Bonferroni bound over the 12 cells."""
    _, a, b = pair
    graphs_a = [knn_graph(read_block(a, j), K)[0] for j in range(3)] + [knn_graph(schema.read_embeddings(a["emb"])[1], K)[0]]
    graphs_b = [knn_graph(read_block(b, j), K)[0] for j in range(2)] + [knn_graph(schema.read_embeddings(b["emb"])[1], K)[0]]
    cells_ = [(i, j) for i in range(4) for j in range(3)]
    perms = np.stack(list(permutations(N, DRAWS, 3))).astype(np.int32)
    _, nulls = mknn_nulls(graphs_a, graphs_b, cells_, K, perms)
    top = np.max([nulls[c] for c in cells_], axis=0)
    mknn = rows[rows.metric == "mknn"]
    assert (mknn.max_method == "max_null").all()
    assert mknn.p_max.tolist() == [p_value(s, top) for s in mknn.raw]
    assert (mknn.p_max >= mknn.p).all() and (mknn.tau_max >= mknn.tau).all() and (mknn.tau_max > mknn.tau).any()
    assert (mknn.calibrated_max <= mknn.calibrated).all()
    drawn = rows[rows.metric.isin(["cknna", "mutual_info"])]
    assert (drawn.max_method == "max_null").all() and (drawn.p_max >= drawn.p).all()
    cka = rows[rows.metric.str.startswith("cka")]
    assert (cka.max_method == "bonferroni").all()
    assert np.allclose(cka.p_max, np.minimum(1.0, 12 * cka.p), rtol=1e-12, atol=0)


def test_metric_parameters_reach_every_cell(pair):
    """metrics.params (here MI's components) reach the final cell, as in the compare job, and every
    block cell, as in a plain comparison of those blocks."""
    _, a, b = pair
    params = {"mutual_info": {"components": 3}}
    got = pd.DataFrame(L.compare_layer_files(a, b, comparison=CROSS, metrics=["mutual_info"], params=params, **OPTS))
    default = pd.DataFrame(L.compare_layer_files(a, b, comparison=CROSS, metrics=["mutual_info"], **OPTS))
    assert not np.allclose(got.raw, default.raw)
    (rec,) = compare_files(a["emb"], b["emb"], a["knn"], b["knn"], comparison=CROSS, metrics=["mutual_info"],
                           subsampling_splits=0, ci=0.9, params=params, **OPTS)
    assert got[(got.block_a == "final") & (got.block_b == "final")].raw.item() == rec["score"]
    st = pair_statistics(Pair(read_block(a, 1), read_block(b, 0)), ["mutual_info"], k=K, null_draws=DRAWS,
                         subsampling_splits=0, ci=0.9, seed=3, alpha=0.1, params=params)
    assert got[(got.block_a == "layer 2") & (got.block_b == "layer 1")].raw.item() == st["mutual_info"]["score"]


def test_relabelled_mknn_null_equals_the_recomputed_graph_null(pair, monkeypatch):
    """Each draw equals MKNN of side A's graph against the graph recomputed on side B's shuffled
    rows, and the estimator's relabelled draw; batches of any size give the same draws."""
    _, a, b = pair
    Za, Zb = read_block(a, 2), read_block(b, 1)
    ga, gb = knn_graph(Za, K)[0], knn_graph(Zb, K)[0]
    perms = np.stack(list(permutations(N, 12, 5)))
    monkeypatch.setitem(cells.BATCH_BYTES, "cpu", 3 * 12 * K * N)  # batches of 3 draws
    scores, nulls = mknn_nulls([ga], [ga, gb], [(0, 1), (0, 0)], K, perms.astype(np.int32))
    batched = mknn_nulls([ga], [ga, gb], [(0, 1), (0, 0)], K, perms.astype(np.int32), batched=True)
    assert batched[0] == scores and all(np.array_equal(batched[1][c], nulls[c]) for c in nulls)
    est = MknnEstimator(ga, gb, K)
    assert scores[(0, 1)] == est.score() == mknn_from_graphs(ga, gb, K)
    recomputed = [mknn_from_graphs(ga, knn_graph(Zb[pi], K)[0], K) for pi in perms]
    assert nulls[(0, 1)].tolist() == recomputed == [est.null(pi) for pi in perms]
    assert len(set(recomputed)) > 3  # the draws differ: a real null
    assert nulls[(0, 0)].tolist() == [MknnEstimator(ga, ga, K).null(pi) for pi in perms]


def test_truth_side_has_only_the_final_block(pair, tmp_path):
    ids, a, _ = pair
    truth = write_side(tmp_path, "truth", ids, np.random.default_rng(0).standard_normal((N, 6)).astype(np.float32), [])
    comparison = {**CROSS, "kind": "truth", "survey_b": "truth", "model_b": "latent-truth"}
    out = pd.DataFrame(L.compare_layer_files(a, truth, comparison=comparison, metrics=["mknn", "cka_linear"], **OPTS))
    assert list(out.block_b.unique()) == ["final"] and list(out.index_b.unique()) == [0]
    assert list(out[out.metric == "mknn"].block_a) == ["layer 1", "layer 2", "layer 3", "final"]


def test_objects_on_one_side_only_are_left_out(pair, tmp_path):
    """Side B lacking some objects: every cell uses the common objects (graphs restricted exactly)."""
    ids, a, b = pair
    keep = np.arange(N) % 7 != 0
    Zb = schema.read_embeddings(b["emb"])[1]
    blocks = schema.read_layers(b["layers"])[1]
    short = write_side(tmp_path, "short", ids[keep], Zb[keep], [z[keep] for z in blocks])
    out = pd.DataFrame(L.compare_layer_files(a, short, comparison=CROSS, metrics=["mknn"], **OPTS))
    assert (out.n == keep.sum()).all()
    Za = read_block(a, 0)[keep]
    st = pair_statistics(Pair(Za, blocks[1][keep]), ["mknn"], k=K, null_draws=DRAWS, subsampling_splits=0, ci=0.9,
                         seed=3, alpha=0.1)["mknn"]
    cell = out[(out.block_a == "layer 1") & (out.block_b == "layer 2")].iloc[0]
    assert (cell.raw, cell.tau, cell.p) == (st["score"], st["tau"], st["p_value"])


def test_layers_of_other_objects_are_refused(pair, tmp_path):
    ids, a, b = pair
    other = tmp_path / "other.layers.h5"
    schema.write_layers(other, ids[::-1], schema.read_layers(a["layers"])[1], ["x", "y", "z"], {})
    with pytest.raises(schema.SchemaError, match=r"other\.layers\.h5 does not hold the objects of .*a\.h5"):
        L.compare_layer_files({**a, "layers": other}, b, comparison=CROSS, metrics=["mknn"], **OPTS)
    L.knn_layers_file(other, tmp_path / "other.knn_layers.h5", K)
    with pytest.raises(schema.SchemaError, match=r"other\.knn_layers\.h5 does not belong to .*a\.layers\.h5 "
                                                 r"\(object ids differ\)"):
        L.compare_layer_files({**a, "knn_layers": tmp_path / "other.knn_layers.h5"}, b, comparison=CROSS,
                              metrics=["mknn"], **OPTS)
    with pytest.raises(schema.SchemaError, match=r"b\.knn_layers\.h5 holds blocks \['layer 1', 'layer 2'\], "
                                                 r"but .*a\.layers\.h5 has \['layer 1', 'layer 2', 'layer 3'\]"):
        L.compare_layer_files({**a, "knn_layers": b["knn_layers"]}, b, comparison=CROSS, metrics=["mknn"], **OPTS)


def test_a_missing_block_is_named(pair, tmp_path):
    _, a, b = pair
    broken = tmp_path / "broken.knn_layers.h5"
    broken.write_bytes(a["knn_layers"].read_bytes())
    with h5py.File(broken, "a") as f:
        del f["block_001"]
    with pytest.raises(schema.SchemaError, match=r"broken\.knn_layers\.h5: missing group 'block_001' \(block 'layer 2'\)"):
        L.compare_layer_files({**a, "knn_layers": broken}, b, comparison=CROSS, metrics=["mknn"], **OPTS)
    with pytest.raises(ValueError, match=r"a\.layers\.h5: its block graphs \(knn_layers\) are missing"):
        L.compare_layer_files({**a, "knn_layers": None}, b, comparison=CROSS, metrics=["mknn"], **OPTS)
    with pytest.raises(schema.SchemaError, match=r"k_max=20 < requested k=30"):
        L.compare_layer_files(a, b, comparison=CROSS, metrics=["mknn"], **{**OPTS, "k": 30})


def test_block_positions_of_chosen_blocks():
    assert schema.block_positions(["a", "b"], {"block_index": [3, 11], "n_blocks": 12}, "f") == [(3, 4 / 12), (11, 1.0)]
    assert schema.block_positions(["a", "b"], {}, "f") == [(0, 0.5), (1, 1.0)]
    with pytest.raises(schema.SchemaError, match=r"f: provenance block_index \[3, 12\] does not fit 2 blocks of n_blocks=12"):
        schema.block_positions(["a", "b"], {"block_index": [3, 12], "n_blocks": 12}, "f")


@pytest.mark.parametrize("batched", [False, True])
def test_dense_cknna_null_equals_the_estimator_draw_for_draw(pair, batched, monkeypatch):
    _, a, b = pair
    ga, gb = knn_graph(read_block(a, 0), 2 * K), knn_graph(read_block(b, 1), K)
    perms = np.stack(list(permutations(N, 9, 2))).astype(np.int32)
    monkeypatch.setitem(cells.BATCH_BYTES, "cpu", 4 * 80 * K * N)  # batches of 4 draws
    scores, nulls = cknna_nulls([ga], [gb, ga], [(0, 0), (0, 1)], K, perms, batched=batched)
    for j, g in enumerate([gb, ga]):
        est = CknnaEstimator(ga, g, K)
        assert scores[(0, j)] == pytest.approx(est.score(), rel=1e-12, abs=1e-15)
        assert nulls[(0, j)] == pytest.approx([est.null(pi.astype(np.int64)) for pi in perms], rel=1e-10, abs=1e-13)
    assert np.ptp(nulls[(0, 0)]) > 0.01 and scores[(0, 1)] == pytest.approx(1.0, abs=1e-3)


def test_batched_mutual_info_null_equals_the_estimator(pair, monkeypatch):
    """The batched (GPU) MI draws equal the per-draw estimator's to round-off, on the same permutations."""
    _, a, b = pair
    blocks = [L.Block("x", 0, 1.0, read_block(a, 0), None, None), L.Block("y", 0, 1.0, read_block(b, 1), None, None)]
    perms = np.stack(list(permutations(N, 11, 4))).astype(np.int32)
    monkeypatch.setitem(cells.BATCH_BYTES, "cpu", 4 * N * 16 * 8)  # batches of 4 draws
    settings = {"mutual_info": {"components": 4}}
    plain, batched = ((mutual_info.layer_cells(blocks[:1], blocks[1:], [(0, 0)], settings, k=K, perms=perms,
                                               batched=flag)["mutual_info"][(0, 0)]) for flag in (False, True))
    assert batched[0] == plain[0] and len(batched[1]) == len(plain[1]) == 11
    np.testing.assert_allclose(batched[1], plain[1], rtol=1e-9)
    assert np.mean(plain[1]) > 0


def test_csv_round_trips_the_rows(rows, tmp_path):
    L.write_layer_rows(tmp_path / "x.csv", rows.to_dict("records"))
    text = (tmp_path / "x.csv").read_text().splitlines()
    assert text[0] == ",".join(LAYER_FIELDS)
    assert text[1].startswith("mknn,crossmodal,legacysurvey_hsc,legacysurvey,vit-base,hsc,vit-base,layer 1,layer 1,0,0,")
    assert ",240,5," in text[1] and ",240,,"  in next(t for t in text if t.startswith("cka_linear"))
    back = pd.read_csv(tmp_path / "x.csv")
    assert np.array_equal(back.raw, rows.raw) and np.array_equal(back.tau, rows.tau)  # floats exactly


@pytest.mark.parametrize("short_side", [False, True])
def test_a_block_cache_of_one_block_reads_again_and_changes_no_value(pair, tmp_path, short_side, caplog):
    """``block_cache_bytes=0`` holds one layer block at a time (every other read again from its
    file): every field of every row equals the all-held run's, the drawn path (cknna_formula's
    per-block row means, memoised by block) and objects on one side only included."""
    ids, a, b = pair
    if short_side:
        keep = np.arange(N) % 7 != 0
        blocks = schema.read_layers(b["layers"])[1]
        b = write_side(tmp_path, "short", ids[keep], schema.read_embeddings(b["emb"])[1][keep], [z[keep] for z in blocks])
    metrics = ["mknn", "cka_linear", "cka_unbiased", "mutual_info", "cknna_formula"]
    with caplog.at_level(logging.INFO, logger="samesky.metrics.layers"):
        held = L.compare_layer_files(a, b, comparison=CROSS, metrics=metrics, **OPTS)
        streamed = L.compare_layer_files(a, b, comparison=CROSS, metrics=metrics, **OPTS, block_cache_bytes=0)
    assert pd.DataFrame(streamed).equals(pd.DataFrame(held))
    reads = [int(n) for n in re.findall(r"(\d+) block reads", caplog.text)]
    # 3 + 2 layer blocks: held, each is read once; one at a time, CKA alone reads side B's per cell
    assert reads[0] == 3 + 2 and reads[1] > 3 * 2 + 3 + 2 and len(reads) == 2


def test_block_cache_drops_the_least_recently_used_beyond_its_limit():
    cache, read = L.BlockCache(limit=2 * 80), []

    def reader(key):
        return lambda: read.append(key) or np.zeros(10)  # 80 bytes

    for key in ["a", "b", "a", "c", "b", "a"]:
        assert cache.get(key, reader(key)).nbytes == 80
    # a, b held; a used again (b now least recent); c drops b; b drops a; a drops c
    assert read == ["a", "b", "c", "b", "a"] and cache.reads == 5 and list(cache.held) == ["b", "a"]
    assert L.BlockCache(None).get("x", lambda: np.ones(3)).sum() == 3


def test_the_cka_hook_reads_every_other_row_of_cells_backwards():
    """Within a block cache, the CKA hook walks each row of cells the other way from the last, so
    the blocks the cache kept last are used first: side B of 5 layer blocks and a final one, a cache
    of 3 blocks. Side B's self terms read B0..B4 (B2, B3, B4 kept); row A0 reads A0 and B0..B4; row
    A1, backwards, reads A1 and then B4, B3 kept, B2, B1, B0; row A2 A2 and B0, B1 kept, B2..B4; the
    final row, backwards, B4..B2 kept, B1, B0: 5 + 6 + 4 + 4 + 2 = 21 reads, against 28 in one
    direction. The scores equal those of every block held, exactly."""
    from samesky.metrics import cka

    rng = np.random.default_rng(0)
    Z = rng.standard_normal((60, 4)).astype(np.float32)
    data = {side: [(Z * (j + 1) + rng.standard_normal(Z.shape)).astype(np.float16) for j in range(count)]
            for side, count in (("a", 3), ("b", 5))}

    def side(name, cache):
        blocks = [L.Block(f"b{j}", j, 0.0, lambda z=z: z, None, gram_invariants(z.astype(np.float32)), cache)
                  for j, z in enumerate(data[name])]
        return [*blocks, L.Block("final", len(blocks), 1.0, Z, None, gram_invariants(Z))]

    settings = {"cka_linear": {"unbiased": False}, "cka_unbiased": {"unbiased": True}}
    scores = []
    for limit in (3 * data["b"][0].nbytes, None):
        cache = L.BlockCache(limit)
        A, B = side("a", cache), side("b", cache)
        cells_ = [(i, j) for i in range(len(A)) for j in range(len(B))]
        out = cka.layer_cells(A, B, cells_, settings, k=K, perms=None)
        scores.append({name: {c: s for c, (s, _) in got.items()} for name, got in out.items()})
        assert cache.reads == (21 if limit else 3 + 5)
    assert scores[0] == scores[1]
