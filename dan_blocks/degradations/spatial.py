"""Spatially variant Gaussian blur: sigma/angle fields interpolated between the image corners, applied per pixel.

Parameter fields: each of σx, σy, θ is drawn at the 4 corners of the HR image and bilinearly interpolated over
it (equal corners give a spatially uniform field). The kernel at a position is the release's anisotropic
Gaussian (`anisotropic_gaussian_kernel()`, no random_disturb, so the kernels
vary smoothly) with that position's parameters. Blur: each output pixel is the correlation of its reflect-padded
k x k neighbourhood with its own kernel. Downsampling: the same MATLAB bicubic (or s-fold stride) as
`BlindSRDegradation`.

Ground-truth map (for the kernel loss): (B, k*k, h, w) at LR resolution, channel ``t = r * k + c`` = tap
(row r, column c), the layout of `MANetEstimator` and of per-pixel
`encode()`. The kernel of LR pixel i is the kernel whose parameters are the
fields' values at that pixel's centre in HR coordinates, ``(i + 0.5) s - 0.5`` for bicubic (MATLAB's
sampling position), ``i s`` for stride; clamped to the image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from ..utils import check_keys
from .checks import check_finite, check_range
from .imresize import imresize, stride_downsample
from .kernels import check_kernel_size, kernel_grid
from .kernels import uniform as draw_uniform
from .noise import add_gaussian_noise, check_noise_options, quantize, sample_noise_levels
from .pipeline import DOWNSAMPLERS
from .registry import register_degradation

__all__ = [
    "SpatiallyVariantDegradation",
    "corner_field",
    "gaussian_field_blur",
    "gaussian_kernel_field",
    "lr_centres",
    "spatially_variant_blur",
]


def corner_field(corners: Tensor, rows: Tensor, cols: Tensor, height: int, width: int) -> Tensor:
    r"""Bilinear interpolation of the 4 corner values over an image, evaluated at (rows x cols) positions.

    With $t = y / (H - 1)$, $u = x / (W - 1)$ (0 when the size is 1):
    $f = (1-t)(1-u)c_{00} + (1-t)u\,c_{01} + t(1-u)c_{10} + t u\,c_{11}$.

    Args:
        corners: (B, 2, 2) values ``[[top-left, top-right], [bottom-left, bottom-right]]``.
        rows, cols: (R,), (C,) positions in pixel units of the (height, width) image (may be fractional).

    Returns:
        (B, R, C) float64.
    """
    if corners.dim() != 3 or corners.shape[1:] != (2, 2):
        raise ValueError(f"corner values must be (B, 2, 2), got shape {tuple(corners.shape)}")
    c = corners.to(torch.float64)
    t = (rows.to(c.device, torch.float64) / max(height - 1, 1))[None, :, None]
    u = (cols.to(c.device, torch.float64) / max(width - 1, 1))[None, None, :]
    top = c[:, 0, 0, None, None] * (1 - u) + c[:, 0, 1, None, None] * u
    bottom = c[:, 1, 0, None, None] * (1 - u) + c[:, 1, 1, None, None] * u
    return top * (1 - t) + bottom * t


def _quadratic_coefficients(sigma_x: Tensor, sigma_y: Tensor, theta: Tensor) -> Tensor:
    r"""(B, 3, H, W) float64 $(a, b, c)$ with $-\tfrac12 p^\top\Sigma^{-1}p = a x^2 + b xy + c y^2$."""
    cos, sin = torch.cos(theta), torch.sin(theta)
    ix, iy = 1.0 / sigma_x**2, 1.0 / sigma_y**2
    a = -0.5 * (cos**2 * ix + sin**2 * iy)
    c = -0.5 * (sin**2 * ix + cos**2 * iy)
    return torch.stack([a, -(cos * sin) * (ix - iy), c], dim=1)


def gaussian_kernel_field(
    sigma_x: Tensor, sigma_y: Tensor, theta: Tensor, kernel_size: int = 21, dtype: torch.dtype | None = None
) -> Tensor:
    r"""Per-pixel normalised anisotropic Gaussians (the formula of ``anisotropic_gaussian_kernel``).

    $K_{b,t,i,j} \propto \exp(-\tfrac12 (u_t^2/\sigma_x^2 + v_t^2/\sigma_y^2))$, $(u, v) = R_\theta^\top
    p_t$, $p_t = (x, y)$ the offset of tap t (x = column), parameters taken at pixel (i, j); sums to 1
    over t. Computed in float64 as $\exp(a x^2 + b xy + c y^2)$ (the expanded quadratic form, one matmul
    of the per-pixel coefficients with the tap offsets), normalised in place.

    Args:
        sigma_x, sigma_y, theta: (B, H, W) fields (theta in radians).
        kernel_size: odd k.
        dtype: of the result (float32 by default).

    Returns:
        (B, k*k, H, W), channel ``t = r * k + c``.
    """
    k = check_kernel_size(kernel_size)
    sx, sy, th = (f.to(torch.float64) for f in torch.broadcast_tensors(sigma_x, sigma_y, theta))
    if sx.dim() != 3:
        raise ValueError(f"sigma/theta fields must be (B, H, W), got shape {tuple(sx.shape)}")
    check_finite(sx, "gaussian_kernel_field: sigma_x field", positive=True)
    check_finite(sy, "gaussian_kernel_field: sigma_y field", positive=True)
    check_finite(th, "gaussian_kernel_field: theta field")
    b, h, w = sx.shape
    coefficients = rearrange(_quadratic_coefficients(sx, sy, th), "b j h w -> b j (h w)")
    kernels = torch.matmul(_tap_offsets(k, torch.float64, sx.device), coefficients).exp_()  # (B, k*k, H*W)
    kernels /= kernels.sum(dim=1, keepdim=True)
    return kernels.view(b, k * k, h, w).to(dtype or torch.float32)


def _tap_offsets(k: int, dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    """(k*k, 3) rows ``(x², xy, y²)`` of the tap offsets, x the column offset, row-major taps."""
    x, y = kernel_grid(k, device)
    x, y = x.flatten(), y.flatten()
    return torch.stack([x**2, x * y, y**2], dim=1).to(dtype)


def _check_blur_input(img: Tensor, k: int) -> None:
    if img.dim() != 4 or not img.is_floating_point():
        raise ValueError(f"spatially variant blur: img must be a float (B, C, H, W) tensor, got {tuple(img.shape)}")
    if k // 2 >= img.shape[-2] or k // 2 >= img.shape[-1]:
        raise ValueError(
            f"spatially variant blur: kernel size {k} is too large for a {img.shape[-2]}x{img.shape[-1]} image "
            f"(reflect padding needs k//2 < H and < W)"
        )


def _accumulate(padded: Tensor, weights: Tensor, row0: int) -> Tensor:
    """sum_t shift_t(padded) * w_t for output rows ``row0 .. row0 + R``; weights tap-major (k*k, B, R, W).

    A loop over the k² taps of in-place multiply-adds (each tap's weights contiguous): memory stays at one
    (B, C, R, W) accumulator.
    """
    k = math.isqrt(weights.shape[0])
    rows, width = weights.shape[-2:]
    out = torch.zeros(padded.shape[0], padded.shape[1], rows, width, dtype=padded.dtype, device=padded.device)
    for tap in range(k * k):
        r, c = divmod(tap, k)
        out.addcmul_(padded[:, :, row0 + r : row0 + r + rows, c : c + width], weights[tap, :, None])
    return out


def spatially_variant_blur(img: Tensor, kernels: Tensor) -> Tensor:
    r"""Per-pixel blur: $y_{b,c,i,j} = \sum_{r,s} \tilde x_{b,c,i+r,j+s}\,K_{b,rk+s,i,j}$.

    $\tilde x$ is ``img`` reflect-padded by k//2 (correlation, ``F.conv2d`` semantics, as
    `blur()`; a uniform kernel map gives ``blur``'s result). The same numbers as
    ``(F.unfold(x̃, k).view(B, C, k*k, H*W) * K.view(B, 1, k*k, H*W)).sum(2)``, computed as k² shifted
    multiply-adds so that no (B, C, k², H, W) patch tensor is built. For Gaussian fields on large images use
    `gaussian_field_blur()`, which never builds the (B, k*k, H, W) map either.

    Args:
        img: (B, C, H, W) floating tensor.
        kernels: (B, k*k, H, W) per-pixel kernels (odd k), cast to ``img``'s device/dtype.

    Returns:
        (B, C, H, W), ``img``'s device/dtype.
    """
    k = math.isqrt(kernels.shape[1]) if kernels.dim() == 4 else 0
    if kernels.dim() != 4 or k * k != kernels.shape[1] or k % 2 == 0:
        raise ValueError(f"per-pixel kernels must be (B, k*k, H, W) for an odd k, got shape {tuple(kernels.shape)}")
    _check_blur_input(img, k)
    if kernels.shape[0] != img.shape[0] or kernels.shape[-2:] != img.shape[-2:]:
        raise ValueError(
            f"per-pixel kernels {tuple(kernels.shape)} do not match the image {tuple(img.shape)} (B and H, W)"
        )
    padded = F.pad(img, (k // 2,) * 4, mode="reflect")
    weights = rearrange(kernels.to(img.device, img.dtype), "b t h w -> t b h w").contiguous()
    return _accumulate(padded, weights, 0)


def gaussian_field_blur(
    img: Tensor, sigma_x: Tensor, sigma_y: Tensor, theta: Tensor, kernel_size: int = 21,
    band_elements: int = 1 << 24,
) -> Tensor:
    r"""Per-pixel blur with the Gaussians of `gaussian_kernel_field()` on fields interpolated from corners.

    Equals ``spatially_variant_blur(img, gaussian_kernel_field(*fields, k))`` with ``fields =
    [corner_field(p, arange(H), arange(W), H, W) for p in (sigma_x, sigma_y, theta)]`` (up to rounding), but works
    in row bands: per band, the unnormalised taps $\exp(a x^2 + b xy + c y^2)$ come from one matmul of the
    per-pixel coefficients with the tap offsets, then $y = \sum_t \tilde x_t w_t / \sum_t w_t$.
    Computed in ``img``'s dtype (the coefficients in float64, then cast).

    Args:
        img: (B, C, H, W).
        sigma_x, sigma_y, theta: (B, 2, 2) corner values (see `corner_field()`).
        kernel_size: odd k.
        band_elements: memory budget per band, in elements of the (B, k*k, rows, W) tap weights.
    """
    k = check_kernel_size(kernel_size)
    _check_blur_input(img, k)
    b, _, h, w = img.shape
    padded = F.pad(img, (k // 2,) * 4, mode="reflect")
    fields = [corner_field(p, torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), h, w)
              for p in (sigma_x, sigma_y, theta)]
    check_finite(fields[0], "gaussian_field_blur: sigma_x corner values", positive=True)
    check_finite(fields[1], "gaussian_field_blur: sigma_y corner values", positive=True)
    check_finite(fields[2], "gaussian_field_blur: theta corner values")
    coefficients = _quadratic_coefficients(*fields).to(img.device, img.dtype)
    offsets = _tap_offsets(k, img.dtype, img.device)
    band = max(1, band_elements // (b * k * k * w))
    out = []
    for row0 in range(0, h, band):
        rows = min(band, h - row0)
        coef = rearrange(coefficients[:, :, row0 : row0 + rows], "b j r w -> j (b r w)")
        weights = torch.matmul(offsets, coef).exp_().view(k * k, b, rows, w)  # tap-major
        out.append(_accumulate(padded, weights, row0) / weights.sum(dim=0)[:, None])
    return torch.cat(out, dim=2)


def lr_centres(lr_len: int, hr_len: int, scale: int, downsample: str = "bicubic") -> Tensor:
    """HR positions (float64, clamped to [0, hr_len - 1]) of LR pixel centres: ``(i+0.5)s-0.5`` (bicubic), ``is``."""
    i = torch.arange(lr_len, dtype=torch.float64)
    pos = (i + 0.5) * scale - 0.5 if downsample == "bicubic" else i * scale
    return pos.clamp(0, hr_len - 1)


@register_degradation
class SpatiallyVariantDegradation:
    r"""LR synthesis with blur varying over the image: $y = Q((x \star_{\text{per pixel}} K)\downarrow_s + n)$.

    Per sample, σx, σy ~ U(sigma) and θ ~ U(theta) are drawn at each of the 4 corners (draw order: σx corners
    (B, 2, 2), σy corners, θ corners, then noise) and interpolated bilinearly (`corner_field()`);
    ``isotropic=True`` draws only σ (σy = σx, θ = 0). ``uniform=True`` draws one value per sample for all four
    corners (a spatially invariant kernel, same pipeline). θ defaults to [0, π): a Gaussian is π-periodic in θ,
    and a narrower range keeps the interpolated rotation moderate.

    Args:
        scale: s.
        kernel_size: odd k (21).
        sigma: [low, high] of σx, σy (setting 2's [0.6, 5.0]).
        theta: [low, high] in radians ([0, π]).
        isotropic: σy = σx and θ = 0.
        uniform: equal corners (spatially uniform blur).
        downsample, noise, quantize: as `BlindSRDegradation`.
        band_elements: memory budget of the banded blur (`gaussian_field_blur()`).

    Call: ``lr, kernel_map = deg(hr, generator)``; hr (B, C, H, W) in [0, 1]; lr (B, C, ceil(H/s), ceil(W/s));
    kernel_map (B, k*k, h, w) ground-truth kernels at LR pixel centres (see the module docstring).
    """

    def __init__(
        self, scale: int = 4, kernel_size: int = 21, sigma: float | Sequence[float] = (0.6, 5.0),
        theta: float | Sequence[float] = (0.0, math.pi), isotropic: bool = False, uniform: bool = False,
        downsample: str = "bicubic", noise: Mapping[str, Any] | None = None, quantize: bool = True,
        band_elements: int = 1 << 24, **unknown: Any,
    ) -> None:
        check_keys(unknown, [
            "scale", "kernel_size", "sigma", "theta", "isotropic", "uniform", "downsample", "noise", "quantize",
            "band_elements"], "SpatiallyVariantDegradation")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"SpatiallyVariantDegradation: scale must be an integer >= 1, got {scale!r}")
        if downsample not in DOWNSAMPLERS:
            raise ValueError(
                f"SpatiallyVariantDegradation: unknown downsample {downsample!r}; accepted: {list(DOWNSAMPLERS)}"
            )
        self.scale = scale
        self.kernel_size = check_kernel_size(kernel_size)
        self.sigma = check_range(sigma, "SpatiallyVariantDegradation sigma", minimum=0.0, strict=True)
        self.theta = check_range(theta, "SpatiallyVariantDegradation theta")
        self.isotropic, self.uniform = bool(isotropic), bool(uniform)
        self.downsample, self.quantize, self.band_elements = downsample, bool(quantize), int(band_elements)
        self.noise: dict[str, float] | None = None
        if noise:
            if not isinstance(noise, Mapping):
                raise TypeError(
                    "SpatiallyVariantDegradation noise must be {level: σ or [low, high], rate_clean: p}, "
                    f"got {noise!r}"
                )
            noise = dict(noise)
            check_keys(noise, ["level", "rate_clean"], "SpatiallyVariantDegradation noise")
            if noise.get("level") is None:
                raise KeyError("SpatiallyVariantDegradation noise: missing 'level'; accepted: ['level', 'rate_clean']")
            self.noise = check_noise_options(noise, "SpatiallyVariantDegradation")

    @property
    def setting(self) -> int:
        """1 for isotropic fields, 2 for anisotropic ones (which default PCA family fits)."""
        return 1 if self.isotropic else 2

    def sample_params(self, batch: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Corner values ``{"sigma_x", "sigma_y", "theta"}``, each (B, 2, 2) float64 on the CPU."""
        shape = (1, 1) if self.uniform else (2, 2)

        def draw(low: float, high: float) -> Tensor:
            return draw_uniform(batch, low, high, generator, shape).expand(batch, 2, 2).contiguous().cpu()

        sigma_x = draw(*self.sigma)
        if self.isotropic:
            return {"sigma_x": sigma_x, "sigma_y": sigma_x.clone(), "theta": torch.zeros_like(sigma_x)}
        return {"sigma_x": sigma_x, "sigma_y": draw(*self.sigma), "theta": draw(*self.theta)}

    def kernel_map(
        self, params: Mapping[str, Tensor], hr_size: tuple[int, int], device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Ground-truth (B, k*k, h, w) kernels at the LR pixel centres of an HR image of ``hr_size``."""
        h, w = hr_size
        lh, lw = math.ceil(h / self.scale), math.ceil(w / self.scale)
        rows = lr_centres(lh, h, self.scale, self.downsample)
        cols = lr_centres(lw, w, self.scale, self.downsample)
        sigma_x, sigma_y, theta = (corner_field(params[n], rows, cols, h, w) for n in ("sigma_x", "sigma_y", "theta"))
        return gaussian_kernel_field(sigma_x, sigma_y, theta, kernel_size=self.kernel_size, dtype=dtype).to(device)

    def sample(self, hr: Tensor, generator: torch.Generator | None = None) -> dict[str, Any]:
        """``{"lr", "kernels" (B, k*k, h, w), "noise_level" (B,), "params"}``."""
        if hr.dim() != 4 or not hr.is_floating_point():
            raise ValueError(f"degradation: hr must be a float (B, C, H, W) tensor, got {hr.dtype} {tuple(hr.shape)}")
        b, _, h, w = hr.shape
        params = self.sample_params(b, generator)
        out = gaussian_field_blur(hr, params["sigma_x"], params["sigma_y"], params["theta"], self.kernel_size,
                                  self.band_elements)
        out = imresize(out, 1.0 / self.scale) if self.downsample == "bicubic" else stride_downsample(out, self.scale)
        level = torch.zeros(b, dtype=torch.float64)
        if self.noise is not None:
            level = sample_noise_levels(b, self.noise["high"], self.noise["rate_clean"], self.noise["low"], generator)
            out = add_gaussian_noise(out, level, generator)
        if self.quantize:
            out = quantize(out)
        kernels = self.kernel_map(params, (h, w), hr.device, hr.dtype)
        return {"lr": out, "kernels": kernels, "noise_level": level.to(hr.device, hr.dtype), "params": params}

    def __call__(self, hr: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        result = self.sample(hr, generator)
        return result["lr"], result["kernels"]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(scale={self.scale}, kernel_size={self.kernel_size}, sigma={list(self.sigma)}, "
                f"theta={list(self.theta)}, isotropic={self.isotropic}, uniform={self.uniform}, "
                f"downsample={self.downsample!r}, noise={self.noise}, quantize={self.quantize})")
