"""Golden pixel values from transformers' own torchvision-backend DINOv3 image and V-JEPA 2 video processors.

torchvision must not be installed in the project's environment (see samesky.models.hf), so the adapter
runs these processors' steps in plain torch (samesky.models.hf_zoo.TorchProcessor). This script runs the
real processors on fixed inputs, for the registry's tiny and real processor configs, and stores the
results in torchvision_pixels_golden.npz (real-size outputs as a corner and per-image sums).

Rerun (torchvision 0.28.0 for torch 2.13, kept out of the venv; its compiled ops are not needed for
resizing and cannot load on a CPU-only torch, so they are removed and their two schemas declared):
    pip download --no-deps torchvision==0.28.0 -d /tmp/tvdl
    pip install --no-deps --target /tmp/tv /tmp/tvdl/torchvision-0.28.0-*.whl
    rm /tmp/tv/torchvision/_C.so /tmp/tv/torchvision/image.so
    PYTHONPATH=/tmp/tv:src .venv/bin/python tests/golden/make_torchvision_pixels_golden.py
"""
from pathlib import Path

import numpy as np
import torch

lib = torch.library.Library("torchvision", "DEF")
for op in ("nms", "qnms"):
    lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

import torchvision  # noqa: E402
from transformers import VJEPA2VideoProcessor  # noqa: E402
from transformers.models.dinov3_vit.image_processing_dinov3_vit import DINOv3ViTImageProcessor  # noqa: E402

from samesky.models import get_model  # noqa: E402

OUT = Path(__file__).parent / "torchvision_pixels_golden.npz"


def inputs(side: int) -> np.ndarray:
    """(3, 3, side, side) uint8, the same generator as the test."""
    return np.random.default_rng(side).integers(0, 256, (3, 3, side, side), dtype=np.uint8)


def run(key: str, tiny: bool, images: np.ndarray) -> np.ndarray:
    proc = dict(get_model(key).arch_for(tiny)["processor"])
    kind = proc.pop("image_processor_type", None) or proc.pop("video_processor_type")
    hwc = list(images.transpose(0, 2, 3, 1))
    if kind.startswith("DINOv3"):
        return DINOv3ViTImageProcessor(**proc)(hwc, return_tensors="pt")["pixel_values"].numpy()
    videos = [frame[None] for frame in hwc]  # one-frame videos (T, H, W, C)
    return VJEPA2VideoProcessor(**proc)(videos=videos, return_tensors="pt")["pixel_values_videos"].numpy()


def main():
    arrays = {"torchvision_version": np.array(torchvision.__version__)}
    for key in ("dinov3-vits16", "vjepa2-large"):
        for side in (160, 96):
            x = inputs(side)
            arrays[f"{key}_tiny_{side}"] = run(key, True, x)
            real = run(key, False, x)
            arrays[f"{key}_real_{side}_shape"] = np.array(real.shape)
            arrays[f"{key}_real_{side}_corner"] = real[..., :24, :24]
            arrays[f"{key}_real_{side}_sums"] = real.reshape(len(real), -1).astype(np.float64).sum(1)
    np.savez_compressed(OUT, **arrays)
    print({k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
    main()
