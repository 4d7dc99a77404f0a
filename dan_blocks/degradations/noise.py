"""Additive white Gaussian noise with per-sample levels, random level sampling, and uint8 quantisation."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["add_gaussian_noise", "quantize", "sample_noise_levels"]


def sample_noise_levels(
    batch: int,
    high: float,
    rate_clean: float = 0.0,
    low: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B,) float64 levels ~ U(low, high), each set to 0 with probability ``rate_clean`` (the release's mask).

    Levels are standard deviations in image units ([0, 1] images: 15/255 is "σ = 15").
    """
    if not 0.0 <= rate_clean <= 1.0:
        raise ValueError(f"rate_clean must be in [0, 1], got {rate_clean}")
    if not 0.0 <= low <= high:
        raise ValueError(f"noise levels need 0 <= low <= high, got low={low}, high={high}")
    device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(batch, generator=generator, device=device, dtype=torch.float64)
    keep = torch.rand(batch, generator=generator, device=device, dtype=torch.float64) >= rate_clean
    return ((low + (high - low) * u) * keep).cpu()


def add_gaussian_noise(
    img: Tensor, level: Tensor | float, generator: torch.Generator | None = None, clip: bool = True
) -> Tensor:
    r"""AWGN with a level per sample: $y_b = x_b + \sigma_b\,n$, $n \sim \mathcal N(0, 1)$.

    Args:
        img: (B, C, H, W) floating tensor.
        level: (B,) standard deviations or one float for all.
        generator: noise is drawn in float32 on the generator's device (CPU for None), then moved.
        clip: clamp the result to [0, 1] (the release does).

    Returns:
        (B, C, H, W), same device/dtype as ``img``.
    """
    if img.dim() != 4:
        raise ValueError(f"add_gaussian_noise: img must be (B, C, H, W), got shape {tuple(img.shape)}")
    level = torch.as_tensor(level, dtype=img.dtype).to(img.device).reshape(-1)
    if level.numel() not in (1, img.shape[0]):
        raise ValueError(f"add_gaussian_noise: need 1 or {img.shape[0]} levels, got {level.numel()}")
    device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(img.shape, generator=generator, device=device, dtype=torch.float32)
    out = img + noise.to(device=img.device, dtype=img.dtype) * level.reshape(-1, 1, 1, 1)
    return out.clamp(0.0, 1.0) if clip else out


def quantize(img: Tensor, levels: int = 255) -> Tensor:
    r"""uint8-style quantisation: $\mathrm{round}(\mathrm{clamp}(x, 0, 1) \cdot 255) / 255$."""
    return torch.round(img.clamp(0.0, 1.0) * levels) / levels
