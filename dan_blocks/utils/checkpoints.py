"""Checkpoint reading: ``torch.load(weights_only=True)`` with errors that name the file and the cause."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .files import file_kind
from .state_record import without_records

__all__ = [
    "WRAPPER_KEYS",
    "CheckpointMismatchError",
    "CheckpointReadError",
    "first_non_finite",
    "load_file",
    "load_state_strict",
    "read_checkpoint",
    "state_dict_diff",
]

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
    kind = file_kind(path)
    if kind is not None:  # a named pipe would block the reader (and has size 0: not "empty")
        raise CheckpointReadError(f"checkpoint {path} is {kind}, not a regular file: not read")
    if os.path.getsize(path) == 0:
        raise CheckpointReadError(f"checkpoint {path} is empty (0 bytes); was its save interrupted?")
    if path.lower().endswith(".safetensors"):
        return _load_safetensors(path, map_location)
    try:
        with warnings.catch_warnings():  # torch asks to "file an issue" for pickle protocols it does not expect
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        text = str(err)
        if "unsupported global" in text.lower():
            cause = "it holds Python objects other than tensors, which dan-blocks does not unpickle for safety"
        elif _plain_pickle(path):
            cause = ("it is a plain Python pickle, not a torch.save file of tensors; dan-blocks does not unpickle "
                     "arbitrary objects (that could run code)")
        else:
            detail = text.split("WeightsUnpickler error:", 1)[-1].strip().split("\n")[0] or type(err).__name__
            cause = f"it is not a PyTorch checkpoint or it is damaged ({detail[:120]})"
        raise CheckpointReadError(f"cannot read checkpoint {path}: {cause}") from None


def _load_safetensors(path: str, map_location: Any) -> dict[str, Tensor]:
    """A ``.safetensors`` file's tensors (safetensors holds tensors only: nothing to unpickle)."""
    try:
        from safetensors.torch import load_file as load_safetensors
    except ImportError:
        raise CheckpointReadError(
            f"cannot read {path}: reading .safetensors files needs the safetensors package (pip install safetensors)"
        ) from None
    device = "cpu" if map_location is None or not isinstance(map_location, (str, torch.device)) else str(map_location)
    try:
        return load_safetensors(path, device=device)
    except Exception as err:  # safetensors raises its own SafetensorError / OSError for damaged files
        detail = str(err).split("\n")[0][:120] or type(err).__name__
        raise CheckpointReadError(
            f"cannot read checkpoint {path}: it is not a readable safetensors file ({detail})"
        ) from None


#: the first bytes of torch.save's legacy (non-zip) format: a pickled magic number
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def _plain_pickle(path: str) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(len(_LEGACY_TORCH_MAGIC))
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and head != _LEGACY_TORCH_MAGIC


def read_checkpoint(
    source: str | os.PathLike[str] | Mapping[str, Any],
    param_key: str | None = None,
    map_location: Any = "cpu",
    where: str | None = None,
) -> dict[str, Tensor]:
    """The tensors of a checkpoint file (or of an already loaded dict), unwrapped.

    ``{param_key: {...}}`` is taken first when given, then the first of `WRAPPER_KEYS` holding a dict;
    otherwise the mapping itself. As in BasicSR, a missing ``params_ema`` falls back to ``params`` (and the
    other way round); a ``param_key`` that is no wrapper key and is missing is an error. A DataParallel
    ``module.`` prefix is removed. Non-tensor entries of the unwrapped dict are refused (a state dict holds
    tensors only).

    Args:
        source: a file path or an already loaded dict.
        param_key: the entry holding the tensors (``params``, ``params_ema``, ...).
        map_location: passed to ``torch.load``.
        where: the name of an already loaded dict in messages (its file, usually).

    Raises:
        FileNotFoundError: no such file.
        CheckpointReadError: the file cannot be read safely, holds no tensors, or lacks ``param_key``.
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        obj = load_file(name, map_location)
    else:
        name, obj = where or "the given state dict", source
    if not isinstance(obj, Mapping):
        raise CheckpointReadError(f"checkpoint {name} holds a {type(obj).__name__}, expected a dict of tensors")
    wrappers = [key for key in WRAPPER_KEYS if key in obj]
    if param_key and param_key not in obj and param_key not in WRAPPER_KEYS and wrappers:
        raise CheckpointReadError(
            f"checkpoint {name} has no {param_key!r} (param_key); it holds: {', '.join(map(repr, wrappers))}"
        )
    for key in (param_key, *WRAPPER_KEYS):
        if key and key in obj:
            if not isinstance(obj[key], Mapping):
                raise CheckpointReadError(
                    f"checkpoint {name}: {key!r} holds a {type(obj[key]).__name__}, expected a dict of tensors"
                )
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


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def state_dict_diff(expected: Mapping[str, Any], state: Mapping[str, Tensor], limit: int = 12) -> list[str]:
    """Readable lines of what differs between a module's ``state_dict()`` (or any name -> tensor / shape map)
    and the tensors ``state``: shape differences, missing keys, unexpected keys (empty: they match)."""

    def shape_of(value: Any) -> tuple[int, ...]:
        return tuple(value.shape) if isinstance(value, Tensor) else tuple(value)

    def listing(keys: list[str]) -> str:
        return ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")

    expected, state = without_records(expected), without_records(state)  # the options record: no weights
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in expected if k in state and shape_of(expected[k]) != tuple(state[k].shape)]
    lines: list[str] = []
    if mismatched:
        lines.append(f"shape differences ({len(mismatched)}):")
        lines += [
            f"  {k}: checkpoint {_shape(state[k].shape)}, model {_shape(shape_of(expected[k]))}"
            for k in mismatched[:limit]
        ]
    if missing:
        lines.append(f"missing keys ({len(missing)}): {listing(missing)}")
    if unexpected:
        lines.append(f"unexpected keys ({len(unexpected)}): {listing(unexpected)}")
    return lines


def load_state_strict(module: torch.nn.Module, state: Mapping[str, Tensor], where: str) -> None:
    """``module.load_state_dict(state, strict=True)``, but a mismatch raises `CheckpointMismatchError` naming
    ``where`` and listing the differing keys and shapes (`state_dict_diff`)."""
    lines = state_dict_diff(module.state_dict(), state)
    if lines:
        raise CheckpointMismatchError(
            f"{where} does not match {type(module).__name__} (strict loading):\n  " + "\n  ".join(lines)
        )
    module.load_state_dict(state, strict=True)


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model; the message lists missing/unexpected keys and shape diffs."""


def all_finite(value: Tensor) -> bool:
    """No NaN or infinity in ``value`` (True for non-floating tensors), found from its minimum and maximum
    (both propagate NaN): no temporary of the tensor's size, where ``torch.isfinite(x).all()`` makes three
    (1.3 GB for one 8000 x 8000 RGB fp32 image)."""
    if not value.is_floating_point() or value.numel() == 0:
        return True
    low, high = torch.aminmax(value.detach())
    return math.isfinite(float(low)) and math.isfinite(float(high))


def first_non_finite(state: Mapping[str, Any]) -> tuple[str, int, int] | None:
    """``(name, non-finite count, size)`` of the first floating-point tensor of ``state`` holding NaN or infinity,
    or None when every value is finite (a diverged training's weights write black images without a word)."""
    for name, value in state.items():
        if isinstance(value, Tensor) and not all_finite(value):
            return str(name), int((~torch.isfinite(value)).sum()), value.numel()
    return None
