"""conv -> LeakyReLU -> conv: the two-convolution path of DAN v2's blocks ($B_1$, $B_2$) and of several fusions."""

from __future__ import annotations

from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import conv_lrelu_conv

__all__ = ["TwoConv", "activate_conv_output"]


def activate_conv_output(act: nn.Module, hidden: Tensor) -> Tensor:
    """``act(hidden)`` for ``hidden``, the fresh output of a convolution used nowhere else: a plain
    ``nn.LeakyReLU`` with a slope >= 0 is applied in place (as the releases' ``LeakyReLU(0.2, True)``), so that
    autograd keeps one map for the pair (the activation's output, which the next conv saves anyway) instead of two
    (the conv's output for the LeakyReLU's backward as well). Same numbers and gradients; any other ``act`` is
    called as it is. The module itself stays out-of-place, so code that applies it to a shared tensor (a tile's
    view) is unaffected."""
    if type(act) is nn.LeakyReLU and act.negative_slope >= 0:
        return F.leaky_relu(hidden, act.negative_slope, inplace=True)
    return act(hidden)


class TwoConv(nn.Sequential):
    r"""$W_2 * \delta(W_1 * x)$ with $\delta$ LeakyReLU; keys ``0`` and ``2`` as in the releases.

    Args:
        c_in: input channels.
        c_out: output channels.
        ksize: kernel size of both convolutions (odd; zero padding ``ksize // 2``).
        negative_slope: LeakyReLU slope (0.2).
        hidden: channels between the convolutions (default ``c_out``).

    ``fast`` (set by `dan_blocks.optimize()`) computes the same chain with 1x1 convolutions on a single pixel as
    matrix products and the LeakyReLU fused into the first convolution on the CPU (`dan_blocks.ops.conv_lrelu_conv`).

    Shape:
        (B, c_in, H, W) -> (B, c_out, H, W)
    """

    #: compute the same chain in its fast exact form (`dan_blocks.optimize()` sets it)
    fast: bool = False

    def __init__(
        self, c_in: int, c_out: int, ksize: int = 3, negative_slope: float = 0.2, hidden: int | None = None
    ) -> None:
        if ksize % 2 == 0 or ksize < 1:
            raise ValueError(f"TwoConv kernel size must be odd and >= 1, got {ksize}")
        width = c_out if hidden is None else hidden
        super().__init__(
            nn.Conv2d(c_in, width, ksize, 1, ksize // 2),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(width, c_out, ksize, 1, ksize // 2),
        )
        self.negative_slope = negative_slope

    def receptive_radius(self) -> int:
        """Tiling protocol: two convolutions of radius ``ksize // 2``."""
        return 2 * (cast(nn.Conv2d, self[0]).kernel_size[0] // 2)

    def forward(self, x: Tensor) -> Tensor:
        if self.fast:
            return conv_lrelu_conv(x, self[0], self.negative_slope, self[2])
        first = self[0]
        if type(first) is nn.Conv2d:  # its output is fresh: the LeakyReLU may run in place (one saved map)
            return self[2](activate_conv_output(self[1], first(x)))
        return self[2](self[1](first(x)))
