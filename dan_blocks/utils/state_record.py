"""The options record a registered network's own ``state_dict()`` carries, so that a plain
``torch.save(model.state_dict())``, a safetensors file or a host's "save model" rebuilds the network exactly.

Every module of a registered architecture (`dan_blocks.archs.register_arch`) gets two hooks when it is built:

- a state-dict hook that adds ONE entry, ``<prefix>`` + `RECORD_KEY`, to the state dict of the outermost such
  module being saved (records of registered sub-modules are removed from the parent's state dict, so a DAN's
  state dict holds one record at its top level, while ``model.restorer.state_dict()`` holds the restorer's own).
  The entry is a 1-D ``uint8`` tensor of UTF-8 JSON (a tensor, so safetensors can hold it)::

      {"format": "dan_blocks.model/1", "version": "0.1.0", "network_g": {"type": "DANv2", ...},
       "pca_kernel_mean": [...]}   # the last only when the model's PCA knows its training mean kernel

- a load pre-hook that removes that entry before torch's strict loading, so ``model.load_state_dict(sd)`` works
  with or without a record (state dicts written before records existed load strictly as before).

`RECORD_KEY` names no parameter: it contains ``~``, which no attribute assignment can spell.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .._version import __version__

__all__ = [
    "MODEL_FORMAT",
    "RECORD_KEY",
    "attach_record",
    "decode_record",
    "encode_record",
    "find_record",
    "is_record_key",
    "without_records",
]

#: the format tag of dan-blocks' self-describing model files and of the state-dict record
MODEL_FORMAT = "dan_blocks.model/1"
#: the state-dict key of the record (at the top level of the module that was saved)
RECORD_KEY = "dan_blocks~options"
_SUFFIX = "." + RECORD_KEY


def is_record_key(key: str) -> bool:
    """Whether ``key`` is a record entry (at the top level or under a sub-module's prefix)."""
    return key == RECORD_KEY or key.endswith(_SUFFIX)


def without_records(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` without its record entries."""
    return {k: v for k, v in state.items() if not is_record_key(k)}


def encode_record(meta: Mapping[str, Any]) -> Tensor:
    """A metadata dict as the record tensor (1-D uint8, UTF-8 JSON)."""
    data = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def decode_record(value: Any) -> dict[str, Any]:
    """The metadata dict a record tensor holds.

    A record interpolated by a host (chaiNNer's Interpolate Models averages every tensor of two state dicts) is
    accepted while its values are still whole bytes, i.e. when both models had the same options.

    Raises:
        ValueError: not a 1-D tensor of bytes holding a JSON object (the message says what it holds).
    """
    if not isinstance(value, Tensor):
        raise ValueError(f"the {RECORD_KEY!r} record is a {type(value).__name__}, expected a uint8 tensor")
    flat = value.detach().cpu().reshape(-1)
    if flat.is_floating_point() or flat.dtype != torch.uint8:
        as_float = flat.double()
        if flat.numel() and (
            not bool(torch.isfinite(as_float).all())
            or bool((as_float != as_float.round()).any())
            or bool((as_float < 0).any() or (as_float > 255).any())
        ):
            raise ValueError(
                f"the {RECORD_KEY!r} record holds values that are not bytes ({flat.dtype}); was it interpolated "
                "between models of different options?"
            )
        flat = as_float.round().to(torch.uint8)
    try:
        meta = json.loads(bytes(flat.tolist()).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"the {RECORD_KEY!r} record is not UTF-8 JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"the {RECORD_KEY!r} record holds a {type(meta).__name__}, expected a JSON object")
    return meta


def find_record(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The decoded top-level record of an (unwrapped) state dict, also under a DataParallel ``module.`` prefix;
    None when it has none.

    Raises:
        ValueError: the record is there but malformed (`decode_record`).
    """
    for key in (RECORD_KEY, "module." + RECORD_KEY):
        if key in state:
            return decode_record(state[key])
    return None


def record_metadata(module: nn.Module, options: Mapping[str, Any]) -> dict[str, Any]:
    """The record of ``module`` built from its recorded ``options`` (plus its PCA's training mean kernel)."""
    meta: dict[str, Any] = {"format": MODEL_FORMAT, "version": __version__, "network_g": dict(options)}
    pca = getattr(module, "pca", None)
    if pca is not None and getattr(pca, "has_kernel_mean", False):
        meta["pca_kernel_mean"] = [float(v) for v in pca.kernel_mean.detach().cpu().reshape(-1).tolist()]
    return meta


def _add_record(
    describe: Callable[[nn.Module], Mapping[str, Any] | None],
    module: nn.Module,
    state: dict[str, Any],
    prefix: str,
    local_metadata: Any,
) -> None:
    # the children's hooks ran first: their records are redundant inside this module's state dict
    for key in [k for k in state if k.startswith(prefix) and k.endswith(_SUFFIX)]:
        del state[key]
    try:
        options = describe(module)
    except ValueError:  # arguments without an option-file form: nothing can rebuild it, so no record
        return
    if options is None:
        return
    try:
        state[prefix + RECORD_KEY] = encode_record(record_metadata(module, options))
    except (TypeError, ValueError):  # options that are no JSON (never from the registry; a user's own class)
        return


def _drop_record(
    module: nn.Module,
    state: dict[str, Any],
    prefix: str,
    local_metadata: Any,
    strict: bool,
    missing: list[str],
    unexpected: list[str],
    errors: list[str],
) -> None:
    state.pop(prefix + RECORD_KEY, None)


def attach_record(module: nn.Module, describe: Callable[[nn.Module], Mapping[str, Any] | None]) -> None:
    """Give ``module`` the two hooks (see the module docstring); ``describe(module)`` returns the options that
    rebuild it (`dan_blocks.archs.arch_options`), read each time a state dict is made. Idempotent."""
    if getattr(module, "_dan_blocks_record_hooks", False):
        return
    module._register_state_dict_hook(functools.partial(_add_record, describe))
    module._register_load_state_dict_pre_hook(_drop_record, with_module=True)
    object.__setattr__(module, "_dan_blocks_record_hooks", True)
