"""``load_embedder`` and ``save_tiny``: one entry point per direction for every adapter.

``source`` is a hub id (weights come from the Hugging Face cache/hub, which honours
HF_HUB_OFFLINE) or a local directory laid out like the hub repo; both take the same code path.
"""
from __future__ import annotations

import importlib
import os
import zlib
from pathlib import Path

from .base import Embedder, resolve_device, resolve_precision
from .registry import get_model


def _adapter(key: str):
    """The entry and its adapter: the module ``samesky.models.{spec.adapter}`` (with ``load`` and
    ``save_random``), imported on first use, so a new adapter is one new module and no list here."""
    spec = get_model(key)
    return spec, importlib.import_module(f"{__package__}.{spec.adapter}")


def load_embedder(key: str, source: str | os.PathLike | None = None, *, device: str = "auto",
                  precision: str = "auto") -> Embedder:
    """Load model ``key`` from ``source`` (default: its hub id) onto ``device`` ('auto': GPU if any).

    precision: 'auto' (bf16/fp16 autocast on GPU, fp32 on CPU), 'fp32', 'bf16' or 'fp16'.
    """
    spec, adapter = _adapter(key)
    dev = resolve_device(device)
    return adapter.load(spec, str(source or spec.hub_id), device=dev, precision=resolve_precision(precision, dev))


def save_tiny(key: str, out_dir: str | os.PathLike, *, seed: int | None = None, full_size: bool = False) -> Path:
    """Write a seeded random-weight instance of ``key`` to ``out_dir`` in the real on-disk format.

    Tiny by default (runs in seconds on a CPU); ``full_size=True`` uses the real architecture
    (benchmarks). ``load_embedder(key, out_dir)`` then reads it like a downloaded checkpoint.
    The default seed comes from the key, so two sizes of a family are different networks even
    where their tiny architectures coincide.
    """
    if seed is None:
        seed = zlib.crc32(key.encode())
    spec, adapter = _adapter(key)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    adapter.save_random(spec, out, spec.arch_for(tiny=not full_size), seed)
    return out
