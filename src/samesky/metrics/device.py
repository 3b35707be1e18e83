"""Where and in which precision metric tensors live: shared by the kNN and feature-space code."""
from __future__ import annotations

from contextlib import contextmanager

import torch


def pick_device(device=None, data=None) -> torch.device:
    """Explicit device, else the device of a given GPU tensor, else CUDA if present, else CPU."""
    if device not in (None, "auto"):
        return torch.device(device)
    if isinstance(data, torch.Tensor) and data.device.type != "cpu":
        return data.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_matrix(Z, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    """numpy or torch (N, D) -> tensor on ``device``; refuses other shapes."""
    t = torch.as_tensor(Z)
    if t.ndim != 2:
        raise ValueError(f"expected a 2-d (objects, features) matrix, got shape {tuple(t.shape)}")
    return t.to(device=device, dtype=dtype)


@contextmanager
def full_fp32():
    """Disable TF32 matmuls for the block: metric values must not depend on the GPU's mode."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


@contextmanager
def threads(n: int):
    """Run the block with ``n`` intra-op CPU threads (switching costs well under a microsecond).

    The kNN bookkeeping is many small ops; with several threads each one pays an OpenMP barrier,
    which stalls for a whole scheduler slice when the cores are shared with other jobs (100x
    slower in our measurements). Big GEMMs keep all threads.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
