"""``DEGRADATION_REGISTRY`` (a `Registry`), presets and ``build_degradation``.

Option blocks (plain dicts, e.g. from a YAML option file):

    {"type": "BlindSRDegradation", "scale": 4,
     "kernel": {"type": "IsotropicGaussianKernel", "kernel_size": 21, "sigma": [0.2, 4.0]},
     "downsample": "bicubic", "noise": None, "quantize": True}
    {"preset": "setting1", "scale": 4}                       # the release's pipelines, keys overridable
    {"preset": "setting1", "scale": 2, "sigma_range": "release"}
    {"preset": "setting2", "scale": 4, "kernel_size": 31}
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..settings import SETTING1_SIGMA_RANGES, SETTING2
from ..utils import Registry, check_keys
from .blur import blur
from .checks import check_integer
from .imresize import imresize, stride_downsample
from .kernels import (
    AnisotropicGaussianKernel,
    FixedGaussianKernel,
    IsotropicGaussianKernel,
    anisotropic_gaussian_kernel,
    isotropic_gaussian_kernel,
    random_disturb,
)
from .noise import add_gaussian_noise, quantize
from .pipeline import KERNEL_SAMPLERS, BlindSRDegradation

__all__ = ["DEGRADATION_REGISTRY", "PRESETS", "build_degradation", "preset_options", "register_degradation"]

DEGRADATION_REGISTRY = Registry("degradation")

T = TypeVar("T")


def register_degradation(obj: T) -> T:
    """Register ``obj`` under its ``__name__`` (idempotent: safe on re-import)."""
    return DEGRADATION_REGISTRY.register(obj)


for _obj in (
    BlindSRDegradation,
    IsotropicGaussianKernel,
    AnisotropicGaussianKernel,
    FixedGaussianKernel,
    isotropic_gaussian_kernel,
    anisotropic_gaussian_kernel,
    random_disturb,
    blur,
    imresize,
    stride_downsample,
    add_gaussian_noise,
    quantize,
):
    register_degradation(_obj)

_SETTING2_KERNEL_SIZES = SETTING2.kernel_sizes


def _release_pipeline(scale: int, kernel: dict[str, Any]) -> dict[str, Any]:
    """The release's pipeline around a kernel sampler: blur, MATLAB bicubic, no noise, uint8 quantisation."""
    return {
        "type": "BlindSRDegradation",
        "scale": scale,
        "kernel": kernel,
        "downsample": "bicubic",
        "noise": None,
        "quantize": True,
    }


def _setting1(scale: int, sigma_range: str = "paper", kernel_size: int = 21) -> dict[str, Any]:
    if not isinstance(sigma_range, str) or sigma_range not in SETTING1_SIGMA_RANGES:
        raise ValueError(
            f"setting1: unknown sigma_range {sigma_range!r}; accepted: {list(SETTING1_SIGMA_RANGES)}"
        )
    ranges = SETTING1_SIGMA_RANGES[sigma_range]
    if scale not in ranges:
        raise ValueError(f"setting1 is defined for scales {sorted(ranges)}, got {scale}")
    kernel = {"type": "IsotropicGaussianKernel", "kernel_size": kernel_size, "sigma": list(ranges[scale])}
    return _release_pipeline(scale, kernel)


def _setting2(scale: int, kernel_size: int | None = None) -> dict[str, Any]:
    if kernel_size is None:
        if scale not in _SETTING2_KERNEL_SIZES:
            raise ValueError(
                f"setting2 is defined for scales {sorted(_SETTING2_KERNEL_SIZES)} (k=11 at x2, 21 or 31 "
                f"at x4); for scale {scale} give kernel_size explicitly"
            )
        kernel_size = _SETTING2_KERNEL_SIZES[scale]
    kernel = {
        "type": "AnisotropicGaussianKernel",
        "kernel_size": kernel_size,
        "sigma": list(SETTING2.sigma),
        "theta": list(SETTING2.theta or ()),
        "random_disturb": SETTING2.random_disturb,
    }
    return _release_pipeline(scale, kernel)


#: preset name -> builder of a full option block; builders accept ``scale`` plus the listed keywords
PRESETS: dict[str, Callable[..., dict[str, Any]]] = {"setting1": _setting1, "setting2": _setting2}
_PRESET_KEYS = {"setting1": ("sigma_range", "kernel_size"), "setting2": ("kernel_size",)}
_KERNEL_SHORTHANDS = ("sigma",)
_PIPELINE_KEYS = ("type", "scale", "kernel", "downsample", "noise", "quantize")


def preset_options(name: str, scale: int = 4, **overrides: Any) -> dict[str, Any]:
    """The full option block of a preset, with ``overrides`` applied (see `build_degradation()`)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown degradation preset {name!r}; accepted: {sorted(PRESETS)}")
    check_integer(scale, f"degradation preset {name!r}: scale", 1)
    accepted = ["preset", *_PIPELINE_KEYS, *_PRESET_KEYS[name], *_KERNEL_SHORTHANDS]
    check_keys(overrides, accepted, f"degradation preset {name!r}")
    builder_args = {k: overrides.pop(k) for k in _PRESET_KEYS[name] if k in overrides}
    opt = PRESETS[name](scale, **builder_args)
    if "sigma" in overrides:
        opt["kernel"]["sigma"] = overrides.pop("sigma")
    kernel = overrides.pop("kernel", None)
    if kernel is not None:
        if (
            not isinstance(kernel, Mapping)
            or kernel.get("type", opt["kernel"]["type"]) != opt["kernel"]["type"]
        ):
            opt["kernel"] = kernel  # a different sampler replaces the preset's
        else:
            opt["kernel"].update(kernel)
    overrides.pop("preset", None)
    opt.update(overrides)
    return opt


def build_degradation(opt: Mapping[str, Any]) -> Any:
    """Build a degradation callable ``(hr, generator) -> (lr, kernels)`` from an option block.

    ``opt`` either names a ``preset`` (``"setting1"``/``"setting2"``, with ``scale`` and overrides) or a
    registered ``type`` (default ``"BlindSRDegradation"``) with its constructor keys. Unknown keys or types
    raise an error naming them and listing what is accepted.
    """
    if not isinstance(opt, Mapping):
        raise TypeError(f"build_degradation: expected a dict of options, got {type(opt).__name__}")
    options: dict[str, Any] = copy.deepcopy(dict(opt))
    if "preset" in options:
        name = options.pop("preset")
        scale = options.pop("scale", 4)
        options = preset_options(name, scale, **options)
    name = options.pop("type", "BlindSRDegradation")
    pipelines = sorted(k for k, v in DEGRADATION_REGISTRY if isinstance(v, type) and k not in KERNEL_SAMPLERS)
    if name not in pipelines:
        raise ValueError(
            f"build_degradation: unknown type {name!r}; accepted: {pipelines} "
            f"(or a preset: {sorted(PRESETS)})"
        )
    cls = DEGRADATION_REGISTRY.get(name)
    if cls is BlindSRDegradation:
        # "preset" and "type" were taken off above: listed so that a misspelling of either gets its did-you-mean
        check_keys(options, ["preset", *_PIPELINE_KEYS], "degradation")
    return cls(**options)
