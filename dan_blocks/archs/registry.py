"""dan-blocks' architecture registry (BasicSR's ``Registry`` interface, without BasicSR), and the constructor
options every registered architecture records so that model files can rebuild it.

``import dan_blocks.basicsr`` mirrors every entry, present and future, into BasicSR's ``ARCH_REGISTRY``.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from torch import Tensor, nn

from ..layers.fusion import FUSION_REGISTRY
from ..utils import Registry
from ..utils.options import annotations_of, check_argument_types
from ..utils.state_record import attach_record

__all__ = ["ARCH_REGISTRY", "arch_options", "register_arch", "replaces_basicsr"]

T = TypeVar("T")

#: every architecture dan-blocks (or a user) registers, by class name
ARCH_REGISTRY = Registry("arch")

_OPTIONS_ATTR = "_arch_options"

#: names registered with ``register_arch(..., replace=True)``: they take the name over in BasicSR's registry
_REPLACING: set[str] = set()


def replaces_basicsr(name: str) -> bool:
    """Whether the architecture registered as ``name`` asked to replace a BasicSR architecture of that name."""
    return name in _REPLACING


def _registered_name(cls: type) -> str | None:
    """The name a class is registered under in dan-blocks' fusion or architecture registry, or None."""
    for registry in (FUSION_REGISTRY, ARCH_REGISTRY):
        for name, obj in registry:
            if obj is cls:
                return str(name)
    return None


def _option_value(value: Any) -> Any:
    """A constructor argument as an option-file value: plain data as is, a registered module as its own options,
    a PCA (encoder, matrix, file) as a placeholder of its size (its matrix is in the state dict)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, type):  # a class argument (fusion=SFT): recorded by its registered name
        name = _registered_name(value)
        return name if name is not None else _Unrecorded(
            f"class {value.__qualname__} (register it with register_fusion / register_arch to record it by name)"
        )
    if isinstance(value, (list, tuple)):
        return [_option_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _option_value(v) for k, v in value.items()}
    if isinstance(value, nn.Module):
        options = arch_options(value)
        if options is not None:
            return options
        if hasattr(value, "kernel_size") and hasattr(value, "code_length") and hasattr(value, "matrix"):  # a PCA
            size, length = cast(int, value.kernel_size), cast(int, value.code_length)
            return {"kernel_size": int(size), "code_length": int(length),
                    "placeholder": True, "center": bool(getattr(value, "center", False))}
    if isinstance(value, Tensor) and value.dim() in (2, 3):  # a plain PCA matrix (k*k, C) / (1, k*k, C)
        rows, cols = value.shape[-2], value.shape[-1]
        size = math.isqrt(rows)
        return {"kernel_size": size, "code_length": int(cols), "placeholder": True}
    return _Unrecorded(type(value).__name__)


class _Unrecorded:
    """Marks an argument that has no option-file form (the options then cannot rebuild the module)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<unrecordable {self.kind}>"


def arch_options(module: nn.Module) -> dict[str, Any] | None:
    """The option dict ``{"type": Name, **constructor arguments}`` that rebuilds ``module`` through the registry,
    recorded when a registered architecture was built; None for other modules.

    Raises:
        ValueError: an argument has no option-file form (e.g. a module of an unregistered class); the message
            names it.
    """
    options = getattr(module, _OPTIONS_ATTR, None)
    if options is None:
        return None
    bad = _unrecorded(options)
    if bad:
        raise ValueError(
            f"{type(module).__name__} was built with arguments that an option file cannot hold ({', '.join(bad)}): "
            "register their classes with dan_blocks.archs.register_arch, or build it from an option dict"
        )
    return dict(options)


def _unrecorded(value: Any, path: str = "") -> list[str]:
    if isinstance(value, _Unrecorded):
        return [f"{path or 'argument'}: {value.kind}"]
    if isinstance(value, Mapping):
        return [bad for k, v in value.items() for bad in _unrecorded(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [bad for i, v in enumerate(value) for bad in _unrecorded(v, f"{path}[{i}]")]
    return []


def _recording_init(cls: type[nn.Module]) -> None:
    """Wrap ``cls.__init__`` so that an instance of exactly ``cls`` records its constructor options."""
    original = cls.__dict__.get("__init__")
    if original is None or getattr(original, "_records_options", False):
        return
    signature = inspect.signature(original)
    hints: list[dict[str, Any]] = []  # resolved at the first construction, when the module is complete

    @functools.wraps(original)
    def recording_init(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        if type(self) is cls:  # simple argument types checked first: `nf="8"` is named, not a % error inside
            if not hints:
                hints.append(annotations_of(original, signature))
            given = signature.bind_partial(self, *args, **kwargs).arguments
            check_argument_types({k: v for k, v in given.items() if k != "self"}, hints[0], cls.__name__)
        original(self, *args, **kwargs)
        if type(self) is cls:  # the outermost registered class records (presets call their base's __init__)
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop("self", None)
            extra = arguments.pop("kwargs", None) if "kwargs" in signature.parameters else None
            options = {"type": cls.__name__, **{k: _option_value(v) for k, v in arguments.items()}}
            if isinstance(extra, Mapping):
                options.update({k: _option_value(v) for k, v in extra.items()})
            object.__setattr__(self, _OPTIONS_ATTR, options)
            attach_record(self, arch_options)  # its state dict carries the options (utils/state_record.py)

    recording_init._records_options = True  # type: ignore[attr-defined]
    cls.__init__ = recording_init  # type: ignore[method-assign]


def register_arch(obj: T | None = None, *, replace: bool = False) -> Any:
    """Register ``obj`` under its ``__name__`` (idempotent); usable as ``@register_arch`` or
    ``@register_arch(replace=True)``.

    A registered ``nn.Module`` class records the constructor options of its instances (`arch_options`), so
    that `dan_blocks.save_model` can write files that rebuild them.

    ``import dan_blocks.basicsr`` mirrors every registration into BasicSR's ``ARCH_REGISTRY``. A name BasicSR
    already gives to another class (``RRDBNet``, ``EDSR``, ...) is refused there with a message naming both
    classes, unless ``replace=True``: then option files (``type: RRDBNet``) build this class.
    """
    if obj is None:
        return lambda o: register_arch(o, replace=replace)
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        _recording_init(obj)
    if replace:
        _REPLACING.add(obj.__name__)  # type: ignore[attr-defined]
    return ARCH_REGISTRY.register(obj)
