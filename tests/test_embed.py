"""Embedding runner: sharded, resumable, fingerprinted, atomic, and loud about bad values."""
import logging

import numpy as np
import pytest
import torch
from conftest import N_IMAGES, count_embedded_rows, kill_after_shards

from samesky import embed as embed_mod
from samesky import schema
from samesky.embed import embed_file
from samesky.models import load_embedder, save_tiny

N = N_IMAGES  # the images fixture's (conftest)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return {key: save_tiny(key, tmp_path_factory.mktemp(key)) for key in ("astropt-small", "vit-base", "specformer-base")}


def _interrupted(pre, out, tiny, monkeypatch, shards, key="astropt-small"):
    kill_after_shards(monkeypatch, shards, lambda: _run(pre, out, tiny, key=key), out)


def _run(pre, out, tiny, key="astropt-small", **kw):
    kw = {"batch_size": 3, "shard_size": 4, "device": "cpu", **kw}
    return embed_file(pre, out, model_key=key, source=tiny[key], **kw)


def test_embeds_every_row_with_provenance(images, tiny, tmp_path):
    out = _run(images, tmp_path / "emb" / "astropt-small.h5", tiny)
    ids, emb, prov = schema.read_embeddings(out)
    assert ids.tolist() == [f"obj{i}" for i in range(N)] and emb.shape == (N, 32)
    assert prov["model"] == "astropt-small" and prov["hub_id"] == "Smith42/astroPT_v2.0"
    assert prov["source"] == str(tiny["astropt-small"]) and prov["dim"] == 32 and prov["precision"] == "fp32"
    assert prov["input_provenance"] == {"percentiles": [5, 99]} and prov["device"] == "cpu"
    assert {"torch", "transformers", "samesky"} <= set(prov["versions"]) and "pooling" in prov
    assert not (tmp_path / "emb" / "astropt-small.h5.shards").exists()


def test_aion_embeds_a_raw_flux_file_and_refuses_rgb(images, tmp_path):
    from samesky.preprocess import preprocess_flux
    from samesky.simulate import simulate_crossmatch

    xm = tmp_path / "xm.h5"
    simulate_crossmatch(xm, "legacysurvey_hsc", ["legacysurvey", "hsc"], n=6, seed=3)
    flux = preprocess_flux(xm, "legacysurvey", tmp_path / "flux" / "legacysurvey.h5")
    source = save_tiny("aion-base", tmp_path / "aion")
    out = embed_file(tmp_path / "flux" / "legacysurvey.h5", tmp_path / "aion.h5", model_key="aion-base",
                     source=source, device="cpu", batch_size=4, shard_size=4)
    ids, emb, prov = schema.read_embeddings(out)
    assert len(ids) == flux["n_written"] and emb.shape == (len(ids), 32) and np.isfinite(emb).all()
    assert prov["input_provenance"]["bands"] == ["g", "r", "i", "z"] and prov["model"] == "aion-base"
    with pytest.raises(schema.SchemaError, match="holds rgb inputs, but model 'aion-base' embeds flux inputs"):
        embed_file(images, tmp_path / "no.h5", model_key="aion-base", source=source, device="cpu")


def test_resume_after_interruption_matches_one_go(images, tiny, tmp_path, monkeypatch):
    whole = schema.read_embeddings(_run(images, tmp_path / "whole.h5", tiny))[1]
    out = tmp_path / "resumed.h5"
    _interrupted(images, out, tiny, monkeypatch, shards=2)
    computed = count_embedded_rows(monkeypatch)
    _, resumed, _ = schema.read_embeddings(_run(images, out, tiny))
    assert computed == [["obj8", "obj9"]]  # only the last shard was computed again
    np.testing.assert_allclose(resumed, whole, rtol=1e-6, atol=1e-6)


def test_stale_shards_of_another_model_are_discarded(images, tiny, tmp_path, monkeypatch, caplog):
    out = tmp_path / "emb.h5"
    _interrupted(images, out, tiny, monkeypatch, shards=1, key="astropt-small")
    with caplog.at_level(logging.WARNING, logger="samesky.embed"):
        _, emb, prov = schema.read_embeddings(_run(images, out, tiny, key="vit-base"))
    assert "discarding stale shard" in caplog.text and prov["model"] == "vit-base"
    fresh = schema.read_embeddings(_run(images, tmp_path / "fresh.h5", tiny, key="vit-base"))[1]
    np.testing.assert_allclose(emb, fresh, rtol=1e-6, atol=1e-6)


def test_changed_input_invalidates_shards(images, tiny, tmp_path, monkeypatch, caplog):
    out = tmp_path / "emb.h5"
    _interrupted(images, out, tiny, monkeypatch, shards=1)
    ids, data = schema.read_preprocessed(images)
    schema.write_preprocessed(images, ids, 255 - data, {"percentiles": [1, 99]})
    with caplog.at_level(logging.WARNING, logger="samesky.embed"):
        emb = schema.read_embeddings(_run(images, out, tiny))[1]
    assert "discarding stale shard" in caplog.text
    np.testing.assert_allclose(emb, schema.read_embeddings(_run(images, tmp_path / "new.h5", tiny))[1], atol=1e-6)


