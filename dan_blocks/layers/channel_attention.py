"""Channel attention (the CALayer of RCAN, as used inside DAN v1's CRB)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops import pointwise_gate
from .two_conv import activate_conv_output

__all__ = ["ChannelAttention"]


class ChannelAttention(nn.Module):
    r"""Squeeze-and-excitation style channel attention.

    $$
    y = x \odot \sigma\big(W_2\,\delta(W_1\,\mathrm{GAP}(x))\big)
    $$

    with $W_1$ a 1x1 conv ``channels -> channels // reduction``, $\delta$ LeakyReLU(0.2),
    $W_2$ a 1x1 conv back to ``channels`` and $\sigma$ the sigmoid. Parameter names
    (``body.0``, ``body.2``) follow the DAN release's ``CALayer``.

    Args:
        channels: number of feature channels ``C``.
        reduction: squeeze ratio; the hidden width is ``channels // reduction`` (16 in DAN).
        negative_slope: LeakyReLU slope (0.2 in DAN).

    Shape:
        x: (B, C, H, W) -> (B, C, H, W)
    """

    #: compute the gate's 1x1 convs on the pooled map as matrix products (`dan_blocks.optimize()` sets it)
    fast: bool = False

    def __init__(self, channels: int, reduction: int = 16, negative_slope: float = 0.2) -> None:
        super().__init__()
        if channels < 1 or reduction < 1 or channels // reduction < 1:
            raise ValueError(
                f"ChannelAttention needs channels >= reduction >= 1, got channels={channels}, "
                f"reduction={reduction} (hidden width channels // reduction would be {channels // max(reduction, 1)})"
            )
        self.channels = channels
        self.reduction = reduction
        hidden = channels // reduction
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def gate(self, pooled: Tensor) -> Tensor:
        """The per-channel gate from the spatial mean ``pooled`` (B, C, 1, 1) of the input -> (B, C, 1, 1).

        Split out so that tiled inference can pool over all tiles first and gate each tile exactly.
        """
        if self.fast:
            return pointwise_gate(self.body, pooled)
        body = self.body
        if len(body) == 4 and type(body[0]) is nn.Conv2d:  # a fresh conv output: LeakyReLU in place, one saved map
            return body[3](body[2](activate_conv_output(body[1], body[0](pooled))))
        return body(pooled)

    def attention(self, x: Tensor) -> Tensor:
        """The per-channel gate $\\sigma(\\cdot)$ of shape (B, C, 1, 1)."""
        return self.gate(torch.mean(x, dim=(2, 3), keepdim=True))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"
