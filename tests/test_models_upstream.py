"""Adapters against their upstream code on random weights and identical raw input.

AstroPT: the ``astropt`` package from PyPI (2.0.6, the version the study ran; installed without
its dependencies, see requirements.txt) loads the same checkpoint and is fed as the authors' code
fed it. AstroCLIP and Specformer, whose package cannot be installed with modern torch: golden
arrays that ``tests/golden/make_astroclip_golden.py`` produced by running the upstream modules
from a checkout of PolymathicAI/AstroCLIP (and facebookresearch/dinov2 for the backbone).
"""
from __future__ import annotations

import importlib.util
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from samesky.models import get_model, load_embedder

GOLDEN = Path(__file__).parent / "golden"


# ---------------------------------------------------------------------------------------------- AstroPT
@contextmanager
def _without_torchvision():
    """astropt.local_datasets imports ``torchvision.io`` (for reading files; unused here) at the top.

    torchvision must not be installed (transformers would switch image-processor backends), so an
    empty placeholder stands in during that import only.
    """
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    placeholder = types.ModuleType("torchvision")
    placeholder.io = types.ModuleType("torchvision.io")
    sys.modules["torchvision"] = placeholder
    try:
        yield
    finally:
        del sys.modules["torchvision"]


@pytest.fixture(scope="module")
def astropt_pkg():
    with _without_torchvision():
        from astropt import local_datasets, model, model_utils
    return types.SimpleNamespace(model=model, datasets=local_datasets, utils=model_utils)


def _save_like_astropt_training(pkg, out: Path, n_layer=4, n_head=2, n_embd=32, seed=0) -> Path:
    """A checkpoint written the way astroPT's scripts/train.py saves ckpt.pt (at the astropt 2.0.x era).

    Real package classes (GPT, GPTConfig, ModalityConfig, ModalityRegistry), model_args holding the
    ModalityConfig list, a torch.compile'd state dict (``_orig_mod.`` keys), optimiser state and config.
    """
    m = pkg.model
    modalities = [m.ModalityConfig(name="images", input_size=16 * 16 * 3, patch_size=16, loss_weight=1.0,
                                   embed_pos=True, pos_input_size=1)]
    registry = m.ModalityRegistry(modalities)
    model_args = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_chan=3, block_size=1024, dropout=0.0,
                      modalities=modalities, attn_type="causal")
    torch.manual_seed(seed)
    gpt = m.GPT(m.GPTConfig(**model_args), registry, master_process=False)
    for p in gpt.parameters():  # LayerNorm weights start at exactly 1: perturb them so they matter
        p.data += 0.05 * torch.randn_like(p)
    optimizer = torch.optim.AdamW(gpt.parameters())
    checkpoint = {"model": torch.compile(gpt).state_dict(), "optimizer": optimizer.state_dict(),
                  "model_args": model_args, "iter_num": 1000, "best_val_loss": 0.5,
                  "config": {"batch_size": 8, "n_layer": n_layer, "init_from": "scratch"},
                  "modality_registry": registry}
    path = out / get_model("astropt-small").filename
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    return path


def _normalise_for_astropt(x):
    """The per-token z-score the study's PreprocessAstropt (and astroPT's train.py) apply: std + 1e-8."""
    std, mean = torch.std_mean(x, dim=1, keepdim=True)
    return (x - mean) / (std + 1e-8)


def _authors_astropt_embeddings(pkg, gpt, registry, images: np.ndarray, transpose=True) -> torch.Tensor:
    """The study's path: (H, W, 3) uint8 -> swapaxes(0, 2) -> GalaxyImageDataset.process_galaxy
    (patching, z-score, spiral) -> positions 0..n-1 -> GPT.generate_embeddings (middle block, mean)."""
    galproc = pkg.datasets.GalaxyImageDataset(None, spiral=True, transform={"images": _normalise_for_astropt},
                                              modality_registry=registry)
    out = []
    for chw in images:
        hwc = chw.transpose(1, 2, 0)  # what the study's flux_to_pil returns
        im = hwc.swapaxes(0, 2) if transpose else chw
        tokens = galproc.process_galaxy(torch.from_numpy(np.ascontiguousarray(im)).to(torch.float)).to(torch.float)
        inputs = {"images": tokens[None], "images_positions": torch.arange(len(tokens))[None]}
        out.append(gpt.generate_embeddings(inputs)["images"])
    return torch.cat(out)


@pytest.mark.oracle("astropt")
@pytest.mark.parametrize("side", [160, 96])
def test_astropt_equals_the_astropt_package_fed_as_the_study_fed_it(astropt_pkg, tmp_path, side):
    path = _save_like_astropt_training(astropt_pkg, tmp_path)
    gpt = astropt_pkg.utils.load_astropt(repo_id=None, path=str(path.parent) + "/").eval()  # the package's loader
    ours = load_embedder("astropt-small", tmp_path, device="cpu", precision="fp32")  # restricted unpickler
    images = np.random.default_rng(side).integers(0, 256, (3, 3, side, side), dtype=np.uint8)
    got = ours.embed(images)
    with torch.no_grad():
        want = _authors_astropt_embeddings(astropt_pkg, gpt, gpt.modality_registry, images)
        untransposed = _authors_astropt_embeddings(astropt_pkg, gpt, gpt.modality_registry, images, transpose=False)
    assert got.shape == (3, 32)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6)
    cosine = torch.nn.functional.cosine_similarity(got, untransposed)
    assert cosine.max() < 0.999  # the orientation matters: (C, H, W) would give other embeddings


