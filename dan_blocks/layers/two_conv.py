"""conv -> LeakyReLU -> conv: the two-convolution path of DAN v2's blocks ($B_1$, $B_2$) and of several fusions."""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from ..ops import conv_lrelu_conv

__all__ = ["TwoConv"]


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
        return self[2](self[1](self[0](x)))
