"""Batched blur: correlation (``F.conv2d`` semantics) with reflect padding, per-sample or shared kernels."""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from .checks import check_finite

__all__ = ["Blur", "blur"]


def _padding(k: int) -> tuple[int, int, int, int]:
    # odd k: k//2 on each side; even k (the release's BatchBlur): one less on the right/bottom
    return (k // 2, k // 2, k // 2, k // 2) if k % 2 else (k // 2, k // 2 - 1, k // 2, k // 2 - 1)


def blur(img: Tensor, kernels: Tensor) -> Tensor:
    r"""Blur a batch: $y_b = x_b \star k_b$ (correlation, as ``F.conv2d``), reflect padding k//2.

    Args:
        img: (B, C, H, W) floating tensor.
        kernels: (B, k, k) (or (B, 1, k, k)) one kernel per sample, applied to all its channels, or (k, k)
            shared by all; finite taps.
            Cast to ``img``'s device and dtype. Square kernels; an even k uses the release's padding
            (k//2 before, k//2 - 1 after).

    Returns:
        (B, C, H, W) tensor, same device/dtype as ``img``.

    Raises:
        TypeError: ``img`` or ``kernels`` is not a floating tensor (a uint8 image: convert it to [0, 1] floats).
        ValueError: wrong shapes, a kernel too large for the image, or NaN / infinite taps (checked with one
            reduction over the small kernel tensor).
    """
    if not isinstance(img, Tensor) or not img.is_floating_point():
        what = img.dtype if isinstance(img, Tensor) else type(img).__name__
        raise TypeError(f"blur: img must be a floating tensor (e.g. float32 in [0, 1]), got {what}")
    if not isinstance(kernels, Tensor) or not kernels.is_floating_point():
        what = kernels.dtype if isinstance(kernels, Tensor) else type(kernels).__name__
        raise TypeError(f"blur: kernels must be a floating tensor, got {what}")
    if img.dim() != 4:
        raise ValueError(f"blur: img must be (B, C, H, W), got shape {tuple(img.shape)}")
    if kernels.dim() == 4 and kernels.shape[1] == 1:  # (B, 1, k, k), as conv weights are laid out
        kernels = kernels[:, 0]
    if kernels.dim() not in (2, 3) or kernels.shape[-1] != kernels.shape[-2]:
        raise ValueError(
            f"blur: kernels must be (B, k, k), (B, 1, k, k) or (k, k), got shape {tuple(kernels.shape)}"
        )
    b, c, h, w = img.shape
    k = kernels.shape[-1]
    if kernels.dim() == 3 and kernels.shape[0] != b:
        raise ValueError(
            f"blur: {kernels.shape[0]} kernels for a batch of {b} images (shape {tuple(img.shape)})"
        )
    if k // 2 >= h or k // 2 >= w:
        raise ValueError(
            f"blur: kernel size {k} is too large for a {h}x{w} image (reflect padding needs k//2 < H and < W)"
        )
    check_finite(kernels, "blur: kernel taps")
    kernels = kernels.to(device=img.device, dtype=img.dtype)
    padded = F.pad(img, _padding(k), mode="reflect")
    if kernels.dim() == 2:
        weight = kernels[None, None]
        out = F.conv2d(rearrange(padded, "b c h w -> (b c) 1 h w"), weight)
        return rearrange(out, "(b c) 1 h w -> b c h w", b=b)
    weight = repeat(kernels, "b kh kw -> (b c) 1 kh kw", c=c)
    out = F.conv2d(rearrange(padded, "b c h w -> 1 (b c) h w"), weight, groups=b * c)
    return rearrange(out, "1 (b c) h w -> b c h w", b=b)


class Blur(nn.Module):
    """Module wrapper of `blur()`: ``Blur()(img, kernels)``."""

    def forward(self, img: Tensor, kernels: Tensor) -> Tensor:
        return blur(img, kernels)
