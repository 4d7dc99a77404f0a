"""Additive white Gaussian noise with per-sample levels, random level sampling, and uint8 quantisation."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from .checks import check_integer, check_number, check_range, parameter_tensor

__all__ = ["add_gaussian_noise", "check_noise_options", "quantize", "sample_noise_levels"]


def check_noise_options(noise: Any, where: str = "degradation") -> dict[str, float]:
    """``{"low", "high", "rate_clean"}`` from a ``{"level": σ or [low, high], "rate_clean": p}`` option block.

    A single σ means U(0, σ). Checked when the degradation is built, so that a bad block fails before training.

    Raises:
        TypeError: ``level`` is not a number or a pair of numbers (e.g. ``"ten"``), or ``rate_clean`` not a
            number.
        ValueError: a negative or non-finite level, ``low > high``, or ``rate_clean`` outside [0, 1].
    """
    level = noise["level"]
    name = f"{where} noise level"
    if isinstance(level, Real) and not isinstance(level, bool):
        low, high = 0.0, check_number(level, f"{name} (a standard deviation in [0, 1] image units)", minimum=0.0)
    else:
        low, high = check_range(level, name, minimum=0.0)
    rate_clean = check_number(noise.get("rate_clean", 0.0), f"{where} noise rate_clean", minimum=0.0)
    if rate_clean > 1.0:
        raise ValueError(f"{where} noise rate_clean must be in [0, 1], got {rate_clean!r}")
    return {"low": low, "high": high, "rate_clean": rate_clean}


def sample_noise_levels(
    batch: int,
    high: float,
    rate_clean: float = 0.0,
    low: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B,) float64 levels ~ U(low, high), each set to 0 with probability ``rate_clean`` (the release's mask).

    Levels are standard deviations in image units ([0, 1] images: 15/255 is "σ = 15").

    Raises:
        ValueError: ``rate_clean`` outside [0, 1], or not ``0 <= low <= high`` with finite bounds.
    """
    if not 0.0 <= rate_clean <= 1.0:
        raise ValueError(f"rate_clean must be in [0, 1], got {rate_clean}")
    if not (0.0 <= low <= high and math.isfinite(high)):
        raise ValueError(f"noise levels need 0 <= low <= high (finite), got low={low}, high={high}")
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
        level: (B,) standard deviations or one float for all; finite and >= 0.
        generator: noise is drawn in float32 on the generator's device (CPU for None), then moved.
        clip: clamp the result to [0, 1] (the release does).

    Returns:
        (B, C, H, W), same device/dtype as ``img``.

    Raises:
        TypeError: ``img`` is not a floating tensor, or ``level`` not a tensor / number(s).
        ValueError: a negative or non-finite level, or a level count other than 1 or B.
    """
    if not isinstance(img, Tensor) or not img.is_floating_point():
        what = img.dtype if isinstance(img, Tensor) else type(img).__name__
        raise TypeError(f"add_gaussian_noise: img must be a floating tensor, got {what}")
    if img.dim() != 4:
        raise ValueError(f"add_gaussian_noise: img must be (B, C, H, W), got shape {tuple(img.shape)}")
    if isinstance(level, Real) and not isinstance(level, bool):
        check_number(level, "add_gaussian_noise: level (a standard deviation)", minimum=0.0)
    else:
        level = parameter_tensor(level, "add_gaussian_noise: level")  # (B,): one small reduction to check
        # CPU tensors only: on an accelerator this would be a host synchronisation per batch (see check_finite)
        if level.device.type == "cpu" and not bool(((level >= 0) & torch.isfinite(level)).all()):
            raise ValueError(f"add_gaussian_noise: level must be finite and >= 0, got {level.tolist()}")
    level = torch.as_tensor(level, dtype=img.dtype).to(img.device).reshape(-1)
    if level.numel() not in (1, img.shape[0]):
        raise ValueError(f"add_gaussian_noise: need 1 or {img.shape[0]} levels, got {level.numel()}")
    device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(img.shape, generator=generator, device=device, dtype=torch.float32)
    out = img + noise.to(device=img.device, dtype=img.dtype) * level.reshape(-1, 1, 1, 1)
    return out.clamp(0.0, 1.0) if clip else out


def quantize(img: Tensor, levels: int = 255) -> Tensor:
    r"""uint8-style quantisation: $\mathrm{round}(\mathrm{clamp}(x, 0, 1) \cdot L) / L$ with $L$ = ``levels``.

    Args:
        img: (...) floating tensor in [0, 1].
        levels: the largest code L, an integer >= 1 (255: uint8); the result takes the L + 1 values k / L.

    Returns:
        Tensor of ``img``'s shape, device and dtype.

    Raises:
        TypeError: ``img`` is not a floating tensor or ``levels`` not an integer.
        ValueError: ``levels`` < 1.
    """
    check_integer(levels, "quantize: levels (the largest code, 255 for uint8)", 1)
    if not isinstance(img, Tensor) or not img.is_floating_point():
        what = img.dtype if isinstance(img, Tensor) else type(img).__name__
        raise TypeError(f"quantize: img must be a floating tensor, got {what}")
    return torch.round(img.clamp(0.0, 1.0) * levels) / levels
