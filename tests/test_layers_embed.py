"""Layer-wise embeddings: every family's blocks against an oracle nobody here wrote, and the layers
file that embed_file writes (round trip, resume, selection, bad indices, final bit for bit).

Oracles: transformers' own ``output_hidden_states`` (HF families; ConvNeXtV2's inner blocks through
transformers' stage output of a model whose stage is cut after that block), the ``astropt`` package
with forward hooks on its blocks, the ``polymathic-aion`` package's own encoder loop, and golden
arrays of the upstream AstroCLIP/Specformer modules (tests/golden/make_astroclip_golden.py).
"""
from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from conftest import N_IMAGES, count_embedded_rows, kill_after_shards
from test_models import HF_KEYS, RUNNABLE, _inputs, _load
from test_models_upstream import _save_like_astropt_training, astropt_pkg, golden  # noqa: F401 (fixtures)

from samesky import schema
from samesky.embed import embed_file
from samesky.models import get_model, load_embedder, resources_for, save_tiny
from samesky.models.base import Embedder, select_blocks

# The study's pooling per family (as in tests/test_models.py), applied to every block
STUDY_POOLING = {"vit": lambda h: h[:, 1:].mean(1), "dinov2": lambda h: h[:, 0],
                 "convnextv2": lambda h: h.mean(dim=(2, 3)), "ijepa": lambda h: h.mean(1)}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    return {key: save_tiny(key, tmp_path_factory.mktemp(key)) for key in [*RUNNABLE, "aion-base"]}


def _all_blocks(emb, x):
    return emb.run_layers(x, list(range(len(emb.block_names()))))


# ---------------------------------------------------------------------------------------------- selection
def test_select_blocks_resolves_all_negative_and_repeated_indices():
    names = [f"b{j}" for j in range(6)]
    assert select_blocks("all", names, "m") == [0, 1, 2, 3, 4, 5]
    assert select_blocks([-1, 0, 5, 2], names, "m") == [0, 2, 5]  # sorted, -1 and 5 are one block
    with pytest.raises(ValueError, match=r"layers \[6, -7\] out of range for model 'vit-base': it has 6 blocks, "
                                         r"so indices run 0..5 \(or -6..-1 from the last\)"):
        select_blocks([1, 6, -7], names, "vit-base")
    with pytest.raises(ValueError, match="'all' or a non-empty list"):
        select_blocks("final", names, "m")


def test_an_adapter_without_layers_says_so_naming_the_model():
    emb = Embedder(get_model("vit-base"), torch.nn.Identity(), source="x", revision=None,
                   device=torch.device("cpu"), precision="fp32", dim=1)
    for call in (emb.block_names, lambda: emb.forward_layers(torch.zeros(1), [0])):
        with pytest.raises(NotImplementedError, match="vit-base: layer-wise embeddings are not implemented for the 'hf'"):
            call()


# ---------------------------------------------------------------------------------------------- every family
@pytest.mark.parametrize("key", [*RUNNABLE, "aion-base"])
def test_final_from_forward_layers_is_bit_identical_to_forward(key, tiny_dirs):
    emb = _load(key, tiny_dirs[key])
    x = emb.prepare(_inputs(key))
    want = emb.run(x)
    n = len(emb.block_names())
    assert n >= 2 and len(set(emb.block_names())) == n and "final" not in emb.block_names()
    for blocks in ([], [n - 1], list(range(n))):
        final, outs = emb.run_layers(x, blocks)
        assert torch.equal(final, want), blocks
        assert len(outs) == len(blocks) and all(o.dtype == torch.float32 and o.shape[0] == 3 for o in outs)
    final, outs = _all_blocks(emb, x)
    assert all(not torch.equal(outs[j], outs[j + 1]) for j in range(n - 1))  # each block is its own output


