"""Vision-language models (LLaVA-OneVision, PaliGemma 2): the language model's view of an image.

As the authors' ``VLMAdapter`` (UniverseTBD/platonic-universe ``src/pu/models/hf.py`` l. 201-317): the image
with an image-only prompt (``arch["prompt"]``: ``"<image>"`` for LLaVA-OneVision, ``"<image> "`` for
PaliGemma 2, no chat template) goes through the checkpoint's processor; the model gets ``input_ids``,
``pixel_values`` and ``attention_mask`` (plus ``image_sizes``, which LLaVA-OneVision's anyres tiling needs;
PaliGemma's ``token_type_ids`` are not passed, as the authors do not); the embedding is the mean of the
language model's last hidden state (after its final norm, = ``hidden_states[-1]``) over every position the
attention mask keeps. Weights load in bf16 as the authors load them (PaliGemma 2 ships only bf16), whatever
``precision`` says. The base model (``AutoModel``) is loaded: the LM head is not needed for hidden states.

Unlike the authors, the uint8 image goes to the processor once: their adapter rebuilt PIL images from
already processed pixel values with a min-max stretch over the whole batch (batch-dependent) first.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .base import Embedder, as_uint8_images
from .checkpoint import CheckpointError, hub_revision
from .hf import PROCESSOR_BACKEND, _check_loading
from .hf_zoo import hooked_forward
from .registry import ModelSpec

MODEL_INPUTS = ("input_ids", "attention_mask", "pixel_values", "image_sizes")


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions the attention mask keeps (the authors' ``_masked_mean_pool``)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


class VLMEmbedder(Embedder):
    def __init__(self, spec, model, processor, **kw):
        super().__init__(spec, model, **kw)
        self.processor = processor
        self.prompt = spec.arch["prompt"]

    def prepare(self, batch) -> dict:
        images = list(as_uint8_images(batch).transpose(0, 2, 3, 1))
        out = self.processor(images=images, text=[self.prompt] * len(images), return_tensors="pt", padding=True,
                             input_data_format="channels_last")
        return {k: out[k] for k in MODEL_INPUTS if k in out}

    def forward(self, inputs: dict) -> torch.Tensor:
        inputs = dict(inputs, pixel_values=inputs["pixel_values"].to(self.model.dtype))
        hidden = self.model(**inputs).last_hidden_state
        return masked_mean(hidden, inputs["attention_mask"])

    def describe(self) -> dict:
        """Provenance, with the weights' dtype (the forward runs in it whatever the precision)."""
        return {**super().describe(), "weights_dtype": str(next(self.model.parameters()).dtype).removeprefix("torch.")}

    def _blocks(self) -> torch.nn.ModuleList:
        return self.model.get_submodule(self.spec.arch["blocks"])

    def block_names(self) -> list[str]:
        return [f"LM block {j + 1}" for j in range(len(self._blocks()))]

    def forward_layers(self, inputs: dict, blocks: list[int]):
        """forward()'s embedding and the requested LM layers' outputs, each a masked mean over the sequence
        (the authors' per-block rule for tensors of the LM's sequence length)."""
        return hooked_forward(self, inputs, blocks, lambda h: masked_mean(h, inputs["attention_mask"]))


def _llava_onevision_images_only():
    """transformers' LlavaOnevisionProcessor without its video processor: that one needs torchvision (not
    installed, see ``hf``) and images never use it; the '<image>' expansion is the class's own."""
    from transformers import LlavaOnevisionProcessor

    class ImagesOnly(LlavaOnevisionProcessor):
        def check_argument_for_proper_class(self, argument_name, argument):
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    return ImagesOnly


