"""AION-1 (polymathic-ai/aion-{base,large,xlarge}) through the ``polymathic-aion`` package.

AION embeds raw multi-band fluxes, not RGB: its image codec (shared by HSC and Legacy Survey,
``codecs/image`` of polymathic-ai/aion-base, as the package's own CodecManager loads it) crops
to 96x96, rescales, range-compresses and quantises each cutout into 576 tokens
(``tok_image_hsc`` / ``tok_image``); the transformer encodes them and the embedding is the mean
over tokens of ``AION.encode`` (the encoder output projected to the decoder context), with
``num_encoder_tokens`` = all 576 tokens (the package default of 256 would silently drop some).

Loading is strict for the model and the codec. The package's local-directory codec loading
does not find ``codecs/image/config.json`` (it looks for ``config.json`` at the top), so the
codec config is read here and passed explicitly, for hub ids and directories alike. The codec
runs in fp32 even under autocast: tokens are a quantisation, and reduced precision could flip
them.

Blocks (layer-wise embeddings): each encoder block's output (before the encoder norm and the
projection to the decoder context that make the final embedding), mean over all tokens.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base import Embedder
from .checkpoint import CheckpointError, hub_revision, resolve_file
from .registry import ModelSpec

log = logging.getLogger(__name__)

CODEC_REPO = "polymathic-ai/aion-base"  # codecs live only in the base repo (aion.codecs.config.HF_REPO_ID)
CODEC_DIR = "codecs/image"
# survey -> (AION modality class name, band prefix of aion.codecs.preprocessing.band_to_index)
SURVEY_MODALITIES = {"hsc": ("HSCImage", "HSC"), "legacysurvey": ("LegacySurveyImage", "DES")}


def _aion():
    try:
        import aion
        import aion.codecs
        import aion.modalities
    except ImportError as err:
        raise ImportError(f"AION models need the polymathic-aion package (pip install -r requirements.txt): {err}"
                          ) from None
    return aion


class _AionWithCodec(nn.Module):
    def __init__(self, model: nn.Module, codec: nn.Module):
        super().__init__()
        self.model, self.codec = model, codec


class AionEmbedder(Embedder):
    modality = None  # AION modality class of the bound input
    bands: list[str] = []

    def bind(self, info: dict) -> None:
        """Take the survey and band names of the input file (raw fluxes, on-disk band order)."""
        survey, bands = info.get("survey"), list(info.get("bands") or [])
        if survey not in SURVEY_MODALITIES:
            raise ValueError(f"{self.spec.key}: AION has no image codec for survey {survey!r}; "
                             f"it embeds {sorted(SURVEY_MODALITIES)}")
        cls_name, prefix = SURVEY_MODALITIES[survey]
        from aion.codecs.preprocessing.band_to_index import BAND_TO_INDEX

        names = [f"{prefix}-{b.upper()}" for b in bands]
        unknown = [b for b, n in zip(bands, names) if n not in BAND_TO_INDEX]
        if not names or unknown:
            raise ValueError(f"{self.spec.key}: bands {unknown or bands} of survey {survey!r} have no AION codec "
                             f"channel (known: {sorted(BAND_TO_INDEX)})")
        self.modality = getattr(_aion().modalities, cls_name)
        self.bands = names

    def prepare(self, batch) -> torch.Tensor:
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != len(self.bands):
            raise ValueError(f"expected raw fluxes (B, {len(self.bands)}, H, W) for bands {self.bands}, got {x.shape}")
        return torch.from_numpy(x.copy())  # the codec rescales its input in place

    def forward(self, flux: torch.Tensor) -> torch.Tensor:
        if self.modality is None:
            raise RuntimeError(f"{self.spec.key}: call bind() with the input's survey and bands first")
        with torch.autocast(self.device.type, enabled=False):
            tokens = self.model.codec.encode(self.modality(flux=flux.float(), bands=self.bands))
        out = self.model.model.encode({self.modality.token_key: tokens}, num_encoder_tokens=tokens.shape[1])
        return out.mean(dim=1)

    def block_names(self) -> list[str]:
        return [f"encoder block {j + 1}" for j in range(len(self.model.model.encoder))]

    def forward_layers(self, flux: torch.Tensor, blocks: list[int]):
        return self.forward_capturing(flux, [self.model.model.encoder[j] for j in blocks], lambda h: h.mean(dim=1))


@contextlib.contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _codec_source(source: str) -> str:
    return source if Path(source).is_dir() else CODEC_REPO


def load(spec: ModelSpec, source: str, *, device: torch.device, precision: str) -> AionEmbedder:
    aion = _aion()
    codec_source = _codec_source(source)
    config_path, _ = resolve_file(codec_source, f"{CODEC_DIR}/config.json")
    try:
        with contextlib.redirect_stdout(io.StringIO()) as chatter:  # the package prints its progress
            model = aion.AION.from_pretrained(source, strict=True)
            with _quiet("huggingface_hub.hub_mixin"):  # "config.json not found": we pass the config ourselves
                codec = aion.codecs.ImageCodec.from_pretrained(
                    codec_source, modality=aion.modalities.LegacySurveyImage, strict=True,
                    **json.loads(config_path.read_text()))
    except (RuntimeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source} (codec from {codec_source}): weights do not match {spec.key}: "
                              f"{' '.join(str(err).split())}") from None
    log.info("AION %s loaded from %s, codec from %s %s", spec.key, source, codec_source,
             " ".join(chatter.getvalue().split()))
    missing = [m.token_key for m in (aion.modalities.HSCImage, aion.modalities.LegacySurveyImage)
               if m.token_key not in model.encoder_embeddings]
    if missing:
        raise CheckpointError(f"{source}: AION model has no encoder embedding for {missing}")
    revision = hub_revision(source)
    return AionEmbedder(spec, _AionWithCodec(model, codec).float(), source=source, revision=revision,
                        device=device, precision=precision, dim=model.dim)


def save_random(spec: ModelSpec, out_dir: Path, arch: dict, seed: int) -> None:
    """Random AION + image codec in the hub layout (model at the top, codec in codecs/image)."""
    aion = _aion()
    torch.manual_seed(seed)
    aion.AION(dict(arch["model"])).save_pretrained(out_dir)
    aion.codecs.ImageCodec(**arch["image_codec"]).save_pretrained(out_dir, modality=aion.modalities.LegacySurveyImage)
