"""AstroCLIP image and spectrum towers (polymathic-ai/astroclip, astroclip.ckpt) in plain torch.

Both towers live in one Lightning checkpoint under ``image_encoder.`` and ``spectrum_encoder.``;
each embedder loads its own tower strictly and skips only the other tower's keys. Each tower is
``backbone`` -> ``cross_attention`` (one learned query, ``nn.MultiheadAttention`` with 4 heads,
then LayerNorm) -> MLP, giving the shared 1024-d space (compare with cosine). As upstream's
``ImageHead``/``SpectrumHead`` (astroclip/models/astroclip.py): the image tower applies the MLP
without a residual (upstream removed it in commit d196e26), the spectrum tower adds ``x + mlp(x)``.

* image backbone: AstroDINO ViT-L/12 (DINOv2 layout, LayerScale, LayerNorm eps 1e-6) run as
  AstroCLIP does: patch embedding, blocks, final norm, with no CLS token and no positional
  embedding (``cls_token``/``pos_embed``/``mask_token`` are loaded but unused). DINOv2's chunked
  block keys ``blocks.<chunk>.<i>.`` are mapped to ``blocks.<i>.``.
* spectrum backbone: Specformer, all tokens of its final LayerNorm output.
* image input: AstroCLIP's own recipe on raw fluxes (``dr2_rgb``): g, r, z in nanomaggies
  (converted from the input's zero point), centre crop 144, one arcsinh stretch, then the
  transpose of upstream's ``AstroClipCollator`` (it permutes the (B, H, W, 3) RGB cutouts by
  (0, 3, 2, 1), i.e. to (B, 3, W, H)): the weights were trained on that orientation.

Head counts are not stored in the state dict: backbone heads follow the 64-dim (ViT) and
128-dim (Specformer: 768/6) head-width conventions of the released models; the cross-attention
uses ``arch['head']['n_head']`` (4).

Blocks (layer-wise embeddings): the backbone's blocks (the head, a learned-query cross-attention
trained on the final backbone output, makes the final embedding only). Image: each ViT block's
output, mean over its tokens (there is no CLS token); spectrum: each Specformer block's output
pooled as Specformer's embedding (mean over tokens, statistics token excluded), so the spectrum
blocks of AstroCLIP and of Specformer compare like for like.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..surveys import NMGY_ZERO_POINT, flux_factor
from .base import Embedder
from .checkpoint import CheckpointError, load_checkpoint, load_strict, require, resolve_file
from .registry import IMAGE, ModelSpec
from .specformer import _MLP, SpecFormer, SpectrumTokens, lightning_checkpoint, pool_spectrum_tokens

TOWERS = {IMAGE: "image_encoder.", "spectrum": "spectrum_encoder."}


class _LayerScale(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * self.gamma


class _ViTAttention(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.n_head = n_head

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class _ViTMLP(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class _ViTBlock(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(d, eps=1e-6), _ViTAttention(d, n_head), _LayerScale(d)
        self.norm2, self.mlp, self.ls2 = nn.LayerNorm(d, eps=1e-6), _ViTMLP(d, 4 * d), _LayerScale(d)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _PatchEmbed(nn.Module):
    def __init__(self, d, patch):
        super().__init__()
        self.proj = nn.Conv2d(3, d, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class AstroDinoBackbone(nn.Module):
    """ViT without CLS/positional embedding in the forward; ``extras`` are the unused parameters."""

    def __init__(self, embed_dim: int, depth: int, patch_size: int, extras: dict[str, tuple]):
        super().__init__()
        self.patch_embed = _PatchEmbed(embed_dim, patch_size)
        self.blocks = nn.ModuleList(_ViTBlock(embed_dim, embed_dim // 64) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        for name, shape in extras.items():
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)))
        self.patch_size = patch_size

    def forward(self, x):
        x = self.patch_embed(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class _CrossAttentionHead(nn.Module):
    def __init__(self, embed_dim, n_head, kdim):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.multihead_attn = nn.MultiheadAttention(embed_dim, n_head, batch_first=True, kdim=kdim, vdim=kdim)
        self.layernorm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        query = self.query.expand(x.shape[0], -1, -1)
        return self.layernorm(self.multihead_attn(query, x, x, need_weights=False)[0])


class Tower(nn.Module):
    def __init__(self, backbone: nn.Module, embed_dim: int, n_head: int, kdim: int, residual: bool):
        super().__init__()
        self.backbone = backbone
        self.cross_attention = _CrossAttentionHead(embed_dim, n_head, kdim)
        self.mlp = _MLP(embed_dim, 4 * embed_dim)
        self.residual = residual  # image head: no residual (upstream d196e26); spectrum head: x + mlp(x)

    def forward(self, x):
        h = self.cross_attention(self.backbone(x))
        return (h + self.mlp(h) if self.residual else self.mlp(h))[:, 0]


def _image_tower(arch: dict, extras: dict) -> Tower:
    a = arch["image"]
    backbone = AstroDinoBackbone(a["embed_dim"], a["depth"], a["patch_size"], extras)
    return Tower(backbone, arch["head"]["embed_dim"], arch["head"]["n_head"], a["embed_dim"], residual=False)


def _spectrum_tower(arch: dict) -> Tower:
    return Tower(SpecFormer(**arch["spectrum"]), arch["head"]["embed_dim"], arch["head"]["n_head"],
                 arch["spectrum"]["embed_dim"], residual=True)


def _unchunk(key: str) -> str:
    """DINOv2 BlockChunk keys ``backbone.blocks.<chunk>.<i>.x`` -> ``backbone.blocks.<i>.x``."""
    return re.sub(r"^backbone\.blocks\.\d+\.(\d+)\.", r"backbone.blocks.\1.", key)


def _arch_from_state(modality: str, sd: dict, arch: dict, where: str, prefix: str) -> tuple[dict, dict]:
    """Architecture sizes read from tensor shapes (head counts by convention, see module docstring)."""
    def shape(key):
        if key not in sd:
            raise CheckpointError(f"{where}: checkpoint does not match the architecture: missing keys ['{prefix}{key}']")
        return sd[key].shape

    head = {"embed_dim": shape("cross_attention.query")[-1], "n_head": arch["head"]["n_head"]}
    depth = 1 + max((int(m.group(1)) for k in sd if (m := re.match(r"backbone\.blocks\.(\d+)\.", k))), default=-1)
    if modality == IMAGE:
        w = shape("backbone.patch_embed.proj.weight")
        extras = {k: tuple(sd[f"backbone.{k}"].shape) for k in ("cls_token", "pos_embed", "mask_token", "register_tokens")
                  if f"backbone.{k}" in sd}
        return {"image": {"embed_dim": w[0], "depth": depth, "patch_size": w[-1]}, "head": head}, extras
    w = shape("backbone.data_embed.weight")
    spectrum = {"input_dim": w[1], "embed_dim": w[0], "num_layers": depth, "num_heads": max(1, w[0] // 128),
                "max_len": shape("backbone.position_embed.weight")[0], "slice_section_length": w[1] - 2,
                "slice_overlap": arch["spectrum"]["slice_overlap"]}
    return {"spectrum": spectrum, "head": head}, {}


# AstroCLIP's image input (its dr2_rgb, after the Legacy Survey viewer): band -> (RGB plane, scale)
DR2_SCALES = {"g": (2, 6.0), "r": (1, 3.4), "z": (0, 2.2)}
DR2_M, DR2_Q = 0.03, 20.0


def dr2_rgb(grz: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) g, r, z fluxes in nanomaggies -> (B, 3, H, W) RGB in [0, 1] (planes z, r, g).

    Each band is scaled and offset (x * scale + m); the mean of the clipped bands, I, sets one
    arcsinh stretch for all three (colours are kept); each plane is (x * scale + m) * asinh(Q I) /
    (sqrt(Q) I), clipped to [0, 1].
    """
    scaled = torch.stack([grz[:, i] * DR2_SCALES[b][1] + DR2_M for i, b in enumerate("grz")], 1)
    intensity = scaled.clamp(min=0).mean(1, keepdim=True)
    stretch = torch.asinh(DR2_Q * intensity) / DR2_Q**0.5
    intensity = intensity + (intensity == 0) * 1e-6
    rgb = torch.empty_like(scaled)
    for i, b in enumerate("grz"):
        rgb[:, DR2_SCALES[b][0]] = scaled[:, i] * stretch[:, 0] / intensity[:, 0]
    return rgb.clamp(0, 1)


