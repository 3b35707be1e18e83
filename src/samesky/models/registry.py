"""The model zoo: one entry per (family, size), the only place a model is described.

A model key is ``f"{family}-{size}"``. Each :class:`ModelSpec` says where the weights live
(``hub_id`` + ``filename`` for single-file checkpoints), how big the model is (``params``,
the size axis of the study), which surveys it can embed (``supports``), which adapter loads
it, what it is fed (``input_recipe``) and how token states become one vector (``pooling``). ``arch`` describes the real architecture (used
to build random-weight instances for benchmarks; real checkpoints carry their own config) and
``tiny`` overrides it for a random instance that runs in seconds on a CPU (tests, demo).

Adding a model = one entry here (+ a :class:`Family` and one adapter in ``samesky.models`` for
a new family; docs/EXTENDING.md).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..surveys import IMAGE, SPECTRUM, get_survey

M = 1_000_000


@dataclass(frozen=True)
class Family:
    """What is said once per family rather than per size."""

    name: str  # the ``family`` of its ModelSpecs
    label: str  # how tables and figures name it


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("vit", "ViT"),
    Family("dinov2", "DINOv2"),
    Family("convnextv2", "ConvNeXtv2"),
    Family("ijepa", "IJEPA"),
    Family("astropt", "AstroPTv2"),
    Family("specformer", "Specformer"),
    Family("astroclip", "AstroCLIP"),
    Family("aion", "AION-1"),
    Family("dinov3", "DINOv3"),
    Family("vitmae", "ViT-MAE"),
    Family("clip", "CLIP"),
    Family("siglip2", "SigLIP 2"),
    Family("vjepa2", "V-JEPA 2"),
    Family("llavaov", "LLaVA-OneVision"),
    Family("paligemma2", "PaliGemma 2"),
)}


@dataclass(frozen=True)
class ModelSpec:
    key: str
    family: str
    size: str
    hub_id: str
    params: int  # parameter count: the size axis (paper Table 3 where it has the model)
    modality: str  # IMAGE or SPECTRUM
    adapter: str  # "hf", "hf_zoo", "vlm", "astropt", "specformer", "astroclip", "aion"
    input_recipe: str  # what the adapter feeds the model, in words
    pooling: str  # how per-token states become one vector, in words
    dim: int  # embedding dimension of the real model
    filename: str | None = None  # checkpoint file inside the source (single-file checkpoints)
    arch: dict[str, Any] = field(default_factory=dict)  # real architecture (random-weight builds)
    tiny: dict[str, Any] = field(default_factory=dict)  # overrides of arch + "dim" for a tiny build
    params_source: str = "paper Table 3"
    note: str = ""
    surveys: tuple[str, ...] | None = None  # surveys it can embed; None: every survey of its modality
    raw_flux: bool = False  # images as raw multi-band fluxes (preprocess_flux), not percentile RGB

    @property
    def input_kind(self) -> str:
        """Which preprocessed product it embeds: 'rgb', 'flux' or 'spectrum' (schema.validate_preprocessed)."""
        return SPECTRUM if self.modality == SPECTRUM else ("flux" if self.raw_flux else "rgb")

    def supports(self, survey: str) -> bool:
        return get_survey(survey).modality == self.modality and (self.surveys is None or survey in self.surveys)

    def arch_for(self, tiny: bool) -> dict[str, Any]:
        """The architecture dict, with the tiny overrides merged in (recursively) when asked."""
        return _merge(self.arch, self.tiny) if tiny else copy.deepcopy(self.arch)


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


# ---------------------------------------------------------------------------------------------
# Hugging Face vision models: the checkpoint's own AutoImageProcessor, then AutoModel.
IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
HF_RECIPE = "uint8 RGB (B,3,H,W) -> the checkpoint's own AutoImageProcessor (resize/crop/normalise)"


def _vit(size, hub, params, hidden, layers, heads, patch):
    return ModelSpec(
        key=f"vit-{size}", family="vit", size=size, hub_id=hub, params=int(params * M), modality=IMAGE,
        adapter="hf", input_recipe=HF_RECIPE, pooling="mean of last_hidden_state patch tokens (CLS excluded)",
        dim=hidden,
        arch={
            "pooling": "mean_patch_tokens",
            "config": {"model_type": "vit", "hidden_size": hidden, "num_hidden_layers": layers,
                       "num_attention_heads": heads, "intermediate_size": 4 * hidden,
                       "image_size": 224, "patch_size": patch},
            "processor": {"image_processor_type": "ViTImageProcessor", "size": {"height": 224, "width": 224},
                          "resample": 2, "image_mean": [0.5] * 3, "image_std": [0.5] * 3},
        },
        tiny={"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 64, "image_size": 32, "patch_size": 8},
              "processor": {"size": {"height": 32, "width": 32}}, "dim": 32},
    )


def _dinov2(size, params, hidden, layers, heads, swiglu=False):
    return ModelSpec(
        key=f"dinov2-{size}", family="dinov2", size=size, hub_id=f"facebook/dinov2-with-registers-{size}",
        params=int(params * M), modality=IMAGE, adapter="hf", input_recipe=HF_RECIPE,
        pooling="CLS token of last_hidden_state", dim=hidden,
        arch={
            "pooling": "cls",
            "config": {"model_type": "dinov2_with_registers", "hidden_size": hidden, "num_hidden_layers": layers,
                       "num_attention_heads": heads, "mlp_ratio": 4, "patch_size": 14, "image_size": 518,
                       "num_register_tokens": 4, "layerscale_value": 1.0, "use_swiglu_ffn": swiglu},
            "processor": {"image_processor_type": "BitImageProcessor", "size": {"shortest_edge": 256},
                          "crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
                          "resample": 3, **IMAGENET},
        },
        tiny={"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2,
                         "patch_size": 8, "image_size": 32, "use_swiglu_ffn": False},
              "processor": {"size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 32}}, "dim": 32},
    )


def _convnextv2(size, params, depths, hidden_sizes):
    return ModelSpec(
        key=f"convnextv2-{size}", family="convnextv2", size=size, hub_id=f"facebook/convnextv2-{size}-22k-224",
        params=int(params * M), modality=IMAGE, adapter="hf", input_recipe=HF_RECIPE,
        pooling="spatial mean of last_hidden_state (before the final LayerNorm)", dim=hidden_sizes[-1],
        arch={
            "pooling": "spatial_mean",
            "config": {"model_type": "convnextv2", "depths": depths, "hidden_sizes": hidden_sizes},
            "processor": {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 224},
                          "crop_pct": 0.875, "resample": 3, **IMAGENET},
            # the hub checkpoints are ...ForImageClassification: the classifier is not part of the embedding
            "auto_class": "AutoModelForImageClassification",
            "ignore_unexpected": ["classifier."],
        },
        tiny={"config": {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 24, 32]},
              "processor": {"size": {"shortest_edge": 64}}, "dim": 32},
    )


def _ijepa(size, hub, params, hidden, layers, heads, intermediate, patch):
    return ModelSpec(
        key=f"ijepa-{size}", family="ijepa", size=size, hub_id=hub, params=int(params * M), modality=IMAGE,
        adapter="hf", input_recipe=HF_RECIPE, pooling="mean of all last_hidden_state tokens", dim=hidden,
        arch={
            "pooling": "mean_tokens",
            "config": {"model_type": "ijepa", "hidden_size": hidden, "num_hidden_layers": layers,
                       "num_attention_heads": heads, "intermediate_size": intermediate,
                       "image_size": 224, "patch_size": patch},
            "processor": {"image_processor_type": "ViTImageProcessor", "size": {"height": 224, "width": 224},
                          "resample": 3, **IMAGENET},
        },
        tiny={"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 64, "image_size": 32, "patch_size": 8},
              "processor": {"size": {"height": 32, "width": 32}}, "dim": 32},
        note="Paper Table 3 swaps the patch sizes in the ids (ijepa_vith16_22k, ijepa_vitg14_22k); "
             "the hub ids are ijepa_vith14_22k and ijepa_vitg16_22k.",
    )


# ---------------------------------------------------------------------------------------------
# AstroPT v2: nanoGPT-style causal transformer over 16x16 patch tokens (re-implemented in torch).
ASTROPT_RECIPE = ("float (B,C,H,W) transposed to (B,C,W,H) as AstroPT's training script and the study feed it "
                  "(swapaxes(0, 2) of an (H,W,C) array), side resized to a multiple of 16 if needed -> 16x16 patches as "
                  "(p1 p2 c) tokens of 768 values, each z-scored (std + 1e-8), spiral order from the "
                  "centre, positions 0..n-1")


def _astropt(size, tag, params, n_layer, n_head, n_embd):
    return ModelSpec(
        key=f"astropt-{size}", family="astropt", size=size, hub_id="Smith42/astroPT_v2.0", params=int(params * M),
        modality=IMAGE, adapter="astropt", input_recipe=ASTROPT_RECIPE,
        pooling="mean over tokens of the hidden state after block n_layer//2 (0-based, no final norm)",
        dim=n_embd, filename=f"astropt/{tag}/ckpt.pt",
        arch={
            "model_args": {"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "block_size": 1024,
                           "n_chan": 3, "dropout": 0.0, "bias": False, "attn_type": "causal"},
            "modalities": [{"name": "images", "input_size": 768, "pos_input_size": 1, "patch_size": 16,
                            "embed_pos": True, "loss_weight": 1.0}],
        },
        tiny={"model_args": {"n_layer": 4, "n_head": 2, "n_embd": 32}, "dim": 32},
        note="arch (n_layer/n_head/n_embd) is an estimate matching the parameter count, used only for "
             "random-weight benchmarks; real runs read model_args from the checkpoint.",
    )


# ---------------------------------------------------------------------------------------------
# Specformer and AstroCLIP (re-implemented in torch, original key names).
SPECFORMER_HP = {"input_dim": 22, "embed_dim": 768, "num_layers": 6, "num_heads": 6, "max_len": 800,
                 "mask_num_chunks": 6, "mask_chunk_width": 50, "slice_section_length": 20,
                 "slice_overlap": 10, "dropout": 0.1, "norm_first": False}
SPECTRUM_RECIPE = ("DESI flux (B,7781): mean/std (unbiased, std clipped >= 0.2), z-score, windows of 20 "
                   "with stride 10 (777 windows: the original's dropped last window reproduced, pixel 7780 "
                   "unused), first token [(mean-2)/2, (std-2)/8, 0...], 22 values per token")
ASTROCLIP_ARCH = {
    "image": {"embed_dim": 1024, "depth": 24, "patch_size": 12, "img_size": 224, "block_chunks": 4,
              "layerscale": 1e-5, "crop": 144},
    "spectrum": SPECFORMER_HP,
    "head": {"embed_dim": 1024, "n_head": 4},
}
ASTROCLIP_TINY = {"image": {"embed_dim": 128, "depth": 2, "block_chunks": 2},
                  "spectrum": {"embed_dim": 128, "num_layers": 2, "num_heads": 1},
                  "head": {"embed_dim": 32}, "dim": 32}

AION_MODEL = {"dim": 768, "encoder_depth": 12, "decoder_depth": 12, "num_heads": 12, "mlp_ratio": 4.0,
              "qkv_bias": False, "proj_bias": False, "mlp_bias": False, "norm_bias": False, "act_layer": "SiLU",
              "gated_mlp": True, "qk_norm": True, "domains_in": ["tok_image", "tok_image_hsc"],
              "domains_out": ["tok_image", "tok_image_hsc"]}
AION_CODEC = {"quantizer_levels": [7, 5, 5, 5, 5], "hidden_dims": 512, "multisurvey_projection_dims": 54,
              "n_compressions": 2, "num_consecutive": 4, "embedding_dim": 5}


def _aion(size, params, dim, depth):
    return ModelSpec(
        key=f"aion-{size}", family="aion", size=size, hub_id=f"polymathic-ai/aion-{size}", params=int(params * M),
        modality=IMAGE, adapter="aion", raw_flux=True, surveys=("hsc", "legacysurvey"),
        input_recipe="raw fluxes of every band (HSC g,r,i,z,y / Legacy g,r,i,z; non-finite pixels -> 0) -> AION's "
                     "image codec (centre crop 96, survey rescaling, arcsinh range compression, 576 tokens)",
        pooling="mean over all 576 tokens of AION.encode (encoder output projected to the decoder context)",
        dim=dim, params_source="AION-1 paper (Parker et al. 2025)",
        arch={"model": {**AION_MODEL, "dim": dim, "encoder_depth": depth, "decoder_depth": depth,
                        "num_heads": dim // 64},
              "image_codec": AION_CODEC},
        tiny={"model": {"dim": 32, "encoder_depth": 2, "decoder_depth": 1, "num_heads": 2, "mlp_ratio": 2.0},
              "image_codec": {"hidden_dims": 16, "multisurvey_projection_dims": 8, "num_consecutive": 1},
              "dim": 32},
        note="beyond the paper; no JWST codec. Codecs come from polymathic-ai/aion-base for every size (as in "
             "the package); the aion-large/xlarge repo names and the arch (random-weight builds only) are "
             "unverified estimates, real runs read the checkpoint's config.",
    )



# ---------------------------------------------------------------------------------------------
# Families of the authors' current code (UniverseTBD/platonic-universe src/pu/experiments.py, model_map)
# and SigLIP 2. ``params`` is the parameter count of the path from pixels to the embedding (image tower,
# projection or head; V-JEPA 2's encoder without its predictor; a VLM without its LM head), counted on the
# meta device from ``arch`` (tests/test_models_zoo.py::test_params_are_counted_from_the_architecture). The
# arch dicts follow the published configs (random-weight builds only; real runs read the checkpoint's own
# config.json and preprocessor_config.json).
CLIP_MEAN = {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
HALF = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3}
TINY_VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
            "image_size": 32, "patch_size": 8}


def _dinov3(size, params, hidden, layers, heads, inter, gated=False):
    return ModelSpec(
        key=f"dinov3-{size}", family="dinov3", size=size, hub_id=f"facebook/dinov3-{size}-pretrain-lvd1689m",
        params=params, modality=IMAGE, adapter="hf_zoo", params_source="counted from the architecture",
        input_recipe="uint8 RGB -> the checkpoint's DINOv3ViTImageProcessorFast steps in torch (rescale 1/255, "
                     "bilinear antialiased resize, normalise: torchvision is not installed)",
        pooling="CLS token of last_hidden_state (after the final LayerNorm)", dim=hidden,
        arch={
            "embed": "cls", "blocks": "model.layer", "processor_kind": "torch_image",
            "config": {"model_type": "dinov3_vit", "hidden_size": hidden, "num_hidden_layers": layers,
                       "num_attention_heads": heads, "intermediate_size": inter, "patch_size": 16,
                       "num_register_tokens": 4, "layerscale_value": 1e-5, "use_gated_mlp": gated,
                       "hidden_act": "silu" if gated else "gelu"},
            "processor": {"image_processor_type": "DINOv3ViTImageProcessorFast", "size": {"height": 224, "width": 224},
                          "resample": 2, "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255,
                          "do_normalize": True, "do_center_crop": False, **IMAGENET},
        },
        tiny={"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                         "patch_size": 8, "layerscale_value": 1.0},
              "processor": {"size": {"height": 32, "width": 32}}, "dim": 32},
        note="beyond the paper (the authors' current code: facebook/dinov3-*-pretrain-lvd1689m)",
    )


def _vitmae(size, params, hidden, layers, heads, patch):
    return ModelSpec(
        key=f"vitmae-{size}", family="vitmae", size=size, hub_id=f"facebook/vit-mae-{size}", params=params,
        modality=IMAGE, adapter="hf_zoo", input_recipe=HF_RECIPE, params_source="counted from the architecture",
        pooling="mean of last_hidden_state patch tokens (CLS excluded), every patch visible (mask_ratio 0, "
                "patches in raster order)", dim=hidden,
        arch={
            "embed": "mae", "blocks": "layers", "processor_kind": "pil",
            "config": {"model_type": "vit_mae", "hidden_size": hidden, "num_hidden_layers": layers,
                       "num_attention_heads": heads, "intermediate_size": 4 * hidden, "patch_size": patch,
                       "image_size": 224, "mask_ratio": 0.75},
            "processor": {"image_processor_type": "ViTImageProcessor", "size": {"height": 224, "width": 224},
                          "resample": 3, **IMAGENET},
            # the hub checkpoints are ViTMAEForPreTraining: the decoder is not part of the embedding
            "auto_class": "ViTMAEForPreTraining", "ignore_unexpected": ["decoder."],
        },
        tiny={"config": {**TINY_VIT, "decoder_hidden_size": 16, "decoder_num_hidden_layers": 1,
                         "decoder_num_attention_heads": 2, "decoder_intermediate_size": 32},
              "processor": {"size": {"height": 32, "width": 32}}, "dim": 32},
        note="beyond the paper. The authors' ViTMAEModel kept the checkpoint's mask_ratio 0.75 (a random, unseeded "
             "quarter of the patches per call); we embed every patch (docs/PAPER.md).",
    )


def _clip(size, hub, params, vision, text, proj):
    return ModelSpec(
        key=f"clip-{size}", family="clip", size=size, hub_id=hub, params=params, modality=IMAGE, adapter="hf_zoo",
        input_recipe=HF_RECIPE, params_source="counted from the architecture (vision tower + projection)",
        pooling="get_image_features: the projected pooled (CLS, post-LayerNorm) image embedding", dim=proj,
        arch={
            "embed": "image_features", "blocks": "vision_model.encoder.layers", "processor_kind": "pil",
            "config": {"model_type": "clip", "projection_dim": proj,
                       "vision_config": {"hidden_size": vision[0], "num_hidden_layers": vision[1],
                                         "num_attention_heads": vision[2], "intermediate_size": 4 * vision[0],
                                         "patch_size": vision[3], "image_size": 224},
                       "text_config": {"hidden_size": text[0], "num_hidden_layers": 12, "num_attention_heads": text[1],
                                       "intermediate_size": 4 * text[0]}},
            "processor": {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 224},
                          "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "resample": 3,
                          **CLIP_MEAN},
            "counted": ["vision_model", "visual_projection"],
        },
        tiny={"config": {"projection_dim": 16, "vision_config": TINY_VIT,
                         "text_config": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                         "intermediate_size": 32, "vocab_size": 100}},
              "processor": {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}, "dim": 16},
        note="beyond the paper (the authors' current code: openai/clip-vit-*)",
    )


def _siglip2(size, hub, params, hidden, layers, heads, inter, patch, image):
    return ModelSpec(
        key=f"siglip2-{size}", family="siglip2", size=size, hub_id=hub, params=params, modality=IMAGE,
        adapter="hf_zoo", input_recipe=HF_RECIPE, params_source="counted from the architecture (vision tower + head)",
        pooling="get_image_features: the attention-pooling (MAP) head output, SigLIP's image embedding", dim=hidden,
        arch={
            "embed": "image_features", "blocks": "vision_model.encoder.layers", "processor_kind": "pil",
            # the fixed-resolution SigLIP 2 checkpoints are SiglipModel (config model_type 'siglip')
            "config": {"model_type": "siglip",
                       "vision_config": {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
                                         "intermediate_size": inter, "patch_size": patch, "image_size": image},
                       "text_config": {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
                                       "intermediate_size": inter, "vocab_size": 256000}},
            "processor": {"image_processor_type": "SiglipImageProcessor", "size": {"height": image, "width": image},
                          "resample": 2, **HALF},
            "counted": ["vision_model"],
        },
        tiny={"config": {"vision_config": TINY_VIT,
                         "text_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                         "intermediate_size": 64, "vocab_size": 100}},
              "processor": {"size": {"height": 32, "width": 32}}, "dim": 32},
        note="beyond the paper and the authors' code (no SigLIP there): pooled as their CLIP, the image tower's "
             "own image embedding",
    )


def _vjepa2(size, params, hidden, layers, heads, mlp_ratio=4.0):
    return ModelSpec(
        key=f"vjepa2-{size}", family="vjepa2", size=size, hub_id=f"facebook/vjepa2-vit{size[0]}-fpc64-256",
        params=params, modality=IMAGE, adapter="hf_zoo", params_source="counted from the architecture (encoder)",
        input_recipe="uint8 RGB as a one-frame video -> the checkpoint's VJEPA2VideoProcessor steps in torch "
                     "(bilinear antialiased uint8 resize of the shortest edge to crop*256/224, centre crop, "
                     "normalise), the frame repeated 16 times (the authors' _VJEPA_NUM_FRAMES) in the adapter",
        pooling="mean of all encoder last_hidden_state tokens (8 tubelets x 16 x 16 patches; predictor not run)",
        dim=hidden,
        arch={
            "embed": "video_mean", "blocks": "encoder.layer", "processor_kind": "torch_video", "frames": 16,
            "config": {"model_type": "vjepa2", "hidden_size": hidden, "num_hidden_layers": layers,
                       "num_attention_heads": heads, "mlp_ratio": mlp_ratio, "crop_size": 256, "patch_size": 16,
                       "tubelet_size": 2, "frames_per_clip": 64},
            "processor": {"video_processor_type": "VJEPA2VideoProcessor", "crop_size": {"height": 256, "width": 256},
                          "size": {"shortest_edge": 292}, "resample": 2, **IMAGENET},
            "counted": ["encoder"],
        },
        tiny={"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2.0,
                         "crop_size": 32, "patch_size": 8, "frames_per_clip": 4, "pred_hidden_size": 16,
                         "pred_num_hidden_layers": 1, "pred_num_attention_heads": 2, "num_pooler_layers": 1},
              "processor": {"crop_size": {"height": 32, "width": 32}, "size": {"shortest_edge": 36}},
              "dim": 32},
        note="beyond the paper (the authors' current code: facebook/vjepa2-vit{l,h,g}-fpc64-256)",
    )


# Vision-language models: the language model's last hidden state (after its final norm), mean over every
# attended position of an image-only prompt, as the authors' VLMAdapter (src/pu/models/hf.py).
VLM_POOLING = ("mean of the language model's last hidden state (after its final norm) over the full sequence "
               "with the attention mask (image tokens and prompt tokens alike)")


def _llava_ov(size, tag, params, hidden, layers, heads, kv_heads, inter, vocab, tied):
    return ModelSpec(
        key=f"llavaov-{size}", family="llavaov", size=size, hub_id=f"llava-hf/llava-onevision-qwen2-{tag}-ov-hf",
        params=params, modality=IMAGE, adapter="vlm", params_source="counted from the architecture (no LM head)",
        input_recipe="uint8 RGB + the text '<image>' (no chat template) -> the checkpoint's LlavaOnevisionProcessor "
                     "(PIL backend: anyres tiles of 384 px, '<image>' expanded to the image's feature tokens)",
        pooling=VLM_POOLING, dim=hidden,
        arch={
            "prompt": "<image>", "blocks": "language_model.layers",
            "config": {"model_type": "llava_onevision", "image_token_index": 151646, "video_token_index": 151647,
                       "tie_word_embeddings": tied,
                       "text_config": {"model_type": "qwen2", "hidden_size": hidden, "num_hidden_layers": layers,
                                       "num_attention_heads": heads, "num_key_value_heads": kv_heads,
                                       "intermediate_size": inter, "vocab_size": vocab,
                                       "tie_word_embeddings": tied}},
            "processor": {"image_processor_type": "LlavaOnevisionImageProcessor"},
            "weights_dtype": "bf16", "ignore_unexpected": ["lm_head."],  # the base model has no LM head
        },
        tiny={"config": {"image_token_index": 100, "video_token_index": 101,
                         "text_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                         "num_key_value_heads": 1, "intermediate_size": 64, "vocab_size": 110},
                         "vision_config": {**TINY_VIT, "vision_use_head": False},
                         "image_grid_pinpoints": [[32, 32], [32, 64], [64, 32], [64, 64]]},
              "processor": {"size": {"height": 32, "width": 32}, "crop_size": {"height": 32, "width": 32},
                            "image_grid_pinpoints": [[32, 32], [32, 64], [64, 32], [64, 64]]},
              "dim": 32},
        note="beyond the paper (the authors' current code: llava-hf/llava-onevision-qwen2-7b-ov-hf). Loaded in "
             "bf16 as the authors load every VLM; the 72B is left out (it does not fit one 80 GB GPU).",
    )


def _paligemma2(size, params, hidden, layers, heads, kv_heads, inter, head_dim):
    return ModelSpec(
        key=f"paligemma2-{size}", family="paligemma2", size=size, hub_id=f"google/paligemma2-{size}-mix-224",
        params=params, modality=IMAGE, adapter="vlm", params_source="counted from the architecture (no LM head)",
        input_recipe="uint8 RGB + the text '<image> ' -> the checkpoint's PaliGemmaProcessor (PIL backend, 224 px): "
                     "256 '<image>' tokens, '<bos>', ' ', '\\n'; token_type_ids not passed (as the authors)",
        pooling=VLM_POOLING, dim=hidden,
        arch={
            "prompt": "<image> ", "blocks": "language_model.layers",
            "config": {"model_type": "paligemma", "image_token_index": 257152, "projection_dim": hidden,
                       "hidden_size": hidden,
                       "vision_config": {"hidden_size": 1152, "num_hidden_layers": 27, "num_attention_heads": 16,
                                         "intermediate_size": 4304, "patch_size": 14, "image_size": 224,
                                         "projection_dim": hidden},
                       "text_config": {"model_type": "gemma2", "hidden_size": hidden, "num_hidden_layers": layers,
                                       "num_attention_heads": heads, "num_key_value_heads": kv_heads,
                                       "intermediate_size": inter, "head_dim": head_dim, "vocab_size": 257216}},
            "processor": {"image_processor_type": "SiglipImageProcessor", "size": {"height": 224, "width": 224},
                          "resample": 3, **HALF, "image_seq_length": 256},
            "weights_dtype": "bf16", "ignore_unexpected": ["lm_head."],  # the base model has no LM head
        },
        tiny={"config": {"image_token_index": 100, "projection_dim": 32, "hidden_size": 32,
                         "vision_config": {**TINY_VIT, "projection_dim": 32},
                         "text_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                         "num_key_value_heads": 1, "intermediate_size": 64, "head_dim": 16,
                                         "vocab_size": 1260}},
              "processor": {"size": {"height": 32, "width": 32}, "image_seq_length": 16}, "dim": 32},
        note="beyond the paper (the authors' current code: google/paligemma2-{3b,10b,28b}-mix-224). bf16: the "
             "checkpoints ship bf16 weights only.",
    )


_SPECS = [
    _vit("base", "google/vit-base-patch16-224-in21k", 86, 768, 12, 12, 16),
    _vit("large", "google/vit-large-patch16-224-in21k", 304, 1024, 24, 16, 16),
    _vit("huge", "google/vit-huge-patch14-224-in21k", 632, 1280, 32, 16, 14),
    _dinov2("small", 22, 384, 12, 6),
    _dinov2("base", 86, 768, 12, 12),
    _dinov2("large", 304, 1024, 24, 16),
    _dinov2("giant", 1100, 1536, 40, 24, swiglu=True),
    _convnextv2("nano", 15, [2, 2, 8, 2], [80, 160, 320, 640]),
    _convnextv2("tiny", 28, [3, 3, 9, 3], [96, 192, 384, 768]),
    _convnextv2("base", 89, [3, 3, 27, 3], [128, 256, 512, 1024]),
    _convnextv2("large", 198, [3, 3, 27, 3], [192, 384, 768, 1536]),
    _ijepa("huge", "facebook/ijepa_vith14_22k", 630, 1280, 32, 16, 5120, 14),
    _ijepa("giant", "facebook/ijepa_vitg16_22k", 1000, 1408, 40, 16, 6144, 16),
    _astropt("small", "015M", 15, 6, 6, 384),
    _astropt("base", "095M", 95, 12, 12, 768),
    _astropt("large", "850M", 850, 24, 16, 1664),
    ModelSpec(
        key="specformer-base", family="specformer", size="base", hub_id="polymathic-ai/specformer", params=43 * M,
        modality=SPECTRUM, adapter="specformer", input_recipe=SPECTRUM_RECIPE,
        pooling="mean over tokens of the final-LayerNorm output, statistics token excluded", dim=768,
        filename="specformer.ckpt", arch={"hyper_parameters": SPECFORMER_HP},
        tiny={"hyper_parameters": {"embed_dim": 32, "num_layers": 2, "num_heads": 2}, "dim": 32},
    ),
    ModelSpec(
        key="astroclip-image", family="astroclip", size="image", hub_id="polymathic-ai/astroclip", params=316 * M,
        modality=IMAGE, adapter="astroclip", raw_flux=True, surveys=("legacysurvey", "hsc"),
        input_recipe="raw g, r, z fluxes in nanomaggies (converted from the survey's zero point), centre crop "
                     "to min(144, side) rounded down to a multiple of 12, AstroCLIP's dr2 arcsinh RGB (scales "
                     "g 6.0, r 3.4, z 2.2 to planes B, G, R; m 0.03; Q 20), float in [0, 1], transposed to "
                     "(3, W, H) as upstream's collator permutes it (0, 3, 2, 1)",
        pooling="ViT-L/12 tokens (no CLS, no positional embedding) -> learned-query cross-attention + LayerNorm, "
                "MLP(x) without residual (upstream d196e26): the shared 1024-d AstroCLIP space",
        dim=1024, filename="astroclip.ckpt", arch=ASTROCLIP_ARCH, tiny=ASTROCLIP_TINY,
        params_source="counted from the architecture", note="beyond the paper",
    ),
    ModelSpec(
        key="astroclip-spectrum", family="astroclip", size="spectrum", hub_id="polymathic-ai/astroclip",
        params=55 * M, modality=SPECTRUM, adapter="astroclip", input_recipe=SPECTRUM_RECIPE,
        pooling="Specformer tokens (all, final LayerNorm) -> learned-query cross-attention + LayerNorm, "
                "x + MLP(x): the shared 1024-d AstroCLIP space",
        dim=1024, filename="astroclip.ckpt", arch=ASTROCLIP_ARCH, tiny=ASTROCLIP_TINY,
        params_source="counted from the architecture", note="beyond the paper",
    ),
    _aion("base", 300, 768, 12),
    _aion("large", 800, 1024, 24),
    _aion("xlarge", 3100, 2048, 24),
    _dinov3("vits16", 21_596_544, 384, 12, 6, 1536),
    _dinov3("vits16plus", 28_692_864, 384, 12, 6, 1536, gated=True),
    _dinov3("vitb16", 85_660_416, 768, 12, 12, 3072),
    _dinov3("vitl16", 303_129_600, 1024, 24, 16, 4096),
    _dinov3("vith16plus", 840_592_640, 1280, 32, 20, 5120, gated=True),
    _dinov3("vit7b16", 6_716_362_752, 4096, 40, 32, 8192, gated=True),
    _vitmae("base", 85_798_656, 768, 12, 12, 16),
    _vitmae("large", 303_301_632, 1024, 24, 16, 16),
    _vitmae("huge", 630_764_800, 1280, 32, 16, 14),
    _clip("base", "openai/clip-vit-base-patch16", 86_192_640, (768, 12, 12, 16), (512, 8), 512),
    _clip("large", "openai/clip-vit-large-patch14", 303_966_208, (1024, 24, 16, 14), (768, 12), 768),
    _siglip2("base", "google/siglip2-base-patch16-224", 92_884_224, 768, 12, 12, 3072, 16, 224),
    _siglip2("large", "google/siglip2-large-patch16-256", 315_956_224, 1024, 24, 16, 4096, 16, 256),
    _siglip2("so400m", "google/siglip2-so400m-patch14-384", 428_225_600, 1152, 27, 16, 4304, 14, 384),
    _siglip2("giant", "google/siglip2-giant-opt-patch16-256", 1_163_168_256, 1536, 40, 16, 6144, 16, 256),
    _vjepa2("large", 303_885_312, 1024, 24, 16),
    _vjepa2("huge", 631_648_000, 1280, 32, 16),
    _vjepa2("giant", 1_012_173_952, 1408, 40, 22, 48 / 11),
    _llava_ov("500m", "0.5b", 893_618_208, 896, 24, 14, 2, 4864, 151936, True),
    _llava_ov("7b", "7b", 7_485_351_456, 3584, 28, 28, 4, 18944, 152064, False),
    _paligemma2("3b", 3_047_480_768, 2304, 26, 8, 4, 9216, 256),
    _paligemma2("10b", 9_677_877_184, 3584, 42, 16, 8, 14336, 256),
    _paligemma2("28b", 27_665_725_376, 4608, 46, 32, 16, 36864, 128),
]

MODELS: dict[str, ModelSpec] = {s.key: s for s in _SPECS}


UNTRAINED = "@random"  # family suffix of an untrained control's key: vit@random-base


def trained_key(key: str) -> str:
    """The trained model whose architecture an untrained control (``vit@random-base``) has."""
    family, sep, size = key.rpartition("-")
    return f"{family.removesuffix(UNTRAINED)}{sep}{size}"


def get_model(key: str) -> ModelSpec:
    """The entry of ``key``; an untrained control gets its trained model's entry under its own
    key and family (``vit@random``), so it is a family of its own everywhere downstream."""
    try:
        spec = MODELS[trained_key(key)]
    except KeyError:
        raise KeyError(f"unknown model {key!r}; known models: {sorted(MODELS)}") from None
    if key != spec.key:
        spec = dataclasses.replace(spec, key=key, family=spec.family + UNTRAINED)
    return spec


def family_label(family: str) -> str:
    """How tables and figures name ``family``: its :class:`Family` label, "(untrained)" added for an
    untrained control; a family the registry does not know (records of another zoo) keeps its key."""
    if family.endswith(UNTRAINED):
        return f"{family_label(family.removesuffix(UNTRAINED))} (untrained)"
    return FAMILIES[family].label if family in FAMILIES else family


def family_sizes(family: str) -> list[str]:
    """Sizes of one family, smallest first (the size axis of the intramodal comparisons)."""
    specs = sorted((s for s in MODELS.values() if s.family == family), key=lambda s: s.params)
    if not specs:
        raise KeyError(f"unknown model family {family!r}; known families: {sorted({s.family for s in MODELS.values()})}")
    return [s.size for s in specs]


def weights_dtype(key: str) -> str:
    """'bf16' for models loaded in bf16 (the VLMs, as the authors load them; PaliGemma 2 ships only bf16
    weights), else 'fp32' (autocast, if asked for, runs on fp32 weights)."""
    return get_model(key).arch.get("weights_dtype", "fp32")
