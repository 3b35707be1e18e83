"""Model zoo: every family saved tiny in its real on-disk format, loaded back, pooled as documented."""
import importlib
import os
import pickle
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from samesky.models import MODELS, CheckpointError, family_sizes, get_model, load_embedder, resources_for, save_tiny
from samesky.models.astropt import _as_astropt_module, spiral_order
from samesky.models.checkpoint import Stub, load_checkpoint
from samesky.models.specformer import spectrum_tokens

# Parametrised over the registry, so a new family cannot go untested: the smallest model of every
# family and modality (AstroCLIP: both towers) runs every test of the "every family" section, every
# Hugging Face family the transformers comparison (its study pooling in STUDY_POOLING), and every
# other family needs a test marked ``@pytest.mark.oracle(family)`` that compares it with code nobody
# here wrote (test_every_family_has_a_label_and_is_tested_against_an_oracle).
RUNNABLE = sorted(min((s for s in MODELS.values() if (s.family, s.modality) == fm), key=lambda s: s.params).key
                  for fm in {(s.family, s.modality) for s in MODELS.values()})
HF_KEYS = [key for key in RUNNABLE if get_model(key).adapter == "hf"]

@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    return {key: save_tiny(key, tmp_path_factory.mktemp(key)) for key in RUNNABLE}


LEGACY = {"survey": "legacysurvey", "bands": ["g", "r", "i", "z"], "zero_point": 22.5}


def _inputs(key, side=160, n=3, seed=0):
    rng = np.random.default_rng(seed)
    kind = get_model(key).input_kind
    if kind == "rgb":
        return rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8)
    if kind == "flux":  # Legacy g, r, i, z in nanomaggies: a galaxy on a noisy sky
        y, x = np.mgrid[:side, :side] - side / 2
        galaxy = np.exp(-(x**2 + y**2) / 60.0) * rng.uniform(0.5, 5, (n, 4, 1, 1))
        return (galaxy + 0.02 * rng.normal(size=(n, 4, side, side))).astype(np.float32)
    return (rng.normal(size=(n, 7781)) + 3).astype(np.float32)


def _load(key, source, **kw):
    """load_embedder, bound to Legacy Survey inputs for the models that take raw fluxes."""
    emb = load_embedder(key, source, device="cpu", **kw)
    if get_model(key).input_kind == "flux":
        emb.bind(LEGACY)
    return emb


# ---------------------------------------------------------------------------------------------- registry
def test_registry_covers_table3_and_extras():
    table3 = {"vit": [86, 304, 632], "dinov2": [22, 86, 304, 1100], "convnextv2": [15, 28, 89, 198],
              "ijepa": [630, 1000], "astropt": [15, 95, 850], "specformer": [43]}
    for family, params in table3.items():
        assert [get_model(f"{family}-{s}").params for s in family_sizes(family)] == [p * 10**6 for p in params]
    assert family_sizes("astropt") == ["small", "base", "large"]
    assert family_sizes("dinov2") == ["small", "base", "large", "giant"]
    assert get_model("ijepa-huge").hub_id == "facebook/ijepa_vith14_22k"
    assert get_model("ijepa-giant").hub_id == "facebook/ijepa_vitg16_22k"
    assert get_model("astropt-large").filename == "astropt/850M/ckpt.pt"
    assert get_model("astroclip-image").dim == get_model("astroclip-spectrum").dim == 1024
    for key, spec in MODELS.items():
        assert key == f"{spec.family}-{spec.size}" and spec.pooling and spec.input_recipe
    assert get_model("vit-base").supports("jwst") and not get_model("vit-base").supports("desi")
    assert get_model("specformer-base").supports("desi") and not get_model("aion-base").supports("jwst")


def _oracle_marks() -> dict[str, list[str]]:
    """family -> the tests under tests/ decorated ``@pytest.mark.oracle(family, ...)`` (read from the source)."""
    import ast
    from pathlib import Path

    found = {}
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            for dec in getattr(node, "decorator_list", []):
                if isinstance(dec, ast.Call) and ast.unparse(dec.func) == "pytest.mark.oracle":
                    for arg in dec.args:
                        found.setdefault(ast.literal_eval(arg), []).append(f"{path.name}::{node.name}")
    return found


