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


def _as_range(value: float | Sequence[float], name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return float(value), float(value)
    values = [float(v) for v in value]
    if len(values) != 2 or values[0] > values[1]:
        raise ValueError(f"{name} must be a number or a [low, high] pair with low <= high, got {value!r}")
    return values[0], values[1]


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
        sigma: (B,) tensor or a float (B = 1).
        kernel_size: odd k.
        device, dtype: of the result (default: sigma's device, float32).

    Returns:
        (B, k, k) kernels summing to 1.
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
    if (sigma <= 0).any():
        raise ValueError(f"sigma must be > 0, got {sigma.tolist()}")
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
        sigma_x, sigma_y, theta: (B,) tensors or floats (theta in radians).

    Returns:
        (B, k, k) kernels summing to 1.
    """
    sx = torch.as_tensor(sigma_x, dtype=torch.float64).reshape(-1)
    sy = torch.as_tensor(sigma_y, dtype=torch.float64, device=sx.device).reshape(-1)
    th = torch.as_tensor(theta, dtype=torch.float64, device=sx.device).reshape(-1)
    if (sx <= 0).any() or (sy <= 0).any():
        raise ValueError(f"sigma_x and sigma_y must be > 0, got {sx.tolist()} and {sy.tolist()}")
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
        kernels: (B, k, k).

    Returns:
        (B, k, k) kernels summing to 1, same device/dtype as ``kernels``.
    """
    if kernels.dim() != 3:
        raise ValueError(f"kernels must be (B, k, k), got shape {tuple(kernels.shape)}")
    b, kh, kw = kernels.shape
    noise = uniform(b, 0.0, high, generator, (kh, kw)).to(kernels.device)
    out = kernels.double() * (1.0 + noise)
    return (out / out.sum(dim=(-2, -1), keepdim=True)).to(kernels.dtype)


def gaussian8_sigmas(scale: int) -> Tensor:
    """The 8 Gaussian8 test sigmas for ``scale`` (2, 3 or 4): ``torch.linspace(low, high, 8)`` in float64."""
    if scale not in GAUSSIAN8_SIGMA_RANGES:
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
        self.sigma = _as_range(sigma, "sigma")
        if self.sigma[0] <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")

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
        self.sigma = _as_range(sigma, "sigma")
        if self.sigma[0] <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        self.theta = _as_range(theta, "theta")
        self.random_disturb = bool(random_disturb)
        self.disturb_high = float(disturb_high)

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
        values = gaussian8_sigmas(scale) if sigmas is None else torch.as_tensor(sigmas, dtype=torch.float64)
        if values.dim() != 1 or values.numel() == 0 or (values <= 0).any():
            raise ValueError(f"sigmas must be a non-empty list of positive numbers, got {sigmas!r}")
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
