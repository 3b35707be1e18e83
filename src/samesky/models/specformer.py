"""Specformer (polymathic-ai/specformer, the AstroCLIP spectrum encoder) in plain torch.

AstroCLIP's Lightning module cannot be installed with modern torch, so this re-implements its
inference path with the original parameter names (``data_embed``, ``position_embed``,
``blocks.<i>.{layernorm1,attention.attention,attention.projection,layernorm2,mlp.encoder,
mlp.decoder}``, ``final_layernorm``, ``head``); ``specformer.ckpt`` (``hyper_parameters`` +
``state_dict``) loads strictly.

Preprocessing reproduces the original exactly, including its quirk: it slices windows starting
at 0, 10, ... < L - 10 and then always discards the last one (its length test looks at the
wrong axis). On the 7781-pixel DESI grid the discarded window is the short one at 7770 (11
pixels), so 777 full windows remain and pixel 7780 is unused; the trained weights saw exactly
that, so we keep it.

Blocks (layer-wise embeddings): each encoder block's output (before the final LayerNorm), pooled
as the embedding: mean over tokens, the statistics token excluded.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import Embedder, as_float_spectra
from .checkpoint import CheckpointError, load_checkpoint, load_strict, require, resolve_file, stub_state
from .registry import ModelSpec


def spectrum_tokens(x: torch.Tensor, section: int = 20, overlap: int = 10) -> torch.Tensor:
    """(B, L) flux -> (B, 1 + n, section + 2): a statistics token, then z-scored overlapping windows."""
    std, mean = x.std(dim=1, keepdim=True).clamp_min(0.2), x.mean(dim=1, keepdim=True)
    x = (x - mean) / std
    step = section - overlap
    n = len(range(0, x.shape[1] - overlap, step)) - 1  # the original always drops its last window
    if n < 1:
        raise ValueError(f"spectra of {x.shape[1]} pixels are too short for windows of {section}")
    tokens = F.pad(x.unfold(1, section, step)[:, :n], (2, 0, 1, 0))
    tokens[:, 0, 0] = (mean[:, 0] - 2) / 2
    tokens[:, 0, 1] = (std[:, 0] - 2) / 8
    return tokens


class _Attention(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.attention = nn.Linear(d, 3 * d)
        self.projection = nn.Linear(d, d)
        self.n_head = n_head

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in self.attention(x).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v)
        return self.projection(y.transpose(1, 2).reshape(b, t, c))


class _MLP(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.encoder = nn.Linear(d, hidden)
        self.decoder = nn.Linear(hidden, d)

    def forward(self, x):
        return self.decoder(F.gelu(self.encoder(x)))


class _Block(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.layernorm1 = nn.LayerNorm(d)
        self.attention = _Attention(d, n_head)
        self.layernorm2 = nn.LayerNorm(d)
        self.mlp = _MLP(d, 4 * d)

    def forward(self, x):
        x = x + self.attention(self.layernorm1(x))
        return x + self.mlp(self.layernorm2(x))


class SpecFormer(nn.Module):
    """Token sequence -> final-LayerNorm states (B, T, embed_dim). ``head`` is kept for strict loading."""

    def __init__(self, input_dim: int, embed_dim: int, num_layers: int, num_heads: int, max_len: int, **_):
        super().__init__()
        self.data_embed = nn.Linear(input_dim, embed_dim)
        self.position_embed = nn.Embedding(max_len, embed_dim)
        self.blocks = nn.ModuleList(_Block(embed_dim, num_heads) for _ in range(num_layers))
        self.final_layernorm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, input_dim)
        self.max_len = max_len

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.data_embed(tokens) + self.position_embed(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.final_layernorm(x)


ARCH_KEYS = ("input_dim", "embed_dim", "num_layers", "num_heads", "max_len")


def hyper_parameters(hp: dict, where: str) -> dict:
    """The architecture and slicing entries of a Specformer ``hyper_parameters`` dict, checked."""
    out = {k: int(require(hp, k, f"{where} hyper_parameters")) for k in ARCH_KEYS}
    out["slice_section_length"] = int(hp.get("slice_section_length", 20))
    out["slice_overlap"] = int(hp.get("slice_overlap", 10))
    if out["input_dim"] != out["slice_section_length"] + 2:
        raise CheckpointError(f"{where}: input_dim {out['input_dim']} != slice_section_length + 2")
    return out


class SpectrumTokens:
    """Shared CPU preprocessing of Specformer-based embedders."""

    def __init__(self, hp: dict):
        self.section, self.overlap, self.max_len = hp["slice_section_length"], hp["slice_overlap"], hp["max_len"]

    def __call__(self, batch) -> torch.Tensor:
        tokens = spectrum_tokens(as_float_spectra(batch), self.section, self.overlap)
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"{tokens.shape[1]} tokens exceed Specformer's max_len {self.max_len}")
        return tokens


class SpecformerEmbedder(Embedder):
    def __init__(self, spec, model, *, hp: dict, **kw):
        super().__init__(spec, model, **kw)
        self.tokens = SpectrumTokens(hp)

    def prepare(self, batch) -> torch.Tensor:
        return self.tokens(batch)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return pool_spectrum_tokens(self.model(tokens))

    def block_names(self) -> list[str]:
        return [f"block {j + 1}" for j in range(len(self.model.blocks))]

    def forward_layers(self, tokens: torch.Tensor, blocks: list[int]):
        return self.forward_capturing(tokens, [self.model.blocks[j] for j in blocks], pool_spectrum_tokens)


def pool_spectrum_tokens(states: torch.Tensor) -> torch.Tensor:
    """Mean over tokens, the statistics token excluded (as the study pooled Specformer)."""
    return states[:, 1:].mean(dim=1)


def load(spec: ModelSpec, source: str, *, device: torch.device, precision: str) -> SpecformerEmbedder:
    path, revision = resolve_file(source, spec.filename)
    ckpt = load_checkpoint(path)
    hp = hyper_parameters(stub_state(require(ckpt, "hyper_parameters", str(path))), str(path))
    model = SpecFormer(**hp)
    load_strict(model, require(ckpt, "state_dict", str(path)), str(path))
    return SpecformerEmbedder(spec, model, hp=hp, source=source, revision=revision, device=device,
                              precision=precision, dim=hp["embed_dim"])


def lightning_checkpoint(state_dict: dict, hyper_parameters: dict) -> dict:
    """The layout of a Lightning checkpoint, the on-disk format of specformer.ckpt and astroclip.ckpt."""
    return {"state_dict": state_dict, "hyper_parameters": hyper_parameters, "epoch": 0, "global_step": 0,
            "pytorch-lightning_version": "2.1.0"}


def save_random(spec: ModelSpec, out_dir: Path, arch: dict, seed: int) -> None:
    hp = dict(arch["hyper_parameters"])
    torch.manual_seed(seed)
    model = SpecFormer(**hp)
    path = out_dir / spec.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(lightning_checkpoint(model.state_dict(), hp), path)