def test_every_family_has_a_label_and_is_tested_against_an_oracle():
    from samesky.models.registry import FAMILIES, family_label

    families = {s.family for s in MODELS.values()}
    assert families == set(FAMILIES), "every family needs exactly one models.registry.Family (its label)"
    assert family_label("dinov2") == "DINOv2" and family_label("vit@random") == "ViT (untrained)"
    assert {get_model(key).family for key in RUNNABLE} == families
    oracles = _oracle_marks()
    assert "test_models_upstream.py::test_specformer_equals_upstream_as_the_study_pooled_it" in oracles["specformer"]
    for family in sorted(families):
        adapters = {s.adapter for s in MODELS.values() if s.family == family}
        for adapter in adapters:
            module = importlib.import_module(f"samesky.models.{adapter}")  # what load_embedder imports
            assert callable(module.load) and callable(module.save_random), adapter
        if adapters == {"hf"}:
            assert family in STUDY_POOLING, f"{family}: add the study's pooling to STUDY_POOLING"
        else:
            assert oracles.get(family), f"{family} (adapter {sorted(adapters)}): mark its oracle test @pytest.mark.oracle"


def test_unknown_model_and_family_list_known_ones():
    with pytest.raises(KeyError, match="vit-base"):
        get_model("vit-tiny")
    with pytest.raises(KeyError, match="astropt"):
        family_sizes("nope")


def test_embed_cores_feed_the_gpu_and_grow_with_model_speed():
    from samesky.models.resources import EMBED_RATES, MAX_EMBED_CPUS, embed_cpus

    assert set(EMBED_RATES) == set(MODELS)
    for key, (forward, per_core) in EMBED_RATES.items():
        cpus = embed_cpus(key)
        assert 2 <= cpus <= MAX_EMBED_CPUS and forward > 0 and per_core > 0, key
        workers = cpus - 1  # one core runs the forward loop
        assert workers * per_core >= forward or cpus == MAX_EMBED_CPUS, f"{key}: {workers} workers starve the GPU"
        assert (workers - 1) * per_core < forward, f"{key}: one worker fewer would do"
    # a small fast model needs more input workers than a large slow one of the same family
    for family in {s.family for s in MODELS.values()} - {"astroclip"}:  # astroclip: two towers, not sizes
        cpus = [embed_cpus(f"{family}-{size}") for size in family_sizes(family)]
        assert cpus == sorted(cpus, reverse=True), (family, cpus)
        assert cpus[0] > cpus[-1] or family not in ("vit", "dinov2", "convnextv2", "astropt"), (family, cpus)
    with pytest.raises(KeyError, match="dinov3-base"):
        embed_cpus("dinov3-base")


def test_resources_grow_with_size_and_attempt():
    small, big = resources_for("dinov2-small", 1), resources_for("dinov2-giant", 1)
    assert big["mem_mb"] > small["mem_mb"] and big["runtime"] > small["runtime"] and small["gpu"] == 1
    retry = resources_for("dinov2-small", 2)
    assert retry["mem_mb"] > small["mem_mb"] and retry["runtime"] > small["runtime"]


# ---------------------------------------------------------------------------------------------- AION-1
AION_BANDS = {"hsc": ["g", "r", "i", "z", "y"], "legacysurvey": ["g", "r", "i", "z"]}


def _raw_flux(survey, n=3, side=160, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:side, :side] - side / 2
    galaxy = np.exp(-(x**2 + y**2) / 50.0)
    scale = rng.uniform(0.5, 3.0, (n, len(AION_BANDS[survey]), 1, 1))
    return (scale * galaxy + 0.05 * rng.normal(size=(n, len(AION_BANDS[survey]), side, side))).astype(np.float32)


@pytest.fixture(scope="module")
def aion_dir(tmp_path_factory):
    return save_tiny("aion-base", tmp_path_factory.mktemp("aion"))


def test_aion_registry_sizes_and_inputs():
    assert family_sizes("aion") == ["base", "large", "xlarge"]
    assert [get_model(f"aion-{s}").dim for s in family_sizes("aion")] == [768, 1024, 2048]
    assert {get_model(k).input_kind for k in ("aion-base", "vit-base", "specformer-base")} == {"flux", "rgb", "spectrum"}
    assert get_model("aion-base").supports("legacysurvey") and not get_model("aion-base").supports("jwst")


