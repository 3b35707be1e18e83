"""AstroPT v2 (Smith42/astroPT_v2.0) for inference in plain torch, without the astropt package.

The module mirrors astropt 2.0.9's ``GPT`` parameter names (``transformer.wte/wpe/h/ln_f``,
``lm_head``), so the checkpoint's ``model`` state dict loads one to one after stripping
torch.compile's ``_orig_mod.`` prefix; the loader fails on any other difference. The
checkpoint (``astropt/<size>/ckpt.pt``) holds ``model_args``, the state dict and a pickled
``astropt.model.ModalityRegistry``: it is read with the restricted unpickler of
``samesky.models.checkpoint`` (the registry comes back as a stub whose recorded fields we read).

Embedding (as ``GPT.generate_embeddings``): the images modality only, tokens through the blocks
up to and including block ``n_layer // 2`` (0-based), mean over tokens, no final norm.
Attention is causal for ``attn_type='causal'``; for 'prefix' the original's embedding path
passes no mask, i.e. full attention.

Blocks (layer-wise embeddings): each block's output, pooled as the embedding (mean over tokens,
no norm), so the final embedding equals block ``n_layer // 2`` exactly. Asking for blocks past the
middle runs them (the embedding alone stops there).

Orientation: AstroPT's own training script and the study both feed ``np.array(image).swapaxes(0, 2)``
of an (H, W, C) image, i.e. (C, W, H); the weights were trained on that layout and the paper's
numbers come from it. ``prepare`` therefore transposes our (B, C, H, W) batches to (B, C, W, H)
before patching (``tests/test_models_upstream.py`` checks it against the astropt package).
"""
from __future__ import annotations

import itertools
import sys
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Embedder
from .checkpoint import CheckpointError, load_checkpoint, load_strict, require, resolve_file, stub_state
from .registry import ModelSpec

PATCH = 16


def spiral_order(n: int) -> np.ndarray:
    """Raster indices of an n x n patch grid in AstroPT's spiral order (centre first, spiralling out)."""
    grid, out = np.arange(n * n).reshape(n, n), []
    while grid.size:  # peel the top row, rotate: a clockwise spiral from the top-left corner inwards
        out.extend(grid[0].tolist())
        grid = np.rot90(grid[1:])
    return np.array(out[::-1])


def tokenise(images: torch.Tensor, patch: int = PATCH) -> torch.Tensor:
    """(B, C, H, W) float -> (B, n, patch*patch*C) z-scored patch tokens in spiral order.

    Sides that are not a multiple of ``patch`` are resized (bilinear, antialiased) to the
    nearest multiple; 160 (HSC, Legacy) and 96 (JWST) need no resize.
    """
    b, c, h, w = images.shape
    if h % patch or w % patch:
        size = (max(patch, round(h / patch) * patch), max(patch, round(w / patch) * patch))
        images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
        h, w = size
    if h != w:
        raise ValueError(f"AstroPT's spiral order needs square images, got {h}x{w}")
    n = h // patch
    x = images.reshape(b, c, n, patch, n, patch).permute(0, 2, 4, 3, 5, 1).reshape(b, n * n, patch * patch * c)
    std, mean = torch.std_mean(x, dim=-1, keepdim=True)
    x = (x - mean) / (std + 1e-8)
    return x[:, torch.from_numpy(spiral_order(n))]