@pytest.mark.parametrize("key", [k for k in HF_KEYS if not k.startswith("convnextv2")])
def test_hf_blocks_are_transformers_hidden_states_pooled_by_the_family(key, tiny_dirs):
    from transformers import AutoModel

    emb = _load(key, tiny_dirs[key], precision="fp32")
    model = AutoModel.from_pretrained(tiny_dirs[key]).eval()
    pool = STUDY_POOLING[get_model(key).family]
    assert emb.block_names() == [f"block {j + 1}" for j in range(model.config.num_hidden_layers)]
    x = emb.prepare(_inputs(key))
    with torch.no_grad():
        out = model(pixel_values=x, output_hidden_states=True)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1  # embedding output + each layer
    final, blocks = _all_blocks(emb, x)
    for j, block in enumerate(blocks):
        torch.testing.assert_close(block, pool(out.hidden_states[j + 1]), rtol=1e-6, atol=1e-6)
    subset = emb.run_layers(x, [1])[1][0]  # only the requested hidden state is kept: the same values
    assert torch.equal(subset, blocks[1])
    assert not torch.allclose(blocks[-1], final, atol=1e-3)  # the last layer's output is before the final norm


@pytest.fixture(scope="module")
def convnext_dir(tmp_path_factory):
    """ConvNeXtV2 with stages of 2, 1, 3 and 1 blocks (the registry's tiny one has one block per stage)."""
    from samesky.models import hf

    spec = get_model("convnextv2-nano")
    arch = spec.arch_for(tiny=True)
    arch["config"]["depths"] = [2, 1, 3, 1]
    out = tmp_path_factory.mktemp("convnext")
    hf.save_random(spec, out, arch, seed=3)
    return out


def test_convnext_blocks_are_each_stage_block_as_transformers_computes_it(convnext_dir):
    """Stage ends: transformers' per-stage hidden_states; inner blocks: the stage output of transformers'
    model with that stage cut after the block."""
    from transformers import AutoModel

    emb = _load("convnextv2-nano", convnext_dir, precision="fp32")
    names = emb.block_names()
    assert names == ["stage 1 block 1", "stage 1 block 2", "stage 2 block 1", "stage 3 block 1", "stage 3 block 2",
                     "stage 3 block 3", "stage 4 block 1"]
    x = emb.prepare(_inputs("convnextv2-nano"))
    final, blocks = _all_blocks(emb, x)
    model = AutoModel.from_pretrained(convnext_dir).eval()
    pool = STUDY_POOLING["convnextv2"]
    with torch.no_grad():
        stages = model(pixel_values=x, output_hidden_states=True).hidden_states
    assert len(stages) == 5  # transformers: the embedding output, then one state per stage
    where = [(int(n.split()[1]) - 1, int(n.split()[3]) - 1) for n in names]
    for j, (s, b) in enumerate(where):
        cut = copy.deepcopy(model)
        cut.encoder.stages[s].layers = cut.encoder.stages[s].layers[: b + 1]
        with torch.no_grad():
            want = cut(pixel_values=x, output_hidden_states=True).hidden_states[s + 1]
        torch.testing.assert_close(blocks[j], pool(want), rtol=1e-6, atol=1e-6)
        if b == len(model.encoder.stages[s].layers) - 1:
            torch.testing.assert_close(blocks[j], pool(stages[s + 1]), rtol=1e-6, atol=1e-6)
    assert torch.equal(final, blocks[-1])  # the final embedding is the spatial mean of the last block