class AstroCLIPImageEmbedder(Embedder):
    def __init__(self, spec, model, *, crop: int, **kw):
        super().__init__(spec, model, **kw)
        self.crop = crop
        self.grz: list[int] = []
        self.to_nmgy = 1.0

    def bind(self, info: dict) -> None:
        """Find g, r, z among the input's bands and the factor that turns its fluxes into nanomaggies."""
        bands, zero_point = list(info.get("bands") or []), info.get("zero_point")
        missing = [b for b in "grz" if b not in bands]
        if missing or zero_point is None:
            raise ValueError(f"{self.spec.key} needs g, r, z fluxes with a known zero point; survey "
                             f"{info.get('survey')!r} has bands {bands} (missing {missing}), zero point {zero_point}")
        self.grz = [bands.index(b) for b in "grz"]
        self.to_nmgy = flux_factor(zero_point, NMGY_ZERO_POINT)

    def prepare(self, batch) -> torch.Tensor:
        if not self.grz:
            raise RuntimeError(f"{self.spec.key}: call bind() with the input's bands and zero point first")
        x = torch.as_tensor(np.asarray(batch, dtype=np.float32))
        if x.ndim != 4:
            raise ValueError(f"expected raw fluxes (B, bands, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        patch = self.model.backbone.patch_size
        c = min(self.crop, h, w) // patch * patch
        if c < patch:
            raise ValueError(f"images of {h}x{w} are smaller than one {patch}-pixel patch")
        top, left = int(round((h - c) / 2)), int(round((w - c) / 2))
        rgb = dr2_rgb(x[:, self.grz, top:top + c, left:left + c] * self.to_nmgy)
        return rgb.transpose(-1, -2).contiguous()  # (B, 3, W, H): upstream collator's permute (0, 3, 2, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def block_names(self) -> list[str]:
        return [f"backbone block {j + 1}" for j in range(len(self.model.backbone.blocks))]

    def forward_layers(self, images: torch.Tensor, blocks: list[int]):
        return self.forward_capturing(images, [self.model.backbone.blocks[j] for j in blocks],
                                      lambda h: h.mean(dim=1))


class AstroCLIPSpectrumEmbedder(Embedder):
    def __init__(self, spec, model, *, hp: dict, **kw):
        super().__init__(spec, model, **kw)
        self.tokens = SpectrumTokens(hp)

    def prepare(self, batch) -> torch.Tensor:
        return self.tokens(batch)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)

    def block_names(self) -> list[str]:
        return [f"backbone block {j + 1}" for j in range(len(self.model.backbone.blocks))]

    def forward_layers(self, tokens: torch.Tensor, blocks: list[int]):
        return self.forward_capturing(tokens, [self.model.backbone.blocks[j] for j in blocks], pool_spectrum_tokens)


