"""The model zoo (registry) and the loaders that turn a registry entry into an Embedder.

The registry imports no torch, so reading it (the Snakefile does, at every start) stays fast;
the torch-heavy loaders are imported on first use.
"""
from .registry import MODELS, ModelSpec, family_sizes, get_model
from .resources import resources_for

_LAZY = {"load_embedder": "loader", "save_tiny": "loader", "Embedder": "base", "CheckpointError": "checkpoint"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MODELS", "ModelSpec", "family_sizes", "get_model", "resources_for", *_LAZY]
