"""Build a DAN for inference from a released checkpoint, a BasicSR checkpoint or a BasicSR option file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from ..archs import (
    DAN,
    DANv1,
    DANv2,
    from_release_state_dict,
    infer_release_config,
    load_official_weights,
    lookup_arch,
    to_release_state_dict,
)
from ..layers import PCAEncoder
from ..utils import read_checkpoint

__all__ = ["OPTION_EXTENSIONS", "dan_state_dict", "load_model", "load_network_options", "load_weights"]

OPTION_EXTENSIONS = (".yml", ".yaml")


def load_network_options(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a BasicSR option file -> (``network_g``, ``path``) dicts (errors name the file and the key)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"option file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        try:
            opt = yaml.safe_load(handle)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(opt, Mapping) or not isinstance(opt.get("network_g"), Mapping):
        raise KeyError(f"{path}: no 'network_g' section (a BasicSR option file needs network_g: {{type: ...}})")
    network = dict(opt["network_g"])
    if "type" not in network:
        raise KeyError(f"{path}: network_g has no 'type'")
    paths = opt.get("path") or {}
    return network, dict(paths) if isinstance(paths, Mapping) else {}


def _build(network: Mapping[str, Any]) -> nn.Module:
    options = dict(network)
    name = options.pop("type")
    return lookup_arch(name, "network_g")(**options)


def dan_state_dict(path: str, param_key: str | None = "params") -> dict[str, Tensor]:
    """The tensors of a checkpoint (`read_checkpoint()`) in the dan-blocks layout (a
    release-layout file is converted)."""
    state = read_checkpoint(path, param_key)
    if any(k.startswith(("Restorer.", "Estimator.")) for k in state):
        state = from_release_state_dict(state)
    return state


def load_weights(model: nn.Module, path: str, param_key: str | None = "params", strict: bool = True) -> nn.Module:
    """Load a BasicSR checkpoint (see `read_checkpoint()`) into ``model``."""
    result = model.load_state_dict(dan_state_dict(path, param_key), strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise ValueError(
            f"{path} does not match {type(model).__name__}: missing keys {result.missing_keys[:8]}"
            f"{' ...' if len(result.missing_keys) > 8 else ''}, unexpected keys {result.unexpected_keys[:8]}"
            f"{' ...' if len(result.unexpected_keys) > 8 else ''}"
        )
    return model


def _from_checkpoint(path: str, arch: str | None, residual: str | None) -> DAN:
    """DANv1/DANv2 sized from the tensors; PCA matrix and mean from the checkpoint (release encoding)."""
    state = dan_state_dict(path)
    release = to_release_state_dict({k: v for k, v in state.items() if k != "pca.mean"})
    cfg = infer_release_config(release)
    version = cfg.pop("version")
    if arch is not None and arch not in (f"DANv{version}", f"dan_v{version}"):
        raise ValueError(f"{path} holds DAN v{version} weights, not {arch}")
    size, length = cfg["kernel_size"], cfg["code_length"]
    pca = PCAEncoder.from_matrix(torch.zeros(size * size, length))
    if version == 1:
        model: DAN = DANv1(pca=pca, **cfg)
    else:
        model = DANv2(pca=pca, residual=residual or "double", **cfg)
    load_official_weights(model, release)  # strict, with readable size diffs
    if "pca.mean" in state:
        model.pca.mean.copy_(state["pca.mean"])
    return model


def load_model(
    model_path: str,
    opt: str | None = None,
    arch: str | None = None,
    scale: int | None = None,
    residual: str | None = None,
) -> DAN:
    """A DAN in eval mode, on the CPU, from any of:

    - a BasicSR option file (``.yml``): ``network_g`` is built through ARCH_REGISTRY and
      ``path.pretrain_network_g`` (``param_key_g``, ``strict_load_g``) loaded into it;
    - a checkpoint with ``opt``: the option file's ``network_g`` plus this checkpoint's weights;
    - a checkpoint alone (released ``danv?_x?_setting?.pth`` or a BasicSR ``{"params": ...}`` of DANv1 /
      DANv2): every size is inferred from the tensors (as `load_official_checkpoint()`;
      the PCA is used with the release's encoding, no mean subtraction, as every shipped option file does);
      ``arch`` ("DANv1"/"DANv2") and ``scale`` are then checks, and ``residual`` ("add"/"double", v2) picks
      the group residual, which the tensors cannot tell (default "double", as released).
    """
    if model_path.lower().endswith(OPTION_EXTENSIONS):
        network, paths = load_network_options(model_path)
        weights = paths.get("pretrain_network_g")
        if not weights:
            raise KeyError(f"{model_path}: path.pretrain_network_g is not set: no weights to load")
        model = _build(network)
        load_weights(model, str(weights), paths.get("param_key_g", "params"), bool(paths.get("strict_load_g", True)))
    elif opt is not None:
        network, paths = load_network_options(opt)
        model = _build(network)
        load_weights(model, model_path, paths.get("param_key_g", "params"), True)
    else:
        model = _from_checkpoint(model_path, arch, residual)
    if not isinstance(model, DAN):
        raise TypeError(f"{model_path}: expected a DAN network, got {type(model).__name__}")
    if scale is not None and model.scale != scale:
        raise ValueError(f"{model_path}: the model is x{model.scale}, not x{scale} as --scale says")
    if not isinstance(model, (DANv1, DANv2)) and arch is not None and type(model).__name__ != arch:
        raise ValueError(f"{model_path}: the model is {type(model).__name__}, not {arch}")
    return model.eval()
