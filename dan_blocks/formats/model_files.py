"""Self-describing model files: the weights plus the options that rebuild the network, and the package version.

Layout (a dict that ``torch.load(weights_only=True)`` reads and plain BasicSR loads through ``params``)::

    {"params": state_dict, ["params_ema": state_dict,]
     "dan_blocks": {"format": "dan_blocks.model/1", "version": "0.1.0", "network_g": {"type": "DANv2", ...},
                    "pca_kernel_mean": (k*k,) tensor (optional)}}

``network_g`` is the option dict BasicSR's ``build_network`` takes (the ``network_g`` block of an option file).

The same metadata also travels inside each state dict, in the ``_metadata`` attribute that torch's
``state_dict()`` OrderedDicts carry (under the key ``"dan_blocks"``, which names no module, so torch ignores it):
hosts that unwrap ``params`` before looking at a file (spandrel, chaiNNer, ComfyUI) still find the options.
And every registered network's own ``state_dict()`` holds it as a tensor entry (`dan_blocks.utils.state_record`),
so a plain ``torch.save(model.state_dict())`` or a safetensors file (where ``_metadata`` is lost) rebuilds too.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from .._version import __version__
from ..archs.registry import arch_options
from ..utils import atomic_save
from ..utils.state_record import MODEL_FORMAT, RECORD_KEY, find_record

__all__ = [
    "FORMAT",
    "META_KEY",
    "RECORD_KEY",
    "check_format",
    "file_metadata",
    "model_file_payload",
    "model_metadata",
    "save_model",
]

FORMAT = MODEL_FORMAT
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


def file_metadata(obj: Any, param_key: str | None = None) -> Mapping[str, Any] | None:
    """The metadata of a loaded model file: its `META_KEY` entry, else the one its (unwrapped) state dict
    carries in ``_metadata``, else its state dict's record tensor (`dan_blocks.utils.state_record`; the one
    of the ``param_key`` entry first); None for files without options.

    Raises:
        ValueError: a record tensor that is there but malformed (the message says how).
    """
    if not isinstance(obj, Mapping):
        return None
    meta = obj.get(META_KEY)
    if isinstance(meta, Mapping):
        return meta
    nested = [v for v in obj.values() if isinstance(v, Mapping)]
    for candidate in (obj, *nested):
        inner = getattr(candidate, "_metadata", None)
        if isinstance(inner, Mapping) and isinstance(inner.get(META_KEY), Mapping):
            return inner[META_KEY]
    first = obj.get(param_key) if param_key else None
    for candidate in (*((first,) if isinstance(first, Mapping) else ()), obj, *nested):
        record = find_record(candidate)
        if record is not None:
            return record
    return None


def check_format(meta: Mapping[str, Any], where: str) -> None:
    """A ValueError naming the format and the writer's version when ``meta`` comes from a newer dan-blocks
    (a model-file format this one cannot read); older and current formats pass."""
    tag = meta.get("format")
    if tag is None or tag == FORMAT:
        return
    name, _, number = str(tag).rpartition("/")
    known_name, _, known_number = FORMAT.rpartition("/")
    writer = meta.get("version")
    by = f" (written by dan-blocks {writer})" if isinstance(writer, str) else ""
    if name == known_name and number.isdigit() and int(number) > int(known_number):
        raise ValueError(
            f"{where} is a dan-blocks model file of format version {number} ({tag!r}){by}; this dan-blocks "
            f"({__version__}) reads format version {known_number}: upgrade dan-blocks (pip install -U dan-blocks)"
        )
    raise ValueError(f"{where}: unknown model-file format {tag!r}{by}; expected {FORMAT!r}")


def save_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    network_g: Mapping[str, Any] | None = None,
    param_key: str = "params",
    extra_states: Mapping[str, Mapping[str, Tensor] | nn.Module] | None = None,
) -> None:
    """Write ``model`` as a self-describing file (atomically): its state dict under ``param_key`` and the options
    that rebuild it (``network_g``, default: recorded when the model was built, see `arch_options`).

    Args:
        model: the network to save.
        path: the file to write.
        network_g: the options that rebuild ``model`` (``{"type": Name, **kwargs}``); when given, they are checked
            first: the network they build must have ``model``'s state-dict keys and shapes.
        param_key: the entry holding ``model``'s state dict (``params``; BasicSR also reads ``params_ema``).
        extra_states: more entries, name -> state dict (or module, whose state dict is saved), e.g.
            ``{"params_ema": ema_model}``.

    Raises:
        TypeError: an argument of another type (``model`` not an ``nn.Module``, ``path`` not a path,
            ``network_g`` not a mapping, ``extra_states`` not a mapping of name -> state dict / module).
        ValueError: no options were given and the model's cannot be recorded (an unregistered class); the given
            ``network_g`` has no ``type``, is not plain data, or does not describe ``model`` (the difference is
            listed; nothing is written); an entry name that collides with another.
    """
    _check_save_arguments(model, path, network_g, param_key, extra_states)
    options = network_g if network_g is not None else arch_options(model)
    if options is None:
        raise ValueError(
            f"save_model: {type(model).__name__} has no recorded options (its class is not registered with "
            "dan_blocks.archs.register_arch); pass network_g={'type': ..., ...} explicitly"
        )
    model_metadata(options, model)  # the options' own checks ('type', plain data) before building anything
    if network_g is not None:
        _check_describes(network_g, model, path)
    extra = {name: state.state_dict() if isinstance(state, nn.Module) else state
             for name, state in (extra_states or {}).items()}
    payload = model_file_payload({param_key: model.state_dict(), **extra}, options, model)
    atomic_save(payload, path)


def _check_save_arguments(
    model: Any, path: Any, network_g: Any, param_key: Any, extra_states: Any
) -> None:
    """TypeErrors / ValueErrors naming the `save_model` argument that is not what it takes."""
    if not isinstance(model, nn.Module):
        swapped = " (the order is save_model(model, path, ...): were they swapped?)" if isinstance(
            model, (str, os.PathLike)) else ""
        raise TypeError(
            f"save_model: model must be an nn.Module (the network to save), got {type(model).__name__} "
            f"{model!r:.80}{swapped}"
        )
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"save_model: path must be a file path (str or os.PathLike), got {type(path).__name__} "
                        f"{path!r:.80}")
    if network_g is not None:
        if not isinstance(network_g, Mapping):
            raise TypeError(
                "save_model: network_g must be a mapping of network options with a 'type' key (e.g. "
                f"{{'type': 'DANv1', 'scale': 4}}), got {type(network_g).__name__} {network_g!r:.80}"
            )
        if "type" not in network_g:
            raise ValueError(
                "save_model: network_g needs a 'type' (the registered class name), e.g. {'type': 'DANv1', ...}; "
                f"got keys {list(network_g)}"
            )
    if not isinstance(param_key, str) or not param_key or param_key == META_KEY:
        raise TypeError(f"save_model: param_key must be a non-empty string other than {META_KEY!r} (e.g. 'params'), "
                        f"got {param_key!r:.80}")
    if extra_states is None:
        return
    if not isinstance(extra_states, Mapping):
        raise TypeError(
            "save_model: extra_states must be a mapping of entry name -> state dict or nn.Module (e.g. "
            f"{{'params_ema': ema_model}}), got {type(extra_states).__name__}"
        )
    for name, state in extra_states.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"save_model: extra_states keys must be entry names (non-empty strings), got {name!r:.80}")
        if name in (param_key, META_KEY):
            what = "the model's own state dict (param_key)" if name == param_key else "the file's metadata"
            raise ValueError(f"save_model: extra_states[{name!r}] would overwrite {what}; pick another name")
        if isinstance(state, nn.Module):
            continue
        if not isinstance(state, Mapping):
            raise TypeError(
                f"save_model: extra_states[{name!r}] must be a state dict (a mapping of names to tensors) or an "
                f"nn.Module, got {type(state).__name__} {state!r:.80}"
            )
        for key, value in state.items():
            if not isinstance(key, str) or not isinstance(value, Tensor):
                raise TypeError(
                    f"save_model: extra_states[{name!r}][{key!r}] is a {type(value).__name__}, expected a tensor "
                    "named by a string (a state dict holds tensors only)"
                )


def _check_describes(network_g: Mapping[str, Any], model: nn.Module, path: str | os.PathLike[str]) -> None:
    """A ValueError listing the differences when the network ``network_g`` builds has other state-dict keys or
    shapes than ``model`` (a file that could never load)."""
    from ..archs.builders import build_arch
    from ..utils import state_dict_diff

    built = build_arch(network_g, "save_model: network_g")
    state = {k.removeprefix("module."): v for k, v in model.state_dict().items()}
    lines = [line.replace(": checkpoint (", ": module (", 1).replace(", model (", ", network_g builds (", 1)
             for line in state_dict_diff(built.state_dict(), state)]
    if lines:
        raise ValueError(
            f"save_model: network_g (type {network_g['type']!r}) does not describe the {type(model).__name__} being "
            f"saved, so {os.fspath(path)} could never load; nothing was written. The {type(built).__name__} it "
            "builds against the module's state dict (missing: only in the built network; unexpected: only in the "
            "module):\n  " + "\n  ".join(lines)
        )
