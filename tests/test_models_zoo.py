"""Families beyond the paper (DINOv3, ViT-MAE, CLIP, SigLIP 2, V-JEPA 2, LLaVA-OneVision, PaliGemma 2):
each saved tiny in the hub layout, loaded through the real loader, and checked against transformers'
own models (and, for DINOv3 and V-JEPA 2, pixels against transformers' own torchvision processors)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_models import _pil_pixels

from samesky.models import MODELS, family_sizes, get_model, load_embedder, resources_for, save_tiny
from samesky.models.registry import weights_dtype
from samesky.models.resources import check_fits_gpu

GOLDEN = Path(__file__).parent / "golden" / "torchvision_pixels_golden.npz"
ZOO_ADAPTERS = ("hf_zoo", "vlm")
ZOO_FAMILIES = sorted({s.family for s in MODELS.values() if s.adapter in ZOO_ADAPTERS})
# every family of these adapters, smallest size: a new family cannot go untested
ZOO_KEYS = [f"{f}-{family_sizes(f)[0]}" for f in ZOO_FAMILIES]
VISION_KEYS = [k for k in ZOO_KEYS if get_model(k).adapter == "hf_zoo"]
VLM_KEYS = [k for k in ZOO_KEYS if get_model(k).adapter == "vlm"]


@pytest.fixture(scope="module")
def zoo_dirs(tmp_path_factory):
    return {key: save_tiny(key, tmp_path_factory.mktemp(key)) for key in ZOO_KEYS}


def _images(side=96, n=3):
    return np.random.default_rng(side).integers(0, 256, (n, 3, side, side), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- registry
def test_zoo_registry_ids_sizes_and_order():
    assert ZOO_FAMILIES == ["clip", "dinov3", "llavaov", "paligemma2", "siglip2", "vitmae", "vjepa2"]
    assert family_sizes("dinov3") == ["vits16", "vits16plus", "vitb16", "vitl16", "vith16plus", "vit7b16"]
    assert get_model("dinov3-vit7b16").hub_id == "facebook/dinov3-vit7b16-pretrain-lvd1689m"
    assert [get_model(f"vjepa2-{s}").hub_id for s in family_sizes("vjepa2")] == [
        "facebook/vjepa2-vitl-fpc64-256", "facebook/vjepa2-vith-fpc64-256", "facebook/vjepa2-vitg-fpc64-256"]
    assert get_model("vitmae-huge").hub_id == "facebook/vit-mae-huge"
    assert get_model("clip-large").hub_id == "openai/clip-vit-large-patch14"
    assert get_model("siglip2-so400m").hub_id == "google/siglip2-so400m-patch14-384"
    assert get_model("llavaov-7b").hub_id == "llava-hf/llava-onevision-qwen2-7b-ov-hf"
    assert [get_model(f"paligemma2-{s}").hub_id for s in family_sizes("paligemma2")] == [
        f"google/paligemma2-{s}-mix-224" for s in ("3b", "10b", "28b")]
    assert {weights_dtype(k) for k in VLM_KEYS} == {"bf16"} and {weights_dtype(k) for k in VISION_KEYS} == {"fp32"}


def test_zoo_keys_fit_the_workflow_wildcards_and_have_labels():
    import re

    from samesky.report.records import family_label

    for key in MODELS:  # workflow/rules/common.smk: model="[a-z0-9]+(@random)?-[a-z0-9]+"
        assert re.fullmatch(r"[a-z0-9]+(@random)?-[a-z0-9]+", key), key
    assert [family_label(f) for f in ZOO_FAMILIES] == ["CLIP", "DINOv3", "LLaVA-OneVision", "PaliGemma 2",
                                                       "SigLIP 2", "ViT-MAE", "V-JEPA 2"]


def _count_on_meta(spec) -> int:
    from transformers import AutoConfig, AutoModel

    cfg = dict(spec.arch["config"])
    with torch.device("meta"):
        model = AutoModel.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    parts = [model.get_submodule(p) for p in spec.arch.get("counted", [""])]
    return sum(p.numel() for part in parts for p in part.parameters())


@pytest.mark.parametrize("key", [k for k, s in MODELS.items() if s.adapter in ZOO_ADAPTERS])
def test_params_are_counted_from_the_architecture(key):
    """The size axis: the registry's count equals the real architecture built on the meta device."""
    assert get_model(key).params == _count_on_meta(get_model(key))


