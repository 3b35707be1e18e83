"""The Embedder interface shared by every adapter, and device/precision/input helpers.

An adapter turns a batch into model inputs on the CPU (``prepare``: processors, tokenisers) and
runs + pools them on the device (``forward``). Keeping the two apart lets the runner and the
benchmark see where time goes; ``embed`` chains them under inference mode and autocast. The
runner calls ``prepare`` in forked input worker processes (``samesky.embed``), so it must use
only the CPU, leave the embedder unchanged, and return a tensor or a dict of tensors whose
first axis is the batch (``batch_slice`` cuts them, ``to_device`` moves them).

Layer-wise embeddings (``block_names``, ``forward_layers``, ``run_layers``): the outputs of a
model's blocks, each pooled by the family's own rule, from the same forward pass that gives the
final embedding; the final embedding stays bit-identical to ``forward``. Families that capture
blocks with forward hooks use ``forward_capturing``, which runs ``forward`` itself.
"""
from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .registry import ModelSpec

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is bf16 on GPUs that support it, else fp16 on GPU, and fp32 on CPU."""
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use 'auto' or one of {sorted(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision 'fp16' is not supported on CPU; use 'fp32' or 'bf16'")
    return precision


def to_device(inputs: Any, device: torch.device) -> Any:
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device, non_blocking=True)
    if isinstance(inputs, dict):
        return {k: to_device(v, device) for k, v in inputs.items()}
    return inputs


def batch_slice(inputs: Any, start: int, stop: int) -> Any:
    """Rows [start, stop) of prepared inputs (a tensor or a dict of tensors, batch first)."""
    if isinstance(inputs, torch.Tensor):
        return inputs[start:stop]
    if isinstance(inputs, dict):
        return {k: batch_slice(v, start, stop) for k, v in inputs.items()}
    raise TypeError(f"prepared inputs must be a tensor or a dict of tensors, got {type(inputs).__name__}")


def as_uint8_images(batch) -> np.ndarray:
    """(B, 3, H, W) uint8 RGB; float input is taken as [0, 1] and rounded to 0..255."""
    arr = batch.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
    if arr.ndim != 4 or arr.shape[1] != 3:
        raise ValueError(f"expected RGB images of shape (B, 3, H, W), got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind != "f":
        raise ValueError(f"images must be uint8 or float in [0, 1], got dtype {arr.dtype}")
    return np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def as_float_spectra(batch) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(batch) if not isinstance(batch, torch.Tensor) else batch)
    if x.ndim != 2:
        raise ValueError(f"expected spectra of shape (B, L), got {tuple(x.shape)}")
    return x.to(torch.float32)


def select_blocks(layers: str | Sequence[int], names: Sequence[str], model: str) -> list[int]:
    """The 0-based block indices ``layers`` ('all' or indices, negative from the last) selects, sorted
    and without repeats; an index outside the model's blocks is an error naming the model and range."""
    n = len(names)
    if layers == "all":
        return list(range(n))
    if isinstance(layers, str) or not layers:
        raise ValueError(f"layers must be 'all' or a non-empty list of block indices, got {layers!r}")
    bad = [j for j in layers if not -n <= int(j) < n]
    if bad:
        raise ValueError(f"layers {bad} out of range for model {model!r}: it has {n} blocks, so indices run "
                         f"0..{n - 1} (or -{n}..-1 from the last)")
    return sorted({int(j) % n for j in layers})


def _keep_pooled(store: dict, key: int, pool: Callable, module, args, output) -> None:
    store[key] = pool(output)


class Embedder:
    """A loaded model that maps a batch of inputs to (B, dim) float32 embeddings on the CPU."""

    def __init__(self, spec: ModelSpec, model: torch.nn.Module, *, source: str, revision: str | None,
                 device: torch.device, precision: str, dim: int):
        self.spec = spec
        self.model = model.to(device).eval()
        self.source = str(source)
        self.revision = revision
        self.device = device
        self.precision = precision
        self.dim = int(dim)

    def bind(self, info: dict) -> None:
        """Take what the input file says about its rows (survey, bands) before embedding.

        Most models need nothing beyond the array; AION needs the band names."""

    def prepare(self, batch) -> Any:
        """CPU preprocessing: the batch as the model's inputs (runs in input workers; see module docstring)."""
        raise NotImplementedError

    def forward(self, inputs: Any) -> torch.Tensor:
        """Model forward + pooling on the device: (B, dim)."""
        raise NotImplementedError

    def autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    def run(self, inputs: Any) -> torch.Tensor:
        """Forward already-prepared inputs: (B, dim) float32 on the CPU."""
        with torch.inference_mode(), self.autocast():
            out = self.forward(to_device(inputs, self.device))
        return out.float().cpu()

    def embed(self, batch) -> torch.Tensor:
        return self.run(self.prepare(batch))

    def block_names(self) -> list[str]:
        """The model's L blocks in order, e.g. ["block 1", ..., "block 12"]: what ``forward_layers`` indexes."""
        raise NotImplementedError(f"{self.spec.key}: layer-wise embeddings are not implemented for the "
                                  f"{self.spec.adapter!r} adapter")

    def forward_layers(self, inputs: Any, blocks: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One forward pass: the final embedding (B, dim), bit-identical to ``forward(inputs)``, and the
        requested blocks' outputs (each (B, d_j)), each pooled by the family's own rule."""
        raise NotImplementedError(f"{self.spec.key}: layer-wise embeddings are not implemented for the "
                                  f"{self.spec.adapter!r} adapter")

    def run_layers(self, inputs: Any, blocks: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``forward_layers`` on already-prepared inputs: float32 CPU tensors, as ``run``."""
        with torch.inference_mode(), self.autocast():
            final, outs = self.forward_layers(to_device(inputs, self.device), list(blocks))
        return final.float().cpu(), [b.float().cpu() for b in outs]

    def forward_capturing(self, inputs: Any, modules: Sequence[torch.nn.Module], pool: Callable
                          ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``forward(inputs)`` with forward hooks that pool each of ``modules``' outputs as it is made
        (only (B, d) is kept, not the token states): (final, [pooled output of each module])."""
        got: dict[int, torch.Tensor] = {}
        hooks = [m.register_forward_hook(partial(_keep_pooled, got, i, pool)) for i, m in enumerate(modules)]
        try:
            final = self.forward(inputs)
        finally:
            for h in hooks:
                h.remove()
        missing = [i for i in range(len(modules)) if i not in got]
        if missing:
            raise RuntimeError(f"{self.spec.key}: {len(missing)} requested block(s) did not run in forward")
        return final, [got[i] for i in range(len(modules))]

    def describe(self) -> dict:
        """Provenance of this embedder."""
        s = self.spec
        return {"model": s.key, "hub_id": s.hub_id, "source": self.source, "revision": self.revision,
                "pooling": s.pooling, "input_recipe": s.input_recipe, "dim": self.dim,
                "device": str(self.device), "precision": self.precision}
