"""Vision families of the authors' current code beyond the paper: DINOv3, ViT-MAE, CLIP, SigLIP 2, V-JEPA 2.

Each is transformers' own model, pooled as UniverseTBD/platonic-universe ``src/pu/models/hf.py`` pools it
(``arch["embed"]``): DINOv3 the CLS token; ViT-MAE the patch mean without CLS (every patch visible,
see below); CLIP and SigLIP 2 ``get_image_features`` (the projected / attention-pooled image embedding);
V-JEPA 2 the token mean of a still image repeated over 16 frames (the repeat happens here, on the device).

Processors: ViT-MAE, CLIP and SigLIP 2 use the checkpoint's PIL-backend processor (as ``hf``). DINOv3 and
V-JEPA 2 ship only torchvision-backend processors and torchvision is not installed (it would switch the
other families' processors), so :class:`TorchProcessor` runs the same steps in plain torch from the
checkpoint's processor config; tests pin it to arrays transformers' own processors produced.

ViT-MAE: the authors' ``ViTMAEModel`` kept the checkpoint's ``mask_ratio`` 0.75, i.e. a random unseeded
quarter of the patches on every call. We set it to 0 and pass ``noise = arange`` so every patch is kept in
raster order: deterministic, the whole image (docs/PAPER.md says so).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .base import Embedder, as_uint8_images
from .checkpoint import CheckpointError, hub_revision
from .hf import checked_model, pil_processor, save_random_model
from .registry import ModelSpec

# where the processor config lives (transformers looks for a video processor's in both, in this order)
PROCESSOR_FILES = {"torch_image": ("preprocessor_config.json",),
                   "torch_video": ("video_preprocessor_config.json", "preprocessor_config.json")}


def _block_pool(kind: str):
    """How one block's tokens become a vector: the authors' ``_model_pool`` (src/pu/models/hf.py l. 147-161)."""
    if kind == "cls":
        return lambda h: h[:, 0]
    if kind == "mae":
        return lambda h: h[:, 1:].mean(dim=1)
    return lambda h: h.mean(dim=1)  # CLIP, SigLIP 2, V-JEPA 2: mean over every token


class TorchProcessor:
    """transformers' torchvision-backend DINOv3 image / V-JEPA 2 video processor steps, in plain torch.

    Image (DINOv3ViTImageProcessor): rescale, bilinear antialiased resize of the float image, optional
    centre crop, normalise. Video (BaseVideoProcessor): bilinear antialiased resize of the uint8 frame
    (shortest edge), centre crop, then the fused rescale-normalise. Only these settings are supported;
    anything else in the config is an error rather than a silent change of inputs.
    """

    def __init__(self, config: dict, kind: str, where: str):
        self.video = kind == "torch_video"
        if config.get("resample", 2) != 2:
            raise CheckpointError(f"{where}: resample {config['resample']} not supported (bilinear, 2, only)")
        if not (config.get("do_resize", True) and config.get("do_normalize", True) and config.get("do_rescale", True)):
            raise CheckpointError(f"{where}: only processors that resize, rescale and normalise are supported")
        self.size = config["size"]
        self.crop = config.get("crop_size") if config.get("do_center_crop", self.video) else None
        if isinstance(self.crop, int):
            self.crop = {"height": self.crop, "width": self.crop}
        if self.video:  # VJEPA2VideoProcessor.__init__ derives the resize from the crop, whatever "size" says
            self.size = {"shortest_edge": int(self.crop["height"] * 256 / 224)}
        self.scale = config.get("rescale_factor", 1 / 255)
        self.mean, self.std = config["image_mean"], config["image_std"]

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if "shortest_edge" in self.size:  # transformers' get_resize_output_image_size(default_to_square=False)
            short, long = (h, w) if h <= w else (w, h)
            new_short, new_long = self.size["shortest_edge"], int(self.size["shortest_edge"] * long / short)
            size = (new_short, new_long) if h <= w else (new_long, new_short)
        else:
            size = (self.size["height"], self.size["width"])
        if size == (h, w):
            return x
        return F.interpolate(x, size=list(size), mode="bilinear", align_corners=False, antialias=True)

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        if self.crop is None:
            return x
        h, w = x.shape[-2:]
        ch, cw = self.crop["height"], self.crop["width"]
        if ch > h or cw > w:
            raise ValueError(f"centre crop {ch}x{cw} larger than the resized image {h}x{w}")
        top, left = int((h - ch) / 2.0), int((w - cw) / 2.0)
        return x[..., top:top + ch, left:left + cw]

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 2, 3, 1))).permute(0, 3, 1, 2)  # as transformers
        if self.video:
            x = self._crop(self._resize(x))
            mean = torch.tensor(self.mean) * (1.0 / self.scale)
            std = torch.tensor(self.std) * (1.0 / self.scale)
            x = (x.to(torch.float32) - mean[:, None, None]) / std[:, None, None]
            return x[:, None]  # (B, 1 frame, 3, H, W)
        x = self._crop(self._resize(x * self.scale))
        mean, std = torch.as_tensor(self.mean, dtype=x.dtype), torch.as_tensor(self.std, dtype=x.dtype)
        return (x - mean[:, None, None]) / std[:, None, None]


class ZooEmbedder(Embedder):
    def __init__(self, spec, model, processor, **kw):
        super().__init__(spec, model, **kw)
        self.processor = processor
        self.kind = spec.arch["embed"]
        self.frames = spec.arch.get("frames")
        self.pool_block = _block_pool(self.kind)

    def prepare(self, batch) -> torch.Tensor:
        images = as_uint8_images(batch)
        if isinstance(self.processor, TorchProcessor):
            return self.processor(images)
        out = self.processor(list(images.transpose(0, 2, 3, 1)), return_tensors="pt", input_data_format="channels_last")
        return out["pixel_values"]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.kind == "cls":
            return m(pixel_values=pixel_values).last_hidden_state[:, 0]
        if self.kind == "mae":
            n = m.embeddings.patch_embeddings.num_patches
            noise = torch.arange(n, device=pixel_values.device, dtype=torch.float32).expand(len(pixel_values), n)
            return m(pixel_values=pixel_values, noise=noise).last_hidden_state[:, 1:].mean(dim=1)
        if self.kind == "image_features":
            return m.get_image_features(pixel_values=pixel_values).pooler_output
        if self.kind == "video_mean":
            video = pixel_values.repeat(1, self.frames // pixel_values.shape[1], 1, 1, 1)
            return m(pixel_values_videos=video, skip_predictor=True).last_hidden_state.mean(dim=1)
        raise KeyError(f"{self.spec.key}: unknown embedding kind {self.kind!r}")

    def _blocks(self) -> torch.nn.ModuleList:
        return self.model.get_submodule(self.spec.arch["blocks"])

    def block_names(self) -> list[str]:
        return [f"block {j + 1}" for j in range(len(self._blocks()))]

    def forward_layers(self, inputs, blocks: list[int]):
        """One forward pass: forward()'s embedding and the requested blocks' outputs, each pooled by the
        authors' per-block rule (CLS for DINOv3, patch mean for ViT-MAE, token mean otherwise)."""
        return hooked_forward(self, inputs, blocks, self.pool_block)