@pytest.mark.oracle("aion")
@pytest.mark.parametrize("survey", ["hsc", "legacysurvey"])
def test_aion_tiny_embeds_raw_fluxes_as_the_mean_of_all_576_encoder_tokens(survey, aion_dir):
    import json

    from aion import AION
    from aion.codecs import ImageCodec
    from aion.modalities import HSCImage, LegacySurveyImage

    emb = load_embedder("aion-base", aion_dir, device="cpu")
    emb.bind({"survey": survey, "bands": AION_BANDS[survey]})
    x = _raw_flux(survey)
    before = x.copy()
    got = emb.embed(x)
    assert got.shape == (3, 32) == (3, emb.dim) and torch.isfinite(got).all()
    np.testing.assert_array_equal(x, before)  # the codec's in-place rescaling never reaches the caller's array
    # by hand, through the package's own classes (codec config passed explicitly, as the adapter does)
    model = AION.from_pretrained(aion_dir).eval()
    config = json.loads((aion_dir / "codecs" / "image" / "config.json").read_text())
    codec = ImageCodec.from_pretrained(aion_dir, modality=LegacySurveyImage, **config).eval()
    modality = HSCImage if survey == "hsc" else LegacySurveyImage
    prefix = "HSC" if survey == "hsc" else "DES"
    bands = [f"{prefix}-{b.upper()}" for b in AION_BANDS[survey]]
    with torch.no_grad():
        tokens = codec.encode(modality(flux=torch.from_numpy(x.copy()), bands=bands))
        assert tokens.shape == (3, 576)
        full = model.encode({modality.token_key: tokens}, num_encoder_tokens=576).mean(1)
        truncated = model.encode({modality.token_key: tokens}).mean(1)  # the package default keeps 256 tokens
    torch.testing.assert_close(got, full, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, truncated, atol=1e-4)
    other = "legacysurvey" if survey == "hsc" else "hsc"
    emb.bind({"survey": other, "bands": AION_BANDS[other]})
    assert not torch.allclose(emb.embed(_raw_flux(other)), got[:, :], atol=1e-4)


def test_aion_codec_runs_in_fp32_under_bf16_autocast(aion_dir):
    """Tokens are a quantisation: the codec must not run in reduced precision."""
    dtypes, embeddings = {"codec": set(), "model": set()}, {}
    for precision in ("fp32", "bf16"):
        emb = load_embedder("aion-base", aion_dir, device="cpu", precision=precision)
        emb.bind({"survey": "hsc", "bands": AION_BANDS["hsc"]})
        for part in ("codec", "model"):
            for module in getattr(emb.model, part).modules():
                if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                    module.register_forward_hook(
                        lambda m, i, out, part=part, p=precision: dtypes[part].add((p, out.dtype)))
        embeddings[precision] = emb.embed(_raw_flux("hsc"))
    assert dtypes["codec"] == {("fp32", torch.float32), ("bf16", torch.float32)}
    assert ("bf16", torch.bfloat16) in dtypes["model"]  # the transformer did run in bf16
    assert torch.nn.functional.cosine_similarity(embeddings["fp32"], embeddings["bf16"]).min() > 0.98


def test_aion_refuses_surveys_and_bands_it_has_no_codec_for(aion_dir):
    emb = load_embedder("aion-base", aion_dir, device="cpu")
    with pytest.raises(ValueError, match="no image codec for survey 'jwst'"):
        emb.bind({"survey": "jwst", "bands": ["f090w"]})
    with pytest.raises(ValueError, match=r"bands \['u'\] of survey 'hsc' have no AION codec channel"):
        emb.bind({"survey": "hsc", "bands": ["g", "u"]})
    emb.bind({"survey": "hsc", "bands": AION_BANDS["hsc"]})
    with pytest.raises(ValueError, match=r"expected raw fluxes \(B, 5, H, W\)"):
        emb.embed(_raw_flux("legacysurvey"))


def test_aion_weights_with_a_missing_key_or_no_codec_fail_naming_them(tmp_path):
    out = save_tiny("aion-base", tmp_path / "missing")
    weights = load_file(out / "model.safetensors")
    name = sorted(weights)[0]
    weights.pop(name)
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=rf"weights do not match aion-base: .*{re.escape(name)}"):
        load_embedder("aion-base", out, device="cpu")
    out = save_tiny("aion-base", tmp_path / "nocodec")
    (out / "codecs" / "image" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"codecs/image/config\.json"):
        load_embedder("aion-base", out, device="cpu")


