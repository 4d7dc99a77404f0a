"""``load_model``: one loader for every model file dan-blocks knows, rebuilding exactly what was saved.

It recognises, in this order:

1. a BasicSR option file (``.yml``): ``network_g`` is built and ``path.pretrain_network_g`` loaded into it;
2. a self-describing model file (`dan_blocks.archs.save_model`, BasicSR's ``net_g_*.pth`` written by
   ``DANModel``, ``dan-blocks convert``): the recorded ``network_g`` is built and its weights loaded strictly;
3. a DAN release file (``danv?_x?_setting?.pth``): sizes inferred from the tensors, as
   `dan_blocks.load_official_checkpoint`;
4. MANet's released files (``stage1_MANet_x4.pth`` -> an LR-only `MANetEstimator`, ``stage3_MANet+RRDB_x4.pth``
   -> `MANetRRDB`), sizes read off the tensors, with MANet's padding (`dan_blocks.archs.load_manet_checkpoint`);
5. a dan-blocks / BasicSR checkpoint without options (written before model files described themselves): the
   sizes are inferred from the tensors, but two DAN v2 settings cannot be read off them (the group residual and
   the estimator's input normalisation), so it refuses to guess: pass ``residual=`` and ``est_input_norm=``
   (``dan-blocks sr --residual ... --est-input-norm ...``); it then says what it assumed.

The options of 2. are found in the file's ``dan_blocks`` entry, in its state dict's ``_metadata``, or in the
record tensor every registered network's own ``state_dict()`` carries (`dan_blocks.utils.state_record`): a plain
``torch.save(model.state_dict())``, a safetensors file (``.safetensors``) or a host's "save model" rebuilds too.
A file of a newer model-file format is refused with its version named.

Which weights of a file holding both ``params`` and ``params_ema`` (one rule, docs/hosts.md): a key that is
named wins (``param_key=``, an option file's ``param_key_g``); when none is named, ``params_ema`` (the EMA
weights, for inference, as spandrel and Real-ESRGAN pick), else ``params``. (BasicSR's own runs, ``dan-blocks
train/test``, read ``param_key_g`` with BasicSR's default ``params``.)

Everything loads with ``weights_only=True`` and strictly (a readable diff of keys and shapes); every tensor of the
returned network is contiguous (safetensors refuses others).
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..archs import DAN, DANv1, DANv2, build_arch, lookup_arch
from ..formats import (
    from_manet_state_dict,
    from_release_state_dict,
    infer_release_config,
    load_manet_checkpoint,
    load_official_checkpoint,
    load_official_weights,
    to_release_state_dict,
)
from ..formats.family_files import load_family_release
from ..formats.manet_files import manet_release_kind
from ..formats.model_files import META_KEY, check_format, file_metadata
from ..formats.official import release_key
from ..layers import PCAEncoder
from ..utils import (
    CheckpointMismatchError,
    CheckpointReadError,
    first_non_finite,
    load_file,
    load_state_strict,
    read_checkpoint,
    state_dict_diff,
)
from ..utils.options import check_keys, read_yaml_file

__all__ = [
    "INFERENCE_PARAM_KEY",
    "OPTION_EXTENSIONS",
    "dan_state_dict",
    "estimator_state_dict",
    "load_model",
    "load_network_options",
    "load_weights",
]

OPTION_EXTENSIONS = (".yml", ".yaml")
#: the weights inference loads when no key is named: ``params_ema`` when the file has it, else ``params``
INFERENCE_PARAM_KEY = "params_ema"
#: the DAN v2 options a checkpoint's tensors cannot tell
_UNREADABLE_V2 = ("residual", "est_input_norm")


def load_network_options(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a BasicSR option file -> (``network_g``, ``path``) dicts (errors name the file and the key)."""
    opt = read_yaml_file(path)
    if not isinstance(opt.get("network_g"), Mapping):
        raise KeyError(f"{path}: no 'network_g' section (a BasicSR option file needs network_g: {{type: ...}})")
    network = dict(opt["network_g"])
    if "type" not in network:
        raise KeyError(f"{path}: network_g has no 'type'")
    paths = opt.get("path") or {}
    return network, dict(paths) if isinstance(paths, Mapping) else {}


def _build(network: Mapping[str, Any], where: str) -> nn.Module:
    return build_arch(network, f"{where}: network_g")