def hooked_forward(emb: Embedder, inputs, blocks: list[int], pool):
    """``emb.forward(inputs)`` with forward hooks on the requested blocks (their raw outputs, pooled)."""
    modules = emb._blocks()
    captured: dict[int, torch.Tensor] = {}
    handles = [modules[j].register_forward_hook(
        lambda _m, _i, out, j=j: captured.__setitem__(j, out[0] if isinstance(out, tuple) else out)) for j in blocks]
    try:
        final = emb.forward(inputs)
    finally:
        for h in handles:
            h.remove()
    return final, [pool(captured[j]) for j in blocks]


def _torch_processor(spec: ModelSpec, source: str) -> TorchProcessor:
    from transformers.utils import cached_file

    kind = spec.arch["processor_kind"]
    for name in PROCESSOR_FILES[kind]:
        path = cached_file(source, name, _raise_exceptions_for_missing_entries=False)
        if path:
            return TorchProcessor(json.loads(Path(path).read_text()), kind, f"{source}/{name}")
    raise FileNotFoundError(f"{source}: no processor config ({' or '.join(PROCESSOR_FILES[kind])})")


def load(spec: ModelSpec, source: str, *, device: torch.device, precision: str) -> ZooEmbedder:
    model = checked_model(spec, source)
    if spec.arch["processor_kind"] == "pil":
        processor = pil_processor(source)
    else:
        processor = _torch_processor(spec, source)
    if spec.arch["embed"] == "mae":
        model.config.mask_ratio = 0.0  # every patch (module docstring)
    cfg = model.config
    if spec.arch["embed"] == "image_features":
        dim = getattr(cfg, "projection_dim", None) or cfg.vision_config.hidden_size
    else:
        dim = cfg.hidden_size
    return ZooEmbedder(spec, model.float(), processor, source=source, revision=hub_revision(source), device=device,
                       precision=precision, dim=dim)


def save_random(spec: ModelSpec, out_dir: Path, arch: dict, seed: int) -> None:
    """Random weights (``hf.save_random_model``: the hub's model class) and the processor config in the hub layout."""
    import transformers

    save_random_model(arch, out_dir, seed)
    proc = dict(arch["processor"])
    if arch["processor_kind"] == "pil":
        getattr(transformers, proc.pop("image_processor_type"))(**proc).save_pretrained(out_dir)
    else:  # the torchvision-backend classes cannot be built here: write their config file as they save it
        (out_dir / PROCESSOR_FILES[arch["processor_kind"]][0]).write_text(json.dumps(proc, indent=2))
