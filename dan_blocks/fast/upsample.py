"""The DAN upsampler folded into one sub-pixel convolution for inference."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from ..archs.upsample import Upsampler
from .capture import is_capturing
from .subpixel_border import folded_forward
from .subpixel_fold import FoldedChain, fold_subpixel_chain
from .versions import tensor_state

__all__ = ["FoldedUpsampler"]


class FoldedUpsampler(Upsampler):
    r"""`Upsampler` run as one sub-pixel conv at the input size, same parameters.

    The chain has no non-linearity, so for inference (no gradient needed) it runs as one conv and
    PixelShuffle(s) (x4: a 5x5 conv ``nf -> 16 out_nc``, 0.63 GFLOP at 64x64 instead of 6.3), with the border
    bands corrected exactly (`folded_forward()`). The folded weights are
    computed in float64 at the first call and cached until a parameter changes (in place or replaced), the
    dtype or the device changes. In training, under graph capture or with mixed dtypes it runs the chain.
    Made by `dan_blocks.optimize()`; same numbers as the chain up to float rounding.
    """

    _fold_cache: tuple[tuple[object, ...], FoldedChain] | None = None

    def _can_fold(self, x: Tensor) -> bool:
        if x.dim() != 4 or not x.is_floating_point() or is_capturing():
            return False
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            return False
        return all(p.dtype == x.dtype and p.device == x.device for p in self.parameters())

    def folded(self) -> FoldedChain:
        """The cached `FoldedChain` of this upsampler (recomputed
        when a parameter, its dtype or its device changed)."""
        params = list(self.parameters())
        key = tuple(tensor_state(p) for p in params)
        if self._fold_cache is None or self._fold_cache[0] != key:
            folded = fold_subpixel_chain(list(self))
            first = params[0]
            if not first.is_contiguous() and first.is_contiguous(memory_format=torch.channels_last):
                folded = replace(folded, weight=folded.weight.contiguous(memory_format=torch.channels_last))
            self._fold_cache = (key, folded)
        return self._fold_cache[1]

    def forward(self, x: Tensor) -> Tensor:
        if self._can_fold(x):
            return folded_forward(x, self.folded(), list(self))
        return super().forward(x)
