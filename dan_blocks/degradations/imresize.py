"""MATLAB ``imresize`` (bicubic, antialiasing), batched: two matrix products with cached (out, in) weights.

Numerically the same algorithm as ``basicsr.utils.matlab_functions.imresize`` and the DAN release's
``imresize`` (cubic kernel with a = -0.5, kernel widened by 1/scale when downsampling with antialiasing, rows
normalised to sum 1, symmetric border extension), but each 1-D resampling step is one dense (out, in) matrix
in which the symmetric border extension is folded, so a whole (B, C, H, W) batch costs two ``matmul`` calls on
any device. The taps are computed in float32 exactly as BasicSR computes them.
"""

from __future__ import annotations

import math
from functools import lru_cache
from numbers import Integral

import torch
from torch import Tensor, nn

from .checks import check_number

__all__ = ["Imresize", "imresize", "imresize_matrix", "output_size", "stride_downsample"]


def _cubic(x: Tensor) -> Tensor:
    ax = x.abs()
    near = (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1).to(x.dtype)
    far = (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)).to(x.dtype)
    return near + far


def output_size(size: int, scale: float) -> int:
    """MATLAB/BasicSR output length: ``ceil(size * scale)``."""
    return math.ceil(size * scale)


def _taps(in_len: int, out_len: int, scale: float, antialiasing: bool) -> tuple[Tensor, Tensor]:
    """(out_len, P) float32 weights and (out_len, P) int64 0-based input indices (may lie outside [0, in))."""
    width = 4.0 / scale if (scale < 1 and antialiasing) else 4.0
    x = torch.linspace(1, out_len, out_len)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    p = math.ceil(width) + 2
    idx = left[:, None] + torch.linspace(0, p - 1, p)[None, :]
    dist = u[:, None] - idx
    weights = scale * _cubic(dist * scale) if (scale < 1 and antialiasing) else _cubic(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    zeros = (weights == 0).sum(dim=0)
    if int(zeros[0]) != 0:
        idx, weights = idx[:, 1:], weights[:, 1:]
    if int(zeros[-1]) != 0:
        idx, weights = idx[:, :-1], weights[:, :-1]
    return weights.contiguous(), idx.long() - 1  # MATLAB's indices are 1-based


def _mirror(idx: Tensor, n: int) -> Tensor:
    """Symmetric extension (edge repeated): -1 -> 0, -2 -> 1, n -> n-1, n+1 -> n-2, periodic beyond."""
    period = 2 * n
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - 1 - idx, idx)


@lru_cache(maxsize=128)
def _matrix_cpu(in_len: int, out_len: int, scale: float, antialiasing: bool) -> Tensor:
    weights, idx = _taps(in_len, out_len, scale, antialiasing)
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    matrix.scatter_add_(1, _mirror(idx, in_len), weights.double())
    return matrix


_DEVICE_CACHE: dict[tuple[int, int, float, bool, str, torch.dtype], Tensor] = {}


def imresize_matrix(
    in_len: int,
    scale: float,
    antialiasing: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The (ceil(in_len*scale), in_len) resampling matrix of one axis (cached per size/scale/device/dtype).

    Raises:
        TypeError / ValueError: ``scale`` is not a finite number > 0, or ``in_len`` not an integer >= 1.
    """
    scale = check_number(scale, "imresize: scale", minimum=0.0, strict=True)
    if isinstance(in_len, bool) or not isinstance(in_len, Integral) or in_len < 1:
        raise ValueError(f"imresize: need a length >= 1, got {in_len!r}")
    in_len = int(in_len)
    out_len = output_size(in_len, scale)
    key = (in_len, out_len, float(scale), bool(antialiasing), str(torch.device(device or "cpu")), dtype)
    matrix = _DEVICE_CACHE.get(key)
    if matrix is None:
        if len(_DEVICE_CACHE) > 256:
            _DEVICE_CACHE.clear()
        matrix = _matrix_cpu(in_len, out_len, float(scale), bool(antialiasing)).to(device=device, dtype=dtype)
        _DEVICE_CACHE[key] = matrix
    return matrix


def imresize(img: Tensor, scale: float, antialiasing: bool = True) -> Tensor:
    r"""MATLAB bicubic resize of a batch by ``scale`` (e.g. 1/4 to downsample x4, 2 to upsample).

    $Y = W_H\, X\, W_W^\top$ per image and channel, with the (out, in) matrices of
    `imresize_matrix()`.

    Args:
        img: (B, C, H, W) or (C, H, W) floating tensor, any device.
        scale: factor applied to both axes, a finite number > 0; output size ``ceil(H*scale) x ceil(W*scale)``.
        antialiasing: widen the kernel when downsampling (MATLAB's default, True).

    Returns:
        Resized tensor with ``img``'s leading dims, device and dtype (no clamping, no rounding).

    Raises:
        TypeError: ``img`` is not a floating tensor, or ``scale`` is not a number (e.g. the string ``"0.5"``).
        ValueError: ``img`` has the wrong number of dims, or ``scale`` is NaN, infinite or <= 0.
    """
    scale = check_number(scale, "imresize: scale", minimum=0.0, strict=True)
    if not isinstance(img, Tensor) or not img.is_floating_point():
        what = img.dtype if isinstance(img, Tensor) else type(img).__name__
        raise TypeError(f"imresize: img must be a floating tensor, got {what}")
    if img.dim() not in (3, 4):
        raise ValueError(f"imresize: img must be (B, C, H, W) or (C, H, W), got shape {tuple(img.shape)}")
    h, w = img.shape[-2:]
    wh = imresize_matrix(h, scale, antialiasing, img.device, img.dtype)
    ww = imresize_matrix(w, scale, antialiasing, img.device, img.dtype)
    return torch.matmul(torch.matmul(wh, img), ww.T)


class Imresize(nn.Module):
    """Module wrapper of `imresize()` with a fixed ``scale``."""

    def __init__(self, scale: float = 0.25, antialiasing: bool = True) -> None:
        super().__init__()
        self.scale = check_number(scale, "Imresize: scale", minimum=0.0, strict=True)
        self.antialiasing = bool(antialiasing)

    def forward(self, img: Tensor) -> Tensor:
        return imresize(img, self.scale, self.antialiasing)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, antialiasing={self.antialiasing}"


def stride_downsample(img: Tensor, scale: int, offset: int = 0) -> Tensor:
    r"""s-fold decimation (the paper's $\downarrow_s$): ``img[..., offset::s, offset::s]``.

    Args:
        img: (..., H, W) tensor.
        scale: integer factor s >= 1.
        offset: first kept row/column, 0 <= offset < s.

    Returns:
        (..., ceil((H - offset)/s), ceil((W - offset)/s)); ``ceil(H/s)`` for offset 0.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"stride_downsample: scale must be an integer >= 1, got {scale!r}")
    if not 0 <= offset < scale:
        raise ValueError(f"stride_downsample: offset must be in [0, {scale}), got {offset}")
    if img.dim() < 2:
        raise ValueError(
            f"stride_downsample: img must have at least 2 dims (H, W), got shape {tuple(img.shape)}"
        )
    return img[..., offset::scale, offset::scale]