def test_astropt_blocks_equal_the_astropt_package_with_hooks_on_its_blocks(astropt_pkg, tmp_path):  # noqa: F811
    """The package's GPT on the same checkpoint and tokens, hooks on transformer.h (as the authors'
    layer-wise code hooks it), token mean; the final embedding is block n_layer // 2."""
    path = _save_like_astropt_training(astropt_pkg, tmp_path, n_layer=5)
    gpt = astropt_pkg.utils.load_astropt(repo_id=None, path=str(path.parent) + "/").eval()
    emb = load_embedder("astropt-small", tmp_path, device="cpu", precision="fp32")
    assert emb.block_names() == [f"block {j + 1}" for j in range(5)]
    inputs = emb.prepare(np.random.default_rng(5).integers(0, 256, (3, 3, 96, 96), dtype=np.uint8))
    final, blocks = _all_blocks(emb, inputs)
    got = {}
    hooks = [b.register_forward_hook(lambda m, a, y, j=j: got.__setitem__(j, y.mean(1)))
             for j, b in enumerate(gpt.transformer.h)]
    with torch.no_grad():
        package_final = gpt.generate_embeddings({"images": inputs["tokens"], "images_positions": inputs["positions"]})
    for h in hooks:
        h.remove()
    assert sorted(got) == list(range(5))
    for j, block in enumerate(blocks):
        torch.testing.assert_close(block, got[j], rtol=0, atol=2e-6)
    torch.testing.assert_close(final, package_final["images"], rtol=0, atol=2e-6)
    assert torch.equal(final, blocks[5 // 2])


def test_aion_blocks_equal_the_packages_encoder_cut_after_each_block(tiny_dirs):
    emb = _load("aion-base", tiny_dirs["aion-base"], precision="fp32")
    final, blocks = _all_blocks(emb, emb.prepare(_inputs("aion-base")))
    model = emb.model.model
    flux = emb.prepare(_inputs("aion-base"))  # afresh: the codec rescales its input in place
    tokens = emb.model.codec.encode(emb.modality(flux=flux, bands=emb.bands))
    with torch.no_grad():
        x, x_emb, mask, _ = model.embed_inputs({emb.modality.token_key: tokens}, num_encoder_tokens=tokens.shape[1])
        for j in range(len(blocks)):
            cut = copy.deepcopy(model)  # the package's forward_encoder over blocks 0..j, no final norm
            cut.encoder, cut.encoder_norm = cut.encoder[: j + 1], torch.nn.Identity()
            want = cut.forward_encoder(x + x_emb, encoder_mask=mask).mean(1)
            torch.testing.assert_close(blocks[j], want, rtol=1e-6, atol=1e-6)


def _astroclip_dir(golden, tmp_path):  # noqa: F811
    torch.save({"state_dict": golden.fixed.state_dict(golden.meta["astroclip_shapes"]),
                "hyper_parameters": {}}, tmp_path / "astroclip.ckpt")
    return tmp_path


def test_astroclip_image_blocks_equal_upstream_backbone_blocks(golden, tmp_path):  # noqa: F811
    emb = load_embedder("astroclip-image", _astroclip_dir(golden, tmp_path), device="cpu", precision="fp32")
    emb.bind({"survey": "legacysurvey", "bands": golden.fixed.LEGACY_BANDS, "zero_point": 22.5})
    final, blocks = _all_blocks(emb, emb.prepare(golden.flux))
    assert emb.block_names() == ["backbone block 1", "backbone block 2"] and golden.image_blocks.shape[0] == 2
    np.testing.assert_allclose(np.stack(blocks), golden.image_blocks, rtol=0, atol=2e-6)
    np.testing.assert_allclose(final.numpy(), golden.image_embedding, rtol=0, atol=2e-6)


def test_astroclip_spectrum_blocks_equal_upstream_specformer_blocks(golden, tmp_path):  # noqa: F811
    emb = load_embedder("astroclip-spectrum", _astroclip_dir(golden, tmp_path), device="cpu", precision="fp32")
    final, blocks = _all_blocks(emb, emb.prepare(golden.spectra))
    np.testing.assert_allclose(np.stack(blocks), golden.spectrum_blocks, rtol=0, atol=2e-6)
    np.testing.assert_allclose(final.numpy(), golden.spectrum_embedding, rtol=0, atol=2e-6)


def test_specformer_blocks_equal_upstream_blocks(golden, tmp_path):  # noqa: F811
    torch.save({"hyper_parameters": dict(golden.meta["specformer_hp"]),
                "state_dict": golden.fixed.state_dict(golden.meta["specformer_shapes"])}, tmp_path / "specformer.ckpt")
    emb = load_embedder("specformer-base", tmp_path, device="cpu", precision="fp32")
    final, blocks = _all_blocks(emb, emb.prepare(golden.spectra))
    assert emb.block_names() == ["block 1", "block 2"]
    np.testing.assert_allclose(np.stack(blocks), golden.specformer_blocks, rtol=0, atol=2e-6)
    np.testing.assert_allclose(final.numpy(), golden.specformer_embedding, rtol=0, atol=2e-6)


# ---------------------------------------------------------------------------------------------- embed_file
N = N_IMAGES  # the images fixture's (conftest)


def _run(pre, out, source, key="astropt-small", layers="final", **kw):
    kw = {"batch_size": 3, "shard_size": 4, "device": "cpu", **kw}
    layers_path = out.with_name(out.stem + ".layers.h5") if layers != "final" else None
    embed_file(pre, out, model_key=key, source=source, layers=layers, layers_path=layers_path, **kw)
    return schema.read_embeddings(out), (schema.read_layers(layers_path) if layers_path else None)


@pytest.mark.parametrize("key", ["astropt-small", "vit-base", "convnextv2-nano"])
def test_layers_file_round_trips_and_the_final_embedding_is_unchanged(key, images, tiny_dirs, tmp_path):
    (ids0, final0, _), _ = _run(images, tmp_path / "off.h5", tiny_dirs[key], key)
    (ids, final, prov), (lids, blocks, names, lprov) = _run(images, tmp_path / "on.h5", tiny_dirs[key], key, "all")
    assert np.array_equal(final, final0) and ids.tolist() == ids0.tolist() == lids.tolist()
    emb = load_embedder(key, tiny_dirs[key], device="cpu", precision="fp32")
    assert names == emb.block_names() and lprov["block_index"] == list(range(len(names)))
    assert lprov["n_blocks"] == len(names) and lprov["model"] == key and lprov["fingerprint"] == prov["fingerprint"]
    _, want = _all_blocks(emb, emb.prepare(schema.read_preprocessed(images)[1]))
    for got, w in zip(blocks, want):  # float16 on disk: exactly the float16 rounding of the blocks
        assert got.dtype == np.float32 and np.array_equal(got, w.numpy().astype(np.float16).astype(np.float32))
    assert not (tmp_path / "on.h5.shards").exists()


def test_a_selection_of_blocks_records_names_and_indices(images, tiny_dirs, tmp_path):
    _, (_, blocks, names, prov) = _run(images, tmp_path / "sel.h5", tiny_dirs["astropt-small"], layers=[-1, 1])
    _, (_, every, _, _) = _run(images, tmp_path / "all.h5", tiny_dirs["astropt-small"], layers="all")
    assert names == ["block 2", "block 4"] and prov["block_index"] == [1, 3] and prov["n_blocks"] == 4
    assert np.array_equal(blocks[0], every[1]) and np.array_equal(blocks[1], every[3])


def test_bad_layer_index_fails_before_embedding_naming_model_and_range(images, tiny_dirs, tmp_path):
    with pytest.raises(ValueError, match=r"layers \[4\] out of range for model 'astropt-small': it has 4 blocks, "
                                         r"so indices run 0..3"):
        _run(images, tmp_path / "bad.h5", tiny_dirs["astropt-small"], layers=[0, 4])
    assert not (tmp_path / "bad.h5").exists() and not list((tmp_path).glob("bad.h5.shards/*.npz"))
    with pytest.raises(ValueError, match="layers_path is needed exactly when layers are asked for"):
        embed_file(images, tmp_path / "x.h5", model_key="astropt-small", source=tiny_dirs["astropt-small"],
                   device="cpu", layers="all")


def _interrupt(pre, out, source, monkeypatch, shards, layers):
    kill_after_shards(monkeypatch, shards, lambda: _run(pre, out, source, layers=layers), out)


def test_layers_resume_from_shards_and_match_one_go(images, tiny_dirs, tmp_path, monkeypatch):
    source = tiny_dirs["astropt-small"]
    (_, whole, _), (_, whole_blocks, _, _) = _run(images, tmp_path / "whole.h5", source, layers="all")
    out = tmp_path / "resumed.h5"
    _interrupt(images, out, source, monkeypatch, shards=2, layers="all")
    computed = count_embedded_rows(monkeypatch)
    (_, final, _), (_, blocks, _, _) = _run(images, out, source, layers="all")
    assert computed == [["obj8", "obj9"]]  # only the last shard was computed again
    assert np.array_equal(final, whole) and all(np.array_equal(a, b) for a, b in zip(blocks, whole_blocks))


@pytest.mark.parametrize("first", ["final", [0]])
def test_shards_of_another_layer_selection_are_not_reused(first, images, tiny_dirs, tmp_path, monkeypatch, caplog):
    source = tiny_dirs["astropt-small"]
    out = tmp_path / "emb.h5"
    _interrupt(images, out, source, monkeypatch, shards=1, layers=first)
    with caplog.at_level(logging.WARNING, logger="samesky.embed"):
        (_, final, _), (_, blocks, names, _) = _run(images, out, source, layers="all")
    assert "discarding stale shard" in caplog.text and len(names) == 4
    (_, fresh, _), (_, fresh_blocks, _, _) = _run(images, tmp_path / "fresh.h5", source, layers="all")
    assert np.array_equal(final, fresh) and all(np.array_equal(a, b) for a, b in zip(blocks, fresh_blocks))


def test_layer_runs_need_more_memory_and_time_on_the_cluster():
    for key in ("vit-base", "astropt-large"):
        off, on = resources_for(key, 1), resources_for(key, 1, layers=True)
        assert on["mem_mb"] == off["mem_mb"] + 5000 and 0 <= on["runtime"] - 2 * off["runtime"] <= 1  # int()
        assert resources_for(key, 2, layers=True)["mem_mb"] > on["mem_mb"]



# ---------------------------------------------------------------------------------------------- schema
def test_write_layers_round_trips_float16_blocks_of_any_width(tmp_path):
    ids = ["a", "b", "c"]
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(3, 4)) * 100, rng.normal(size=(3, 2)).astype(np.float32)]
    schema.write_layers(tmp_path / "l.h5", ids, blocks, ["layer 1", "layer 2"], {"model": "m"})
    got_ids, got, names, prov = schema.read_layers(tmp_path / "l.h5")
    assert got_ids.tolist() == ids and names == ["layer 1", "layer 2"] and prov == {"model": "m", "blocks": names}
    for g, b in zip(got, blocks):
        assert g.dtype == np.float32 and np.array_equal(g, b.astype(np.float16).astype(np.float32))


