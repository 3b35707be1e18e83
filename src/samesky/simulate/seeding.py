"""Seeding: one independent, stable random stream per purpose (seed, crossmatch name, keys)."""
from __future__ import annotations

import zlib

import numpy as np


def _stable_key(value) -> int:
    return zlib.crc32(str(value).encode("utf-8")) & 0xFFFFFFFF


def _rng(seed: int, name: str, *keys) -> np.random.Generator:
    """A generator for one purpose, fixed by (seed, crossmatch name, keys); stable across runs."""
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    entropy = [int(seed), _stable_key(name)] + [_stable_key(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))




