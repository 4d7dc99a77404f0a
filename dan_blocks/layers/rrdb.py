"""Residual dense blocks (ESRGAN, Wang et al. ECCV-W 2018) and the SFT-conditioned RRDB of MANet's restorer."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from .fusion import Fusion, create_fusion

__all__ = ["RRDBSFT", "ResidualDenseBlock"]


class ResidualDenseBlock(nn.Module):
    r"""Five densely connected 3x3 convolutions with a scaled residual.

    $$
    x_j = \mathrm{LReLU}_{0.2}\big(W_j * \mathrm{cat}(x_0, \dots, x_{j-1})\big)\ (j = 1..4), \qquad
    \mathrm{RDB}(x_0) = x_0 + \rho\, W_5 * \mathrm{cat}(x_0, \dots, x_4)
    $$

    Args:
        nf: channels in and out (64).
        gc: growth channels of ``conv1`` .. ``conv4`` (32).
        res_scale: $\rho$ (0.2).

    Shape:
        (B, nf, H, W) -> (B, nf, H, W)
    """

    def __init__(self, nf: int = 64, gc: int = 32, res_scale: float = 0.2) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2)

    def receptive_radius(self) -> int:
        """Tiling protocol: five 3x3 convolutions in a chain."""
        return 5

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.lrelu(conv(torch.cat(feats, dim=1))))
        return x + self.res_scale * self.conv5(torch.cat(feats, dim=1))


class RRDBSFT(nn.Module):
    r"""Residual-in-residual dense block with an SFT layer in front (MANet's ``RRDB_SFT``).

    $$
    \mathrm{RRDB}_{\mathrm{SFT}}(f, c)
    = f + \rho\, \mathrm{RDB}_3\big(\mathrm{RDB}_2(\mathrm{RDB}_1(\mathrm{SFT}(f, c)))\big)
    $$

    The code map $c$ passes through the fusion (unchanged by MANet's SFT layer; returned with the features, so
    blocks chain).

    Args:
        nf: feature channels (64).
        gc: growth channels of the dense blocks (32).
        code_length: channels of the code map (15).
        res_scale: $\rho$ of the outer residual (0.2).
        fusion: a registered fusion name or class (``"sft_concat"``, MANet's SFT layer, kept as ``sft``); one
            whose output is wider than ``nf`` is followed by a 1x1 projection ``proj``.
        fusion_kwargs: its arguments.

    Shape:
        feat: (B, nf, H, W); code: (B, C, H, W) or (B, C) -> ((B, nf, H, W), code)
    """

    def __init__(
        self,
        nf: int = 64,
        gc: int = 32,
        code_length: int = 15,
        res_scale: float = 0.2,
        fusion: str | type[nn.Module] = "sft_concat",
        fusion_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.sft = create_fusion(fusion, nf, code_length, fusion_kwargs)
        width = int(cast(Fusion, self.sft).out_channels)  # any fusion module follows the Fusion signature
        self.proj = None if width == nf else nn.Conv2d(width, nf, 1)
        self.rdb1 = ResidualDenseBlock(nf, gc)
        self.rdb2 = ResidualDenseBlock(nf, gc)
        self.rdb3 = ResidualDenseBlock(nf, gc)

    def receptive_radius(self) -> int:
        """Tiling protocol: the SFT layer and three dense blocks (17 pixels)."""
        return int(cast(Fusion, self.sft).receptive_radius()) + 3 * self.rdb1.receptive_radius()

    def forward(self, feat: Tensor, code: Tensor) -> tuple[Tensor, Tensor]:
        fused, code = self.sft(feat, code)
        out = self.rdb3(self.rdb2(self.rdb1(fused if self.proj is None else self.proj(fused))))
        return feat + self.res_scale * out, code