def dan_state_dict(
    source: str | Mapping[str, Any], param_key: str | None = "params", where: str | None = None
) -> dict[str, Tensor]:
    """The tensors of a checkpoint (`dan_blocks.utils.read_checkpoint`) in the dan-blocks layout (a DAN or
    MANet release-layout file is converted); ``where`` names an already loaded dict in errors. A model file of a
    newer format (`check_format`) is refused, as by `load_model` (training and testing read pretrained files
    here)."""
    if isinstance(source, (str, os.PathLike)):
        where = where or os.fspath(source)
        source = load_file(source)
    if isinstance(source, Mapping):
        try:
            meta = file_metadata(source, param_key)
        except ValueError:  # a malformed record: the tensors are read as they are (nothing is rebuilt from it)
            meta = None
        if meta is not None:
            try:
                check_format(meta, where or "the given state dict")
            except ValueError as err:
                raise CheckpointReadError(str(err)) from None
    if isinstance(source, Mapping) and META_KEY in source:
        source = {k: v for k, v in source.items() if k != META_KEY}
    state = read_checkpoint(source, param_key, where=where)
    if any(k.startswith(("Restorer.", "Estimator.")) for k in state):
        state = from_release_state_dict(state)
    elif manet_release_kind(state) is not None:
        name = where or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else None)
        state = from_manet_state_dict(state, where=name)
    return state


def estimator_state_dict(source: str | Mapping[str, Any], param_key: str | None = "params") -> dict[str, Tensor]:
    """The estimator's tensors in a checkpoint (`dan_state_dict`): the ``estimator.*`` entries of a whole model
    (DAN, MANet stage 3, BasicSR's ``net_g``), prefix removed, or all of an estimator-only file (MANet's
    stage 1, `save_model` of an estimator)."""
    state = dan_state_dict(source, param_key)
    if any(k.startswith("estimator.") for k in state):
        return {k.removeprefix("estimator."): v for k, v in state.items() if k.startswith("estimator.")}
    return state


def load_weights(model: nn.Module, path: str, param_key: str | None = "params", strict: bool = True) -> nn.Module:
    """Load a checkpoint (see `dan_state_dict`) into ``model``; strict by default."""
    state = dan_state_dict(path, param_key)
    if strict:
        load_state_strict(model, state, path)
        return model
    expected = model.state_dict()
    common = {k: v for k, v in state.items() if k in expected}
    shapes = state_dict_diff({k: expected[k] for k in common}, common)
    if shapes:  # torch refuses these even when not strict, with a long raw message
        raise CheckpointMismatchError(
            f"{path} does not fit {type(model).__name__} even without strict loading:\n  " + "\n  ".join(shapes)
        )
    model.load_state_dict(state, strict=False)
    return model


def _unknown_file(where: str, state: Mapping[str, Tensor], detail: str) -> CheckpointReadError:
    first = ", ".join(list(state)[:4])
    return CheckpointReadError(
        f"{where} is no model file dan-blocks knows: it records no options, and its tensors (first keys: {first}) "
        "fit neither the DAN release layout (Restorer.* / Estimator.*), MANet's stage-1 / stage-3 layout, nor a "
        f"DANv1 / DANv2 state dict{detail}"
    )


def _from_legacy(state: dict[str, Tensor], where: str, overrides: Mapping[str, Any]) -> DAN:
    """DANv1/DANv2 sized from the tensors of a checkpoint that records no options (see the module docstring)."""
    try:
        release = to_release_state_dict({k: v for k, v in state.items() if k != "pca.mean"})
        cfg = infer_release_config(release)
    except CheckpointMismatchError as err:
        text = str(err)
        if not text.startswith("not a DAN release checkpoint"):  # a DAN state dict with a malformed tensor
            for key in state:
                ours = release_key(key)
                if ours is not None and ours != key:
                    text = text.replace(repr(ours), repr(key))  # the tensor as the file spells it
            raise CheckpointMismatchError(f"{where}: {text}") from None
        raise _unknown_file(where, state, "") from None
    except KeyError as err:
        raise _unknown_file(where, state, f" ({err.args[0] if err.args else err})") from None
    version = cfg.pop("version")
    _refuse_unused(overrides, ("loop", "setting") if version == 1 else ("loop", "setting", *_UNREADABLE_V2),
                   f"{where} (a DAN v{version} checkpoint without options; its sizes are read off the tensors)")
    size, length = cfg["kernel_size"], cfg["code_length"]
    center = "pca.mean" in state and bool(state["pca.mean"].abs().sum() > 0)
    pca = PCAEncoder(torch.zeros(size * size, length), torch.zeros(size * size), center=center)
    if version == 1:
        model: DAN = DANv1(pca=pca, **cfg, **{k: v for k, v in overrides.items() if k in ("loop", "setting")})
    else:
        missing = [key for key in _UNREADABLE_V2 if key not in overrides]
        if missing:
            raise ValueError(
                f"{where} is a DAN v2 checkpoint without its options (saved before model files described "
                f"themselves), and its tensors cannot tell {' and '.join(missing)}: dan-blocks does not guess. "
                "Load it with its option file (dan-blocks sr --opt FILE / load_model(path, opt=FILE)), or say them: "
                "load_model(path, residual='double' or 'add', est_input_norm=False or True) / dan-blocks sr "
                "--residual ... --est-input-norm ... (the release's own files: double, false)"
            )
        if not isinstance(overrides["est_input_norm"], bool):
            raise TypeError(f"est_input_norm must be True or False, got {overrides['est_input_norm']!r}")
        extra = {k: overrides[k] for k in ("loop", "setting") if k in overrides}
        model = DANv2(pca=pca, residual=overrides["residual"], est_input_norm=overrides["est_input_norm"],
                      **cfg, **extra)
        warnings.warn(
            f"{where}: a checkpoint without options, loaded as DANv2 with residual={overrides['residual']!r}, "
            f"est_input_norm={overrides['est_input_norm']} as given",
            stacklevel=4,  # the caller of load_model
        )
    load_official_weights(model, release)  # strict, with readable size diffs
    if "pca.mean" in state:
        model.pca.mean.copy_(state["pca.mean"])
    return model