def _processor(source: str):
    """The checkpoint's processor with its PIL-backend image processor."""
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer
    from transformers.utils import cached_file

    if AutoConfig.from_pretrained(source).model_type != "llava_onevision":
        return AutoProcessor.from_pretrained(source, backend=PROCESSOR_BACKEND)
    kwargs = json.loads(Path(cached_file(source, "processor_config.json")).read_text())
    kwargs = {k: v for k, v in kwargs.items() if k in ("num_image_tokens", "vision_feature_select_strategy",
                                                        "image_token", "video_token", "vision_aspect_ratio")}
    return _llava_onevision_images_only()(
        image_processor=AutoImageProcessor.from_pretrained(source, backend=PROCESSOR_BACKEND),
        tokenizer=AutoTokenizer.from_pretrained(source), video_processor=None, **kwargs)


def load(spec: ModelSpec, source: str, *, device: torch.device, precision: str) -> VLMEmbedder:
    from transformers import AutoModel
    from transformers.image_processing_backends import PilBackend

    dtype = torch.bfloat16 if spec.arch.get("weights_dtype") == "bf16" else torch.float32
    model, info = AutoModel.from_pretrained(source, output_loading_info=True, dtype=dtype)
    want = spec.arch["config"]["model_type"]
    if model.config.model_type != want:
        raise CheckpointError(f"{source}: holds a {model.config.model_type!r} model, {spec.key} needs {want!r}")
    _check_loading(spec, source, info)
    processor = _processor(source)
    if not isinstance(processor.image_processor, PilBackend):
        raise CheckpointError(f"{source}: got image processor {type(processor.image_processor).__name__}, "
                              f"not a PIL-backend one")
    return VLMEmbedder(spec, model, processor, source=source, revision=hub_revision(source), device=device,
                       precision=precision, dim=model.config.get_text_config().hidden_size)


def _tiny_tokenizer(model_type: str):
    """A character-level tokenizer built offline (the real ones cannot be downloaded): 4 special tokens and
    96 characters, then '<image>' (id 100) and, for LLaVA-OneVision, '<video>' (101) as the tiny configs say.
    PaliGemmaProcessor adds its 1152 location/segmentation tokens after them."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    chars = [chr(c) for c in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", *chars])}
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(vocab, [], unk_token="<unk>")),
                                   pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", bos_token="<bos>")
    fast.add_special_tokens({"additional_special_tokens": ["<image>"] + (["<video>"] if model_type != "paligemma" else [])})
    return fast


def save_random(spec: ModelSpec, out_dir: Path, arch: dict, seed: int) -> None:
    """Random weights of the hub's model class, its PIL processor and a tiny offline tokenizer."""
    import transformers
    from transformers import AutoConfig

    cfg = dict(arch["config"])
    model_type = cfg.pop("model_type")
    tokenizer = _tiny_tokenizer(model_type)
    # the tiny tokenizer's special-token ids (the tiny configs already name them; a full-size random build,
    # e.g. an untrained control, gets them here instead of the real vocabulary's)
    cfg["image_token_index"] = tokenizer.convert_tokens_to_ids("<image>")
    if model_type == "llava_onevision":
        cfg["video_token_index"] = tokenizer.convert_tokens_to_ids("<video>")
    config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(seed)
    model = transformers.AutoModelForImageTextToText.from_config(config)
    model.to(torch.bfloat16 if arch.get("weights_dtype") == "bf16" else torch.float32).save_pretrained(out_dir)
    proc = dict(arch["processor"])
    kind = proc.pop("image_processor_type")
    image_processor = getattr(transformers, kind + "Pil")(**proc)
    if model_type == "paligemma":
        transformers.PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out_dir)
        return
    image_processor.save_pretrained(out_dir)  # the processor class cannot save without its video processor
    tokenizer.save_pretrained(out_dir)
    patches = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
    (out_dir / "processor_config.json").write_text(json.dumps({
        "processor_class": "LlavaOnevisionProcessor", "image_token": "<image>", "video_token": "<video>",
        "num_image_tokens": patches, "vision_feature_select_strategy": config.vision_feature_select_strategy,
        "vision_aspect_ratio": config.vision_aspect_ratio}, indent=2))