# ---------------------------------------------------------------------------------------------- every family
@pytest.mark.parametrize("key", RUNNABLE)
def test_tiny_roundtrip_dim_and_determinism(key, tiny_dirs, tmp_path):
    emb = _load(key, tiny_dirs[key])
    sides = (160, 96) if get_model(key).modality == "image" else (None,)
    for side in sides:
        out = emb.embed(_inputs(key, side or 0))
        assert out.shape == (3, get_model(key).tiny["dim"]) == (3, emb.dim)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
    again = _load(key, save_tiny(key, tmp_path)).embed(_inputs(key))
    assert torch.equal(again, emb.embed(_inputs(key)))  # seeded: same weights, same embedding
    assert emb.describe()["model"] == key and emb.describe()["source"] == str(tiny_dirs[key])


@pytest.mark.parametrize("key", RUNNABLE)
def test_bf16_autocast_is_applied_and_stays_close_to_fp32(key, tiny_dirs):
    from samesky.models.registry import weights_dtype

    x = _inputs(key)
    full = _load(key, tiny_dirs[key], precision="fp32").embed(x)
    half = _load(key, tiny_dirs[key], precision="bf16")
    assert half.precision == "bf16" and half.describe()["precision"] == "bf16"
    got = half.embed(x)
    if weights_dtype(key) == "bf16":  # bf16 weights (the VLMs): the forward is bf16 whatever the precision
        assert torch.equal(got, full) and next(half.model.parameters()).dtype == torch.bfloat16
        return
    assert got.dtype == torch.float32 and not torch.equal(got, full)  # reduced precision did run
    assert torch.nn.functional.cosine_similarity(got, full).min() > 0.98


def test_paper_config_embeds_in_fp32_and_bf16_is_opt_in(paper_config, breadth_config):
    """The study ran fp32; bf16 autocast changes embeddings (benchmarks/bench_embed.py --drift)."""
    from samesky.config import validate_config
    from samesky.plan import Plan

    assert paper_config["embed"]["precision"] == "fp32"
    assert Plan(validate_config(paper_config)).embed_params()["precision"] == "fp32"
    breadth_config.get("embed", {}).pop("precision", None)
    assert validate_config(breadth_config)["embed"]["precision"] == "fp32"  # the schema default


def test_precision_choices():
    from samesky.models.base import resolve_precision

    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    with pytest.raises(ValueError, match="'fp16' is not supported on CPU"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", torch.device("cpu"))


# The study's pooling per family (platonic-universe scripts/get_embs.py, lines 131-138 at bbc19d1), and a
# plausible wrong one that the adapter must not match.
STUDY_POOLING = {
    "vit": (lambda h: h[:, 1:].mean(1), lambda h: h.mean(1)),
    "dinov2": (lambda h: h[:, 0], lambda h: h[:, 1:].mean(1)),
    "convnextv2": (lambda h: h.mean(dim=(2, 3)), lambda h: h.amax(dim=(2, 3))),
    "ijepa": (lambda h: h.mean(1), lambda h: h[:, 1:].mean(1)),
}


def _pil_pixels(config: dict, images: np.ndarray) -> torch.Tensor:
    """Pixel values computed with PIL directly from a saved preprocessor_config.json (square inputs).

    What the paper-era slow processors do: PIL resize of the uint8 image (ViT, SigLIP: to size; Bit, CLIP:
    shortest edge then centre crop; ConvNeXt below 384: shortest edge / crop_pct then centre crop), /255,
    (x - mean) / std. Torch-side antialiased resizing differs from PIL by up to 1/255 (bilinear) and
    ~0.1 (bicubic) of the [0, 1] range on these inputs, so equality here pins the backend.
    """
    from PIL import Image

    kind, resample = config["image_processor_type"].removesuffix("Pil"), Image.Resampling(config["resample"])
    if kind in ("ViTImageProcessor", "SiglipImageProcessor"):
        resize, crop = (config["size"]["height"], config["size"]["width"]), None
    elif kind in ("BitImageProcessor", "CLIPImageProcessor"):
        resize = (config["size"]["shortest_edge"],) * 2
        crop = (config["crop_size"]["height"], config["crop_size"]["width"])
    elif kind == "ConvNextImageProcessor":
        assert config["size"]["shortest_edge"] < 384
        resize, crop = (int(config["size"]["shortest_edge"] / config["crop_pct"]),) * 2, (config["size"]["shortest_edge"],) * 2
    else:
        raise KeyError(f"no PIL reference for {kind}: add one before adding the family")
    out = []
    for chw in images:
        image = Image.fromarray(chw.transpose(1, 2, 0)).resize(resize[::-1], resample)
        if crop:
            top, left = (resize[0] - crop[0]) // 2, (resize[1] - crop[1]) // 2
            image = image.crop((left, top, left + crop[1], top + crop[0]))
        x = np.asarray(image).astype(np.float64) / 255.0
        x = (x - np.array(config["image_mean"])) / np.array(config["image_std"])
        out.append(x.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out).astype(np.float32))


