"""Blur-kernel samplers of the DAN release: isotropic / anisotropic Gaussians, random_disturb, fixed lists.

Functional ops take explicit parameters and are device/dtype agnostic; the sampler classes draw those
parameters from a ``torch.Generator`` and call the functional ops. Random numbers are always drawn in
float64 on the generator's device (CPU for ``None``) and only then moved, so a seeded run gives the same
kernels on any ``device``/``dtype``.

Grid (the release's): offsets ``-k//2 + 1 .. k//2`` along both axes; ``x`` is the column offset, ``y`` the row
offset. Kernels are computed in float64 and cast at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..settings import GAUSSIAN8_SIGMA_RANGES, SETTING1, SETTING1_SIGMA_RANGES, SETTING2
from .checks import check_finite, check_number, check_range, parameter_tensor

__all__ = [
    "GAUSSIAN8_SIGMA_RANGES",
    "SETTING1_SIGMA_RANGES",
    "AnisotropicGaussianKernel",
    "FixedGaussianKernel",
    "IsotropicGaussianKernel",
    "KernelSampler",
    "anisotropic_gaussian_kernel",
    "check_kernel_size",
    "gaussian8_sigmas",
    "isotropic_gaussian_kernel",
    "kernel_grid",
    "random_disturb",
    "uniform",
]


def check_kernel_size(kernel_size: int) -> int:
    """Return ``kernel_size`` if it is a positive odd int, else raise a ValueError saying so."""
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, int)
        or kernel_size <= 0
        or kernel_size % 2 == 0
    ):
        raise ValueError(f"kernel_size must be a positive odd integer (e.g. 11, 21, 31), got {kernel_size!r}")
    return kernel_size


def uniform(
    batch: int, low: float, high: float, generator: torch.Generator | None = None, shape: tuple[int, ...] = ()
) -> Tensor:
    """(batch, *shape) float64 samples of U(low, high), drawn on the generator's device (CPU for None)."""
    device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand((batch, *shape), generator=generator, device=device, dtype=torch.float64)
    return low + (high - low) * u