def load_model(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    opt: str | None = None,
    arch: str | None = None,
    scale: int | None = None,
    param_key: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """The network a file describes, rebuilt exactly, in eval mode on the CPU (see the module docstring).

    Args:
        source: a model file or option file path, or an already loaded checkpoint dict.
        opt: an option file whose ``network_g`` describes ``source`` (its weights are loaded into it).
        arch, scale: checks ("DANv1" / "DANv2" / a class name; the SR factor).
        param_key: which weights to load (default: `INFERENCE_PARAM_KEY`, ``params_ema`` when the file has
            it, else ``params``; an option file's ``param_key_g`` when it names one).
        overrides: constructor options that replace recorded ones (e.g. ``loop=2``), or that a checkpoint
            without options needs (``residual``, ``est_input_norm``).

    Raises:
        FileNotFoundError, dan_blocks.utils.CheckpointReadError: the file is missing or not a checkpoint.
        ValueError: the weights do not fit, a check fails, or options a legacy checkpoint needs are missing.
    """
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int)):
        raise TypeError(f"scale must be an integer (2, 3, 4), got {scale!r} ({type(scale).__name__})")
    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the given checkpoint"
    if isinstance(source, (str, os.PathLike)) and where.lower().endswith(OPTION_EXTENSIONS):
        network, paths = load_network_options(where)
        weights = paths.get("pretrain_network_g")
        if not weights:
            raise KeyError(f"{where}: path.pretrain_network_g is not set: no weights to load")
        if not os.path.isfile(str(weights)):
            state = "is a folder" if os.path.isdir(str(weights)) else "does not exist"
            raise FileNotFoundError(f"{where}: path.pretrain_network_g {weights!r} {state}")
        model = _build({**network, **overrides}, where)
        load_weights(model, str(weights), param_key or paths.get("param_key_g") or INFERENCE_PARAM_KEY,
                     bool(paths.get("strict_load_g", True)))
    elif opt is not None:
        network, paths = load_network_options(opt)
        model = _build({**network, **overrides}, os.fspath(opt))
        load_weights(model, where if isinstance(source, (str, os.PathLike)) else source,  # type: ignore[arg-type]
                     param_key or paths.get("param_key_g") or INFERENCE_PARAM_KEY, True)
    else:
        obj = load_file(where) if isinstance(source, (str, os.PathLike)) else source
        model = _from_object(obj, where, param_key or INFERENCE_PARAM_KEY, overrides)
    _check(model, where, arch, scale)
    _check_finite(model, where)
    _make_contiguous(model)
    return model.eval()


def _check_finite(model: nn.Module, where: str) -> None:
    """Raise ``ValueError`` naming the file and the first tensor holding NaN or infinity (such a model writes
    black or garbage images without a word)."""
    bad = first_non_finite(model.state_dict())
    if bad is not None:
        name, count, size = bad
        raise ValueError(
            f"{where}: tensor {name!r} holds {count} non-finite value(s) (NaN or infinity) of {size}; the file is "
            "damaged or comes from a training that diverged"
        )


def _make_contiguous(model: nn.Module) -> None:
    """Every parameter and buffer stored contiguously (a loaded MANet's PCA matrix is a transposed view: hosts
    saving the state dict as safetensors would be refused)."""
    for module in model.modules():
        for param in module._parameters.values():
            if param is not None and not param.is_contiguous():
                param.data = param.data.contiguous()
        for name, buf in module._buffers.items():
            if buf is not None and not buf.is_contiguous():
                module._buffers[name] = buf.contiguous()


