"""Untrained controls (models.untrained): the loader path of a family@random key."""
import zlib

import numpy as np
import pytest
import torch

from samesky.models import get_model, load_embedder, save_tiny


def build(key, seed, tmp_path):
    out = tmp_path / f"{key}-{seed}"
    save_tiny(key, out, seed=zlib.crc32(f"{key}/seed{seed}".encode()))  # as rule build_random_model, tiny
    return load_embedder(key, out, device="cpu", precision="fp32")


def test_control_key_is_its_own_family_with_the_trained_architecture():
    control, trained = get_model("vit@random-large"), get_model("vit-large")
    assert (control.key, control.family, control.size) == ("vit@random-large", "vit@random", "large")
    assert control.arch_for(tiny=False) == trained.arch_for(tiny=False) and control.params == trained.params
    with pytest.raises(KeyError, match="unknown model 'vit@random-giant'"):
        get_model("vit@random-giant")


def test_control_loads_like_a_checkpoint_and_is_seeded(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 3, 64, 64), dtype=np.uint8)
    a, again, other = (build("vit@random-base", s, tmp_path / str(i)) for i, s in enumerate((0, 0, 1)))
    assert a.describe()["model"] == "vit@random-base"
    got = a.embed(images)
    assert got.shape[0] == 3 and torch.isfinite(got).all()
    assert torch.equal(again.embed(images), got)  # same seed, same weights
    assert not torch.allclose(other.embed(images), got, atol=1e-4)  # the seed matters
