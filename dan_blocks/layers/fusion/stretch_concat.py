"""Stretch-and-concatenate (SRMD, DAN v1's CRB): the code spread over the feature map, joined as channels."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...ops import can_use_constant_channels, conv_with_constant_channels, is_capturing
from ..kernel_stretch import KernelStretch
from .base import Fusion

__all__ = ["StretchConcat"]


class StretchConcat(Fusion):
    r"""$\mathrm{fuse}(f, c) = [f, S(c)]$, $c' = c$, with $S$ = `KernelStretch` (`stretch_code()`); ``nf + cond_nf``
    channels out.

    Args:
        nf: feature channels.
        cond_nf: code channels.
        stretch_mode: how a code map of another size is resized (`stretch_code()`): ``"nearest"``,
            ``"bilinear"`` or ``"error"``.

    No parameters. ``fast`` (set by `dan_blocks.optimize()`): `fused_conv` with a global code computes
    $W * [f, S(c)]$ without building $S(c)$, the code's share entering as a per-channel bias with exact
    borders (`dan_blocks.ops.conv_with_constant_channels`).
    """

    #: compute `fused_conv` in its fast exact form (`dan_blocks.optimize()` sets it)
    fast: bool = False

    def __init__(self, nf: int, cond_nf: int, stretch_mode: str = "nearest") -> None:
        super().__init__(nf, cond_nf)
        if stretch_mode not in ("nearest", "bilinear", "error"):
            raise ValueError(f"stretch_mode must be one of nearest, bilinear, error; got {stretch_mode!r}")
        self.stretch_mode = stretch_mode
        self.stretch = KernelStretch(stretch_mode)
        self.out_channels = nf + cond_nf

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        self.check_feat(feat)
        self.check_cond(feat, cond)
        return torch.cat((feat, self.stretch(cond, feat)), dim=1), cond

    def fused_conv(self, conv: nn.Module, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        is_global = cond.dim() == 2 or (cond.dim() == 4 and cond.shape[-2] == 1 and cond.shape[-1] == 1)
        if self.fast and is_global and can_use_constant_channels(conv) and not is_capturing():
            self.check_feat(feat)
            self.check_cond(feat, cond)
            return conv_with_constant_channels(feat, conv, cond.reshape(cond.shape[0], self.cond_nf)), cond  # type: ignore[arg-type]
        return super().fused_conv(conv, feat, cond)

    def extra_repr(self) -> str:
        return f"nf={self.nf}, cond_nf={self.cond_nf}, stretch_mode={self.stretch_mode!r}"