def test_astropt_checkpoint_from_the_package_keeps_its_names_through_the_restricted_unpickler(astropt_pkg, tmp_path):
    from samesky.models.checkpoint import Stub, load_checkpoint

    path = _save_like_astropt_training(astropt_pkg, tmp_path)
    ckpt = load_checkpoint(path)
    registry = ckpt["modality_registry"]
    assert isinstance(registry, Stub) and type(registry).__name__ == "ModalityRegistry"
    assert type(registry).__module__ == "samesky.stub.astropt.model"  # stubbed, not imported
    assert all(k.startswith("_orig_mod.") for k in ckpt["model"])
    emb = load_embedder("astropt-small", tmp_path, device="cpu")
    assert emb.dim == 32 and emb.input_size == 768 and emb.patch == 16


def test_save_tiny_astropt_loads_with_the_astropt_package(astropt_pkg, tmp_path):
    """Our random checkpoints are in the real layout: the package's own loader reads them."""
    from samesky.models import save_tiny

    out = save_tiny("astropt-small", tmp_path)
    gpt = astropt_pkg.utils.load_astropt(repo_id=None, path=str(out / "astropt/015M") + "/").eval()
    images = np.random.default_rng(1).integers(0, 256, (2, 3, 96, 96), dtype=np.uint8)
    with torch.no_grad():
        want = _authors_astropt_embeddings(astropt_pkg, gpt, gpt.modality_registry, images)
    torch.testing.assert_close(load_embedder("astropt-small", out, device="cpu").embed(images), want,
                               rtol=0, atol=2e-6)


# ---------------------------------------------------------------------------------------------- AstroCLIP, Specformer
@pytest.fixture(scope="module")
def golden():
    """The golden arrays and the shared generator of weights and inputs (tests/golden/astroclip_inputs.py)."""
    import json

    spec = importlib.util.spec_from_file_location("astroclip_inputs", GOLDEN / "astroclip_inputs.py")
    fixed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixed)
    with np.load(GOLDEN / "astroclip_golden.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    flux, spectra = fixed.legacy_fluxes(), fixed.desi_spectra()
    assert fixed.sha256(flux, spectra) == meta["inputs_sha256"], "input generator changed: rerun make_astroclip_golden.py"
    return types.SimpleNamespace(fixed=fixed, meta=meta, flux=flux, spectra=spectra, **arrays)


@pytest.fixture(scope="module")
def astroclip_dir(golden, tmp_path_factory):
    """astroclip.ckpt in the Lightning layout, holding upstream's own parameter names (chunked DINOv2 blocks)."""
    out = tmp_path_factory.mktemp("astroclip")
    state = golden.fixed.state_dict(golden.meta["astroclip_shapes"])
    assert any(k.startswith("image_encoder.backbone.blocks.1.1.") for k in state)  # DINOv2 block chunks
    torch.save({"state_dict": state, "hyper_parameters": {"temperature": 15.5, "logit_scale": 15.5},
                "epoch": 0, "global_step": 0, "pytorch-lightning_version": "2.1.0"}, out / "astroclip.ckpt")
    return out


@pytest.mark.oracle("astroclip")
def test_astroclip_image_equals_upstream_collator_and_image_head(golden, astroclip_dir):
    """Raw g, r, z nanomaggies -> ToRGB -> crop 144 -> permute (0, 3, 2, 1) -> backbone -> head, MLP(x) without residual."""
    emb = load_embedder("astroclip-image", astroclip_dir, device="cpu", precision="fp32")
    emb.bind({"survey": "legacysurvey", "bands": golden.fixed.LEGACY_BANDS, "zero_point": 22.5})
    images = emb.prepare(golden.flux)
    assert list(images.shape) == golden.meta["collated_shape"]
    np.testing.assert_allclose(images[:, :, :20, :30].numpy(), golden.collated_corner, rtol=0, atol=1e-6)
    got = emb.run(images)
    np.testing.assert_allclose(got.numpy(), golden.image_embedding, rtol=0, atol=2e-6)


@pytest.mark.oracle("astroclip")
def test_astroclip_spectrum_equals_upstream_spectrum_head(golden, astroclip_dir):
    emb = load_embedder("astroclip-spectrum", astroclip_dir, device="cpu", precision="fp32")
    np.testing.assert_allclose(emb.embed(golden.spectra).numpy(), golden.spectrum_embedding, rtol=0, atol=2e-6)


@pytest.mark.oracle("specformer")
def test_specformer_equals_upstream_as_the_study_pooled_it(golden, tmp_path):
    torch.save({"hyper_parameters": dict(golden.meta["specformer_hp"]),
                "state_dict": golden.fixed.state_dict(golden.meta["specformer_shapes"])}, tmp_path / "specformer.ckpt")
    emb = load_embedder("specformer-base", tmp_path, device="cpu", precision="fp32")
    tokens = emb.prepare(golden.spectra)
    assert tokens.shape == (3, 778, 22)
    np.testing.assert_allclose(tokens[:, :6].numpy(), golden.specformer_tokens, rtol=0, atol=1e-6)
    np.testing.assert_allclose(emb.run(tokens).numpy(), golden.specformer_embedding, rtol=0, atol=2e-6)
