"""Kernel helpers for DAN training and validation: size alignment, kernel error, kernel pictures."""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

__all__ = ["align_kernel", "as_kernel_map", "kernel_error", "kernel_picture", "mean_kernel"]


def align_kernel(kernel: Tensor, size: int) -> Tensor:
    """Centre-crop or zero-pad (B, k, k) kernels to (B, size, size); k and size odd.

    DIV2KRK ships 31x31 ground-truth kernels at x4 while a model may estimate 21x21 ones: aligning on the
    centre tap makes them comparable (the taps outside the smaller support are treated as zero).
    """
    if kernel.dim() != 3 or kernel.shape[-1] != kernel.shape[-2]:
        raise ValueError(f"kernels must be (B, k, k), got shape {tuple(kernel.shape)}")
    k = kernel.shape[-1]
    if k % 2 == 0 or size % 2 == 0:
        raise ValueError(f"kernel sizes must be odd, got {k} and {size}")
    if k == size:
        return kernel
    if k > size:
        start = (k - size) // 2
        return kernel[:, start:start + size, start:start + size]
    pad = (size - k) // 2
    return F.pad(kernel, (pad, pad, pad, pad))


def as_kernel_map(kernel: Tensor, size: int) -> Tensor:
    """Global (B, k, k) or per-pixel (B, k*k, h, w) kernels as a map (B, size*size, h | 1, w | 1).

    The kernel support is aligned on the centre tap to ``size`` (see `align_kernel()`); a global kernel
    becomes a 1x1 map that broadcasts against per-pixel ones.
    """
    if kernel.dim() == 3:
        return rearrange(align_kernel(kernel, size), "b kh kw -> b (kh kw) 1 1")
    if kernel.dim() != 4:
        raise ValueError(f"kernels must be (B, k, k) or (B, k*k, h, w), got shape {tuple(kernel.shape)}")
    k = math.isqrt(kernel.shape[1])
    if k * k != kernel.shape[1]:
        raise ValueError(f"per-pixel kernels need k*k channels, got {kernel.shape[1]}")
    if k == size:
        return kernel
    b, _, h, w = kernel.shape
    flat = align_kernel(rearrange(kernel, "b (kh kw) h w -> (b h w) kh kw", kh=k), size)
    return rearrange(flat, "(b h w) kh kw -> b (kh kw) h w", b=b, h=h, w=w)


def mean_kernel(kernel: Tensor) -> Tensor:
    """(B, k, k) as is; per-pixel (B, k*k, h, w) -> the image-average kernel (B, k, k)."""
    if kernel.dim() == 3:
        return kernel
    size = math.isqrt(kernel.shape[1])
    return rearrange(kernel.mean(dim=(2, 3)), "b (kh kw) -> b kh kw", kh=size)


def kernel_error(estimate: Tensor, reference: Tensor) -> Tensor:
    r"""L1 distance between kernels, per sample: $\sum_{i,j} |\hat k_{ij} - k_{ij}|$.

    Args:
        estimate: (B, k, k), or per pixel (B, k*k, h, w).
        reference: ground truth (B, k', k') or per pixel (B, k'*k', h, w); aligned on the centre tap to the
            estimate's size. When either side is per pixel the error is averaged over pixels (a global kernel
            is compared with every pixel's).

    Returns:
        (B,) errors; 0 for equal kernels, at most 2 for non-negative kernels that sum to 1.
    """
    if estimate.dim() == 3 and reference.dim() == 3:
        ref = align_kernel(reference, estimate.shape[-1]).to(estimate)
        return (estimate - ref).abs().sum(dim=(1, 2))
    size = estimate.shape[-1] if estimate.dim() == 3 else math.isqrt(estimate.shape[1])
    est = as_kernel_map(estimate, size)
    ref = as_kernel_map(reference, size).to(est)
    return (est - ref).abs().sum(dim=1).mean(dim=(1, 2))


def _normalise(kernel: np.ndarray) -> np.ndarray:
    peak = float(np.abs(kernel).max())
    return np.clip(kernel / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(kernel)


def kernel_picture(estimate: Tensor, reference: Tensor | None = None, zoom: int = 8, gap: int = 4) -> np.ndarray:
    """Grey uint8 picture of one kernel, or estimate | reference side by side.

    Each kernel is divided by its own peak (so shapes, not heights, are compared), enlarged ``zoom`` times
    with nearest-neighbour, and the two panels are separated by a white bar ``gap`` pixels wide. The
    reference is aligned on its centre tap to the estimate's size.

    Args:
        estimate: (k, k) or (1, k, k) kernel.
        reference: optional ground-truth kernel of any odd size.

    Returns:
        (k*zoom, k*zoom) or (k*zoom, 2*k*zoom + gap) uint8 array.
    """
    est = estimate.detach().float().cpu().reshape(1, *estimate.shape[-2:])
    panels = [est]
    if reference is not None:
        ref = reference.detach().float().cpu().reshape(1, *reference.shape[-2:])
        panels.append(align_kernel(ref, est.shape[-1]))
    images = []
    for panel in panels:
        arr = _normalise(panel[0].numpy())
        images.append(np.kron(arr, np.ones((zoom, zoom), dtype=arr.dtype)))
    if len(images) == 2:
        bar = np.ones((images[0].shape[0], gap), dtype=images[0].dtype)
        picture = np.concatenate([images[0], bar, images[1]], axis=1)
    else:
        picture = images[0]
    return np.round(picture * 255.0).astype(np.uint8)
