"""Deterministic weights and inputs shared by make_astroclip_golden.py (upstream side) and the tests (our side).

Weights are not stored: every tensor is drawn from a generator seeded by its checkpoint name, so
both sides rebuild the same state dict from the names and shapes the golden file records (the
upstream modules define them). Inputs likewise; the golden file stores their SHA-256 so a change
of generator is caught rather than compared against stale outputs.
"""
from __future__ import annotations

import hashlib
import zlib

import numpy as np
import torch

# Tiny sizes of the upstream architectures (AstroDINO ViT with patch 12, DINOv2 block chunks,
# Specformer with its real tokenisation and max_len 800, heads of 4)
IMAGE_BACKBONE = {"img_size": 224, "patch_size": 12, "embed_dim": 64, "depth": 2, "num_heads": 1, "mlp_ratio": 4,
                  "init_values": 1e-5, "ffn_layer": "mlp", "block_chunks": 2, "qkv_bias": True}
SPECFORMER_HP = {"input_dim": 22, "embed_dim": 64, "num_layers": 2, "num_heads": 1, "max_len": 800,
                 "mask_num_chunks": 6, "mask_chunk_width": 50, "slice_section_length": 20, "slice_overlap": 10,
                 "dropout": 0.1, "norm_first": False}
HEAD = {"embed_dim": 32, "n_head": 4}
N_OBJECTS, SIDE, DESI_PIXELS = 3, 160, 7781
LEGACY_BANDS = ["g", "r", "i", "z"]


def tensor(name: str, shape) -> torch.Tensor:
    """A fixed tensor for checkpoint entry ``name``: ~N(0, 0.05); norm and LayerScale weights ~1 + N(0, 0.1)."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    x = torch.randn(tuple(shape), generator=g, dtype=torch.float64)
    ones = name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "layernorm.weight", "layernorm1.weight",
                          "layernorm2.weight", "final_layernorm.weight", ".gamma"))
    return ((1 + 0.1 * x) if ones else 0.05 * x).to(torch.float32)


def state_dict(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {name: tensor(name, shape) for name, shape in shapes.items()}


def legacy_fluxes() -> np.ndarray:
    """(N, 4, 160, 160) Legacy g, r, i, z in nanomaggies: off-centre elongated galaxies (not symmetric
    under transposition) with colour gradients, on noisy sky."""
    g = torch.Generator().manual_seed(13)
    y, x = torch.meshgrid(torch.arange(SIDE, dtype=torch.float64), torch.arange(SIDE, dtype=torch.float64),
                          indexing="ij")
    out = []
    for i in range(N_OBJECTS):
        cy, cx = 80 + 6 * (i + 1), 80 - 4 * (i + 1)
        r2 = ((x - cx) / (12 + 4 * i)) ** 2 + ((y - cy) / 5) ** 2
        bands = [amp * torch.exp(-r2 / (1 + 0.3 * b)) for b, amp in enumerate((0.4, 1.0, 1.6, 2.2))]
        out.append(torch.stack(bands) + 0.03 * torch.randn(4, SIDE, SIDE, generator=g, dtype=torch.float64))
    return torch.stack(out).to(torch.float32).numpy()


def desi_spectra() -> np.ndarray:
    """(N, 7781) DESI-grid fluxes: a continuum, emission lines and noise."""
    g = torch.Generator().manual_seed(17)
    wave = torch.linspace(3600, 9824, DESI_PIXELS, dtype=torch.float64)
    out = []
    for i in range(N_OBJECTS):
        continuum = (1 + i) * (1 + 0.3 * torch.sin(wave / (700 + 100 * i)))
        lines = sum(3 * torch.exp(-0.5 * ((wave - c * (1 + 0.1 * i)) / 4) ** 2) for c in (3727, 4861, 5007, 6563))
        out.append(continuum + lines + 0.2 * torch.randn(DESI_PIXELS, generator=g, dtype=torch.float64))
    return torch.stack(out).to(torch.float32).numpy()


def sha256(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
