"""Kernel metrics and helpers: kernel L1 error and kernel PSNR (raw or shift-aligned), size alignment, pictures.

Image PSNR / SSIM on the Y channel stay BasicSR's own functions (``basicsr.metrics``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

__all__ = [
    "align_kernel",
    "as_kernel_map",
    "centre_of_mass",
    "kernel_error",
    "kernel_picture",
    "kernel_psnr",
    "mean_kernel",
    "shift_kernels",
]


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


def _as_kernel_batch(kernel: Tensor) -> tuple[Tensor, tuple[int, int, int] | None]:
    """(B, k, k) as is, or a map (B, k*k, h, w) as (B*h*w, k, k) plus (B, h, w) to fold it back."""
    if kernel.dim() == 3:
        if kernel.shape[-1] != kernel.shape[-2]:
            raise ValueError(f"kernels must be square (B, k, k), got shape {tuple(kernel.shape)}")
        return kernel, None
    if kernel.dim() != 4:
        raise ValueError(f"kernels must be (B, k, k) or (B, k*k, h, w), got shape {tuple(kernel.shape)}")
    k = math.isqrt(kernel.shape[1])
    if k * k != kernel.shape[1]:
        raise ValueError(f"per-pixel kernels need k*k channels, got {kernel.shape[1]}")
    b, _, h, w = kernel.shape
    return rearrange(kernel, "b (kh kw) h w -> (b h w) kh kw", kh=k), (b, h, w)


def _paired(estimate: Tensor, truth: Tensor) -> tuple[Tensor, Tensor, int, int]:
    """Both as (N, k, k) at the estimate's size (truth aligned on its centre tap), broadcast per pixel, plus
    (B, pixels) to average back."""
    for name, value in (("estimate", estimate), ("truth", truth)):
        if not isinstance(value, Tensor):
            raise TypeError(
                f"kernel metrics: expected torch tensors, got {type(value).__name__} for {name} "
                "(convert NumPy kernels with torch.from_numpy)"
            )
    est, est_map = _as_kernel_batch(estimate)
    ref, ref_map = _as_kernel_batch(truth)
    ref = align_kernel(ref, est.shape[-1]).to(est)
    batch = estimate.shape[0]
    if batch != truth.shape[0]:
        raise ValueError(f"estimate and truth hold {batch} and {truth.shape[0]} samples")
    if est_map is None and ref_map is None:
        return est, ref, batch, 1
    est_map = est_map or (batch, 1, 1)
    ref_map = ref_map or (batch, 1, 1)
    if est_map[1:] != ref_map[1:] and (1, 1) not in (est_map[1:], ref_map[1:]):
        raise ValueError(
            f"kernel metrics: per-pixel maps of different spatial sizes, estimate {tuple(estimate.shape)} and "
            f"truth {tuple(truth.shape)} (expected the same h, w, or a global kernel on one side)"
        )
    h, w = max(est_map[1], ref_map[1]), max(est_map[2], ref_map[2])
    k = est.shape[-1]

    def spread(x: Tensor, shape: tuple[int, int, int]) -> Tensor:
        grid = rearrange(x, "(b h w) kh kw -> b h w kh kw", b=batch, h=shape[1], w=shape[2])
        return grid.expand(batch, h, w, k, k).reshape(batch * h * w, k, k)

    return spread(est, est_map), spread(ref, ref_map), batch, h * w


def centre_of_mass(kernels: Tensor) -> Tensor:
    """(N, k, k) -> (N, 2): the (row, column) centre of mass in taps from the kernel's centre (0 = centred).

    Negative taps are clamped to zero first (a reconstruction may dip below zero); an all-zero kernel gives 0.
    """
    k = kernels.shape[-1]
    weights = kernels.double().clamp(min=0)
    total = weights.sum(dim=(1, 2)).clamp(min=1e-30)
    offsets = torch.arange(k, dtype=torch.float64, device=kernels.device) - (k - 1) / 2
    rows = (weights.sum(dim=2) * offsets).sum(dim=1) / total
    cols = (weights.sum(dim=1) * offsets).sum(dim=1) / total
    return torch.stack((rows, cols), dim=1)


def _keys_cubic(t: Tensor, a: float = -0.5) -> Tensor:
    t = t.abs()
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def shift_kernels(kernels: Tensor, shift: Tensor, method: str = "fourier") -> Tensor:
    """Shift (N, k, k) kernels by ``shift`` (N, 2) taps (row, column), sub-pixel.

    Methods:
        ``"fourier"``: the Fourier shift theorem on the kernel zero-padded to twice its size (nothing wraps
            around); exact for band-limited kernels (sampled Gaussians of width >= 1.5 taps to ~1e-5 L1).
        ``"cubic"``: separable Keys cubic interpolation (a = -0.5); better for narrow kernels, which are not
            band-limited.
    """
    k = kernels.shape[-1]
    shift = shift.to(torch.float64)
    if method == "cubic":
        taps = torch.arange(k, dtype=torch.float64, device=kernels.device)
        offsets = taps[None, :, None] - taps[None, None, :]  # (1, k, k): output tap - input tap
        rows = _keys_cubic(offsets - shift[:, 0, None, None])
        cols = _keys_cubic(offsets - shift[:, 1, None, None])
        return torch.einsum("nij,njl,nml->nim", rows, kernels.double(), cols).to(kernels.dtype)
    if method != "fourier":
        raise ValueError(f"shift_kernels: method must be 'fourier' or 'cubic', got {method!r}")
    size = 2 * k
    pad = k // 2
    padded = F.pad(kernels.double(), (pad, size - k - pad, pad, size - k - pad))
    freq = torch.fft.fftfreq(size, dtype=torch.float64, device=kernels.device)
    phase = torch.exp(
        -2j * math.pi * (shift[:, 0, None, None] * freq[None, :, None] + shift[:, 1, None, None] * freq[None, None, :])
    )
    moved = torch.fft.ifft2(torch.fft.fft2(padded) * phase).real
    return moved[:, pad : pad + k, pad : pad + k].to(kernels.dtype)


def _aligned_distance(est: Tensor, ref: Tensor, distance: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """``distance(est, shifted ref)`` per kernel, ``ref`` shifted so that its centre of mass lands on ``est``'s:
    the smallest over the Fourier shift, the cubic shift and no shift (a search over these three candidates, so
    aligning never scores worse than the centre-tap comparison)."""
    shift = centre_of_mass(est) - centre_of_mass(ref)
    best = torch.minimum(
        distance(est, shift_kernels(ref, shift, "fourier")), distance(est, shift_kernels(ref, shift, "cubic"))
    )
    return torch.minimum(best, distance(est, ref))


def _l1(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).abs().sum(dim=(1, 2))


def _mse(a: Tensor, b: Tensor) -> Tensor:
    return (a.double() - b.double()).pow(2).mean(dim=(1, 2))


def kernel_error(estimate: Tensor, truth: Tensor, align: bool = False) -> Tensor:
    r"""L1 distance between kernels per sample, $\sum_{i,j} |\hat k_{ij} - k_{ij}|$.

    Args:
        estimate: (B, k, k), or per pixel (B, k*k, h, w); a torch tensor (NumPy arrays are refused: convert
            them with ``torch.from_numpy``).
        truth: ground truth (B, k', k') or per pixel (B, k'*k', h, w); aligned on its centre tap to the
            estimate's size (taps outside the smaller support count as zero). When either side is per pixel,
            a global kernel is compared with every pixel's and the errors are averaged over pixels; two
            per-pixel maps must have the same h, w (a (B, k*k, 1, 1) map counts as global).
        align: first shift the truth so that its centre of mass matches the estimate's, with sub-pixel
            accuracy (`shift_kernels`; the best of a Fourier shift, a cubic shift and no shift): the error then
            measures the shape, not the position. DIV2KRK's kernels are deliberately off-centre, while DAN's
            estimates are centred by construction.

    Returns:
        (B,) L1 sums (float32 or the inputs' dtype); 0 for equal kernels, at most 2 for non-negative kernels
        that each sum to 1.

    Raises:
        TypeError: an input is not a torch tensor.
        ValueError: bad shapes (naming both), different batch sizes or different per-pixel map sizes.
    """
    est, ref, batch, pixels = _paired(estimate, truth)
    errors = _aligned_distance(est, ref, _l1) if align else _l1(est, ref)
    return errors.reshape(batch, pixels).mean(dim=1)


def kernel_psnr(estimate: Tensor, truth: Tensor, align: bool = False) -> Tensor:
    r"""Kernel PSNR as MANet defines it, $20 \log_{10}(1 / \mathrm{RMSE})$ over the taps (peak 1), per sample.

    Arguments as `kernel_error`; per-pixel kernels give one PSNR per pixel, averaged over the pixels.
    Equal kernels give ``inf``.

    Returns:
        (B,) PSNR in dB (float64).
    """
    est, ref, batch, pixels = _paired(estimate, truth)
    mse = _aligned_distance(est, ref, _mse) if align else _mse(est, ref)
    psnr = 20 * torch.log10(1.0 / mse.sqrt())
    return psnr.reshape(batch, pixels).mean(dim=1)


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
