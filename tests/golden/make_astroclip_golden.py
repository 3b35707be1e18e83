"""Golden outputs of the upstream AstroCLIP code (image tower, spectrum tower, Specformer) for the tests.

Runs the upstream modules unmodified, from checkouts given on the command line, on the fixed
weights and inputs of ``astroclip_inputs.py``, and writes ``astroclip_golden.npz`` beside this file:

* image: ``AstroClipCollator`` (centre crop 144, ``ToRGB``, permute (0, 3, 2, 1)) on raw g, r, z
  nanomaggies, then ``ImageHead`` (AstroDINO backbone = DINOv2's ``DinoVisionTransformer``, cross-
  attention head, MLP without residual);
* spectrum: ``SpectrumHead`` (Specformer backbone, cross-attention head, x + MLP(x)) on DESI-grid flux;
* Specformer alone as the study used it: ``model(flux[..., None])["embedding"][:, 1:].mean(1)``;
* the blocks (layer-wise embeddings), with forward hooks on the upstream blocks during those same
  forward passes: each image-backbone block's tokens averaged (``image_blocks``), each Specformer
  block's tokens after the statistics token averaged, in the spectrum tower (``spectrum_blocks``)
  and alone (``specformer_blocks``); arrays (n_blocks, N, d).

Only imports are shimmed, never the code that runs: ``lightning`` (LightningModule.save_hyperparameters
records the constructor arguments in ``hparams``), ``skimage`` (imported by the augmentations module,
unused by ToRGB), ``dinov2.eval.setup.setup_and_build_model`` (builds the real
``DinoVisionTransformer`` as dinov2's ``build_model`` does for AstroDINO's config, at tiny size,
instead of reading a config file and pretrained weights), and torchvision's package ``__init__``
(its compiled ops do not match our torch; ``torchvision.transforms`` is imported from the wheel as is).

    git --git-dir=<mirror of PolymathicAI/AstroCLIP> archive HEAD astroclip | tar -x -C /tmp/astroclip
    git --git-dir=<mirror of facebookresearch/dinov2> archive 2302b6bf dinov2 | tar -x -C /tmp/dinov2
    pip download torchvision==0.28.0 --no-deps -d /tmp/tvw && python -m zipfile -e /tmp/tvw/*.whl /tmp/tv
    PYTHONPATH=src python tests/golden/make_astroclip_golden.py --astroclip /tmp/astroclip \\
        --astroclip-commit <sha> --dinov2 /tmp/dinov2 --dinov2-commit 2302b6bf... --torchvision /tmp/tv
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import tempfile
import types
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import astroclip_inputs as fixed  # noqa: E402


def _package(name: str, path: Path | None = None) -> types.ModuleType:
    """An importable package whose ``__init__`` is not run (upstream package inits import training stacks)."""
    module = types.ModuleType(name)
    module.__path__ = [str(path)] if path else []
    sys.modules[name] = module
    return module


def _shim_lightning() -> None:
    lightning = types.ModuleType("lightning")

    class LightningModule(nn.Module):
        def save_hyperparameters(self):
            frame = inspect.currentframe().f_back
            info = inspect.getargvalues(frame)
            self.hparams = types.SimpleNamespace(**{k: info.locals[k] for k in info.args if k != "self"})

    lightning.LightningModule = LightningModule
    lightning.LightningDataModule = type("LightningDataModule", (), {})
    sys.modules["lightning"] = lightning


def _shim_dinov2_setup(dinov2_root: Path) -> None:
    sys.path.insert(0, str(dinov2_root))
    from dinov2.layers import MemEffAttention, NestedTensorBlock
    from dinov2.models import vision_transformer as vits

    def setup_and_build_model(config):
        """dinov2's build_model for AstroDINO's student config (vit, patch 12, LayerScale 1e-5, mlp ffn,
        4 block chunks, qkv bias), at tiny width/depth; no pretrained weights (the test fills them)."""
        a = fixed.IMAGE_BACKBONE
        model = vits.DinoVisionTransformer(
            img_size=a["img_size"], patch_size=a["patch_size"], embed_dim=a["embed_dim"], depth=a["depth"],
            num_heads=a["num_heads"], mlp_ratio=a["mlp_ratio"], init_values=a["init_values"],
            ffn_layer=a["ffn_layer"], block_chunks=a["block_chunks"], qkv_bias=a["qkv_bias"],
            block_fn=partial(NestedTensorBlock, attn_class=MemEffAttention))
        return model.eval(), torch.float

    _package("dinov2.eval")
    setup = types.ModuleType("dinov2.eval.setup")
    setup.setup_and_build_model = setup_and_build_model
    sys.modules["dinov2.eval.setup"] = setup


def _import_upstream(astroclip_root: Path, dinov2_root: Path, torchvision_root: Path):
    import datasets  # noqa: F401  (imported by the collator's module; it probes for torchvision, so first)

    _shim_lightning()
    _shim_dinov2_setup(dinov2_root)
    _package("torchvision", torchvision_root / "torchvision")
    for name in ("skimage", "skimage.filters", "skimage.transform"):
        sys.modules[name] = types.ModuleType(name)
    pkg = astroclip_root / "astroclip"
    for name, path in [("astroclip", pkg), ("astroclip.models", pkg / "models"), ("astroclip.data", pkg / "data"),
                       ("astroclip.astrodino", pkg / "astrodino"), ("astroclip.astrodino.data", pkg / "astrodino" / "data")]:
        _package(name, path)
    return (importlib.import_module("astroclip.models.astroclip"), importlib.import_module("astroclip.models.specformer"),
            importlib.import_module("astroclip.data.datamodule"))


def _fill(module: nn.Module, prefix: str) -> dict[str, list[int]]:
    """Load the fixed weights (named as in the checkpoint) into an upstream module; return names and shapes."""
    shapes = {prefix + k: list(v.shape) for k, v in module.state_dict().items()}
    module.load_state_dict({k.removeprefix(prefix): v for k, v in fixed.state_dict(shapes).items()}, strict=True)
    return shapes


def _hook_blocks(blocks, pool) -> list:
    """Forward hooks keeping pool(output) of each block, in block order, for one forward pass."""
    got = [None] * len(blocks)

    def keep(j):
        return lambda module, args, output: got.__setitem__(j, pool(output).numpy())

    handles = [b.register_forward_hook(keep(j)) for j, b in enumerate(blocks)]
    return got, handles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--astroclip", type=Path, required=True, help="checkout of PolymathicAI/AstroCLIP")
    parser.add_argument("--astroclip-commit", required=True)
    parser.add_argument("--dinov2", type=Path, required=True, help="checkout of facebookresearch/dinov2 (AstroCLIP's pin)")
    parser.add_argument("--dinov2-commit", required=True)
    parser.add_argument("--torchvision", type=Path, required=True, help="unpacked torchvision wheel")
    parser.add_argument("--out", type=Path, default=HERE / "astroclip_golden.npz")
    args = parser.parse_args()
    upstream, specformer, datamodule = _import_upstream(args.astroclip, args.dinov2, args.torchvision)
    torch.manual_seed(0)  # construction draws random numbers; every weight is then overwritten

    flux, spectra = fixed.legacy_fluxes(), fixed.desi_spectra()
    grz = [fixed.LEGACY_BANDS.index(b) for b in "grz"]
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "specformer.ckpt"
        standalone = specformer.SpecFormer(**fixed.SPECFORMER_HP).eval()
        specformer_shapes = _fill(standalone, "")
        torch.save({"hyper_parameters": dict(fixed.SPECFORMER_HP), "state_dict": standalone.state_dict()}, spec_path)
        head = dict(embed_dim=fixed.HEAD["embed_dim"], n_head=fixed.HEAD["n_head"], dropout=0.1)
        image_head = upstream.ImageHead(config="", model_weights="", save_directory=tmp,
                                        model_embed_dim=fixed.IMAGE_BACKBONE["embed_dim"], **head).eval()
        spectrum_head = upstream.SpectrumHead(str(spec_path), model_embed_dim=fixed.SPECFORMER_HP["embed_dim"],
                                              **head).eval()
    shapes = {**_fill(image_head, "image_encoder."), **_fill(spectrum_head, "spectrum_encoder.")}

    collator = datamodule.AstroClipCollator(center_crop=144)
    samples = [{"image": torch.from_numpy(np.ascontiguousarray(f[grz].transpose(1, 2, 0)))} for f in flux]
    sp = torch.from_numpy(spectra)[..., None]  # (N, L, 1), as AstroCLIP's dataset and the study feed it
    # DINOv2 BlockChunks hold the blocks after nn.Identity padding
    image_blocks = [b for chunk in image_head.backbone.blocks for b in chunk if not isinstance(b, nn.Identity)]
    hooked = {"image_blocks": _hook_blocks(image_blocks, lambda h: h.mean(1)),
              "spectrum_blocks": _hook_blocks(spectrum_head.backbone.blocks, lambda h: h[:, 1:].mean(1)),
              "specformer_blocks": _hook_blocks(standalone.blocks, lambda h: h[:, 1:].mean(1))}
    with torch.no_grad():
        images = collator(samples)["image"]
        out = {
            "collated_corner": images[:, :, :20, :30].numpy(),  # (N, 3, W, H) after the collator's permute
            "image_embedding": image_head(images).numpy(),
            "spectrum_embedding": spectrum_head(sp).numpy(),
            "specformer_tokens": standalone.preprocess(sp)[:, :6].numpy(),
            "specformer_embedding": standalone(sp)["embedding"][:, 1:].mean(1).numpy(),
        }
    for name, (got, handles) in hooked.items():
        for h in handles:
            h.remove()
        out[name] = np.stack(got)
    meta = {"astroclip_commit": args.astroclip_commit, "dinov2_commit": args.dinov2_commit,
            "astroclip_shapes": shapes, "specformer_shapes": specformer_shapes,
            "specformer_hp": fixed.SPECFORMER_HP, "head": fixed.HEAD, "collated_shape": list(images.shape),
            "inputs_sha256": fixed.sha256(flux, spectra)}
    np.savez_compressed(args.out, meta=np.array(json.dumps(meta)), **out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB): " + ", ".join(f"{k} {v.shape}" for k, v in out.items()))


if __name__ == "__main__":
    main()