def test_write_layers_reads_a_lazy_sequence_one_block_at_a_time(tmp_path):
    class Lazy:
        def __init__(self):
            self.reads = []

        def __len__(self):
            return 3

        def __getitem__(self, j):
            if j >= 3:
                raise IndexError(j)
            self.reads.append(j)
            return np.full((2, 2), float(j))

    lazy = Lazy()
    schema.write_layers(tmp_path / "l.h5", ["a", "b"], lazy, ["x", "y", "z"], {})
    assert lazy.reads == [0, 1, 2] and [b[0, 0] for b in schema.read_layers(tmp_path / "l.h5")[1]] == [0, 1, 2]


def test_write_layers_refuses_float16_overflow_nan_bad_shapes_and_name_mismatch(tmp_path):
    ok = np.zeros((2, 3))
    big = ok.copy()
    big[1, 2] = 7e4
    with pytest.raises(schema.SchemaError, match=r"block 'layer 2'.*1 rows have values beyond float16's range "
                                                 r"\(\|x\| > 65504\), e.g. object_id \['b'\]"):
        schema.write_layers(tmp_path / "l.h5", ["a", "b"], [ok, big], ["layer 1", "layer 2"], {})
    nan = ok.copy()
    nan[0, 0] = np.nan
    with pytest.raises(schema.SchemaError, match=r"block 'layer 1'.*NaN or inf, e.g. object_id \['a'\]"):
        schema.write_layers(tmp_path / "l.h5", ["a", "b"], [nan], ["layer 1"], {})
    with pytest.raises(schema.SchemaError, match="2 blocks but 1 block names"):
        schema.write_layers(tmp_path / "l.h5", ["a", "b"], [ok, ok], ["layer 1"], {})
    with pytest.raises(schema.SchemaError, match=r"block 'layer 1' has shape \(3, 3\), expected \(2, d\)"):
        schema.write_layers(tmp_path / "l.h5", ["a", "b"], [np.zeros((3, 3))], ["layer 1"], {})
    assert not (tmp_path / "l.h5").exists()  # nothing half-written


def test_read_layers_refuses_a_file_without_block_names(tmp_path):
    schema.write_embeddings(tmp_path / "e.h5", ["a"], np.zeros((1, 2), np.float32), {"model": "m"})
    with pytest.raises(schema.SchemaError, match="no 'blocks' list in its provenance; not a layers file"):
        schema.read_layers(tmp_path / "e.h5")