def load(spec: ModelSpec, source: str, *, device: torch.device, precision: str) -> Embedder:
    path, revision = resolve_file(source, spec.filename)
    where = str(path)
    state = require(load_checkpoint(path), "state_dict", where)
    mine, other = TOWERS[spec.modality], set(TOWERS.values()) - {TOWERS[spec.modality]}
    stray = sorted(k for k in state if not k.startswith((mine, *other)))
    if stray:
        raise CheckpointError(f"{where}: unexpected keys {stray} (neither tower of AstroCLIP)")
    sd = {_unchunk(k.removeprefix(mine)): v for k, v in state.items() if k.startswith(mine)}
    if not sd:
        raise CheckpointError(f"{where}: no {mine}* keys: not an AstroCLIP checkpoint")
    arch, extras = _arch_from_state(spec.modality, sd, spec.arch, where, mine)
    model = _image_tower(arch, extras) if spec.modality == IMAGE else _spectrum_tower(arch)
    load_strict(model, sd, where, prefix=mine)  # chunked block keys are reported unchunked
    kw = dict(source=source, revision=revision, device=device, precision=precision, dim=arch["head"]["embed_dim"])
    if spec.modality == IMAGE:
        return AstroCLIPImageEmbedder(spec, model, crop=spec.arch["image"]["crop"], **kw)
    return AstroCLIPSpectrumEmbedder(spec, model, hp=arch["spectrum"], **kw)


def save_random(spec: ModelSpec, out_dir: Path, arch: dict, seed: int) -> None:
    """Both towers (one file serves astroclip-image and astroclip-spectrum), DINOv2-chunked block keys."""
    a = arch["image"]
    extras = {"cls_token": (1, 1, a["embed_dim"]), "mask_token": (1, a["embed_dim"]),
              "pos_embed": (1, 1 + (a["img_size"] // a["patch_size"]) ** 2, a["embed_dim"])}
    torch.manual_seed(seed)
    image, spectrum = _image_tower(arch, extras), _spectrum_tower(arch)
    for p in (image.backbone.cls_token, image.backbone.mask_token, image.backbone.pos_embed):
        nn.init.normal_(p, std=0.02)
    per_chunk = a["depth"] // a["block_chunks"]
    state = {}
    for k, v in image.state_dict().items():
        k = re.sub(r"^backbone\.blocks\.(\d+)\.", lambda m: f"backbone.blocks.{int(m.group(1)) // per_chunk}.{m.group(1)}.", k)
        state[TOWERS[IMAGE] + k] = v
    state.update({TOWERS["spectrum"] + k: v for k, v in spectrum.state_dict().items()})
    hp = {"temperature": 15.5, "lr": 1e-4, "weight_decay": 0.05, "epochs": 100, "eta_min": 5e-7,
          "logit_scale": 15.5, "learnable_logit_scale": False}
    path = out_dir / spec.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(lightning_checkpoint(state, hp), path)
