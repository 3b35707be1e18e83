"""Hugging Face vision models (ViT, DINOv2 with registers, ConvNeXtV2, IJEPA) through AutoModel.

Hub id and local directory go through the same ``from_pretrained`` call. Unlike a plain
``from_pretrained``, missing or mis-shaped weights are an error (transformers would silently
initialise them at random), and so are unexpected ones outside the heads the spec ignores.

Image processors run on the PIL backend, whatever else is installed: the study's transformers
(4.56) used the slow PIL processors unless asked otherwise, while transformers 5 picks the
torchvision ones whenever torchvision is importable (any CUDA torch install), and those resize
differently. A processor of another backend is an error, not a silent change of inputs.

Blocks (layer-wise embeddings), pooled by the family's pooler like the final embedding:
* ViT, DINOv2, IJEPA: each transformer layer's residual output, ``hidden_states[1:]`` of
  ``output_hidden_states`` (``[0]`` is the patch embedding; the last layer's output is the state
  before the final LayerNorm, so it differs from the final embedding). Only the requested states
  are kept (transformers >= 5 takes the indices themselves as ``output_hidden_states``).
* ConvNeXtV2: each block (``ConvNextV2Layer``) of each stage. transformers' ``hidden_states`` are
  per stage (the embedding output + the 4 stage outputs, i.e. each stage's last block), so the
  blocks are taken with forward hooks; a stage's last block equals its ``hidden_states`` entry.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .base import Embedder, as_uint8_images
from .checkpoint import CheckpointError, hub_revision
from .registry import ModelSpec

PROCESSOR_BACKEND = "pil"  # the backend that reproduces the paper (see module docstring)

POOLERS = {
    "mean_patch_tokens": lambda h: h[:, 1:].mean(dim=1),  # ViT: CLS excluded
    "cls": lambda h: h[:, 0],  # DINOv2
    "spatial_mean": lambda h: h.mean(dim=(2, 3)),  # ConvNeXtV2: (B, C, H, W), before the final LayerNorm
    "mean_tokens": lambda h: h.mean(dim=1),  # IJEPA: no CLS token
}


class HFEmbedder(Embedder):
    def __init__(self, spec, model, processor, **kw):
        super().__init__(spec, model, **kw)
        self.processor = processor
        self.pool = POOLERS[spec.arch["pooling"]]

    def prepare(self, batch) -> torch.Tensor:
        images = as_uint8_images(batch).transpose(0, 2, 3, 1)  # HWC, as the processors' PIL path expects
        out = self.processor(list(images), return_tensors="pt", input_data_format="channels_last")
        return out["pixel_values"]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.pool(self.model(pixel_values=pixel_values).last_hidden_state)

    def _convnext_blocks(self) -> list[torch.nn.Module] | None:
        """ConvNeXtV2's blocks in order (stage by stage); None for the transformer families."""
        if self.model.config.model_type != "convnextv2":
            return None
        return [layer for stage in self.model.encoder.stages for layer in stage.layers]

    def block_names(self) -> list[str]:
        if self._convnext_blocks() is not None:
            return [f"stage {s + 1} block {b + 1}" for s, stage in enumerate(self.model.encoder.stages)
                    for b in range(len(stage.layers))]
        return [f"block {j + 1}" for j in range(self.model.config.num_hidden_layers)]

    def forward_layers(self, pixel_values: torch.Tensor, blocks: list[int]):
        convnext = self._convnext_blocks()
        if convnext is not None:
            return self.forward_capturing(pixel_values, [convnext[j] for j in blocks], self.pool)
        if not blocks:
            return self.forward(pixel_values), []
        out = self.model(pixel_values=pixel_values, output_hidden_states=[j + 1 for j in blocks])
        return self.pool(out.last_hidden_state), [self.pool(out.hidden_states[j + 1]) for j in blocks]


def _check_loading(spec: ModelSpec, source: str, info: dict) -> None:
    ignore = tuple(spec.arch.get("ignore_unexpected", ()))
    unexpected = sorted(k for k in info.get("unexpected_keys", ()) if not k.startswith(ignore))
    problems = []
    if info.get("missing_keys"):
        problems.append(f"missing keys {sorted(info['missing_keys'])}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if info.get("mismatched_keys"):
        problems.append(f"shape mismatch {sorted(map(str, info['mismatched_keys']))}")
    if problems:
        raise CheckpointError(f"{source}: weights do not match {spec.key}: " + "; ".join(problems))


def checked_model(spec: ModelSpec, source: str) -> torch.nn.Module:
    """``AutoModel.from_pretrained`` that refuses another model type and missing, unexpected or
    mis-shaped weights (``_check_loading``)."""
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(source, output_loading_info=True)
    want = spec.arch["config"]["model_type"]
    if model.config.model_type != want:
        raise CheckpointError(f"{source}: holds a {model.config.model_type!r} model, {spec.key} needs {want!r}")
    _check_loading(spec, source, info)
    return model


def pil_processor(source: str):
    """The checkpoint's image processor on the PIL backend (module docstring); another is an error."""
    from transformers import AutoImageProcessor
    from transformers.image_processing_backends import PilBackend

    processor = AutoImageProcessor.from_pretrained(source, backend=PROCESSOR_BACKEND)
    if not isinstance(processor, PilBackend):
        raise CheckpointError(f"{source}: got image processor {type(processor).__name__}, not a PIL-backend one; "
                              f"the study's inputs come from the PIL processors")
    return processor


def load(spec: ModelSpec, source: str, *, device: torch.device, precision: str) -> HFEmbedder:
    model, processor = checked_model(spec, source), pil_processor(source)
    cfg = model.config
    dim = cfg.hidden_sizes[-1] if hasattr(cfg, "hidden_sizes") else cfg.hidden_size
    revision = hub_revision(source)
    return HFEmbedder(spec, model.float(), processor, source=source, revision=revision, device=device,
                      precision=precision, dim=dim)


def save_random_model(arch: dict, out_dir: Path, seed: int) -> None:
    """Seeded random weights of ``arch["config"]`` written with save_pretrained (the hub layout, head
    included): built through an Auto class's ``from_config``, or a concrete model class's constructor
    (``arch["auto_class"]``, default AutoModel)."""
    import transformers
    from transformers import AutoConfig

    cfg = dict(arch["config"])
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(seed)
    model_class = getattr(transformers, arch.get("auto_class", "AutoModel"))
    (model_class(config) if hasattr(model_class, "_from_config") else model_class.from_config(config)).save_pretrained(out_dir)


def save_random(spec: ModelSpec, out_dir: Path, arch: dict, seed: int) -> None:
    """Random weights + the processor, written with save_pretrained (the hub layout, head included)."""
    import transformers

    save_random_model(arch, out_dir, seed)
    proc = dict(arch["processor"])
    getattr(transformers, proc.pop("image_processor_type"))(**proc).save_pretrained(out_dir)
