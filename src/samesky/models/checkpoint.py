"""Reading single-file checkpoints without their training stacks.

``resolve_file`` finds a checkpoint in a local directory or the Hugging Face cache/hub (one code
path: ``local_dir/<filename>`` mirrors the hub layout). ``load_checkpoint`` unpickles it with a
restricted unpickler: only tensor-rebuilding helpers, ``OrderedDict``, torch dtypes/sizes and a
few builtin containers are resolved to real objects; every other global (e.g.
``astropt.model.ModalityRegistry``, Lightning or AstroCLIP classes in ``hyper_parameters``)
becomes an inert stub that only records its pickled state. No foreign code is imported or run,
and the astropt/astroclip/lightning packages are not needed. ``load_strict`` loads a state dict
and fails naming every missing, unexpected or mis-shaped key.
"""
from __future__ import annotations

import collections
import os
import pickle
import types
from pathlib import Path
from typing import Any, Mapping

import torch


class CheckpointError(ValueError):
    """A checkpoint does not match the architecture; the message names the offending keys."""


def resolve_file(source: str | os.PathLike, filename: str) -> tuple[Path, str | None]:
    """Path of ``filename`` inside ``source`` (local directory or hub repo id) and the hub commit if known."""
    local = Path(source)
    if local.is_dir():
        path = local / filename
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint missing (a local source mirrors the hub layout: "
                                    f"<dir>/{filename})")
        return path, None
    from huggingface_hub import constants, hf_hub_download

    try:
        path = Path(hf_hub_download(repo_id=str(source), filename=filename))
    except Exception as err:  # offline, unknown repo, missing file: say what was asked for
        raise FileNotFoundError(
            f"cannot get {filename!r} from hub repo {str(source)!r} (HF_HUB_OFFLINE={constants.HF_HUB_OFFLINE}; not in the "
            f"cache?): {type(err).__name__}: {err}. Download it on a connected machine or pass a local directory."
        ) from None
    return path, hub_commit(path)


def hub_revision(source: str, filename: str = "config.json") -> str | None:
    """The cached hub commit of ``source`` (None for a local directory or an uncached repo)."""
    if Path(source).is_dir():
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, filename)
    return hub_commit(cached) if isinstance(cached, (str, os.PathLike)) else None


def hub_commit(path: str | os.PathLike | None) -> str | None:
    """The commit hash of a file in the HF cache (``.../snapshots/<commit>/...``), else None."""
    if not path:
        return None
    parts = Path(path).parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


class Stub(dict):
    """Inert stand-in for a pickled object whose class we do not import.

    It is a dict so dict-like objects (e.g. Lightning's AttributeDict) keep their items; the
    pickled state of ordinary objects lands in ``__dict__`` (or ``_state`` if it is not a dict).
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        self._args = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self._state = state


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
}
_STUBS: dict[tuple[str, str], type] = {}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        key = (module, name)
        if key not in _STUBS:
            _STUBS[key] = type(name, (Stub,), {"__module__": f"samesky.stub.{module}"})
        return _STUBS[key]


_restricted_pickle = types.ModuleType("samesky_restricted_pickle")
_restricted_pickle.Unpickler = _RestrictedUnpickler
_restricted_pickle.load = lambda f, **kw: _RestrictedUnpickler(f, **kw).load()


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Unpickle a torch checkpoint on the CPU with the restricted unpickler (see module docstring)."""
    try:
        ckpt = torch.load(path, map_location="cpu", pickle_module=_restricted_pickle, weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path}: not a readable torch checkpoint: {err}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    return ckpt


def stub_state(obj: Any) -> dict:
    """The recorded attributes of a stubbed object (or the dict itself)."""
    if isinstance(obj, Stub):
        return {k: v for k, v in vars(obj).items() if k != "_args"} | dict(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    return dict(vars(obj))


def require(mapping: Mapping, key: str, where: str):
    if key not in mapping:
        raise CheckpointError(f"{where}: missing entry {key!r} (has {sorted(map(str, mapping))})")
    return mapping[key]


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], where: str,
                prefix: str = "") -> None:
    """Load ``state_dict`` into ``module``; any missing, unexpected or mis-shaped key is an error naming it.

    ``prefix`` is how the checkpoint prefixes the module's keys (reported names carry it).
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state_dict) if tuple(expected[k].shape) != tuple(state_dict[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys {[prefix + k for k in missing]}")
    if unexpected:
        problems.append(f"unexpected keys {[prefix + k for k in unexpected]}")
    if shapes:
        problems.append("shape mismatch " + ", ".join(
            f"{prefix}{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}" for k in shapes))
    if problems:
        raise CheckpointError(f"{where}: checkpoint does not match the architecture: " + "; ".join(problems))
    module.load_state_dict(dict(state_dict), strict=True)
