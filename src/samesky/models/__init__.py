"""The model zoo (registry) and the loaders that turn a registry entry into an Embedder."""
from .base import Embedder
from .checkpoint import CheckpointError
from .loader import load_embedder, save_tiny
from .registry import MODELS, ModelSpec, family_sizes, get_model, resources_for

__all__ = ["MODELS", "CheckpointError", "Embedder", "ModelSpec", "family_sizes", "get_model", "load_embedder",
           "resources_for", "save_tiny"]