class _Attention(nn.Module):
    def __init__(self, d: int, n_head: int, bias: bool, causal: bool):
        super().__init__()
        self.c_attn = nn.Linear(d, 3 * d, bias=bias)
        self.c_proj = nn.Linear(d, d, bias=bias)
        self.n_head, self.causal = n_head, causal

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in self.c_attn(x).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class _MLP(nn.Module):
    """Two linears with tanh-GELU; also AstroPT's 'aim' tokeniser/decoder. 'affine' = one linear."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, bias: bool, two_layer: bool = True):
        super().__init__()
        self.c_fc = nn.Linear(d_in, d_hidden if two_layer else d_out, bias=bias)
        self.c_proj = nn.Linear(d_hidden, d_out, bias=bias) if two_layer else None

    def forward(self, x):
        x = self.c_fc(x)
        return self.c_proj(F.gelu(x, approximate="tanh")) if self.c_proj is not None else x


class _Block(nn.Module):
    def __init__(self, d, n_head, bias, causal):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-5, bias=bias)
        self.attn = _Attention(d, n_head, bias, causal)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5, bias=bias)
        self.mlp = _MLP(d, 4 * d, d, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class _PosEmbedding(nn.Module):
    def __init__(self, block_size, d):
        super().__init__()
        self.wpe = nn.Embedding(block_size, d)

    def forward(self, pos):
        return self.wpe(pos)


class AstroPT(nn.Module):
    """astropt's GPT with its parameter names; ``forward`` returns the middle-block token mean."""

    def __init__(self, args: dict, modalities: dict[str, dict]):
        super().__init__()
        d, bias = args["n_embd"], args.get("bias", False)
        aim = args.get("tokeniser", "aim") != "affine"
        wte, wpe, heads = {}, {}, {}
        for name, m in modalities.items():
            wte[name] = _MLP(m["input_size"], 4 * d, d, bias, aim)
            wpe[name] = (_PosEmbedding(args["block_size"], d) if m["embed_pos"]
                         else _MLP(m["pos_input_size"], 4 * d, d, bias, aim))
            heads[name] = _MLP(d, 4 * d, m["input_size"], bias, aim)
        causal = args.get("attn_type", "causal") == "causal"
        self.transformer = nn.ModuleDict({
            "wte": nn.ModuleDict(wte),
            "wpe": nn.ModuleDict(wpe),
            "h": nn.ModuleList(_Block(d, args["n_head"], bias, causal) for _ in range(args["n_layer"])),
            "ln_f": nn.LayerNorm(d, eps=1e-5, bias=bias),
        })
        self.lm_head = nn.ModuleDict(heads)
        self.middle = args["n_layer"] // 2

    def states(self, tokens: torch.Tensor, positions: torch.Tensor) -> Iterator[torch.Tensor]:
        """Token states after each block in turn; blocks run only as far as the caller reads."""
        x = self.transformer.wte["images"](tokens) + self.transformer.wpe["images"](positions)
        for block in self.transformer.h:
            x = block(x)
            yield x

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        # later blocks do not change the embedding: they are not run
        return next(itertools.islice(self.states(tokens, positions), self.middle, None)).mean(dim=1)


class AstroPTEmbedder(Embedder):
    def __init__(self, spec, model, *, patch: int, input_size: int, block_size: int, **kw):
        super().__init__(spec, model, **kw)
        self.patch, self.input_size, self.block_size = patch, input_size, block_size

    def prepare(self, batch) -> dict:
        x = torch.as_tensor(batch).to(torch.float32)  # uint8 0..255 as float, as the study fed it
        if x.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(x.shape)}")
        tokens = tokenise(x.transpose(-1, -2), self.patch)  # (C, W, H), as AstroPT was trained and run
        if tokens.shape[-1] != self.input_size:
            raise ValueError(f"{x.shape[1]} channels give {tokens.shape[-1]}-value tokens; "
                             f"the checkpoint expects {self.input_size}")
        if tokens.shape[1] > self.block_size:
            raise ValueError(f"{tokens.shape[1]} tokens exceed the block size {self.block_size}; use smaller images")
        positions = torch.arange(tokens.shape[1]).expand(tokens.shape[0], -1)
        return {"tokens": tokens, "positions": positions}

    def forward(self, inputs: dict) -> torch.Tensor:
        return self.model(inputs["tokens"], inputs["positions"])

    def block_names(self) -> list[str]:
        return [f"block {j + 1}" for j in range(len(self.model.transformer.h))]

    def forward_layers(self, inputs: dict, blocks: list[int]):
        last = max([self.model.middle, *blocks])
        states = itertools.islice(self.model.states(inputs["tokens"], inputs["positions"]), last + 1)
        pooled = [x.mean(dim=1) for x in states]  # token states are dropped as soon as they are pooled
        return pooled[self.model.middle], [pooled[j] for j in blocks]


