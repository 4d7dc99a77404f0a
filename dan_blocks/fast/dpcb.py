"""DPCB / DPCG with fused LeakyReLU, ``addcmul`` updates and a reusable first basic path."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import DPCB, DPCG
from .fused import fused_conv_leaky_relu

__all__ = ["FastDPCB", "FastDPCG", "linear_1x1"]


def linear_1x1(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """A 1x1 conv on a (B, C, 1, 1) map as a matrix product (B, C) @ W^T: no im2col for a single pixel."""
    weight = conv.weight.reshape(conv.weight.shape[0], conv.weight.shape[1])
    return F.linear(x.flatten(1), weight, conv.bias)[:, :, None, None]


class FastDPCB(DPCB):
    """`DPCB` with the same parameters and numbers, computed in fewer passes.

    The LeakyReLU is fused into the first conv of each path (oneDNN post-op, CPU inference), the update is one
    ``addcmul``, a global (B, C, 1, 1) condition goes through its 1x1 convs as matrix products, and
    ``forward`` accepts an already computed basic path $B_1(f)$ (``basic=``). Made by
    `dan_blocks.optimize()`.
    """

    def condition(self, cond: Tensor) -> Tensor:
        """$B_2(c)$, the gate shared by both paths; shape as ``cond``."""
        first, last = self.body2[0], self.body2[2]
        if cond.shape[-1] == 1 and cond.shape[-2] == 1 and first.kernel_size == (1, 1) and last.kernel_size == (1, 1):
            return linear_1x1(F.leaky_relu(linear_1x1(cond, first), self.negative_slope), last)
        return last(fused_conv_leaky_relu(cond, first, self.negative_slope))

    def basic(self, feat: Tensor) -> Tensor:
        """$B_1(f)$ on the basic path; shape as ``feat``."""
        return self.body1[2](fused_conv_leaky_relu(feat, self.body1[0], self.negative_slope))

    def forward(self, feat: Tensor, cond: Tensor, basic: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``basic``: $B_1(f)$ if already known (the LR memo reuses it when ``feat`` depends on the LR only)."""
        self.check_inputs(feat, cond)
        if basic is not None and basic.shape != feat.shape:
            raise ValueError(f"DPCB basic must have the features' shape {list(feat.shape)}, got {list(basic.shape)}")
        gate = self.condition(cond)
        return torch.addcmul(feat, self.basic(feat) if basic is None else basic, gate), cond + gate


class FastDPCG(DPCG):
    """`DPCG` of `FastDPCB` blocks; ``first_basic=`` is the first block's
    $B_1(f)$ if already known. Made by `dan_blocks.optimize()`."""

    def first_basic(self, feat: Tensor) -> Tensor:
        """$B_1(f)$ of the first block."""
        return self.body[0].basic(feat)  # type: ignore[no-any-return]

    def forward(self, feat: Tensor, cond: Tensor, first_basic: Tensor | None = None) -> tuple[Tensor, Tensor]:
        f, c = feat, cond
        for index, block in enumerate(self.body):
            f, c = block(f, c, first_basic if index == 0 else None)
        if self.residual == "double":
            return f + f, c + c
        return feat + f, cond + c