def test_non_finite_embeddings_name_the_objects(tiny, tmp_path):
    flux = np.random.default_rng(2).normal(size=(5, 7781)).astype(np.float32) + 3
    flux[3, 100] = np.nan
    pre = tmp_path / "desi.h5"
    schema.write_preprocessed(pre, [f"s{i}" for i in range(5)], flux, {})
    with pytest.raises(schema.SchemaError, match=r"\['s3'\]"):
        _run(pre, tmp_path / "emb.h5", tiny, key="specformer-base")
    assert not (tmp_path / "emb.h5").exists()


def test_out_of_memory_halves_the_batch_and_retries(images, tiny, tmp_path, monkeypatch, caplog):
    whole = schema.read_embeddings(_run(images, tmp_path / "whole.h5", tiny, batch_size=4))[1]
    load = embed_mod.load_embedder

    def fragile_loader(*args, **kwargs):
        embedder = load(*args, **kwargs)
        real = embedder.run

        def run(inputs):
            if len(inputs["tokens"]) > 2:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return real(inputs)

        embedder.run = run
        return embedder

    monkeypatch.setattr(embed_mod, "load_embedder", fragile_loader)
    with caplog.at_level(logging.WARNING, logger="samesky.embed"):
        out = _run(images, tmp_path / "oom.h5", tiny, batch_size=4)
    ids, emb, prov = schema.read_embeddings(out)
    assert "batch size halved to 2" in caplog.text and prov["batch_size"] == 2
    np.testing.assert_allclose(emb, whole, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ the parallel input pipeline
def _single_process(pre, key, source, batch_size, shard_size):
    """The runner as it was before input workers: read each shard, embed it batch by batch."""
    embedder = load_embedder(key, source, device="cpu", precision="fp32")
    with schema.open_h5(pre) as f:
        embedder.bind(schema.read_provenance(f))
    _, data = schema.read_preprocessed(pre)
    out = []
    for start in range(0, len(data), shard_size):
        shard = data[start:start + shard_size]
        out += [embedder.embed(shard[i:i + batch_size]).numpy() for i in range(0, len(shard), batch_size)]
    return np.concatenate(out)


@pytest.fixture
def spectra(tmp_path):
    path = tmp_path / "desi.h5"
    flux = np.random.default_rng(4).normal(size=(N, 7781)).astype(np.float32) + 3
    schema.write_preprocessed(path, [f"s{i}" for i in range(N)], flux, {})
    return path


@pytest.fixture
def fluxes(tmp_path):
    from samesky.preprocess import preprocess_flux
    from samesky.simulate import simulate_crossmatch

    xm = tmp_path / "xm.h5"
    simulate_crossmatch(xm, "legacysurvey_hsc", ["legacysurvey", "hsc"], n=N, seed=5)
    preprocess_flux(xm, "hsc", tmp_path / "flux" / "hsc.h5")
    return tmp_path / "flux" / "hsc.h5"


@pytest.mark.parametrize("key, inputs", [("vit-base", "images"), ("astropt-small", "images"),
                                         ("specformer-base", "spectra"), ("aion-base", "fluxes")])
def test_input_workers_give_bit_identical_embeddings(key, inputs, request, tmp_path):
    """Reading and preparing in 2 worker processes changes nothing, to the last bit, for images,
    spectra and AION's raw fluxes (the main process runs torch on 2 threads, the workers on 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    pre = request.getfixturevalue(inputs)
    source = save_tiny(key, tmp_path / "model")
    reference = _single_process(pre, key, source, batch_size=3, shard_size=4)
    for workers in (0, 2):
        out = embed_file(pre, tmp_path / f"w{workers}.h5", model_key=key, source=source, device="cpu",
                         batch_size=3, shard_size=4, workers=workers)
        ids, emb, _ = schema.read_embeddings(out)
        assert ids.tolist() == schema.read_object_ids(pre).tolist()
        assert emb.dtype == reference.dtype and np.array_equal(emb, reference), f"{workers} workers"


def test_input_worker_errors_reach_the_job_naming_the_problem(images, tiny, tmp_path, monkeypatch):
    load = embed_mod.load_embedder

    def bad_prepare_loader(*args, **kwargs):
        embedder = load(*args, **kwargs)
        embedder.prepare = lambda batch: (_ for _ in ()).throw(ValueError("cannot prepare this batch"))
        return embedder

    monkeypatch.setattr(embed_mod, "load_embedder", bad_prepare_loader)
    with pytest.raises(ValueError, match="cannot prepare this batch"):
        _run(images, tmp_path / "emb.h5", tiny, workers=2)
    assert not (tmp_path / "emb.h5").exists()