_SUPPORTED_ARGS = {"block_size", "n_layer", "n_head", "n_embd", "n_chan", "dropout", "bias", "attn_type",
                   "tokeniser", "lora_r", "lora_alpha", "lora_dropout", "modalities"}


def _read(path: Path) -> tuple[dict, dict, dict]:
    where = str(path)
    ckpt = load_checkpoint(path)
    args = dict(require(ckpt, "model_args", where))
    unknown = sorted(set(args) - _SUPPORTED_ARGS)
    if unknown or args.get("lora_r", 0):
        raise CheckpointError(f"{where}: unsupported model_args {unknown or {'lora_r': args['lora_r']}} "
                              "(task heads and LoRA are not part of the pretrained embedding model)")
    registry = stub_state(require(ckpt, "modality_registry", where))
    modalities = {name: stub_state(cfg) for name, cfg in require(registry, "modalities", f"{where} modality_registry").items()}
    if "images" not in modalities or not modalities["images"].get("embed_pos", False):
        raise CheckpointError(f"{where}: needs an 'images' modality with embedded positions, has {modalities}")
    state = {k.removeprefix("_orig_mod."): v for k, v in require(ckpt, "model", where).items()}
    return args, modalities, state


def load(spec: ModelSpec, source: str, *, device: torch.device, precision: str) -> AstroPTEmbedder:
    path, revision = resolve_file(source, spec.filename)
    args, modalities, state = _read(path)
    model = AstroPT(args, modalities)
    load_strict(model, state, str(path))
    images = modalities["images"]
    return AstroPTEmbedder(spec, model, patch=int(images.get("patch_size", PATCH)),
                           input_size=int(images["input_size"]), block_size=int(args["block_size"]),
                           source=source, revision=revision, device=device, precision=precision, dim=args["n_embd"])


# Stand-ins pickled under astropt's own names, so a saved checkpoint has the real layout.
@dataclass
class ModalityConfig:
    name: str
    input_size: int
    pos_input_size: int
    patch_size: int
    embed_pos: bool
    loss_weight: float = 1.0


class ModalityRegistry:
    def __init__(self, modalities):
        self.modalities = {m.name: m for m in modalities}


ModalityConfig.__module__ = ModalityRegistry.__module__ = "astropt.model"


@contextmanager
def _as_astropt_module():
    """Make ``astropt.model`` resolvable while pickling: the real package if imported, else the stand-ins."""
    if "astropt.model" in sys.modules:
        yield sys.modules["astropt.model"]
        return
    pkg, mod = types.ModuleType("astropt"), types.ModuleType("astropt.model")
    mod.ModalityConfig, mod.ModalityRegistry, pkg.model = ModalityConfig, ModalityRegistry, mod
    sys.modules.update({"astropt": pkg, "astropt.model": mod})
    try:
        yield mod
    finally:
        del sys.modules["astropt.model"], sys.modules["astropt"]


def save_random(spec: ModelSpec, out_dir: Path, arch: dict, seed: int) -> None:
    torch.manual_seed(seed)
    model_args = dict(arch["model_args"])
    model = AstroPT(model_args, {m["name"]: dict(m) for m in arch["modalities"]})
    path = out_dir / spec.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    with _as_astropt_module() as astropt_model:
        configs = [astropt_model.ModalityConfig(**m) for m in arch["modalities"]]
        ckpt = {"model": model.state_dict(), "model_args": model_args,
                "modality_registry": astropt_model.ModalityRegistry(configs), "iter_num": 0,
                "best_val_loss": float("inf"), "config": {}}
        torch.save(ckpt, path)