@pytest.mark.parametrize("key", HF_KEYS)
def test_hf_embedding_equals_transformers_model_on_pil_processed_pixels(key, tiny_dirs):
    """Input pipeline included: uint8 RGB -> PIL processing -> transformers' own model -> the study's pooling."""
    import json

    from transformers import AutoModel
    from transformers.image_processing_backends import PilBackend

    emb = load_embedder(key, tiny_dirs[key], device="cpu", precision="fp32")
    assert isinstance(emb.processor, PilBackend) and type(emb.processor).__name__.endswith("ImageProcessorPil")
    config = json.loads((tiny_dirs[key] / "preprocessor_config.json").read_text())
    right, wrong = STUDY_POOLING[get_model(key).family]
    model = AutoModel.from_pretrained(tiny_dirs[key]).eval()
    for side in (160, 96):
        x = _inputs(key, side)
        pixels = _pil_pixels(config, x)
        torch.testing.assert_close(emb.prepare(x), pixels, rtol=0, atol=1e-6)
        with torch.no_grad():
            hidden = model(pixel_values=pixels).last_hidden_state
        got = emb.embed(x)
        torch.testing.assert_close(got, right(hidden), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(got, wrong(hidden), atol=1e-4)


def test_hf_processors_are_asked_for_the_pil_backend(monkeypatch, tmp_path):
    """Whatever is installed: with torchvision, transformers 5 would otherwise pick its processors."""
    import transformers

    asked, real = [], transformers.AutoImageProcessor.from_pretrained

    def spy(*args, **kwargs):
        asked.append(kwargs.get("backend"))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoImageProcessor, "from_pretrained", spy)
    out = save_tiny("vit-base", tmp_path / "vit")
    load_embedder("vit-base", out, device="cpu")
    assert asked == ["pil"]
    monkeypatch.setattr(transformers.AutoImageProcessor, "from_pretrained", lambda *a, **k: object())
    with pytest.raises(CheckpointError, match="got image processor object, not a PIL-backend one"):
        load_embedder("vit-base", out, device="cpu")


def test_spiral_order_is_astropts():
    # from astropt 2.0.9's GalaxyImageDataset.spiralise (centre first, spiralling out)
    assert spiral_order(3).tolist() == [4, 3, 6, 7, 8, 5, 2, 1, 0]
    assert spiral_order(4).tolist() == [9, 10, 6, 5, 4, 8, 12, 13, 14, 15, 11, 7, 3, 2, 1, 0]