def test_published_sizes_match_the_counts():
    """The counts land on the published sizes (DINOv3 paper table; V-JEPA 2, PaliGemma 2 model cards)."""
    billions = {"dinov3-vits16": 0.021, "dinov3-vitl16": 0.30, "dinov3-vith16plus": 0.84, "dinov3-vit7b16": 6.7,
                "vjepa2-large": 0.30, "vjepa2-giant": 1.0, "paligemma2-3b": 3.0, "paligemma2-28b": 27.7}
    for key, b in billions.items():
        assert abs(get_model(key).params / 1e9 - b) / b < 0.05, key


# ---------------------------------------------------------------------------------------------- resources
def test_resources_grow_with_size_within_every_zoo_family():
    for family in ZOO_FAMILIES:
        res = [resources_for(f"{family}-{s}") for s in family_sizes(family)]
        for field in ("mem_mb", "runtime", "gpu_mem_mb"):
            values = [r[field] for r in res]
            assert values == sorted(values) and values[0] < values[-1], (family, field, values)
    assert resources_for("paligemma2-28b")["gpu_mem_mb"] > resources_for("dinov3-vit7b16")["gpu_mem_mb"]
    # bf16 weights take half the memory of fp32 ones of the same count
    bf16, fp32 = resources_for("paligemma2-3b"), resources_for("dinov3-vit7b16")
    assert bf16["gpu_mem_mb"] < fp32["gpu_mem_mb"] * get_model("paligemma2-3b").params / get_model("dinov3-vit7b16").params


def test_a_model_that_cannot_fit_the_gpu_is_refused_naming_it():
    for key in MODELS:
        check_fits_gpu(key, 80)  # every model of the zoo fits an 80 GB GPU
    with pytest.raises(ValueError, match=r"model 'paligemma2-28b' \(27.67B parameters, bf16 weights\) needs about "
                                         r"\d+ GB of GPU memory, more than the 40 GB of embed.gpu_memory_gb"):
        check_fits_gpu("paligemma2-28b", 40)
    check_fits_gpu("paligemma2-10b", 40)


def test_plan_refuses_a_model_too_large_for_the_configured_gpu(paper_config):
    from samesky.config import ConfigError, validate_config
    from samesky.plan import Plan

    paper_config["models"]["image"]["paligemma2"] = ["3b", "28b"]
    Plan(validate_config(paper_config))  # the 80 GB default fits
    paper_config["embed"]["gpu_memory_gb"] = 40
    with pytest.raises(ConfigError, match=r"embed.gpu_memory_gb: model 'paligemma2-28b' .* more than the 40 GB"):
        Plan(validate_config(paper_config))
    paper_config["embed"]["device"] = "cpu"  # no GPU: nothing to fit
    Plan(validate_config(paper_config))


# ---------------------------------------------------------------------------------------------- vision families
def _reference(key, model, pixels):
    """The authors' pooling on transformers' own model, and a plausible wrong one the adapter must not match."""
    family = get_model(key).family
    with torch.no_grad():
        if family == "dinov3":
            h = model(pixel_values=pixels).last_hidden_state
            return h[:, 0], h[:, 5:].mean(1)  # CLS vs patch mean
        if family == "vitmae":
            model.config.mask_ratio = 0.0
            n = model.embeddings.patch_embeddings.num_patches
            keep_order = torch.arange(n, dtype=torch.float32).expand(len(pixels), n)
            right = model(pixel_values=pixels, noise=keep_order).last_hidden_state[:, 1:].mean(1)
            model.config.mask_ratio = 0.75  # the checkpoint's setting, as the authors ran it
            return right, model(pixel_values=pixels).last_hidden_state[:, 1:].mean(1)
        if family in ("clip", "siglip2"):
            out = model.get_image_features(pixel_values=pixels)
            return out.pooler_output, out.last_hidden_state.mean(1)
        if family == "vjepa2":  # the authors' call: a 16-frame clip, predictor not skipped
            h = model(pixels.repeat(1, 16, 1, 1, 1)).last_hidden_state
            return h.mean(1), h[:, 0]  # (2 frames instead of 16 gives nearly the same mean on a still image)
    raise KeyError(f"no reference for family {family!r}: add one before adding the family")


def _reference_pixels(key, directory, images, side):
    kind = get_model(key).arch["processor_kind"]
    if kind == "pil":
        return _pil_pixels(json.loads((directory / "preprocessor_config.json").read_text()), images)
    with np.load(GOLDEN) as golden:  # transformers' own torchvision processors (tests/golden/make_torchvision_pixels_golden.py)
        return torch.from_numpy(golden[f"{get_model(key).family}-{family_sizes(get_model(key).family)[0]}_tiny_{side}"])


