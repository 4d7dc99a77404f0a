"""Self-describing model files: the weights plus the options that rebuild the network, and the package version.

Layout (a dict that ``torch.load(weights_only=True)`` reads and plain BasicSR loads through ``params``)::

    {"params": state_dict, ["params_ema": state_dict,]
     "dan_blocks": {"format": "dan_blocks.model/1", "version": "0.1.0", "network_g": {"type": "DANv2", ...},
                    "pca_kernel_mean": (k*k,) tensor (optional)}}

``network_g`` is the option dict BasicSR's ``build_network`` takes (the ``network_g`` block of an option file).

The same metadata also travels inside each state dict, in the ``_metadata`` attribute that torch's
``state_dict()`` OrderedDicts carry (under the key ``"dan_blocks"``, which names no module, so torch ignores it):
hosts that unwrap ``params`` before looking at a file (spandrel, chaiNNer, ComfyUI) still find the options.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from .._version import __version__
from ..utils import atomic_save
from .registry import arch_options

__all__ = ["FORMAT", "META_KEY", "file_metadata", "model_file_payload", "model_metadata", "save_model"]

FORMAT = "dan_blocks.model/1"
#: the key of the metadata in a model file
META_KEY = "dan_blocks"


def model_metadata(network_g: Mapping[str, Any], model: nn.Module | None = None) -> dict[str, Any]:
    """The ``"dan_blocks"`` entry of a model file for a network built from ``network_g`` (plus, when ``model``
    is given and its PCA knows it, the training mean kernel that reconstructs v1 codes)."""
    if "type" not in network_g:
        raise ValueError(f"network options need a 'type' (the registered class name), got keys {list(network_g)}")
    meta: dict[str, Any] = {"format": FORMAT, "version": __version__, "network_g": _plain(network_g)}
    pca = getattr(model, "pca", None)
    if pca is not None and getattr(pca, "has_kernel_mean", False):
        meta["pca_kernel_mean"] = pca.kernel_mean.detach().cpu().clone()
    return meta


def _plain(value: Any) -> Any:
    """Option values as plain dict / list / scalars (an OrderedDict from a YAML loader becomes a dict)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"network options must be plain data (dicts, lists, numbers, strings), got {value!r}")


def model_file_payload(
    states: Mapping[str, Mapping[str, Tensor]], network_g: Mapping[str, Any], model: nn.Module | None = None
) -> dict[str, Any]:
    """The dict a model file holds: each state dict (``{"params": ..., "params_ema": ...}``) on the CPU, without a
    DataParallel ``module.`` prefix, carrying the metadata in its ``_metadata``; and the metadata under
    `META_KEY` (`model_metadata`)."""
    meta = model_metadata(network_g, model)
    payload: dict[str, Any] = {}
    for key, state in states.items():
        plain: OrderedDict[str, Tensor] = OrderedDict(
            (k.removeprefix("module."), v.detach().cpu()) for k, v in state.items()
        )
        torch_meta = getattr(state, "_metadata", None)
        plain._metadata = OrderedDict(torch_meta or {})  # type: ignore[attr-defined]
        plain._metadata[META_KEY] = meta  # type: ignore[attr-defined]
        payload[key] = plain
    payload[META_KEY] = meta
    return payload


def file_metadata(obj: Any) -> Mapping[str, Any] | None:
    """The metadata of a loaded model file: its `META_KEY` entry, else the one its (unwrapped) state dict
    carries in ``_metadata``; None for files without options."""
    if not isinstance(obj, Mapping):
        return None
    meta = obj.get(META_KEY)
    if isinstance(meta, Mapping):
        return meta
    for candidate in (obj, *(v for v in obj.values() if isinstance(v, Mapping))):
        inner = getattr(candidate, "_metadata", None)
        if isinstance(inner, Mapping) and isinstance(inner.get(META_KEY), Mapping):
            return inner[META_KEY]  # type: ignore[no-any-return]
    return None


def save_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    network_g: Mapping[str, Any] | None = None,
    param_key: str = "params",
    extra_states: Mapping[str, Mapping[str, Tensor]] | None = None,
) -> None:
    """Write ``model`` as a self-describing file (atomically): its state dict under ``param_key`` and the options
    that rebuild it (``network_g``, default: recorded when the model was built, see `arch_options`).

    Raises:
        ValueError: no options were given and the model's cannot be recorded (an unregistered class).
    """
    options = network_g if network_g is not None else arch_options(model)
    if options is None:
        raise ValueError(
            f"save_model: {type(model).__name__} has no recorded options (its class is not registered with "
            "dan_blocks.archs.register_arch); pass network_g={'type': ..., ...} explicitly"
        )
    payload = model_file_payload({param_key: model.state_dict(), **(extra_states or {})}, options, model)
    atomic_save(payload, path)