def kernel_grid(kernel_size: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """The release's grid: ``(x, y)`` float64 (k, k) offsets, x varying along columns, y along rows."""
    k = check_kernel_size(kernel_size)
    ax = torch.arange(-(k // 2), k // 2 + 1, dtype=torch.float64, device=device)
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    return x, y


def _finish(kernels: Tensor, device: torch.device | str | None, dtype: torch.dtype | None) -> Tensor:
    kernels = kernels / kernels.sum(dim=(-2, -1), keepdim=True)
    return kernels.to(device=device if device is not None else kernels.device, dtype=dtype or torch.float32)


def isotropic_gaussian_kernel(
    sigma: Tensor | float,
    kernel_size: int = 21,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Normalised isotropic Gaussians $k(x, y) \propto \exp(-(x^2 + y^2) / (2\sigma^2))$.

    Args:
        sigma: (B,) tensor or a float (B = 1); finite and > 0.
        kernel_size: odd k.
        device, dtype: of the result (default: sigma's device, float32).

    Returns:
        (B, k, k) kernels summing to 1.

    Raises:
        TypeError: ``sigma`` is not a tensor or number(s).
        ValueError: a sigma is NaN, infinite or <= 0.
    """
    sigma = parameter_tensor(sigma, "isotropic_gaussian_kernel: sigma")
    check_finite(sigma, "isotropic_gaussian_kernel: sigma", positive=True)
    x, y = kernel_grid(kernel_size, sigma.device)
    s = sigma[:, None, None]
    return _finish(torch.exp(-(x**2 + y**2) / (2.0 * s**2)), device, dtype)


def anisotropic_gaussian_kernel(
    sigma_x: Tensor | float,
    sigma_y: Tensor | float,
    theta: Tensor | float,
    kernel_size: int = 21,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Normalised rotated Gaussians $k(p) \propto \exp(-\tfrac12 p^\top \Sigma^{-1} p)$.

    $\Sigma = R\,\mathrm{diag}(\sigma_x^2, \sigma_y^2)\,R^\top$,
    $R = [[\cos\theta, -\sin\theta], [\sin\theta, \cos\theta]]$, $p = (x, y)$ with x the column
    offset. Evaluated as $u^2/\sigma_x^2 + v^2/\sigma_y^2$ with $(u, v) = R^\top p$.

    Args:
        sigma_x, sigma_y, theta: (B,) tensors or floats (theta in radians); sigmas finite and > 0, theta
            finite.

    Returns:
        (B, k, k) kernels summing to 1.

    Raises:
        TypeError: a parameter is not a tensor or number(s).
        ValueError: a sigma is NaN, infinite or <= 0, or theta is not finite.
    """
    sx = parameter_tensor(sigma_x, "anisotropic_gaussian_kernel: sigma_x")
    sy = parameter_tensor(sigma_y, "anisotropic_gaussian_kernel: sigma_y", sx.device)
    th = parameter_tensor(theta, "anisotropic_gaussian_kernel: theta", sx.device)
    check_finite(sx, "anisotropic_gaussian_kernel: sigma_x", positive=True)
    check_finite(sy, "anisotropic_gaussian_kernel: sigma_y", positive=True)
    check_finite(th, "anisotropic_gaussian_kernel: theta")
    sx, sy, th = torch.broadcast_tensors(sx, sy, th)
    x, y = kernel_grid(kernel_size, sx.device)
    cos, sin = torch.cos(th)[:, None, None], torch.sin(th)[:, None, None]
    u = cos * x + sin * y
    v = -sin * x + cos * y
    quad = u**2 / sx[:, None, None] ** 2 + v**2 / sy[:, None, None] ** 2
    return _finish(torch.exp(-0.5 * quad), device, dtype)


def random_disturb(kernels: Tensor, generator: torch.Generator | None = None, high: float = 0.25) -> Tensor:
    r"""The release's multiplicative noise: $k \leftarrow k\,(1 + U(0, high))$ per tap, renormalised.

    Args:
        kernels: (B, k, k) non-negative kernels.
        generator: source of the U(0, high) draws (float64 on its device, CPU for None).
        high: upper end of the per-tap noise, a finite number >= 0 (the factors ``1 + U(0, high)`` stay >= 1,
            so taps keep their sign).

    Returns:
        (B, k, k) kernels summing to 1, same device/dtype as ``kernels``.

    Raises:
        TypeError: ``high`` is not a number.
        ValueError: ``high`` is negative or not finite (a negative ``high`` could make taps negative), or
            ``kernels`` is not (B, k, k).
    """
    check_number(high, "random_disturb: high (the noise is U(0, high))", minimum=0.0)
    if kernels.dim() != 3:
        raise ValueError(f"kernels must be (B, k, k), got shape {tuple(kernels.shape)}")
    b, kh, kw = kernels.shape
    noise = uniform(b, 0.0, high, generator, (kh, kw)).to(kernels.device)
    out = kernels.double() * (1.0 + noise)
    return (out / out.sum(dim=(-2, -1), keepdim=True)).to(kernels.dtype)


def gaussian8_sigmas(scale: int) -> Tensor:
    """The 8 Gaussian8 test sigmas for ``scale`` (2, 3 or 4): ``torch.linspace(low, high, 8)`` in float64."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in GAUSSIAN8_SIGMA_RANGES:
        raise ValueError(f"Gaussian8 is defined for scales {sorted(GAUSSIAN8_SIGMA_RANGES)}, got {scale!r}")
    low, high = GAUSSIAN8_SIGMA_RANGES[scale]
    return torch.linspace(low, high, 8, dtype=torch.float64)


class KernelSampler:
    """Base of the kernel samplers: ``sampler(batch, generator, device, dtype) -> (B, k, k)``.

    Subclasses define `sample_params()` (random parameters drawn from ``generator``) and `kernels()`
    (the kernels those parameters give), so a sample can be reproduced or logged from its parameters.
    """

    kernel_size: int

    def sample_params(self, batch: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def kernels(
        self,
        params: dict[str, Tensor],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        raise NotImplementedError

    def __call__(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        return self.kernels(self.sample_params(batch, generator), device, dtype)


class IsotropicGaussianKernel(KernelSampler):
    """Sampler: σ ~ U(sigma[0], sigma[1]) per sample (setting 1; the release's range (0.2, 4.0) by default).

    ``sampler(batch, generator, device, dtype) -> (B, k, k)``; `sample_params()` gives
    ``{"sigma": (B,)}``.
    """

    def __init__(self, kernel_size: int = 21, sigma: float | Sequence[float] = SETTING1.sigma) -> None:
        self.kernel_size = check_kernel_size(kernel_size)
        self.sigma = check_range(sigma, "degradation sigma", minimum=0.0, strict=True)

    def sample_params(self, batch: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        return {"sigma": uniform(batch, *self.sigma, generator)}

    def kernels(
        self,
        params: dict[str, Tensor],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        return isotropic_gaussian_kernel(params["sigma"], self.kernel_size, device, dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, sigma={list(self.sigma)})"


class AnisotropicGaussianKernel(KernelSampler):
    """Sampler: σx, σy ~ U(sigma), θ ~ U(theta), optional random_disturb (setting 2 defaults of the release).

    Draw order per call: σx (B), σy (B), θ (B), then the disturbance (B, k, k).
    """

    def __init__(
        self,
        kernel_size: int = 21,
        sigma: float | Sequence[float] = SETTING2.sigma,
        theta: float | Sequence[float] = SETTING2.theta or (-math.pi, math.pi),
        random_disturb: bool = True,
        disturb_high: float = 0.25,
    ) -> None:
        self.kernel_size = check_kernel_size(kernel_size)
        self.sigma = check_range(sigma, "degradation sigma", minimum=0.0, strict=True)
        self.theta = check_range(theta, "degradation theta")
        self.random_disturb = bool(random_disturb)
        self.disturb_high = check_number(disturb_high, "degradation disturb_high", minimum=0.0)

    def sample_params(self, batch: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        return {
            "sigma_x": uniform(batch, *self.sigma, generator),
            "sigma_y": uniform(batch, *self.sigma, generator),
            "theta": uniform(batch, *self.theta, generator),
        }

    def kernels(
        self,
        params: dict[str, Tensor],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        out = anisotropic_gaussian_kernel(
            params["sigma_x"], params["sigma_y"], params["theta"], self.kernel_size, dtype=torch.float64
        )
        if self.random_disturb:
            out = random_disturb(out, generator, self.disturb_high)
        return out.to(device=device if device is not None else out.device, dtype=dtype or torch.float32)

    def __call__(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        return self.kernels(self.sample_params(batch, generator), device, dtype, generator)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kernel_size={self.kernel_size}, sigma={list(self.sigma)}, "
            f"theta={list(self.theta)}, random_disturb={self.random_disturb})"
        )


class FixedGaussianKernel(KernelSampler):
    """Sampler over a fixed list of isotropic sigmas (default: Gaussian8 of ``scale``), one per sample."""

    def __init__(self, kernel_size: int = 21, sigmas: Sequence[float] | None = None, scale: int = 4) -> None:
        self.kernel_size = check_kernel_size(kernel_size)
        expected = f"degradation sigmas must be a non-empty list of finite positive numbers, got {sigmas!r}"
        if sigmas is None:
            values = gaussian8_sigmas(scale)
        else:
            try:
                values = parameter_tensor(sigmas, "degradation sigmas")
            except TypeError:
                raise TypeError(expected) from None
        if values.numel() == 0 or not bool((torch.isfinite(values) & (values > 0)).all()):
            raise ValueError(expected)
        self.sigmas = values.reshape(-1)

    def sample_params(self, batch: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        device = generator.device if generator is not None else torch.device("cpu")
        index = torch.randint(len(self.sigmas), (batch,), generator=generator, device=device).cpu()
        return {"sigma": self.sigmas[index]}

    def kernels(
        self,
        params: dict[str, Tensor],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        return isotropic_gaussian_kernel(params["sigma"], self.kernel_size, device, dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, sigmas={self.sigmas.tolist()})"
