"""Pixel-shuffle upsampler shared by the DAN v1 and v2 restorers."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..ops import FoldedChain, fold_subpixel_chain, folded_forward, is_capturing, tensor_state

__all__ = ["Upsampler", "make_upsampler", "upsampler_layout"]


def upsampler_layout(scale: int) -> list[int]:
    """Pixel-shuffle factors of each stage: x1 -> [], powers of two -> [2, 2, ...], x3 -> [3]."""
    if scale == 1:
        return []
    if scale == 3:
        return [3]
    if scale >= 2 and scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    raise ValueError(f"DAN upsampler supports scale 1, 3 or a power of two (2, 4, 8, ...), got scale={scale}")


class Upsampler(nn.Sequential):
    r"""Sub-pixel upsampler of the DAN release: per stage a 3x3 conv ``nf -> nf * r^2`` and PixelShuffle(r),
    then a 3x3 conv ``nf -> out_nc``.

    Layouts (parameter names as in the release): x4 ``{0, 2, 4}`` = [conv 64->256, PS(2), conv 64->256, PS(2),
    conv 64->3]; x2/x3 ``{0, 2}`` = [conv 64->64 s², PS(s), conv 64->3]. The x1 (deblurring) variant of the
    release is a single conv and is built by `make_upsampler()` as a plain ``nn.Conv2d``.

    The chain has no non-linearity, so for inference it is one sub-pixel convolution at the input size
    followed by PixelShuffle(s) (x4: a 5x5 conv ``nf -> 16 out_nc``, 0.63 GFLOP at 64x64 instead of 6.3), with
    the border bands corrected exactly (`dan_blocks.ops.folded_forward`). ``fast`` (set by
    `dan_blocks.optimize()`) runs it so when no gradient is needed, outside graph capture and with one dtype and
    device; the folded weights are computed in float64 at the first call and cached until a parameter changes (in
    place or replaced), or its dtype or device does. Same numbers as the chain up to float rounding.

    Shape:
        (B, nf, H, W) -> (B, out_nc, s H, s W)
    """

    #: run as one folded sub-pixel convolution for inference (`dan_blocks.optimize()` sets it)
    fast: bool = False
    _fold_cache: tuple[tuple[object, ...], FoldedChain] | None = None

    def __init__(self, nf: int = 64, out_nc: int = 3, scale: int = 4) -> None:
        layers: list[nn.Module] = []
        for factor in upsampler_layout(scale):
            layers += [nn.Conv2d(nf, nf * factor * factor, 3, 1, 1), nn.PixelShuffle(factor)]
        layers.append(nn.Conv2d(nf, out_nc, 3, 1, 1))
        super().__init__(*layers)
        self.scale = scale
        #: tiling protocol: the output is ``scale`` times the input's size
        self.output_scale = scale

    def receptive_radius(self) -> int:
        """Tiling protocol: a 3x3 conv at each resolution, ``ceil(1 + 1/r_1 + 1/(r_1 r_2) + ...)`` input pixels."""
        radius, resolution = 0.0, 1
        for module in self:
            if isinstance(module, nn.Conv2d):
                radius += (module.kernel_size[0] // 2) / resolution
            elif isinstance(module, nn.PixelShuffle):
                resolution *= module.upscale_factor
        return math.ceil(radius - 1e-9)

    def forward(self, x: Tensor) -> Tensor:
        if self.fast and self._can_fold(x):
            return folded_forward(x, self.folded(), list(self))
        return super().forward(x)

    def _can_fold(self, x: Tensor) -> bool:
        if x.dim() != 4 or not x.is_floating_point() or is_capturing():
            return False
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            return False
        return all(p.dtype == x.dtype and p.device == x.device for p in self.parameters())

    def folded(self) -> FoldedChain:
        """The cached folded chain (recomputed when a parameter, its dtype or its device changed)."""
        params = list(self.parameters())
        key = tuple(tensor_state(p) for p in params)
        if self._fold_cache is None or self._fold_cache[0] != key:
            self._fold_cache = (key, fold_subpixel_chain(list(self)))  # in the weights' memory format
        return self._fold_cache[1]


def make_upsampler(nf: int = 64, out_nc: int = 3, scale: int = 4) -> nn.Module:
    """`Upsampler` for scale > 1; one 3x3 conv ``nf -> out_nc`` at scale 1 (release ``upscale.*``)."""
    if scale == 1:
        return nn.Conv2d(nf, out_nc, 3, 1, 1)
    return Upsampler(nf, out_nc, scale)