@pytest.mark.oracle("dinov3", "vitmae", "clip", "siglip2", "vjepa2")
@pytest.mark.parametrize("key", VISION_KEYS)
def test_zoo_embedding_equals_transformers_model_on_reference_pixels(key, zoo_dirs):
    from transformers import AutoModel

    emb = load_embedder(key, zoo_dirs[key], device="cpu", precision="fp32")
    model = AutoModel.from_pretrained(zoo_dirs[key]).eval()
    for side in (160, 96):
        x = _images(side)
        pixels = _reference_pixels(key, zoo_dirs[key], x, side)
        torch.testing.assert_close(emb.prepare(x), pixels, rtol=0, atol=1e-6)
        right, wrong = _reference(key, model, pixels)
        got = emb.embed(x)
        assert got.shape == (3, emb.dim) == (3, get_model(key).tiny["dim"])
        torch.testing.assert_close(got, right, rtol=1e-5, atol=1e-5)
        assert got.shape != wrong.shape or not torch.allclose(got, wrong, atol=1e-4)


def test_vjepa2_sees_the_still_image_as_16_frames(zoo_dirs):
    key = VISION_KEYS[[get_model(k).family for k in VISION_KEYS].index("vjepa2")]
    emb = load_embedder(key, zoo_dirs[key], device="cpu")
    seen = []
    emb.model.encoder.embeddings.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    pixels = emb.prepare(_images(96))
    assert pixels.shape == (3, 1, 3, 32, 32)  # one frame leaves the input workers, the repeat happens on the device
    emb.run(pixels)
    assert seen[0].shape == (3, 16, 3, 32, 32) and all(torch.equal(seen[0][:, t], pixels[:, 0]) for t in range(16))


def test_torch_processors_equal_transformers_torchvision_processors_at_real_size():
    """The real DINOv3 / V-JEPA 2 processor configs (224 px; 292 px then crop 256) against the golden arrays."""
    from samesky.models.hf_zoo import TorchProcessor

    with np.load(GOLDEN) as golden:
        for key, kind in (("dinov3-vits16", "torch_image"), ("vjepa2-large", "torch_video")):
            for side in (160, 96):
                got = TorchProcessor(get_model(key).arch["processor"], kind, key)(_images(side)).numpy()
                assert list(got.shape) == golden[f"{key}_real_{side}_shape"].tolist()
                np.testing.assert_array_equal(got[..., :24, :24], golden[f"{key}_real_{side}_corner"])
                np.testing.assert_allclose(got.reshape(3, -1).astype(np.float64).sum(1), golden[f"{key}_real_{side}_sums"],
                                           rtol=1e-9)


def test_torch_processor_refuses_settings_it_does_not_reproduce():
    from samesky.models.hf_zoo import TorchProcessor

    config = dict(get_model("dinov3-vits16").arch["processor"], resample=3)
    with pytest.raises(Exception, match=r"dinov3: resample 3 not supported"):
        TorchProcessor(config, "torch_image", "dinov3")


# ---------------------------------------------------------------------------------------------- VLMs
@pytest.mark.oracle("llavaov", "paligemma2")
@pytest.mark.parametrize("key", VLM_KEYS)
def test_vlm_embedding_equals_the_authors_call_on_transformers_model(key, zoo_dirs):
    """AutoModelForImageTextToText (the authors' class) with output_hidden_states: hidden_states[-1]
    masked-mean pooled, fed exactly the adapter's prepared inputs."""
    from transformers import AutoModelForImageTextToText

    emb = load_embedder(key, zoo_dirs[key], device="cpu", precision="fp32")
    assert next(emb.model.parameters()).dtype == torch.bfloat16 and emb.dim == get_model(key).tiny["dim"]
    assert emb.describe()["weights_dtype"] == "bfloat16"
    full = AutoModelForImageTextToText.from_pretrained(zoo_dirs[key], dtype=torch.bfloat16).eval()
    for side in (160, 96):
        inputs = emb.prepare(_images(side))
        assert set(inputs) <= {"input_ids", "attention_mask", "pixel_values", "image_sizes"}  # no token_type_ids
        with torch.no_grad():
            out = full(**dict(inputs, pixel_values=inputs["pixel_values"].to(torch.bfloat16)), output_hidden_states=True)
        mask = inputs["attention_mask"].to(torch.bfloat16)[..., None]
        want = ((out.hidden_states[-1] * mask).sum(1) / mask.sum(1)).float()
        got = emb.embed(_images(side))
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert not torch.allclose(got, out.hidden_states[-1][:, -1].float(), atol=1e-3)  # not the last token