def _refuse_unused(overrides: Mapping[str, Any], accepted: tuple[str, ...], what: str) -> None:
    unused = [key for key in overrides if key not in accepted]
    if unused:
        raise ValueError(
            f"{what}: cannot apply {', '.join(f'{k}=' + repr(overrides[k]) for k in unused)}; "
            f"accepted overrides here: {', '.join(accepted)}"
        )


def _recorded_options(obj: Any, where: str, param_key: str | None = None) -> Mapping[str, Any] | None:
    """The recorded metadata of a model file; a record that is there but malformed, or of a newer format, is an
    error, not ignored."""
    try:
        meta = file_metadata(obj, param_key)
    except ValueError as err:
        raise CheckpointReadError(
            f"{where}: {err}; load it with its option file (load_model(path, opt=FILE))"
        ) from None
    raw = obj.get(META_KEY) if isinstance(obj, Mapping) else None
    if raw is not None and not isinstance(raw, Mapping):  # the file's own entry decides, even beside a record
        meta = {"network_g": raw}
    if meta is None:
        return None
    try:
        check_format(meta, where)
    except ValueError as err:
        raise CheckpointReadError(str(err)) from None
    if not isinstance(meta.get("network_g"), Mapping):
        raise CheckpointReadError(
            f"{where}: its {META_KEY!r} record is malformed: 'network_g' holds {meta.get('network_g')!r}, expected "
            "the network's options ({type: ..., ...}); rewrite the file with dan_blocks.save_model or load it with "
            "its option file (load_model(path, opt=FILE))"
        )
    return meta


def _warn_replaced(meta: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> None:
    recorded = meta["network_g"]
    changed = [f"{k}={recorded[k]!r} -> {v!r}" for k, v in overrides.items()
               if k in _UNREADABLE_V2 and k in recorded and recorded[k] != v]  # the weights would load either way
    if changed:
        warnings.warn(f"{where}: recorded option(s) replaced as asked: {', '.join(changed)}", stacklevel=4)


def _from_object(obj: Any, where: str, param_key: str | None, overrides: Mapping[str, Any]) -> nn.Module:
    meta = _recorded_options(obj, where, param_key)
    if meta is not None:
        kind = meta["network_g"].get("type")
        if overrides and isinstance(kind, str):
            accepted = inspect.signature(lookup_arch(kind, f"{where}: network_g")).parameters
            check_keys(overrides, accepted, f"the overrides for {where} (a {kind})")
        _warn_replaced(meta, overrides, where)
        model = _build({**meta["network_g"], **overrides}, f"{where} (its recorded options)")
        load_state_strict(model, dan_state_dict(obj, param_key or "params", where), where)
        mean = meta.get("pca_kernel_mean")
        if isinstance(mean, list):  # a state-dict record holds it as JSON numbers
            try:
                mean = torch.tensor(mean, dtype=torch.float32)
            except (TypeError, ValueError):
                raise CheckpointReadError(f"{where}: its recorded pca_kernel_mean is not a list of numbers") from None
        pca = getattr(model, "pca", None)
        if mean is not None and isinstance(pca, PCAEncoder):
            if not isinstance(mean, Tensor):
                raise CheckpointReadError(f"{where}: its recorded pca_kernel_mean is a {type(mean).__name__}, "
                                          "expected a tensor")
            try:
                pca.set_kernel_mean(mean)
            except ValueError as err:
                raise CheckpointMismatchError(f"{where}: its recorded pca_kernel_mean does not fit: {err}") from None
        return model
    state = read_checkpoint(obj, param_key or "params", where=where)
    family = load_family_release(state, where, overrides)  # IKC, DCLS, DASR release files (formats.family_files)
    if family is not None:
        return family
    if any(k.startswith(("Restorer.", "Estimator.")) for k in state):  # the DAN release's own layout
        _refuse_unused(overrides, ("loop", "setting"), f"{where} (a DAN release file; its sizes are read off "
                       "the tensors)")
        try:
            return load_official_checkpoint(state, **overrides)
        except CheckpointMismatchError as err:
            raise CheckpointMismatchError(f"{where}: {err}") from None
    if manet_release_kind(state) is not None:
        return load_manet_checkpoint(state, where=where, **overrides)
    return _from_legacy(state, where, overrides)


def _check(model: nn.Module, where: str, arch: str | None, scale: int | None) -> None:
    if scale is not None and getattr(model, "scale", None) != scale:
        raise ValueError(f"{where}: the model is x{getattr(model, 'scale', '?')}, not x{scale} as asked")
    if arch is not None:
        names = {cls.__name__ for cls in type(model).__mro__}
        if arch not in names and arch.replace("dan_v", "DANv") not in names:
            version = next((f" (DAN v{n[-1]} weights)" for n in ("DANv1", "DANv2") if n in names), "")
            raise ValueError(f"{where} holds a {type(model).__name__}{version}, not {arch}")
