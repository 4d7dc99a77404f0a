"""``BlindSRDegradation``: kernel sampler + blur + downsampler + optional noise + optional quantisation."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
from torch import Tensor

from ..utils import check_keys
from .blur import blur
from .imresize import imresize, stride_downsample
from .kernels import AnisotropicGaussianKernel, FixedGaussianKernel, IsotropicGaussianKernel, KernelSampler
from .noise import add_gaussian_noise, check_noise_options, quantize, sample_noise_levels

__all__ = ["DOWNSAMPLERS", "KERNEL_SAMPLERS", "BlindSRDegradation", "build_kernel_sampler"]

KERNEL_SAMPLERS: dict[str, type] = {
    cls.__name__: cls for cls in (IsotropicGaussianKernel, AnisotropicGaussianKernel, FixedGaussianKernel)
}
DOWNSAMPLERS = ("bicubic", "stride")
_NOISE_KEYS = ("level", "rate_clean")


def _init_keys(cls: type[Any]) -> list[str]:
    return [n for n in inspect.signature(cls.__init__).parameters if n != "self"]


def build_kernel_sampler(opt: Mapping[str, Any] | Callable[..., Tensor]) -> Callable[..., Tensor]:
    """A sampler from ``{"type": "IsotropicGaussianKernel", ...}`` (or a ready sampler, returned as is)."""
    if not isinstance(opt, Mapping):
        return opt
    opt = dict(opt)
    name = opt.pop("type", None)
    if name not in KERNEL_SAMPLERS:
        raise ValueError(f"degradation kernel: unknown type {name!r}; accepted: {sorted(KERNEL_SAMPLERS)}")
    cls = KERNEL_SAMPLERS[name]
    check_keys(opt, ["type", *_init_keys(cls)], f"degradation kernel {name}")
    return cls(**opt)


class BlindSRDegradation:
    r"""The release's on-the-fly LR synthesis: $y = Q(\mathrm{clip}((x \star k)\downarrow_s + n))$.

    Args:
        scale: s (2, 3, 4 ...).
        kernel: sampler option dict (``type`` one of `KERNEL_SAMPLERS`) or a sampler object
            ``(batch, generator, device, dtype) -> (B, k, k)``.
        downsample: ``"bicubic"`` (MATLAB imresize 1/s with antialiasing, the release) or ``"stride"``.
        noise: None, or ``{"level": σ or [low, high], "rate_clean": p}`` (σ in [0, 1] image units; per-sample
            level ~ U(low, high), zeroed with probability p).
        quantize: round the LR to uint8 levels (the release's training LR).

    Call: ``lr, kernels = deg(hr, generator)``; hr (B, C, H, W) in [0, 1] on any device; lr
    (B, C, ceil(H/s), ceil(W/s)) and kernels (B, k, k) on hr's device/dtype. `sample()` also returns the
    noise levels (B,) and the kernel parameters.
    """

    def __init__(
        self,
        scale: int = 4,
        kernel: Mapping[str, Any] | Callable[..., Tensor] | None = None,
        downsample: str = "bicubic",
        noise: Mapping[str, Any] | None = None,
        quantize: bool = True,
    ) -> None:
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"degradation: scale must be an integer >= 1, got {scale!r}")
        if downsample not in DOWNSAMPLERS:
            raise ValueError(
                f"degradation: unknown downsample {downsample!r}; accepted: {list(DOWNSAMPLERS)}"
            )
        self.scale = scale
        default_kernel = {"type": "IsotropicGaussianKernel"}
        self.kernel_sampler = build_kernel_sampler(kernel if kernel is not None else default_kernel)
        self.kernel_size: int = int(getattr(self.kernel_sampler, "kernel_size", 0))
        self.downsample = downsample
        self.quantize = bool(quantize)
        self.noise: dict[str, Any] | None = None
        if noise:
            if not isinstance(noise, Mapping):
                raise TypeError(f"degradation noise must be {{level: σ or [low, high], rate_clean: p}}, got {noise!r}")
            noise = dict(noise)
            check_keys(noise, _NOISE_KEYS, "degradation noise")
            if "level" not in noise:
                raise KeyError(f"degradation noise: missing 'level'; accepted: {list(_NOISE_KEYS)}")
            self.noise = check_noise_options(noise, "degradation")

    @property
    def setting(self) -> int:
        """1 for isotropic samplers, 2 for anisotropic ones (which default PCA family fits)."""
        return 2 if isinstance(self.kernel_sampler, AnisotropicGaussianKernel) else 1

    def sample(self, hr: Tensor, generator: torch.Generator | None = None) -> dict[str, Any]:
        """``{"lr", "kernels", "noise_level" (B,), "params"}``; draw order: kernel, disturbance, noise."""
        if hr.dim() != 4 or not hr.is_floating_point():
            raise ValueError(
                f"degradation: hr must be a float (B, C, H, W) tensor, got {hr.dtype} {tuple(hr.shape)}"
            )
        b = hr.shape[0]
        params: dict[str, Tensor] = {}
        if hasattr(self.kernel_sampler, "sample_params"):
            sampler = cast(KernelSampler, self.kernel_sampler)  # sample_params() and kernels(), as KernelSampler's
            params = sampler.sample_params(b, generator)
            extra = {"generator": generator} if isinstance(sampler, AnisotropicGaussianKernel) else {}
            kernels = sampler.kernels(params, hr.device, hr.dtype, **extra)
        else:
            kernels = self.kernel_sampler(b, generator, hr.device, hr.dtype)
        out = blur(hr, kernels)
        out = (
            imresize(out, 1.0 / self.scale)
            if self.downsample == "bicubic"
            else stride_downsample(out, self.scale)
        )
        level = torch.zeros(b, dtype=torch.float64)
        if self.noise is not None:
            level = sample_noise_levels(
                b, self.noise["high"], self.noise["rate_clean"], self.noise["low"], generator
            )
            out = add_gaussian_noise(out, level, generator)
        if self.quantize:
            out = quantize(out)
        return {"lr": out, "kernels": kernels, "noise_level": level.to(hr.device, hr.dtype), "params": params}

    def __call__(self, hr: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        result = self.sample(hr, generator)
        return result["lr"], result["kernels"]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(scale={self.scale}, kernel={self.kernel_sampler!r}, "
            f"downsample={self.downsample!r}, noise={self.noise}, quantize={self.quantize})"
        )
