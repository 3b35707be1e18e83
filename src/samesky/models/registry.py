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
import math
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
)}


@dataclass(frozen=True)
class ModelSpec:
    key: str
    family: str
    size: str
    hub_id: str
    params: int  # parameter count: the size axis (paper Table 3 where it has the model)
    modality: str  # IMAGE or SPECTRUM
    adapter: str  # "hf", "astropt", "specformer", "astroclip", "aion"
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


def resources_for(key: str, attempt: int = 1) -> dict[str, int]:
    """Cluster resources of one embedding job: host memory and minutes grow with size and attempt."""
    spec = get_model(key)
    grow = 1.0 + 0.5 * (max(int(attempt), 1) - 1)
    return {
        "mem_mb": int((8000 + 16 * spec.params / M) * grow),
        "runtime": int((30 + 0.1 * spec.params / M) * grow),
        "gpu": 1,
    }


# Objects/s of one embed job: (forward pass on one GPU, input pipeline per CPU core).
# GPU: timm's published eager-AMP inference throughput on an RTX PRO 6000 Blackwell Max-Q
# (huggingface/pytorch-image-models results/benchmark-infer-amp-nchw-pt291-cu130-pro6000maxq.csv,
# batch 2048) for the same architecture at 224 px; DINOv2 at 224/14 (261 tokens) from ViT-*/16
# (197 tokens) x 197/261, ViT-g/14 x 257/261 and IJEPA-giant (ViT-g/16) x 257/197. Models timm
# does not publish ("est."): 73.7 TMAC/s (ViT-B/16's 4190/s x 17.58 GMAC) / their MACs per
# object, at most ViT-S/16's 11168/s. Input: objects per CPU-second of one input worker,
# ``benchmarks/bench_embed.py --pipeline`` (PIL processors, 160-px cutouts, batch 32), one
# figure per family (the processor is the same for every size); IJEPA's is assumed equal to
# ViT's (same processor class, bicubic), not measured. Re-measure both on the target machines.
EMBED_RATES: dict[str, tuple[float, float]] = {
    "vit-base": (4190, 483), "vit-large": (1365, 483), "vit-huge": (527, 483),
    "dinov2-small": (8430, 400), "dinov2-base": (3160, 400), "dinov2-large": (1030, 400),
    "dinov2-giant": (340, 400),
    "convnextv2-nano": (4551, 377), "convnextv2-tiny": (3148, 377), "convnextv2-base": (1420, 377),
    "convnextv2-large": (869, 377),
    "ijepa-huge": (527, 483), "ijepa-giant": (450, 483),
    # est. 0.9 / 5.4 / 45 GMAC (100 tokens, blocks up to n_layer // 2)
    "astropt-small": (11168, 569), "astropt-base": (11168, 569), "astropt-large": (1645, 569),
    "specformer-base": (1890, 2133),  # est. 39 GMAC (778 tokens)
    "astroclip-image": (1640, 582), "astroclip-spectrum": (1840, 1600),  # est. 45 / 40 GMAC
    "aion-base": (870, 1164), "aion-large": (295, 1164), "aion-xlarge": (78, 1164),  # est. 85 / 250 / 950 GMAC
}
MAX_EMBED_CPUS = 16  # a GPU node's cores per GPU (e.g. 8 GPUs, 128 cores)


def embed_cpus(key: str) -> int:
    """CPU cores of one GPU embed job: one runs the forward loop, the others (input workers)
    prepare as many objects/s as the GPU embeds, up to MAX_EMBED_CPUS.

    A small fast model needs more workers than a large slow one.
    """
    get_model(key)
    forward, per_core = EMBED_RATES[key]
    return min(MAX_EMBED_CPUS, 1 + math.ceil(forward / per_core))
