"""Building the parts of a `DAN`: modules from option dicts, PCA specs."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, TypeAlias

import torch
from torch import Tensor, nn

from ..formats.pca_files import default_pca
from ..layers import PCAEncoder
from ..utils.options import OptionKeyError, OptionValueError, check_call_options, did_you_mean
from .registry import ARCH_REGISTRY

__all__ = ["PCALike", "build_arch", "build_module", "lookup_arch", "resolve_pca"]


#: what ``DAN(pca=...)`` accepts
PCALike: TypeAlias = "PCAEncoder | Tensor | str | os.PathLike[str] | Mapping[str, Any]"


def build_module(spec: nn.Module | Mapping[str, Any], role: str) -> nn.Module:
    """An ``nn.Module`` as is, or an option dict ``{"type": Name, **kwargs}`` built via ARCH_REGISTRY."""
    if isinstance(spec, nn.Module):
        return spec
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise TypeError(f"DAN {role} must be an nn.Module or an option dict with a 'type' key, got {spec!r}")
    return build_arch(spec, f"DAN {role}")


def build_arch(options: Mapping[str, Any], where: str = "network_g") -> nn.Module:
    """Build the network of an option dict ``{"type": Name, **kwargs}``, checked first: the type is looked up
    (`lookup_arch`, with a did-you-mean), the keys and simple value types are checked against its constructor
    (`dan_blocks.utils.options.check_call_options`), and an error of the constructor names ``where`` and the
    type.

    Raises:
        OptionKeyError: no ``type``, an unknown type or key, a missing required key.
        OptionValueError: a value the constructor refuses (wrong type, out of range).
    """
    if not isinstance(options, Mapping) or "type" not in options:
        raise OptionKeyError(f"{where} must be an option dict with a 'type' key, e.g. {{type: DANv2, scale: 4}}; "
                             f"got {options!r}")
    kwargs = dict(options)
    name = kwargs.pop("type")
    cls = lookup_arch(name, where)
    label = f"{where} ({name})"
    check_call_options(kwargs, cls, label, skip=())
    try:
        return cls(**kwargs)
    except (OptionKeyError, OptionValueError):
        raise
    except KeyError as err:
        raise OptionKeyError(f"{label}: {err.args[0] if err.args else err}") from err
    except (TypeError, ValueError) as err:
        raise OptionValueError(f"{label}: {err}") from err


def lookup_arch(name: str, what: str = "network") -> Any:
    """The class registered as ``name``: dan-blocks' ARCH_REGISTRY first, then BasicSR's if BasicSR is loaded
    (classes registered there by a user's own package). Nothing is imported here.

    Raises:
        OptionKeyError: nobody registered ``name`` (a `KeyError`); the message lists dan-blocks' names and the
            closest registered one.
    """
    if isinstance(name, str) and name in ARCH_REGISTRY:
        return ARCH_REGISTRY.get(name)
    basicsr_registry = sys.modules.get("basicsr.utils.registry")
    others: list[str] = []
    if basicsr_registry is not None:
        if isinstance(name, str) and name in basicsr_registry.ARCH_REGISTRY:
            return basicsr_registry.ARCH_REGISTRY.get(name)
        others = [key for key in basicsr_registry.ARCH_REGISTRY.keys() if key not in ARCH_REGISTRY]  # noqa: SIM118 (its __iter__ yields pairs)
    ours = sorted(ARCH_REGISTRY.keys())
    also = f" (or one of BasicSR's {len(others)} architectures)" if others else ""
    raise OptionKeyError(
        f"{what} type {name!r} is not registered{did_you_mean(name, [*ours, *others])}; use one of: "
        f"{', '.join(ours)}{also}, or register your own first (decorate it with dan_blocks.archs.register_arch, "
        "or register it in BasicSR's ARCH_REGISTRY and import that module)"
    )


def resolve_pca(pca: PCALike) -> PCAEncoder:
    """Turn any accepted PCA spec into a `PCAEncoder`.

    Accepts a PCAEncoder; a (k*k, C) or release-style (1, k*k, C) tensor (no mean, release encoding); a path
    to a file written by `PCAEncoder.save()` or to a plain tensor; or a dict: ``{"path": ...}``,
    ``{"kernel_size": k, "code_length": C, "setting": S}`` (a default matrix shipped in the package, see
    `default_pca()`) or ``{"kernel_size": k, "code_length": C, "placeholder":
    True}`` (a zero matrix that only reserves the buffers, for loading a checkpoint that holds the matrix).
    """
    if isinstance(pca, PCAEncoder):
        return pca
    if isinstance(pca, Tensor):
        return PCAEncoder.from_matrix(pca)
    if isinstance(pca, (str, os.PathLike)):
        if not os.path.isfile(pca):
            raise FileNotFoundError(f"PCA file not found: {os.fspath(pca)}")
        return PCAEncoder.load(pca)
    if isinstance(pca, Mapping):
        if "path" in pca:
            return resolve_pca(pca["path"])
        if "kernel_size" in pca and "code_length" in pca:
            size, length = int(pca["kernel_size"]), int(pca["code_length"])
            if pca.get("placeholder", False):  # the matrix (and mean) come from a checkpoint
                return PCAEncoder(
                    torch.zeros(size * size, length), torch.zeros(size * size), center=bool(pca.get("center", False)),
                    metadata={"placeholder": True},
                )
            return default_pca(size, length, int(pca.get("setting", 1)))
        raise KeyError(
            f"PCA dict needs 'path' or 'kernel_size' + 'code_length' (+ 'setting'), got keys {list(pca)}"
        )
    raise TypeError(
        f"pca must be a PCAEncoder, a (k*k, C) tensor, a path or a dict, got {type(pca).__name__}"
    )
