"""Checkpoint reading: ``torch.load(weights_only=True)`` with errors that name the file and the cause."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["WRAPPER_KEYS", "CheckpointReadError", "load_file", "read_checkpoint"]

#: keys under which checkpoints nest their tensors (BasicSR: params / params_ema; others: state_dict, model)
WRAPPER_KEYS = ("params", "params_ema", "state_dict", "model")


class CheckpointReadError(ValueError):
    """A file is not a readable checkpoint (empty, damaged, not a tensor dict, or an unsafe pickle)."""


def load_file(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors naming the file and the cause (never torch's advice
    to retry with ``weights_only=False``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointReadError: a folder, an empty file, a damaged or non-PyTorch file, or an unsafe pickle.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointReadError(f"checkpoint {path} is a folder, expected a .pth file")
    if os.path.getsize(path) == 0:
        raise CheckpointReadError(f"checkpoint {path} is empty (0 bytes); was its save interrupted?")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        text = str(err)
        if "unsupported global" in text.lower():
            cause = "it holds Python objects other than tensors, which dan-blocks does not unpickle for safety"
        else:
            detail = text.split("WeightsUnpickler error:", 1)[-1].strip().split("\n")[0] or type(err).__name__
            cause = f"it is not a PyTorch checkpoint or it is damaged ({detail[:120]})"
        raise CheckpointReadError(f"cannot read checkpoint {path}: {cause}") from None


def read_checkpoint(
    source: str | os.PathLike[str] | Mapping[str, Any],
    param_key: str | None = None,
    map_location: Any = "cpu",
) -> dict[str, Tensor]:
    """The tensors of a checkpoint file (or of an already loaded dict), unwrapped.

    ``{param_key: {...}}`` is taken first when given, then the first of `WRAPPER_KEYS` holding a dict;
    otherwise the mapping itself. A DataParallel ``module.`` prefix is removed. Non-tensor entries of the
    unwrapped dict are refused (a state dict holds tensors only).

    Raises:
        FileNotFoundError: no such file.
        CheckpointReadError: the file cannot be read safely, or holds no tensors.
    """
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the given state dict"
    obj = load_file(name, map_location) if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(obj, Mapping):
        raise CheckpointReadError(f"checkpoint {name} holds a {type(obj).__name__}, expected a dict of tensors")
    for key in (param_key, *WRAPPER_KEYS):
        if key and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    state: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise CheckpointReadError(
                f"checkpoint {name}: entry {key!r} is of type {type(value).__name__}, expected a tensor (is it a "
                "training state or another kind of file?)"
            )
        state[key[len("module.") :] if key.startswith("module.") else key] = value
    if not state:
        raise CheckpointReadError(f"checkpoint {name} holds no tensors")
    return state