def test_astropt_tokens_and_middle_block_pooling(tiny_dirs):
    emb = load_embedder("astropt-small", tiny_dirs["astropt-small"], device="cpu")
    x = _inputs("astropt-small", 96)
    inputs = emb.prepare(x)
    img = x[1].astype(np.float64).transpose(0, 2, 1)  # (C, W, H), then naive patching: (p1 p2 c) tokens, z-scored, spiral
    raster = [img[:, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16].transpose(1, 2, 0).ravel()
              for r in range(6) for c in range(6)]
    raster = [(t - t.mean()) / (t.std(ddof=1) + 1e-8) for t in raster]
    expected = np.stack([raster[i] for i in spiral_order(6)])
    np.testing.assert_allclose(inputs["tokens"][1].numpy(), expected, rtol=1e-4, atol=1e-4)
    assert inputs["positions"][1].tolist() == list(range(36))

    model = emb.model
    with torch.no_grad():
        h = model.transformer.wte["images"](inputs["tokens"]) + model.transformer.wpe["images"](inputs["positions"])
        states = []
        for block in model.transformer.h:
            h = block(h)
            states.append(h)
    n_layer = len(model.transformer.h)
    got = emb.embed(x)
    assert n_layer == 4
    torch.testing.assert_close(got, states[n_layer // 2].mean(1), rtol=1e-5, atol=1e-5)  # after blocks 0, 1, 2
    for wrong in (states[n_layer // 2 - 1], states[-1], model.transformer.ln_f(states[-1])):
        assert not torch.allclose(got, wrong.mean(1), atol=1e-4)


def test_astropt_resizes_to_a_multiple_of_16(tiny_dirs):
    emb = load_embedder("astropt-small", tiny_dirs["astropt-small"], device="cpu")
    assert emb.prepare(_inputs("astropt-small", 100))["tokens"].shape == (3, 36, 768)  # 100 -> 96


def _original_specformer_tokens(x):
    """The original Specformer preprocess, written out: per-window slices, last one always dropped."""
    std, mean = x.std(1, keepdim=True).clip(0.2), x.mean(1, keepdim=True)
    x = ((x - mean) / std)[..., None]
    sections = [x[:, s:s + 20].transpose(1, 2) for s in np.arange(0, x.shape[1] - 10, 10)]
    sections.pop(-1)
    x = torch.nn.functional.pad(torch.cat(sections, 1), (2, 0, 1, 0))
    x[:, 0, 0], x[:, 0, 1] = (mean.squeeze() - 2) / 2, (std.squeeze() - 2) / 8
    return x


def test_specformer_tokens_and_pooling(tiny_dirs):
    emb = load_embedder("specformer-base", tiny_dirs["specformer-base"], device="cpu")
    x = _inputs("specformer-base")
    tokens = emb.prepare(x)
    assert tokens.shape == (3, 778, 22)  # statistics token + 777 windows: pixel 7780 unused
    torch.testing.assert_close(tokens, _original_specformer_tokens(torch.from_numpy(x)))
    full_last = torch.from_numpy(x[:, :7790 - 10]).repeat(1, 2)[:, :7790]  # L = 7790: the dropped window is full
    assert spectrum_tokens(full_last).shape[1] == 778
    torch.testing.assert_close(spectrum_tokens(full_last), _original_specformer_tokens(full_last))
    with torch.no_grad():
        states = emb.model(tokens)
    got = emb.embed(x)
    torch.testing.assert_close(got, states[:, 1:].mean(1), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, states.mean(1), atol=1e-5)


def test_astroclip_towers(tiny_dirs):
    ckpt = load_checkpoint(tiny_dirs["astroclip-image"] / "astroclip.ckpt")
    assert "image_encoder.backbone.blocks.1.1.norm1.weight" in ckpt["state_dict"]  # DINOv2 chunked layout
    image = _load("astroclip-image", tiny_dirs["astroclip-image"])
    assert image.prepare(_inputs("astroclip-image", 160)).shape[-2:] == (144, 144)
    assert image.prepare(_inputs("astroclip-image", 96)).shape[-2:] == (96, 96)
    x = _inputs("astroclip-image", 160)
    crop = image.prepare(x)
    assert crop.shape == (3, 3, 144, 144) and 0 <= crop.min() and crop.max() <= 1
    m = image.model
    with torch.no_grad():
        h = m.cross_attention(m.backbone(crop))
        torch.testing.assert_close(image.embed(x), m.mlp(h)[:, 0], rtol=1e-5, atol=1e-5)  # no residual (upstream)
    spectrum = load_embedder("astroclip-spectrum", tiny_dirs["astroclip-image"], device="cpu")  # one file, two towers
    s = _inputs("astroclip-spectrum")
    with torch.no_grad():
        h = spectrum.model.cross_attention(spectrum.model.backbone(spectrum.prepare(s)))
        torch.testing.assert_close(spectrum.embed(s), (h + spectrum.model.mlp(h))[:, 0], rtol=1e-5, atol=1e-5)


def test_astroclip_image_recipe_on_raw_fluxes():
    """AstroCLIP's dr2 RGB, pixel by pixel, from its published constants."""
    from samesky.models.astroclip import dr2_rgb

    g, r, z = 0.01, 0.2, -0.05  # nanomaggies: faint g, bright r, negative z (sky noise)
    scaled = {"g": g * 6.0 + 0.03, "r": r * 3.4 + 0.03, "z": z * 2.2 + 0.03}
    intensity = (max(scaled["g"], 0) + max(scaled["r"], 0) + max(scaled["z"], 0)) / 3
    stretch = np.arcsinh(20 * intensity) / np.sqrt(20) / intensity
    want = [min(max(scaled[b] * stretch, 0), 1) for b in "zrg"]  # planes R, G, B
    got = dr2_rgb(torch.tensor([g, r, z], dtype=torch.float32).reshape(1, 3, 1, 1))
    np.testing.assert_allclose(got.flatten().numpy(), want, rtol=1e-6)
    assert dr2_rgb(torch.full((1, 3, 1, 1), -1.0)).eq(0).all()  # no signal: black, not NaN


def test_astroclip_image_converts_hsc_fluxes_to_nanomaggies(tiny_dirs):
    emb = load_embedder("astroclip-image", tiny_dirs["astroclip-image"], device="cpu")
    emb.bind(LEGACY)
    x = _inputs("astroclip-image")
    legacy = emb.prepare(x)
    emb.bind({"survey": "hsc", "bands": ["g", "r", "i", "z", "y"], "zero_point": 27.0})
    hsc = np.concatenate([x, x[:, :1]], 1) * 10 ** ((27.0 - 22.5) / 2.5)  # the same fluxes at zero point 27
    torch.testing.assert_close(emb.prepare(hsc), legacy, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"needs g, r, z fluxes with a known zero point; survey 'jwst'"):
        emb.bind({"survey": "jwst", "bands": ["f090w", "f444w"], "zero_point": None})


# ---------------------------------------------------------------------------------------------- strict loading
def _tamper_torch(path, edit):
    with _as_astropt_module():
        ckpt = torch.load(path, weights_only=False)
        edit(ckpt["model"] if "model" in ckpt else ckpt["state_dict"])
        torch.save(ckpt, path)


@pytest.mark.parametrize("key,filename,drop,reported", [
    ("astropt-small", "astropt/015M/ckpt.pt", "transformer.h.1.attn.c_attn.weight", None),
    ("specformer-base", "specformer.ckpt", "blocks.0.mlp.encoder.bias", None),
    ("astroclip-image", "astroclip.ckpt", "image_encoder.backbone.blocks.0.0.ls1.gamma",
     "image_encoder.backbone.blocks.0.ls1.gamma"),  # DINOv2 chunks are reported unchunked
    ("astroclip-spectrum", "astroclip.ckpt", "spectrum_encoder.cross_attention.query", None),
])
def test_checkpoint_with_missing_or_unexpected_key_fails_naming_it(key, filename, drop, reported, tmp_path):
    missing = save_tiny(key, tmp_path / "missing")
    _tamper_torch(missing / filename, lambda sd: sd.pop(drop))
    with pytest.raises(CheckpointError, match=r"missing keys \['" + re.escape(reported or drop) + "'"):
        load_embedder(key, missing, device="cpu")
    extra = save_tiny(key, tmp_path / "extra")
    stray = drop.rsplit(".", 1)[0] + ".stray"
    _tamper_torch(extra / filename, lambda sd: sd.__setitem__(stray, torch.zeros(1)))
    with pytest.raises(CheckpointError, match=r"unexpected keys \['" + re.escape((reported or drop).rsplit(".", 1)[0]) + r"\.stray'"):
        load_embedder(key, extra, device="cpu")


@pytest.mark.parametrize("key", HF_KEYS)
def test_hf_weights_with_missing_or_unexpected_key_fail_naming_it(key, tmp_path):
    for kind in ("missing", "unexpected"):
        out = save_tiny(key, tmp_path / kind)
        weights = load_file(out / "model.safetensors")
        name = next(k for k in sorted(weights) if "patch_embeddings" in k and k.endswith("weight"))
        if kind == "missing":
            weights.pop(name)
        else:
            name = "encoder.stray.weight"
            weights[name] = torch.zeros(2)
        save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
        reported = name.removeprefix("convnextv2.")  # its hub checkpoint is ...ForImageClassification
        with pytest.raises(CheckpointError, match=rf"{kind} keys \['{re.escape(reported)}'\]"):
            load_embedder(key, out, device="cpu")


def test_restricted_unpickler_runs_no_foreign_code(tmp_path):
    target = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.makedirs, (str(target),)

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": {"x": Evil()}}, path)
    ckpt = load_checkpoint(path)
    assert not target.exists() and isinstance(ckpt["hyper_parameters"]["x"], Stub)
    torch.testing.assert_close(ckpt["state_dict"]["w"], torch.ones(2))
    with pytest.raises(pickle.UnpicklingError):  # the real loader would have executed it
        torch.load(path, weights_only=True)


def test_hub_source_offline_fails_clearly(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read at import time from the environment
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        load_embedder("specformer-base", device="cpu")