def test_paligemma2_prompt_is_256_image_tokens_then_bos_space_newline(zoo_dirs):
    """The tiny processor has 16 image tokens (4x4 patches); the real one 256 (16x16 at 224 px)."""
    from transformers import AutoProcessor

    key = "paligemma2-3b"
    emb = load_embedder(key, zoo_dirs[key], device="cpu")
    inputs = emb.prepare(_images(96, n=2))
    processor = AutoProcessor.from_pretrained(zoo_dirs[key], backend="pil")
    tok = processor.tokenizer
    want = [tok.convert_tokens_to_ids("<image>")] * 16 + [tok.bos_token_id] + tok.convert_tokens_to_ids([" ", "\n"])
    assert inputs["input_ids"].tolist() == [want, want] and inputs["attention_mask"].eq(1).all()
    assert get_model(key).arch["prompt"] == "<image> " and get_model(key).arch["processor"]["image_seq_length"] == 256
    config = json.loads((zoo_dirs[key] / "processor_config.json").read_text())["image_processor"]
    torch.testing.assert_close(inputs["pixel_values"], _pil_pixels(config, _images(96, n=2)), rtol=0, atol=1e-6)


def test_llava_onevision_prompt_is_the_processors_image_token_run(zoo_dirs):
    key = "llavaov-500m"
    emb = load_embedder(key, zoo_dirs[key], device="cpu")
    inputs = emb.prepare(_images(96, n=2))
    image_id = emb.processor.tokenizer.convert_tokens_to_ids("<image>")
    assert get_model(key).arch["prompt"] == "<image>"
    ids = inputs["input_ids"]
    assert ids.eq(image_id).all()  # an image-only prompt: nothing but the expanded image tokens, no chat template
    assert inputs["image_sizes"].tolist() == [[96, 96], [96, 96]] and inputs["pixel_values"].shape[:2] == (2, 5)
    # the run is what the model places its image features at: a wrong count would fail inside the model
    assert ids.shape[1] == emb.processor._get_num_multimodal_tokens(image_sizes=[[96, 96]])["num_image_tokens"][0]
    # pixels, by PIL: tile 0 is the image resized to 32 px; tiles 1-4 the image resized to the best grid
    # resolution (64 px for a 96-px image among the tiny pinpoints) cut row by row into 32-px tiles
    config = json.loads((zoo_dirs[key] / "preprocessor_config.json").read_text())
    pixels, x = inputs["pixel_values"], _images(96, n=2)
    torch.testing.assert_close(pixels[:, 0], _pil_pixels(dict(config, image_processor_type="ViTImageProcessor"), x),
                               rtol=0, atol=1e-6)
    grid = _pil_pixels(dict(config, image_processor_type="ViTImageProcessor", size={"height": 64, "width": 64}), x)
    tiles = [grid[..., r:r + 32, c:c + 32] for r in (0, 32) for c in (0, 32)]
    torch.testing.assert_close(pixels[:, 1:], torch.stack(tiles, 1), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------- layers
@pytest.mark.parametrize("key", ZOO_KEYS)
def test_forward_layers_final_is_forward_and_blocks_are_transformers_hidden_states(key, zoo_dirs):
    from samesky.models.vlm import masked_mean

    emb = load_embedder(key, zoo_dirs[key], device="cpu", precision="fp32")
    n_blocks = len(emb.block_names())
    assert n_blocks == 2 and emb.block_names()[0].endswith("block 1")
    inputs = emb.prepare(_images(96))
    with torch.no_grad():
        final, blocks = emb.forward_layers(inputs, list(range(n_blocks)))
        assert torch.equal(final, emb.forward(inputs))
        _, only_last = emb.forward_layers(inputs, [n_blocks - 1])
        assert torch.equal(only_last[0], blocks[-1])
        m, family = emb.model, get_model(key).family
        if family == "vitmae":
            n = m.embeddings.patch_embeddings.num_patches
            hidden = m(pixel_values=inputs, noise=torch.arange(n).float().expand(3, n), output_hidden_states=True)
        elif family in ("clip", "siglip2"):
            hidden = m.vision_model(pixel_values=inputs, output_hidden_states=True)
        elif family == "vjepa2":
            hidden = m(pixel_values_videos=inputs.repeat(1, 16, 1, 1, 1), skip_predictor=True, output_hidden_states=True)
        elif family == "dinov3":
            hidden = m(pixel_values=inputs, output_hidden_states=True)
        else:
            hidden = m(**dict(inputs, pixel_values=inputs["pixel_values"].to(m.dtype)), output_hidden_states=True)
    states = hidden.hidden_states[1:]
    rule = {"dinov3": lambda h: h[:, 0], "vitmae": lambda h: h[:, 1:].mean(1)}.get(
        family, (lambda h: masked_mean(h, inputs["attention_mask"])) if key in VLM_KEYS else (lambda h: h.mean(1)))
    # a VLM's last hidden state is after the final norm; its last block's raw output comes before it
    compared = n_blocks - 1 if key in VLM_KEYS else n_blocks
    for j in range(compared):
        torch.testing.assert_close(blocks[j], rule(states[j]), rtol=0, atol=0)
    if key in VLM_KEYS:
        assert not torch.allclose(blocks[-1].float(), final.float(), atol=1e-3)


# ---------------------------------------------------------------------------------------------- strict loading
@pytest.mark.parametrize("key", ZOO_KEYS)
def test_zoo_weights_with_missing_or_unexpected_key_fail_naming_it(key, tmp_path):
    import re

    from safetensors.torch import load_file, save_file

    from samesky.models import CheckpointError

    for kind in ("missing", "unexpected", "lm_head"):
        out = save_tiny(key, tmp_path / kind)
        weights = load_file(out / "model.safetensors")
        name = next(k for k in sorted(weights) if re.search(r"layers?\.0\..*weight$", k) and "decoder" not in k)
        if kind == "missing":
            weights.pop(name)
        else:
            name = "lm_head.weight" if kind == "lm_head" else "encoder.stray.weight"
            weights[name] = torch.zeros(2, dtype=next(iter(weights.values())).dtype)
        save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
        if kind == "lm_head" and key in VLM_KEYS:  # an untied LM head is not part of the embedding
            load_embedder(key, out, device="cpu")
            continue
        # transformers reports current parameter names (ViT-MAE checkpoints keep legacy ones on disk)
        reported = {"missing": r"missing keys \['[^']*\b0\.[^']*weight'\]",
                    "unexpected": r"unexpected keys \['[^']*stray\.weight'\]",
                    "lm_head": r"unexpected keys \['lm_head\.weight'\]"}[kind]
        with pytest.raises(CheckpointError, match=rf"weights do not match {key}: {reported}"):
            load_embedder(key, out, device="cpu")


def test_torch_processor_config_is_found_under_either_name_or_named_when_missing(tmp_path):
    out = save_tiny("vjepa2-large", tmp_path / "v")
    want = load_embedder("vjepa2-large", out, device="cpu").prepare(_images(96))
    (out / "video_preprocessor_config.json").rename(out / "preprocessor_config.json")
    assert torch.equal(load_embedder("vjepa2-large", out, device="cpu").prepare(_images(96)), want)
    (out / "preprocessor_config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"no processor config \(video_preprocessor_config.json or "
                                                r"preprocessor_config.json\)"):
        load_embedder("vjepa2-large", out, device="cpu")


@pytest.mark.parametrize("key", ["vjepa2-large", "paligemma2-3b", "llavaov-500m"])
def test_the_embed_job_runs_the_zoo_adapters_batch_by_batch(key, zoo_dirs, tmp_path):
    """Through samesky.embed (input workers, batches cut from dict / 5-d inputs, shards): the same rows as
    one call of the embedder."""
    from samesky import schema
    from samesky.embed import embed_file

    pre, out = tmp_path / "hsc.h5", tmp_path / "emb.h5"
    data = _images(48, n=7)
    schema.write_preprocessed(pre, [f"obj{i}" for i in range(7)], data, {"percentiles": [5, 99]})
    embed_file(pre, out, model_key=key, source=zoo_dirs[key], batch_size=3, shard_size=4, device="cpu", workers=1)
    ids, emb, _ = schema.read_embeddings(out)
    assert list(ids) == [f"obj{i}" for i in range(7)]
    want = load_embedder(key, zoo_dirs[key], device="cpu", precision="fp32").embed(data).numpy()
    np.testing.assert_allclose(emb, want, rtol=1e-5, atol=1e-5 if get_model(key).adapter == "hf_zoo" else 2e-2)
